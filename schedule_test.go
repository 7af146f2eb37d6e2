package main

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

func rates(rs ...float64) []Stage {
	var st []Stage
	for i := 0; i+1 < len(rs); i += 2 {
		st = append(st, Stage{Duration: Duration(time.Duration(rs[i] * float64(time.Second))), Rate: ptr(rs[i+1])})
	}
	return st
}

func TestScheduleSlots(t *testing.T) {
	// A constant rate puts slot i at i/rate.
	s := newSchedule(100, 2500*time.Millisecond, nil)
	for _, i := range []int{0, 1, 99, 249} {
		if at, ok := s.at(i); !ok || math.Abs(at-float64(i)/100) > 1e-9 {
			t.Errorf("slot %d at %v (%v), want %v", i, at, ok, float64(i)/100)
		}
	}
	if _, ok := s.at(250); ok || s.slots() != 250 || s.meanRate() != 100 {
		t.Errorf("slot 250 is due; slots %d, mean rate %v", s.slots(), s.meanRate())
	}
	// A ramp from 0 to 100 over 2 s then 100 for 1 s: 100 + 100 slots;
	// the count at t is 25 t² during the ramp, so slot i is at √(i/25).
	s = newSchedule(0, 0, rates(2, 100, 1, 100))
	for _, i := range []int{0, 1, 25, 99, 100, 150, 199} {
		want := math.Sqrt(float64(i) / 25)
		if i >= 100 {
			want = 2 + float64(i-100)/100
		}
		if at, ok := s.at(i); !ok || math.Abs(at-want) > 1e-9 {
			t.Errorf("ramp slot %d at %v (%v), want %v", i, at, ok, want)
		}
	}
	if _, ok := s.at(200); ok || s.slots() != 200 || s.meanRate() != 200.0/3 {
		t.Errorf("slots %d, mean %v", s.slots(), s.meanRate())
	}
	// Down to 0: a ramp from 60 to 0 over 1 s holds 30 slots.
	s = newSchedule(0, 0, rates(1, 60, 1, 0))
	if s.slots() != 60 {
		t.Errorf("up and down: %d slots, want 60", s.slots())
	}
	last, _ := s.at(59)
	if _, ok := s.at(60); ok || last >= 2 || last < 1.5 {
		t.Errorf("the last slot is at %v", last)
	}
	// Concurrency stages: workers ramp the same way.
	cs := []Stage{{Duration: Duration(time.Second), Concurrency: ptr(10)}, {Duration: Duration(time.Second), Concurrency: ptr(2)}}
	for _, c := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {500 * time.Millisecond, 5}, {time.Second, 10}, {1500 * time.Millisecond, 6}, {3 * time.Second, 2}} {
		if got := workersAt(cs, c.at); got != c.want {
			t.Errorf("workers at %v: %d, want %d", c.at, got, c.want)
		}
	}
}

func TestStagesAreValidated(t *testing.T) {
	plan := `host: http://127.0.0.1:1
steps:
  - download:
      csv: q.csv
      rate: 5
      stages: [{duration: 1s, rate: 5}, {duration: 1s, concurrency: 2}, {rate: 3}, {duration: 1s, rate: 1, concurrency: 1}]
`
	p, err := ParsePlan(strings.NewReader(plan), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Validate()
	for _, want := range []string{
		"steps[0].download.stages: give stages, or rate and duration, not both",
		"steps[0].download.stages[1]: stages are all rate stages or all concurrency stages, not a mix",
		"steps[0].download.stages[2].duration: is required",
		"steps[0].download.stages[3]: a stage has a rate or a concurrency (exactly one)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v lack %q", err, want)
		}
	}
}

