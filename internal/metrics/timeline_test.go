package metrics

import (
	"math/rand/v2"
	"testing"
	"time"
)

// done returns an answered sample that ended at d after t0 and took took.
func done(d, took time.Duration, status int) Sample {
	end := t0.Add(d)
	s := Sample{Sent: end.Add(-took), Done: end, Status: status, Attempts: 1}
	if status == 0 {
		s.Class = ClassReset
	}
	return s
}

// pointHistogramCount decodes a point's histogram and returns its count.
func pointHistogramCount(t *testing.T, p TimelinePoint) int64 {
	t.Helper()
	if p.Histogram == nil {
		return 0
	}
	h, err := pointGeom.decode(*p.Histogram)
	if err != nil {
		t.Fatal(err)
	}
	return h.TotalCount()
}

func TestTimelineIntervals(t *testing.T) {
	for _, tc := range []struct {
		name           string
		n              int
		span           time.Duration
		points         int // exact number of points, or 0 for "at most 600"
		interval       float64
		outOfOrderTail bool
	}{
		{"5 s", 1000, 5 * time.Second, 5, 1, false},
		{"600 s fit at 1 s", 1200, 600 * time.Second, 600, 1, false},
		{"601 s need 2 s", 1202, 601 * time.Second, 301, 2, false},
		{"2000 s", 10000, 2000 * time.Second, 500, 4, false},
		{"2000 s out of order", 10000, 2000 * time.Second, 500, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), 1))
			m := New(false)
			var errs int64
			ends := make([]time.Duration, tc.n)
			for i := range ends {
				ends[i] = tc.span / time.Duration(tc.n) * time.Duration(i)
			}
			if tc.outOfOrderTail {
				// The first 40 s arrive in random order.
				rng.Shuffle(200, func(i, j int) { ends[i], ends[j] = ends[j], ends[i] })
			}
			for _, d := range ends {
				status := 200
				if rng.IntN(10) == 0 {
					status, errs = 0, errs+1
				}
				m.Add(done(d, time.Duration(1+rng.IntN(100_000))*time.Microsecond, status))
			}
			tl := m.Summary().Timeline
			if len(tl.Points) != tc.points || tl.IntervalS != tc.interval {
				t.Fatalf("%d points of %v s, want %d of %v s", len(tl.Points), tl.IntervalS, tc.points, tc.interval)
			}
			if !tl.StartedAt.Equal(t0) {
				t.Errorf("started_at %v, want %v", tl.StartedAt, t0)
			}
			// Each point holds exactly the samples done in its interval.
			want := make([]int64, len(tl.Points))
			iv := time.Duration(tc.interval * float64(time.Second))
			for _, d := range ends {
				want[d/iv]++
			}
			var reqs, gotErrs int64
			for i, p := range tl.Points {
				if p.Requests != want[i] || pointHistogramCount(t, p) != want[i] {
					t.Errorf("point %d: %d requests (histogram %d), want %d", i, p.Requests, pointHistogramCount(t, p), want[i])
				}
				if p.TS != float64(i)*tc.interval {
					t.Errorf("point %d: t_s %v", i, p.TS)
				}
				reqs += p.Requests
				gotErrs += p.Errors
			}
			if reqs != int64(tc.n) || gotErrs != errs {
				t.Errorf("points hold %d requests, %d errors; want %d, %d", reqs, gotErrs, tc.n, errs)
			}
		})
	}
}

func TestTimelineOutOfOrderSample(t *testing.T) {
	m := New(false)
	for i := range 10 {
		m.Add(done(time.Duration(i)*time.Second+100*time.Millisecond, 5*time.Millisecond, 200))
	}
	if h := m.timeline.points[2].hist; h != nil {
		t.Fatal("point 2 of 10 is still live")
	}
	// Late for the closed point 2, and slower than anything there.
	m.Add(done(2500*time.Millisecond, 700*time.Millisecond, 0))
	// Before the first point: the timeline grows to the left.
	m.Add(done(-1500*time.Millisecond, 3*time.Millisecond, 200))

	tl := m.Summary().Timeline
	if !tl.StartedAt.Equal(t0.Add(-2*time.Second)) || len(tl.Points) != 12 {
		t.Fatalf("started_at %v with %d points, want %v with 12", tl.StartedAt, len(tl.Points), t0.Add(-2*time.Second))
	}
	for _, c := range []struct {
		i, requests, errors int64
		max                 float64
	}{
		{0, 1, 0, 0.003},
		{1, 0, 0, 0},
		{2, 1, 0, 0.005},
		{4, 2, 1, 0.7},
		{11, 1, 0, 0.005},
	} {
		p := tl.Points[c.i]
		if p.Requests != c.requests || p.Errors != c.errors || pointHistogramCount(t, p) != c.requests {
			t.Errorf("point %d: %d requests, %d errors, histogram %d; want %d, %d", c.i, p.Requests, p.Errors,
				pointHistogramCount(t, p), c.requests, c.errors)
		}
		if c.requests == 0 {
			if p.MaxS != nil || p.P50S != nil || p.Histogram != nil {
				t.Errorf("empty point %d has figures: %+v", c.i, p)
			}
		} else if *p.MaxS != c.max || *p.P99S > c.max {
			t.Errorf("point %d: max %v p99 %v, want max %v", c.i, *p.MaxS, *p.P99S, c.max)
		}
	}
}

