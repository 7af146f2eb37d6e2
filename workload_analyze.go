package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// AnalyzeStep analyses what Tecken and its buckets did: the timings of
// past uploads (uploads), or S3 access logs (logs). A step does one.
type AnalyzeStep struct {
	Uploads *AnalyzeUploads `yaml:"uploads,omitempty"`
	Logs    *AnalyzeLogs    `yaml:"logs,omitempty"`
}

// AnalyzeUploads pages through Tecken's uploads API and compares each
// upload's time with the sum of its files' times
// (analyze-symbol-uploads-times.py).
type AnalyzeUploads struct {
	// Limit is how many uploads are fetched, newest first.
	Limit *int `yaml:"limit,omitempty"`
	// Concurrency is how many upload details are fetched at once.
	Concurrency *int `yaml:"concurrency,omitempty"`
}

func (a *AnalyzeStep) kind() string { return "analyze" }

func (a *AnalyzeStep) needs() []need { return nil }

func (a *AnalyzeStep) setDefaults(*Plan) {
	if u := a.Uploads; u != nil {
		if u.Limit == nil {
			u.Limit = ptr(10)
		}
		if u.Concurrency == nil {
			u.Concurrency = ptr(4)
		}
	}
	if a.Logs != nil {
		a.Logs.setDefaults()
	}
}

func (a *AnalyzeStep) validate(v *validator, path string) {
	switch {
	case a.Uploads == nil && a.Logs == nil:
		v.add(path, "needs uploads or logs: what to analyse")
	case a.Uploads != nil && a.Logs != nil:
		v.add(path, "has both uploads and logs; make them separate steps")
	case a.Uploads != nil:
		v.atLeast(path+".uploads.limit", *a.Uploads.Limit, 1)
		v.atLeast(path+".uploads.concurrency", *a.Uploads.Concurrency, 1)
		if v.plan.Host != "embedded" {
			v.checkToken(path + ".uploads")
		}
	default:
		a.Logs.validate(v, path+".logs")
	}
}

func (a *AnalyzeStep) reads() []planFile {
	if a.Logs != nil {
		return []planFile{{"logs.dir", a.Logs.Dir}}
	}
	return nil
}

func (a *AnalyzeStep) writes() string {
	if a.Logs != nil && a.Logs.OutDir != "temp" {
		return a.Logs.OutDir
	}
	return ""
}

// AnalyzeResult is the report of an analyze step: the analysis it did,
// and null for the other.
type AnalyzeResult struct {
	Uploads *UploadsAnalysis `json:"uploads"`
	Logs    *LogsAnalysis    `json:"logs"`
}

func (r *AnalyzeResult) writeTable(w io.Writer) error {
	if r.Uploads != nil {
		return r.Uploads.writeTable(w)
	}
	if r.Logs != nil {
		return r.Logs.writeTable(w)
	}
	return nil
}

func (a *AnalyzeStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	if a.Logs != nil {
		res, err := a.Logs.run(ctx, rc)
		return &AnalyzeResult{Logs: res}, err
	}
	res, err := a.Uploads.run(ctx, rc)
	return &AnalyzeResult{Uploads: res}, err
}

// UploadsAnalysis is the report of analyze with uploads.
type UploadsAnalysis struct {
	// Analyzed counts the uploads in rows: completed, with every file
	// upload completed.
	Analyzed int `json:"analyzed"`
	// Skipped counts the others, listed with the reason in SkippedUploads.
	Skipped        int              `json:"skipped"`
	SkippedUploads []SkippedAnalyze `json:"skipped_uploads"`
	Rows           []UploadTiming   `json:"rows"`
	// The averages and medians are null without a row to compute them
	// from (WIN: without a row whose TIME is more than 0).
	AverageWinPct  *float64 `json:"average_win_pct"`
	MedianWinPct   *float64 `json:"median_win_pct"`
	AverageSavingS *float64 `json:"average_saving_s"`
	MedianSavingS  *float64 `json:"median_saving_s"`
}

func newUploadsAnalysis() *UploadsAnalysis {
	return &UploadsAnalysis{SkippedUploads: []SkippedAnalyze{}, Rows: []UploadTiming{}}
}

// SkippedAnalyze is an upload that was not analysed, and why.
type SkippedAnalyze struct {
	ID     int    `json:"id"`
	Reason string `json:"reason"`
}

