package metrics

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Classes of a sample that got no answer (Status 0).
const (
	ClassTimeout   = "timeout"
	ClassRefused   = "refused"
	ClassReset     = "reset"
	ClassOther     = "other"
	ClassCancelled = "cancelled"
)

// Names of the distributions, as in the JSON and for Quantile.
const (
	ResponseTime = "response_time"
	ServiceTime  = "service_time"
	ScheduleLag  = "schedule_lag"
)

// Sample is one job's outcome, retries included.
type Sample struct {
	Intended time.Time // when the schedule meant it to start; zero when unscheduled (then = Sent)
	Sent     time.Time // when the first attempt started
	Done     time.Time // when the last attempt ended (body read)
	Status   int       // final HTTP status; 0 when no answer came
	Class    string    // when Status == 0: "timeout", "refused", "reset", "other" or "cancelled"
	Attempts int       // requests the server may have seen (>= 1)
}

// Metrics aggregates samples. Not safe for concurrent use: one collector
// goroutine owns it.
type Metrics struct {
	scheduled                            bool
	requests, errors, retries, cancelled int64
	transport                            TransportErrors
	firstSent, lastDone                  int64 // unix ns (wall clock); set when requests > 0
	// response is not kept when unscheduled: service stands for it. lag is
	// kept only when scheduled.
	response, service, lag dist
	byStatus               map[int]*Metrics // nil in a per-status child
	timeline               *timeline        // nil in a per-status child
	// serviceTL and lagTL follow the timeline with service time and
	// schedule lag: a scheduled step's only, nil otherwise.
	serviceTL, lagTL *timeline
	// What the dispatcher reports of the schedule (a step's Metrics only).
	target       *float64
	missed, late int64
	saturated    bool
	peakWorkers  int64
	stages       []LoadStage
}

// LateAfter is how late a request may be sent after its slot before it
// counts as late.
const LateAfter = 10 * time.Millisecond

// SetLoad records how the step's schedule went: the target rate (0 for
// none), the slots missed, whether the workers saturated and the most
// workers that ran at once. The dispatcher calls it once, at the end.
func (m *Metrics) SetLoad(target float64, missed int64, saturated bool, peakWorkers int) {
	m.target = nil
	if target > 0 {
		m.target = &target
	}
	m.missed, m.saturated, m.peakWorkers = missed, saturated, int64(peakWorkers)
}

// SetStages records the step's load shape, for reports to draw.
func (m *Metrics) SetStages(stages []LoadStage) { m.stages = stages }

// New returns empty Metrics. scheduled says that samples have an intended
// send time (a rate-driven step): then schedule lag is kept and response
// time is measured from the intended time.
func New(scheduled bool) *Metrics {
	m := &Metrics{scheduled: scheduled, byStatus: map[int]*Metrics{}, timeline: newTimeline()}
	if scheduled {
		m.serviceTL, m.lagTL = newTimeline(), newTimeline()
	}
	return m
}

// Add records one sample: O(1), and no allocation once its status and
// interval have been seen.
func (m *Metrics) Add(s Sample) {
	if s.Status <= 0 && s.Class == ClassCancelled {
		m.cancelled++
		return
	}
	intended := s.Sent
	if m.scheduled && !s.Intended.IsZero() {
		intended = s.Intended
	}
	r := record{
		status:   s.Status,
		class:    s.Class,
		retries:  int64(max(s.Attempts-1, 0)),
		response: s.Done.Sub(intended).Microseconds(),
		service:  s.Done.Sub(s.Sent).Microseconds(),
		lag:      s.Sent.Sub(intended).Microseconds(),
		sent:     s.Sent.UnixNano(),
		done:     s.Done.UnixNano(),
	}
	m.add(&r)
	if m.scheduled && r.lag > LateAfter.Microseconds() {
		m.late++
	}
	if s.Status > 0 {
		c := m.byStatus[s.Status]
		if c == nil {
			c = &Metrics{scheduled: m.scheduled}
			m.byStatus[s.Status] = c
		}
		c.add(&r)
	}
	m.timeline.add(r.done, r.response, s.Status)
	if m.serviceTL != nil {
		m.serviceTL.add(r.done, r.service, s.Status)
		m.lagTL.add(r.done, max(r.lag, 0), s.Status)
	}
}

