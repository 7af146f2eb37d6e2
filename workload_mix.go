package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// MixStep runs download and symbolicate jobs on one schedule, each job's
// scenario drawn by weight (loadtest.py's molotov test, fixed).
type MixStep struct {
	Duration    Duration `yaml:"duration,omitempty"`
	MaxRequests int      `yaml:"max_requests,omitempty"`
	// Workers is the concurrency: requests in flight at once (with a
	// rate, the workers it starts with).
	Workers        *int    `yaml:"workers,omitempty"`
	Rate           float64 `yaml:"rate,omitempty"`
	MaxConcurrency int     `yaml:"max_concurrency,omitempty"`
	Stages         []Stage `yaml:"stages,omitempty"`
	// Balance draws as many rows expected to be found as rows expected
	// to be missing.
	Balance   bool         `yaml:"balance,omitempty"`
	Seed      *uint64      `yaml:"seed,omitempty"`
	Scenarios MixScenarios `yaml:"scenarios"`
}

// MixScenarios are the mix's scenarios; at least one.
type MixScenarios struct {
	Download    *MixDownload    `yaml:"download,omitempty"`
	Symbolicate *MixSymbolicate `yaml:"symbolicate,omitempty"`
}

// MixDownload is the download scenario: queries from a CSV.
type MixDownload struct {
	Weight     int    `yaml:"weight"`
	CSV        string `yaml:"csv"`
	MissingCSV string `yaml:"missing_csv,omitempty"`
}

// MixSymbolicate is the symbolicate scenario: stack files.
type MixSymbolicate struct {
	Weight    int    `yaml:"weight"`
	StacksDir string `yaml:"stacks_dir,omitempty"`
	API       string `yaml:"api,omitempty"`
	BatchSize *int   `yaml:"batch_size,omitempty"`
}

func (m *MixStep) kind() string { return "mix" }

func (m *MixStep) setDefaults(*Plan) {
	if m.Workers == nil {
		m.Workers = ptr(10)
	}
	if s := m.Scenarios.Symbolicate; s != nil {
		if s.API == "" {
			s.API = "v4"
		}
		if s.BatchSize == nil {
			s.BatchSize = ptr(1)
		}
	}
}

func (m *MixStep) validate(v *validator, path string) {
	v.atLeast(path+".workers", *m.Workers, 1)
	v.atLeast(path+".max_requests", m.MaxRequests, 0)
	v.atLeast(path+".max_concurrency", m.MaxConcurrency, 0)
	v.nonNegative(path+".rate", m.Rate)
	validateStages(v, path, m.Stages, m.Rate, m.Duration)
	if m.MaxRequests == 0 && m.Duration == 0 && len(m.Stages) == 0 {
		v.add(path+".duration", "is required (or max_requests, or stages): a mix cycles through its jobs until it is up")
	}
	sc := path + ".scenarios"
	d, s := m.Scenarios.Download, m.Scenarios.Symbolicate
	if d == nil && s == nil {
		v.add(sc, "needs download, symbolicate or both")
	}
	if d != nil {
		v.atLeast(sc+".download.weight", d.Weight, 1)
		if d.CSV == "" {
			v.add(sc+".download.csv", "is required: a CSV with the header URI,STATUS CODE,PRIVATE,COUNT")
		}
	}
	if s != nil {
		v.atLeast(sc+".symbolicate.weight", s.Weight, 1)
		validateAPI(v, sc+".symbolicate", s.API, *s.BatchSize)
	}
}

func (m *MixStep) needs() []need {
	if s := m.Scenarios.Symbolicate; s != nil && s.StacksDir == "" {
		return []need{{what: artifactStacks, field: ".scenarios.symbolicate.stacks_dir", hint: "or set stacks_dir"}}
	}
	return nil
}

func (m *MixStep) reads() []planFile {
	var files []planFile
	if d := m.Scenarios.Download; d != nil {
		files = append(files, planFile{"scenarios.download.csv", d.CSV}, planFile{"scenarios.download.missing_csv", d.MissingCSV})
	}
	if s := m.Scenarios.Symbolicate; s != nil {
		files = append(files, planFile{"scenarios.symbolicate.stacks_dir", s.StacksDir})
	}
	return files
}

// Scenario indexes, in the order of MixScenarios.
const (
	scenarioDownload = iota
	scenarioSymbolicate
)

// mixOutcome is one mix job: its scenario and that scenario's outcome.
type mixOutcome struct {
	scenario int
	dl       downloadOutcome
	sym      symOutcome
}

