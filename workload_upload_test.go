package main

import (
	"archive/zip"
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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

const testToken = "5f0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"

// uploadReport is an upload step's JSON as a script reads it.
type uploadReport struct {
	OK    bool `json:"ok"`
	Steps []struct {
		Kind  string  `json:"kind"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		UploadResult
		Zips []json.RawMessage `json:"zips"`
	} `json:"steps"`
}

func uploadEmulator(t *testing.T, faults ...emulator.Fault) (*emulator.Server, *httptest.Server) {
	t.Helper()
	emu := emulator.New(emulator.Options{KeepLog: true, Faults: faults, Tokens: map[string]emulator.Token{
		testToken: {User: "ci@example.com", Permissions: []string{emulator.PermUpload, emulator.PermViewAll}}}})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	return emu, ts
}

// writeZip writes a zip of members to dir/name.
func writeZip(t *testing.T, dir, name string, members map[string][]byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for k, v := range members {
		w, _ := zw.Create(k)
		w.Write(v)
	}
	zw.Close()
	f.Close()
	return path
}

func goodZip(t *testing.T, dir, name string, seed uint64) (string, breakpad.Module) {
	m := breakpad.Synthesize(rand.New(rand.NewPCG(seed, 1)), fmt.Sprintf("up%d", seed), "windows", 8)
	return writeZip(t, dir, name, map[string][]byte{m.Key(): m.Bytes()}), m
}

func runUpload(t *testing.T, ctx context.Context, plan string, stdin io.Reader) (*uploadReport, string, error) {
	t.Helper()
	return runPlanAs[uploadReport](t, ctx, plan, nil, stdin)
}

func uploadPlan(host, extra string) string {
	return fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nseed: 1\nsteps:\n  - upload:\n%s", host, extra)
}

func lockFiles(t *testing.T, dir string) []string {
	t.Helper()
	locks, _ := filepath.Glob(filepath.Join(dir, "*.locked"))
	return locks
}

func TestUploadErrorsSurfaceWithTheServersText(t *testing.T) {
	_, ts := uploadEmulator(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notazip.zip"), []byte("garbage"), 0o644)
	writeZip(t, dir, "v1prefix.zip", map[string][]byte{"v1/xul.pdb/ABC/xul.sym": []byte("x")})
	writeZip(t, dir, "badchar.zip", map[string][]byte{"x.pdb/ABC/p%eter.sym": []byte("x")})
	writeZip(t, dir, "qcom.zip", map[string][]byte{"qcom/proprietary/a/b": []byte("x")})
	good, _ := goodZip(t, dir, "good.zip", 1)
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 10\n      delete_uploaded: true\n      backoff: 1ms\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "step upload (upload) failed: 4 of 5 uploads failed") {
		t.Fatalf("run error %v", err)
	}
	s := r.Steps[0]
	if s.Succeeded != 1 || s.Failed != 4 || *s.Error != "4 of 5 uploads failed" {
		t.Errorf("succeeded %d, failed %d, error %v", s.Succeeded, s.Failed, *s.Error)
	}
	want := map[string]string{
		"notazip.zip":  "400 File is not a zip file",
		"v1prefix.zip": "400 Unrecognized file pattern. Should only be <module>/<hex>/<file> or <name>-symbols.txt and nothing else. (First unrecognized pattern was v1/xul.pdb/ABC/xul.sym)",
		"badchar.zip":  "400 Invalid character in filename 'x.pdb/ABC/p%eter.sym'",
		"qcom.zip":     "400 Content of archive file contains the snippet 'qcom/proprietary' which is not allowed",
	}
	for _, u := range s.Uploads {
		name := filepath.Base(u.File)
		if w, ok := want[name]; ok {
			if u.Error == nil || *u.Error != w || u.Status != 400 || u.Attempts != 1 {
				t.Errorf("%s: status %d, attempts %d, error %v; want %q", name, u.Status, u.Attempts, u.Error, w)
			}
			if !fileExists(filepath.Join(dir, name)) {
				t.Errorf("%s was deleted after a failed upload", name)
			}
		} else if u.Error != nil || u.UploadID == nil {
			t.Errorf("%s: %v", name, *u.Error)
		}
	}
	if fileExists(good) {
		t.Error("the uploaded zip was not deleted")
	}
	if l := lockFiles(t, dir); len(l) != 0 {
		t.Errorf("locks left: %v", l)
	}
}

func TestUploadRetries(t *testing.T) {
	emu, ts := uploadEmulator(t,
		emulator.Fault{Endpoint: "upload", Every: 1, Limit: 1, Status: 429, RetryAfter: "1"},
		emulator.Fault{Endpoint: "upload", Every: 1, Limit: 2, Status: 502},
	)
	dir := t.TempDir()
	goodZip(t, dir, "a.zip", 2)
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      backoff: 1ms\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := r.Steps[0].Uploads[0]
	if u.Attempts != 4 || u.Status != 201 || r.Steps[0].Retries != 3 {
		t.Errorf("attempts %d, status %d, retries %d; want 4 attempts (429, 502, 502, 201)", u.Attempts, u.Status, r.Steps[0].Retries)
	}
	if u.DurationS < 1 {
		t.Errorf("took %.3fs: the 429's Retry-After: 1 was not honoured", u.DurationS)
	}
	c := emu.Counts()
	if c[emulator.CountKey{Endpoint: "upload", Status: 429}] != 1 || c[emulator.CountKey{Endpoint: "upload", Status: 502}] != 2 || c[emulator.CountKey{Endpoint: "upload", Status: 201}] != 1 {
		t.Errorf("server counts %v", c)
	}
	// Retries run out: the last status is reported.
	_, ts2 := uploadEmulator(t, emulator.Fault{Endpoint: "upload", Every: 1, Status: 503})
	r, _, err = runUpload(t, context.Background(), uploadPlan(ts2.URL, "      zips_dir: "+dir+"\n      backoff: 1ms\n      retries: 2\n"), nil)
	if err == nil {
		t.Fatal("want a failure")
	}
	if u := r.Steps[0].Uploads[0]; u.Attempts != 3 || u.Status != 503 || *u.Error != "503 Service Unavailable" {
		t.Errorf("attempts %d, status %d, error %v", u.Attempts, u.Status, *u.Error)
	}
	if l := lockFiles(t, dir); len(l) != 0 {
		t.Errorf("locks left: %v", l)
	}
}

func TestUploadLocks(t *testing.T) {
	_, ts := uploadEmulator(t)
	dir := t.TempDir()
	goodZip(t, dir, "mine.zip", 3)
	other, _ := goodZip(t, dir, "theirs.zip", 4)
	os.WriteFile(other+".locked", []byte("locked 1\n"), 0o644) // another uploader has it
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 5\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	if s.Succeeded != 1 || s.Skipped != 1 || s.SkippedUploads[0].Reason != "locked by another run" {
		t.Errorf("succeeded %d, skipped %+v", s.Succeeded, s.SkippedUploads)
	}
	if l := lockFiles(t, dir); len(l) != 1 || l[0] != other+".locked" {
		t.Errorf("locks %v: ours must be gone, theirs kept", l)
	}
}

func TestUploadInterruptedRemovesItsLock(t *testing.T) {
	emu, _ := uploadEmulator(t, emulator.Fault{Endpoint: "upload", Every: 1, Stall: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if started.CompareAndSwap(false, true) {
			cancel() // Ctrl-C while the upload is in flight
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	zipPath, _ := goodZip(t, dir, "a.zip", 5)
	path := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(path, []byte(uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      delete_uploaded: true\n")), 0o644)
	var stdout bytes.Buffer
	err := run(ctx, []string{"-format", "json", "-grace", "10ms", path}, nil, &stdout, io.Discard, terminal{})
	if exitCode(err, io.Discard) != exitInterrupted {
		t.Fatalf("run error %v, want interrupted", err)
	}
	var r uploadReport
	json.Unmarshal(stdout.Bytes(), &r)
	if s := r.Steps[0]; s.Cancelled != 1 || s.Failed != 0 || s.Succeeded != 0 {
		t.Errorf("cancelled %d, failed %d, succeeded %d", s.Cancelled, s.Failed, s.Succeeded)
	}
	if l := lockFiles(t, dir); len(l) != 0 {
		t.Errorf("locks left: %v", l)
	}
	if !fileExists(zipPath) {
		t.Error("an interrupted upload deleted its zip")
	}
}

func TestUploadedMembersAreDownloadable(t *testing.T) {
	emu, ts := uploadEmulator(t)
	dir := t.TempDir()
	_, m := goodZip(t, dir, "a.zip", 6)
	plan := uploadPlan(ts.URL, "      zips_dir: "+dir+"\n") + "  - download: {uploaded: true}\n"
	r, _, err := runUpload(t, context.Background(), plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := emu.Log()[len(emu.Log())-1]
	if last.Path != "/"+m.Key() || last.Status != 302 || !r.OK {
		t.Errorf("last request %s → %d, want /%s → 302 (ok %v)", last.Path, last.Status, m.Key(), r.OK)
	}
}

func TestUploadByURLAndIndex(t *testing.T) {
	emu, ts := uploadEmulator(t)
	dir := t.TempDir()
	zipPath, _ := goodZip(t, dir, "remote.zip", 7)
	big := make([]byte, 4096)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved.zip":
			http.Redirect(w, r, "/remote.zip", http.StatusMovedPermanently)
		case "/remote.zip", "/dir/r.zip", "/dir2/r.zip":
			http.ServeFile(w, r, zipPath)
		case "/big.zip":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case "/dir/index.json", "/dir2/index.json":
			fmt.Fprint(w, `{"files": [{"uri": "r.zip", "size": 100}, {"uri": "big.zip", "size": 99999999}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()
	extra := fmt.Sprintf("      urls: [%s/moved.zip, %s/big.zip, %s/dir/index.json, %s/dir2/index.json, %s/gone.zip]\n      max_size: 2kb\n      try: true\n      concurrency: 3\n",
		files.URL, files.URL, files.URL, files.URL, files.URL)
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, extra), nil)
	if err == nil {
		t.Fatal("gone.zip should fail the step")
	}
	s := r.Steps[0]
	// Two index.json URLs are resolved at once, each with its own random
	// source, and both pick the file under max_size.
	if s.Succeeded != 3 || s.Failed != 1 || s.Skipped != 1 || !strings.Contains(s.SkippedUploads[0].Reason, "over max_size 2kb") {
		t.Errorf("succeeded %d, failed %d, skipped %+v", s.Succeeded, s.Failed, s.SkippedUploads)
	}
	for _, u := range s.Uploads {
		if strings.HasSuffix(u.URL, "gone.zip") && (u.Error == nil || !strings.Contains(*u.Error, "404")) {
			t.Errorf("gone.zip: %v", u.Error)
		}
	}
	ups := emu.Uploads()
	names := map[string]bool{}
	for _, u := range ups {
		names[u.Filename] = u.Try
	}
	if len(ups) != 3 || !names["moved.zip"] || !names["r.zip"] {
		t.Errorf("server uploads %+v", ups)
	}
}

func TestUploadNeedsItsToken(t *testing.T) {
	for _, tt := range []struct{ plan, want string }{
		{"host: http://127.0.0.1:1\nsteps:\n  - upload: {zips_dir: x}\n", "plan.yaml: auth_token_env: is required by steps[0].upload"},
		{"host: http://127.0.0.1:1\nauth_token_env: TECKENRUN_UNSET_TOKEN\nsteps:\n  - upload: {zips_dir: x}\n",
			"plan.yaml: auth_token_env: environment variable TECKENRUN_UNSET_TOKEN is not set"},
		{"host: https://symbols.mozilla.org\nauth_token_env: HOME\nsteps:\n  - upload: {zips_dir: x}\n",
			"steps[0].upload: symbols.mozilla.org is production: writing to it needs allow_production_writes: true"},
		{"host: http://127.0.0.1:1\nauth_token_env: HOME\nsteps:\n  - upload: {zips_dir: x, urls: [https://a/b.zip]}\n", "give one of zips_dir, urls and urls_from"},
		{"host: http://127.0.0.1:1\nauth_token_env: HOME\nsteps:\n  - upload: {urls_from: list-zips}\n", "steps[0].upload.urls_from: needs zip URLs from an earlier list-zips step, and none runs before this one"},
	} {
		p, err := ParsePlan(strings.NewReader(tt.plan), "plan.yaml")
		if err == nil {
			err = p.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.plan, err, tt.want)
		}
	}
}

func TestTokenIsNeverPrinted(t *testing.T) {
	_, ts := uploadEmulator(t, emulator.Fault{Endpoint: "upload", Every: 2, Status: 400})
	dir := t.TempDir()
	goodZip(t, dir, "a.zip", 8)
	goodZip(t, dir, "b.zip", 9)
	_, out, _ := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 2\n"), nil)
	var table bytes.Buffer
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte(uploadPlan(ts.URL, "      zips_dir: "+dir+"\n")), 0o644)
	run(context.Background(), []string{"-format", "table", p}, nil, &table, &table, terminal{})
	run(context.Background(), []string{"-validate", p}, nil, &table, &table, terminal{})
	if strings.Contains(out+table.String(), testToken) {
		t.Error("the Auth-Token appears in the output")
	}
}