func TestTimelineMergeCoarsens(t *testing.T) {
	// a: 100 s at 1 s; b: 1500 s at 4 s, starting 3 s after a. Merged in
	// either order, they make the timeline of one run that did both.
	a, b, whole := New(false), New(false), New(false)
	for i := range 100 {
		a.Add(done(time.Duration(i)*time.Second, time.Millisecond, 200))
		whole.Add(done(time.Duration(i)*time.Second, time.Millisecond, 200))
	}
	for i := range 1500 {
		b.Add(done(3*time.Second+time.Duration(i)*time.Second, time.Millisecond, 0))
		whole.Add(done(3*time.Second+time.Duration(i)*time.Second, time.Millisecond, 0))
	}
	if b.timeline.interval != 4*baseInterval {
		t.Fatalf("b's interval %v", time.Duration(b.timeline.interval))
	}
	ab, ba := New(false), New(false)
	ab.Merge(a)
	ab.Merge(b)
	ba.Merge(b)
	ba.Merge(a)
	want := whole.Summary().Timeline
	for name, m := range map[string]*Metrics{"a+b": ab, "b+a": ba} {
		tl := m.Summary().Timeline
		if tl.IntervalS != 4 || !tl.StartedAt.Equal(t0) || len(tl.Points) != len(want.Points) {
			t.Fatalf("%s: interval %v s from %v, %d points; want 4 s from %v, %d points", name, tl.IntervalS, tl.StartedAt, len(tl.Points), t0, len(want.Points))
		}
		for i, p := range tl.Points {
			if w := want.Points[i]; p.TS != w.TS || p.Requests != w.Requests || p.Errors != w.Errors || pointHistogramCount(t, p) != p.Requests {
				t.Errorf("%s: point %d at %v s: %d requests, %d errors; the whole run has %d, %d", name, i, p.TS, p.Requests, p.Errors, w.Requests, w.Errors)
			}
		}
	}
	// The first point, 0..4 s, holds a's first four samples and b's
	// first (at 3 s).
	if p := want.Points[0]; p.Requests != 4+1 || p.Errors != 1 {
		t.Errorf("first point: %d requests, %d errors; want 5, 1", p.Requests, p.Errors)
	}
}

// TestTimelineGridFollowsTheEpoch: two timelines that start at different
// seconds (1 s and 4 s after a multiple of 4 s) share their grid once they double, so that merging them is
// exact, in either order.
func TestTimelineGridFollowsTheEpoch(t *testing.T) {
	a, b, whole := New(false), New(false), New(false)
	for i := range 1500 {
		at := time.Second + time.Duration(i)*time.Second // neither starts on the 4 s grid
		a.Add(done(at, time.Millisecond, 200))
		whole.Add(done(at, time.Millisecond, 200))
		b.Add(done(3*time.Second+at, time.Millisecond, 404))
		whole.Add(done(3*time.Second+at, time.Millisecond, 404))
	}
	want := whole.Summary().Timeline
	for _, pair := range [][2]*Metrics{{a, b}, {b, a}} {
		m := New(false)
		m.Merge(pair[0])
		m.Merge(pair[1])
		tl := m.Summary().Timeline
		if !tl.StartedAt.Equal(*want.StartedAt) || len(tl.Points) != len(want.Points) {
			t.Fatalf("merged from %v with %d points; the whole run from %v with %d", tl.StartedAt, len(tl.Points), want.StartedAt, len(want.Points))
		}
		for i, p := range tl.Points {
			if w := want.Points[i]; p.Requests != w.Requests || p.ByClass != w.ByClass {
				t.Errorf("point %d: %d requests %+v; the whole run has %d %+v", i, p.Requests, p.ByClass, w.Requests, w.ByClass)
			}
		}
	}
}

func TestTimelineMemoryBounded(t *testing.T) {
	m := New(false)
	for i := range 5000 {
		m.Add(done(time.Duration(i)*time.Second, time.Duration(1+i%1000)*time.Millisecond, 200))
	}
	tl := m.timeline
	if len(tl.points) > maxPoints || tl.histograms() > 2*liveCap {
		t.Fatalf("%d points, %d histograms", len(tl.points), tl.histograms())
	}
	for i, p := range tl.points {
		if live := i >= len(tl.points)-liveCap; (p.hist != nil) != live || (p.enc != "") == live {
			t.Errorf("point %d of %d: live %v, encoded %v", i, len(tl.points), p.hist != nil, p.enc != "")
		}
	}
}

// TestTimelineServiceAndLag: a scheduled step's intervals carry service
// time and schedule lag beside the response time; an unscheduled one's
// carry neither.
func TestTimelineServiceAndLag(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, scheduled := range []bool{true, false} {
		m := New(scheduled)
		for i := range 10 {
			intended := start.Add(time.Duration(i) * 50 * time.Millisecond)
			sent := intended.Add(time.Duration(i) * time.Millisecond) // lag 0..9 ms
			m.Add(Sample{Intended: intended, Sent: sent, Done: sent.Add(20 * time.Millisecond), Status: 200, Attempts: 1})
		}
		p := m.Summary().Timeline.Points[0]
		switch {
		case !scheduled && (p.Service != nil || p.Lag != nil):
			t.Errorf("unscheduled: service %+v, lag %+v", p.Service, p.Lag)
		case scheduled && (p.Service == nil || p.Lag == nil):
			t.Fatalf("scheduled: service %+v, lag %+v", p.Service, p.Lag)
		case scheduled && (p.Lag.MaxS != 0.009 || p.Service.MaxS != 0.02 || *p.MaxS != 0.029):
			t.Errorf("lag max %v (want 0.009), service max %v (want 0.02), response max %v (want 0.029)", p.Lag.MaxS, p.Service.MaxS, *p.MaxS)
		}
	}
}
