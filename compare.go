package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Comparison is a report compared with a baseline: a previous report of
// the same plan, step by step.
type Comparison struct {
	// Baseline is the baseline report's file.
	Baseline string `json:"baseline"`
	// BaselinePlanSHA256 is its plan_sha256; it differs from the run's
	// only with -baseline-any-plan.
	BaselinePlanSHA256 string `json:"baseline_plan_sha256"`
	// TolerancePct is how much worse a figure may get before it counts as
	// a regression, in percent of the baseline's value.
	TolerancePct float64 `json:"tolerance_pct"`
	// Regressions is the number of rows that regressed.
	Regressions int `json:"regressions"`
	// Rows compare one figure of one step; [] when no step is in both.
	Rows []ComparisonRow `json:"rows"`
	// MissingSteps are steps that ran in only one of the two reports.
	MissingSteps []MissingStep `json:"missing_steps"`
	// Notes say what makes the comparison less sure: a baseline that was
	// interrupted or whose step failed, a step of another kind; [] when
	// none.
	Notes []string `json:"notes"`
}

// ComparisonRow compares one figure of a step.
type ComparisonRow struct {
	Step   string `json:"step"`
	Metric string `json:"metric"`
	// Unit is the figures' unit: "s", "%", "/s" or "" (counts, ratios).
	Unit string `json:"unit"`
	// Old and New are the baseline's and the run's values; null when a
	// report could not know it.
	Old *float64 `json:"old"`
	New *float64 `json:"new"`
	// ChangePct is (new - old) / old in percent; null when old is 0 or
	// either is unknown.
	ChangePct *float64 `json:"change_pct"`
	// Regression is true when the figure got worse by more than the
	// tolerance (and by more than the figure's noise floor).
	Regression bool `json:"regression"`
}

// MissingStep is a step that only one of the reports has.
type MissingStep struct {
	Step string `json:"step"`
	// In is "baseline" or "run": the report in which the step ran.
	In string `json:"in"`
}

// compared is a figure that baselines compare: lower is better unless
// higherBetter, and a change smaller than floor (in the metric's unit) is
// noise, never a regression.
type compared struct {
	metric       string
	higherBetter bool
	floor        float64
}

// comparedFigures are the figures compared for every request step; then
// each kind's headline figure.
var comparedFigures = []compared{
	{"p50", false, 0.001}, {"p95", false, 0.001}, {"p99", false, 0.001},
	{"error_ratio", false, 0.001}, {"rate", true, 0},
}

var headlineFigures = map[string]compared{
	"download":    {"right_pct", true, 0},
	"symbolicate": {"symbolicated_pct", true, 0},
	"upload":      {"failed", false, 0},
}

// compareReports compares run with base, step by step by name.
func compareReports(base, run *Report, baseName string, tolerance float64) *Comparison {
	c := &Comparison{Baseline: baseName, BaselinePlanSHA256: base.PlanSHA256, TolerancePct: tolerance * 100,
		Rows: []ComparisonRow{}, MissingSteps: []MissingStep{}, Notes: []string{}}
	if base.Interrupted {
		c.Notes = append(c.Notes, "the baseline run was interrupted: its figures are partial")
	}
	for _, s := range run.Steps {
		if !s.Ran {
			continue // listed below if it ran in the baseline
		}
		i := slices.IndexFunc(base.Steps, func(b StepReport) bool { return b.Name == s.Name && b.Ran })
		if i < 0 {
			c.MissingSteps = append(c.MissingSteps, MissingStep{Step: s.Name, In: "run"})
			continue
		}
		b := base.Steps[i]
		k, ok := kindByName(s.Kind)
		if !ok || b.Kind != s.Kind {
			c.Notes = append(c.Notes, fmt.Sprintf("step %s is a %s step, in the baseline a %s step: not compared", s.Name, s.Kind, b.Kind))
			continue
		}
		if !b.OK {
			c.Notes = append(c.Notes, fmt.Sprintf("step %s failed in the baseline", s.Name))
		}
		var figs []compared
		if k.requests {
			figs = append(figs, comparedFigures...)
		}
		if h, ok := headlineFigures[k.name]; ok {
			figs = append(figs, h)
		}
		for _, f := range figs {
			def, _ := lookupMetric(k, f.metric)
			row := ComparisonRow{Step: s.Name, Metric: f.metric, Unit: def.unit.symbol(), Old: def.get(b.result), New: def.get(s.result)}
			if row.Old != nil && row.New != nil {
				old, now := *row.Old, *row.New
				if old != 0 {
					row.ChangePct = ptr(100 * (now - old) / math.Abs(old))
				}
				worse := now - old
				if f.higherBetter {
					worse = -worse
				}
				row.Regression = worse > f.floor && worse > tolerance*math.Abs(old)
			}
			if row.Regression {
				c.Regressions++
			}
			c.Rows = append(c.Rows, row)
		}
	}
	for _, b := range base.Steps {
		if b.Ran && !slices.ContainsFunc(run.Steps, func(s StepReport) bool { return s.Name == b.Name && s.Ran }) {
			c.MissingSteps = append(c.MissingSteps, MissingStep{Step: b.Name, In: "baseline"})
		}
	}
	return c
}

