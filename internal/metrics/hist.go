package metrics

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

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

// encode returns h in the standard base64 V2 compressed encoding, byte for
// byte as h.Encode(hdr.V2CompressedEncodingCookieBase) writes it.
func encode(h *hdr.Histogram) string {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.encode(h)
}

// shared is the one encoder of the process. hdr's Encode allocates a new
// zlib compressor (~1 MB) per call, which made closing a timeline interval
// cost milliseconds of allocation and page faults; this one is kept (a
// sync.Pool would drop it at every garbage collection). Metrics of several
// steps may encode at once, hence the mutex.
var shared encoder

type encoder struct {
	mu  sync.Mutex
	raw []byte // the uncompressed form
	out bytes.Buffer
	zw  *zlib.Writer
}

// V2 encoding cookies, as hdr writes them (the base cookies | 0x10).
const (
	encodingCookie           = uint32(hdr.V2EncodingCookieBase) | 0x10
	compressedEncodingCookie = uint32(hdr.V2CompressedEncodingCookieBase) | 0x10
)

func (e *encoder) encode(h *hdr.Histogram) string {
	snap := h.Export()
	counts := snap.Counts
	limit := len(counts)
	for limit > 1 && counts[limit-1] == 0 {
		limit--
	}
	ratio := snap.IntegerToDoubleConversionRatio
	if ratio == 0 {
		ratio = 1
	}
	// Header: cookie, payload length (set below), normalizing index offset
	// (0), significant digits, lowest, highest, conversion ratio.
	r := binary.BigEndian.AppendUint32(e.raw[:0], encodingCookie)
	r = binary.BigEndian.AppendUint32(r, 0)
	r = binary.BigEndian.AppendUint32(r, 0)
	r = binary.BigEndian.AppendUint32(r, uint32(snap.SignificantFigures))
	r = binary.BigEndian.AppendUint64(r, uint64(snap.LowestTrackableValue))
	r = binary.BigEndian.AppendUint64(r, uint64(snap.HighestTrackableValue))
	r = binary.BigEndian.AppendUint64(r, math.Float64bits(ratio))
	const headerLen = 40
	// Payload: the counts up to the last non-zero one, as ZigZag LEB128,
	// a run of more than one zero as its negated length.
	for i := 0; i < limit; {
		c := counts[i]
		i++
		if c == 0 {
			zeros := int64(1)
			for i < limit && counts[i] == 0 {
				zeros++
				i++
			}
			if zeros > 1 {
				c = -zeros
			}
		}
		r = appendZigZag(r, c)
	}
	binary.BigEndian.PutUint32(r[4:], uint32(len(r)-headerLen))

	e.out.Reset()
	e.out.Write(binary.BigEndian.AppendUint32(nil, compressedEncodingCookie))
	e.out.Write([]byte{0, 0, 0, 0}) // compressed length, set below
	if e.zw == nil {
		// The level is valid, so NewWriterLevel cannot fail.
		e.zw, _ = zlib.NewWriterLevel(&e.out, zlib.BestCompression)
	} else {
		e.zw.Reset(&e.out)
	}
	// Writes to a bytes.Buffer do not fail.
	_, _ = e.zw.Write(r)
	_ = e.zw.Close()
	out := e.out.Bytes()
	binary.BigEndian.PutUint32(out[4:], uint32(len(out)-8))
	e.raw = r
	return base64.StdEncoding.EncodeToString(out)
}

// appendZigZag appends v in the LEB128-64b9B ZigZag form of the V2
// encoding: 7 bits a byte, the ninth byte holding the last 8 bits.
func appendZigZag(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for i := 0; i < 8; i++ {
		if u>>7 == 0 {
			return append(b, byte(u))
		}
		b = append(b, byte(u&0x7f|0x80))
		u >>= 7
	}
	return append(b, byte(u))
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
