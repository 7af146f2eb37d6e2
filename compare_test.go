package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
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

func TestBaselineRegression(t *testing.T) {
	plan := baselinePlan(t)
	dir := filepath.Dir(plan)
	base := filepath.Join(dir, "base.json")
	if _, _, err := runArgs(t, terminal{}, "-host", stalled(t, 300*time.Millisecond), "-out", base, plan); err != nil {
		t.Fatal(err)
	}

	t.Run("same speed", func(t *testing.T) {
		// Two runs at once against equally slow servers share the
		// machine's load, so their figures differ by noise alone: well
		// within a 25% tolerance, which a 300 ms → 700 ms regression is not.
		outs := [2]string{filepath.Join(dir, "same-a.json"), filepath.Join(dir, "same-b.json")}
		urls := [2]string{stalled(t, 300*time.Millisecond), stalled(t, 300*time.Millisecond)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range outs {
			wg.Go(func() {
				_, _, errs[i] = runArgs(t, terminal{}, "-host", urls[i], "-out", outs[i], plan)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		table, _, err := runArgs(t, terminal{}, "compare", "-format", "table", "-tolerance", "25%", outs[0], outs[1])
		if err != nil {
			t.Fatalf("runs as fast as each other: %v\n%s", err, table)
		}
		stdout, _, _ := runArgs(t, terminal{}, "compare", "-format", "json", "-tolerance", "25%", outs[0], outs[1])
		var c Comparison
		if err := json.Unmarshal([]byte(stdout), &c); err != nil || c.Regressions != 0 || len(c.Rows) != 6 || c.TolerancePct != 25 {
			t.Errorf("comparison %+v (%v)", c, err)
		}
	})

	t.Run("slower", func(t *testing.T) {
		out := filepath.Join(dir, "slow.json")
		stdout, _, err := runArgs(t, terminal{}, "-host", stalled(t, 700*time.Millisecond), "-baseline", base, "-out", out, plan)
		if code := exitCode(err, &bytes.Buffer{}); code != exitThresholds {
			t.Fatalf("exit %d (%v), want 3", code, err)
		}
		var r Report
		json.Unmarshal([]byte(stdout), &r)
		regressed := map[string]bool{}
		for _, row := range r.Baseline.Rows {
			if row.Regression {
				regressed[row.Metric] = true
				if worse := *row.ChangePct; (row.Metric == "rate" && worse > -10) || (row.Metric != "rate" && worse < 10) {
					t.Errorf("%s regressed from %v to %v (%v%%)", row.Metric, *row.Old, *row.New, *row.ChangePct)
				}
			}
		}
		if !regressed["p50"] || !regressed["p95"] || !regressed["rate"] || regressed["right_pct"] || regressed["error_ratio"] {
			t.Errorf("regressed: %v", regressed)
		}
		// teckenrun compare says the same of the two saved reports.
		table, _, err := runArgs(t, terminal{}, "compare", "-format", "table", base, out)
		if code := exitCode(err, &bytes.Buffer{}); code != exitThresholds || !strings.Contains(table, "| dl   | p50         | ") || !strings.Contains(table, "REGRESSION") {
			t.Errorf("compare: exit %d\n%s", code, table)
		}
		// The other way round it is an improvement: exit 0.
		if _, _, err := runArgs(t, terminal{}, "compare", out, base); err != nil {
			t.Errorf("compare NEW OLD: %v", err)
		}
		// Within a tolerance of 10000%, nothing regressed.
		if _, _, err := runArgs(t, terminal{}, "compare", "-tolerance", "10000%", base, out); err != nil {
			t.Errorf("compare -tolerance 10000%%: %v", err)
		}
	})

	t.Run("another plan", func(t *testing.T) {
		other := filepath.Join(dir, "other.yaml")
		raw, _ := os.ReadFile(plan)
		os.WriteFile(other, append(raw, []byte("  - name: extra\n    download: {csv: q.csv}\n")...), 0o644)
		url := stalled(t, time.Millisecond)
		_, _, err := runArgs(t, terminal{}, "-host", url, "-baseline", base, other)
		if code := exitCode(err, &bytes.Buffer{}); code != exitUsage || !strings.Contains(err.Error(), "-baseline-any-plan") {
			t.Fatalf("a baseline of another plan: exit %d, %v", code, err)
		}
		stdout, _, err := runArgs(t, terminal{}, "-host", url, "-baseline", base, "-baseline-any-plan", "-tolerance", "10000%", other)
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
