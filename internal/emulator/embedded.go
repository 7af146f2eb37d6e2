package emulator

import (
	"archive/zip"
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// EmbeddedToken is the Auth-Token the embedded emulator accepts for uploads.
// It only exists inside a teckenrun process talking to its own emulator.
const EmbeddedToken = "e2e0000000000000000000000000000e"

// embeddedNames are the modules of the deterministic embedded store, with
// their platforms.
var embeddedNames = []struct{ base, platform string }{
	{"xul", "windows"}, {"mozglue", "windows"}, {"wntdll", "windows"}, {"kernel32", "windows"},
	{"nss3", "windows"}, {"firefox", "windows"}, {"xul", "linux"}, {"XUL", "mac"},
}

// EmbeddedModules returns the modules of the embedded store. They are the
// same on every call and every machine.
func EmbeddedModules() []breakpad.Module {
	r := rand.New(rand.NewPCG(2019, 8))
	mods := make([]breakpad.Module, len(embeddedNames))
	for i, n := range embeddedNames {
		mods[i] = breakpad.Synthesize(r, n.base, n.platform, 200)
	}
	return mods
}

// NewEmbedded returns the emulator that plans with "host: embedded" run
// against: EmbeddedModules in storage, a small uncached-lookup latency so
// that the cache is visible in reports, EmbeddedToken for uploads, and
// the uploads of EmbeddedRecords in its past (over the last three days).
func NewEmbedded() *Server {
	s := New(Options{
		Latency:         15 * time.Millisecond,
		SymbolBandwidth: 20 << 20,
		Tokens: map[string]Token{EmbeddedToken: {
			User:        "demo@example.com",
			Permissions: []string{PermUpload, PermViewAll},
		}},
	})
	for _, m := range EmbeddedModules() {
		s.Put(m.Key(), m.Bytes())
	}
	addEmbeddedBuilds(s)
	addEmbeddedHistory(s)
	return s
}

// EmbeddedNamespace is where the embedded TaskCluster index lists builds.
const EmbeddedNamespace = "gecko.v2.mozilla-central.revision"

// addEmbeddedBuilds publishes three builds on the embedded TaskCluster:
// two current ones with a full and a plain symbols zip, and one expired.
func addEmbeddedBuilds(s *Server) {
	r := rand.New(rand.NewPCG(2026, 11))
	now := time.Now()
	for i, expires := range []time.Time{now.AddDate(1, 0, 0), now.AddDate(0, 11, 0), now.AddDate(0, 0, -1)} {
		rev := fmt.Sprintf("%040x", r.Uint64())
		var mods []breakpad.Module
		for j := range 3 {
			mods = append(mods, breakpad.Synthesize(r, fmt.Sprintf("build%dlib%d", i, j), breakpad.Platforms[j], 60))
		}
		full := ZipModules(mods)
		s.AddBuild(EmbeddedNamespace+"."+rev, "linux64-opt", expires, []TaskClusterArtifact{
			{Name: "public/build/target.crashreporter-symbols.zip", Expires: expires, Data: ZipModules(mods[:1])},
			{Name: "public/build/target.crashreporter-symbols-full.zip", Expires: expires, Data: full},
			{Name: "public/logs/live.log", Expires: expires, Data: []byte("log")},
		})
	}
}

// ZipModules returns a DEFLATE zip of the modules' .sym files, each under
// its storage key (debug_file/DEBUG_ID/sym_file), as Tecken wants them.
func ZipModules(mods []breakpad.Module) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, m := range mods {
		w, _ := zw.Create(m.Key()) // writing to memory never fails
		m.WriteTo(w)
	}
	zw.Close()
	return b.Bytes()
}
