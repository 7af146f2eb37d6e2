package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// unit is how a metric's values are written in thresholds and shown.
type unit int

const (
	unitCount   unit = iota // a whole number
	unitSeconds             // a duration: thresholds write it with a unit (800ms, 2s)
	unitRatio               // 0..1
	unitPct                 // 0..100
	unitRate                // per second
)

func (u unit) String() string {
	return [...]string{"count", "duration", "ratio 0..1", "percent", "per second"}[u]
}

// symbol is how the report writes the unit: after values in tables, and
// in ThresholdResult.Unit.
func (u unit) symbol() string {
	return [...]string{"", "s", "", "%", "/s"}[u]
}

// metricDef is a metric that thresholds (and baselines) can name: its
// name, unit and meaning, and how to read it from a step's result. get
// returns nil when the value cannot be known (a share of nothing).
type metricDef struct {
	name string
	unit unit
	doc  string
	get  func(r stepResult) *float64
}

// requestResult is a result that carries the shared request metrics.
type requestResult interface {
	stepResult
	requestMetrics() *metrics.Summary
}

func (r *DownloadResult) requestMetrics() *metrics.Summary    { return &r.Metrics }
func (r *SymbolicateResult) requestMetrics() *metrics.Summary { return &r.Metrics }
func (r *UploadResult) requestMetrics() *metrics.Summary      { return &r.Metrics }

// quantiles are the latency figures every distribution has, by the name
// thresholds use.
var quantiles = []struct {
	name string
	get  func(d *metrics.DistSummary) float64
}{
	{"min", func(d *metrics.DistSummary) float64 { return d.MinS }},
	{"mean", func(d *metrics.DistSummary) float64 { return d.MeanS }},
	{"p50", func(d *metrics.DistSummary) float64 { return d.P50S }},
	{"p90", func(d *metrics.DistSummary) float64 { return d.P90S }},
	{"p95", func(d *metrics.DistSummary) float64 { return d.P95S }},
	{"p99", func(d *metrics.DistSummary) float64 { return d.P99S }},
	{"p999", func(d *metrics.DistSummary) float64 { return d.P999S }},
	{"max", func(d *metrics.DistSummary) float64 { return d.MaxS }},
}

// requestMetricDefs are the metrics of every request-issuing kind.
func requestMetricDefs() []metricDef {
	m := func(r stepResult) *metrics.Summary { return r.(requestResult).requestMetrics() }
	count := func(f func(s *metrics.Summary) int64) func(stepResult) *float64 {
		return func(r stepResult) *float64 { return ptr(float64(f(m(r)))) }
	}
	defs := []metricDef{
		{"requests", unitCount, "requests that finished (with an answer or after every retry)", count(func(s *metrics.Summary) int64 { return s.Requests })},
		{"errors", unitCount, "requests that got no HTTP answer", count(func(s *metrics.Summary) int64 { return s.Errors })},
		{"error_ratio", unitRatio, "errors / requests", func(r stepResult) *float64 {
			s := m(r)
			if s.Requests == 0 {
				return nil
			}
			return ptr(float64(s.Errors) / float64(s.Requests))
		}},
		{"retries", unitCount, "attempts after the first", count(func(s *metrics.Summary) int64 { return s.Retries })},
		{"cancelled", unitCount, "requests cut off by an interrupt", count(func(s *metrics.Summary) int64 { return s.Cancelled })},
		{"rate", unitRate, "achieved requests per second", func(r stepResult) *float64 { return m(r).RatePerS }},
	}
	for _, d := range []struct {
		prefix, what string
		dist         func(s *metrics.Summary) *metrics.DistSummary
	}{
		{"", "response time", func(s *metrics.Summary) *metrics.DistSummary { return s.ResponseTime }},
		{"service.", "service time", func(s *metrics.Summary) *metrics.DistSummary { return s.ServiceTime }},
		{"lag.", "schedule lag (rate-driven steps)", func(s *metrics.Summary) *metrics.DistSummary { return s.ScheduleLag }},
	} {
		for _, q := range quantiles {
			defs = append(defs, metricDef{d.prefix + q.name, unitSeconds, q.name + " of the " + d.what, func(r stepResult) *float64 {
				if dist := d.dist(m(r)); dist != nil {
					return ptr(q.get(dist))
				}
				return nil
			}})
		}
	}
	return defs
}

// statusMetric matches the per-status metrics: status.502.count,
// status.200.p95, ...
var statusMetric = regexp.MustCompile(`^status\.([1-9][0-9][0-9])\.(count|` + quantileNames() + `)$`)

func quantileNames() string {
	names := make([]string, len(quantiles))
	for i, q := range quantiles {
		names[i] = q.name
	}
	return strings.Join(names, "|")
}

// metricsOf lists the metrics of a kind: the shared request metrics for
// request kinds, then the kind's own.
func metricsOf(k kindSpec) []metricDef {
	var defs []metricDef
	if k.requests {
		defs = requestMetricDefs()
	}
	return append(defs, k.metrics...)
}

