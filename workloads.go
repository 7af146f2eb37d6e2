package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"github.com/mozilla-services/teckenrun/internal/metrics"
	"golang.org/x/sync/errgroup"
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

// newTransport returns the HTTP transport of a step, which keeps up to
// concurrency connections alive. Steps use it directly, not through an
// http.Client: redirects are answers to measure, never followed
// implicitly, and the client's per-request machinery costs CPU that a
// load generator needs.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          concurrency + 10,
		MaxIdleConnsPerHost:   concurrency + 10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // bodies are measured as the server sent them
	}
}

// retryPolicy says which failures are retried, how often and how long to
// wait in between.
type retryPolicy struct {
	retries  int           // extra attempts after the first
	base     time.Duration // first backoff; doubles each time, with full jitter
	cap      time.Duration // longest backoff without a Retry-After
	statuses []int         // HTTP statuses that are retried; transport errors always are
	timeout  time.Duration // per attempt, including reading the body
}

// send performs the request that build makes (once per attempt), retrying
// per pol, and returns the final response or the final error (then resp
// is nil). attempts counts the requests the server may have seen,
// including the ones net/http replays by itself on a dropped keep-alive
// connection.
//
// With read, send reads each answer's body with it, within the attempt's
// timeout, and closes it: a body that breaks off (a reset, a timeout) is
// retried like a transport error. That suits requests that can be
// repeated, GETs and symbolication. Without read, the caller reads the
// final response's body and must close it (which ends the attempt's
// timeout); a body that breaks off is then the caller's error, never
// retried: a server that has answered an upload may have accepted it.
//
// A request the transport refuses before connecting (an invalid header
// value, a URL without a host, another scheme) and a failure pol.backoff
// calls unfixable are not retried.
func send(ctx context.Context, rt http.RoundTripper, pol retryPolicy, build func(context.Context) (*http.Request, error), read func(*http.Response) error) (resp *http.Response, attempts int, err error) {
	timedOut := &timeoutError{after: pol.timeout}
	for try := 0; ; try++ {
		var wrote atomic.Int32
		var connecting atomic.Bool
		actx, cancel := context.WithTimeoutCause(ctx, pol.timeout, timedOut)
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			GetConn: func(string) { connecting.Store(true) },
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				if info.Err == nil {
					wrote.Add(1)
				}
			},
		})
		req, err := build(actx)
		if err != nil {
			cancel()
			return nil, attempts, err
		}
		resp, err = rt.RoundTrip(req)
		if err != nil && !connecting.Load() && actx.Err() == nil {
			cancel()
			return nil, attempts, err // refused by the transport: never sent
		}
		attempts += max(1, int(wrote.Load()))
		switch {
		case err != nil:
			cancel()
		case read != nil:
			err = read(resp)
			resp.Body.Close()
			cancel()
		default:
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		wait, retry := pol.backoff(try, resp, err)
		if !retry || try >= pol.retries || ctx.Err() != nil {
			if err != nil {
				return nil, attempts, stepCause(ctx, err)
			}
			return resp, attempts, nil
		}
		if read == nil && err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, attempts, stepCause(ctx, ctx.Err())
		}
	}
}

// stepCause is the error of a request that ctx cut off: the cause the
// step gave ctx (its duration was up: a timeout), or err for an interrupt.
func stepCause(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// durationUpError cuts off the requests still in flight once a step's
// duration and the plan's timeout after it are up: they count as
// timeouts, not as cancelled by an interrupt.
type durationUpError struct{ after time.Duration }

func (e *durationUpError) Error() string {
	return "timed out: the step's duration and the plan's timeout were up after " + e.after.String()
}
func (e *durationUpError) Timeout() bool { return true }
func (e *durationUpError) Unwrap() error { return context.DeadlineExceeded }

// maxRetryAfter is the longest Retry-After that is honoured as sent.
const maxRetryAfter = 10 * time.Minute

// backoff decides whether an attempt's outcome is retried and after how
// long: exponential with full jitter, or the server's Retry-After. resp
// may come with err when its body broke off.
func (pol retryPolicy) backoff(try int, resp *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		if errors.Is(err, context.Canceled) || unfixable(err) {
			return 0, false
		}
	} else if !slices.Contains(pol.statuses, resp.StatusCode) {
		return 0, false
	}
	if resp != nil {
		if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			return min(ra, maxRetryAfter), true
		}
	}
	ceiling := pol.base << min(try, 20)
	if ceiling <= 0 || ceiling > pol.cap {
		ceiling = pol.cap
	}
	if ceiling <= 0 {
		return 0, true
	}
	return time.Duration(rand.Int64N(int64(ceiling)) + 1), true
}