// record is a sample reduced to what the counters need.
type record struct {
	status                 int
	class                  string
	retries                int64
	response, service, lag int64 // µs
	sent, done             int64 // unix ns
}

func (m *Metrics) add(r *record) {
	if m.requests == 0 || r.sent < m.firstSent {
		m.firstSent = r.sent
	}
	if m.requests == 0 || r.done > m.lastDone {
		m.lastDone = r.done
	}
	m.requests++
	m.retries += r.retries
	if r.status <= 0 {
		m.errors++
		switch r.class {
		case ClassTimeout:
			m.transport.Timeout++
		case ClassRefused:
			m.transport.Refused++
		case ClassReset:
			m.transport.Reset++
		default:
			m.transport.Other++
		}
	}
	m.service.record(r.service, 1)
	if m.scheduled {
		m.response.record(r.response, 1)
		m.lag.record(r.lag, 1)
	}
}

// Merge adds the samples of o to m: counts, sums, min, max and histograms
// exactly; the time window becomes the union of both; the timeline is
// merged on absolute time at the coarser interval. Merging scheduled
// metrics into unscheduled ones makes them scheduled, the unscheduled
// samples counting with a schedule lag of 0 (their intended time was their
// send time). o is not changed and must not be m.
func (m *Metrics) Merge(o *Metrics) {
	if o.scheduled && !m.scheduled {
		m.schedule()
	}
	m.cancelled += o.cancelled
	if o.target != nil {
		m.target = ptrf(valueOr(m.target) + *o.target)
	}
	m.missed += o.missed
	m.late += o.late
	m.saturated = m.saturated || o.saturated
	m.peakWorkers += o.peakWorkers
	if len(m.stages) == 0 {
		m.stages = o.stages
	}
	if o.requests == 0 {
		return
	}
	if m.requests == 0 || o.firstSent < m.firstSent {
		m.firstSent = o.firstSent
	}
	if m.requests == 0 || o.lastDone > m.lastDone {
		m.lastDone = o.lastDone
	}
	m.requests += o.requests
	m.errors += o.errors
	m.retries += o.retries
	m.transport.Timeout += o.transport.Timeout
	m.transport.Refused += o.transport.Refused
	m.transport.Reset += o.transport.Reset
	m.transport.Other += o.transport.Other
	m.service.merge(&o.service)
	switch {
	case m.scheduled && o.scheduled:
		m.response.merge(&o.response)
		m.lag.merge(&o.lag)
	case m.scheduled:
		m.response.merge(&o.service)
		m.lag.record(0, o.requests)
	}
	for status, oc := range o.byStatus {
		c := m.byStatus[status]
		if c == nil {
			c = &Metrics{scheduled: m.scheduled}
			m.byStatus[status] = c
		}
		c.Merge(oc)
	}
	if m.serviceTL != nil && o.serviceTL != nil {
		m.serviceTL.merge(o.serviceTL)
		m.lagTL.merge(o.lagTL)
	} else { // per interval, they are known only when every part has them
		m.serviceTL, m.lagTL = nil, nil
	}
	if m.timeline != nil && o.timeline != nil {
		m.timeline.merge(o.timeline)
	}
}

// schedule turns unscheduled metrics into scheduled ones whose samples had
// no schedule lag.
func (m *Metrics) schedule() {
	m.scheduled = true
	if m.requests > 0 {
		m.response = m.service.clone()
		m.lag.record(0, m.requests)
	}
	for _, c := range m.byStatus {
		c.schedule()
	}
}

// Requests returns the number of requests (samples not cancelled).
func (m *Metrics) Requests() int64 { return m.requests }

// Errors returns the number of requests that got no answer.
func (m *Metrics) Errors() int64 { return m.errors }

// Retries returns the number of attempts beyond the first, over all requests.
func (m *Metrics) Retries() int64 { return m.retries }

// Cancelled returns the number of cancelled samples.
func (m *Metrics) Cancelled() int64 { return m.cancelled }

