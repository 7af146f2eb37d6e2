package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is a whole second, like a timeline origin.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// samples returns n jobs spread evenly over span from t0 (see eachSample).
func samples(seed uint64, n int, span time.Duration) []Sample {
	out := make([]Sample, 0, n)
	eachSample(seed, n, span, func(s Sample) { out = append(out, s) })
	return out
}

// eachSample calls f with n jobs spread evenly over span from t0: mostly
// answered (three statuses), some transport errors of every class (and an
// unknown one), some cancelled, with random lag, service times and
// retries. Done times are not in order, as when workers finish out of turn.
func eachSample(seed uint64, n int, span time.Duration, f func(Sample)) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		intended := t0.Add(span / time.Duration(n) * time.Duration(i))
		sent := intended.Add(time.Duration(rng.IntN(50_000)) * time.Microsecond)
		done := sent.Add(time.Duration(1+rng.ExpFloat64()*20_000) * time.Microsecond)
		s := Sample{Intended: intended, Sent: sent, Done: done, Attempts: 1 + rng.IntN(3)}
		switch r := rng.IntN(100); {
		case r < 70:
			s.Status = 200
		case r < 85:
			s.Status = 404
		case r < 90:
			s.Status = 503
		case r < 98:
			s.Class = []string{ClassTimeout, ClassRefused, ClassReset, "weird"}[rng.IntN(4)]
		default:
			s.Class = ClassCancelled
		}
		f(s)
	}
}

func fill(m *Metrics, ss []Sample) *Metrics {
	for _, s := range ss {
		m.Add(s)
	}
	return m
}

