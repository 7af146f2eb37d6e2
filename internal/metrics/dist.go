package metrics

import (
	"fmt"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// DistSummary is the JSON form of a latency distribution. An empty
// distribution is a nil *DistSummary (JSON null).
type DistSummary struct {
	// Count is the number of values.
	Count int64 `json:"count"`
	// MinS is the exact smallest value, in seconds.
	MinS float64 `json:"min_s"`
	// MeanS is the exact mean, in seconds.
	MeanS float64 `json:"mean_s"`
	// P50S is the median, in seconds, within the histogram's precision
	// (3 significant digits) and never outside MinS..MaxS, as are the other
	// percentiles.
	P50S float64 `json:"p50_s"`
	// P90S is the 90th percentile, in seconds.
	P90S float64 `json:"p90_s"`
	// P95S is the 95th percentile, in seconds.
	P95S float64 `json:"p95_s"`
	// P99S is the 99th percentile, in seconds.
	P99S float64 `json:"p99_s"`
	// P999S is the 99.9th percentile, in seconds.
	P999S float64 `json:"p999_s"`
	// MaxS is the exact largest value, in seconds.
	MaxS float64 `json:"max_s"`
	// SumS is the exact sum of the values, in seconds (integer microseconds
	// divided by 1e6).
	SumS float64 `json:"sum_s"`
	// Histogram is the HdrHistogram (1 µs to 1 h, 3 significant digits,
	// values in microseconds clamped into that range) in the standard base64
	// V2 compressed encoding that HdrHistogram tools read.
	Histogram string `json:"histogram"`
}

// dist is a latency distribution in microseconds: an HDR histogram for the
// percentiles, and exact count, sum, min and max beside it.
type dist struct {
	h                    *hdr.Histogram // nil while empty
	count, sum, min, max int64
}

// record adds n values of us microseconds.
func (d *dist) record(us, n int64) {
	if d.h == nil {
		d.h = latencyGeom.new()
	}
	if d.count == 0 || us < d.min {
		d.min = us
	}
	if d.count == 0 || us > d.max {
		d.max = us
	}
	d.count += n
	d.sum += us * n
	latencyGeom.record(d.h, us, n)
}

func (d *dist) merge(o *dist) {
	if o.count == 0 {
		return
	}
	if d.count == 0 {
		*d = dist{h: o.h.Clone(), count: o.count, sum: o.sum, min: o.min, max: o.max}
		return
	}
	d.h.Merge(o.h)
	d.count += o.count
	d.sum += o.sum
	d.min = min(d.min, o.min)
	d.max = max(d.max, o.max)
}

func (d *dist) clone() dist {
	c := *d
	if d.h != nil {
		c.h = d.h.Clone()
	}
	return c
}

// quantile returns the value at quantile q (0..1) in microseconds; d must
// not be empty.
func (d *dist) quantile(q float64) int64 {
	return quantile(d.h, q, d.min, d.max)
}

func (d *dist) summary() *DistSummary {
	if d.count == 0 {
		return nil
	}
	return &DistSummary{
		Count:     d.count,
		MinS:      seconds(d.min),
		MeanS:     float64(d.sum) / float64(d.count) / 1e6,
		P50S:      seconds(d.quantile(0.50)),
		P90S:      seconds(d.quantile(0.90)),
		P95S:      seconds(d.quantile(0.95)),
		P99S:      seconds(d.quantile(0.99)),
		P999S:     seconds(d.quantile(0.999)),
		MaxS:      seconds(d.max),
		SumS:      seconds(d.sum),
		Histogram: encode(d.h),
	}
}

// distFromSummary rebuilds a dist: count, sum, min and max from their
// fields, the histogram from its encoding. Percentiles and the mean are
// derived, so they are not read. Errors name the field.
func distFromSummary(s *DistSummary) (dist, error) {
	if s == nil {
		return dist{}, nil
	}
	if s.Count < 1 {
		return dist{}, fmt.Errorf("count: must be at least 1 (an empty distribution is null), got %d", s.Count)
	}
	d := dist{count: s.Count}
	var err error
	if d.min, err = micros(s.MinS); err != nil {
		return dist{}, fmt.Errorf("min_s: %w", err)
	}
	if d.max, err = micros(s.MaxS); err != nil {
		return dist{}, fmt.Errorf("max_s: %w", err)
	}
	if d.min > d.max {
		return dist{}, fmt.Errorf("min_s: %v is above max_s %v", s.MinS, s.MaxS)
	}
	if d.sum, err = micros(s.SumS); err != nil {
		return dist{}, fmt.Errorf("sum_s: %w", err)
	}
	if d.h, err = latencyGeom.decode(s.Histogram); err != nil {
		return dist{}, fmt.Errorf("histogram: %w", err)
	}
	if n := d.h.TotalCount(); n != s.Count {
		return dist{}, fmt.Errorf("histogram: holds %d values, count is %d", n, s.Count)
	}
	return d, nil
}
