package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func valueDist(vals []float64) *ValueDist {
	var d ValueDist
	for _, v := range vals {
		d.Add(v)
	}
	return &d
}

// randomValues mixes Debug-Time-like seconds, sizes in bytes up to 1e12 and
// small counts.
func randomValues(seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	vals := make([]float64, n)
	for i := range vals {
		switch i % 3 {
		case 0:
			vals[i] = rng.ExpFloat64() * 0.2
		case 1:
			vals[i] = float64(rng.Int64N(1e12))
		default:
			vals[i] = float64(rng.IntN(50))
		}
	}
	return vals
}

func TestValueDistFigures(t *testing.T) {
	sd := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name string
		vals []float64
		want ValueSummary // without Histogram
	}{
		{"four", []float64{1, 2, 3, 4}, ValueSummary{Count: 4, Sum: "10", SumSquares: "30", Mean: 2.5, Median: 2,
			Stddev: sd(math.Sqrt(5.0 / 3)), Min: "1", Max: "4"}},
		{"one", []float64{0.25}, ValueSummary{Count: 1, Sum: "0.25", SumSquares: "0.0625", Mean: 0.25, Median: 0.25,
			Min: "0.25", Max: "0.25"}},
		{"clamped and rounded", []float64{-3, math.NaN(), 1e-7, 0.000002, 2e13}, ValueSummary{Count: 5,
			Sum: "9000000000000.000002", SumSquares: "81000000000000000000000000.000000000004",
			Mean: 9e12 / 5, Median: 0, Stddev: sd(math.Sqrt((81e24 - 81e24/5) / 4)), Min: "0", Max: "9000000000000"}},
		{"sizes", []float64{1e12, 1e12 - 1}, ValueSummary{Count: 2, Sum: "1999999999999",
			SumSquares: "1999999999998000000000001", Mean: 999999999999.5, Median: 1e12 - 1,
			Stddev: sd(math.Sqrt(0.5)), Min: "999999999999", Max: "1000000000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := valueDist(tc.vals).Summary()
			if got == nil || got.Histogram == "" {
				t.Fatalf("summary %+v", got)
			}
			got.Histogram = ""
			if tc.want.Stddev == nil {
				if got.Stddev != nil {
					t.Errorf("stddev %v, want null", *got.Stddev)
				}
			} else if got.Stddev == nil || math.Abs(*got.Stddev-*tc.want.Stddev) > 1e-12**tc.want.Stddev {
				t.Errorf("stddev %v, want %v", got.Stddev, *tc.want.Stddev)
			}
			got.Stddev, tc.want.Stddev = nil, nil
			// The median is within the histogram's precision (2 digits).
			if math.Abs(got.Median-tc.want.Median) > tc.want.Median*0.01 {
				t.Errorf("median %v, want %v", got.Median, tc.want.Median)
			}
			got.Median = tc.want.Median
			if *got != tc.want {
				t.Errorf("summary\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
	if s := (&ValueDist{}).Summary(); s != nil {
		t.Errorf("empty summary %+v, want nil", s)
	}
}

func TestValueDistMergeAndRoundTrip(t *testing.T) {
	vals := randomValues(1, 30_000)
	whole := valueDist(vals)
	a, b := valueDist(vals[:12_345]), valueDist(vals[12_345:])
	a.Merge(b)
	sameSummary(t, a.Summary(), whole.Summary())

	var empty ValueDist
	empty.Merge(whole)
	sameSummary(t, empty.Summary(), whole.Summary())

	// The sum is exact: compare with exact big-number arithmetic.
	want := new(big.Int)
	for _, v := range vals {
		micro := new(big.Float).SetPrec(200).SetFloat64(v)
		micro.Mul(micro, big.NewFloat(1e6)).Add(micro, big.NewFloat(0.5))
		i, _ := micro.Int(nil)
		want.Add(want, i)
	}
	if got, _ := parseDecimal(whole.Summary().Sum, 6); got.Cmp(want) != 0 {
		t.Errorf("sum %s micro-units, want %s", got, want)
	}

	for _, d := range []*ValueDist{whole, valueDist([]float64{7}), {}} {
		s := d.Summary()
		b1, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var s2 *ValueSummary
		if err := json.Unmarshal(b1, &s2); err != nil {
			t.Fatal(err)
		}
		back, err := FromValueSummary(s2)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(back.Summary())
		if !bytes.Equal(b1, b2) {
			t.Errorf("round trip differs:\n%.300s\n%.300s", b1, b2)
		}
		if back.Count() != d.Count() {
			t.Errorf("count %d, want %d", back.Count(), d.Count())
		}
	}
	if b, _ := json.Marshal((&ValueDist{}).Summary()); string(b) != "null" {
		t.Errorf("empty ValueDist is %s, want null", b)
	}
}

func TestValueSummaryKeys(t *testing.T) {
	b, _ := json.Marshal(valueDist([]float64{1, 2}).Summary())
	want := []string{"count", "sum", "sum_squares", "mean", "median", "stddev", "min", "max", "histogram"}
	if got := keys(t, b); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestCorruptValueSummary(t *testing.T) {
	good := valueDist(randomValues(2, 300)).Summary()
	latency := fill(New(false), samples(3, 300, 1e9)).Summary().ServiceTime.Histogram
	for _, tc := range []struct {
		name   string
		break_ func(s *ValueSummary)
		want   string
	}{
		{"base64", func(s *ValueSummary) { s.Histogram = "%%%" }, "histogram: "},
		{"geometry", func(s *ValueSummary) { s.Histogram = latency }, "histogram: histogram tracks"},
		{"count", func(s *ValueSummary) { s.Count++ }, "histogram: holds"},
		{"zero count", func(s *ValueSummary) { s.Count = 0 }, "count: "},
		{"exponent", func(s *ValueSummary) { s.Sum = "1e3" }, "sum: "},
		{"negative", func(s *ValueSummary) { s.SumSquares = "-4" }, "sum_squares: "},
		{"too precise", func(s *ValueSummary) { s.Min = "0.0000001" }, "min: "},
		{"too large", func(s *ValueSummary) { s.Max = "9000000000001" }, "max: "},
		{"min above max", func(s *ValueSummary) { s.Min = "9000000000000" }, "min: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := *good
			tc.break_(&s)
			_, err := FromValueSummary(&s)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting with %q", err, tc.want)
			}
		})
	}
}

func TestDecimal(t *testing.T) {
	for _, c := range []struct {
		x     int64
		scale int
		want  string
	}{
		{0, 6, "0"}, {5, 6, "0.000005"}, {1_000_000, 6, "1"}, {123_456_789, 6, "123.456789"}, {1_500_000, 6, "1.5"},
		{42, 12, "0.000000000042"},
	} {
		got := decimal(big.NewInt(c.x), c.scale)
		if string(got) != c.want {
			t.Errorf("decimal(%d, %d) = %s, want %s", c.x, c.scale, got, c.want)
		}
		back, err := parseDecimal(got, c.scale)
		if err != nil || back.Int64() != c.x {
			t.Errorf("parseDecimal(%s) = %v, %v", got, back, err)
		}
	}
}
