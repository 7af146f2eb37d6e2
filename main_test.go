package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(t *testing.T, term terminal, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, strings.NewReader(""), &out, &errb, term)
	return out.String(), errb.String(), err
}

// runPlanAs writes plan, and files beside it, into a temporary folder, runs
// it with -format json, and decodes stdout into a T. It also returns all
// that was printed (stdout and stderr). The report is nil when nothing
// was printed (a usage error).
func runPlanAs[T any](t *testing.T, ctx context.Context, plan string, files map[string]string, stdin io.Reader, args ...string) (*T, string, error) {
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
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	err := run(ctx, append(append([]string{"-format", "json"}, args...), path), stdin, &stdout, &stderr, terminal{})
	if stdout.Len() == 0 {
		return nil, stderr.String(), err
	}
	var r T
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		t.Fatalf("stdout is not one JSON document (%v):\n%s\nstderr: %s\nrun: %v", jerr, stdout.String(), stderr.String(), err)
	}
	return &r, stdout.String() + stderr.String(), err
}

func TestDemoPlanEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.json")
	stdout, _, err := runArgs(t, terminal{}, "plans/demo.yaml", "-out", out) // flags after the plan work too
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("piped stdout is not one JSON document: %v", err)
	}
	for _, key := range []string{"plan", "host", "ok", "interrupted", "started_at", "duration_s", "steps"} {
		if _, ok := r[key]; !ok {
			t.Errorf("report lacks %q", key)
		}
	}
	if r["ok"] != true || r["plan"] != "demo" || r["embedded"] != true || !strings.HasPrefix(r["host"].(string), "http://127.0.0.1:") {
		t.Errorf("report head: %v", r)
	}
	rep, err := DecodeReport(strings.NewReader(stdout), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]stepResult{}
	for _, st := range rep.Steps {
		byName[st.Name] = st.result
		if !st.OK {
			t.Errorf("demo step %s failed: %v", st.Name, *st.Error)
		}
	}
	// The demo data agree with the embedded store: only the row for a
	// symbol that is gone is wrong.
	dl := byName["download"].(*DownloadResult)
	if dl.Metrics.Requests != 58 || dl.JunkRows != 2 || dl.IgnoreHits != 3 || dl.Right != 57 {
		t.Errorf("demo download: requests %v, junk %v, ignore hits %v, right %v", dl.Metrics.Requests, dl.JunkRows, dl.IgnoreHits, dl.Right)
	}
	// make-stacks draws 40 files from the embedded store; symbolicate sends
	// them 3 to a request and every frame in a found module gets a name.
	sym := byName["symbolicate"].(*SymbolicateResult)
	if sym.Metrics.Requests != 14 || sym.Jobs != 40 || sym.SymbolicatedPct == nil || *sym.SymbolicatedPct != 100 ||
		sym.InvalidResponses != 0 || len(sym.Debug) == 0 {
		t.Errorf("demo symbolicate: %+v", sym)
	}
	// list-zips finds the two current builds of the embedded TaskCluster,
	// Tecken downloads them, and what make-zips wrote and upload-zips
	// sent is then found, every file of it.
	if zips := byName["list-zips"].(*ListZipsResult).Zips; len(zips) != 2 || byName["upload-urls"].(*UploadResult).Succeeded != 2 {
		t.Errorf("list-zips %v, upload-urls %+v", zips, byName["upload-urls"])
	}
	files := 0
	for _, z := range byName["make-zips"].(*MakeZipsResult).Zips {
		files += z.Files
	}
	if dl := byName["download-uploaded"].(*DownloadResult); files == 0 || dl.Metrics.Requests != int64(files) || dl.Right != files ||
		byName["upload-zips"].(*UploadResult).Succeeded != 2 {
		t.Errorf("made %v files; download-uploaded %v requests, %v right", files, dl.Metrics.Requests, dl.Right)
	}
	// make-zips rebuilds uploads from the demo's UploadedSymbols records out
	// of the embedded S3; once uploaded, their files are found too.
	all := byName["download-all-uploaded"].(*DownloadResult)
	if len(byName["make-zips-from-records"].(*MakeZipsResult).Zips) != 2 || int64(all.Right) != all.Metrics.Requests ||
		all.Metrics.Requests <= byName["download-uploaded"].(*DownloadResult).Metrics.Requests {
		t.Errorf("records: %+v; download-all-uploaded %v requests, %v right", byName["make-zips-from-records"], all.Metrics.Requests, all.Right)
	}
	saved, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var fromFile map[string]any
	if err := json.Unmarshal(saved, &fromFile); err != nil || fromFile["started_at"] != r["started_at"] {
		t.Errorf("-out file differs from stdout: %v", err)
	}
}

func TestTableOutputOnATerminal(t *testing.T) {
	stdout, _, err := runArgs(t, terminal{stdout: true}, "plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plan demo on http://127.0.0.1:", "(embedded emulator): ok", "REQUESTS          58 in ",
		"IGNORE HITS       3 (5.2%)", "CSV ROWS          16 usable, 2 junk rows skipped", "| STATUS | COUNT | P50 ", "| 302 "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, stdout)
		}
	}
	if json.Valid([]byte(stdout)) {
		t.Error("a terminal got JSON")
	}
}

