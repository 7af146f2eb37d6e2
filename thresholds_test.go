package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestThresholdErrorsNameTheLine(t *testing.T) {
	plan := `host: embedded
steps:
  - name: dl
    download: {csv: q.csv}
thresholds:
  - "dl.p95 < 800"
  - "dk.p95 < 1s"
  - "dl.p59 < 1s"
  - "dl.error_ratio < 5"
  - "dl.p95 about 1s"
  - "dl.status.502.count == 0"
  - "dl.right_pct >= 95"
`
	p, err := ParsePlan(strings.NewReader(plan), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Validate()
	for _, want := range []string{
		`plan.yaml: thresholds[0]: dl.p95 < 800: "800" is not a duration; write it with a unit, such as 800ms or 2s (line 6)`,
		`plan.yaml: thresholds[1]: "dk.p95" names no step of the plan (its steps are: dl); did you mean "dl"? (line 7)`,
		`plan.yaml: thresholds[2]: download steps have no metric "p59" (teckenrun metrics download lists them); did you mean "p50"? (line 8)`,
		`plan.yaml: thresholds[3]: dl.error_ratio < 5: 5 is not a ratio: ratios are 0..1 (write 0.01 for 1%) (line 9)`,
		`plan.yaml: thresholds[4]: "dl.p95 about 1s" is not STEP.METRIC OP VALUE`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors\n%v\nlack\n%s", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("%d errors, want 5 (the last two thresholds are good):\n%v", n, err)
	}
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("a bad threshold is not a usage error (exit 2): %T", err)
	}
}

// thresholdPlan is a download of the demo's CSV on the embedded emulator
// with the given thresholds.
func thresholdPlan(t *testing.T, thresholds ...string) string {
	t.Helper()
	csv, err := filepath.Abs("plans/demo/queries.csv")
	if err != nil {
		t.Fatal(err)
	}
	plan := "host: embedded\nseed: 1\nsteps:\n  - name: download\n    download: {csv: " + csv + ", concurrency: 2}\nthresholds:\n"
	for _, th := range thresholds {
		plan += "  - " + strconv.Quote(th) + "\n"
	}
	path := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestThresholdsDecideTheExitCode runs the real binary: thresholds that
// hold exit 0, one that does not exits 3, and the JSON shows each with
// its value.
func TestThresholdsDecideTheExitCode(t *testing.T) {
	bin := buildTeckenrun(t)
	for _, tt := range []struct {
		name       string
		thresholds []string
		code       int
		oks        []bool
	}{
		{"pass", []string{"download.right_pct >= 95", "download.errors == 0", "download.p99 < 30s", "download.status.502.count == 0"}, 0, []bool{true, true, true, true}},
		{"fail", []string{"download.right_pct >= 95", "download.requests > 1000", "download.p50 < 1us"}, 3, []bool{true, false, false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-format", "json", thresholdPlan(t, tt.thresholds...))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			var r Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Thresholds) != len(tt.oks) {
				t.Fatalf("thresholds %+v", r.Thresholds)
			}
			for i, th := range r.Thresholds {
				if th.Expr != tt.thresholds[i] || th.OK == nil || *th.OK != tt.oks[i] || th.Value == nil {
					t.Errorf("threshold %d: %+v, want ok %v with a value", i, th, tt.oks[i])
				}
			}
			if tt.code == 3 && !strings.Contains(stderr.String(), "2 threshold(s) not met: download.requests > 1000; download.p50 < 1us") {
				t.Errorf("stderr does not say which thresholds failed: %s", stderr.String())
			}
			if r.Thresholds[0].Value == nil || *r.Thresholds[0].Value < 95 {
				t.Errorf("right_pct value %v", r.Thresholds[0].Value)
			}
		})
	}
}

// TestThresholdsAndOnly: a threshold on a step that -only leaves out is
// not evaluated and does not fail the run.
func TestThresholdsAndOnly(t *testing.T) {
	path := thresholdPlan(t, "download.requests > 1000")
	raw, _ := os.ReadFile(path)
	plan := strings.Replace(string(raw), "thresholds:", "  - name: again\n    download: {csv: "+filepathAbs(t, "plans/demo/queries.csv")+"}\nthresholds:", 1)
	os.WriteFile(path, []byte(plan), 0o644)
	stdout, _, err := runArgs(t, terminal{}, "-only", "again", path)
	if err != nil {
		t.Fatalf("-only again: %v", err)
	}
	var r Report
	json.Unmarshal([]byte(stdout), &r)
	if len(r.Thresholds) != 1 || r.Thresholds[0].OK != nil || r.Thresholds[0].Value != nil || r.Thresholds[0].Note == "" {
		t.Errorf("thresholds %+v", r.Thresholds)
	}
}

func filepathAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestMetricsCommandListsNames(t *testing.T) {
	stdout, _, err := runArgs(t, terminal{}, "metrics", "download")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| p95 ", "| error_ratio ", "| right_pct ", "| status.NNN.count ", "| lag.p99 "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("teckenrun metrics download lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, err := runArgs(t, terminal{}, "metrics", "fly"); err == nil {
		t.Error("an unknown kind was accepted")
	}
}
