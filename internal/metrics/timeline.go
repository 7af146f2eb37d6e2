package metrics

import (
	"fmt"
	"math/bits"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// maxPoints bounds a timeline: one more interval doubles the interval.
	maxPoints = 600
	// baseInterval is a new timeline's interval; intervals are baseInterval
	// × 2^k, and a timeline's origin is a whole multiple of its interval
	// (of the Unix epoch's grid).
	baseInterval = int64(time.Second)
	// liveCap is how many histograms a timeline keeps for its newest
	// points and for reuse (two live, two spare at most).
	liveCap = 2
)

// TimelineSummary is the JSON form of a timeline.
type TimelineSummary struct {
	// StartedAt is the start of the first interval (a whole second, UTC),
	// null when there are no points.
	StartedAt *time.Time `json:"started_at"`
	// IntervalS is the length of every interval in seconds: 1 × 2^k, the
	// smallest that keeps the timeline within 600 points.
	IntervalS float64 `json:"interval_s"`
	// Points are the intervals from StartedAt to the last one with a
	// request, in order, with no gaps; [] when empty.
	Points []TimelinePoint `json:"points"`
}

// TimelinePoint is one interval of a timeline. A request belongs to the
// interval that holds its Done time.
type TimelinePoint struct {
	// TS is the start of the interval, in seconds after started_at.
	TS float64 `json:"t_s"`
	// Requests is the number of requests done in the interval, errors
	// included.
	Requests int64 `json:"requests"`
	// Errors is the number of those that got no answer.
	Errors int64 `json:"errors"`
	// ByClass counts the answered requests by status class.
	ByClass StatusClasses `json:"by_class"`
	// P50S is the median response time in seconds (2 significant digits),
	// null when there are no requests.
	P50S *float64 `json:"p50_s"`
	// P99S is the 99th percentile of the response time in seconds.
	P99S *float64 `json:"p99_s"`
	// MaxS is the exact largest response time in seconds.
	MaxS *float64 `json:"max_s"`
	// Histogram is the interval's response-time HdrHistogram (1 µs to 1 h,
	// 2 significant digits) in base64 V2 compressed encoding; null when
	// there are no requests.
	Histogram *string `json:"histogram"`
	// Service and Lag are the interval's service time and schedule lag, for
	// a rate-driven step; null without a schedule or without requests.
	Service *PointDist `json:"service"`
	Lag     *PointDist `json:"lag"`
}

// PointDist is a distribution of one timeline interval.
type PointDist struct {
	P50S      float64 `json:"p50_s"`
	P99S      float64 `json:"p99_s"`
	MaxS      float64 `json:"max_s"`
	Histogram string  `json:"histogram"`
}

// pointDists moves the points of a parallel timeline (service time or
// schedule lag, fed the same done times) into s's points, as set picks.
func pointDists(s *TimelineSummary, of TimelineSummary, set func(tp *TimelinePoint, d *PointDist)) {
	for i := range s.Points {
		if i < len(of.Points) && of.Points[i].Histogram != nil {
			op := of.Points[i]
			set(&s.Points[i], &PointDist{P50S: *op.P50S, P99S: *op.P99S, MaxS: *op.MaxS, Histogram: *op.Histogram})
		}
	}
}

// parallel is the summary of a parallel timeline read back out of s's
// points, or false when no point has it.
func parallel(s TimelineSummary, get func(tp *TimelinePoint) *PointDist) (TimelineSummary, bool) {
	out := TimelineSummary{StartedAt: s.StartedAt, IntervalS: s.IntervalS, Points: make([]TimelinePoint, len(s.Points))}
	found := false
	for i, tp := range s.Points {
		op := TimelinePoint{TS: tp.TS, Requests: tp.Requests, Errors: tp.Errors, ByClass: tp.ByClass}
		if d := get(&tp); d != nil {
			found = true
			op.P50S, op.P99S, op.MaxS, op.Histogram = &d.P50S, &d.P99S, &d.MaxS, &d.Histogram
		}
		out.Points[i] = op
	}
	return out, found
}

