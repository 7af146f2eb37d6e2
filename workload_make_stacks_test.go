package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// writeSymbolSources writes two modules as loose .sym files in a symbols
// tree and one inside a zip, as uploads hold them.
func writeSymbolSources(t *testing.T) (dir string, mods []breakpad.Module) {
	t.Helper()
	dir = t.TempDir()
	r := rand.New(rand.NewPCG(9, 9))
	for i, name := range []string{"xul", "nss3", "mozglue"} {
		m := breakpad.Synthesize(r, name, breakpad.Platforms[i], 20)
		mods = append(mods, m)
		if i < 2 {
			path := filepath.Join(dir, "tree", m.Key())
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, m.Bytes(), 0o644)
			continue
		}
		f, _ := os.Create(filepath.Join(dir, "symbols.zip"))
		zw := zip.NewWriter(f)
		w, _ := zw.Create(m.Key())
		w.Write(m.Bytes())
		zw.Close()
		f.Close()
	}
	return dir, mods
}

func TestMakeStacksFromZipsAndTrees(t *testing.T) {
	src, mods := writeSymbolSources(t)
	out := filepath.Join(t.TempDir(), "stacks")
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nseed: 4\nsteps:\n  - make-stacks:\n      from: %s\n      out_dir: %s\n      count: 30\n", src, out)
	r, err := runJSON(t, context.Background(), plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("report %+v", r)
	}
	known := map[string]breakpad.Module{}
	for _, m := range mods {
		known[m.DebugFile+"/"+m.DebugID] = m
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != 30 {
		t.Fatalf("%d files", len(files))
	}
	used := map[string]bool{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var body struct {
			MemoryMap [][2]string  `json:"memoryMap"`
			Stacks    [][][2]int64 `json:"stacks"`
			Version   int          `json:"version"`
		}
		if err := json.Unmarshal(b, &body); err != nil || body.Version != 4 || len(body.Stacks) != 1 {
			t.Fatalf("%s: %v %s", f, err, b)
		}
		if n := len(body.Stacks[0]); n < 1 || n > 25 {
			t.Errorf("%s: %d frames", f, n)
		}
		for _, fr := range body.Stacks[0] {
			if fr[0] < 0 {
				continue
			}
			e := body.MemoryMap[fr[0]]
			m, ok := known[e[0]+"/"+e[1]]
			if !ok {
				continue // a module that does not exist, on purpose
			}
			used[m.DebugFile] = true
			inside := false
			for _, s := range m.Symbols {
				if uint64(fr[1]) >= s.Address && (uint64(fr[1]) < s.Address+max(s.Size, 1)) {
					inside = true
				}
			}
			if !inside {
				t.Errorf("%s: offset %#x is in no symbol of %s", f, fr[1], m.DebugFile)
			}
		}
	}
	if len(used) != 3 {
		t.Errorf("frames drew on %v, want all three modules (loose and zipped)", used)
	}
}

func TestMakeStacksErrors(t *testing.T) {
	empty := t.TempDir()
	r, err := runJSON(t, context.Background(), "host: http://127.0.0.1:1\nsteps:\n  - make-stacks: {from: "+empty+"}\n", nil)
	if err == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, "no .sym files with FUNC or PUBLIC records") {
		t.Errorf("from an empty folder: %v", err)
	}
	// A folder that does not exist is found before the run.
	nope := filepath.Join(empty, "nope")
	r, err = runJSON(t, context.Background(), "host: http://127.0.0.1:1\nsteps:\n  - make-stacks: {from: "+nope+"}\n", nil)
	if want := "steps[0].make-stacks.from: " + nope + " does not exist (line 3)"; r != nil || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("from a missing folder: %v, want %q", err, want)
	}
}
