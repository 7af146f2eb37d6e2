package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// taskClusterEmulator publishes n current builds (symbols zips of growing
// size), one expired build and one build whose artifacts expired.
func taskClusterEmulator(t *testing.T, n int) (*emulator.Server, *httptest.Server) {
	t.Helper()
	emu, ts := uploadEmulator(t)
	now := time.Now()
	for i := range n {
		exp := now.AddDate(0, 6, i) // later builds expire later
		arts := []emulator.TaskClusterArtifact{
			{Name: "public/build/target.crashreporter-symbols.zip", Expires: exp, Data: []byte("not preferred")},
			{Name: "public/build/target.crashreporter-symbols-full.zip", Expires: exp, Data: make([]byte, 1000*(i+1))},
		}
		emu.AddBuild(fmt.Sprintf("gecko.v2.mozilla-central.revision.%040x", 1000-i), "linux64-opt", exp, arts)
	}
	emu.AddBuild("gecko.v2.mozilla-central.revision.expired", "linux64-opt", now.AddDate(0, 0, -1),
		[]emulator.TaskClusterArtifact{{Name: "public/build/target.crashreporter-symbols.zip", Expires: now.AddDate(0, 0, -1), Data: []byte("x")}})
	emu.AddBuild("gecko.v2.mozilla-central.revision.oldartifacts", "linux64-opt", now.AddDate(1, 0, 0),
		[]emulator.TaskClusterArtifact{{Name: "public/build/target.crashreporter-symbols.zip", Expires: now.AddDate(0, 0, -1), Data: []byte("x")}})
	return emu, ts
}

func TestListZipsPagesAndRedirects(t *testing.T) {
	emu, ts := taskClusterEmulator(t, 5)
	plan := fmt.Sprintf("host: %s\nsteps:\n  - list-zips:\n      taskcluster: %s\n      number: 3\n      page_size: 2\n      max_size: 4500b\n", ts.URL, ts.URL)
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte(plan), 0o644)
	if err := run(context.Background(), []string{"-format", "json", path}, nil, &out, io.Discard, terminal{}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Steps []ListZipsResult `json:"steps"`
	}
	if err := jsonUnmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	// Newest first (latest expiry): builds 4 (5000 b, over max_size), 3, 2, 1.
	var sizes []int64
	for _, z := range s.Zips {
		sizes = append(sizes, z.Size)
		if !strings.HasSuffix(z.URL, "/artifacts/public/build/target.crashreporter-symbols-full.zip") {
			t.Errorf("%s is not the full zip", z.URL)
		}
	}
	if fmt.Sprint(sizes) != "[4000 3000 2000]" || len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0].Reason, "over max_size") {
		t.Errorf("sizes %v, skipped %+v", sizes, s.Skipped)
	}
	// One namespace expired, and one build's only artifact.
	if s.Namespaces != 7 || s.Expired != 2 {
		t.Errorf("namespaces %d, expired %d", s.Namespaces, s.Expired)
	}
	// page_size 2 over 7 namespaces: 4 list requests, with tokens.
	pages := 0
	for _, rec := range emu.Log() {
		if strings.HasPrefix(rec.Path, "/api/index/v1/namespaces/") {
			pages++
		}
	}
	if pages != 4 {
		t.Errorf("%d namespace pages, want 4", pages)
	}
}

func TestListThenUploadThroughAPipe(t *testing.T) {
	emu, ts := taskClusterEmulator(t, 0)
	// Real zips this time: the emulator downloads and unpacks them.
	now := time.Now().AddDate(1, 0, 0)
	var keys []string
	for i := range 2 {
		m := breakpad.Synthesize(rand.New(rand.NewPCG(uint64(40+i), 1)), fmt.Sprintf("pipe%d", i), "linux", 5)
		keys = append(keys, m.Key())
		emu.AddBuild(fmt.Sprintf("gecko.v2.mozilla-central.revision.pipe%d", i), "linux64-opt", now,
			[]emulator.TaskClusterArtifact{{Name: "public/build/target.crashreporter-symbols-full.zip", Expires: now, Data: emulator.ZipModules([]breakpad.Module{m})}})
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "list.yaml")
	os.WriteFile(list, []byte(fmt.Sprintf("host: %s\nsteps:\n  - list-zips: {taskcluster: %s, number: 2}\n", ts.URL, ts.URL)), 0o644)
	// teckenrun list.yaml | teckenrun upload.yaml
	var piped bytes.Buffer
	if err := run(context.Background(), []string{list}, nil, &piped, io.Discard, terminal{stdout: false}); err != nil {
		t.Fatal(err)
	}
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      urls_from: stdin\n"), &piped)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Steps[0]; s.Succeeded != 2 || len(emu.Uploads()) != 2 || emu.Uploads()[0].DownloadURL == "" {
		t.Errorf("succeeded %d; server has %d uploads", s.Succeeded, len(emu.Uploads()))
	}
	stored := map[string]bool{}
	for _, u := range emu.Uploads() {
		for _, f := range u.Files {
			stored[f.Key] = true
		}
	}
	for _, k := range keys {
		if !stored["v1/"+k] {
			t.Errorf("%s was not stored", k)
		}
	}
	// Plain text works too: every token with ://.
	urls, err := parseURLList([]byte("4.0KB  https://a.example/x.zip\nnot-a-url\nhttps://b.example/y.zip\n"))
	if err != nil || fmt.Sprint(urls) != "[https://a.example/x.zip https://b.example/y.zip]" {
		t.Errorf("text list: %v %v", urls, err)
	}
	if _, err := parseURLList([]byte("{not json")); err == nil {
		t.Error("broken JSON accepted")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// TestListZipsMaxSizeIsInclusive: a zip of exactly max_size is listed;
// only larger ones are skipped.
func TestListZipsMaxSizeIsInclusive(t *testing.T) {
	_, ts := taskClusterEmulator(t, 3) // zips of 1000, 2000 and 3000 bytes
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("host: %s\nsteps:\n  - list-zips: {taskcluster: %s, max_size: 2000b}\n", ts.URL, ts.URL)), 0o644)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-format", "json", path}, nil, &out, io.Discard, terminal{}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Steps []ListZipsResult `json:"steps"`
	}
	if err := jsonUnmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, z := range r.Steps[0].Zips {
		sizes = append(sizes, z.Size)
	}
	if s := r.Steps[0]; fmt.Sprint(sizes) != "[2000 1000]" || len(s.Skipped) != 1 || !strings.Contains(s.Skipped[0].Reason, "over max_size") {
		t.Errorf("sizes %v, skipped %+v", sizes, s.Skipped)
	}
}

// TestListZipsRetriesAPageCutOff: a list page whose body breaks off
// after the headers is asked for again.
func TestListZipsRetriesAPageCutOff(t *testing.T) {
	emu, _ := taskClusterEmulator(t, 2)
	var pages atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/index/v1/namespaces/") && pages.Add(1) == 1 {
			cutBody(w)
			return
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("host: %s\nsteps:\n  - list-zips: {taskcluster: %s, number: 2}\n", ts.URL, ts.URL)), 0o644)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-format", "json", path}, nil, &out, io.Discard, terminal{}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Steps []ListZipsResult `json:"steps"`
	}
	if err := jsonUnmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Steps[0].Zips); n != 2 || pages.Load() != 2 {
		t.Errorf("%d zips listed; the namespaces page was asked %d times, want 2", n, pages.Load())
	}
}
