package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// DownloadResult is the report of a download step.
type DownloadResult struct {
	// Metrics are the step's request metrics.
	Metrics metrics.Summary `json:"metrics"`
	// Right is the number of requests whose status matched the CSV's
	// (download.py's rule: a logged 200 may be a 302, a 403 a 404).
	Right int `json:"right"`
	// RightPct is Right as a share of the requests; null without any.
	RightPct *float64 `json:"right_pct"`
	// IgnoreHits is the number of responses with "Debug-Time: 0": names
	// Tecken ignores without looking them up.
	IgnoreHits    int      `json:"ignore_hits"`
	IgnoreHitsPct *float64 `json:"ignore_hits_pct"`
	// FastcacheFast of the last FastcacheLookups looked-up responses (at
	// most FastcacheWindow) had a Debug-Time under 10 ms; FastcachePct is
	// their share, null without lookups.
	FastcacheFast    int      `json:"fastcache_fast"`
	FastcacheLookups int      `json:"fastcache_lookups"`
	FastcachePct     *float64 `json:"fastcache_pct"`
	FastcacheWindow  int      `json:"fastcache_window"`
	// Rows and JunkRows count the CSV's usable and skipped rows.
	Rows     int `json:"rows"`
	JunkRows int `json:"junk_rows"`
	// ByStatus adds to the metrics of each HTTP status received what the
	// download kind knows of it; ascending, [] when none.
	ByStatus []DownloadStatus `json:"by_status"`
}

// DownloadStatus is what the download kind adds to one status's metrics.
type DownloadStatus struct {
	Status int `json:"status"`
	Count  int `json:"count"`
	// Right is how many of them matched the CSV's status.
	Right int `json:"right"`
	// Internal is Tecken's Debug-Time in seconds, over the responses that
	// had one above 0; null when none did.
	Internal *metrics.ValueSummary `json:"internal"`
}

// downloadAgg adds up a download step's outcomes; only the collector
// goroutine calls add.
type downloadAgg struct {
	requests
	rows, junk int
	right      int
	ignoreHits int
	byStatus   map[int]*downloadStatusAgg
	recent     []bool // ring of the last fastcacheWindow lookups: fast or not
	recentN    int
}

type downloadStatusAgg struct {
	count, right int
	internal     metrics.ValueDist
}

func newDownloadAgg(q *queries, p pace) *downloadAgg {
	return &downloadAgg{requests: newRequests(p), rows: len(q.rows), junk: q.junk,
		byStatus: map[int]*downloadStatusAgg{}, recent: make([]bool, fastcacheWindow)}
}

func (a *downloadAgg) add(o downloadOutcome) (failed bool) {
	if !a.count(o.exchange) {
		return o.Class != classCancelled
	}
	st := a.byStatus[o.Status]
	if st == nil {
		st = &downloadStatusAgg{}
		a.byStatus[o.Status] = st
	}
	st.count++
	if rightAnswer(o.expect, o.Status) {
		st.right++
		a.right++
	}
	if o.debugTime == "0" {
		a.ignoreHits++
		return false
	}
	if dt, err := strconv.ParseFloat(o.debugTime, 64); err == nil && dt > 0 {
		st.internal.Add(dt)
		a.recent[a.recentN%fastcacheWindow] = dt < fastcacheLimit
		a.recentN++
	}
	return false
}

// result computes the report once, after the last add.
func (a *downloadAgg) result() (*DownloadResult, error) {
	m, err := a.summary()
	r := &DownloadResult{Metrics: m, Right: a.right, IgnoreHits: a.ignoreHits, FastcacheWindow: fastcacheWindow,
		Rows: a.rows, JunkRows: a.junk, ByStatus: []DownloadStatus{}}
	r.RightPct = pctOf(int64(a.right), m.Requests)
	r.IgnoreHitsPct = pctOf(int64(a.ignoreHits), m.Requests)
	r.FastcacheLookups = min(a.recentN, fastcacheWindow)
	for _, f := range a.recent[:r.FastcacheLookups] {
		if f {
			r.FastcacheFast++
		}
	}
	r.FastcachePct = pctOf(int64(r.FastcacheFast), int64(r.FastcacheLookups))
	for _, status := range sortedKeys(a.byStatus) {
		st := a.byStatus[status]
		r.ByStatus = append(r.ByStatus, DownloadStatus{Status: status, Count: st.count, Right: st.right, Internal: st.internal.Summary()})
	}
	return r, err
}

func (r *DownloadResult) writeTable(w io.Writer) error {
	fast := "n/a"
	if r.FastcachePct != nil {
		fast = fmt.Sprintf("%.1f%% (last %d)", *r.FastcachePct, r.FastcacheLookups)
	}
	if err := writeRequestFacts(w, r.Metrics, [][2]string{
		{"RIGHT", optPct(r.RightPct)},
		{"IGNORE HITS", fmt.Sprintf("%d (%s)", r.IgnoreHits, optPct(r.IgnoreHitsPct))},
		{"FASTCACHE", fast},
		{"CSV ROWS", fmt.Sprintf("%d usable, %d junk rows skipped", r.Rows, r.JunkRows)},
	}); err != nil {
		return err
	}
	internal := map[int]*metrics.ValueSummary{}
	right := map[int]int{}
	var largest float64
	for _, s := range r.ByStatus {
		internal[s.Status], right[s.Status] = s.Internal, s.Right
		if s.Internal != nil {
			largest = max(largest, s.Internal.Median, s.Internal.Mean)
		}
	}
	for _, s := range r.Metrics.ByStatus {
		if s.ResponseTime != nil {
			largest = max(largest, s.ResponseTime.MaxS)
		}
	}
	u := unitFor(largest)
	rows := make([][]string, 0, len(r.Metrics.ByStatus))
	for _, s := range r.Metrics.ByStatus {
		lat := s.ResponseTime
		row := []string{strconv.Itoa(s.Status), strconv.FormatInt(s.Requests, 10), u.format(lat.P50S), u.format(lat.P95S),
			u.format(lat.P99S), u.format(lat.MeanS), "n/a", "n/a", pctString(int64(right[s.Status]), s.Requests)}
		if in := internal[s.Status]; in != nil {
			row[6], row[7] = u.format(in.Median), u.format(in.Mean)
		}
		rows = append(rows, row)
	}
	// DEBUG is Tecken's own time, its Debug-Time header.
	n := " " + u.name
	return writeTable(w, []string{"STATUS", "COUNT", "P50" + n, "P95" + n, "P99" + n, "MEAN" + n, "DEBUG P50" + n, "DEBUG MEAN" + n, "% RIGHT"}, rows)
}
