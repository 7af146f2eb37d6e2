package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// baselinePlan writes a download plan whose host each run gives with
// -host, so that every run is of the same plan (the same plan_sha256).
func baselinePlan(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range downloadFiles {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	path := filepath.Join(dir, "plan.yaml")
	plan := "host: http://127.0.0.1:9\nseed: 3\nsteps:\n  - name: dl\n    download: {csv: q.csv, concurrency: 10}\n"
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// stalled starts an emulator that answers every download after d.
func stalled(t *testing.T, d time.Duration) string {
	_, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: d}}})
	return url
}

// TestBaselineRegression runs one plan three times, against a fast, a
// slow and again a fast server: a run slower than its baseline is a
// regression (exit 3), one faster is not. The servers differ by far more
// than any load on the test machine can, in the direction that matters.
func TestBaselineRegression(t *testing.T) {
	plan := baselinePlan(t)
	dir := filepath.Dir(plan)
	fast, slow := filepath.Join(dir, "fast.json"), filepath.Join(dir, "slow.json")
	if _, _, err := runArgs(t, terminal{}, "-host", stalled(t, 100*time.Millisecond), "-out", fast, plan); err != nil {
		t.Fatal(err)
	}

	t.Run("slower", func(t *testing.T) {
		stdout, _, err := runArgs(t, terminal{}, "-host", stalled(t, 1500*time.Millisecond), "-baseline", fast, "-out", slow, plan)
		if code := exitCode(err, &bytes.Buffer{}); code != exitThresholds {
			t.Fatalf("exit %d (%v), want 3", code, err)
		}
		var r Report
		json.Unmarshal([]byte(stdout), &r)
		regressed := map[string]bool{}
		for _, row := range r.Baseline.Rows {
			if row.Regression {
				regressed[row.Metric] = true
			}
		}
		if !regressed["p50"] || !regressed["p95"] || !regressed["rate"] || regressed["right_pct"] || regressed["error_ratio"] {
			t.Errorf("regressed: %v", regressed)
		}
		// teckenrun compare says the same of the two saved reports.
		table, _, err := runArgs(t, terminal{}, "compare", "-format", "table", fast, slow)
		if code := exitCode(err, &bytes.Buffer{}); code != exitThresholds || !strings.Contains(table, "| dl   | p50         | ") || !strings.Contains(table, "REGRESSION") {
			t.Errorf("compare: exit %d\n%s", code, table)
		}
		// Within a tolerance of 10000%, nothing regressed.
		if _, _, err := runArgs(t, terminal{}, "compare", "-tolerance", "10000%", fast, slow); err != nil {
			t.Errorf("compare -tolerance 10000%%: %v", err)
		}
	})

	t.Run("faster", func(t *testing.T) {
		stdout, _, err := runArgs(t, terminal{}, "-host", stalled(t, 100*time.Millisecond), "-baseline", slow, plan)
		if err != nil {
			t.Fatalf("a run faster than its baseline: %v", err)
		}
		var r Report
		json.Unmarshal([]byte(stdout), &r)
		if r.Baseline == nil || r.Baseline.Regressions != 0 || len(r.Baseline.Rows) != 6 || r.Baseline.TolerancePct != 10 {
			t.Errorf("comparison %+v", r.Baseline)
		}
	})

	t.Run("another plan", func(t *testing.T) {
		other := filepath.Join(dir, "other.yaml")
		raw, _ := os.ReadFile(plan)
		os.WriteFile(other, append(raw, []byte("  - name: extra\n    download: {csv: q.csv}\n")...), 0o644)
		url := stalled(t, time.Millisecond)
		_, _, err := runArgs(t, terminal{}, "-host", url, "-baseline", fast, other)
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage || !strings.Contains(err.Error(), "-baseline-any-plan") {
			t.Fatalf("a baseline of another plan: exit %d, %v", code, err)
		}
		stdout, _, err := runArgs(t, terminal{}, "-host", url, "-baseline", fast, "-baseline-any-plan", "-tolerance", "10000%", other)
		if err != nil {
			t.Fatal(err)
		}
		var r Report
		json.Unmarshal([]byte(stdout), &r)
		if m := r.Baseline.MissingSteps; len(m) != 1 || m[0].Step != "extra" || m[0].In != "run" {
			t.Errorf("missing steps %+v", m)
		}
	})
}

