package main

import (
	"fmt"
	"math"
	"time"
)

// Stage is one part of a step's load shape: over Duration, the rate (or
// the number of workers) moves in a straight line from the previous
// stage's value (0 for the first stage) to this one's.
type Stage struct {
	Duration    Duration `yaml:"duration"`
	Rate        *float64 `yaml:"rate,omitempty"`
	Concurrency *int     `yaml:"concurrency,omitempty"`
}

// validateStages checks a step's stages: each has a duration and exactly
// one of rate and concurrency, all stages the same one, and the step has
// no rate or duration of its own beside them.
func validateStages(v *validator, path string, stages []Stage, rate float64, duration Duration) {
	if len(stages) == 0 {
		return
	}
	if rate > 0 || duration > 0 {
		v.add(path+".stages", "give stages, or rate and duration, not both")
	}
	byRate := stages[0].Rate != nil
	for i, s := range stages {
		p := fmt.Sprintf("%s.stages[%d]", path, i)
		switch {
		case (s.Rate == nil) == (s.Concurrency == nil):
			v.add(p, "a stage has a rate or a concurrency (exactly one)")
		case (s.Rate != nil) != byRate:
			v.add(p, "stages are all rate stages or all concurrency stages, not a mix")
		case s.Rate != nil && (*s.Rate < 0 || math.IsNaN(*s.Rate) || math.IsInf(*s.Rate, 0)):
			v.add(p+".rate", "must be 0 or more, got %v", *s.Rate)
		case s.Concurrency != nil && *s.Concurrency < 0:
			v.add(p+".concurrency", "must be 0 or more, got %d", *s.Concurrency)
		}
		if s.Duration <= 0 {
			v.add(p+".duration", "is required: how long the stage lasts, such as 30s")
		}
	}
}

// stagesDuration is how long a step with these stages lasts.
func stagesDuration(stages []Stage) time.Duration {
	var d time.Duration
	for _, s := range stages {
		d += time.Duration(s.Duration)
	}
	return d
}

// ramp is one linear piece of a rate schedule: from rate a to rate b
// (per second) over d seconds, starting at second t0, when n0 slots of
// the schedule have come before it.
type ramp struct {
	t0, d, a, b, n0 float64
}

// schedule says when each request of a rate-driven step is due: slot i
// comes when the schedule's cumulative count reaches i, so a constant
// rate r puts slot i at i/r seconds.
type schedule struct {
	ramps []ramp
	end   float64 // seconds; +Inf without an end
	cur   int     // the ramp the last slot was in: slots come in order
}

// newSchedule makes the schedule of a constant rate (ending after
// duration, or never when it is 0), or of rate stages.
func newSchedule(rate float64, duration time.Duration, stages []Stage) *schedule {
	s := &schedule{}
	if len(stages) == 0 {
		s.end = math.Inf(1)
		if duration > 0 {
			s.end = duration.Seconds()
		}
		s.ramps = []ramp{{d: s.end, a: rate, b: rate}}
		return s
	}
	var t, n, prev float64
	for _, st := range stages {
		d := time.Duration(st.Duration).Seconds()
		s.ramps = append(s.ramps, ramp{t0: t, d: d, a: prev, b: *st.Rate, n0: n})
		n += (prev + *st.Rate) / 2 * d
		t += d
		prev = *st.Rate
	}
	s.end = t
	return s
}

// at returns when slot i is due, in seconds from the start, and false
// when the schedule ends first.
func (s *schedule) at(i int) (float64, bool) {
	target := float64(i)
	for ; s.cur < len(s.ramps); s.cur++ {
		r := s.ramps[s.cur]
		m := target - r.n0
		if sec, ok := r.solve(m); ok {
			if t := r.t0 + sec; t < s.end {
				return t, true
			}
			return 0, false
		}
	}
	return 0, false
}

// solve finds the offset s in [0, d] at which the ramp's count reaches m:
// a·s + (b-a)/(2d)·s² = m.
func (r ramp) solve(m float64) (float64, bool) {
	if m < 0 {
		return 0, false
	}
	c := 0.0
	if !math.IsInf(r.d, 1) && r.d > 0 {
		c = (r.b - r.a) / (2 * r.d)
	}
	var s float64
	switch {
	case c == 0 && r.a == 0:
		return 0, false // a rate of 0 sends nothing
	case c == 0:
		s = m / r.a
	default:
		disc := r.a*r.a + 4*c*m
		if disc < 0 {
			return 0, false
		}
		s = (-r.a + math.Sqrt(disc)) / (2 * c)
	}
	return s, s >= 0 && s <= r.d
}

// slots is how many slots come due before the schedule's end (its
// count at the end, rounded up); -1 without an end.
func (s *schedule) slots() int {
	if math.IsInf(s.end, 1) {
		return -1
	}
	last := s.ramps[len(s.ramps)-1]
	n := last.n0 + (last.a+last.b)/2*last.d
	return int(math.Ceil(n - 1e-9))
}

// meanRate is the schedule's average rate: its slots over its length.
func (s *schedule) meanRate() float64 {
	if math.IsInf(s.end, 1) || s.end == 0 {
		return s.ramps[0].a
	}
	return float64(s.slots()) / s.end
}

// workersAt is how many workers concurrency stages allow t into the step.
func workersAt(stages []Stage, t time.Duration) int {
	prev := 0.0
	for _, st := range stages {
		d := time.Duration(st.Duration)
		c := float64(*st.Concurrency)
		if t < d {
			return int(math.Round(prev + (c-prev)*float64(t)/float64(d)))
		}
		t -= d
		prev = c
	}
	return int(prev)
}

// maxWorkers is the most workers concurrency stages ever allow.
func maxWorkers(stages []Stage) int {
	n := 0
	for _, st := range stages {
		n = max(n, *st.Concurrency)
	}
	return n
}
