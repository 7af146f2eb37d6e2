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
	stdin      io.Reader
	grace      time.Duration
	shard      shardSpec // the run's shard; zero when unsharded
	progressTo io.Writer // nil: no progress line

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
		seed: seed, grace: rs.grace, progressTo: rs.progressTo, stdin: rs.stdin, stdinPrompt: rs.stdinPrompt}
	if plan.usesEmbedded() {
		url, stop, err := emulator.NewEmbedded().Start("127.0.0.1:0")
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
		url, stop, err := s3.Start("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("starting the embedded S3: %w", err)
		}
		defer stop()
		rc.embeddedS3 = url
	}
	var failed []string
	for _, i := range steps {
		if ctx.Err() != nil {
			break
		}
		st := &plan.Steps[i]
		w := st.workloads()[0]
		src := rc
		src.stepIndex, src.stepName = i, st.Name
		if rs.shard.splits(st) {
			src.shard, src.shards = rs.shard.index, rs.shard.count
		}
		t0 := time.Now()
		res, err := w.run(ctx, &src)
		if res == nil { // failed before it did anything: still the kind's keys
			k, _ := kindByName(w.kind())
			res = k.result()
		}
		sr := StepReport{Kind: w.kind(), Name: st.Name, OK: err == nil && ctx.Err() == nil,
			DurationS: time.Since(t0).Seconds(), result: res, interrupted: ctx.Err() != nil}
		switch {
		case sr.interrupted:
			// Say so, not just "context canceled"; keep a failure of its own.
			msg := interruptOf(ctx).Error()
			if err != nil && !errors.Is(err, context.Canceled) {
				msg += ": " + err.Error()
			}
			sr.Error = &msg
		case err != nil:
			msg := err.Error()
			sr.Error = &msg
			failed = append(failed, st.Name)
		}
		report.Steps = append(report.Steps, sr)
		if err != nil && plan.StopOnError {
			break
		}
	}
	report.Interrupted = ctx.Err() != nil
	report.OK = len(failed) == 0 && !report.Interrupted
	ended := time.Now()
	report.EndedAt = ended.UTC()
	report.DurationS = ended.Sub(started).Seconds()
	switch {
	case report.Interrupted:
		return report, fmt.Errorf("%w; the report shows what finished", interruptOf(ctx))
	case len(failed) > 0:
		return report, fmt.Errorf("step %s failed", strings.Join(failed, ", "))
	}
	return report, nil
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
	// progressTo is where steps draw their progress line; nil for none.
	progressTo io.Writer
	stepIndex  int
	stepName   string
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
				return nil, attempts, err
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
			return nil, attempts, ctx.Err()
		}
	}
}

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
	rate        float64       // jobs per second; 0 = as fast as concurrency allows
	duration    time.Duration // stop issuing after this long; 0 = no limit
	total       int           // jobs to issue; -1 = until duration
	// shard and shards: issue only the jobs i ≡ shard (mod shards) of the
	// single run's sequence, at its schedule's times (shard.go); shards
	// is 0 when the step is not split.
	shard, shards int
}

// slot is when a job was meant to start and when a worker started it.
type slot struct {
	intended time.Time // the job's place in a rate's schedule; zero without a rate
	sent     time.Time
}

// issue calls do for job i = 0, 1, ... on p.concurrency workers, until
// p.total jobs, p.duration or ctx (an interrupt) stops it. The workers are
// an errgroup of long-lived goroutines fed through an unbuffered channel:
// a goroutine per job would pay for a new stack on every request.
//
// With a rate, a job's slot holds its intended start, so that latency
// measured from it includes time spent waiting for a free worker (no
// coordinated omission); sent is when a worker took it.
//
// Work runs under work, not ctx: after an interrupt, jobs in flight get
// the grace period that work allows to finish. A do that returns an error
// stops the step: the others are cancelled and issue returns the error.
func issue(ctx, work context.Context, p pace, do func(ctx context.Context, i int, s slot) error) error {
	type job struct {
		i        int
		intended time.Time
	}
	g, gctx := errgroup.WithContext(work)
	jobs := make(chan job)
	for range p.concurrency {
		g.Go(func() error {
			for j := range jobs {
				if err := do(gctx, j.i, slot{intended: j.intended, sent: time.Now()}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	start := time.Now()
	// With a rate, the schedule decides when the duration is up: a slot
	// before the end is always issued. Without one, a timer does.
	var deadline <-chan time.Time
	if p.duration > 0 && p.rate <= 0 {
		t := time.NewTimer(p.duration)
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
		if p.rate > 0 {
			offset := time.Duration(float64(i) / p.rate * float64(time.Second))
			if p.duration > 0 && offset >= p.duration {
				break
			}
			intended = start.Add(offset)
			if d := time.Until(intended); d > 0 {
				tick.Reset(d)
				select { // no deadline here: with a rate there is none
				case <-tick.C:
				case <-ctx.Done():
					break produce
				case <-gctx.Done():
					break produce
				}
			}
		}
		select {
		case jobs <- job{i, intended}:
		case <-ctx.Done():
			break produce
		case <-gctx.Done():
			break produce
		case <-deadline:
			break produce
		}
	}
	close(jobs)
	return g.Wait()
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
// agg on one collector goroutine, and draws the progress line.
func drive[O any](ctx context.Context, rc *runContext, p pace, src jobSource[O], agg aggregator[O]) error {
	p.shard, p.shards = rc.shard, rc.shards
	prog := startProgress(rc.progressTo, rc.stepName, p.shareOf(p.total))
	col := collect(4*p.concurrency, func(o O) { prog.add(agg.add(o)) })
	work, cancel := graceContext(ctx, rc.grace)
	defer cancel()
	err := issue(ctx, work, p, func(ctx context.Context, i int, s slot) error {
		col.send(src.job(ctx, i, s))
		return nil
	})
	col.close()
	prog.finish()
	return err
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
	return requests{m: metrics.New(p.rate > 0)}
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

// progress draws a one-line progress report on a terminal's stderr.
type progress struct {
	w      io.Writer
	step   string
	total  int64 // 0 when unknown; set before the drawing goroutine starts
	done   atomic.Int64
	failed atomic.Int64
	start  time.Time
	stop   chan struct{}
	exited chan struct{}
}

// startProgress starts drawing; a nil *progress draws nothing.
func startProgress(w io.Writer, step string, total int) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, step: step, total: int64(max(total, 0)), start: time.Now(), stop: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			}
		}
	}()
	return p
}

func (p *progress) add(failed bool) {
	if p == nil {
		return
	}
	p.done.Add(1)
	if failed {
		p.failed.Add(1)
	}
}

func (p *progress) draw() {
	elapsed := time.Since(p.start)
	done := p.done.Load()
	of := ""
	if total := p.total; total > 0 {
		of = fmt.Sprintf("/%d", total)
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %d%s done, %d failed, %.0f/s, %s", p.step, done, of, p.failed.Load(),
		float64(done)/max(elapsed.Seconds(), 1e-9), elapsed.Round(time.Second))
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.exited
}