// StatusClasses counts answers by the class of their HTTP status.
type StatusClasses struct {
	S1xx int64 `json:"1xx"`
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
}

// add counts n answers of status.
func (c *StatusClasses) add(status int, n int64) {
	switch status / 100 {
	case 1:
		c.S1xx += n
	case 2:
		c.S2xx += n
	case 3:
		c.S3xx += n
	case 4:
		c.S4xx += n
	case 5:
		c.S5xx += n
	}
}

func (c *StatusClasses) merge(o StatusClasses) {
	c.S1xx += o.S1xx
	c.S2xx += o.S2xx
	c.S3xx += o.S3xx
	c.S4xx += o.S4xx
	c.S5xx += o.S5xx
}

func (c StatusClasses) total() int64 { return c.S1xx + c.S2xx + c.S3xx + c.S4xx + c.S5xx }

// point is one interval. A point with requests is live (hist set) when it
// is one of the newest two points, else closed (enc set); a point without
// requests has neither.
type point struct {
	requests, errors int64
	classes          StatusClasses
	max              int64 // exact largest response time, µs
	p50, p99         int64 // µs, kept when the point is closed
	hist             *hdr.Histogram
	enc              string
}

// timeline counts requests per fixed interval of their Done time. Memory is
// bounded: at most maxPoints points, liveCap live histograms of ~27 KB,
// and closed points in their encoded form (a few hundred bytes each).
type timeline struct {
	origin   int64 // unix ns of points[0]'s start
	interval int64 // ns
	points   []point
	spare    []*hdr.Histogram // reset histograms to reuse
}

func newTimeline() *timeline {
	return &timeline{interval: baseInterval}
}

// add counts one request done at the instant done (unix ns). A request for
// a closed interval (out of order by more than an interval) decodes and
// re-encodes it: exact, but a fraction of a millisecond instead of tens of
// nanoseconds.
func (t *timeline) add(done, responseUS int64, status int) {
	i := t.slot(done)
	p := &t.points[i]
	p.requests++
	if status <= 0 {
		p.errors++
	}
	p.classes.add(status, 1)
	if p.requests == 1 || responseUS > p.max {
		p.max = responseUS
	}
	if p.hist != nil { // the steady state: a live point
		pointGeom.record(p.hist, responseUS, 1)
		return
	}
	h := t.open(p)
	pointGeom.record(h, responseUS, 1)
	t.settle(i, h)
}

// slot returns the index of the point whose interval holds the instant at
// (unix ns), adding points before or after the others and doubling the
// interval as needed.
func (t *timeline) slot(at int64) int {
	if len(t.points) == 0 {
		t.origin = floorDiv(at, t.interval) * t.interval
		t.points = append(t.points, point{})
		return 0
	}
	for {
		i := floorDiv(at-t.origin, t.interval)
		n := int64(len(t.points))
		if max(i, n-1)-min(i, 0)+1 > maxPoints {
			t.double()
			continue
		}
		if i < 0 {
			// Out of order, before the first point: grow to the left by
			// whole intervals, so that the grid does not move.
			t.origin += i * t.interval
			t.points = append(make([]point, -i, int(n-i)), t.points...)
			return 0
		}
		if i >= n {
			t.points = append(t.points, make([]point, i+1-n)...)
			t.settleFrom(int(n) - liveCap)
		}
		return int(i)
	}
}

// double merges adjacent pairs of points and doubles the interval. The
// origin stays a whole multiple of the interval (an empty point is added
// before the first when it is not one of the new interval), so that the
// timelines of one run's shards share one grid and merge point by point.
func (t *timeline) double() {
	if len(t.points) > 0 && t.origin%(2*t.interval) != 0 {
		t.origin -= t.interval
		t.points = append([]point{{}}, t.points...)
	}
	n := (len(t.points) + 1) / 2
	for j := range n {
		a := t.points[2*j]
		if 2*j+1 < len(t.points) {
			a = t.join(a, t.points[2*j+1])
		}
		t.points[j] = a
	}
	clear(t.points[n:])
	t.points = t.points[:n]
	t.interval *= 2
	t.settleFrom(0)
}

