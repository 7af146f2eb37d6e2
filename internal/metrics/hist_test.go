package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func TestEncodeMatchesHdr(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, tc := range []struct {
		name string
		g    geometry
		fill func(h *hdr.Histogram)
	}{
		{"one value", latencyGeom, func(h *hdr.Histogram) { _ = h.RecordValue(1234) }},
		{"lowest and highest", latencyGeom, func(h *hdr.Histogram) {
			_ = h.RecordValue(1)
			_ = h.RecordValue(latencyGeom.highest)
		}},
		{"random latencies", pointGeom, func(h *hdr.Histogram) {
			for range 5000 {
				_ = h.RecordValue(1 + int64(rng.ExpFloat64()*30_000))
			}
		}},
		{"huge counts", latencyGeom, func(h *hdr.Histogram) {
			_ = h.RecordValues(10, 1<<40)
			_ = h.RecordValues(5_000, math.MaxInt64>>2)
		}},
		{"zero values", valueGeom, func(h *hdr.Histogram) {
			_ = h.RecordValues(0, 7)
			_ = h.RecordValue(1e15)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.g.new()
			tc.fill(h)
			want, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: a reused encoder writes the same.
			for range 2 {
				if got := encode(h); got != string(want) {
					t.Fatalf("encode differs from hdr's Encode:\n got %s\nwant %s", got, want)
				}
			}
			back, err := tc.g.decode(encode(h))
			if err != nil || !back.Equals(h) {
				t.Fatalf("decode: %v, equal %v", err, err == nil && back.Equals(h))
			}
		})
	}
}