func TestValidateFlagPrintsTheResolvedPlan(t *testing.T) {
	stdout, _, err := runArgs(t, terminal{}, "-validate", "plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host: embedded", "timeout: 10s", "stop_on_error: true", "concurrency: 4", "user_agent: teckenrun/"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("-validate output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("host: embedded\nsteps:\n  - download: {csv: a.csv, concurrency: 0}\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no plan", nil, "want exactly one plan file"},
		{"two plans", []string{"a.yaml", "b.yaml"}, "want exactly one plan file, got 2"},
		{"unknown flag", []string{"-bogus", "plans/demo.yaml"}, "flag provided but not defined: -bogus"},
		{"bad format", []string{"-format", "xml", "plans/demo.yaml"}, `-format must be auto, table, json or openmetrics, got "xml"`},
		{"missing plan", []string{filepath.Join(dir, "nope.yaml")}, "no such file or directory"},
		{"invalid plan", []string{bad}, "bad.yaml: steps[0].download.concurrency: must be at least 1, got 0 (line 3)"},
		{"unknown step name", []string{"-only", "upload", "plans/demo.yaml"}, `plans/demo.yaml has no step named "upload"; its steps are: download`},
		{"bad host flag", []string{"-host", "ftp://x", "plans/demo.yaml"}, `host: must be an http(s) URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runArgs(t, terminal{}, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			var msg bytes.Buffer
			if code := exitCode(err, &msg); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.HasPrefix(msg.String(), "teckenrun: ") || stdout != "" {
				t.Errorf("printed %q to stderr and %q to stdout", msg.String(), stdout)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{flag.ErrHelp, exitOK},
		{usageErrorf("bad"), exitUsage},
		{errors.Join(usageErrorf("a"), usageErrorf("b")), exitUsage},
		{errors.New("step download failed"), exitFailed},
		{context.Canceled, exitInterrupted},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err, new(bytes.Buffer)); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	_, stderr, err := runArgs(t, terminal{}, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "usage: teckenrun [flags] PLAN.yaml") || !strings.Contains(stderr, "-format auto|table|json") ||
		!strings.Contains(stderr, "-grace DURATION") || !strings.Contains(stderr, "3 a threshold of the plan\nnot met") {
		t.Errorf("-h: %v\n%s", err, stderr)
	}
	stdout, _, err := runArgs(t, terminal{}, "-version")
	if err != nil || stdout != "teckenrun "+version+"\n" {
		t.Errorf("-version: %q %v", stdout, err)
	}
}

func TestFlagErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"seed with letters", []string{"-seed", "12abc", "plans/demo.yaml"}, `invalid value "12abc" for flag -seed: must be a whole number`},
		{"negative seed", []string{"-seed", "-1", "plans/demo.yaml"}, `invalid value "-1" for flag -seed`},
		{"negative grace", []string{"-grace", "-1s", "plans/demo.yaml"}, `invalid value "-1s" for flag -grace: must be a duration of 0 or more`},
		{"ftp host", []string{"-host", "ftp://x", "plans/demo.yaml"}, `-host: must be an http(s) URL such as https://symbols.mozilla.org, or embedded; got "ftp://x"`},
		{"port out of range", []string{"-host", "http://127.0.0.1:70000", "plans/demo.yaml"}, `-host: port 70000 is not between 1 and 65535 in "http://127.0.0.1:70000"`},
		{"unknown flag", []string{"-bogus", "plans/demo.yaml"}, "flag provided but not defined: -bogus (teckenrun -h lists the flags)"},
		{"unknown emulator flag", []string{"emulator", "-bogus"}, "emulator: flag provided but not defined: -bogus (teckenrun emulator -h lists the flags)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runArgs(t, terminal{}, tt.args...)
			if err == nil || !strings.HasPrefix(err.Error(), strings.SplitN(tt.want, ":", 2)[0]) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			var msg bytes.Buffer
			if code := exitCode(err, &msg); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			// The error is printed once, by exitCode: nothing before it.
			if stdout != "" || stderr != "" || strings.Contains(err.Error(), "plans/demo.yaml") {
				t.Errorf("stdout %q, stderr %q, error %v", stdout, stderr, err)
			}
		})
	}
	// -seed sets the run's seed exactly.
	stdout, _, err := runArgs(t, terminal{}, "-validate", "-seed", "18446744073709551615", "plans/demo.yaml")
	if err != nil || !strings.Contains(stdout, "seed: 18446744073709551615\n") {
		t.Errorf("-seed max: %v\n%s", err, stdout)
	}
}

// TestOutIsCheckedBeforeTheRun gives -out a directory, and a file in a
// folder that does not exist: both are errors before any step runs (the
// make-zips step would write its folder).
func TestOutIsCheckedBeforeTheRun(t *testing.T) {
	dir := t.TempDir()
	zips := filepath.Join(dir, "zips")
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte("host: embedded\nsteps:\n  - make-zips: {source: synthetic, save_dir: "+zips+", zip_size: 8kb, sym_size: 4kb}\n"), 0o644)
	for _, tt := range []struct{ out, want string }{
		{dir, "-out " + dir + " is a directory; give the report's file name"},
		{filepath.Join(dir, "nope", "report.json"), "-out " + filepath.Join(dir, "nope", "report.json") + " cannot be written"},
	} {
		stdout, _, err := runArgs(t, terminal{}, "-out", tt.out, plan)
		if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err, new(bytes.Buffer)) != exitUsage {
			t.Errorf("-out %s: %v, want %q", tt.out, err, tt.want)
		}
		if stdout != "" || fileExists(zips) {
			t.Errorf("-out %s: the plan ran (stdout %q)", tt.out, stdout)
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmp) != 0 {
		t.Errorf("the check left %v", tmp)
	}
}
