package metrics

import (
	"fmt"
	"math"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// geometry is the shape of one family of HDR histograms: the range it
// tracks, its precision, and the smallest value recorded (values outside
// [floor, highest] are clamped into it; exact statistics are kept apart).
type geometry struct {
	lowest, highest int64
	digits          int
	floor           int64
}

var (
	// latencyGeom records durations in microseconds, 1 µs to 1 h.
	latencyGeom = geometry{lowest: 1, highest: 3_600_000_000, digits: 3, floor: 1}
	// pointGeom is latencyGeom at 2 digits (~27 KB instead of ~188 KB), for
	// timeline intervals.
	pointGeom = geometry{lowest: 1, highest: 3_600_000_000, digits: 2, floor: 1}
	// valueGeom records non-negative values in micro-units up to 1e18
	// (1e12 units: sizes in bytes fit).
	valueGeom = geometry{lowest: 1, highest: 1e18, digits: 2, floor: 0}
)

func (g geometry) new() *hdr.Histogram {
	return hdr.New(g.lowest, g.highest, g.digits)
}

func (g geometry) clamp(v int64) int64 {
	return min(max(v, g.floor), g.highest)
}

// record adds n values v to h, clamped into g's range.
func (g geometry) record(h *hdr.Histogram, v, n int64) {
	if err := h.RecordValues(g.clamp(v), n); err != nil {
		// A clamped value is always in range and counts stay far below
		// MaxInt64: this is a bug, not bad input.
		panic("metrics: record histogram value: " + err.Error())
	}
}

// encode returns h in the standard base64 V2 compressed encoding.
func encode(h *hdr.Histogram) string {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		// Encoding writes to memory only and the version is supported.
		panic("metrics: encode histogram: " + err.Error())
	}
	return string(b)
}

// decode reads a histogram encoded by encode (or any HdrHistogram tool)
// and checks that it has g's geometry, so that merging it loses nothing.
func (g geometry) decode(s string) (*hdr.Histogram, error) {
	h, err := hdr.Decode([]byte(s))
	if err != nil {
		return nil, err
	}
	if h.LowestTrackableValue() != g.lowest || h.HighestTrackableValue() != g.highest ||
		h.SignificantFigures() != int64(g.digits) {
		return nil, fmt.Errorf("histogram tracks %d..%d at %d digits, want %d..%d at %d digits",
			h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(),
			g.lowest, g.highest, g.digits)
	}
	return h, nil
}

// mustDecode decodes a histogram this package encoded itself.
func (g geometry) mustDecode(s string) *hdr.Histogram {
	h, err := g.decode(s)
	if err != nil {
		panic("metrics: decode own histogram: " + err.Error())
	}
	return h
}

// quantile returns the value at quantile q (0..1) of h, kept within the
// exact bounds lo..hi: the histogram only knows a value within its precision.
func quantile(h *hdr.Histogram, q float64, lo, hi int64) int64 {
	return min(max(h.ValueAtQuantile(q*100), lo), hi)
}

// seconds converts microseconds to seconds.
func seconds(us int64) float64 {
	return float64(us) / 1e6
}

// maxSeconds bounds durations read back from JSON (about 63 years): below
// it, seconds(micros(s)) round-trips exactly through float64.
const maxSeconds = 2e9

// micros converts seconds read from JSON back to exact microseconds; it is
// exact for any value that seconds produced within maxSeconds.
func micros(s float64) (int64, error) {
	if math.IsNaN(s) || math.Abs(s) > maxSeconds {
		return 0, fmt.Errorf("%v s is out of range", s)
	}
	return int64(math.Round(s * 1e6)), nil
}