// TestUploadURLsFromStdinOnATerminal: reading URLs from a terminal says
// so on stderr, since nothing else would tell the user what teckenrun is
// waiting for; piped stdin reads silently.
func TestUploadURLsFromStdinOnATerminal(t *testing.T) {
	emu, ts := uploadEmulator(t)
	zipPath, _ := goodZip(t, t.TempDir(), "remote.zip", 11)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, zipPath) }))
	defer files.Close()
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(plan, []byte(uploadPlan(ts.URL, "      urls_from: stdin\n")), 0o644)
	const prompt = "reading URLs from stdin (end with Ctrl-D)…"
	for _, tty := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"-format", "json", plan}, strings.NewReader(files.URL+"/remote.zip\n"), &stdout, &stderr, terminal{stdin: tty})
		if err != nil {
			t.Fatalf("stdin a terminal %v: %v", tty, err)
		}
		if got := strings.Contains(stderr.String(), prompt); got != tty {
			t.Errorf("stdin a terminal %v: stderr %q", tty, stderr.String())
		}
	}
	if n := len(emu.Uploads()); n != 2 {
		t.Errorf("%d uploads, want 2", n)
	}
}

// TestUploadAnswerCutOffIsNotRetried: once the server has answered an
// upload, a body that breaks off is not retried (the server may have
// accepted the zip): the status is recorded, the upload fails and the zip
// is kept. An answer that never comes is retried, and its error says
// which timeout ran out.
func TestUploadAnswerCutOffIsNotRetried(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	var hits atomic.Int32
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"upload": {`))
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	defer cut.Close()
	dir := t.TempDir()
	zipPath, _ := goodZip(t, dir, "a.zip", 21)
	r, _, err := runUpload(t, context.Background(), uploadPlan(cut.URL, "      zips_dir: "+dir+"\n      delete_uploaded: true\n      backoff: 1ms\n"), nil)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	u := r.Steps[0].Uploads[0]
	if u.Status != 201 || u.Attempts != 1 || u.Error == nil || !strings.Contains(*u.Error, "reading the answer: unexpected EOF") {
		t.Errorf("status %d, attempts %d, error %v", u.Status, u.Attempts, u.Error)
	}
	if !fileExists(zipPath) || hits.Load() != 1 {
		t.Errorf("zip kept %v; server saw %d uploads, want 1", fileExists(zipPath), hits.Load())
	}

	stall, stalled := stallServer(t, false)
	r, _, err = runUpload(t, context.Background(), uploadPlan(stall.URL, "      zips_dir: "+dir+"\n      timeout: 100ms\n      retries: 1\n      backoff: 1ms\n"), nil)
	if err == nil {
		t.Fatal("want the step to fail")
	}
	u = r.Steps[0].Uploads[0]
	if u.Status != 0 || u.Attempts != 2 || u.Error == nil || *u.Error != "timed out after 100ms" {
		t.Errorf("status %d, attempts %d, error %v; want 2 attempts timed out after 100ms", u.Status, u.Attempts, u.Error)
	}
	stall.Close()
	if n := stalled.Load(); n < 1 || n > 2 {
		t.Errorf("server saw %d uploads for 2 attempts", n)
	}
}

// TestUploadIndexJSONTimesOutAndRetries: the GET of an index.json has
// the plan's timeout and User-Agent, and is retried as uploads are.
func TestUploadIndexJSONTimesOutAndRetries(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	var hits atomic.Int32
	var agents sync.Map
	release := make(chan struct{})
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		agents.Store(r.UserAgent(), true)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(index.Close)
	t.Cleanup(func() { close(release) })
	// A guard only: without a timeout of its own, the GET would wait for
	// ever, and the test would fail here instead of hanging.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan := strings.Replace(uploadPlan("http://127.0.0.1:1", "      urls: ["+index.URL+"/dir/index.json]\n      retries: 2\n      backoff: 1ms\n"),
		"seed: 1\n", "seed: 1\ntimeout: 100ms\n", 1)
	r, _, err := runUpload(t, ctx, plan, nil)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("run error %v (guard %v), want the step to fail", err, ctx.Err())
	}
	s := r.Steps[0]
	want := "GET " + index.URL + "/dir/index.json: timed out after 100ms"
	if s.Failed != 1 || s.Uploads[0].Error == nil || *s.Uploads[0].Error != want {
		t.Errorf("failed %d, uploads %+v; want the error %q", s.Failed, s.Uploads, want)
	}
	index.Close()
	if n := hits.Load(); n < 1 || n > 3 {
		t.Errorf("index.json was asked %d times for 3 attempts", n)
	}
	agents.Range(func(k, _ any) bool {
		if ua := k.(string); ua != "teckenrun/"+version {
			t.Errorf("User-Agent %q", ua)
		}
		return true
	})
}

// TestUploadIndexJSONInterrupted: an index.json GET still waiting when
// an interrupt's grace period runs out counts as cancelled, not failed.
func TestUploadIndexJSONInterrupted(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // Ctrl-C while the GET waits
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(index.Close)
	t.Cleanup(func() { close(release) })
	r, _, err := runPlanAs[uploadReport](t, ctx, uploadPlan("http://127.0.0.1:1", "      urls: ["+index.URL+"/index.json]\n"), nil, nil, "-grace", "10ms")
	if err == nil || exitCode(err, io.Discard) != exitInterrupted {
		t.Fatalf("run error %v, want interrupted", err)
	}
	if s := r.Steps[0]; s.Cancelled != 1 || s.Failed != 0 || len(s.Uploads) != 0 {
		t.Errorf("cancelled %d, failed %d, uploads %+v", s.Cancelled, s.Failed, s.Uploads)
	}
}

// TestUploadMaxSizeIsInclusive: max_size skips what is larger; a zip of
// exactly max_size is uploaded, from zips_dir, by URL and from an
// index.json.
func TestUploadMaxSizeIsInclusive(t *testing.T) {
	emu, ts := uploadEmulator(t)
	dir := t.TempDir()
	exact, m := goodZip(t, dir, "exact.zip", 31)
	bigger := writeZip(t, dir, "bigger.zip", map[string][]byte{m.Key(): m.Bytes(), "extra.pdb/ABC/extra.sym": []byte("MODULE windows x86 ABC extra.pdb\n")})
	info, _ := os.Stat(exact)
	biggerInfo, _ := os.Stat(bigger)
	size := info.Size()
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/index.json":
			fmt.Fprintf(w, `{"files": [{"uri": "bigger.zip", "size": %d}, {"uri": "exact.zip", "size": %d}]}`, biggerInfo.Size(), size)
		default:
			http.ServeFile(w, r, filepath.Join(dir, filepath.Base(r.URL.Path)))
		}
	}))
	defer files.Close()
	for _, tt := range []struct{ name, source string }{
		{"zips_dir", "zips_dir: " + dir + "\n      number: 2\n"},
		{"urls", fmt.Sprintf("urls: [%s/exact.zip, %s/bigger.zip]\n", files.URL, files.URL)},
		{"index.json", "urls: [" + files.URL + "/index.json]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(emu.Uploads())
			r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, fmt.Sprintf("      %s      max_size: %d\n", tt.source, size)), nil)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Steps[0]
			if s.Succeeded != 1 || !strings.HasSuffix(s.Uploads[0].File+s.Uploads[0].URL, "exact.zip") {
				t.Errorf("succeeded %d, uploads %+v; want exact.zip uploaded", s.Succeeded, s.Uploads)
			}
			for _, sk := range s.SkippedUploads {
				if !strings.HasSuffix(sk.File+sk.URL, "bigger.zip") {
					t.Errorf("skipped %+v", sk)
				}
			}
			if got := len(emu.Uploads()) - before; got != 1 {
				t.Errorf("server received %d uploads, want 1", got)
			}
		})
	}
}

// TestUploadAcceptedButNotDeletedStillSucceeded: when a zip Tecken
// accepted cannot be deleted (delete_uploaded), the upload counts as
// succeeded (its bytes and symbols too) and the step fails with why.
func TestUploadAcceptedButNotDeletedStillSucceeded(t *testing.T) {
	emu, _ := uploadEmulator(t)
	dir := t.TempDir()
	good, _ := goodZip(t, dir, "good.zip", 1)
	// While Tecken takes the zip, a directory with a file in it takes the
	// zip's place: removing it fails.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if os.Remove(good) == nil && os.Mkdir(good, 0o755) == nil {
			os.WriteFile(filepath.Join(good, "keep"), nil, 0o644)
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      delete_uploaded: true\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "uploaded, but deleting it") {
		t.Fatalf("run error %v, want the step to fail on the delete", err)
	}
	s := r.Steps[0]
	if s.Succeeded != 1 || s.Failed != 0 || s.BytesTotal == 0 || len(s.Uploads) != 1 {
		t.Fatalf("succeeded %d, failed %d, bytes %d, %d records: want the accepted upload counted", s.Succeeded, s.Failed, s.BytesTotal, len(s.Uploads))
	}
	if u := s.Uploads[0]; u.Error != nil || u.UploadID == nil || u.DeleteError == nil || !strings.Contains(*u.DeleteError, "directory not empty") {
		t.Errorf("record error %v, upload id %v, delete error %v", u.Error, u.UploadID, u.DeleteError)
	}
}