// TestDurationBoundsARateStep: against a server slower than the rate,
// with few workers, the step still ends when its duration (plus the
// plan's timeout for requests in flight) is up, counts the slots it could
// not send, and says it saturated.
func TestDurationBoundsARateStep(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: 100 * time.Millisecond}}})
	start := time.Now()
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      rate: 50\n      duration: 1s\n      concurrency: 1\n      max_concurrency: 2\n"), downloadFiles)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	// 2 workers at 100 ms a request send about 20 of the 50 slots.
	if !m.Saturated || m.Missed < 20 || m.Missed+m.Requests+m.Cancelled != 50 || m.PeakWorkers != 2 {
		t.Errorf("saturated %v, missed %d, requests %d, cancelled %d, peak workers %d: want saturated and 50 slots in all",
			m.Saturated, m.Missed, m.Requests, m.Cancelled, m.PeakWorkers)
	}
	if served := int64(len(emu.Log())); served != m.Requests {
		t.Errorf("the server answered %d, the step counts %d", served, m.Requests)
	}
	// The step ends within its duration and the plan's timeout (5 s).
	if took > 6*time.Second {
		t.Errorf("a 1 s step took %v", took)
	}
	if m.TargetRatePerS == nil || *m.TargetRatePerS != 50 || m.LatePct == nil {
		t.Errorf("target %v, late %v", m.TargetRatePerS, m.LatePct)
	}
}

// TestStallShowsInResponseTimeNotServiceTime: one request stalled 2 s at
// a fixed rate with one worker: the requests behind it wait, which the
// response time (from the schedule) shows and the service time does not.
func TestStallShowsInResponseTimeNotServiceTime(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Limit: 1, Stall: 2 * time.Second}}})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      rate: 20\n      max_requests: 20\n      concurrency: 1\n      max_concurrency: 1\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	if m.Requests != 20 || m.ResponseTime.P99S < 1.8 || m.ServiceTime.P50S > 0.2 || !m.Saturated {
		t.Errorf("requests %d, response p99 %.3fs (want >= 1.8s), service p50 %.3fs (want low), saturated %v",
			m.Requests, m.ResponseTime.P99S, m.ServiceTime.P50S, m.Saturated)
	}
}

// TestRateStagesFollowTheRamp: a ramp from 0 to 200/s over 2 s, then
// 200/s for 1 s: every slot is sent, and each second of the timeline
// holds about what the ramp puts in it.
func TestRateStagesFollowTheRamp(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      concurrency: 4\n      stages: [{duration: 2s, rate: 200}, {duration: 1s, rate: 200}]\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	if m.Requests != 400 || m.Missed != 0 || m.TargetRatePerS == nil || math.Abs(*m.TargetRatePerS-400.0/3) > 1e-9 {
		t.Fatalf("requests %d (want 400), missed %d, target %v", m.Requests, m.Missed, m.TargetRatePerS)
	}
	// The count the ramp reaches t seconds after the first request.
	count := func(t float64) float64 {
		switch {
		case t <= 0:
			return 0
		case t <= 2:
			return 50 * t * t
		}
		return 200 + 200*math.Min(t-2, 1)
	}
	// Each second holds what the ramp puts there, when the client kept its
	// schedule: on a machine too loaded for that, requests go out late
	// (late_pct says how many) and bunch up in later seconds.
	if m.LatePct == nil || *m.LatePct > 5 {
		t.Skipf("%s of requests were sent late: the machine is too busy to check the ramp second by second", optPct(m.LatePct))
	}
	origin := m.FirstSentAt.Sub(*m.Timeline.StartedAt).Seconds()
	for _, p := range m.Timeline.Points {
		want := count(p.TS+1-origin) - count(p.TS-origin)
		if math.Abs(float64(p.Requests)-want) > 0.25*want+15 {
			t.Errorf("second %v of the timeline: %d requests, the ramp puts %.0f there", p.TS, p.Requests, want)
		}
	}
}

// TestConcurrencyStages: workers are added along the ramp and retired,
// and the step lasts the stages' time.
func TestConcurrencyStages(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: 10 * time.Millisecond}}})
	start := time.Now()
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      stages: [{duration: 1s, concurrency: 6}, {duration: 500ms, concurrency: 1}]\n"), downloadFiles)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	if m.PeakWorkers != 6 || m.Requests < 50 || m.ScheduleLag != nil || m.TargetRatePerS != nil {
		t.Errorf("peak workers %d, requests %d, lag %v, target %v", m.PeakWorkers, m.Requests, m.ScheduleLag, m.TargetRatePerS)
	}
	if took < 1500*time.Millisecond {
		t.Errorf("1.5 s of stages took %v", took)
	}
}

