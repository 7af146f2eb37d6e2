package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mozilla-services/teckenrun/internal/metrics"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// reportSchemaVersion is the version of the report's JSON layout. It
// changes when a key is renamed or removed, or changes meaning; new keys
// do not change it.
const reportSchemaVersion = 2

// Report is the result of running a plan: what the JSON output holds and
// what the tables show. A saved report decodes into the same types
// (DecodeReport), so that it can be printed again, compared and merged.
type Report struct {
	// SchemaVersion is the version of this layout (reportSchemaVersion).
	SchemaVersion int `json:"schema_version"`
	// Version is the teckenrun version that ran the plan.
	Version string `json:"version"`
	// Plan is the plan's name (its file name when the plan has none).
	Plan string `json:"plan"`
	// PlanSHA256 is the SHA-256 of the plan file's bytes, in hex.
	PlanSHA256 string `json:"plan_sha256"`
	// Host is the base URL the steps talked to.
	Host string `json:"host"`
	// Embedded is true when Host is the built-in emulator.
	Embedded bool `json:"embedded"`
	// OK is true when every step that ran succeeded and nothing was
	// interrupted.
	OK bool `json:"ok"`
	// Interrupted is true when a signal (SIGINT, SIGTERM, SIGHUP) stopped
	// the run.
	Interrupted bool `json:"interrupted"`
	// StartedAt and EndedAt bound the run (UTC).
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	DurationS float64   `json:"duration_s"`
	// Seed is the run's seed: pass it to -seed to repeat the run's choices.
	Seed  uint64       `json:"seed"`
	Steps []StepReport `json:"steps"`
	// Thresholds are the plan's thresholds, evaluated after the run; []
	// when it has none.
	Thresholds []ThresholdResult `json:"thresholds"`
	// Baseline compares the run with -baseline's report; null without one.
	Baseline *Comparison `json:"baseline"`
	// Shard is the shard of a sharded run (-shard) that the report is;
	// null for a whole run.
	Shard *ShardInfo `json:"shard"`
	// Merge says which shards teckenrun merge added up into the report;
	// null for a report that no merge made.
	Merge *MergeInfo `json:"merge"`
}

// StepReport is one step's outcome. In JSON, the kind's own fields follow
// the common ones in the same object.
type StepReport struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// OK is false when the step failed, was interrupted or did not run.
	OK bool `json:"ok"`
	// Ran is false for a step that did not run because an earlier one
	// failed (stop_on_error) or the run was interrupted; its result then
	// holds the kind's empty values.
	Ran bool `json:"ran"`
	// Error says why the step failed; null when it did not.
	Error     *string `json:"error"`
	DurationS float64 `json:"duration_s"`
	// Interrupted is true when a signal cut the step short.
	Interrupted bool `json:"interrupted"`

	result stepResult
}

// state is the step's outcome in a word: ok, interrupted or FAILED.
func (s *StepReport) state() string {
	switch {
	case s.Interrupted:
		return "interrupted"
	case !s.OK:
		return "FAILED"
	}
	return "ok"
}

// stepResult is a step kind's own report. Its exported fields are all
// that its table shows, so that a decoded report prints as the run did.
type stepResult interface {
	writeTable(w io.Writer) error
	// merge adds the result of the same step in another shard (merge.go).
	merge(other stepResult) error
}

// stepCommon is StepReport without its methods, for encoding.
type stepCommon StepReport

// MarshalJSON writes the common fields, then the kind's fields.
func (s StepReport) MarshalJSON() ([]byte, error) {
	head, err := json.Marshal(stepCommon(s))
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

// UnmarshalJSON reads the common fields, then the kind's fields into the
// result type that the registry gives for the kind.
func (s *StepReport) UnmarshalJSON(data []byte) error {
	c := stepCommon{Ran: true} // reports from before "ran" list only steps that ran
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	k, ok := kindByName(c.Kind)
	if !ok {
		return fmt.Errorf("step %q has an unknown kind %q (known: %s)", c.Name, c.Kind, strings.Join(kindNames(), ", "))
	}
	res := k.result()
	if err := json.Unmarshal(data, res); err != nil {
		// The error's offset is within the step, not the file: name the
		// key instead.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("step %q (%s): %s: want %s, got a JSON %s", c.Name, c.Kind, jsonKeyPath(te.Field), te.Type, te.Value)
		}
		return fmt.Errorf("step %q (%s): %v", c.Name, c.Kind, err)
	}
	*s = StepReport(c)
	s.result = res
	return nil
}

