package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SymbolicateResult is the report of a symbolicate step.
type SymbolicateResult struct {
	requestTotals
	// Jobs and Frames count what the answered requests carried.
	Jobs   int `json:"jobs"`
	Frames int `json:"frames"`
	// SymbolicatedPct is the share of frames in modules the server found
	// that came back with a function name.
	SymbolicatedPct float64 `json:"symbolicated_pct"`
	// SanitizedFrames is the number of frames sanitize rewrote.
	SanitizedFrames int `json:"sanitized_frames"`
	// InvalidResponses are 200 answers that do not fit their request.
	InvalidResponses int    `json:"invalid_responses"`
	InvalidSample    string `json:"invalid_sample,omitempty"`
	// Files is the number of usable stack files; SkippedFiles the others.
	Files           int                 `json:"files"`
	SkippedFiles    []SkippedFile       `json:"skipped_files"`
	ByStatus        []SymbolicateStatus `json:"by_status"`
	ErrorsByMessage []ErrorMessage      `json:"errors_by_message"`
	// Debug summarises every numeric field of the server's debug objects
	// (one per job in 2019, one per request later), per dotted key.
	Debug      map[string]DebugStat `json:"debug"`
	Conclusion DebugConclusion      `json:"conclusion"`

	latency      map[int]samples
	debug        map[string]samples
	debugObjects int
	messages     map[errKey]*ErrorMessage
	known, named int
}

// SkippedFile is a stack file that could not be used.
type SkippedFile struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// SymbolicateStatus is the client-side latency of one status.
type SymbolicateStatus struct {
	Status  int     `json:"status"`
	Count   int     `json:"count"`
	MedianS float64 `json:"median_s"`
	P95S    float64 `json:"p95_s"`
	P99S    float64 `json:"p99_s"`
}

// ErrorMessage counts the answers with one status and error text.
type ErrorMessage struct {
	Status      int      `json:"status"`
	Message     string   `json:"message"`
	Count       int      `json:"count"`
	SampleFiles []string `json:"sample_files"`
}

type errKey struct {
	status  int
	message string
}

// DebugStat is symbolication.py's summary of one debug key. Median is the
// upper-middle value and stddev the sample standard deviation (0 for one
// value), as the original computed them.
type DebugStat struct {
	Sum    float64 `json:"sum"`
	Avg    float64 `json:"avg"`
	Median float64 `json:"median"`
	StdDev float64 `json:"stddev"`
}

// DebugConclusion is symbolication.py's "IN CONCLUSION"; a figure that
// would divide by zero is null.
type DebugConclusion struct {
	// DownloadBytesPerS is Σ downloads.size / Σ downloads.time.
	DownloadBytesPerS *float64 `json:"download_bytes_per_s"`
	// NotDownloadingTotalS is Σ time − Σ downloads.time − Σ cache_lookups.time.
	NotDownloadingTotalS *float64 `json:"not_downloading_total_s"`
	// NotDownloadingAvgS divides it by the number of debug objects.
	NotDownloadingAvgS *float64 `json:"not_downloading_avg_s"`
}

// add counts one outcome; only the collector goroutine calls it.
func (r *SymbolicateResult) add(o symOutcome) {
	if !r.count(o.exchange) {
		return
	}
	r.Jobs += o.jobs
	r.Frames += o.frames
	r.latency[o.status] = append(r.latency[o.status], o.latency.Seconds())
	if o.status != http.StatusOK {
		k := errKey{o.status, o.message}
		m := r.messages[k]
		if m == nil {
			m = &ErrorMessage{Status: o.status, Message: o.message}
			r.messages[k] = m
		}
		m.Count++
		for _, f := range o.files {
			if len(m.SampleFiles) < maxSampleFiles {
				m.SampleFiles = append(m.SampleFiles, f)
			}
		}
		return
	}
	if o.invalid != "" {
		r.InvalidResponses++
		if r.InvalidSample == "" {
			r.InvalidSample = o.invalid
		}
	}
	r.known += o.knownFrames
	r.named += o.symbolicated
	for _, d := range o.debugs {
		r.debugObjects++
		for k, v := range d {
			r.debug[k] = append(r.debug[k], v)
		}
	}
}

