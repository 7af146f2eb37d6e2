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

// targetRate is the schedule's mean rate of a rate-driven pace: the
// shard's own, which owns 1/shards of the slots.
func (p pace) targetRate() float64 {
	return newSchedule(p.rate, p.duration, p.stages).meanRate() / float64(max(p.shards, 1))
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
	saturated bool    // over saturatedShare of the slots went out late with max_concurrency workers
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
// With a rate (an open model), the schedule releases each job at its
// slot (see dispatch): workers are added as they are needed, up to
// max_concurrency; past that jobs go out late. A job's slot is its
// intended start, so latency measured from it includes the wait for a
// worker (no coordinated omission).
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
	if d := p.length(); d > 0 {
		// The duration bounds the step however issuing ends: jobs in
		// flight get the plan's timeout after it, then are cut off.
		cut := d + p.linger
		t := time.AfterFunc(time.Until(start.Add(cut)), func() { stopJobs(&durationUpError{after: cut}) })
		defer t.Stop()
	}
	if p.scheduled() {
		dispatch(ctx, gctx, jctx, g, p, newWorker, &res)
	} else {
		claim(ctx, gctx, jctx, g, p, start, newWorker, &res)
	}
	return res, g.Wait()
}

// claim runs a step without a rate: its workers claim jobs from a shared
// counter until the jobs, the duration, ctx or a failed worker (gctx)
// stop them; with concurrency stages, a gate lets as many work as the
// ramp allows at the moment.
func claim(ctx, gctx, jctx context.Context, g *errgroup.Group, p pace, start time.Time, newWorker func() worker, res *issued) {
	var deadline <-chan time.Time
	if d := p.length(); d > 0 {
		t := time.NewTimer(time.Until(start.Add(d)))
		defer t.Stop()
		deadline = t.C
	}
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
				gate.enter(id, w.rest)
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

// spawnEvery is the least time between two workers added by a rate's
// dispatch: a moment when every worker is busy (a stall of the server or
// the machine) adds a few, not one per slot that came due meanwhile, each
// with a connection to open.
const spawnEvery = 500 * time.Microsecond

// saturatedShare is the share of slots that must go out more than
// metrics.LateAfter late with max_concurrency workers running for a step
// to be saturated: one busy moment is not enough.
const saturatedShare = 0.01

// slots walks the slots that a pace owns on its rate's schedule, in
// order, from begin: each call returns the next one's index and time, or
// false once the schedule or the jobs are done.
func slots(p pace, begin time.Time) func() (int, time.Time, bool) {
	sched, i := newSchedule(p.rate, p.duration, p.stages), 0
	return func() (int, time.Time, bool) {
		for ; p.total < 0 || i < p.total; i++ {
			if !p.owns(i) {
				continue
			}
			at, ok := sched.at(i)
			if !ok {
				break
			}
			i++
			return i - 1, begin.Add(time.Duration(at * float64(time.Second))), true
		}
		return 0, time.Time{}, false
	}
}

// dispatch runs a step on a rate's schedule. The schedule is the
// dispatcher: each idle worker claims the next slot from it and waits for
// the slot's time, so that no goroutine hands a request to another. When
// a worker starts a request and leaves no worker idle, a worker is added
// (up to max_concurrency, at most one per spawnEvery) to wait for the next
// slot. Past max_concurrency, slots go out late; when
// more than saturatedShare of them go out more than metrics.LateAfter
// late, the step is saturated. A slot claimed once the step's duration is
// up is not sent but missed.
func dispatch(ctx, gctx, jctx context.Context, g *errgroup.Group, p pace, newWorker func() worker, res *issued) {
	res.target = p.targetRate()
	maxW := int64(maxWorkersOf(p))
	var (
		// The schedule starts once the first workers wait for it
		// (begin), so that its first slots are not late by their start.
		begin, end time.Time
		ready      = make(chan struct{})
		waiting    sync.WaitGroup

		mu        sync.Mutex // guards next
		next      func() (int, time.Time, bool)
		workers   atomic.Int64
		busy      atomic.Int64 // workers in a request
		lastSpawn atomic.Int64 // when a worker was last added, in ns after begin
		retry     atomic.Bool  // a later try to add a worker is set
		started   atomic.Int64 // slots sent
		lateAtMax atomic.Int64 // of those, sent late with max_concurrency workers
		wg        sync.WaitGroup
	)
	stop, stopAll := context.WithCancel(context.Background())
	defer stopAll()
	claim := func() (int, time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		return next()
	}
	var spawn func(first bool)
	// more adds a worker when every worker is busy, unless one was added
	// less than spawnEvery ago: then it tries again when that is over.
	// Its caller holds a count of wg, so that adding one is safe.
	var more func()
	more = func() {
		n, last, now := workers.Load(), lastSpawn.Load(), int64(time.Since(begin))
		switch {
		case busy.Load() < n || n >= maxW || stop.Err() != nil:
		case now-last < int64(spawnEvery):
			if retry.CompareAndSwap(false, true) {
				wg.Add(1)
				time.AfterFunc(time.Duration(last+int64(spawnEvery)-now), func() {
					defer wg.Done()
					retry.Store(false)
					more()
				})
			}
		case lastSpawn.CompareAndSwap(last, now) && workers.CompareAndSwap(n, n+1):
			spawn(false)
		}
	}
	spawn = func(first bool) {
		wg.Add(1)
		if first {
			waiting.Add(1)
		}
		g.Go(func() error {
			defer wg.Done()
			if first {
				waiting.Done()
				<-ready
			}
			w := newWorker()
			defer w.rest()
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			for {
				i, intended, ok := claim()
				if !ok {
					return nil
				}
				if wait := time.Until(intended); wait > 0 {
					w.rest()
					t.Reset(wait)
					select {
					case <-t.C:
					case <-stop.Done():
						return nil
					}
				} else if !end.IsZero() && !time.Now().Before(end) {
					return nil // the duration is up: the slot is missed
				} else if -wait > metrics.LateAfter && workers.Load() >= maxW {
					lateAtMax.Add(1)
				}
				if stop.Err() != nil {
					return nil
				}
				started.Add(1)
				busy.Add(1)
				more()
				err := w.do(jctx, i, slot{intended: intended, sent: time.Now()})
				busy.Add(-1)
				if err != nil {
					return err
				}
			}
		})
	}
	n := min(int64(p.concurrency), maxW)
	workers.Store(n)
	for range n {
		spawn(true)
	}
	waiting.Wait()
	begin = time.Now()
	if l := p.length(); l > 0 {
		end = begin.Add(l)
	}
	next = slots(p, begin)
	defer keepTimersOnTime(slots(p, begin))()
	close(ready)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var cut bool // by an interrupt or a failed worker
	select {
	case <-done:
	case <-ctx.Done():
		cut = true
	case <-gctx.Done():
		cut = true
	}
	stopAll()
	<-done
	res.peak = int(workers.Load())
	sent := started.Load()
	res.saturated = float64(lateAtMax.Load()) > saturatedShare*float64(sent)
	if !cut && !end.IsZero() {
		due := newSchedule(p.rate, p.duration, p.stages).slots()
		if p.total >= 0 {
			due = min(due, p.total)
		}
		res.missed = max(int(int64(p.shareOf(due))-sent), 0) // the shard's own slots
	}
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

// enter waits until worker id may take a job, or the gate is closed;
// before it waits, it calls waiting. A nil gate lets every worker
// through.
func (g *workerGate) enter(id int, waiting func()) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if id >= g.allowed && !g.closed {
		g.mu.Unlock()
		waiting()
		g.mu.Lock()
	}
	for id >= g.allowed && !g.closed {
		g.cond.Wait()
	}
}

func (g *workerGate) set(n int) {
	g.mu.Lock()
	g.allowed = n
	g.mu.Unlock()
	g.cond.Broadcast()
}

// close lets every worker through, to find that no job is left.
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

// warmer is a job source that can open its connections before the
// step's clock starts, so that the first slots of a rate's schedule do not
// wait for them.
type warmer interface {
	warm(ctx context.Context, conns int)
}

// warmFor bounds how long a step waits for its connections to open
// before it starts anyway (the requests then wait for them).
const warmFor = time.Second

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
			pl.target = p.targetRate()
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
	if w, ok := src.(warmer); ok && p.scheduled() {
		w.warm(ctx, p.concurrency)
	}
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
