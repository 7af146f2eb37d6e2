package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/mozilla-services/teckenrun/internal/breakpad"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

type makeZipsReport struct {
	Steps []struct {
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		MakeZipsResult
	} `json:"steps"`
}

func runMakeZips(t *testing.T, plan string) (*makeZipsReport, error) {
	t.Helper()
	r, _, err := runPlanAs[makeZipsReport](t, context.Background(), plan, nil, nil)
	return r, err
}

func readZip(t *testing.T, path string) map[string]string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string]string{}
	for _, f := range zr.File {
		if f.Method != zip.Deflate {
			t.Errorf("%s is not DEFLATE-compressed", f.Name)
		}
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(b)
	}
	return out
}

func TestMakeZipsSynthetic(t *testing.T) {
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nseed: 5\nsteps:\n  - make-zips: {source: synthetic, save_dir: %s, number: 2, zip_size: 200kb, sym_size: 32kb, platform: linux}\n", dir)
	r, err := runMakeZips(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if len(s.Zips) != 2 || s.ZipBytesPerS == nil {
		t.Fatalf("zips %+v", s.Zips)
	}
	for _, z := range s.Zips {
		if z.Bytes < 200<<10 || z.Bytes > 300<<10 {
			t.Errorf("%s is %d bytes for zip_size 200kb", z.Path, z.Bytes)
		}
		members := readZip(t, z.Path)
		if len(members) != z.Files {
			t.Errorf("%s: %d members, report says %d", z.Path, len(members), z.Files)
		}
		for name, content := range members {
			syms, err := breakpad.Parse(strings.NewReader(content))
			if err != nil || len(syms.Syms) == 0 || name != syms.DebugFile+"/"+syms.DebugID+"/"+breakpad.SymFile(syms.DebugFile) ||
				!strings.HasSuffix(name, ".so.sym") {
				t.Errorf("member %s: %d symbols, MODULE %s %s", name, len(syms.Syms), syms.DebugFile, syms.DebugID)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The same seed makes the same zips.
	dir2 := t.TempDir()
	r2, err := runMakeZips(t, strings.Replace(plan, dir, dir2, 1))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(s.Zips[0].Path)
	b, _ := os.ReadFile(r2.Steps[0].Zips[0].Path)
	if filepath.Base(s.Zips[0].Path) != filepath.Base(r2.Steps[0].Zips[0].Path) || len(a) != len(b) {
		t.Error("the same seed made different zips")
	}
}

// TestMakeZipsSyntheticMembersAreDated: every member carries the time it
// was written, in the extended timestamp and in the MS-DOS fields that
// older unzip tools read.
func TestMakeZipsSyntheticMembersAreDated(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Truncate(time.Second) // the zip's resolution
	r, err := runMakeZips(t, fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - make-zips: {source: synthetic, save_dir: %s, zip_size: 64kb, sym_size: 16kb}\n", dir))
	end := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(r.Steps[0].Zips[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) == 0 {
		t.Fatal("no members")
	}
	for _, f := range zr.File {
		if f.Modified.Before(start) || f.Modified.After(end) {
			t.Errorf("%s modified %v, want between %v and %v", f.Name, f.Modified, start, end)
		}
		d, tm := f.ModifiedDate, f.ModifiedTime
		dos := time.Date(int(d>>9)+1980, time.Month(d>>5&0xf), int(d&0x1f), int(tm>>11), int(tm>>5&0x3f), int(tm&0x1f)*2, 0, time.UTC)
		if diff := f.Modified.Sub(dos); diff < 0 || diff >= 2*time.Second {
			t.Errorf("%s: MS-DOS time %v for %v", f.Name, dos, f.Modified.UTC())
		}
	}
}

// realHit returns one upload of the real records, written as a records
// file of its own, with its keys.
func realHit(t *testing.T) (records string, hit uploadedHit) {
	t.Helper()
	const data = "../shared/data/symbols-uploaded/2017-06-14.json.gz"
	if _, err := os.Stat(data); err != nil {
		t.Skip("no real records at " + data)
	}
	hits, err := loadRecords(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if n := len(h.Content.Added) + len(h.Content.Existed); n >= 50 && n <= 150 {
			hit = h
			break
		}
	}
	if hit.ID == 0 {
		t.Fatal("no hit of 50-150 files in the records")
	}
	return writeOneHit(t, hit), hit
}

// embeddedHit is the first upload of the emulator's synthetic records.
func embeddedHit(t *testing.T) (records string, hit uploadedHit) {
	t.Helper()
	raw, _ := emulator.EmbeddedRecords()
	var all struct{ Hits []uploadedHit }
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	return writeOneHit(t, all.Hits[0]), all.Hits[0]
}

// writeOneHit writes a records file holding one upload.
func writeOneHit(t *testing.T, hit uploadedHit) string {
	t.Helper()
	records := filepath.Join(t.TempDir(), "one.json")
	b, _ := json.Marshal(map[string]any{"hits": []uploadedHit{hit}, "total": 1})
	if err := os.WriteFile(records, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return records
}

func TestMakeZipsFromRealRecordsOnS3(t *testing.T) {
	records, hit := realHit(t)
	backend := s3mem.New()
	backend.CreateBucket("symbols")
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	defer ts.Close()
	want := map[string]string{}
	var missing string
	for i, entry := range append(append([]string(nil), hit.Content.Added...), hit.Content.Existed...) {
		_, key, _ := strings.Cut(entry, ",")
		content := "contents of " + key + "\n"
		if i == 3 {
			missing = key // not in the bucket: a 404
			continue
		}
		want[strings.TrimPrefix(key, "v1/")] = content
		body, meta := []byte(content), map[string]string{}
		if strings.HasSuffix(key, ".sym") { // Tecken stores .sym gzipped
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(body)
			zw.Close()
			body, meta["Content-Encoding"] = gz.Bytes(), "gzip"
		}
		if _, err := backend.PutObject("symbols", "mirror/"+key, meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - make-zips:\n      source: uploaded-symbols\n      records: %s\n      symbols_url: s3://symbols/mirror\n      endpoint: %s\n      anonymous: true\n      save_dir: %s\n      max_size: 2gb\n      concurrency: 8\n",
		records, ts.URL, dir)
	r, err := runMakeZips(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	wantPath := filepath.Join(dir, hit.zipName())
	if len(s.Zips) != 1 || s.Zips[0].Path != wantPath || !strings.HasPrefix(filepath.Base(wantPath), "symbols-2017-06-14T") {
		t.Fatalf("zips %+v, want %s", s.Zips, wantPath)
	}
	got := readZip(t, wantPath)
	if len(got) != len(want) || s.Zips[0].Files != len(want) {
		t.Errorf("%d members (report %d), want %d", len(got), s.Zips[0].Files, len(want))
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("member %s = %q, want %q", name, got[name], content)
		}
	}
	if len(s.FailedFiles) != 1 || s.FailedFiles[0].Key != missing || !strings.Contains(s.FailedFiles[0].Error, "not found") {
		t.Errorf("failed files %+v, want %s", s.FailedFiles, missing)
	}
	// strict: the missing file is fatal, and no zip is left behind.
	dir2 := t.TempDir()
	_, err = runMakeZips(t, strings.Replace(plan, dir, dir2, 1)+"      strict: true\n")
	if err == nil {
		t.Fatal("strict run succeeded")
	}
	if left, _ := os.ReadDir(dir2); len(left) != 0 {
		t.Errorf("a failed zip left %v", left)
	}
	// Already saved: nothing left to make.
	_, err = runMakeZips(t, plan)
	if err == nil {
		t.Error("made a zip that was already saved")
	}
}

func TestMakeZipsFromHTTPS(t *testing.T) {
	records, hit := embeddedHit(t)
	srv := httptest.NewServer(httpFiles(func(path string) (string, bool) {
		return "served " + path, !strings.HasSuffix(path, ".so.sym") // those answer 404
	}))
	defer srv.Close()
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - make-zips: {source: uploaded-symbols, records: %s, symbols_url: %s/bucket/, save_dir: %s, max_size: 2gb}\n", records, srv.URL, dir)
	r, err := runMakeZips(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	got := readZip(t, filepath.Join(dir, hit.zipName()))
	for name, content := range got {
		if content != "served /bucket/v1/"+name {
			t.Errorf("%s = %q", name, content)
		}
	}
	failed := r.Steps[0].FailedFiles
	if len(got) == 0 || len(failed) == 0 || len(got)+len(failed) != len(hit.Content.Added)+len(hit.Content.Existed) {
		t.Errorf("%d members + %d failed for %d entries", len(got), len(failed), len(hit.Content.Added)+len(hit.Content.Existed))
	}
	for _, f := range failed {
		if !strings.HasSuffix(f.Key, ".so.sym") || !strings.Contains(f.Error, "not found (404)") {
			t.Errorf("failed %+v", f)
		}
	}
}

// httpFiles serves body(path) with 200, or 404 when it says no.
type httpFiles func(path string) (string, bool)

func (h httpFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, body)
}

// TestMakeZipsSlowStorageTimesOut: a file whose body trickles in past the
// plan's timeout is retried, then reported; the other files make the zip.
func TestMakeZipsSlowStorageTimesOut(t *testing.T) {
	records, _ := emulator.EmbeddedRecords()
	path := filepath.Join(t.TempDir(), "records.json")
	os.WriteFile(path, records, 0o644)
	var hits struct{ Hits []uploadedHit }
	json.Unmarshal(records, &hits)
	emu := emulator.New(emulator.Options{Faults: []emulator.Fault{{Endpoint: "storage", Every: 1, Limit: 4, BodyRate: 1024}}})
	for _, h := range hits.Hits {
		for _, e := range append(h.Content.Added, h.Content.Existed...) {
			_, key, _ := strings.Cut(e, ",")
			emu.Put(strings.TrimPrefix(key, "v1/"), bytes.Repeat([]byte("s"), 8<<10))
		}
	}
	ts := httptest.NewServer(emu)
	defer ts.Close()
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\ntimeout: 300ms\nseed: 2\nsteps:\n  - make-zips: {source: uploaded-symbols, records: %s, symbols_url: %s/storage/, save_dir: %s, concurrency: 1}\n", path, ts.URL, dir)
	r, err := runMakeZips(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	// The first file is tried 4 times (1 + 3 retries), each trickling
	// 8 KiB at 1 KiB/s into a 300 ms timeout.
	if len(s.FailedFiles) != 1 || !strings.Contains(s.FailedFiles[0].Error, ": timeout: ") {
		t.Fatalf("failed files %+v", s.FailedFiles)
	}
	if len(s.Zips) != 1 || s.Zips[0].Files != 4 {
		t.Errorf("zips %+v: want the 4 other files", s.Zips)
	}
}

// TestMakeZipsS3FetchTimesOut: a fetch from S3 that stalls is limited by
// the plan's timeout; the file is reported and the zip made of the others.
func TestMakeZipsS3FetchTimesOut(t *testing.T) {
	records, hit := embeddedHit(t)
	backend := s3mem.New()
	backend.CreateBucket("symbols")
	keys := 0
	var stallKey string
	for _, entry := range append(append([]string(nil), hit.Content.Added...), hit.Content.Existed...) {
		_, key, _ := strings.Cut(entry, ",")
		body := []byte("contents of " + key + "\n")
		if _, err := backend.PutObject("symbols", "mirror/"+key, map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
		stallKey = key
		keys++
	}
	fake := gofakes3.New(backend).Server()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, stallKey) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) })
	// A guard only: without a timeout, the stalled fetch would wait for
	// ever, and the test would fail here instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\ntimeout: 200ms\nsteps:\n  - make-zips:\n      source: uploaded-symbols\n      records: %s\n      symbols_url: s3://symbols/mirror\n      endpoint: %s\n      anonymous: true\n      save_dir: %s\n      concurrency: 2\n",
		records, ts.URL, dir)
	r, _, err := runPlanAs[makeZipsReport](t, ctx, plan, nil, nil)
	if err != nil || ctx.Err() != nil {
		t.Fatalf("run error %v (guard %v)", err, ctx.Err())
	}
	s := r.Steps[0]
	if len(s.FailedFiles) != 1 || s.FailedFiles[0].Key != stallKey || !strings.HasSuffix(s.FailedFiles[0].Error, ": timed out after 200ms") {
		t.Errorf("failed files %+v; want %s timed out after 200ms", s.FailedFiles, stallKey)
	}
	if len(s.Zips) != 1 || s.Zips[0].Files != keys-1 {
		t.Errorf("zips %+v; want the %d other files", s.Zips, keys-1)
	}
}

// TestMakeZipsCountsEveryByteFetched: a body that breaks off is fetched
// again; downloaded_bytes counts every byte that came over the wire, the
// broken tries' too, as the server sent them.
func TestMakeZipsCountsEveryByteFetched(t *testing.T) {
	records, hit := embeddedHit(t)
	var mu sync.Mutex
	tries := map[string]int{}
	var sent int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tries[r.URL.Path]++
		first := tries[r.URL.Path] == 1
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, ".so.sym") {
			w.WriteHeader(http.StatusNotFound) // no body: nothing to count
			return
		}
		body := "served " + r.URL.Path
		if !first {
			n, _ := io.WriteString(w, body)
			atomic.AddInt64(&sent, int64(n))
			return
		}
		// The first try: the length of the whole, half of it, then the
		// connection ends.
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		n, _ := io.WriteString(w, body[:len(body)/2])
		atomic.AddInt64(&sent, int64(n))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer srv.Close()
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - make-zips: {source: uploaded-symbols, records: %s, symbols_url: %s/bucket/, save_dir: %s, max_size: 2gb}\n", records, srv.URL, dir)
	r, err := runMakeZips(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	if got := readZip(t, filepath.Join(dir, hit.zipName())); len(got) == 0 {
		t.Fatal("no members: the refetched files did not make the zip")
	}
	if s := r.Steps[0]; s.DownloadedBytes != atomic.LoadInt64(&sent) || s.DownloadedBytes == 0 {
		t.Errorf("downloaded_bytes %d, the server sent %d body bytes", s.DownloadedBytes, atomic.LoadInt64(&sent))
	}
}
