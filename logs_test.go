package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// writePlan writes plan, and files beside it, into a temporary folder and
// returns the plan's path.
func writePlan(t *testing.T, plan string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFailedStepReasonOnStderr: a download against a closed port fails
// its step; stderr says which step and why on one line, stdout is still
// exactly one JSON document, and the exit code is 1. The step after it
// (stop_on_error) is listed as not run.
func TestFailedStepReasonOnStderr(t *testing.T) {
	plan := writePlan(t, "host: http://127.0.0.1:1\nthresholds: [\"again.requests == 0\"]\nsteps:\n"+
		"  - download: {csv: q.csv, max_requests: 1, concurrency: 1}\n  - name: again\n    download: {csv: q.csv}\n", downloadFiles)
	stdout, stderr, err := runArgs(t, terminal{}, plan)
	var msg bytes.Buffer
	if code := exitCode(err, &msg); code != exitFailed {
		t.Fatalf("exit %d, want %d: %v", code, exitFailed, err)
	}
	if stderr != "" {
		t.Errorf("run wrote %q to stderr before exitCode", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(msg.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "teckenrun: step download (download) failed: all 1 requests failed: ") ||
		!strings.Contains(lines[0], "connection refused") {
		t.Errorf("stderr %q, want one line naming the step, its kind and the refused connection", msg.String())
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var r map[string]any
	if err := dec.Decode(&r); err != nil || dec.More() {
		t.Fatalf("stdout is not exactly one JSON document (%v):\n%s", err, stdout)
	}
	steps := r["steps"].([]any)
	if len(steps) != 2 {
		t.Fatalf("%d steps, want 2", len(steps))
	}
	first, second := steps[0].(map[string]any), steps[1].(map[string]any)
	if first["ran"] != true || first["ok"] != false || !strings.Contains(first["error"].(string), "connection refused") {
		t.Errorf("failed step: ran %v, ok %v, error %v", first["ran"], first["ok"], first["error"])
	}
	if second["name"] != "again" || second["ran"] != false || second["ok"] != false || second["error"] != nil || second["duration_s"] != 0.0 {
		t.Errorf("step after the failure: %v", second)
	}
	// The step not run has its kind's empty result, every key of it.
	if m, ok := second["metrics"].(map[string]any); !ok || m["requests"] != 0.0 || second["right_pct"] != nil || second["by_status"] == nil {
		t.Errorf("step not run: metrics %v, right_pct %v, by_status %v", second["metrics"], second["right_pct"], second["by_status"])
	}
	// A threshold on it fails: its empty result measured nothing.
	if th := r["thresholds"].([]any)[0].(map[string]any); th["ok"] != false || th["value"] != nil || th["note"] != "step did not run" {
		t.Errorf("threshold on a step not run: %v", th)
	}
	// It reads back, and its table says it did not run.
	rep, err := DecodeReport(strings.NewReader(stdout), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Steps[0].Ran || rep.Steps[1].Ran {
		t.Errorf("decoded ran: %v, %v", rep.Steps[0].Ran, rep.Steps[1].Ran)
	}
	var table bytes.Buffer
	if err := tableReport(&table, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "\n== again (download): not run ==\n") || !strings.Contains(table.String(), "== download (download): FAILED") {
		t.Errorf("table:\n%s", table.String())
	}
}

// TestEveryFailedStepHasItsLine: without stop_on_error, each failed step
// gets its own stderr line, every step runs, and none is "not run".
func TestEveryFailedStepHasItsLine(t *testing.T) {
	plan := writePlan(t, "host: http://127.0.0.1:1\nstop_on_error: false\nsteps:\n  - download: {csv: q.csv}\n  - download: {csv: q.csv}\n",
		map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n"})
	stdout, _, err := runArgs(t, terminal{}, plan)
	var msg bytes.Buffer
	if code := exitCode(err, &msg); code != exitFailed {
		t.Fatalf("exit %d, want %d: %v", code, exitFailed, err)
	}
	lines := strings.Split(strings.TrimSuffix(msg.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "teckenrun: step download (download) failed: ") ||
		!strings.HasPrefix(lines[1], "teckenrun: step download-2 (download) failed: ") {
		t.Errorf("stderr %q, want a line for each failed step", msg.String())
	}
	var r struct{ Steps []struct{ Ran bool } }
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Steps) != 2 || !r.Steps[0].Ran || !r.Steps[1].Ran {
		t.Errorf("steps %+v (%v)", r.Steps, err)
	}
}

// TestOnlyDoesNotListOtherSteps: steps that -only leaves out were not
// part of the run, so they are not listed, not even as not run.
func TestOnlyDoesNotListOtherSteps(t *testing.T) {
	plan := writePlan(t, "host: http://127.0.0.1:1\nsteps:\n  - download: {csv: q.csv}\n  - name: other\n    download: {csv: q.csv}\n",
		map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n"})
	stdout, _, err := runArgs(t, terminal{}, "-only", "download", plan)
	if err == nil {
		t.Fatal("a CSV without rows did not fail the step")
	}
	var r struct{ Steps []struct{ Name string } }
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || len(r.Steps) != 1 || r.Steps[0].Name != "download" {
		t.Errorf("steps %+v (%v)", r.Steps, err)
	}
}

// TestBaselineSkipsStepsNotRun: a step that did not run has no figures to
// compare; it is listed as missing from the report where it did not run.
func TestBaselineSkipsStepsNotRun(t *testing.T) {
	base, run := goldenReport(), goldenReport()
	run.Steps[0].Ran = false // download; download-uploaded ran in neither
	c := compareReports(base, run, "base.json", 0.1)
	if len(c.MissingSteps) != 1 || c.MissingSteps[0] != (MissingStep{Step: "download", In: "baseline"}) {
		t.Errorf("missing steps %+v", c.MissingSteps)
	}
	for _, row := range c.Rows {
		if row.Step == "download" || row.Step == "download-uploaded" {
			t.Errorf("compared a step not run: %+v", row)
		}
	}
}

// TestStepErrorsKeepExitCodes: a failed step exits 1 whatever its error
// wraps; joined with an interrupt it exits as the interrupt does, and
// each line on stderr is prefixed.
func TestStepErrorsKeepExitCodes(t *testing.T) {
	failed := stepError{name: "dl", kind: "download", err: usageErrorf("two\nlines")}
	for _, tt := range []struct {
		err   error
		code  int
		lines []string
	}{
		{failed, exitFailed, []string{"teckenrun: step dl (download) failed: two; lines"}},
		{errors.Join(failed, fmt.Errorf("%w; the report shows what finished", interrupted{syscall.SIGHUP})), exitHangup,
			[]string{"teckenrun: step dl (download) failed: two; lines", "teckenrun: interrupted by SIGHUP; the report shows what finished"}},
		{errors.Join(failed, fmt.Errorf("%w; the report shows what finished", interrupted{os.Interrupt})), exitInterrupted, nil},
	} {
		var msg bytes.Buffer
		if code := exitCode(tt.err, &msg); code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.err, code, tt.code)
		}
		if got := strings.Split(strings.TrimSuffix(msg.String(), "\n"), "\n"); tt.lines != nil && !slices.Equal(got, tt.lines) {
			t.Errorf("stderr %q, want %q", got, tt.lines)
		}
	}
}

// TestInterruptedRunListsStepsNotRun: the steps an interrupt kept from
// starting are listed as not run too.
func TestInterruptedRunListsStepsNotRun(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(interrupted{os.Interrupt})
	r, _, err := runPlanAs[map[string]any](t, ctx, "host: embedded\nsteps:\n  - make-stacks: {from: embedded, count: 1}\n  - symbolicate: {}\n", nil, nil)
	if code := exitCode(err, new(bytes.Buffer)); code != exitInterrupted || r == nil {
		t.Fatalf("exit %d (%v)", code, err)
	}
	steps := (*r)["steps"].([]any)
	if len(steps) != 2 || steps[0].(map[string]any)["ran"] != false || steps[1].(map[string]any)["ran"] != false || (*r)["interrupted"] != true {
		t.Errorf("report %v", *r)
	}
}
