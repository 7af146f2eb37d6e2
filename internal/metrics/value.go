package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strings"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// ValueDist is a mergeable distribution of non-negative values that are not
// latencies: Tecken's Debug-Time in seconds, sizes in bytes, counts. Values
// are kept in integer micro-units (value × 1e6, rounded): count, sum, sum of
// squares, min and max exactly, whatever the order of Add and Merge; the
// median within the histogram's precision (2 significant digits).
//
// Values below 0 (and NaN) count as 0 and values above MaxValue as
// MaxValue. The zero ValueDist is empty and ready to use. Like Metrics, it
// is not safe for concurrent use.
type ValueDist struct {
	h          *hdr.Histogram // nil while empty
	count      int64
	sum, sumSq wide // micro-units, micro-units squared
	min, max   int64
}

// MaxValue is the largest value a ValueDist keeps exactly. The histogram
// tracks values up to 1e12 and clamps larger ones to it.
const MaxValue = 9e12

// ValueSummary is the JSON form of a ValueDist; an empty one is a nil
// *ValueSummary (JSON null). Sum, SumSquares, Min and Max are exact
// decimals (at most 6 decimal places, 12 for SumSquares), so that decoding
// restores them exactly.
type ValueSummary struct {
	// Count is the number of values.
	Count int64 `json:"count"`
	// Sum is the exact sum of the values.
	Sum json.Number `json:"sum"`
	// SumSquares is the exact sum of the squares of the values, for merging
	// standard deviations.
	SumSquares json.Number `json:"sum_squares"`
	// Mean is Sum / Count.
	Mean float64 `json:"mean"`
	// Median is the median within the histogram's precision.
	Median float64 `json:"median"`
	// Stddev is the sample standard deviation; null for fewer than 2 values.
	Stddev *float64 `json:"stddev"`
	// Min is the exact smallest value.
	Min json.Number `json:"min"`
	// Max is the exact largest value.
	Max json.Number `json:"max"`
	// Histogram is the HdrHistogram of the values in micro-units (1 to 1e18,
	// 2 significant digits) in the standard base64 V2 compressed encoding.
	Histogram string `json:"histogram"`
}

// Add records one value.
func (d *ValueDist) Add(v float64) {
	var x int64
	switch {
	case !(v > 0): // negative or NaN
	case v >= MaxValue:
		x = MaxValue * 1e6
	default:
		// Scale the whole and fractional parts apart: v * 1e6 would round
		// integers above 2^53 / 1e6 (sizes in bytes).
		whole, frac := math.Modf(v)
		x = int64(whole)*1e6 + int64(math.Round(frac*1e6))
	}
	if d.h == nil {
		d.h = valueGeom.new()
	}
	if d.count == 0 || x < d.min {
		d.min = x
	}
	if d.count == 0 || x > d.max {
		d.max = x
	}
	d.count++
	d.sum.add(0, uint64(x))
	d.sumSq.add(bits.Mul64(uint64(x), uint64(x)))
	valueGeom.record(d.h, x, 1)
}

// Merge adds the values of o to d.
func (d *ValueDist) Merge(o *ValueDist) {
	if o.count == 0 {
		return
	}
	if d.count == 0 {
		*d = *o
		d.h = o.h.Clone()
		return
	}
	d.h.Merge(o.h)
	d.count += o.count
	d.sum.addWide(o.sum)
	d.sumSq.addWide(o.sumSq)
	d.min = min(d.min, o.min)
	d.max = max(d.max, o.max)
}

// Count returns the number of values.
func (d *ValueDist) Count() int64 {
	return d.count
}

// Summary returns the JSON form of d, nil when d is empty.
func (d *ValueDist) Summary() *ValueSummary {
	if d.count == 0 {
		return nil
	}
	n := big.NewInt(d.count)
	sum, sumSq := d.sum.big(), d.sumSq.big()
	mean, _ := new(big.Rat).SetFrac(sum, new(big.Int).Mul(n, big.NewInt(1e6))).Float64()
	s := &ValueSummary{
		Count:      d.count,
		Sum:        decimal(sum, 6),
		SumSquares: decimal(sumSq, 12),
		Mean:       mean,
		Median:     float64(quantile(d.h, 0.5, d.min, d.max)) / 1e6,
		Min:        decimal(big.NewInt(d.min), 6),
		Max:        decimal(big.NewInt(d.max), 6),
		Histogram:  encode(d.h),
	}
	if d.count > 1 {
		// variance = (n·Σx² − (Σx)²) / (n(n−1)), computed exactly.
		num := new(big.Int).Mul(n, sumSq)
		num.Sub(num, new(big.Int).Mul(sum, sum))
		den := new(big.Int).Mul(n, big.NewInt(d.count-1))
		den.Mul(den, big.NewInt(1e12))
		v, _ := new(big.Rat).SetFrac(num, den).Float64()
		sd := math.Sqrt(v)
		s.Stddev = &sd
	}
	return s
}