func (o mixOutcome) exchange() exchange {
	if o.scenario == scenarioDownload {
		return o.dl.exchange
	}
	return o.sym.exchange
}

// mixSource draws job i's scenario from i and the seed alone, so that
// workers share no random source and shards of a run split the same
// sequence; the scenario's own source then makes the job.
type mixSource struct {
	seed    uint64
	weights [2]int
	dl      *downloadSource
	sym     *symbolicateSource
}

// scenario picks job i's scenario by weight.
func (src *mixSource) scenario(i int) int {
	x := splitmix64(src.seed ^ uint64(i)*0x9e3779b97f4a7c15)
	if int(x%uint64(src.weights[0]+src.weights[1])) < src.weights[0] {
		return scenarioDownload
	}
	return scenarioSymbolicate
}

// warm opens the download scenario's connections before the step starts.
func (src *mixSource) warm(ctx context.Context, conns int) {
	if src.dl != nil {
		src.dl.warm(ctx, conns)
	}
}

func (src *mixSource) job(ctx context.Context, i int, s slot) mixOutcome {
	if k := src.scenario(i); k == scenarioDownload {
		return mixOutcome{scenario: k, dl: src.dl.job(ctx, i, s)}
	}
	o := src.sym.job(ctx, i, s)
	return mixOutcome{scenario: scenarioSymbolicate, sym: o}
}

// splitmix64 is a good 64-bit mix of x (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (m *MixStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	seed := rc.stepSeed(m.Seed, rc.stepIndex)
	total := -1
	if m.MaxRequests > 0 {
		total = m.MaxRequests
	}
	p := pace{concurrency: *m.Workers, maxConcurrency: m.MaxConcurrency, rate: m.Rate, stages: m.Stages,
		duration: time.Duration(m.Duration), total: total, linger: time.Duration(rc.plan.Timeout)}
	src := &mixSource{seed: seed}
	agg := &mixAgg{requests: newRequests(p), res: m.emptyResult()}
	tr := rc.transport(maxWorkersOf(p))
	defer tr.CloseIdleConnections()
	if d := m.Scenarios.Download; d != nil {
		qs, codes, err := loadDownloadJobs(rc, d.CSV, d.MissingCSV, false, seed)
		if err != nil {
			return agg.res, err
		}
		if m.Balance {
			agg.res.Balance = balance(qs)
		}
		if len(qs.jobs) == 0 {
			if m.Balance {
				return agg.res, fmt.Errorf("%s: balance keeps nothing: %d jobs expected to be found, %d expected to be missing", d.CSV, agg.res.Balance.FoundJobs, agg.res.Balance.MissingJobs)
			}
			return agg.res, fmt.Errorf("%s: no usable rows to download", d.CSV)
		}
		src.weights[scenarioDownload] = d.Weight
		src.dl = newDownloadSource(rc, tr, maxWorkersOf(p), qs, codes, rc.host, true)
		defer src.dl.close()
		agg.dl = newDownloadAgg(qs, p)
		agg.weights[scenarioDownload] = d.Weight
	}
	if s := m.Scenarios.Symbolicate; s != nil {
		dir, err := stacksDir(rc, s.StacksDir)
		if err != nil {
			return agg.res, err
		}
		files, skipped, err := loadShuffledStacks(dir, false, seed)
		if err != nil {
			return agg.res, err
		}
		if len(files) == 0 {
			return agg.res, fmt.Errorf("%s: no usable stack files (%d skipped)", dir, len(skipped))
		}
		src.weights[scenarioSymbolicate] = s.Weight
		src.sym = &symbolicateSource{files: files, size: *s.BatchSize, endpoint: rc.symHost + "/symbolicate/" + s.API,
			v5: s.API == "v5", rt: tr, userAgent: rc.plan.UserAgent, pol: symbolicatePolicy(time.Duration(rc.plan.Timeout))}
		agg.sym = newSymbolicateAgg(len(files), skipped, p)
		agg.weights[scenarioSymbolicate] = s.Weight
	}
	is, err := drive(ctx, rc, p, src, agg)
	agg.load(is)
	res, ferr := agg.result()
	if err == nil {
		err = ferr
	}
	return res, err
}

