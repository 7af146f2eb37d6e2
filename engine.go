package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
	"golang.org/x/sync/errgroup"
)

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
// duration or ctx (an interrupt) stops it: issueWorkers with workers
// that only do.
func issue(ctx, work context.Context, p pace, do func(ctx context.Context, i int, s slot) error) (issued, error) {
	return issueWorkers(ctx, work, p, func() worker { return worker{do: do} })
}

// worker is what one of a step's workers runs: do for each job it takes;
// and idle, when set, whenever the worker is about to wait (for a job or
// for its stage to allow it) and when it stops.
type worker struct {
	do   func(ctx context.Context, i int, s slot) error
	idle func()
}

func (w worker) rest() {
	if w.idle != nil {
		w.idle()
	}
}

// issueWorkers calls the do of a worker made by newWorker for job i = 0,
// 1, ... until p.total jobs, the step's duration or ctx (an interrupt)
// stops it. Workers are long-lived goroutines of an errgroup, never a
// goroutine per job.
//
// Without a rate, p.concurrency workers (or as many as concurrency
// stages allow at the moment) claim the next job from a shared counter as
// fast as they finish the last one.
//
// With a rate (an open model), one dispatcher releases each job at its
// slot in the schedule through an unbuffered channel: when no worker is
// idle it adds one, up to max_concurrency; past that the step is
// saturated, and jobs go out late. A job's slot is its intended start, so
// latency measured from it includes the wait for a worker (no
// coordinated omission).
//
// The duration bounds the step in every mode: issuing stops when it is
// up, jobs in flight get p.linger more, and the slots that came due but
// were not sent are counted as missed. Work runs under work, not ctx:
// after an interrupt, jobs in flight get the grace period that work
// allows. A do that returns an error stops the step: the others are
// cancelled and issue returns the error.
func issueWorkers(ctx, work context.Context, p pace, newWorker func() worker) (issued, error) {
	res := issued{stages: p.stages}
	g, gctx := errgroup.WithContext(work)
	jctx, stopJobs := context.WithCancelCause(gctx)
	defer stopJobs(nil)
	start := time.Now()
	var deadline <-chan time.Time
	if d := p.length(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	if p.scheduled() {
		dispatch(ctx, gctx, jctx, g, p, start, deadline, newWorker, &res)
	} else {
		claim(ctx, gctx, jctx, g, p, start, deadline, newWorker, &res)
	}
	if d := p.length(); d > 0 {
		// The duration bounds the step however issuing ended: jobs in
		// flight get the plan's timeout after it, then are cut off.
		cut := d + p.linger
		t := time.AfterFunc(time.Until(start.Add(cut)), func() { stopJobs(&durationUpError{after: cut}) })
		defer t.Stop()
	}
	return res, g.Wait()
}

// claim runs a step without a rate: its workers claim jobs from a shared
// counter until the jobs, the duration, ctx or a failed worker (gctx)
// stop them; with concurrency stages, a gate lets as many work as the
// ramp allows at the moment.
func claim(ctx, gctx, jctx context.Context, g *errgroup.Group, p pace, start time.Time, deadline <-chan time.Time, newWorker func() worker, res *issued) {
	var next atomic.Int64
	var stop atomic.Bool
	exhausted := make(chan struct{})
	var once sync.Once
	take := func() (int, bool) {
		for !stop.Load() {
			i := int(next.Add(1) - 1)
			if p.total >= 0 && i >= p.total {
				break
			}
			if p.owns(i) {
				return i, true
			}
		}
		once.Do(func() { close(exhausted) })
		return 0, false
	}
	var gate *workerGate
	n := p.concurrency
	if len(p.stages) > 0 {
		gate, n = newWorkerGate(), maxWorkers(p.stages)
	}
	for id := range n {
		g.Go(func() error {
			w := newWorker()
			defer w.rest()
			for {
				if !gate.allows(id) {
					w.rest()
				}
				if !gate.enter(id) {
					return nil
				}
				i, ok := take()
				if !ok {
					return nil
				}
				if err := w.do(jctx, i, slot{sent: time.Now()}); err != nil {
					return err
				}
			}
		})
	}
	res.peak = n
	stopGate := func() {}
	if gate != nil {
		res.peak = 0
		stopGate = gate.follow(p.stages, start, &res.peak)
	}
	select {
	case <-exhausted:
	case <-ctx.Done():
	case <-gctx.Done():
	case <-deadline:
	}
	stop.Store(true)
	stopGate() // before gate.close, so that res.peak is final and no longer written
	gate.close()
}

// dispatch runs a step on a rate's schedule: one dispatcher hands each
// job to an idle worker at its slot, adding workers up to max_concurrency.
func dispatch(ctx, gctx, jctx context.Context, g *errgroup.Group, p pace, start time.Time, deadline <-chan time.Time, newWorker func() worker, res *issued) {
	type job struct {
		i        int
		intended time.Time
	}
	jobs := make(chan job)
	workers := 0
	spawn := func() {
		workers++
		res.peak = max(res.peak, workers)
		g.Go(func() error {
			w := newWorker()
			defer w.rest()
			for {
				var j job
				var ok bool
				select {
				case j, ok = <-jobs:
				default:
					w.rest()
					j, ok = <-jobs
				}
				if !ok {
					return nil
				}
				if err := w.do(jctx, j.i, slot{intended: j.intended, sent: time.Now()}); err != nil {
					return err
				}
			}
		})
	}
	sched := newSchedule(p.rate, p.duration, p.stages)
	res.target = sched.meanRate() / float64(max(p.shards, 1)) // a shard owns 1/shards of the slots
	maxW := p.maxConcurrency
	if maxW <= 0 {
		maxW = 10 * p.concurrency
	}
	for range min(p.concurrency, maxW) {
		spawn()
	}
	defer close(jobs)
	tick := time.NewTimer(time.Hour) // re-armed for each slot
	tick.Stop()
	defer tick.Stop()
	for i := 0; p.total < 0 || i < p.total; i++ {
		if !p.owns(i) {
			continue
		}
		at, ok := sched.at(i)
		if !ok {
			return // the schedule ended: every slot was sent
		}
		intended := start.Add(time.Duration(at * float64(time.Second)))
		if d := time.Until(intended); d > 0 {
			tick.Reset(d)
			select { // the slot is before the end: no deadline here
			case <-tick.C:
			case <-ctx.Done():
				return
			case <-gctx.Done():
				return
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
		select {
		case jobs <- job{i, intended}:
		case <-ctx.Done():
			return
		case <-gctx.Done():
			return
		case <-deadline:
			n := sched.slots()
			if p.total >= 0 {
				n = min(n, p.total)
			}
			res.missed = max(p.shareOf(n)-p.shareOf(i), 0) // the shard's own slots
			return
		}
	}
	return
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

// allows reports whether worker id may take a job now. A nil gate
// allows every worker.
func (g *workerGate) allows(id int) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return id < g.allowed || g.closed
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
	free := make(chan []O, 2*maxWorkersOf(p)) // batches the collector is done with
	col := collect(maxWorkersOf(p), func(b []O) {
		for _, o := range b {
			rc.prog.add(agg.add(o))
		}
		select {
		case free <- b[:0]:
		default:
		}
	})
	work, cancel := graceContext(ctx, rc.grace)
	defer cancel()
	is, err := issueWorkers(ctx, work, p, func() worker {
		var b []O
		var since time.Time
		hand := func() {
			if len(b) > 0 {
				col.send(b)
				b = nil
			}
		}
		return worker{
			do: func(ctx context.Context, i int, s slot) error {
				o := src.job(ctx, i, s)
				if b == nil {
					select {
					case b = <-free:
					default:
						b = make([]O, 0, batchSize)
					}
					since = time.Now()
				}
				if b = append(b, o); len(b) == batchSize || time.Since(since) >= batchAge {
					hand()
				}
				return nil
			},
			idle: hand,
		}
	})
	col.close()
	return is, err
}

// A worker hands the outcomes of its jobs to the collector in batches of
// up to batchSize, so that the collector wakes once per batch, not once
// per request; a batch goes sooner when it is batchAge old or when the
// worker is about to wait, so that the progress line stays current.
const (
	batchSize = 64
	batchAge  = 100 * time.Millisecond
)

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