// Quantile returns the value at quantile q (0..1) of the distribution named
// which (ResponseTime, ServiceTime or ScheduleLag) in seconds, within the
// histogram's precision and never outside the exact min and max. ok is
// false when that distribution is empty or absent (schedule lag of an
// unscheduled step), or which names none.
func (m *Metrics) Quantile(which string, q float64) (seconds float64, ok bool) {
	d := m.dist(which)
	if d == nil || d.count == 0 {
		return 0, false
	}
	return float64(d.quantile(q)) / 1e6, true
}

func (m *Metrics) dist(which string) *dist {
	switch which {
	case ResponseTime:
		if m.scheduled {
			return &m.response
		}
		return &m.service
	case ServiceTime:
		return &m.service
	case ScheduleLag:
		if m.scheduled {
			return &m.lag
		}
	}
	return nil
}

// Summary returns the JSON form of m, computing its statistics.
func (m *Metrics) Summary() Summary {
	s := Summary{Stats: m.stats(), ByStatus: []StatusSummary{}, Load: Load{TargetRatePerS: m.target,
		Missed: m.missed, Late: m.late, Saturated: m.saturated, PeakWorkers: m.peakWorkers, Stages: []LoadStage{}}}
	s.Stages = append(s.Stages, m.stages...)
	if m.scheduled && m.requests > 0 {
		s.LatePct = ptrf(100 * float64(m.late) / float64(m.requests))
	}
	for _, status := range slices.Sorted(maps.Keys(m.byStatus)) {
		s.ByStatus = append(s.ByStatus, StatusSummary{Status: status, Stats: m.byStatus[status].stats()})
	}
	s.Timeline = m.timeline.summary()
	if m.serviceTL != nil {
		pointDists(&s.Timeline, m.serviceTL.summary(), func(tp *TimelinePoint, d *PointDist) { tp.Service = d })
		pointDists(&s.Timeline, m.lagTL.summary(), func(tp *TimelinePoint, d *PointDist) { tp.Lag = d })
	}
	return s
}

func (m *Metrics) stats() Stats {
	s := Stats{
		Requests:        m.requests,
		Errors:          m.errors,
		Retries:         m.retries,
		Cancelled:       m.cancelled,
		TransportErrors: m.transport,
		ServiceTime:     m.service.summary(),
	}
	switch {
	case m.scheduled:
		s.ResponseTime = m.response.summary()
		s.ScheduleLag = m.lag.summary()
	case s.ServiceTime != nil:
		rt := *s.ServiceTime
		s.ResponseTime = &rt
	}
	if m.requests == 0 {
		return s
	}
	first, last := time.Unix(0, m.firstSent).UTC(), time.Unix(0, m.lastDone).UTC()
	s.FirstSentAt, s.LastDoneAt = &first, &last
	s.RanForS = last.Sub(first).Seconds()
	if s.RanForS > 0 {
		rate := float64(m.requests) / s.RanForS
		s.RatePerS = &rate
	}
	return s
}