// lookupMetric finds a kind's metric by name, per-status metrics
// included.
func lookupMetric(k kindSpec, name string) (metricDef, bool) {
	defs := metricsOf(k)
	if i := slices.IndexFunc(defs, func(d metricDef) bool { return d.name == name }); i >= 0 {
		return defs[i], true
	}
	if k.name == "mix" {
		if def, ok := mixMetric(name); ok {
			return def, true
		}
	}
	sub := statusMetric.FindStringSubmatch(name)
	if sub == nil || !k.requests {
		return metricDef{}, false
	}
	status, _ := strconv.Atoi(sub[1])
	find := func(r stepResult) *metrics.StatusSummary {
		for i, s := range r.(requestResult).requestMetrics().ByStatus {
			if s.Status == status {
				return &r.(requestResult).requestMetrics().ByStatus[i]
			}
		}
		return nil
	}
	if sub[2] == "count" {
		return metricDef{name, unitCount, "responses with that status", func(r stepResult) *float64 {
			if s := find(r); s != nil {
				return ptr(float64(s.Requests))
			}
			return ptr(0.0)
		}}, true
	}
	q := quantiles[slices.IndexFunc(quantiles, func(q struct {
		name string
		get  func(d *metrics.DistSummary) float64
	}) bool {
		return q.name == sub[2]
	})]
	return metricDef{name, unitSeconds, q.name + " of the response time of that status", func(r stepResult) *float64 {
		if s := find(r); s != nil && s.ResponseTime != nil {
			return ptr(q.get(s.ResponseTime))
		}
		return nil
	}}, true
}

// threshold is one parsed entry of a plan's thresholds.
type threshold struct {
	expr   string
	step   string
	metric metricDef
	op     string
	value  float64
}

var thresholdOps = []string{"<=", ">=", "==", "!=", "<", ">"}

// namedKind is what a threshold needs of a step: its name and kind.
type namedKind struct{ name, kind string }

// parseThreshold parses "STEP.METRIC OP VALUE" against the plan's steps.
func (p *Plan) parseThreshold(expr string) (threshold, error) {
	steps := make([]namedKind, 0, len(p.Steps))
	for _, s := range p.Steps {
		if ws := s.workloads(); len(ws) == 1 {
			steps = append(steps, namedKind{s.Name, ws[0].kind()})
		}
	}
	return parseThreshold(expr, steps)
}

// parseThreshold parses "STEP.METRIC OP VALUE" against steps: the step by
// name, the metric from the registry of its kind.
func parseThreshold(expr string, steps []namedKind) (threshold, error) {
	fields := strings.Fields(expr)
	if len(fields) != 3 || !slices.Contains(thresholdOps, fields[1]) {
		return threshold{}, fmt.Errorf("%q is not STEP.METRIC OP VALUE (OP one of %s), such as \"download.p95 < 800ms\"", expr, strings.Join(thresholdOps, " "))
	}
	lhs, op, rhs := fields[0], fields[1], fields[2]
	var step *namedKind
	for i := range steps {
		if s := &steps[i]; strings.HasPrefix(lhs, s.name+".") && (step == nil || len(s.name) > len(step.name)) {
			step = s
		}
	}
	if step == nil {
		var names []string
		for _, s := range steps {
			names = append(names, s.name)
		}
		msg := fmt.Sprintf("%q names no step of the plan (its steps are: %s)", lhs, strings.Join(names, ", "))
		if name, _, ok := strings.Cut(lhs, "."); ok {
			if best := closest(name, names); best != "" {
				msg += fmt.Sprintf("; did you mean %q?", best)
			}
		}
		return threshold{}, errors.New(msg)
	}
	k, ok := kindByName(step.kind)
	if !ok {
		return threshold{}, fmt.Errorf("step %q has kind %q, which this teckenrun does not know", step.name, step.kind)
	}
	name := strings.TrimPrefix(lhs, step.name+".")
	def, ok := lookupMetric(k, name)
	if !ok {
		var names []string
		for _, d := range metricsOf(k) {
			names = append(names, d.name)
		}
		msg := fmt.Sprintf("%s steps have no metric %q (teckenrun metrics %s lists them)", k.name, name, k.name)
		if best := closest(name, names); best != "" {
			msg += fmt.Sprintf("; did you mean %q?", best)
		}
		return threshold{}, errors.New(msg)
	}
	v, err := parseThresholdValue(rhs, def.unit)
	if err != nil {
		return threshold{}, fmt.Errorf("%s: %w", expr, err)
	}
	return threshold{expr: expr, step: step.name, metric: def, op: op, value: v}, nil
}