// unfixable says whether a transport error is one that no retry can fix:
// the server's certificate does not verify (an unknown authority, another
// host name, expired).
func unfixable(err error) bool {
	var cert *tls.CertificateVerificationError
	return errors.As(err, &cert)
}

// timeoutError is an attempt's timeout. It reads as the timeout that was
// set ("timed out after 3s"), not "context deadline exceeded", and is a
// context.DeadlineExceeded.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return "timed out after " + e.after.String() }
func (e *timeoutError) Timeout() bool { return true }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// discardBody reads a body to its end, for send.
func discardBody(resp *http.Response) error {
	_, err := io.Copy(io.Discard, resp.Body)
	return err
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// cancelBody ends an attempt's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Transport error classes, as reported.
const (
	classTimeout   = "timeout"
	classRefused   = "refused"
	classReset     = "reset"
	classOther     = "other"
	classCancelled = "cancelled"
)

// errorClass sorts a transport error into a class.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return classCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return classTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return classRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return classReset
	}
	return classOther
}

// pace says how a step issues its work.
type pace struct {
	concurrency int
	// maxConcurrency bounds the workers of a rate-driven step, which adds
	// workers as its schedule needs them (vegeta's -max-workers); 0 means
	// 10 × concurrency.
	maxConcurrency int
	rate           float64       // jobs per second; 0 = as fast as concurrency allows
	stages         []Stage       // rate or concurrency stages, instead of rate and duration
	duration       time.Duration // stop issuing after this long; 0 = no limit
	total          int           // jobs to issue; -1 = until the duration is up
	// linger is how long jobs in flight may go on once the duration is
	// up (the plan's timeout); then they are cancelled.
	linger time.Duration
	// shard and shards: issue only the jobs i ≡ shard (mod shards) of the
	// single run's sequence, at its schedule's times (shard.go); shards
	// is 0 when the step is not split.
	shard, shards int
}

// scheduled reports whether jobs are issued on a rate's schedule.
func (p pace) scheduled() bool {
	return p.rate > 0 || (len(p.stages) > 0 && p.stages[0].Rate != nil)
}

// length is how long the step issues jobs; 0 = until its total.
func (p pace) length() time.Duration {
	if len(p.stages) > 0 {
		return stagesDuration(p.stages)
	}
	return p.duration
}

// maxWorkersOf is the most workers p may run: the transport of a step
// keeps that many connections alive, so that added workers reuse them.
func maxWorkersOf(p pace) int {
	switch {
	case p.scheduled() && p.maxConcurrency > 0:
		return max(p.maxConcurrency, p.concurrency)
	case p.scheduled():
		return 10 * p.concurrency
	case len(p.stages) > 0:
		return max(maxWorkers(p.stages), 1)
	}
	return p.concurrency
}

// slot is when a job was meant to start and when a worker started it.
type slot struct {
	intended time.Time // the job's place in a rate's schedule; zero without a rate
	sent     time.Time
}

// issued is what issue reports of a step's schedule.
type issued struct {
	target    float64 // the schedule's mean rate; 0 without one
	missed    int     // slots due before the end that were never sent
	saturated bool    // a slot came due with max_concurrency workers busy
	peak      int     // the most workers at once
	stages    []Stage // the pace's stages
}