// FromValueSummary rebuilds a ValueDist from its JSON form (nil gives an
// empty one). Count, sums, min and max are restored exactly; mean, median
// and stddev are derived and not read. Errors name the field.
func FromValueSummary(s *ValueSummary) (*ValueDist, error) {
	if s == nil {
		return &ValueDist{}, nil
	}
	if s.Count < 1 {
		return nil, fmt.Errorf("count: must be at least 1 (an empty distribution is null), got %d", s.Count)
	}
	d := &ValueDist{count: s.Count}
	var err error
	if d.sum, err = parseWide(s.Sum, 6); err != nil {
		return nil, fmt.Errorf("sum: %w", err)
	}
	if d.sumSq, err = parseWide(s.SumSquares, 12); err != nil {
		return nil, fmt.Errorf("sum_squares: %w", err)
	}
	if d.min, err = parseMicro(s.Min); err != nil {
		return nil, fmt.Errorf("min: %w", err)
	}
	if d.max, err = parseMicro(s.Max); err != nil {
		return nil, fmt.Errorf("max: %w", err)
	}
	if d.min > d.max {
		return nil, fmt.Errorf("min: %s is above max %s", s.Min, s.Max)
	}
	if d.h, err = valueGeom.decode(s.Histogram); err != nil {
		return nil, fmt.Errorf("histogram: %w", err)
	}
	if n := d.h.TotalCount(); n != s.Count {
		return nil, fmt.Errorf("histogram: holds %d values, count is %d", n, s.Count)
	}
	return d, nil
}

// wide is an unsigned 192-bit integer (least significant word first): sums
// of squares of 63-bit values stay exact for 2^66 values.
type wide [3]uint64

// add adds the 128-bit value hi:lo.
func (w *wide) add(hi, lo uint64) {
	var c uint64
	w[0], c = bits.Add64(w[0], lo, 0)
	w[1], c = bits.Add64(w[1], hi, c)
	w[2] += c
}

func (w *wide) addWide(o wide) {
	var c uint64
	w[0], c = bits.Add64(w[0], o[0], 0)
	w[1], c = bits.Add64(w[1], o[1], c)
	w[2], _ = bits.Add64(w[2], o[2], c)
}

func (w wide) big() *big.Int {
	b := new(big.Int).SetUint64(w[2])
	for _, x := range []uint64{w[1], w[0]} {
		b.Lsh(b, 64)
		b.Or(b, new(big.Int).SetUint64(x))
	}
	return b
}

func wideFromBig(b *big.Int) (wide, error) {
	if b.BitLen() > 192 {
		return wide{}, fmt.Errorf("%s is too large", b)
	}
	var w wide
	mask := new(big.Int).SetUint64(math.MaxUint64)
	for i := range w {
		w[i] = new(big.Int).And(b, mask).Uint64()
		b = new(big.Int).Rsh(b, 64)
	}
	return w, nil
}

// decimal writes x / 10^scale as an exact decimal without trailing zeros.
func decimal(x *big.Int, scale int) json.Number {
	s := x.String()
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	whole, frac := s[:len(s)-scale], strings.TrimRight(s[len(s)-scale:], "0")
	if frac == "" {
		return json.Number(whole)
	}
	return json.Number(whole + "." + frac)
}

// parseDecimal reads a non-negative plain decimal (no sign, no exponent)
// with at most scale decimal places as an integer count of 10^-scale.
func parseDecimal(n json.Number, scale int) (*big.Int, error) {
	s := string(n)
	whole, frac, _ := strings.Cut(s, ".")
	digits := func(t string) bool { return strings.Trim(t, "0123456789") == "" }
	if whole == "" || !digits(whole) || !digits(frac) || len(s) > 80 {
		return nil, fmt.Errorf("%q is not a non-negative plain decimal", s)
	}
	if len(frac) > scale {
		return nil, fmt.Errorf("%s has more than %d decimal places", s, scale)
	}
	b, _ := new(big.Int).SetString(whole+frac+strings.Repeat("0", scale-len(frac)), 10)
	return b, nil
}

func parseWide(n json.Number, scale int) (wide, error) {
	b, err := parseDecimal(n, scale)
	if err != nil {
		return wide{}, err
	}
	return wideFromBig(b)
}

// parseMicro reads a value within 0..MaxValue as micro-units.
func parseMicro(n json.Number) (int64, error) {
	b, err := parseDecimal(n, 6)
	if err != nil {
		return 0, err
	}
	if !b.IsInt64() || b.Int64() > MaxValue*1e6 {
		return 0, fmt.Errorf("%s is above %v", n, float64(MaxValue))
	}
	return b.Int64(), nil
}