// regressionError is a run that regressed from its baseline (exit 3).
type regressionError struct{ n int }

func (e regressionError) Error() string {
	return fmt.Sprintf("%d figure(s) regressed from the baseline beyond the tolerance", e.n)
}

// Error returns the comparison's verdict: nil, or a regressionError.
func (c *Comparison) Error() error {
	if c == nil || c.Regressions == 0 {
		return nil
	}
	return regressionError{c.Regressions}
}

// writeComparison writes the comparison table.
func writeComparison(w io.Writer, c *Comparison) error {
	if c == nil {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\n== compared with %s (tolerance %s%%): %d regression(s) ==\n",
		shorten(c.Baseline, 50), strconv.FormatFloat(c.TolerancePct, 'f', -1, 64), c.Regressions); err != nil {
		return err
	}
	rows := make([][]string, 0, len(c.Rows))
	for _, r := range c.Rows {
		change, verdict := "n/a", "ok"
		if r.ChangePct != nil {
			change = fmt.Sprintf("%+.1f%%", *r.ChangePct)
		}
		if r.Regression {
			verdict = "REGRESSION"
		}
		rows = append(rows, []string{shorten(r.Step, 24), r.Metric, figure(r.Old, r.Unit), figure(r.New, r.Unit), change, verdict})
	}
	if err := writeTable(w, []string{"STEP", "METRIC", "BASELINE", "NOW", "CHANGE", "RESULT"}, rows, 1, 5); err != nil {
		return err
	}
	for _, m := range c.MissingSteps {
		if _, err := fmt.Fprintf(w, "step %s is only in the %s\n", m.Step, m.In); err != nil {
			return err
		}
	}
	for _, n := range c.Notes {
		if _, err := fmt.Fprintf(w, "note: %s\n", n); err != nil {
			return err
		}
	}
	return nil
}

// figure formats a compared value with its unit: times in ms.
func figure(v *float64, unit string) string {
	switch {
	case v == nil:
		return "n/a"
	case unit == "s":
		return unitFor(1).format(*v) + "ms"
	}
	return strconv.FormatFloat(*v, 'g', 5, 64) + unit
}

// tolerance is a -tolerance flag: "10%" or "0.1".
type tolerance float64

func (t *tolerance) String() string { return strconv.FormatFloat(float64(*t)*100, 'f', -1, 64) + "%" }

func (t *tolerance) Set(s string) error {
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || (!pct && v > 1) {
		return errors.New("must be a percentage such as 10% (or a fraction from 0 to 1, such as 0.1)")
	}
	if pct {
		v /= 100
	}
	*t = tolerance(v)
	return nil
}

// loadBaseline reads a baseline report and checks that it is of the same
// plan, unless anyPlan.
func loadBaseline(path, planSHA string, anyPlan bool) (*Report, error) {
	base, err := loadReport(path)
	if err != nil {
		return nil, usageErrorf("-baseline: %w", err)
	}
	if base.PlanSHA256 != planSHA && !anyPlan {
		return nil, usageErrorf("-baseline %s is a report of another plan (plan_sha256 %.12s…, this plan's is %.12s…); compare anyway with -baseline-any-plan",
			path, base.PlanSHA256, planSHA)
	}
	return base, nil
}

// runCompareCmd is "teckenrun compare OLD.json NEW.json": the baseline
// comparison of two saved reports, with a run's exit codes (0 none, 3 a
// regression, 2 unusable input).
func runCompareCmd(args []string, stdout, stderr io.Writer, term terminal) error {
	fs := flag.NewFlagSet("teckenrun compare", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "auto", "output `auto|table|json`")
	tol := tolerance(0.1)
	fs.Var(&tol, "tolerance", "how much worse a figure may get, such as `10%`")
	anyPlan := fs.Bool("baseline-any-plan", false, "compare reports of different plans")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: teckenrun compare [-format auto|table|json] [-tolerance 10%%] [-baseline-any-plan] OLD.json NEW.json\n\nCompares a report with a baseline, as -baseline does after a run.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 2 {
		return usageErrorf("compare: want OLD.json NEW.json, got %d arguments", fs.NArg())
	}
	if *format != "auto" && *format != "table" && *format != "json" {
		return usageErrorf("-format must be auto, table or json, got %q", *format)
	}
	run, err := loadReport(fs.Arg(1))
	if err != nil {
		return usageError{err}
	}
	base, err := loadBaseline(fs.Arg(0), run.PlanSHA256, *anyPlan)
	if err != nil {
		return err
	}
	c := compareReports(base, run, fs.Arg(0), float64(tol))
	if *format == "table" || (*format == "auto" && term.stdout) {
		err = writeComparison(stdout, c)
	} else {
		err = writeJSON(stdout, c)
	}
	if err != nil {
		return err
	}
	return c.Error()
}
