package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// defaultRecordsURL is crash-stats' UploadedSymbols API (§5.1).
const defaultRecordsURL = "https://crash-stats.mozilla.com/api/UploadedSymbols/"

// maxRecordDays is the longest range of days one step fetches.
const maxRecordDays = 366

// FetchRecordsStep saves UploadedSymbols records, one gzipped file per
// day, that make-zips steps read (generate-symbols-uploaded.py).
type FetchRecordsStep struct {
	// URL is the UploadedSymbols API, or embedded for the emulator's.
	URL string `yaml:"url,omitempty"`
	// Date is one day (YYYY-MM-DD, UTC; default today); or From and To
	// (default today) for a range.
	Date string `yaml:"date,omitempty"`
	From string `yaml:"from,omitempty"`
	To   string `yaml:"to,omitempty"`
	// OutDir receives the files ("temp": a folder that lives as long as
	// the run).
	OutDir string `yaml:"out_dir,omitempty"`
}

func (f *FetchRecordsStep) kind() string { return "fetch-records" }

func (f *FetchRecordsStep) needs() []need { return nil }

func (f *FetchRecordsStep) setDefaults(p *Plan) {
	if f.URL == "" {
		f.URL = defaultRecordsURL
		if p.Host == "embedded" {
			f.URL = "embedded"
		}
	}
	if f.OutDir == "" {
		f.OutDir = "symbols-uploaded"
	}
}

func (f *FetchRecordsStep) validate(v *validator, path string) {
	v.checkHost(path+".url", f.URL)
	if f.URL != "embedded" {
		v.checkToken(path)
	}
	day := func(key, s string) {
		if _, err := time.Parse(time.DateOnly, s); s != "" && err != nil {
			v.add(path+"."+key, "must be a date like 2017-06-08, got %q", s)
		}
	}
	day("date", f.Date)
	day("from", f.From)
	day("to", f.To)
	switch {
	case f.Date != "" && (f.From != "" || f.To != ""):
		v.add(path, "has date and from/to; give one day, or a range")
	case f.To != "" && f.From == "":
		v.add(path+".to", "needs from: the first day of the range")
	case f.From != "" && f.To != "" && f.To < f.From:
		v.add(path+".to", "%s is before from %s", f.To, f.From)
	}
}

func (f *FetchRecordsStep) writes() string {
	if f.OutDir == "temp" {
		return ""
	}
	return f.OutDir
}

// outDir makes the folder a step writes to: dir relative to the plan, or
// for "temp" a folder that lives as long as the run.
func outDir(rc *runContext, dir, pattern string) (string, error) {
	if dir == "temp" {
		return rc.state.tempDir(pattern)
	}
	dir = rc.plan.resolve(dir)
	return dir, os.MkdirAll(dir, 0o755)
}

// checkToken checks that the plan names a token variable that is set and
// holds a token an HTTP header can carry.
func (v *validator) checkToken(path string) {
	p := v.plan
	switch {
	case p.AuthTokenEnv == "":
		v.add("auth_token_env", "is required by %s: the name of the environment variable holding the Auth-Token", path)
	case envName.MatchString(p.AuthTokenEnv):
		t, ok := os.LookupEnv(p.AuthTokenEnv)
		t = strings.TrimSpace(t) // mounted secrets end in a newline
		switch {
		case !ok || t == "":
			v.add("auth_token_env", "environment variable %s is not set (%s needs the Auth-Token)", p.AuthTokenEnv, path)
		case strings.ContainsFunc(t, unicode.IsControl):
			v.add("auth_token_env", "the Auth-Token in environment variable %s holds a control character, which no HTTP header can carry (the token is not shown)", p.AuthTokenEnv)
		}
	}
}

// days returns the days to fetch, today's (UTC) by default.
func (f *FetchRecordsStep) days(now time.Time) ([]string, error) {
	today := now.UTC().Format(time.DateOnly)
	from, to := f.Date, f.Date
	if f.Date == "" {
		from, to = f.From, f.To
	}
	if from == "" {
		from = today
	}
	if to == "" {
		to = today
	}
	first, err1 := time.Parse(time.DateOnly, from)
	last, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || last.Before(first) {
		return nil, fmt.Errorf("no days from %s to %s", from, to)
	}
	var days []string
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		if len(days) == maxRecordDays {
			return nil, fmt.Errorf("%s to %s is more than %d days; fetch a shorter range", from, to, maxRecordDays)
		}
		days = append(days, d.Format(time.DateOnly))
	}
	return days, nil
}

// FetchRecordsResult is the report of a fetch-records step.
type FetchRecordsResult struct {
	Files []RecordsFile `json:"files"`
	// Hits is the number of uploads in all the files.
	Hits   int    `json:"hits"`
	OutDir string `json:"out_dir"`
}

func newFetchRecordsResult() *FetchRecordsResult { return &FetchRecordsResult{Files: []RecordsFile{}} }