// UploadTiming is one analysed upload.
type UploadTiming struct {
	ID        int       `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	Size      int64     `json:"size"`
	// TimeS is completed_at - created_at of the upload.
	TimeS float64 `json:"time_s"`
	Files int     `json:"files"`
	// SumTimesS is the sum of the file uploads' times: what uploading
	// them one after the other would have cost.
	SumTimesS float64 `json:"sum_times_s"`
	// WinPct is 100 * SumTimesS / TimeS; null when TimeS is 0.
	WinPct  *float64 `json:"win_pct"`
	SavingS float64  `json:"saving_s"`
}

func (r *UploadsAnalysis) writeTable(w io.Writer) error {
	var largest float64
	for _, x := range r.Rows {
		largest = max(largest, x.TimeS, x.SumTimesS, x.SavingS, -x.SavingS)
	}
	u := unitFor(largest)
	rows := make([][]string, 0, len(r.Rows))
	for _, x := range r.Rows {
		rows = append(rows, []string{x.CreatedAt.UTC().Format("02 Jan 15:04"), humanSize(float64(x.Size)), u.format(x.TimeS),
			strconv.Itoa(x.Files), u.format(x.SumTimesS), optPct(x.WinPct), u.format(x.SavingS)})
	}
	n := " " + u.name
	if err := writeTable(w, []string{"DATE", "SIZE", "TIME" + n, "FILES", "SUM TIMES" + n, "WIN", "SAVING" + n}, rows); err != nil {
		return err
	}
	secs := func(v *float64) string {
		if v == nil {
			return "n/a"
		}
		return seconds(*v)
	}
	facts := [][2]string{
		{"UPLOADS", fmt.Sprintf("%d analysed, %d skipped", r.Analyzed, r.Skipped)},
		{"AVERAGE WIN", optPct(r.AverageWinPct)},
		{"MEDIAN WIN", optPct(r.MedianWinPct)},
		{"AVERAGE SAVINGS", secs(r.AverageSavingS)},
		{"MEDIAN SAVINGS", secs(r.MedianSavingS)},
	}
	for _, s := range r.SkippedUploads {
		facts = append(facts, [2]string{"SKIPPED " + strconv.Itoa(s.ID), s.Reason})
	}
	return writeFacts(w, facts)
}

// apiUpload is what the analysis reads of an upload of /api/uploads/
// (§3): the list's rows and the detail's upload.
type apiUpload struct {
	ID          *int       `json:"id"`
	Size        int64      `json:"size"`
	CreatedAt   *time.Time `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	FileUploads []struct {
		CreatedAt   *time.Time `json:"created_at"`
		CompletedAt *time.Time `json:"completed_at"`
	} `json:"file_uploads"`
}

// uploadsAPI reads Tecken's uploads API with the plan's token.
type uploadsAPI struct {
	rt                     http.RoundTripper
	host, token, userAgent string
	pol                    retryPolicy
}

// get fetches path and decodes a 200's JSON body into out; any other
// status is an error with Tecken's error text.
func (api *uploadsAPI) get(ctx context.Context, path string, out any) error {
	target := api.host + path
	raw, err := getOK(ctx, api.rt, api.pol, target, target, api.userAgent, api.token, 64<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("GET %s: not the uploads API's answer: %w", target, err)
	}
	return nil
}