func (r *SymbolicateResult) finish(ranFor time.Duration) error {
	err := r.requestTotals.finish(ranFor)
	r.SymbolicatedPct = pct(r.named, r.known)
	r.ByStatus = r.ByStatus[:0]
	for _, status := range sortedKeys(r.latency) {
		s := r.latency[status].summarize()
		r.ByStatus = append(r.ByStatus, SymbolicateStatus{Status: status, Count: s.n, MedianS: s.median, P95S: s.p95, P99S: s.p99})
	}
	r.ErrorsByMessage = r.ErrorsByMessage[:0]
	for _, m := range r.messages {
		r.ErrorsByMessage = append(r.ErrorsByMessage, *m)
	}
	slices.SortFunc(r.ErrorsByMessage, func(a, b ErrorMessage) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Message, b.Message)
	})
	sums := map[string]float64{}
	for k, vals := range r.debug {
		s := vals.summarize()
		r.Debug[k] = DebugStat{Sum: s.sum, Avg: s.mean, Median: vals[len(vals)/2], StdDev: s.stddev}
		sums[k] = s.sum
	}
	if t := sums["downloads.time"]; t > 0 {
		r.Conclusion.DownloadBytesPerS = ptr(sums["downloads.size"] / t)
	}
	if _, ok := r.debug["time"]; ok {
		total := sums["time"] - sums["downloads.time"] - sums["cache_lookups.time"]
		r.Conclusion.NotDownloadingTotalS = ptr(total)
		r.Conclusion.NotDownloadingAvgS = ptr(total / float64(r.debugObjects))
	}
	return err
}

func (r *SymbolicateResult) writeTable(w io.Writer) error {
	facts := [][2]string{
		{"REQUESTS", fmt.Sprintf("%d (%d jobs, %d frames) at %.1f requests/s", r.Requests, r.Jobs, r.Frames, r.RatePerS)},
		{"SYMBOLICATED", fmt.Sprintf("%.1f%% of frames in found modules", r.SymbolicatedPct)},
		{"INVALID RESPONSES", strconv.Itoa(r.InvalidResponses)},
		{"RETRIES", strconv.Itoa(r.Retries)},
		{"SANITIZED FRAMES", strconv.Itoa(r.SanitizedFrames)},
		{"FILES", fmt.Sprintf("%d usable, %d skipped", r.Files, len(r.SkippedFiles))},
	}
	if r.InvalidSample != "" {
		facts = append(facts, [2]string{"INVALID SAMPLE", r.InvalidSample})
	}
	if r.Errors > 0 {
		facts = append(facts, [2]string{"TRANSPORT ERRORS", r.TransportErrors.String(r.Errors)})
	}
	if r.Cancelled > 0 {
		facts = append(facts, [2]string{"CANCELLED", fmt.Sprintf("%d by the interrupt, not counted", r.Cancelled)})
	}
	if err := writeFacts(w, facts); err != nil {
		return err
	}
	var rows [][]string
	for _, s := range r.ByStatus {
		rows = append(rows, []string{strconv.Itoa(s.Status), strconv.Itoa(s.Count), seconds(s.MedianS), seconds(s.P95S), seconds(s.P99S)})
	}
	if err := writeTable(w, []string{"STATUS", "COUNT", "MEDIAN", "P95", "P99"}, rows); err != nil {
		return err
	}
	if len(r.ErrorsByMessage) > 0 {
		rows = rows[:0]
		for _, m := range r.ErrorsByMessage {
			rows = append(rows, []string{strconv.Itoa(m.Status), strconv.Itoa(m.Count), m.Message, strings.Join(m.SampleFiles, " ")})
		}
		if err := writeTable(w, []string{"STATUS", "COUNT", "MESSAGE", "SAMPLE FILES"}, rows, 2, 3); err != nil {
			return err
		}
	}
	if len(r.Debug) == 0 {
		return nil
	}
	rows = rows[:0]
	for _, k := range sortedKeys(r.Debug) {
		d := r.Debug[k]
		rows = append(rows, []string{k, debugValue(k, d.Sum), debugValue(k, d.Avg), debugValue(k, d.Median), debugValue(k, d.StdDev)})
	}
	if err := writeTable(w, []string{"KEY", "SUM", "AVG", "MEDIAN", "STD-DEV"}, rows); err != nil {
		return err
	}
	c := r.Conclusion
	concl := [][2]string{}
	if c.DownloadBytesPerS != nil {
		concl = append(concl, [2]string{"Final Average Download Speed", humanSize(*c.DownloadBytesPerS) + "/s"})
	}
	if c.NotDownloadingTotalS != nil {
		concl = append(concl,
			[2]string{"Total time NOT downloading or querying cache", strconv.FormatFloat(*c.NotDownloadingTotalS, 'f', 3, 64) + "s"},
			[2]string{"Average time NOT downloading or querying cache", strconv.FormatFloat(*c.NotDownloadingAvgS, 'f', 3, 64) + "s"})
	}
	if len(concl) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "IN CONCLUSION..."); err != nil {
		return err
	}
	return writeFacts(w, concl)
}

// debugValue formats as symbolication.py did: sizes human, times in
// seconds, whole numbers as they are, others with two decimals.
func debugValue(key string, v float64) string {
	switch {
	case strings.HasSuffix(key, "size"):
		return humanSize(v)
	case strings.HasSuffix(key, "time"):
		return strconv.FormatFloat(v, 'f', 3, 64) + "s"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// humanSize writes bytes in binary units: 23.9GB.
func humanSize(b float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(b, 'f', 0, 64) + units[i]
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + units[i]
}