// join returns the union of two points, live when both had requests.
func (t *timeline) join(a, b point) point {
	if b.requests == 0 {
		return a
	}
	if a.requests == 0 {
		return b
	}
	h := t.open(&a)
	t.mergeInto(h, &b)
	if b.hist != nil {
		t.release(b.hist)
	}
	a.classes.merge(b.classes)
	return point{
		requests: a.requests + b.requests,
		errors:   a.errors + b.errors,
		classes:  a.classes,
		max:      max(a.max, b.max),
		hist:     h,
	}
}

// merge adds the points of o, each at the interval of t that holds its
// start, after coarsening t to o's interval if it is finer.
func (t *timeline) merge(o *timeline) {
	if len(o.points) == 0 {
		return
	}
	for t.interval < o.interval {
		t.double()
	}
	for j := range o.points {
		op := &o.points[j]
		if op.requests == 0 {
			continue
		}
		i := t.slot(o.origin + int64(j)*o.interval)
		p := &t.points[i]
		h := t.open(p)
		t.mergeInto(h, op)
		if p.requests == 0 || op.max > p.max {
			p.max = op.max
		}
		p.requests += op.requests
		p.errors += op.errors
		p.classes.merge(op.classes)
		t.settle(i, h)
	}
}

// open returns a histogram holding p's counts: its live one, its decoded
// one, or an empty one. The caller hands it back with settle.
func (t *timeline) open(p *point) *hdr.Histogram {
	switch {
	case p.hist != nil:
		return p.hist
	case p.enc != "":
		return pointGeom.mustDecode(p.enc)
	case len(t.spare) > 0:
		h := t.spare[len(t.spare)-1]
		t.spare = t.spare[:len(t.spare)-1]
		return h
	}
	return pointGeom.new()
}

// mergeInto adds the histogram of point o (live or closed) to h.
func (t *timeline) mergeInto(h *hdr.Histogram, o *point) {
	if o.hist != nil {
		h.Merge(o.hist)
	} else {
		h.Merge(pointGeom.mustDecode(o.enc))
	}
}

// settle stores h, the histogram of points[i] after a change, live or
// closed depending on where the point is.
func (t *timeline) settle(i int, h *hdr.Histogram) {
	p := &t.points[i]
	p.hist, p.enc = h, ""
	if i < len(t.points)-liveCap {
		t.close(p)
	}
}

// settleFrom restores the invariant from point i on: the newest liveCap
// points live, the older ones closed.
func (t *timeline) settleFrom(i int) {
	for i = max(i, 0); i < len(t.points); i++ {
		p := &t.points[i]
		switch live := i >= len(t.points)-liveCap; {
		case live && p.enc != "":
			p.hist, p.enc = t.open(p), ""
		case !live && p.hist != nil:
			t.close(p)
		}
	}
}

// close encodes a live point's histogram and releases the histogram.
func (t *timeline) close(p *point) {
	p.p50 = quantile(p.hist, 0.50, 0, p.max)
	p.p99 = quantile(p.hist, 0.99, 0, p.max)
	p.enc = encode(p.hist)
	t.release(p.hist)
	p.hist = nil
}

func (t *timeline) release(h *hdr.Histogram) {
	if len(t.spare) < liveCap {
		h.Reset()
		t.spare = append(t.spare, h)
	}
}

