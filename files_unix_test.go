//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWrittenFilesAre0644LessTheUmask checks the mode of every file a run
// writes (stack files, zips, the -out report) under two umasks. The umask
// is the process's: this test must not run in parallel with others.
func TestWrittenFilesAre0644LessTheUmask(t *testing.T) {
	src, _ := writeSymbolSources(t)
	for _, tt := range []struct {
		umask int
		want  os.FileMode
	}{{0o002, 0o644}, {0o077, 0o600}} {
		t.Run(fmt.Sprintf("umask %03o", tt.umask), func(t *testing.T) {
			dir := t.TempDir()
			stacks, zips, out := filepath.Join(dir, "stacks"), filepath.Join(dir, "zips"), filepath.Join(dir, "report.json")
			plan := fmt.Sprintf("host: http://127.0.0.1:1\nseed: 4\nsteps:\n  - make-stacks: {from: %s, out_dir: %s, count: 2}\n"+
				"  - make-zips: {source: synthetic, save_dir: %s, number: 1, zip_size: 64kb, sym_size: 16kb}\n", src, stacks, zips)
			old := syscall.Umask(tt.umask)
			_, _, err := runPlanAs[testReport](t, context.Background(), plan, nil, nil, "-out", out)
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(stacks, "*"))
			more, _ := filepath.Glob(filepath.Join(zips, "*"))
			files = append(append(files, more...), out)
			if len(files) != 4 {
				t.Fatalf("files %v", files)
			}
			for _, f := range files {
				if info, err := os.Stat(f); err != nil || info.Mode().Perm() != tt.want {
					t.Errorf("%s: mode %v (%v), want %v", f, info.Mode().Perm(), err, tt.want)
				}
			}
		})
	}
}
