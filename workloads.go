package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// workload is what every step kind implements.
type workload interface {
	kind() string
	// setDefaults fills in unset keys, some of which come from the plan.
	setDefaults(p *Plan)
	// validate reports problems through v; path is like "steps[2].download".
	validate(v *validator, path string)
	// needs says what the step takes from earlier steps of the run.
	needs() []need
	// run does the step's work and returns its result. A failed request is
	// part of the result; an error means the step itself failed. run returns
	// a result even with an error when part of the work was done.
	run(ctx context.Context, rc *runContext) (stepResult, error)
}

// runSettings are the parts of a run that come from flags, not the plan.
type runSettings struct {
	stdin io.Reader
	grace time.Duration
	// progressTo is where steps report their progress (stderr); nil for
	// none (-quiet).
	progressTo io.Writer
	// live says progressTo is a terminal: a line redrawn in place, rather
	// than a status line every statusEvery.
	live  bool
	clock clock     // nil: the real clock
	shard shardSpec // the run's shard; zero when unsharded

	// stdinPrompt is where a step that reads stdin says so, when stdin is
	// a terminal (nil otherwise).
	stdinPrompt io.Writer
}

// selectSteps returns the indexes of the steps to run: all, or those
// named in only (comma-separated).
func (p *Plan) selectSteps(only string) ([]int, error) {
	var idx []int
	if only == "" {
		for i := range p.Steps {
			idx = append(idx, i)
		}
		return idx, nil
	}
	var names []string
	for i := range p.Steps {
		names = append(names, p.Steps[i].Name)
	}
	for _, want := range strings.Split(only, ",") {
		i := slices.Index(names, strings.TrimSpace(want))
		if i < 0 {
			return nil, usageErrorf("-only: %s has no step named %q; its steps are: %s", p.file, want, strings.Join(names, ", "))
		}
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return slices.Compact(idx), nil
}

// runPlan runs the steps in order and reports them. It returns the report
// together with an error when a step failed or the run was interrupted.
func runPlan(ctx context.Context, plan *Plan, steps []int, rs runSettings) (*Report, error) {
	started := time.Now()
	seed := rand.Uint64()
	if plan.Seed != nil {
		seed = *plan.Seed
	}
	report := &Report{SchemaVersion: reportSchemaVersion, Version: version, Plan: plan.Name, PlanSHA256: plan.sha256,
		Host: redactURL(plan.Host), StartedAt: started.UTC(), Seed: seed, Steps: []StepReport{}, Thresholds: []ThresholdResult{},
		Shard: rs.shard.info()}
	state := &runState{}
	defer state.cleanup()
	rc := runContext{state: state, plan: plan, host: strings.TrimSuffix(plan.Host, "/"), symHost: strings.TrimSuffix(plan.SymbolicationHost, "/"),
		seed: seed, grace: rs.grace, stdin: rs.stdin, stdinPrompt: rs.stdinPrompt}
	var emb *emulator.Server
	if plan.usesEmbedded() {
		emb = emulator.NewEmbedded()
		url, stop, err := emb.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("starting the embedded emulator: %w", err)
		}
		defer stop()
		rc.embedded = url
		if plan.Host == "embedded" {
			rc.host, report.Host, report.Embedded = url, url, true
		}
		if plan.SymbolicationHost == "embedded" {
			rc.symHost = url
		}
	}
	if plan.usesEmbeddedS3() {
		_, s3 := emulator.EmbeddedRecords()
		if emb != nil { // what the run uploads lands in the bucket too
			emb.MirrorTo(s3)
		}
		url, stop, err := s3.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("starting the embedded S3: %w", err)
		}
		defer stop()
		rc.embeddedS3 = url
	}
	var failed []error
	stopped := false // an earlier step failed, and the plan stops on errors
	for _, i := range steps {
		st := &plan.Steps[i]
		w := st.workloads()[0]
		if stopped || ctx.Err() != nil { // listed, with the kind's empty result
			k, _ := kindByName(w.kind())
			report.Steps = append(report.Steps, StepReport{Kind: w.kind(), Name: st.Name, result: k.result()})
			continue
		}
		src := rc
		src.stepIndex, src.stepName = i, st.Name
		if rs.shard.splits(st) {
			src.shard, src.shards = rs.shard.index, rs.shard.count
		}
		t0 := time.Now()
		src.prog = startProgress(rs, st.Name)
		res, err := w.run(ctx, &src)
		src.prog.finish()
		if res == nil { // failed before it did anything: still the kind's keys
			k, _ := kindByName(w.kind())
			res = k.result()
		}
		sr := StepReport{Kind: w.kind(), Name: st.Name, OK: err == nil && ctx.Err() == nil, Ran: true,
			DurationS: time.Since(t0).Seconds(), result: res, Interrupted: ctx.Err() != nil}
		switch {
		case sr.Interrupted:
			// Say so, not just "context canceled"; keep a failure of its own.
			msg := interruptOf(ctx).Error()
			if err != nil && !errors.Is(err, context.Canceled) {
				msg += ": " + err.Error()
			}
			sr.Error = &msg
		case err != nil:
			msg := err.Error()
			sr.Error = &msg
			failed = append(failed, stepError{name: st.Name, kind: w.kind(), err: err})
		}
		report.Steps = append(report.Steps, sr)
		stopped = err != nil && plan.StopOnError
	}
	report.Interrupted = ctx.Err() != nil
	report.OK = len(failed) == 0 && !report.Interrupted
	ended := time.Now()
	report.EndedAt = ended.UTC()
	report.DurationS = ended.Sub(started).Seconds()
	switch {
	case report.Interrupted:
		return report, errors.Join(append(failed, fmt.Errorf("%w; the report shows what finished", interruptOf(ctx)))...)
	case len(failed) > 0:
		return report, errors.Join(failed...)
	}
	return report, nil
}

