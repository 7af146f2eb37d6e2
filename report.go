package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Report is the result of running a plan: what the JSON output holds and
// what the tables show.
type Report struct {
	// Plan is the plan's name (its file name when the plan has none).
	Plan string `json:"plan"`
	// Host is the base URL the steps talked to.
	Host string `json:"host"`
	// Embedded is true when Host is the built-in emulator.
	Embedded bool `json:"embedded"`
	// OK is true when every step that ran succeeded and nothing was
	// interrupted.
	OK bool `json:"ok"`
	// Interrupted is true when Ctrl-C (SIGINT/SIGTERM) or SIGHUP stopped
	// the run.
	Interrupted bool      `json:"interrupted"`
	StartedAt   time.Time `json:"started_at"`
	DurationS   float64   `json:"duration_s"`
	// Seed is the run's seed: pass it to -seed to repeat the run's choices.
	Seed    uint64       `json:"seed"`
	Version string       `json:"version"`
	Steps   []StepReport `json:"steps"`
}

// StepReport is one step's outcome. In JSON, the kind's own fields follow
// the common ones in the same object.
type StepReport struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// OK is false when the step failed or was interrupted.
	OK bool `json:"ok"`
	// Error says why the step failed; null when it did not.
	Error     *string `json:"error"`
	DurationS float64 `json:"duration_s"`

	result      stepResult
	interrupted bool // an interrupt cut the step short
}

// stepResult is a step kind's own report.
type stepResult interface {
	writeTable(w io.Writer) error
}

// MarshalJSON writes the common fields, then the kind's fields.
func (s StepReport) MarshalJSON() ([]byte, error) {
	type common StepReport // drops this method
	head, err := json.Marshal(common(s))
	if err != nil || s.result == nil {
		return head, err
	}
	body, err := json.Marshal(s.result)
	if err != nil {
		return nil, err
	}
	if len(body) <= 2 { // {}
		return head, nil
	}
	return slices.Concat(head[:len(head)-1], []byte(","), body[1:]), nil
}

// reporter writes a Report in one format.
type reporter func(w io.Writer, r *Report) error

func jsonReport(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func tableReport(w io.Writer, r *Report) error {
	status := "ok"
	switch {
	case r.Interrupted:
		status = "INTERRUPTED (partial results)"
	case !r.OK:
		status = "FAILED"
	}
	host := r.Host
	if r.Embedded {
		host += " (embedded emulator)"
	}
	if _, err := fmt.Fprintf(w, "plan %s on %s: %s in %s (seed %d)\n", r.Plan, host, status, seconds(r.DurationS), r.Seed); err != nil {
		return err
	}
	for _, s := range r.Steps {
		state := "ok"
		switch {
		case s.interrupted:
			state = "interrupted"
		case !s.OK:
			state = "FAILED"
		}
		if _, err := fmt.Fprintf(w, "\n== %s (%s): %s in %s ==\n", s.Name, s.Kind, state, seconds(s.DurationS)); err != nil {
			return err
		}
		if s.Error != nil {
			if _, err := fmt.Fprintf(w, "error: %s\n", *s.Error); err != nil {
				return err
			}
		}
		if s.result != nil {
			if err := s.result.writeTable(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFacts writes "LABEL  value" lines, aligned.
func writeFacts(w io.Writer, facts [][2]string) error {
	width := 0
	for _, f := range facts {
		width = max(width, len(f[0]))
	}
	var b bytes.Buffer
	for _, f := range facts {
		fmt.Fprintf(&b, "%-*s  %s\n", width, f[0], f[1])
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeTable renders an ASCII table. The first column and the columns
// listed in text are left-aligned; the others hold numbers and are
// right-aligned.
func writeTable(w io.Writer, header []string, rows [][]string, text ...int) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "(no results)")
		return err
	}
	align := make([]tw.Align, len(header))
	for i := range align {
		align[i] = tw.AlignRight
		if i == 0 || slices.Contains(text, i) {
			align[i] = tw.AlignLeft
		}
	}
	t := tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})),
		tablewriter.WithConfig(tablewriter.Config{Row: tw.CellConfig{Alignment: tw.CellAlignment{PerColumn: align}}}),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
	)
	t.Header(header)
	for i, row := range rows {
		if len(row) != len(header) {
			return fmt.Errorf("table row %d has %d cells, want %d", i, len(row), len(header))
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	return t.Render()
}

// seconds formats seconds for tables: 0.6µs, 0.35ms, 12.30ms, 1.234s,
// or 8m20.0s past 500 s.
func seconds(s float64) string {
	switch {
	case s > 500:
		return fmt.Sprintf("%dm%.1fs", int(s/60), math.Mod(s, 60))
	case s > 0 && s < 1e-3:
		return strconv.FormatFloat(s*1e6, 'f', 1, 64) + "µs"
	case s < 1:
		return strconv.FormatFloat(s*1000, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'f', 3, 64) + "s"
}

func optSeconds(s *float64) string {
	if s == nil {
		return "n/a"
	}
	return seconds(*s)
}

// pct returns 100*n/of, or 0 when of is 0.
func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// samples are exact observations (seconds, sizes, counts).
type samples []float64

type summary struct {
	n                         int
	sum, mean, median, stddev float64
	p95, p99                  float64
}

// summarize sorts the samples in place and computes their statistics:
// the median of an even count is the mean of the middle two, percentiles
// are nearest-rank, and stddev is the sample standard deviation.
func (s samples) summarize() summary {
	if len(s) == 0 {
		return summary{}
	}
	slices.Sort(s)
	n := len(s)
	out := summary{n: n, p95: s[rank(n, 0.95)], p99: s[rank(n, 0.99)]}
	for _, v := range s {
		out.sum += v
	}
	out.mean = out.sum / float64(n)
	out.median = s[n/2]
	if n%2 == 0 {
		out.median = (s[n/2-1] + s[n/2]) / 2
	}
	if n > 1 {
		var sq float64
		for _, v := range s {
			sq += (v - out.mean) * (v - out.mean)
		}
		out.stddev = math.Sqrt(sq / float64(n-1))
	}
	return out
}

// rank is the nearest-rank index of percentile p among n sorted values.
func rank(n int, p float64) int {
	return min(max(int(math.Ceil(p*float64(n)))-1, 0), n-1)
}