// issue calls do for job i = 0, 1, ... until p.total jobs, the step's
// duration or ctx (an interrupt) stops it. Workers are long-lived
// goroutines of an errgroup fed through an unbuffered channel, never a
// goroutine per job.
//
// Without a rate, p.concurrency workers (or as many as concurrency
// stages allow at the moment) take jobs as fast as they finish them.
//
// With a rate (an open model), one dispatcher releases each job at its
// slot in the schedule: when no worker is idle it adds one, up to
// max_concurrency; past that the step is saturated, and jobs go out
// late. A job's slot is its intended start, so latency measured from it
// includes the wait for a worker (no coordinated omission).
//
// The duration bounds the step in every mode: issuing stops when it is
// up, jobs in flight get p.linger more, and the slots that came due but
// were not sent are counted as missed. Work runs under work, not ctx:
// after an interrupt, jobs in flight get the grace period that work
// allows. A do that returns an error stops the step: the others are
// cancelled and issue returns the error.
func issue(ctx, work context.Context, p pace, do func(ctx context.Context, i int, s slot) error) (issued, error) {
	type job struct {
		i        int
		intended time.Time
	}
	res := issued{stages: p.stages}
	g, gctx := errgroup.WithContext(work)
	jctx, stopJobs := context.WithCancelCause(gctx)
	defer stopJobs(nil)
	jobs := make(chan job)
	var gate *workerGate
	if len(p.stages) > 0 && !p.scheduled() {
		gate = newWorkerGate()
	}
	workers := 0
	spawn := func() {
		id := workers
		workers++
		res.peak = max(res.peak, workers)
		g.Go(func() error {
			for gate.enter(id) {
				j, ok := <-jobs
				if !ok {
					return nil
				}
				if err := do(jctx, j.i, slot{intended: j.intended, sent: time.Now()}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	start := time.Now()
	var sched *schedule
	stopGate := func() {}
	maxW := p.concurrency
	switch {
	case p.scheduled():
		sched = newSchedule(p.rate, p.duration, p.stages)
		res.target = sched.meanRate() / float64(max(p.shards, 1)) // a shard owns 1/shards of the slots
		if maxW = p.maxConcurrency; maxW <= 0 {
			maxW = 10 * p.concurrency
		}
		for range min(p.concurrency, maxW) {
			spawn()
		}
	case gate != nil:
		for range maxWorkers(p.stages) {
			spawn()
		}
		res.peak = 0
		stopGate = gate.follow(p.stages, start, &res.peak)
	default:
		for range p.concurrency {
			spawn()
		}
	}
	var deadline <-chan time.Time
	if d := p.length(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTimer(time.Hour) // re-armed for each slot of a rate
	tick.Stop()
	defer tick.Stop()
produce:
	for i := 0; p.total < 0 || i < p.total; i++ {
		if !p.owns(i) {
			continue
		}
		var intended time.Time
		if sched != nil {
			at, ok := sched.at(i)
			if !ok {
				break // the schedule ended: every slot was sent
			}
			intended = start.Add(time.Duration(at * float64(time.Second)))
			if d := time.Until(intended); d > 0 {
				tick.Reset(d)
				select { // the slot is before the end: no deadline here
				case <-tick.C:
				case <-ctx.Done():
					break produce
				case <-gctx.Done():
					break produce
				}
			}
			select {
			case jobs <- job{i, intended}: // an idle worker took it
				continue
			default:
			}
			if workers < maxW {
				spawn()
			} else {
				res.saturated = true
			}
		}
		select {
		case jobs <- job{i, intended}:
		case <-ctx.Done():
			break produce
		case <-gctx.Done():
			break produce
		case <-deadline:
			if sched != nil {
				n := sched.slots()
				if p.total >= 0 {
					n = min(n, p.total)
				}
				res.missed = max(p.shareOf(n)-p.shareOf(i), 0) // the shard's own slots

			}
			break produce
		}
	}
	close(jobs)
	stopGate() // before gate.close, so that res.peak is final and no longer written
	gate.close()
	if d := p.length(); d > 0 {
		// The duration bounds the step however issuing ended: jobs in
		// flight get the plan's timeout after it, then are cut off.
		cut := d + p.linger
		t := time.AfterFunc(time.Until(start.Add(cut)), func() { stopJobs(&durationUpError{after: cut}) })
		defer t.Stop()
	}
	return res, g.Wait()
}

// workerGate holds back the workers that concurrency stages do not allow
// yet: worker id works while id < allowed.
type workerGate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	allowed int
	closed  bool
}

func newWorkerGate() *workerGate {
	g := &workerGate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// enter waits until worker id may take a job; it returns false once the
// gate is closed and the worker is still not allowed. A nil gate lets
// every worker through.
func (g *workerGate) enter(id int) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for id >= g.allowed && !g.closed {
		g.cond.Wait()
	}
	return id < g.allowed || g.closed
}

func (g *workerGate) set(n int) {
	g.mu.Lock()
	g.allowed = n
	g.mu.Unlock()
	g.cond.Broadcast()
}

// close lets every worker through, to find the jobs channel closed.
func (g *workerGate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cond.Broadcast()
}

// follow moves the gate along the stages' ramps, every 50 ms, until the
// returned stop is called; peak records the most workers allowed.
func (g *workerGate) follow(stages []Stage, start time.Time, peak *int) (stop func()) {
	set := func() {
		n := workersAt(stages, time.Since(start))
		*peak = max(*peak, n)
		g.set(n)
	}
	set()
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				set()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

// jobSource is a request kind's work, prepared: job performs job i of
// the step (i = 0, 1, ...; a source cycles through its jobs when i
// passes them) and returns its outcome. A mixed step can draw jobs from
// several sources on one schedule.
type jobSource[O any] interface {
	job(ctx context.Context, i int, s slot) O
}

// aggregator adds a request kind's outcomes, on one collector goroutine;
// add reports whether the job failed, for the progress line.
type aggregator[O any] interface {
	add(o O) (failed bool)
}

// drive runs a step's jobs from src through issue, adds each outcome to
// agg on one collector goroutine, and counts them for the progress line.
func drive[O any](ctx context.Context, rc *runContext, p pace, src jobSource[O], agg aggregator[O]) (issued, error) {
	p.shard, p.shards = rc.shard, rc.shards
	rc.prog.expect(func(pl *progressPlan) {
		pl.total, pl.duration, pl.errors = int64(max(p.shareOf(p.total), 0)), p.length(), true
		if p.scheduled() {
			pl.target = newSchedule(p.rate, p.duration, p.stages).meanRate() / float64(max(p.shards, 1))
		}
	})
	col := collect(4*p.concurrency, func(o O) { rc.prog.add(agg.add(o)) })
	work, cancel := graceContext(ctx, rc.grace)
	defer cancel()
	is, err := issue(ctx, work, p, func(ctx context.Context, i int, s slot) error {
		col.send(src.job(ctx, i, s))
		return nil
	})
	col.close()
	return is, err
}

// exchange is what a request-issuing step records of one job's HTTP
// exchange, retries included: the metrics' sample, and the error when no
// answer came.
type exchange struct {
	metrics.Sample
	err error
}

// start begins the exchange of a job taken at s.
func start(s slot) exchange {
	return exchange{Sample: metrics.Sample{Intended: s.intended, Sent: s.sent}}
}

// end records how the exchange ended: the final status (0 without an
// answer), the attempts made and the error that left no answer.
func (e *exchange) end(status, attempts int, err error) {
	e.Done = time.Now()
	e.Attempts = max(attempts, 1)
	if err != nil {
		e.Status, e.Class, e.err = 0, errorClass(err), err
		return
	}
	e.Status = status
}

// requests is the part of a request-issuing step's aggregate that every
// kind shares: the metrics of its exchanges.
type requests struct {
	m           *metrics.Metrics
	sampleError string // the first transport error, for the step's error
}

func newRequests(p pace) requests {
	return requests{m: metrics.New(p.scheduled())}
}

// load records how the step's schedule went, and its stages.
func (r *requests) load(is issued) {
	r.m.SetLoad(is.target, int64(is.missed), is.saturated, is.peak)
	var stages []metrics.LoadStage
	for _, st := range is.stages {
		stages = append(stages, metrics.LoadStage{DurationS: time.Duration(st.Duration).Seconds(), Rate: st.Rate, Concurrency: st.Concurrency})
	}
	r.m.SetStages(stages)
}

// count adds one job's exchange; it reports whether an answer came back,
// which the step then looks at.
func (r *requests) count(e exchange) (answered bool) {
	r.m.Add(e.Sample)
	if e.Class == classCancelled {
		return false
	}
	if e.Status == 0 {
		if r.sampleError == "" {
			r.sampleError = e.err.Error()
		}
		return false
	}
	return true
}

// summary computes the metrics once the jobs are done; it returns an
// error when every job failed without an answer (the host is down, say).
func (r *requests) summary() (metrics.Summary, error) {
	s := r.m.Summary()
	if n := r.m.Requests(); n > 0 && r.m.Errors() == n {
		return s, fmt.Errorf("all %d requests failed: %s", n, r.sampleError)
	}
	return s, nil
}

// graceContext returns a context for requests that is cancelled grace
// after ctx is, so that an interrupt lets work in flight finish.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return work, func() { stop(); cancel() }
}

// collector owns a step's aggregate: workers send results, and one
// goroutine adds them, so the aggregate needs no lock.
type collector[R any] struct {
	ch   chan R
	done chan struct{}
}

func collect[R any](buffer int, add func(R)) *collector[R] {
	c := &collector[R]{ch: make(chan R, buffer), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for r := range c.ch {
			add(r)
		}
	}()
	return c
}

func (c *collector[R]) send(r R) { c.ch <- r }

// close waits until every result sent has been added.
func (c *collector[R]) close() {
	close(c.ch)
	<-c.done
}
