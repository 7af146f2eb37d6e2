package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// SymbolicateResult is the report of a symbolicate step.
type SymbolicateResult struct {
	// Metrics are the step's request metrics.
	Metrics metrics.Summary `json:"metrics"`
	// Jobs and Frames count what the answered requests carried.
	Jobs   int `json:"jobs"`
	Frames int `json:"frames"`
	// KnownFrames are the frames of valid 200 answers in modules the
	// server found, SymbolicatedFrames those of them that came back with a
	// function name; SymbolicatedPct is their share, null without any.
	KnownFrames        int      `json:"known_frames"`
	SymbolicatedFrames int      `json:"symbolicated_frames"`
	SymbolicatedPct    *float64 `json:"symbolicated_pct"`
	// SanitizedFrames is the number of frames sanitize rewrote.
	SanitizedFrames int `json:"sanitized_frames"`
	// InvalidResponses are 200 answers that do not fit their request;
	// InvalidSample says why the first one did not ("" when none).
	InvalidResponses int    `json:"invalid_responses"`
	InvalidSample    string `json:"invalid_sample"`
	// Files is the number of usable stack files; SkippedFiles the others.
	Files           int            `json:"files"`
	SkippedFiles    []SkippedFile  `json:"skipped_files"`
	ErrorsByMessage []ErrorMessage `json:"errors_by_message"`
	// Debug summarises every numeric field of the server's debug objects
	// (one per job in 2019, one per request later), per dotted key; the
	// median is within the histogram's precision, where symbolication.py
	// took the upper-middle value.
	Debug map[string]*metrics.ValueSummary `json:"debug"`
	// DebugObjects is the number of debug objects read from answers that
	// fit their requests (the others are counted as invalid, whole).
	DebugObjects int             `json:"debug_objects"`
	Conclusion   DebugConclusion `json:"conclusion"`
}

// SkippedFile is a stack file that could not be used.
type SkippedFile struct {
	File  string `json:"file"`
	Error string `json:"error"`
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

// symbolicateAgg adds up a symbolicate step's outcomes; only the
// collector goroutine calls add.
type symbolicateAgg struct {
	requests
	res      *SymbolicateResult // the file counts; the rest is set by result
	valid    int                // 200 answers that fit their request
	debug    map[string]*metrics.ValueDist
	messages map[errKey]*ErrorMessage
}

func newSymbolicateAgg(files int, skipped []SkippedFile, p pace) *symbolicateAgg {
	if skipped == nil {
		skipped = []SkippedFile{}
	}
	return &symbolicateAgg{requests: newRequests(p), res: &SymbolicateResult{Files: files, SkippedFiles: skipped},
		debug: map[string]*metrics.ValueDist{}, messages: map[errKey]*ErrorMessage{}}
}

func (a *symbolicateAgg) add(o symOutcome) (failed bool) {
	if !a.count(o.exchange) {
		return o.Class != classCancelled
	}
	r := a.res
	r.Jobs += o.jobs
	r.Frames += o.frames
	if o.Status != http.StatusOK {
		k := errKey{o.Status, o.message}
		m := a.messages[k]
		if m == nil {
			m = &ErrorMessage{Status: o.Status, Message: o.message, SampleFiles: []string{}}
			a.messages[k] = m
		}
		m.Count++
		for _, f := range o.files {
			if len(m.SampleFiles) < maxSampleFiles {
				m.SampleFiles = append(m.SampleFiles, f)
			}
		}
		return true
	}
	if o.invalid != "" {
		r.InvalidResponses++
		if r.InvalidSample == "" {
			r.InvalidSample = o.invalid
		}
	} else {
		a.valid++
	}
	r.KnownFrames += o.knownFrames
	r.SymbolicatedFrames += o.symbolicated
	if o.invalid != "" {
		return true // its frames and debug objects are not counted
	}
	for _, d := range o.debugs {
		r.DebugObjects++
		for k, v := range d {
			vd := a.debug[k]
			if vd == nil {
				vd = &metrics.ValueDist{}
				a.debug[k] = vd
			}
			vd.Add(v)
		}
	}
	return o.invalid != ""
}

// result computes the report once, after the last add.
func (a *symbolicateAgg) result() (*SymbolicateResult, error) {
	r := a.res
	m, err := a.summary()
	r.Metrics = m
	r.SymbolicatedPct = pctOf(int64(r.SymbolicatedFrames), int64(r.KnownFrames))
	r.ErrorsByMessage = []ErrorMessage{}
	for _, m := range a.messages {
		r.ErrorsByMessage = append(r.ErrorsByMessage, *m)
	}
	sortErrorMessages(r.ErrorsByMessage)
	r.Debug = map[string]*metrics.ValueSummary{}
	for k, d := range a.debug {
		r.Debug[k] = d.Summary()
	}
	r.conclude()
	if err == nil && m.Requests > 0 && a.valid == 0 {
		err = fmt.Errorf("no answer was a valid symbolication: %s", answersSummary(r))
	}
	return r, err
}

// sortErrorMessages orders error messages by count, most first, then by
// message and status.
func sortErrorMessages(ms []ErrorMessage) {
	slices.SortFunc(ms, func(a, b ErrorMessage) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		if a.Message != b.Message {
			return strings.Compare(a.Message, b.Message)
		}
		return a.Status - b.Status
	})
}

