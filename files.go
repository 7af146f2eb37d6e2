package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// planFile is a file, folder or glob that a step reads, as the plan
// names it.
type planFile struct {
	key  string // the step's key, such as "csv"
	path string // as written in the plan
}

// fileReader is a step kind that reads files named in the plan.
type fileReader interface {
	reads() []planFile
}

// fileWriter is a step kind that writes into a folder that later steps
// may read; writes returns "" when that folder is not known in advance.
type fileWriter interface {
	writes() string
}

// checkFiles reports every file that a step to run reads but that does
// not exist, unless an earlier step to run writes it. -validate and a
// run both check this before any step starts.
func (p *Plan) checkFiles(steps []int) error {
	v := &validator{plan: p}
	var written []string
	for _, i := range steps {
		w := p.Steps[i].workloads()[0]
		if r, ok := w.(fileReader); ok {
			for _, f := range r.reads() {
				path := p.resolve(f.path)
				if f.path == "" || isWithinAny(path, written) {
					continue
				}
				if err := fileMissing(path); err != nil {
					msg := err.Error()
					if by := madeBy[w.kind()+"."+f.key]; by != "" {
						msg += "; " + by
					}
					v.add(fmt.Sprintf("steps[%d].%s.%s", i, w.kind(), f.key), "%s", msg)
				}
			}
		}
		if fw, ok := w.(fileWriter); ok && fw.writes() != "" {
			written = append(written, p.resolve(fw.writes()))
		}
	}
	return v.err()
}

// madeBy says what makes a file that a step reads (by kind.key), for
// the error when it is missing.
var madeBy = map[string]string{
	"download.csv":           "an analyze step with logs writes it, such as the logs step of plans/data.yaml",
	"download.missing_csv":   "Tecken's /missingsymbols.csv has it",
	"symbolicate.stacks_dir": "a make-stacks step writes it, such as the stacks step of plans/data.yaml",
	"make-zips.records":      "a fetch-records step writes them, such as the records step of plans/data.yaml",
}

// fileMissing says why path, or the glob path, names nothing to read.
func fileMissing(path string) error {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case strings.ContainsAny(path, "*?["):
		matches, err := filepath.Glob(path)
		if err != nil {
			return fmt.Errorf("%s is not a valid glob: %w", path, err)
		}
		if len(matches) == 0 {
			return fmt.Errorf("%s matches no file", path)
		}
		return nil
	}
	return fmt.Errorf("%s does not exist", path)
}

// isWithinAny reports whether path is one of dirs or inside one of them.
func isWithinAny(path string, dirs []string) bool {
	path = filepath.Clean(path)
	for _, d := range dirs {
		d = filepath.Clean(d)
		if path == d || strings.HasPrefix(path, d+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