// TestDurationBoundsAStepThatKeepsUp: every slot of the schedule is sent
// on time, but the server never answers: the step still ends once its
// duration and the plan's timeout are up, and the requests cut off count
// as timeouts (not as cancelled by an interrupt), which fails the step.
func TestDurationBoundsAStepThatKeepsUp(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{Faults: []emulator.Fault{{Endpoint: "download", Every: 1, Stall: time.Hour}}})
	plan := strings.Replace(downloadPlan(url, "      rate: 5\n      duration: 1s\n      concurrency: 2\n"), "timeout: 5s", "timeout: 1s", 1)
	start := time.Now()
	r, err := runJSON(t, context.Background(), plan, downloadFiles)
	took := time.Since(start)
	if err == nil || r == nil {
		t.Fatalf("a step whose every request was cut off: %v", err)
	}
	m := r.Steps[0].Metrics
	if m.Requests != 5 || m.Errors != 5 || m.TransportErrors.Timeout != 5 || m.Cancelled != 0 || m.Missed != 0 || m.Saturated {
		t.Errorf("requests %d, errors %d, timeouts %d, cancelled %d, missed %d, saturated %v: want 5 timeouts",
			m.Requests, m.Errors, m.TransportErrors.Timeout, m.Cancelled, m.Missed, m.Saturated)
	}
	// The bound is 1 s of duration and 1 s of timeout.
	if took > 5*time.Second {
		t.Errorf("a step bounded at 2 s took %v", took)
	}
}

// TestSaturatedNeedsMoreThanABusyMoment: with max_concurrency workers
// only, one job that holds its worker 20 ms makes a few slots late (well
// under 1 % of 400), which is not saturation; one that holds it 400 ms
// makes about 80 late (20 %), which is.
func TestSaturatedNeedsMoreThanABusyMoment(t *testing.T) {
	for _, tc := range []struct {
		hold      time.Duration
		saturated bool
	}{{20 * time.Millisecond, false}, {400 * time.Millisecond, true}} {
		p := pace{concurrency: 1, maxConcurrency: 1, rate: 200, total: 400}
		var late int
		is, err := issue(context.Background(), context.Background(), p, func(_ context.Context, i int, s slot) error {
			if s.sent.Sub(s.intended) > 10*time.Millisecond {
				late++ // one worker: no race
			}
			if i == 100 {
				time.Sleep(tc.hold) // the job's own work, not synchronisation
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if is.saturated != tc.saturated || is.peak != 1 {
			t.Errorf("a job held %v: saturated %v (%d of 400 late), peak %d; want saturated %v with 1 worker",
				tc.hold, is.saturated, late, is.peak, tc.saturated)
		}
	}
}

// TestRateAddsWorkersWhenAllAreBusy: jobs that each hold their worker
// 50 ms at 200 slots a second need about 10 workers; the dispatch adds
// them (from 1, up to max_concurrency 40) and keeps the schedule.
func TestRateAddsWorkersWhenAllAreBusy(t *testing.T) {
	p := pace{concurrency: 1, maxConcurrency: 40, rate: 200, total: 200}
	var mu sync.Mutex
	var lags []time.Duration
	is, err := issue(context.Background(), context.Background(), p, func(_ context.Context, i int, s slot) error {
		mu.Lock()
		lags = append(lags, s.sent.Sub(s.intended))
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // the job's own work
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if is.peak < 10 || is.peak > 40 || is.saturated || len(lags) != 200 {
		t.Fatalf("peak workers %d, saturated %v, %d jobs; want 10 to 40 workers, not saturated, 200 jobs", is.peak, is.saturated, len(lags))
	}
	slices.Sort(lags)
	if p50 := lags[100]; p50 > 5*time.Millisecond {
		t.Errorf("median schedule lag %v: the added workers did not keep the schedule", p50)
	}
}

// TestMaxConcurrencyBelowConcurrency: a max_concurrency under
// concurrency does not run fewer workers than concurrency, which the
// step's connections are sized for.
func TestMaxConcurrencyBelowConcurrency(t *testing.T) {
	p := pace{concurrency: 4, maxConcurrency: 2, rate: 100, total: 40}
	var mu sync.Mutex
	inFlight, most := 0, 0
	is, err := issue(context.Background(), context.Background(), p, func(context.Context, int, slot) error {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(60 * time.Millisecond) // the job's own work: 6 slots come meanwhile
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if is.peak != maxWorkersOf(p) || most > is.peak || most < 3 {
		t.Errorf("peak workers %d, most at once %d; want %d workers (maxWorkersOf), used", is.peak, most, maxWorkersOf(p))
	}
}