// balance keeps as many jobs expected to be found (logged 200) as
// expected to be missing (logged 403 or 404): the smaller group sets the
// count, and jobs of other statuses are left out. The jobs are already
// shuffled, so the first of each are kept.
func balance(qs *queries) *MixBalance {
	b := &MixBalance{}
	missing := func(j uint32) bool {
		e := qs.rows[j].expect
		return e == http.StatusNotFound || e == http.StatusForbidden
	}
	for _, j := range qs.jobs {
		switch {
		case qs.rows[j].expect == http.StatusOK:
			b.FoundJobs++
		case missing(j):
			b.MissingJobs++
		}
	}
	keep := min(b.FoundJobs, b.MissingJobs)
	kept := qs.jobs[:0]
	for _, j := range qs.jobs {
		found := qs.rows[j].expect == http.StatusOK
		switch {
		case found && b.KeptFound < keep:
			b.KeptFound++
		case missing(j) && b.KeptMissing < keep:
			b.KeptMissing++
		default:
			continue
		}
		kept = append(kept, j)
	}
	qs.jobs = kept
	return b
}

// MixResult is the report of a mix step.
type MixResult struct {
	// Metrics are the request metrics of every job, whatever its scenario.
	Metrics   metrics.Summary    `json:"metrics"`
	Scenarios MixScenarioResults `json:"scenarios"`
	// Balance says how many jobs of each group balance kept; null
	// without balance.
	Balance *MixBalance `json:"balance"`
	// CheckFailures counts the answers that failed loadtest.py's checks,
	// over every scenario.
	CheckFailures int `json:"check_failures"`
}

// MixScenarioResults hold each scenario's report; null for a scenario the
// plan does not have.
type MixScenarioResults struct {
	Download    *MixDownloadResult    `json:"download"`
	Symbolicate *MixSymbolicateResult `json:"symbolicate"`
}

// MixShare is what every scenario reports beside its kind's result.
type MixShare struct {
	Weight int `json:"weight"`
	// Draws is how many jobs drew this scenario; SharePct their share of
	// all jobs (null without jobs).
	Draws    int      `json:"draws"`
	SharePct *float64 `json:"share_pct"`
	// CheckFailures counts answers that failed the scenario's checks;
	// CheckSamples says what was wrong with the first few.
	CheckFailures int      `json:"check_failures"`
	CheckSamples  []string `json:"check_samples"`
}

// MixDownloadResult is the download scenario's report: its share, and a
// download step's report of its jobs.
type MixDownloadResult struct {
	MixShare
	DownloadResult
}

// MixSymbolicateResult is the symbolicate scenario's report.
type MixSymbolicateResult struct {
	MixShare
	SymbolicateResult
}

// MixBalance is what balance: true kept of the download rows' jobs.
type MixBalance struct {
	FoundJobs   int `json:"found_jobs"`
	MissingJobs int `json:"missing_jobs"`
	KeptFound   int `json:"kept_found"`
	KeptMissing int `json:"kept_missing"`
}

func newMixResult() *MixResult {
	return &MixResult{Metrics: metrics.New(false).Summary()}
}

// emptyResult is the report of a mix that failed before it started: its
// scenarios are there, with their kinds' empty reports.
func (m *MixStep) emptyResult() *MixResult {
	r := newMixResult()
	if d := m.Scenarios.Download; d != nil {
		k, _ := kindByName("download")
		r.Scenarios.Download = &MixDownloadResult{MixShare: MixShare{Weight: d.Weight, CheckSamples: []string{}}, DownloadResult: *k.result().(*DownloadResult)}
	}
	if s := m.Scenarios.Symbolicate; s != nil {
		k, _ := kindByName("symbolicate")
		r.Scenarios.Symbolicate = &MixSymbolicateResult{MixShare: MixShare{Weight: s.Weight, CheckSamples: []string{}}, SymbolicateResult: *k.result().(*SymbolicateResult)}
	}
	return r
}

// maxCheckSamples bounds the check failures kept as samples.
const maxCheckSamples = 5

// mixAgg adds up a mix: the whole step's metrics, and each scenario's own
// aggregate.
type mixAgg struct {
	requests
	res     *MixResult
	weights [2]int
	dl      *downloadAgg
	sym     *symbolicateAgg
	draws   [2]int
	checks  [2][]string
	fails   [2]int
}