// sameSummary fails unless got and want are deeply equal, showing the first
// differing line of their JSON.
func sameSummary(t *testing.T, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", " ")
	w, _ := json.MarshalIndent(want, "", " ")
	gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
	for i := range min(len(gl), len(wl)) {
		if gl[i] != wl[i] {
			t.Fatalf("summaries differ at line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
		}
	}
	t.Fatalf("summaries differ (lengths %d and %d lines)", len(gl), len(wl))
}

func TestMergeHalvesEqualsWhole(t *testing.T) {
	for _, tc := range []struct {
		name      string
		scheduled bool
		n         int
		span      time.Duration
		split     func(i, n int) bool // true: first half
		// timeline intervals of the first half and of the whole, in s
		halfInterval, wholeInterval float64
	}{
		{"interleaved scheduled", true, 4000, 8 * time.Second, func(i, _ int) bool { return i%2 == 0 }, 1, 1},
		{"interleaved unscheduled", false, 4000, 8 * time.Second, func(i, _ int) bool { return i%2 == 0 }, 1, 1},
		{"first and second half", true, 4000, 8 * time.Second, func(i, n int) bool { return i < n/2 }, 1, 1},
		{"halves of a long run", true, 20000, 2000 * time.Second, func(i, n int) bool { return i < n/2 }, 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := samples(1, tc.n, tc.span)
			whole := fill(New(tc.scheduled), ss)
			a, b := New(tc.scheduled), New(tc.scheduled)
			for i, s := range ss {
				if tc.split(i, len(ss)) {
					a.Add(s)
				} else {
					b.Add(s)
				}
			}
			if a.Requests() == 0 || b.Requests() == 0 {
				t.Fatal("a half is empty")
			}
			half := a.Summary().Timeline.IntervalS
			a.Merge(b)
			want := whole.Summary()
			if half != tc.halfInterval || want.Timeline.IntervalS != tc.wholeInterval {
				t.Errorf("intervals: half %v s, whole %v s; want %v s and %v s", half, want.Timeline.IntervalS,
					tc.halfInterval, tc.wholeInterval)
			}
			sameSummary(t, a.Summary(), want)
			if want.Requests+want.Cancelled != int64(tc.n) || len(want.ByStatus) != 3 || want.Errors == 0 {
				t.Fatalf("samples do not cover the cases: %d requests, %d cancelled, %d statuses, %d errors",
					want.Requests, want.Cancelled, len(want.ByStatus), want.Errors)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := New(true)
	for _, s := range []Sample{
		{Intended: at(0), Sent: at(10), Done: at(110), Status: 200, Attempts: 1},
		{Intended: at(100), Sent: at(100), Done: at(400), Status: 200, Attempts: 3},
		{Intended: at(200), Sent: at(250), Done: at(260), Status: 503, Attempts: 2},
		{Intended: at(300), Sent: at(300), Done: at(900), Class: ClassTimeout, Attempts: 4},
		{Intended: at(400), Sent: at(400), Done: at(500), Class: "no such class", Attempts: 1},
		{Intended: at(500), Sent: at(500), Done: at(2000), Class: ClassCancelled, Attempts: 1},
	} {
		m.Add(s)
	}
	s := m.Summary()
	if s.Requests != 5 || s.Errors != 2 || s.Retries != 2+1+3 || s.Cancelled != 1 {
		t.Errorf("requests %d errors %d retries %d cancelled %d, want 5 2 6 1", s.Requests, s.Errors, s.Retries, s.Cancelled)
	}
	if want := (TransportErrors{Timeout: 1, Other: 1}); s.TransportErrors != want {
		t.Errorf("transport_errors %+v, want %+v", s.TransportErrors, want)
	}
	// The cancelled sample is in no other figure: not in the window.
	if !s.FirstSentAt.Equal(at(10)) || !s.LastDoneAt.Equal(at(900)) || s.RanForS != 0.89 {
		t.Errorf("window %v..%v (%v s), want %v..%v (0.89 s)", s.FirstSentAt, s.LastDoneAt, s.RanForS, at(10), at(900))
	}
	if ran := 0.89; s.RatePerS == nil || *s.RatePerS != 5/ran {
		t.Errorf("rate_per_s %v, want %v", s.RatePerS, 5/ran)
	}
	for _, c := range []struct {
		name          string
		d             *DistSummary
		min, max, sum float64
	}{
		{"response", s.ResponseTime, 0.06, 0.6, 0.11 + 0.3 + 0.06 + 0.6 + 0.1},
		{"service", s.ServiceTime, 0.01, 0.6, 0.1 + 0.3 + 0.01 + 0.6 + 0.1},
		{"lag", s.ScheduleLag, 0, 0.05, 0.01 + 0.05},
	} {
		if c.d == nil || c.d.Count != 5 || c.d.MinS != c.min || c.d.MaxS != c.max || math.Abs(c.d.SumS-c.sum) > 1e-9 {
			t.Errorf("%s: %+v, want count 5 min %v max %v sum %v", c.name, c.d, c.min, c.max, c.sum)
		}
	}
	if len(s.ByStatus) != 2 || s.ByStatus[0].Status != 200 || s.ByStatus[1].Status != 503 {
		t.Fatalf("by_status %+v, want 200 and 503", s.ByStatus)
	}
	ok := s.ByStatus[0]
	if ok.Requests != 2 || ok.Retries != 2 || ok.Errors != 0 || ok.ServiceTime.MaxS != 0.3 || ok.ScheduleLag.MaxS != 0.01 {
		t.Errorf("status 200: %+v", ok.Stats)
	}
}

func TestUnscheduled(t *testing.T) {
	m := fill(New(false), samples(2, 500, 3*time.Second)) // Intended is set but ignored
	s := m.Summary()
	if s.ScheduleLag != nil {
		t.Errorf("schedule_lag %+v, want null", s.ScheduleLag)
	}
	if s.ResponseTime == nil || *s.ResponseTime != *s.ServiceTime {
		t.Errorf("response_time %+v, want service_time %+v", s.ResponseTime, s.ServiceTime)
	}
	for _, bs := range s.ByStatus {
		if bs.ScheduleLag != nil || *bs.ResponseTime != *bs.ServiceTime {
			t.Errorf("status %d: schedule lag %+v, response %+v, service %+v", bs.Status, bs.ScheduleLag, bs.ResponseTime, bs.ServiceTime)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"schedule_lag":null,"target_rate_per_s"`)) {
		t.Errorf("JSON has no null schedule_lag: %.300s", b)
	}
	if _, ok := m.Quantile(ScheduleLag, 0.5); ok {
		t.Error("Quantile(schedule_lag) of unscheduled metrics is ok")
	}
	r, _ := m.Quantile(ResponseTime, 0.9)
	if sv, _ := m.Quantile(ServiceTime, 0.9); r != sv || r <= 0 {
		t.Errorf("p90 response %v, service %v: want equal and positive", r, sv)
	}

	// A scheduled sample with no intended time has no lag.
	sm := New(true)
	sm.Add(Sample{Sent: t0, Done: t0.Add(time.Second), Status: 200, Attempts: 1})
	if lag := sm.Summary().ScheduleLag; lag == nil || lag.MaxS != 0 || lag.Count != 1 {
		t.Errorf("schedule_lag without Intended: %+v, want one 0", lag)
	}
}

func TestMergeScheduledIntoUnscheduled(t *testing.T) {
	ss := samples(3, 2000, 4*time.Second)
	u := fill(New(false), ss[:1000])
	sch := fill(New(true), ss[1000:])
	u.Merge(sch)
	s := u.Summary()
	if s.ScheduleLag == nil || s.ScheduleLag.Count != s.Requests || s.ScheduleLag.MinS != 0 {
		t.Fatalf("schedule_lag %+v, want one value per request, min 0", s.ScheduleLag)
	}
	// The unscheduled half counts with lag 0 and response = service.
	want := fill(New(false), ss[:1000]).Summary()
	lagSum := sch.Summary().ScheduleLag.SumS
	if math.Abs(s.ScheduleLag.SumS-lagSum) > 1e-9 {
		t.Errorf("lag sum %v, want the scheduled half's %v", s.ScheduleLag.SumS, lagSum)
	}
	respSum := want.ServiceTime.SumS + sch.Summary().ResponseTime.SumS
	if math.Abs(s.ResponseTime.SumS-respSum) > 1e-6 {
		t.Errorf("response sum %v, want %v", s.ResponseTime.SumS, respSum)
	}
	for _, bs := range s.ByStatus {
		if bs.ScheduleLag == nil || bs.ScheduleLag.Count != bs.Requests {
			t.Errorf("status %d: schedule_lag %+v for %d requests", bs.Status, bs.ScheduleLag, bs.Requests)
		}
	}
}

// nearestRank is the exact q-quantile of sorted values.
func nearestRank(sorted []int64, q float64) int64 {
	r := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	return sorted[max(r, 1)-1]
}

func TestPercentilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	for _, tc := range []struct {
		name string
		gen  func() int64 // µs
	}{
		{"uniform 1 µs to 10 s", func() int64 { return 1 + rng.Int64N(10_000_000) }},
		{"exponential, mean 50 ms", func() int64 { return 1 + int64(rng.ExpFloat64()*50_000) }},
		{"lognormal around 20 ms", func() int64 { return 1 + int64(math.Exp(rng.NormFloat64()*1.5)*20_000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20_000
			m := New(false)
			vals := make([]int64, n)
			var sum int64
			for i := range vals {
				vals[i] = tc.gen()
				sum += vals[i]
				end := t0.Add(time.Duration(i) * time.Microsecond) // in order, as a collector sees them
				m.Add(Sample{Sent: end.Add(-time.Duration(vals[i]) * time.Microsecond), Done: end, Status: 200, Attempts: 1})
			}
			slices.Sort(vals)
			d := m.Summary().ServiceTime
			for _, c := range []struct {
				q   float64
				got float64
			}{{0.5, d.P50S}, {0.9, d.P90S}, {0.95, d.P95S}, {0.99, d.P99S}, {0.999, d.P999S}} {
				want := float64(nearestRank(vals, c.q)) / 1e6
				if math.Abs(c.got-want) > want*0.001 {
					t.Errorf("p%v = %v s, exact %v s: more than 0.1%% off", c.q*100, c.got, want)
				}
				if q, _ := m.Quantile(ServiceTime, c.q); q != c.got {
					t.Errorf("Quantile(%v) = %v, summary has %v", c.q, q, c.got)
				}
			}
			if d.MinS != float64(vals[0])/1e6 || d.MaxS != float64(vals[n-1])/1e6 || d.SumS != float64(sum)/1e6 ||
				d.MeanS != float64(sum)/n/1e6 {
				t.Errorf("min %v max %v sum %v mean %v, want exact %v %v %v", d.MinS, d.MaxS, d.SumS, d.MeanS,
					vals[0], vals[n-1], sum)
			}
		})
	}
}

func TestQuantileNames(t *testing.T) {
	m := New(true)
	if _, ok := m.Quantile(ResponseTime, 0.5); ok {
		t.Error("Quantile of empty metrics is ok")
	}
	m.Add(Sample{Intended: t0, Sent: t0.Add(time.Millisecond), Done: t0.Add(3 * time.Millisecond), Status: 200, Attempts: 1})
	for _, c := range []struct {
		which string
		want  float64
		ok    bool
	}{
		{ResponseTime, 0.003, true},
		{ServiceTime, 0.002, true},
		{ScheduleLag, 0.001, true},
		{"latency", 0, false},
	} {
		got, ok := m.Quantile(c.which, 0.5)
		if got != c.want || ok != c.ok {
			t.Errorf("Quantile(%q) = %v, %v; want %v, %v", c.which, got, ok, c.want, c.ok)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    func() *Metrics
	}{
		{"empty scheduled", func() *Metrics { return New(true) }},
		{"empty unscheduled", func() *Metrics { return New(false) }},
		{"cancelled only", func() *Metrics {
			m := New(true)
			m.Add(Sample{Sent: t0, Done: t0, Class: ClassCancelled, Attempts: 1})
			return m
		}},
		{"one request", func() *Metrics {
			return fill(New(true), []Sample{{Intended: t0, Sent: t0, Done: t0, Status: 200, Attempts: 1}})
		}},
		{"scheduled", func() *Metrics { return fill(New(true), samples(4, 3000, 10*time.Second)) }},
		{"unscheduled", func() *Metrics { return fill(New(false), samples(5, 3000, 10*time.Second)) }},
		{"long run", func() *Metrics { return fill(New(true), samples(6, 20000, 2000*time.Second)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.m().Summary()
			m2, err := FromSummary(s)
			if err != nil {
				t.Fatal(err)
			}
			sameSummary(t, m2.Summary(), s)

			b1, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var s2 Summary
			if err := json.Unmarshal(b1, &s2); err != nil {
				t.Fatal(err)
			}
			b2, _ := json.Marshal(s2)
			if !bytes.Equal(b1, b2) {
				t.Fatalf("encode→decode→encode differs:\n%.400s\n%.400s", b1, b2)
			}
			m3, err := FromSummary(s2)
			if err != nil {
				t.Fatal(err)
			}
			if b3, _ := json.Marshal(m3.Summary()); !bytes.Equal(b1, b3) {
				t.Fatalf("decoded metrics summarise differently:\n%.400s\n%.400s", b1, b3)
			}
		})
	}
}

func TestDecodedMetricsMergeLikeLiveOnes(t *testing.T) {
	ss := samples(8, 3000, 20*time.Second)
	a, b := fill(New(true), ss[:1500]), fill(New(true), ss[1500:])
	da, err := FromSummary(a.Summary())
	if err != nil {
		t.Fatal(err)
	}
	db, err := FromSummary(b.Summary())
	if err != nil {
		t.Fatal(err)
	}
	da.Merge(db)
	sameSummary(t, da.Summary(), fill(New(true), ss).Summary())
}

// keys returns the keys of the JSON object b, in order.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var out []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		k, _ := dec.Token()
		out = append(out, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestJSONKeys(t *testing.T) {
	s := fill(New(true), samples(9, 300, 2*time.Second)).Summary()
	b, _ := json.Marshal(s)
	stats := []string{"requests", "errors", "retries", "cancelled", "transport_errors", "first_sent_at",
		"last_done_at", "ran_for_s", "rate_per_s", "response_time", "service_time", "schedule_lag"}
	dist := []string{"count", "min_s", "mean_s", "p50_s", "p90_s", "p95_s", "p99_s", "p999_s", "max_s", "sum_s", "histogram"}
	var top struct {
		TransportErrors json.RawMessage   `json:"transport_errors"`
		ResponseTime    json.RawMessage   `json:"response_time"`
		ByStatus        []json.RawMessage `json:"by_status"`
		Timeline        json.RawMessage   `json:"timeline"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	var tl struct {
		Points []json.RawMessage `json:"points"`
	}
	if err := json.Unmarshal(top.Timeline, &tl); err != nil || len(tl.Points) == 0 || len(top.ByStatus) == 0 {
		t.Fatalf("no points or statuses: %v", err)
	}
	for _, c := range []struct {
		name string
		obj  []byte
		want []string
	}{
		{"summary", b, append(slices.Clone(stats), "target_rate_per_s", "missed", "late", "late_pct", "saturated", "peak_workers", "stages", "by_status", "timeline")},
		{"by_status entry", top.ByStatus[0], append([]string{"status"}, stats...)},
		{"transport_errors", top.TransportErrors, []string{"timeout", "refused", "reset", "other"}},
		{"distribution", top.ResponseTime, dist},
		{"timeline", top.Timeline, []string{"started_at", "interval_s", "points"}},
		{"point", tl.Points[0], []string{"t_s", "requests", "errors", "by_class", "p50_s", "p99_s", "max_s", "histogram", "service", "lag"}},
	} {
		if got := keys(t, c.obj); !slices.Equal(got, c.want) {
			t.Errorf("%s keys %v, want %v", c.name, got, c.want)
		}
	}

	empty, _ := json.Marshal(New(false).Summary())
	want := `{"requests":0,"errors":0,"retries":0,"cancelled":0,` +
		`"transport_errors":{"timeout":0,"refused":0,"reset":0,"other":0},` +
		`"first_sent_at":null,"last_done_at":null,"ran_for_s":0,"rate_per_s":null,` +
		`"response_time":null,"service_time":null,"schedule_lag":null,` +
		`"target_rate_per_s":null,"missed":0,"late":0,"late_pct":null,"saturated":false,"peak_workers":0,"stages":[],"by_status":[],` +
		`"timeline":{"started_at":null,"interval_s":1,"points":[]}}`
	if string(empty) != want {
		t.Errorf("empty summary\n got %s\nwant %s", empty, want)
	}
}

func TestCorruptSummary(t *testing.T) {
	good := fill(New(true), samples(10, 2000, 5*time.Second)).Summary()
	other := fill(New(true), samples(11, 100, 2*time.Second)).Summary()
	twoDigits := *good.Timeline.Points[0].Histogram // a valid histogram of the wrong precision
	clone := func() Summary {
		b, _ := json.Marshal(good)
		var s Summary
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	bad := "not base64!"
	for _, tc := range []struct {
		name   string
		break_ func(s *Summary)
		want   string
	}{
		{"base64", func(s *Summary) { s.ResponseTime.Histogram = bad }, "response_time.histogram: "},
		{"not a histogram", func(s *Summary) { s.ServiceTime.Histogram = "AAAAAAAAAAAA" }, "service_time.histogram: "},
		{"wrong precision", func(s *Summary) { s.ScheduleLag.Histogram = twoDigits }, "schedule_lag.histogram: histogram tracks"},
		{"count mismatch", func(s *Summary) { s.ServiceTime.Histogram = other.ServiceTime.Histogram }, "service_time.histogram: holds"},
		{"by_status", func(s *Summary) { s.ByStatus[1].ServiceTime.Histogram = bad }, "by_status[1].service_time.histogram: "},
		{"status order", func(s *Summary) { s.ByStatus[1].Status = 200 }, "by_status[1].status: "},
		{"timeline point", func(s *Summary) { s.Timeline.Points[1].Histogram = &bad }, "timeline.points[1].histogram: "},
		{"timeline count", func(s *Summary) { s.Timeline.Points[2].Requests++; s.Timeline.Points[2].ByClass.S2xx++ }, "timeline.points[2].histogram: holds"},
		{"timeline classes", func(s *Summary) { s.Timeline.Points[2].ByClass.S5xx++ }, "timeline.points[2].by_class: holds"},
		{"timeline t_s", func(s *Summary) { s.Timeline.Points[3].TS = 2.5 }, "timeline.points[3].t_s: "},
		{"interval", func(s *Summary) { s.Timeline.IntervalS = 3 }, "timeline.interval_s: "},
		{"timeline total", func(s *Summary) { s.Timeline.Points = s.Timeline.Points[:2] }, "timeline.points: hold"},
		{"count", func(s *Summary) { s.Requests++ }, "service_time: holds"},
		{"transport errors", func(s *Summary) { s.TransportErrors.Reset++ }, "transport_errors: "},
		{"response without schedule", func(s *Summary) { s.ScheduleLag = nil }, "response_time: must equal service_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := clone()
			tc.break_(&s)
			_, err := FromSummary(s)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want one starting with %q", err, tc.want)
			}
		})
	}
}

func TestMemoryBoundedByStatusesAndDuration(t *testing.T) {
	// The same span and statuses, 1000 times the requests.
	small := fill(New(true), samples(12, 1_000, 100*time.Second))
	big := New(true)
	eachSample(12, 1_000_000, 100*time.Second, big.Add)
	if big.Requests() < 900_000 {
		t.Fatalf("only %d requests", big.Requests())
	}
	hs, hb := small.histograms(), big.histograms()
	if hs != hb {
		t.Errorf("%d histograms after 1e3 samples, %d after 1e6", hs, hb)
	}
	// Three statuses × three distributions, three overall, and at most
	// four in the timeline (two live, two spare).
	if hb < 3*3+3+2 || hb > 3*3+3+4 {
		t.Errorf("%d histograms, want 14 to 16", hb)
	}
	if ss, sb := small.size(), big.size(); sb > ss*11/10 {
		t.Errorf("about %d bytes after 1e6 samples, %d after 1e3: more than 1.1 times", sb, ss)
	}
}

func TestAddDoesNotAllocate(t *testing.T) {
	ss := samples(13, 100, time.Second)
	m := fill(New(true), ss)
	last := slices.MaxFunc(ss, func(a, b Sample) int { return a.Done.Compare(b.Done) }).Done
	// Done in the newest interval, with a status already seen.
	s := Sample{Intended: t0, Sent: t0.Add(time.Millisecond), Done: last, Status: 404, Attempts: 2}
	if n := testing.AllocsPerRun(1000, func() { m.Add(s) }); n != 0 {
		t.Errorf("Add allocates %v times per sample in the steady state", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	m := New(true)
	statuses := []int{200, 200, 200, 404, 0}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		intended := t0.Add(time.Duration(i) * time.Microsecond)
		m.Add(Sample{
			Intended: intended,
			Sent:     intended.Add(time.Duration(i%50) * time.Microsecond),
			Done:     intended.Add(time.Duration(1000+i%20_000) * time.Microsecond),
			Status:   statuses[i%len(statuses)],
			Class:    ClassTimeout,
			Attempts: 1,
		})
	}
}
