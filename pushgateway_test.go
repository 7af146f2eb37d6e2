package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startPushgateway starts a real Pushgateway (Debian's
// prometheus-pushgateway) on a free loopback port and returns its URL. The
// test skips where the binary is not installed.
func startPushgateway(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-pushgateway")
	if err != nil {
		t.Skip("prometheus-pushgateway is not installed, so the Pushgateway round trip is skipped " +
			"(apt-get install prometheus-pushgateway; .ci/run installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logPath := filepath.Join(t.TempDir(), "pushgateway.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	url := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	// Readiness: poll /-/ready, a bounded number of times.
	for range 200 {
		if resp, err := client.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case err := <-exited:
			logs, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus-pushgateway exited: %v\n%s", err, logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	logs, _ := os.ReadFile(logPath)
	t.Fatalf("prometheus-pushgateway on %s was not ready after 10s\n%s", addr, logs)
	return ""
}

// gatewayMetrics reads the Pushgateway's /metrics in the text format, with
// the job and instance labels it adds checked and left out.
func gatewayMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	return parseText(t, resp.Body, map[string]string{"job": "teckenrun", "instance": ""})
}

// TestPushgatewayRoundTrip pushes runs to a real Pushgateway with -push and
// reads the metrics back from it: the values are the reports', grouped by
// plan (a name with a slash and a space), and a second push of the plan
// replaces the first.
func TestPushgatewayRoundTrip(t *testing.T) {
	gw := startPushgateway(t)
	pushRun := func(code int, thresholds ...string) *Report {
		t.Helper()
		path := thresholdPlan(t, thresholds...)
		raw, _ := os.ReadFile(path)
		os.WriteFile(path, append([]byte("name: nightly/download check\n"), raw...), 0o644)
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), []string{"-format", "json", "-push", gw, path}, strings.NewReader(""), &stdout, &stderr, terminal{})
		if got := exitCode(err, &stderr); got != code {
			t.Fatalf("exit %d, want %d; stderr: %s", got, code, stderr.String())
		}
		var r Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return &r
	}

	first := pushRun(exitThresholds, "download.requests > 100000", "download.p95 < 30s")
	got := gatewayMetrics(t, gw)
	checkSamples(t, got, first)
	failed := sampleKey("teckenrun_threshold_ok", "plan", "nightly/download check", "threshold", "download.requests > 100000")
	if v, ok := got[failed]; !ok || v != 0 {
		t.Errorf("%s = %v (%v), want 0", failed, v, ok)
	}
	if v := got[sampleKey("push_time_seconds", "plan", "nightly/download check")]; v < float64(first.EndedAt.Unix()) {
		t.Errorf("push_time_seconds %v is before the run ended (%v)", v, first.EndedAt)
	}
	if v, ok := got[sampleKey("push_failure_time_seconds", "plan", "nightly/download check")]; !ok || v != 0 {
		t.Errorf("push_failure_time_seconds %v (%v): the gateway refused a push", v, ok)
	}

	second := pushRun(exitOK, "download.errors == 0")
	got = gatewayMetrics(t, gw)
	checkSamples(t, got, second)
	if v, ok := got[failed]; ok {
		t.Errorf("the first run's threshold is still there after the second push (%v): a push must replace the plan's metrics", v)
	}
}
