package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// MakeStacksStep writes symbolication requests (v4 stack files) whose
// frames fall inside real FUNC/PUBLIC ranges of known symbol files, so that
// a symbolicate step can replay them and check what comes back.
type MakeStacksStep struct {
	// From is a folder of symbol zips, a symbols tree of .sym files, or
	// "embedded" for the embedded emulator's store.
	From string `yaml:"from"`
	// OutDir receives the files; by default a temporary folder that lives
	// as long as the run, which a later symbolicate step reads.
	OutDir string  `yaml:"out_dir,omitempty"`
	Count  *int    `yaml:"count,omitempty"`
	Seed   *uint64 `yaml:"seed,omitempty"`
}

func (m *MakeStacksStep) kind() string { return "make-stacks" }

func (m *MakeStacksStep) needs() []need { return nil }

func (m *MakeStacksStep) setDefaults(*Plan) {
	if m.Count == nil {
		m.Count = ptr(100)
	}
}

func (m *MakeStacksStep) validate(v *validator, path string) {
	if m.From == "" {
		v.add(path+".from", "is required: a folder of symbol zips or .sym files, or embedded")
	}
	v.atLeast(path+".count", *m.Count, 1)
}

func (m *MakeStacksStep) reads() []planFile {
	if m.From == "embedded" {
		return nil
	}
	return []planFile{{"from", m.From}}
}

func (m *MakeStacksStep) writes() string { return m.OutDir }

// MakeStacksResult is the report of a make-stacks step.
type MakeStacksResult struct {
	// OutDir is where the files are (a temporary folder is removed when
	// the run ends).
	OutDir string `json:"out_dir"`
	Files  int    `json:"files"`
	// Modules is the number of symbol files the frames were drawn from.
	Modules int `json:"modules"`
	Frames  int `json:"frames"`
	// UnknownModuleFrames point into modules that do not exist, and
	// NoModuleFrames have module index -1.
	UnknownModuleFrames int `json:"unknown_module_frames"`
	NoModuleFrames      int `json:"no_module_frames"`
}

func (r *MakeStacksResult) writeTable(w io.Writer) error {
	return writeFacts(w, [][2]string{
		{"FILES", strconv.Itoa(r.Files) + " in " + r.OutDir},
		{"FROM MODULES", strconv.Itoa(r.Modules)},
		{"FRAMES", fmt.Sprintf("%d (%d in unknown modules, %d with index -1)", r.Frames, r.UnknownModuleFrames, r.NoModuleFrames)},
	})
}

func (m *MakeStacksStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	var mods []*breakpad.Symbols
	var err error
	if m.From == "embedded" {
		for _, mod := range emulator.EmbeddedModules() {
			syms, err := breakpad.Parse(bytes.NewReader(mod.Bytes()))
			if err != nil {
				return nil, err
			}
			mods = append(mods, syms)
		}
	} else if mods, err = readSymbols(ctx, rc.plan.resolve(m.From)); err != nil {
		return nil, err
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%s: no .sym files with FUNC or PUBLIC records", m.From)
	}
	out := rc.plan.resolve(m.OutDir)
	if m.OutDir == "" {
		if out, err = rc.state.tempDir("stacks"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	seed := rc.stepSeed(m.Seed, rc.stepIndex)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	res := &MakeStacksResult{OutDir: out, Modules: len(mods)}
	rc.prog.expect(func(pl *progressPlan) { pl.total, pl.unit = int64(*m.Count), "files" })
	for i := range *m.Count {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		body := makeStack(rng, mods, res)
		path := filepath.Join(out, fmt.Sprintf("stack-%05d.json", i))
		if err := writeFileAtomic(path, func(w io.Writer) error { _, err := w.Write(body); return err }); err != nil {
			return res, err
		}
		res.Files++
		rc.prog.add(false)
	}
	rc.state.stacksDir = out
	return res, nil
}

// makeStack draws one v4 body shaped like the real corpus: 1-10 modules
// and 1-25 frames, about 2 % of them with index -1, and now and then a
// module that does not exist.
func makeStack(rng *rand.Rand, mods []*breakpad.Symbols, res *MakeStacksResult) []byte {
	type entry struct {
		syms     *breakpad.Symbols
		name, id string
	}
	n := 1 + rng.IntN(min(10, len(mods)+1))
	var mm []entry
	for _, i := range rng.Perm(len(mods))[:min(n, len(mods))] {
		mm = append(mm, entry{mods[i], mods[i].DebugFile, mods[i].DebugID})
	}
	if rng.IntN(4) == 0 || len(mm) < n {
		mm = append(mm, entry{nil, fmt.Sprintf("unknown%d.pdb", rng.IntN(1000)), fmt.Sprintf("%032X1", rng.Uint64())})
	}
	memoryMap := make([][2]string, len(mm))
	for i, e := range mm {
		memoryMap[i] = [2]string{e.name, e.id}
	}
	frames := make([][2]int64, 1+rng.IntN(25))
	for i := range frames {
		if rng.IntN(50) == 0 {
			frames[i] = [2]int64{-1, 0xffffffff}
			res.NoModuleFrames++
			continue
		}
		mi := rng.IntN(len(mm))
		e := mm[mi]
		if e.syms == nil {
			frames[i] = [2]int64{int64(mi), int64(rng.IntN(1 << 20))}
			res.UnknownModuleFrames++
			continue
		}
		sym := e.syms.Syms[rng.IntN(len(e.syms.Syms))]
		off := int64(sym.Address)
		if sym.Size > 0 {
			off += int64(rng.Uint64N(sym.Size))
		}
		frames[i] = [2]int64{int64(mi), off}
	}
	res.Frames += len(frames)
	body, _ := json.Marshal(map[string]any{"memoryMap": memoryMap, "stacks": [][][2]int64{frames}, "version": 4}) // plain values always marshal
	return body
}

// readSymbols parses every .sym file under dir, loose or inside zips.
func readSymbols(ctx context.Context, dir string) ([]*breakpad.Symbols, error) {
	var mods []*breakpad.Symbols
	add := func(r io.Reader, name string) error {
		syms, err := breakpad.Parse(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(syms.Syms) > 0 && syms.DebugFile != "" {
			mods = append(mods, syms)
		}
		return nil
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case strings.HasSuffix(path, ".sym"):
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			return add(f, path)
		case strings.HasSuffix(path, ".zip"):
			zr, err := zip.OpenReader(path)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			defer zr.Close()
			for _, f := range zr.File {
				if !strings.HasSuffix(f.Name, ".sym") {
					continue
				}
				rc, err := f.Open()
				if err != nil {
					return fmt.Errorf("%s: %s: %w", path, f.Name, err)
				}
				err = add(rc, path+": "+f.Name)
				rc.Close()
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	return mods, err
}
