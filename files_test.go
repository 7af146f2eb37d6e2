package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

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