// DecodeReport reads a report that teckenrun wrote. name is used in
// errors.
func DecodeReport(r io.Reader, name string) (*Report, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file, not a teckenrun report", name)
		}
		return nil, fmt.Errorf("%s%s: not a teckenrun report: %w", name, jsonPosition(raw, err), err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: more than one JSON document", name)
	}
	switch {
	case rep.SchemaVersion == 0:
		return nil, fmt.Errorf("%s: no schema_version: not a teckenrun report, or one from before version 2", name)
	case rep.SchemaVersion > reportSchemaVersion:
		return nil, fmt.Errorf("%s: schema_version %d is newer than this teckenrun reads (%d); upgrade teckenrun", name, rep.SchemaVersion, reportSchemaVersion)
	case rep.SchemaVersion < reportSchemaVersion:
		return nil, fmt.Errorf("%s: schema_version %d is older than this teckenrun reads (%d)", name, rep.SchemaVersion, reportSchemaVersion)
	}
	if rep.Steps == nil {
		rep.Steps = []StepReport{}
	}
	if rep.Thresholds == nil {
		rep.Thresholds = []ThresholdResult{}
	}
	return &rep, nil
}

// jsonKeyPath turns encoding/json's field path ("metrics.Stats.requests")
// into the keys of the JSON ("metrics.requests"): embedded Go types name no
// key.
func jsonKeyPath(field string) string {
	var keys []string
	for _, f := range strings.Split(field, ".") {
		if f != "" && !unicode.IsUpper(rune(f[0])) {
			keys = append(keys, f)
		}
	}
	return strings.Join(keys, ".")
}

// jsonPosition is ":line:column" of a JSON error that knows its offset
// in raw, or "".
func jsonPosition(raw []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = max(se.Offset-1, 0) // the offending byte, which the offset is past
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(raw))
	}
	if off < 0 || off > int64(len(raw)) {
		return ""
	}
	before := raw[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(":%d:%d", line, col)
}

// loadReport reads the report file at path.
func loadReport(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeReport(f, path)
}

// reporter writes a Report in one format.
type reporter func(w io.Writer, r *Report) error

func jsonReport(w io.Writer, r *Report) error { return writeJSON(w, r) }

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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
	if _, err := fmt.Fprintf(w, "plan %s on %s: %s in %s (seed %d%s)\n", r.Plan, host, status, seconds(r.DurationS), r.Seed, shardNote(r)); err != nil {
		return err
	}
	for _, s := range r.Steps {
		if !s.Ran {
			if _, err := fmt.Fprintf(w, "\n== %s (%s): not run ==\n", s.Name, s.Kind); err != nil {
				return err
			}
			continue
		}
		state := s.state()
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
	if err := writeThresholds(w, r.Thresholds); err != nil {
		return err
	}
	return writeComparison(w, r.Baseline)
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

// pctOf returns 100*n/of, or nil when of is 0: a share of nothing is
// not known, not 0.
func pctOf(n, of int64) *float64 {
	if of == 0 {
		return nil
	}
	return ptr(100 * float64(n) / float64(of))
}

// optPct formats a share for tables: "95.0%", or "n/a".
func optPct(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64) + "%"
}

// pctString formats 100*n/of for tables.
func pctString(n, of int64) string { return optPct(pctOf(n, of)) }

// timeUnit is the one unit a table shows its times in.
type timeUnit struct {
	name   string  // as shown in headers: "µs", "ms" or "s"
	scale  float64 // units per second
	digits int
}

// unitFor chooses the unit for a table whose largest time is largest
// seconds: µs below a millisecond, ms below 10 s, else seconds. Every
// figure of the table then keeps at least two significant digits.
func unitFor(largest float64) timeUnit {
	switch {
	case largest < 1e-3:
		return timeUnit{"µs", 1e6, 1}
	case largest < 10:
		return timeUnit{"ms", 1e3, 2}
	}
	return timeUnit{"s", 1, 3}
}