func (u *AnalyzeUploads) run(ctx context.Context, rc *runContext) (*UploadsAnalysis, error) {
	res := newUploadsAnalysis()
	api := &uploadsAPI{rt: rc.transport(*u.Concurrency), host: rc.host, token: rc.token(), userAgent: rc.plan.UserAgent,
		pol: retryPolicy{retries: 3, base: 500 * time.Millisecond, cap: 5 * time.Second, statuses: []int{429, 500, 502, 503, 504},
			timeout: time.Duration(rc.plan.Timeout)}}
	// Page until limit rows, an empty page, or total: the original paged
	// for ever when the server ran out of uploads.
	var ids []int
	seen := 0
	for page := 1; len(ids) < *u.Limit; page++ {
		var list struct {
			Uploads *[]apiUpload `json:"uploads"`
			Total   *int         `json:"total"`
		}
		if err := api.get(ctx, "/api/uploads/?page="+strconv.Itoa(page), &list); err != nil {
			return res, err
		}
		if list.Uploads == nil {
			return res, fmt.Errorf("GET %s/api/uploads/?page=%d: the answer has no uploads list", rc.host, page)
		}
		for _, row := range *list.Uploads {
			if row.ID == nil {
				return res, fmt.Errorf("GET %s/api/uploads/?page=%d: an upload without an id", rc.host, page)
			}
			if len(ids) < *u.Limit {
				ids = append(ids, *row.ID)
			}
		}
		seen += len(*list.Uploads)
		if len(*list.Uploads) == 0 || (list.Total != nil && seen >= *list.Total) {
			break
		}
	}
	details := make([]apiUpload, len(ids))
	failed := make([]error, len(ids))
	work, cancel := graceContext(ctx, rc.grace)
	defer cancel()
	_, err := issue(ctx, work, pace{concurrency: *u.Concurrency, total: len(ids)}, func(ctx context.Context, i int, _ slot) error {
		var d struct {
			Upload *apiUpload `json:"upload"`
		}
		failed[i] = api.get(ctx, "/api/uploads/upload/"+strconv.Itoa(ids[i]), &d)
		if failed[i] == nil {
			if d.Upload == nil {
				failed[i] = errors.New("the answer has no upload")
			} else {
				details[i] = *d.Upload
			}
		}
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, err
	}
	var wins, savings samples
	for i, id := range ids {
		if failed[i] != nil {
			res.SkippedUploads = append(res.SkippedUploads, SkippedAnalyze{ID: id, Reason: failed[i].Error()})
			continue
		}
		row, reason := timing(id, details[i])
		if reason != "" {
			res.SkippedUploads = append(res.SkippedUploads, SkippedAnalyze{ID: id, Reason: reason})
			continue
		}
		res.Rows = append(res.Rows, row)
		savings = append(savings, row.SavingS)
		if row.WinPct != nil {
			wins = append(wins, *row.WinPct)
		}
	}
	res.Analyzed, res.Skipped = len(res.Rows), len(res.SkippedUploads)
	if len(wins) > 0 {
		s := wins.summarize()
		res.AverageWinPct, res.MedianWinPct = ptr(s.mean), ptr(s.median)
	}
	if len(savings) > 0 {
		s := savings.summarize()
		res.AverageSavingS, res.MedianSavingS = ptr(s.mean), ptr(s.median)
	}
	return res, nil
}

// timing computes an upload's row, or says why it is skipped: it counts
// only when it and all its file uploads completed.
func timing(id int, d apiUpload) (UploadTiming, string) {
	switch {
	case d.CreatedAt == nil:
		return UploadTiming{}, "no created_at"
	case d.CompletedAt == nil:
		return UploadTiming{}, "not completed"
	case len(d.FileUploads) == 0:
		return UploadTiming{}, "no file uploads"
	}
	var sum time.Duration
	incomplete := 0
	for _, f := range d.FileUploads {
		if f.CreatedAt == nil || f.CompletedAt == nil {
			incomplete++
			continue
		}
		sum += f.CompletedAt.Sub(*f.CreatedAt)
	}
	if incomplete > 0 {
		return UploadTiming{}, fmt.Sprintf("%d of %d file uploads not completed", incomplete, len(d.FileUploads))
	}
	took := d.CompletedAt.Sub(*d.CreatedAt)
	row := UploadTiming{ID: id, CreatedAt: d.CreatedAt.UTC(), Size: d.Size, TimeS: took.Seconds(), Files: len(d.FileUploads),
		SumTimesS: sum.Seconds(), SavingS: (sum - took).Seconds()}
	if took > 0 {
		row.WinPct = ptr(100 * sum.Seconds() / took.Seconds())
	}
	return row, ""
}

// analyzeMetrics are the analyze kind's metrics for thresholds; those of
// the analysis a step did not do are null.
var analyzeMetrics = []metricDef{
	{"analyzed", unitCount, "uploads analysed", func(r stepResult) *float64 {
		return uploadsMetric(r, func(u *UploadsAnalysis) *float64 { return ptr(float64(u.Analyzed)) })
	}},
	{"median_win_pct", unitPct, "median parallelism gain of the uploads", func(r stepResult) *float64 {
		return uploadsMetric(r, func(u *UploadsAnalysis) *float64 { return u.MedianWinPct })
	}},
	{"lines", unitCount, "log lines read", func(r stepResult) *float64 {
		return logsMetric(r, func(l *LogsAnalysis) *float64 { return ptr(float64(l.Lines)) })
	}},
	{"malformed", unitCount, "log lines that could not be read", func(r stepResult) *float64 {
		return logsMetric(r, func(l *LogsAnalysis) *float64 { return ptr(float64(l.Malformed)) })
	}},
}

func uploadsMetric(r stepResult, get func(*UploadsAnalysis) *float64) *float64 {
	if u := r.(*AnalyzeResult).Uploads; u != nil {
		return get(u)
	}
	return nil
}

func logsMetric(r stepResult, get func(*LogsAnalysis) *float64) *float64 {
	if l := r.(*AnalyzeResult).Logs; l != nil {
		return get(l)
	}
	return nil
}