// FromSummary rebuilds Metrics from their JSON form, so that saved results
// can be merged and summarised again: FromSummary(m.Summary()).Summary()
// equals m.Summary(). Counts, sums, min, max, histograms and times are
// read; derived figures (mean, percentiles, ran_for_s, rate_per_s) are
// computed again. The Metrics are scheduled when schedule_lag is not null.
// Errors name the field, e.g. "by_status[1].service_time.histogram: ...".
func FromSummary(s Summary) (*Metrics, error) {
	m := New(s.ScheduleLag != nil)
	if err := m.readStats(&s.Stats); err != nil {
		return nil, err
	}
	if s.Missed < 0 || s.Late < 0 || s.Late > s.Requests || s.PeakWorkers < 0 {
		return nil, fmt.Errorf("missed: missed, late and peak_workers must not be negative, nor late above requests")
	}
	m.target, m.missed, m.late, m.saturated, m.peakWorkers = s.TargetRatePerS, s.Missed, s.Late, s.Saturated, s.PeakWorkers
	if len(s.Stages) > 0 {
		m.stages = append([]LoadStage(nil), s.Stages...)
	}
	for i := range s.ByStatus {
		bs := &s.ByStatus[i]
		if bs.Status <= 0 || (i > 0 && bs.Status <= s.ByStatus[i-1].Status) {
			return nil, fmt.Errorf("by_status[%d].status: %d is not a status above the one before", i, bs.Status)
		}
		c := &Metrics{scheduled: m.scheduled}
		if err := c.readStats(&bs.Stats); err != nil {
			return nil, fmt.Errorf("by_status[%d].%w", i, err)
		}
		m.byStatus[bs.Status] = c
	}
	t, err := timelineFromSummary(s.Timeline)
	if err != nil {
		return nil, fmt.Errorf("timeline.%w", err)
	}
	var n int64
	for i := range t.points {
		n += t.points[i].requests
	}
	if n != m.requests {
		return nil, fmt.Errorf("timeline.points: hold %d requests, requests is %d", n, m.requests)
	}
	m.timeline = t
	m.serviceTL, m.lagTL = nil, nil
	if svc, ok := parallel(s.Timeline, func(tp *TimelinePoint) *PointDist { return tp.Service }); ok {
		lag, _ := parallel(s.Timeline, func(tp *TimelinePoint) *PointDist { return tp.Lag })
		if m.serviceTL, err = timelineFromSummary(svc); err != nil {
			return nil, fmt.Errorf("timeline (service).%w", err)
		}
		if m.lagTL, err = timelineFromSummary(lag); err != nil {
			return nil, fmt.Errorf("timeline (lag).%w", err)
		}
	}
	return m, nil
}

func (m *Metrics) readStats(s *Stats) error {
	if s.Requests < 0 || s.Retries < 0 || s.Cancelled < 0 {
		return fmt.Errorf("requests: requests, retries and cancelled must not be negative")
	}
	te := s.TransportErrors
	if te.Timeout < 0 || te.Refused < 0 || te.Reset < 0 || te.Other < 0 ||
		te.Timeout+te.Refused+te.Reset+te.Other != s.Errors {
		return fmt.Errorf("transport_errors: must add up to errors (%d)", s.Errors)
	}
	if s.Errors > s.Requests {
		return fmt.Errorf("errors: %d errors of %d requests", s.Errors, s.Requests)
	}
	m.requests, m.errors, m.retries, m.cancelled, m.transport = s.Requests, s.Errors, s.Retries, s.Cancelled, te
	if (s.FirstSentAt == nil || s.LastDoneAt == nil) != (s.Requests == 0) {
		return fmt.Errorf("first_sent_at: first_sent_at and last_done_at must be null exactly when there are no requests")
	}
	if s.Requests > 0 {
		m.firstSent, m.lastDone = s.FirstSentAt.UnixNano(), s.LastDoneAt.UnixNano()
	}
	var err error
	if m.service, err = readDist(ServiceTime, s.ServiceTime, s.Requests); err != nil {
		return err
	}
	if !m.scheduled {
		if s.ScheduleLag != nil {
			return fmt.Errorf("schedule_lag: set, but the step's schedule_lag is null")
		}
		if (s.ResponseTime == nil) != (s.ServiceTime == nil) || (s.ResponseTime != nil && *s.ResponseTime != *s.ServiceTime) {
			return fmt.Errorf("response_time: must equal service_time when schedule_lag is null")
		}
		return nil
	}
	if m.response, err = readDist(ResponseTime, s.ResponseTime, s.Requests); err != nil {
		return err
	}
	m.lag, err = readDist(ScheduleLag, s.ScheduleLag, s.Requests)
	return err
}

// readDist decodes the distribution named name, which must hold one value
// per request.
func readDist(name string, s *DistSummary, requests int64) (dist, error) {
	d, err := distFromSummary(s)
	if err != nil {
		return dist{}, fmt.Errorf("%s.%w", name, err)
	}
	if d.count != requests {
		return dist{}, fmt.Errorf("%s: holds %d values, requests is %d", name, d.count, requests)
	}
	return d, nil
}

func ptrf(v float64) *float64 { return &v }

func valueOr(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