// RecordsFile is one day's records, written.
type RecordsFile struct {
	Date  string `json:"date"`
	Path  string `json:"path"`
	Hits  int    `json:"hits"`
	Bytes int64  `json:"bytes"`
}

func (r *FetchRecordsResult) writeTable(w io.Writer) error {
	rows := make([][]string, 0, len(r.Files))
	for _, f := range r.Files {
		rows = append(rows, []string{f.Date, strconv.Itoa(f.Hits), humanSize(float64(f.Bytes)), shorten(f.Path, 60)})
	}
	if err := writeTable(w, []string{"DATE", "UPLOADS", "SIZE", "FILE"}, rows, 3); err != nil {
		return err
	}
	return writeFacts(w, [][2]string{{"UPLOADS", fmt.Sprintf("%d in %d files in %s", r.Hits, len(r.Files), shorten(r.OutDir, 60))}})
}

func (f *FetchRecordsStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	res := newFetchRecordsResult()
	days, err := f.days(time.Now())
	if err != nil {
		return res, err
	}
	dir, err := outDir(rc, f.OutDir, "records")
	if err != nil {
		return res, err
	}
	res.OutDir = dir
	base, token := f.URL, strings.TrimSpace(os.Getenv(rc.plan.AuthTokenEnv))
	if base == "embedded" {
		base, token = rc.embedded+"/api/UploadedSymbols/", emulator.EmbeddedToken
	}
	rt := rc.transport(1)
	pol := retryPolicy{retries: 3, base: time.Second, cap: 10 * time.Second, statuses: []int{429, 500, 502, 503, 504},
		timeout: time.Duration(rc.plan.Timeout)}
	for _, day := range days {
		file, err := fetchRecords(ctx, rt, pol, base, token, rc.plan.UserAgent, day, dir)
		if err != nil {
			return res, err
		}
		res.Files = append(res.Files, file)
		res.Hits += file.Hits
	}
	return res, nil
}

// uploadedRecord is the shape an UploadedSymbols answer must have (§5.2):
// what make-zips reads of it must be there.
type uploadedRecord struct {
	Hits *[]struct {
		ID      *int    `json:"id"`
		Date    *string `json:"date"`
		Size    *int64  `json:"size"`
		Content *struct {
			Added   *[]string `json:"added"`
			Existed *[]string `json:"existed"`
		} `json:"content"`
	} `json:"hits"`
	Total *int `json:"total"`
}

// check says how raw is not an UploadedSymbols answer.
func (r *uploadedRecord) check(raw []byte) error {
	if err := json.Unmarshal(raw, r); err != nil {
		return err
	}
	switch {
	case r.Hits == nil:
		return fmt.Errorf("no hits list")
	case r.Total == nil:
		return fmt.Errorf("no total")
	case *r.Total != len(*r.Hits):
		return fmt.Errorf("total is %d but %d hits came: a part is missing", *r.Total, len(*r.Hits))
	}
	for i, h := range *r.Hits {
		switch {
		case h.ID == nil:
			return fmt.Errorf("hits[%d] has no id", i)
		case h.Date == nil:
			return fmt.Errorf("hits[%d] has no date", i)
		case h.Size == nil:
			return fmt.Errorf("hits[%d] has no size", i)
		case h.Content == nil || h.Content.Added == nil || h.Content.Existed == nil:
			return fmt.Errorf("hits[%d] has no content.added and content.existed lists", i)
		}
	}
	return nil
}

// fetchRecords fetches one day's records, checks the status and the
// shape, and writes them to dir/<day>.json.gz atomically.
func fetchRecords(ctx context.Context, rt http.RoundTripper, pol retryPolicy, base, token, userAgent, day, dir string) (RecordsFile, error) {
	u, err := url.Parse(base)
	if err != nil {
		return RecordsFile{}, fmt.Errorf("url: %w", err)
	}
	q := u.Query()
	q.Set("start_date", day)
	q.Set("end_date", day)
	u.RawQuery = q.Encode()
	target := u.String()
	shown := redactURL(target)
	raw, err := getOK(ctx, rt, pol, target, shown, userAgent, token, 1<<30)
	if err != nil {
		return RecordsFile{}, err
	}
	var rec uploadedRecord
	if err := rec.check(raw); err != nil {
		return RecordsFile{}, fmt.Errorf("GET %s: not an UploadedSymbols answer: %w", shown, err)
	}
	var indented bytes.Buffer
	json.Indent(&indented, raw, "", "  ") // raw is valid JSON: check decoded it
	indented.WriteByte('\n')
	path := filepath.Join(dir, day+".json.gz")
	err = writeFileAtomic(path, func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		if _, err := zw.Write(indented.Bytes()); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return RecordsFile{}, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return RecordsFile{}, err
	}
	return RecordsFile{Date: day, Path: path, Hits: len(*rec.Hits), Bytes: info.Size()}, nil
}