// stepError is a step's failure as stderr shows it, on one line: which
// step, of which kind, and why. It does not unwrap the step's error, so
// that a failed step exits 1 whatever its error wraps.
type stepError struct {
	name, kind string
	err        error
}

func (e stepError) Error() string {
	return fmt.Sprintf("step %s (%s) failed: %s", e.name, e.kind, strings.ReplaceAll(e.err.Error(), "\n", "; "))
}

// runState is what the steps of one run hand on to later steps, and the
// temporary folders the run removes when it ends.
type runState struct {
	stacksDir string   // out_dir of the last make-stacks step
	zipsDir   string   // save_dir of the last make-zips step
	zipURLs   []string // zips[].url of the last list-zips step
	// uploaded are the member keys (symbol/DEBUGID/file) of the zips that
	// upload steps sent with success.
	uploaded []string
	temps    []string
}

// tempDir makes a folder that lives as long as the run.
func (st *runState) tempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", "teckenrun-"+pattern+"-")
	if err == nil {
		st.temps = append(st.temps, dir)
	}
	return dir, err
}

func (st *runState) cleanup() {
	for _, d := range st.temps {
		os.RemoveAll(d)
	}
}

// runContext is what the runner hands every step.
type runContext struct {
	state *runState
	stdin io.Reader
	// embedded is the embedded emulator's URL, and embeddedS3 its S3
	// endpoint, when the plan uses them.
	embedded, embeddedS3 string
	plan                 *Plan
	host                 string // base URL without a trailing slash
	symHost              string // symbolication base URL without a trailing slash
	seed                 uint64 // the run's seed; a step's own seed overrides it
	grace                time.Duration
	// prog reports the step's progress; nil (-quiet) reports nothing.
	prog      *progress
	stepIndex int
	stepName  string
	// shard and shards split the step's jobs (pace); shards is 0 when
	// the step runs whole.
	shard, shards int

	stdinPrompt io.Writer // see runSettings
}

// token returns the Auth-Token for writes: the embedded emulator's own,
// or the value of the plan's auth_token_env. It is never printed.
func (rc *runContext) token() string {
	if rc.plan.Host == "embedded" {
		return emulator.EmbeddedToken
	}
	return strings.TrimSpace(os.Getenv(rc.plan.AuthTokenEnv)) // Validate checked what is left
}

// stepSeed returns the step's own seed if set, else one derived from the
// run's seed and the step's position, so that steps differ but repeat.
func (rc *runContext) stepSeed(own *uint64, index int) uint64 {
	if own != nil {
		return *own
	}
	return rc.seed + uint64(index)
}