// parseThresholdValue reads a threshold's right-hand side in the
// metric's unit: a duration with a unit, a ratio 0..1, or a number.
func parseThresholdValue(s string, u unit) (float64, error) {
	switch u {
	case unitSeconds:
		if s == "0" {
			return 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration; write it with a unit, such as 800ms or 2s", s)
		}
		return d.Seconds(), nil
	case unitPct:
		s = strings.TrimSuffix(s, "%")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number (%s)", s, u)
	}
	if u == unitRatio && (v < 0 || v > 1) {
		return 0, fmt.Errorf("%v is not a ratio: ratios are 0..1 (write 0.01 for 1%%)", v)
	}
	return v, nil
}

// ThresholdResult is one threshold, evaluated after the run.
type ThresholdResult struct {
	// Expr is the threshold as the plan wrote it.
	Expr string `json:"expr"`
	// Value is the metric's value, in the metric's unit (seconds for
	// times); null when it could not be known (the step did not run, or
	// nothing was measured).
	Value *float64 `json:"value"`
	// Unit is the value's unit: "s", "%", "/s", or "" for counts and
	// ratios.
	Unit string `json:"unit"`
	// OK says whether the threshold held; null when its step was not part
	// of the run (-only).
	OK *bool `json:"ok"`
	// Note says why a threshold has no value ("" when it has one).
	Note string `json:"note"`
}

// evaluate checks each threshold against the report's steps.
func evaluate(ts []threshold, r *Report, selected map[string]bool) []ThresholdResult {
	out := make([]ThresholdResult, 0, len(ts))
	for _, t := range ts {
		res := ThresholdResult{Expr: t.expr, Unit: t.metric.unit.symbol()}
		i := slices.IndexFunc(r.Steps, func(s StepReport) bool { return s.Name == t.step })
		switch {
		case !selected[t.step]:
			res.Note = "step not selected with -only"
		case i < 0 || !r.Steps[i].Ran:
			res.Note = "step did not run"
			res.OK = ptr(false)
		default:
			if res.Value = t.metric.get(r.Steps[i].result); res.Value == nil {
				res.Note = "no value: nothing was measured"
			}
			res.OK = ptr(res.Value != nil && compare(*res.Value, t.op, t.value))
			if r.Interrupted && res.Note == "" {
				res.Note = "on a partial, interrupted run"
			}
		}
		out = append(out, res)
	}
	return out
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "==":
		return a == b
	}
	return a != b
}

// thresholdsError is a run whose thresholds did not all hold (exit 3).
type thresholdsError struct{ failed []string }

func (e thresholdsError) Error() string {
	return fmt.Sprintf("%d threshold(s) not met: %s", len(e.failed), strings.Join(e.failed, "; "))
}

// failedThresholds returns the error for the thresholds that did not
// hold, or nil.
func failedThresholds(rs []ThresholdResult) error {
	var failed []string
	for _, r := range rs {
		if r.OK != nil && !*r.OK {
			failed = append(failed, r.Expr)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return thresholdsError{failed}
}

// writeThresholds writes the thresholds table.
func writeThresholds(w io.Writer, rs []ThresholdResult) error {
	if len(rs) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "\n== thresholds =="); err != nil {
		return err
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		value, result := "n/a", "not run"
		if r.Value != nil {
			value = strconv.FormatFloat(*r.Value, 'g', 6, 64) + r.Unit
		}
		if r.OK != nil {
			result = "ok"
			if !*r.OK {
				result = "FAILED"
			}
		}
		if r.Note != "" {
			result += " (" + r.Note + ")"
		}
		rows = append(rows, []string{shorten(r.Expr, 44), value, result})
	}
	return writeTable(w, []string{"THRESHOLD", "VALUE", "RESULT"}, rows, 2)
}

// runMetricsCmd is "teckenrun metrics KIND": the metric names that
// thresholds can use on a kind's steps.
func runMetricsCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageErrorf("usage: teckenrun metrics KIND (one of: %s)", strings.Join(kindNames(), ", "))
	}
	k, ok := kindByName(args[0])
	if !ok {
		return usageErrorf("metrics: no step kind %q (one of: %s)", args[0], strings.Join(kindNames(), ", "))
	}
	var rows [][]string
	for _, d := range metricsOf(k) {
		rows = append(rows, []string{d.name, d.unit.String(), d.doc})
	}
	if k.requests {
		rows = append(rows, []string{"status.NNN.count", unitCount.String(), "responses with HTTP status NNN"},
			[]string{"status.NNN.p95 (min … max)", unitSeconds.String(), "response time of the responses with status NNN"})
	}
	if err := writeTable(stdout, []string{"METRIC", "UNIT", "MEANING"}, rows, 1, 2); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "In a plan: thresholds: [\"STEP.METRIC OP VALUE\"], such as \"%s.%s\".\n", k.name, exampleThreshold(k))
	return err
}

func exampleThreshold(k kindSpec) string {
	if k.requests {
		return "p95 < 800ms"
	}
	return metricsOf(k)[0].name + " > 0"
}
