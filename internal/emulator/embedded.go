package emulator

import (
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
// that the cache is visible in reports, and EmbeddedToken for uploads.
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
	return s
}
