package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// built is the real binary, built once for the tests that run it, in a
// folder TestMain removes.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildTeckenrun returns the real binary, built on first use.
func buildTeckenrun(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "teckenrun-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "teckenrun")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// lastLine is the last line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return lines[len(lines)-1]
}

// TestCtrlCPrintsWhatFinishedAndExits130 runs the real binary, sends it
// SIGINT while a request hangs, and checks the wiring in main: a report
// that says interrupted, and exit status 130.
func TestCtrlCPrintsWhatFinishedAndExits130(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	dir := t.TempDir()
	bin := buildTeckenrun(t)
	emu := emulator.New(emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 2, Stall: time.Hour}}})
	for _, k := range testStoreKeys {
		emu.Put(k, []byte("MODULE\n"))
	}
	stalled := make(chan struct{})
	var once sync.Once
	var n int
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		second := n == 2
		mu.Unlock()
		if second { // the second request is the one that stalls
			once.Do(func() { close(stalled) })
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	for name, content := range downloadFiles {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte(downloadPlan(ts.URL, "      concurrency: 1\n")), 0o644)

	cmd := exec.Command(bin, "-format", "json", "-grace", "50ms", plan)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-stalled
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\nstderr: %s", err, exitInterrupted, stderr.String())
	}
	var r testReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("no JSON report after Ctrl-C: %v\n%s", err, stdout.String())
	}
	s := r.Steps[0]
	if !r.Interrupted || r.OK || s.Metrics.Requests != 1 || s.Metrics.Cancelled != 1 {
		t.Errorf("interrupted %v, ok %v, requests %d, cancelled %d", r.Interrupted, r.OK, s.Metrics.Requests, s.Metrics.Cancelled)
	}
	if s.Error == nil || *s.Error != "interrupted by SIGINT" {
		t.Errorf("step error %v", s.Error)
	}
	if got, want := lastLine(stderr.Bytes()), "teckenrun: interrupted by SIGINT; the report shows what finished"; got != want {
		t.Errorf("stderr ends %q, want %q", got, want)
	}
}

// stalledUpload starts the real binary (through a shell script if sh is
// given) on an upload that the emulator never answers, and returns once
// the upload is in flight.
func stalledUpload(t *testing.T, sh string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer, zip string) {
	t.Helper()
	bin := buildTeckenrun(t)
	emu, _ := uploadEmulator(t, emulator.Fault{Endpoint: "upload", Every: 1, Stall: time.Hour})
	uploading := make(chan struct{})
	var once sync.Once
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(uploading) })
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	zip, _ = goodZip(t, dir, "a.zip", 50)
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(plan, []byte(uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      delete_uploaded: true\n")), 0o644)
	args := []string{bin, "-format", "json", "-grace", "50ms", plan}
	if sh != "" {
		args = append([]string{"sh", "-c", sh}, args...)
	}
	cmd = exec.Command(args[0], args[1:]...)
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-uploading
	if !fileExists(zip + ".locked") {
		t.Error("no lock while uploading")
	}
	return cmd, stdout, stderr, zip
}

// TestSIGHUPIsAnInterruptThatExits129 hangs up on the real binary while
// it uploads: it reports what finished, releases its lock, keeps the zip
// and exits 129.
func TestSIGHUPIsAnInterruptThatExits129(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	cmd, stdout, stderr, zip := stalledUpload(t, "")
	cmd.Process.Signal(syscall.SIGHUP)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitHangup {
		t.Fatalf("exit %v, want %d\nstderr: %s", err, exitHangup, stderr.String())
	}
	var r uploadReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("no JSON report after SIGHUP: %v\n%s", err, stdout.String())
	}
	if s := r.Steps[0]; r.OK || s.Cancelled != 1 || s.Failed != 0 || s.Error == nil || *s.Error != "interrupted by SIGHUP" {
		t.Errorf("ok %v, cancelled %d, failed %d, error %v", r.OK, s.Cancelled, s.Failed, s.Error)
	}
	if got, want := lastLine(stderr.Bytes()), "teckenrun: interrupted by SIGHUP; the report shows what finished"; got != want {
		t.Errorf("stderr ends %q, want %q", got, want)
	}
	if l := lockFiles(t, filepath.Dir(zip)); len(l) != 0 {
		t.Errorf("locks left: %v", l)
	}
	if !fileExists(zip) {
		t.Error("an interrupted upload deleted its zip")
	}
}

// TestSIGHUPUnderNohupIsIgnored: started with SIGHUP ignored, as nohup
// does, the run goes on after a hangup; the Ctrl-C after it interrupts.
func TestSIGHUPUnderNohupIsIgnored(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	cmd, _, stderr, _ := stalledUpload(t, `trap "" HUP; exec "$0" "$@"`)
	cmd.Process.Signal(syscall.SIGHUP)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted || lastLine(stderr.Bytes()) != "teckenrun: interrupted by SIGINT; the report shows what finished" {
		t.Fatalf("exit %v, want %d\nstderr: %s", err, exitInterrupted, stderr.String())
	}
}

// TestInterruptedStepSaysSo: the table calls a step an interrupt cut
// short "interrupted", not FAILED, with the signal as its error, and the
// last line on stderr names the signal.
func TestInterruptedStepSaysSo(t *testing.T) {
	emu, _ := uploadEmulator(t, emulator.Fault{Endpoint: "upload", Every: 1, Stall: time.Hour})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel(interrupted{os.Interrupt}) // Ctrl-C while the upload is in flight
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	goodZip(t, dir, "a.zip", 51)
	path := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(path, []byte(uploadPlan(ts.URL, "      zips_dir: "+dir+"\n")), 0o644)
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-format", "table", "-grace", "10ms", path}, nil, &stdout, &stderr, terminal{})
	if code := exitCode(err, &stderr); code != exitInterrupted || !errors.Is(err, context.Canceled) {
		t.Errorf("exit %d for %v", code, err)
	}
	table := stdout.String()
	if !strings.Contains(table, "== upload (upload): interrupted in ") || !strings.Contains(table, "\nerror: interrupted by SIGINT\n") || strings.Contains(table, "FAILED") {
		t.Errorf("table:\n%s", table)
	}
	if got, want := stderr.String(), "teckenrun: interrupted by SIGINT; the report shows what finished\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
}