// conclude computes the conclusion from the sums of the debug figures.
func (r *SymbolicateResult) conclude() {
	r.Conclusion = DebugConclusion{}
	sums := map[string]float64{}
	for k, d := range r.Debug {
		if d != nil {
			sums[k], _ = d.Sum.Float64()
		}
	}
	if t := sums["downloads.time"]; t > 0 {
		r.Conclusion.DownloadBytesPerS = ptr(sums["downloads.size"] / t)
	}
	if _, ok := r.Debug["time"]; ok {
		total := sums["time"] - sums["downloads.time"] - sums["cache_lookups.time"]
		r.Conclusion.NotDownloadingTotalS = ptr(total)
		r.Conclusion.NotDownloadingAvgS = ptr(total / float64(r.DebugObjects))
	}
}

// answersSummary says what a symbolicate step got instead of valid
// answers: statuses with counts, and why 200s did not fit.
func answersSummary(r *SymbolicateResult) string {
	var parts []string
	for _, s := range r.Metrics.ByStatus {
		parts = append(parts, fmt.Sprintf("%d× %d", s.Requests, s.Status))
	}
	if r.Metrics.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d× no answer", r.Metrics.Errors))
	}
	msg := fmt.Sprintf("%d requests got %s", r.Metrics.Requests, strings.Join(parts, ", "))
	if r.InvalidResponses > 0 {
		msg += fmt.Sprintf("; the %d 200s did not fit their request (%s)", r.InvalidResponses, shorten(r.InvalidSample, 120))
	}
	if len(r.ErrorsByMessage) > 0 {
		e := r.ErrorsByMessage[0]
		msg += fmt.Sprintf("; most common error: %d %s", e.Status, shorten(e.Message, 80))
	}
	return msg
}

func (r *SymbolicateResult) writeTable(w io.Writer) error {
	facts := [][2]string{
		{"JOBS", fmt.Sprintf("%d jobs, %d frames", r.Jobs, r.Frames)},
		{"SYMBOLICATED", fmt.Sprintf("%s of frames in found modules", optPct(r.SymbolicatedPct))},
		{"INVALID RESPONSES", strconv.Itoa(r.InvalidResponses)},
		{"SANITIZED FRAMES", strconv.Itoa(r.SanitizedFrames)},
		{"FILES", fmt.Sprintf("%d usable, %d skipped", r.Files, len(r.SkippedFiles))},
	}
	if r.InvalidSample != "" {
		facts = append(facts, [2]string{"INVALID SAMPLE", shorten(r.InvalidSample, 80)})
	}
	if err := writeRequestFacts(w, r.Metrics, facts); err != nil {
		return err
	}
	if err := writeStatusTable(w, r.Metrics); err != nil {
		return err
	}
	var rows [][]string
	if len(r.ErrorsByMessage) > 0 {
		rows = rows[:0]
		for _, m := range r.ErrorsByMessage {
			rows = append(rows, []string{strconv.Itoa(m.Status), strconv.Itoa(m.Count), shorten(m.Message, 40), shorten(strings.Join(m.SampleFiles, " "), 30)})
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
		sum, _ := d.Sum.Float64()
		stddev := "n/a"
		if d.Stddev != nil {
			stddev = debugValue(k, *d.Stddev)
		}
		label := k
		if strings.HasSuffix(k, "time") {
			label += " (ms)"
		}
		rows = append(rows, []string{label, debugValue(k, sum), debugValue(k, d.Mean), debugValue(k, d.Median), stddev})
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
			[2]string{"Total time NOT downloading or querying cache", seconds(*c.NotDownloadingTotalS)},
			[2]string{"Average time NOT downloading or querying cache", seconds(*c.NotDownloadingAvgS)})
	}
	if len(concl) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w, "IN CONCLUSION..."); err != nil {
		return err
	}
	return writeFacts(w, concl)
}

// debugValue formats as symbolication.py did: sizes human, whole numbers
// as they are, others with two decimals; times (seconds) in milliseconds,
// which their row's label says.
func debugValue(key string, v float64) string {
	switch {
	case strings.HasSuffix(key, "size"):
		return humanSize(v)
	case strings.HasSuffix(key, "time"):
		return unitFor(1).format(v)
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
