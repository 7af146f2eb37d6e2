package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// TestCtrlCPrintsWhatFinishedAndExits130 runs the real binary, sends it
// SIGINT while a request hangs, and checks the wiring in main: a report
// that says interrupted, and exit status 130.
func TestCtrlCPrintsWhatFinishedAndExits130(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	dir := t.TempDir()
	bin := testBinary(t)
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
	if !bytes.Contains(stderr.Bytes(), []byte("teckenrun: interrupted")) {
		t.Errorf("stderr %q", stderr.String())
	}
}