func (a *mixAgg) add(o mixOutcome) (failed bool) {
	e := o.exchange()
	a.count(e)
	if o.scenario == scenarioDownload {
		failed = a.dl.add(o.dl)
	} else {
		failed = a.sym.add(o.sym)
	}
	if e.Class == classCancelled {
		return false
	}
	a.draws[o.scenario]++
	var why string
	switch {
	case o.scenario == scenarioDownload:
		why = o.dl.checkFailure
	case e.Status == 0:
	case e.Status != http.StatusOK:
		why = fmt.Sprintf("symbolicate answered %d", e.Status)
	case o.sym.invalid != "":
		why = o.sym.invalid
	}
	if why == "" {
		return failed
	}
	a.fails[o.scenario]++
	if len(a.checks[o.scenario]) < maxCheckSamples {
		a.checks[o.scenario] = append(a.checks[o.scenario], why)
	}
	return true
}

func (a *mixAgg) result() (*MixResult, error) {
	r := a.res
	m, err := a.summary()
	r.Metrics = m
	total := int64(a.draws[0] + a.draws[1])
	share := func(k int) MixShare {
		return MixShare{Weight: a.weights[k], Draws: a.draws[k], SharePct: pctOf(int64(a.draws[k]), total),
			CheckFailures: a.fails[k], CheckSamples: append([]string{}, a.checks[k]...)}
	}
	if a.dl != nil {
		dr, _ := a.dl.result()
		r.Scenarios.Download = &MixDownloadResult{MixShare: share(scenarioDownload), DownloadResult: *dr}
	}
	if a.sym != nil {
		sr, _ := a.sym.result()
		r.Scenarios.Symbolicate = &MixSymbolicateResult{MixShare: share(scenarioSymbolicate), SymbolicateResult: *sr}
	}
	r.CheckFailures = a.fails[0] + a.fails[1]
	if err == nil && m.Requests > 0 && int64(r.CheckFailures) == m.Requests-m.Errors && m.Errors < m.Requests {
		err = errors.New("every answer failed its scenario's checks")
	}
	return r, err
}

func (r *MixResult) writeTable(w io.Writer) error {
	facts := [][2]string{{"CHECK FAILURES", strconv.Itoa(r.CheckFailures)}}
	if b := r.Balance; b != nil {
		facts = append(facts, [2]string{"BALANCE", fmt.Sprintf("kept %d of %d found and %d of %d missing jobs",
			b.KeptFound, b.FoundJobs, b.KeptMissing, b.MissingJobs)})
	}
	if err := writeRequestFacts(w, r.Metrics, facts); err != nil {
		return err
	}
	section := func(name string, sh MixShare, body stepResult) error {
		if _, err := fmt.Fprintf(w, "\n-- scenario %s: weight %d, %d jobs (%s), %d check failures --\n", name, sh.Weight, sh.Draws, optPct(sh.SharePct), sh.CheckFailures); err != nil {
			return err
		}
		for _, s := range sh.CheckSamples {
			if _, err := fmt.Fprintf(w, "check failed: %s\n", shorten(s, 84)); err != nil {
				return err
			}
		}
		return body.writeTable(w)
	}
	if d := r.Scenarios.Download; d != nil {
		if err := section("download", d.MixShare, &d.DownloadResult); err != nil {
			return err
		}
	}
	if s := r.Scenarios.Symbolicate; s != nil {
		if err := section("symbolicate", s.MixShare, &s.SymbolicateResult); err != nil {
			return err
		}
	}
	return nil
}

func (r *MixResult) requestMetrics() *metrics.Summary { return &r.Metrics }

// mixMetric finds a mix metric: the step's own, or a scenario's as
// "download.p99" and "symbolicate.symbolicated_pct".
func mixMetric(name string) (metricDef, bool) {
	scen, rest, ok := strings.Cut(name, ".")
	if !ok {
		return metricDef{}, false
	}
	var pick func(r stepResult) stepResult
	switch scen {
	case "download":
		pick = func(r stepResult) stepResult {
			if d := r.(*MixResult).Scenarios.Download; d != nil {
				return &d.DownloadResult
			}
			return nil
		}
	case "symbolicate":
		pick = func(r stepResult) stepResult {
			if s := r.(*MixResult).Scenarios.Symbolicate; s != nil {
				return &s.SymbolicateResult
			}
			return nil
		}
	default:
		return metricDef{}, false
	}
	k, _ := kindByName(scen)
	def, ok := lookupMetric(k, rest)
	if !ok {
		return metricDef{}, false
	}
	get := def.get
	def.name = name
	def.get = func(r stepResult) *float64 {
		if sub := pick(r); sub != nil {
			return get(sub)
		}
		return nil
	}
	return def, true
}