// format writes seconds in the unit, without the unit's name. A time
// too small for the unit's decimals keeps two significant digits rather
// than reading 0.00.
func (u timeUnit) format(s float64) string {
	v, d := s*u.scale, u.digits
	if v > 0 && v < 0.5*math.Pow10(-d) {
		for v < 0.5*math.Pow10(-d) && d < 9 {
			d++
		}
		d++
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// writeRequestFacts writes the facts every request step shows, hey's
// summary first, then the kind's own facts.
func writeRequestFacts(w io.Writer, m metrics.Summary, own [][2]string) error {
	rate := "n/a"
	if m.RatePerS != nil {
		rate = strconv.FormatFloat(*m.RatePerS, 'f', 1, 64) + "/s"
	}
	if m.TargetRatePerS != nil {
		rate += " (target " + strconv.FormatFloat(*m.TargetRatePerS, 'f', 1, 64) + "/s)"
	}
	facts := [][2]string{{"REQUESTS", fmt.Sprintf("%d in %s at %s, %d without an answer, %d retries", m.Requests, seconds(m.RanForS), rate, m.Errors, m.Retries)}}
	if m.TargetRatePerS != nil || m.Missed > 0 || m.Saturated {
		load := fmt.Sprintf("%d missed, %s sent >10ms late, at most %d workers", m.Missed, optPct(m.LatePct), m.PeakWorkers)
		if m.Saturated { // every worker was busy when a request was due
			load = "SATURATED, " + load
		}
		facts = append(facts, [2]string{"SCHEDULE", load})
	}
	for _, d := range []struct {
		label string
		d     *metrics.DistSummary
	}{{"RESPONSE TIME", m.ResponseTime}, {"SERVICE TIME", m.ServiceTime}, {"SCHEDULE LAG", m.ScheduleLag}} {
		if d.d == nil || (d.label == "SERVICE TIME" && m.ScheduleLag == nil) {
			continue // without a schedule, service time is response time
		}
		u := unitFor(d.d.MaxS)
		facts = append(facts, [2]string{d.label + " " + u.name, fmt.Sprintf("min %s  p50 %s  p90 %s  p95 %s  p99 %s  max %s",
			u.format(d.d.MinS), u.format(d.d.P50S), u.format(d.d.P90S), u.format(d.d.P95S), u.format(d.d.P99S), u.format(d.d.MaxS))})
	}
	if m.Errors > 0 {
		t := m.TransportErrors
		facts = append(facts, [2]string{"NO ANSWER", fmt.Sprintf("%d (timeout %d, refused %d, reset %d, other %d)", m.Errors, t.Timeout, t.Refused, t.Reset, t.Other)})
	}
	if m.Cancelled > 0 {
		facts = append(facts, [2]string{"CANCELLED", fmt.Sprintf("%d by the interrupt, in no other count", m.Cancelled)})
	}
	return writeFacts(w, append(facts, own...))
}

// writeStatusTable writes the latency of each status a step received,
// in one unit.
func writeStatusTable(w io.Writer, m metrics.Summary) error {
	var largest float64
	for _, s := range m.ByStatus {
		largest = max(largest, s.ResponseTime.MaxS)
	}
	u := unitFor(largest)
	rows := make([][]string, 0, len(m.ByStatus))
	for _, s := range m.ByStatus {
		d := s.ResponseTime
		rows = append(rows, []string{strconv.Itoa(s.Status), strconv.FormatInt(s.Requests, 10), u.format(d.MinS),
			u.format(d.P50S), u.format(d.P90S), u.format(d.P95S), u.format(d.P99S), u.format(d.MaxS)})
	}
	n := " " + u.name
	return writeTable(w, []string{"STATUS", "COUNT", "MIN" + n, "P50" + n, "P90" + n, "P95" + n, "P99" + n, "MAX" + n}, rows)
}

// shorten cuts s to at most n characters by replacing its middle with
// "…", so that tables stay narrow; the JSON keeps the whole text.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 5 {
		return s
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
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
