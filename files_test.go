package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFilesAPlanReadsAreCheckedBeforeTheRun(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte(`host: http://127.0.0.1:1
auth_token_env: TECKENRUN_TEST_TOKEN
steps:
  - download:
      csv: queries.csv
      missing_csv: missing.csv
  - symbolicate:
      stacks_dir: stacks
  - symbolicate:
      stacks_dir: stacks/*.json
  - make-zips:
      source: uploaded-symbols
      records: records/*.json.gz
      symbols_url: https://127.0.0.1:1/
  - upload:
      zips_dir: zips
  - upload:
      urls_from: urls.txt
  - make-stacks:
      from: symbols
`), 0o644)
	at := func(rel string) string { return filepath.Join(dir, rel) }
	want := []string{
		"plan.yaml: steps[0].download.csv: " + at("queries.csv") + " does not exist; an analyze step with logs writes it, such as the logs step of plans/data.yaml (line 5)",
		"plan.yaml: steps[0].download.missing_csv: " + at("missing.csv") + " does not exist; Tecken's /missingsymbols.csv has it (line 6)",
		"plan.yaml: steps[1].symbolicate.stacks_dir: " + at("stacks") + " does not exist; a make-stacks step writes it, such as the stacks step of plans/data.yaml (line 8)",
		"plan.yaml: steps[2].symbolicate.stacks_dir: " + at("stacks/*.json") + " matches no file; a make-stacks step writes it, such as the stacks step of plans/data.yaml (line 10)",
		"plan.yaml: steps[3].make-zips.records: " + at("records/*.json.gz") + " matches no file; a fetch-records step writes them, such as the records step of plans/data.yaml (line 13)",
		"plan.yaml: steps[4].upload.zips_dir: " + at("zips") + " does not exist (line 16)",
		"plan.yaml: steps[5].upload.urls_from: " + at("urls.txt") + " does not exist (line 18)",
		"plan.yaml: steps[6].make-stacks.from: " + at("symbols") + " does not exist (line 20)",
	}
	for _, args := range [][]string{{"-validate", plan}, {plan}} {
		stdout, stderr, err := runArgs(t, terminal{}, args...)
		if err == nil || exitCode(err, new(bytes.Buffer)) != exitUsage || stdout != "" || stderr != "" {
			t.Fatalf("%v: %v\nstdout %q, stderr %q", args, err, stdout, stderr)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), strings.Replace(w, "plan.yaml", plan, 1)) {
				t.Errorf("%v: error\n%v\nwant it to contain\n%s", args, err, w)
			}
		}
		if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
			t.Errorf("%d problems, want %d", n, len(want))
		}
	}
	// With the files there, the plan validates; and -only checks only the
	// steps that run.
	os.WriteFile(at("queries.csv"), []byte("URI,STATUS CODE,PRIVATE,COUNT\n"), 0o644)
	os.WriteFile(at("missing.csv"), []byte("debug_file,debug_id,code_file,code_id\n"), 0o644)
	os.MkdirAll(at("stacks"), 0o755)
	os.WriteFile(at("stacks/a.json"), []byte("{}"), 0o644)
	os.MkdirAll(at("records"), 0o755)
	os.WriteFile(at("records/r.json.gz"), nil, 0o644)
	os.MkdirAll(at("zips"), 0o755)
	os.WriteFile(at("urls.txt"), nil, 0o644)
	if _, _, err := runArgs(t, terminal{}, "-validate", "-only", "download,symbolicate,symbolicate-2,make-zips,upload,upload-2", plan); err != nil {
		t.Errorf("with the files: %v", err)
	}
}

func TestFilesAnEarlierStepWritesAreNotChecked(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte(`host: embedded
steps:
  - make-stacks: {from: embedded, out_dir: made/stacks}
  - symbolicate: {stacks_dir: made/stacks}
  - symbolicate: {stacks_dir: made/stacks/*.json}
  - make-zips: {source: synthetic, save_dir: made/zips}
  - upload: {zips_dir: made/zips}
  - make-stacks: {from: made/zips}
`), 0o644)
	if _, _, err := runArgs(t, terminal{}, "-validate", plan); err != nil {
		t.Errorf("-validate: %v", err)
	}
	// Without the steps that write them, the folders must exist.
	_, _, err := runArgs(t, terminal{}, "-validate", "-only", "symbolicate,upload", plan)
	if err == nil || !strings.Contains(err.Error(), "steps[1].symbolicate.stacks_dir: "+filepath.Join(dir, "made/stacks")+" does not exist") ||
		!strings.Contains(err.Error(), "steps[4].upload.zips_dir: "+filepath.Join(dir, "made/zips")+" does not exist") {
		t.Errorf("-only without the writers: %v", err)
	}
}

func TestWriteFileAtomicLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	failing := errors.New("disk on fire")
	err := writeFileAtomic(filepath.Join(dir, "a.json"), func(w io.Writer) error {
		w.Write([]byte("half"))
		return failing
	})
	if !errors.Is(err, failing) {
		t.Errorf("write error %v", err)
	}
	// The rename fails: a folder is in the way.
	os.Mkdir(filepath.Join(dir, "b.json"), 0o755)
	os.WriteFile(filepath.Join(dir, "b.json", "x"), nil, 0o644)
	if err := writeFileAtomic(filepath.Join(dir, "b.json"), func(w io.Writer) error { _, err := w.Write([]byte("{}")); return err }); err == nil {
		t.Error("writing over a folder worked")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "b.json" {
		t.Errorf("left in the folder: %v", entries)
	}
}