func (t *timeline) summary() TimelineSummary {
	s := TimelineSummary{
		IntervalS: float64(t.interval) / 1e9,
		Points:    make([]TimelinePoint, 0, len(t.points)),
	}
	if len(t.points) == 0 {
		return s
	}
	first := 0 // points before the first request are left out
	for first < len(t.points)-1 && t.points[first].requests == 0 {
		first++
	}
	started := time.Unix(0, t.origin+int64(first)*t.interval).UTC()
	s.StartedAt = &started
	for i := first; i < len(t.points); i++ {
		p := &t.points[i]
		tp := TimelinePoint{TS: float64(i-first) * s.IntervalS, Requests: p.requests, Errors: p.errors, ByClass: p.classes}
		if p.requests > 0 {
			enc, p50, p99 := p.enc, p.p50, p.p99
			if p.hist != nil {
				enc = encode(p.hist)
				p50 = quantile(p.hist, 0.50, 0, p.max)
				p99 = quantile(p.hist, 0.99, 0, p.max)
			}
			p50s, p99s, maxs := seconds(p50), seconds(p99), seconds(p.max)
			tp.P50S, tp.P99S, tp.MaxS, tp.Histogram = &p50s, &p99s, &maxs, &enc
		}
		s.Points = append(s.Points, tp)
	}
	return s
}

// timelineFromSummary rebuilds a timeline; errors name the field.
func timelineFromSummary(s TimelineSummary) (*timeline, error) {
	t := newTimeline()
	k := uint64(s.IntervalS)
	if s.IntervalS < 1 || s.IntervalS > 1<<32 || float64(k) != s.IntervalS || bits.OnesCount64(k) != 1 {
		return nil, fmt.Errorf("interval_s: %v is not 1 s × 2^k", s.IntervalS)
	}
	t.interval = int64(k) * baseInterval
	if len(s.Points) > maxPoints {
		return nil, fmt.Errorf("points: %d points, at most %d", len(s.Points), maxPoints)
	}
	if (s.StartedAt == nil) != (len(s.Points) == 0) {
		return nil, fmt.Errorf("started_at: must be null exactly when there are no points")
	}
	if s.StartedAt == nil {
		return t, nil
	}
	t.origin = s.StartedAt.UnixNano()
	if t.origin%baseInterval != 0 {
		return nil, fmt.Errorf("started_at: %s is not a whole second", s.StartedAt.Format(time.RFC3339Nano))
	}
	t.points = make([]point, len(s.Points))
	for i, sp := range s.Points {
		if err := t.readPoint(i, sp); err != nil {
			return nil, fmt.Errorf("points[%d].%w", i, err)
		}
	}
	return t, nil
}

func (t *timeline) readPoint(i int, sp TimelinePoint) error {
	if want := float64(i) * (float64(t.interval) / 1e9); sp.TS != want {
		return fmt.Errorf("t_s: %v, want %v", sp.TS, want)
	}
	if sp.Requests < 0 || sp.Errors < 0 || sp.Errors > sp.Requests {
		return fmt.Errorf("errors: %d errors of %d requests", sp.Errors, sp.Requests)
	}
	if sp.Requests == 0 {
		if sp.P50S != nil || sp.P99S != nil || sp.MaxS != nil || sp.Histogram != nil {
			return fmt.Errorf("histogram: p50_s, p99_s, max_s and histogram must be null without requests")
		}
		return nil
	}
	if sp.MaxS == nil || sp.Histogram == nil {
		return fmt.Errorf("histogram: max_s and histogram must be set when there are requests")
	}
	if sp.ByClass.total() != sp.Requests-sp.Errors {
		return fmt.Errorf("by_class: holds %d answers, requests less errors is %d", sp.ByClass.total(), sp.Requests-sp.Errors)
	}
	p := &t.points[i]
	p.requests, p.errors, p.classes = sp.Requests, sp.Errors, sp.ByClass
	var err error
	if p.max, err = micros(*sp.MaxS); err != nil {
		return fmt.Errorf("max_s: %w", err)
	}
	h, err := pointGeom.decode(*sp.Histogram)
	if err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	if h.TotalCount() != sp.Requests {
		return fmt.Errorf("histogram: holds %d values, requests is %d", h.TotalCount(), sp.Requests)
	}
	if i < len(t.points)-liveCap {
		// Keep the encoding as read: it is the closed form.
		p.enc = *sp.Histogram
		p.p50 = quantile(h, 0.50, 0, p.max)
		p.p99 = quantile(h, 0.99, 0, p.max)
	} else {
		p.hist = h
	}
	return nil
}

// floorDiv is a / b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