// TestCompareRules: the tolerance is relative to the baseline, lower is
// better but for the rate and the headline shares, and a change below a
// figure's noise floor is never a regression.
func TestCompareRules(t *testing.T) {
	report := func(latency time.Duration, n int, errors int) *Report {
		m := metrics.New(false)
		for i := range n {
			s := metrics.Sample{Sent: t0.Add(time.Duration(i) * 10 * time.Millisecond), Status: 200, Attempts: 1}
			if i < errors {
				s.Status, s.Class = 0, metrics.ClassRefused
			}
			s.Done = s.Sent.Add(latency)
			m.Add(s)
		}
		return &Report{Steps: []StepReport{{Kind: "download", Name: "dl", Ran: true, result: &DownloadResult{Metrics: m.Summary()}}}}
	}
	verdicts := func(c *Comparison) map[string]bool {
		v := map[string]bool{}
		for _, r := range c.Rows {
			v[r.Metric] = r.Regression
		}
		return v
	}
	for _, tt := range []struct {
		name      string
		old, new  *Report
		tolerance float64
		want      map[string]bool
	}{
		{"10% slower at 10% tolerance", report(100*time.Millisecond, 100, 0), report(109*time.Millisecond, 100, 0), 0.1,
			map[string]bool{"p50": false, "p95": false, "p99": false}},
		{"20% slower", report(100*time.Millisecond, 100, 0), report(120*time.Millisecond, 100, 0), 0.1,
			map[string]bool{"p50": true, "p95": true, "p99": true}},
		{"slower by less than 1 ms", report(2*time.Millisecond, 100, 0), report(2900*time.Microsecond, 100, 0), 0.1,
			map[string]bool{"p50": false, "p99": false}},
		{"errors from none", report(time.Millisecond, 1000, 0), report(time.Millisecond, 1000, 5), 0.1,
			map[string]bool{"error_ratio": true}},
		{"errors below the floor", report(time.Millisecond, 10000, 0), report(time.Millisecond, 10000, 5), 0.1,
			map[string]bool{"error_ratio": false}},
		{"faster", report(100*time.Millisecond, 100, 0), report(50*time.Millisecond, 100, 0), 0.1,
			map[string]bool{"p50": false, "rate": false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := verdicts(compareReports(tt.old, tt.new, "old.json", tt.tolerance))
			for metric, want := range tt.want {
				if v, ok := got[metric]; !ok || v != want {
					t.Errorf("%s: regression %v (compared: %v), want %v", metric, v, ok, want)
				}
			}
		})
	}
	// A partial baseline is compared, with notes that say so.
	old := report(100*time.Millisecond, 10, 0)
	old.Interrupted, old.Steps[0].OK = true, false
	c := compareReports(old, report(100*time.Millisecond, 10, 0), "old.json", 0.1)
	if len(c.Notes) != 2 || !strings.Contains(c.Notes[0], "interrupted") || !strings.Contains(c.Notes[1], "step dl failed in the baseline") {
		t.Errorf("notes %q", c.Notes)
	}
	for _, bad := range []string{"10", "NaN", "-5%", "lots"} {
		var tol tolerance
		if err := tol.Set(bad); err == nil {
			t.Errorf("-tolerance %s was accepted", bad)
		}
	}
}

func TestCompareUnusableInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{"), 0o644)
	for _, args := range [][]string{
		{"compare", "testdata/report.json"},
		{"compare", bad, "testdata/report.json"},
		{"compare", "testdata/report.json", filepath.Join(dir, "missing.json")},
		{"compare", "-tolerance", "lots", "testdata/report.json", "testdata/report.json"},
	} {
		_, _, err := runArgs(t, terminal{}, args...)
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage {
			t.Errorf("%v: exit %d (%v), want 2", args, code, err)
		}
	}
	// A report compared with itself has no regression.
	stdout, _, err := runArgs(t, terminal{}, "compare", "testdata/report.json", "testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var c Comparison
	if err := json.Unmarshal([]byte(stdout), &c); err != nil || c.Regressions != 0 || len(c.Rows) == 0 || len(c.MissingSteps) != 0 {
		t.Errorf("comparison %+v (%v)", c, err)
	}
}
