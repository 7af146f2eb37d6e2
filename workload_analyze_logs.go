package main

import (
	"bufio"
	"bytes"
	"cmp"
	"container/list"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// AnalyzeLogs turns S3 server access logs of the symbols buckets into the
// CSVs that download steps replay, and reports request rates, S3 times
// and how well a cache would do (generate-csv-logs.py).
type AnalyzeLogs struct {
	// Dir holds *.log files, in sub-folders or not.
	Dir string `yaml:"dir,omitempty"`
	// Private lists the sub-folders or prefixes (of dir, or of the
	// bucket's prefix) whose logs are the private bucket's.
	Private []string `yaml:"private,omitempty"`
	// Or the logs are read from S3: every object under prefix.
	Bucket    string `yaml:"bucket,omitempty"`
	Prefix    string `yaml:"prefix,omitempty"`
	Region    string `yaml:"region,omitempty"`
	Endpoint  string `yaml:"endpoint,omitempty"`
	Anonymous bool   `yaml:"anonymous,omitempty"`
	// OutDir receives symbol-queries.csv and symbol-queries-groups.csv
	// ("temp": a folder that lives as long as the run).
	OutDir string `yaml:"out_dir,omitempty"`
	// CacheSizes are the LRU sizes (entries) replayed over the queries.
	CacheSizes []int `yaml:"cache_sizes,omitempty"`
}

func (l *AnalyzeLogs) setDefaults() {
	if l.OutDir == "" {
		l.OutDir = "downloading"
	}
	if l.CacheSizes == nil {
		l.CacheSizes = []int{300, 1000, 10000}
	}
	if l.Bucket != "" && l.Region == "" {
		l.Region = "us-west-2"
	}
}

func (l *AnalyzeLogs) validate(v *validator, path string) {
	switch {
	case l.Dir == "" && l.Bucket == "":
		v.add(path, "needs dir (a folder of *.log files) or bucket (an S3 bucket of access logs)")
	case l.Dir != "" && l.Bucket != "":
		v.add(path, "has both dir and bucket; read the logs from one of them")
	case l.Dir != "":
		for _, k := range []struct{ key, value string }{{"prefix", l.Prefix}, {"region", l.Region}, {"endpoint", l.Endpoint}} {
			if k.value != "" {
				v.add(path+"."+k.key, "is for bucket only, not dir")
			}
		}
	}
	for i, n := range l.CacheSizes {
		v.atLeast(fmt.Sprintf("%s.cache_sizes[%d]", path, i), n, 1)
	}
	for i, p := range l.Private {
		if p == "" {
			v.add(fmt.Sprintf("%s.private[%d]", path, i), "must not be empty: it would make every log private")
		}
	}
}

// Names of the files analyze logs writes (§7.2, §7.3).
const (
	queriesCSV = "symbol-queries.csv"
	groupsCSV  = "symbol-queries-groups.csv"
)

// LogsAnalysis is the report of analyze with logs.
type LogsAnalysis struct {
	// Lines counts the non-blank lines read, malformed ones included.
	Lines     int64 `json:"lines"`
	Malformed int64 `json:"malformed"`
	// MalformedLines are the first malformedKept malformed lines.
	MalformedLines []MalformedLine `json:"malformed_lines"`
	Files          int             `json:"files"`
	// NonGET counts lines whose request is not a GET: in symbol-queries.csv
	// but not in the groups file.
	NonGET int64 `json:"non_get"`
	// SpanS is the time from the first to the last logged request; null
	// without two distinct times.
	SpanS      *float64        `json:"span_s"`
	Rates      []LogRate       `json:"rates"`
	TotalTimes []LogTotalTimes `json:"total_times"`
	Cache      []CacheFit      `json:"cache"`
	Outputs    []string        `json:"outputs"`
}

func newLogsAnalysis() *LogsAnalysis {
	return &LogsAnalysis{MalformedLines: []MalformedLine{}, Rates: []LogRate{}, TotalTimes: []LogTotalTimes{}, Cache: []CacheFit{}, Outputs: []string{}}
}

// malformedKept is how many malformed lines are listed (all are counted).
const malformedKept = 100

// MalformedLine is a log line that could not be read.
type MalformedLine struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// LogRate is the request rate of a (status, private) pair over the logs'
// time span.
type LogRate struct {
	Status  int  `json:"status"`
	Private bool `json:"private"`
	Count   int  `json:"count"`
	// RatePerS is null when the logs span no time.
	RatePerS *float64 `json:"rate_per_s"`
}

// LogTotalTimes summarises S3's total_time of a (status, private) pair,
// over the lines that logged one.
type LogTotalTimes struct {
	Status   int      `json:"status"`
	Private  bool     `json:"private"`
	Count    int      `json:"count"`
	AverageS *float64 `json:"average_s"`
	MedianS  *float64 `json:"median_s"`
	P95S     *float64 `json:"p95_s"`
}

// CacheFit is how an LRU cache of URIs of one size would have done over
// the GET queries, replayed in time order.
type CacheFit struct {
	Size    int   `json:"size"`
	Lookups int64 `json:"lookups"`
	Hits    int64 `json:"hits"`
	// HitRatio is hits/lookups (0..1); null without lookups.
	HitRatio *float64 `json:"hit_ratio"`
}

func (r *LogsAnalysis) writeTable(w io.Writer) error {
	span := "n/a"
	if r.SpanS != nil {
		span = seconds(*r.SpanS)
	}
	facts := [][2]string{
		{"LINES", fmt.Sprintf("%d in %d files, %d not GET, over %s", r.Lines, r.Files, r.NonGET, span)},
		{"MALFORMED", strconv.FormatInt(r.Malformed, 10)},
	}
	if len(r.MalformedLines) > 0 {
		m := r.MalformedLines[0]
		facts[1][1] += fmt.Sprintf(", first %s:%d: %s", shorten(m.File, 40), m.Line, m.Reason)
	}
	for _, o := range r.Outputs {
		facts = append(facts, [2]string{"WROTE", shorten(o, 80)})
	}
	if err := writeFacts(w, facts); err != nil {
		return err
	}
	var rows [][]string
	for _, x := range r.Rates {
		rate := "n/a"
		if x.RatePerS != nil {
			rate = strconv.FormatFloat(*x.RatePerS, 'f', 3, 64)
		}
		rows = append(rows, []string{strconv.Itoa(x.Status), strconv.FormatBool(x.Private), strconv.Itoa(x.Count), rate})
	}
	if err := writeTable(w, []string{"STATUS", "PRIVATE", "COUNT", "RATE /s"}, rows, 1); err != nil {
		return err
	}
	var largest float64
	for _, x := range r.TotalTimes {
		if x.P95S != nil {
			largest = max(largest, *x.P95S, *x.AverageS)
		}
	}
	u := unitFor(largest)
	opt := func(v *float64) string {
		if v == nil {
			return "n/a"
		}
		return u.format(*v)
	}
	rows = nil
	for _, x := range r.TotalTimes {
		rows = append(rows, []string{strconv.Itoa(x.Status), strconv.FormatBool(x.Private), strconv.Itoa(x.Count), opt(x.AverageS), opt(x.MedianS), opt(x.P95S)})
	}
	n := " " + u.name
	if err := writeTable(w, []string{"STATUS", "PRIVATE", "S3 TIMES", "AVERAGE" + n, "MEDIAN" + n, "P95" + n}, rows, 1); err != nil {
		return err
	}
	rows = nil
	for _, c := range r.Cache {
		ratio := "n/a"
		if c.HitRatio != nil {
			ratio = strconv.FormatFloat(100**c.HitRatio, 'f', 1, 64) + "%"
		}
		rows = append(rows, []string{strconv.Itoa(c.Size), strconv.FormatInt(c.Lookups, 10), strconv.FormatInt(c.Hits, 10), ratio})
	}
	return writeTable(w, []string{"CACHE SIZE", "LOOKUPS", "HITS", "HIT RATIO"}, rows)
}

// logSource hands over the log files in order: sorted by their name
// relative to the folder or prefix, so that a folder and a bucket with
// the same files give the same CSVs.
type logSource interface {
	each(ctx context.Context, fn func(name, rel string, r io.Reader) error) error
}

// dirSource reads the *.log files under a folder.
type dirSource struct{ dir string }

func (d dirSource) each(ctx context.Context, fn func(name, rel string, r io.Reader) error) error {
	var rels []string
	err := filepath.WalkDir(d.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") {
			rel, _ := filepath.Rel(d.dir, path) // path is under dir
			rels = append(rels, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(rels)
	for _, rel := range rels {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(d.dir, filepath.FromSlash(rel))
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = fn(path, rel, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// logBucket is what reading logs from S3 needs; *s3.Client has it.
type logBucket interface {
	s3.ListObjectsV2APIClient
	objectGetter
}

// s3Source reads every object under a bucket's prefix, streamed.
type s3Source struct {
	client         logBucket
	bucket, prefix string
	timeout        time.Duration // per object: the SDK's attempts and the body
}

func (s s3Source) each(ctx context.Context, fn func(name, rel string, r io.Reader) error) error {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list s3://%s/%s: %w", s.bucket, s.prefix, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); !strings.HasSuffix(k, "/") {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		if err := s.one(ctx, key, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s s3Source) one(ctx context.Context, key string, fn func(name, rel string, r io.Reader) error) error {
	octx, cancel := context.WithTimeoutCause(ctx, s.timeout, &timeoutError{after: s.timeout})
	defer cancel()
	out, err := s.client.GetObject(octx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if octx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(octx)
		}
		return fmt.Errorf("s3: get object s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	if err := fn("s3://"+s.bucket+"/"+key, strings.TrimPrefix(key, s.prefix), out.Body); err != nil {
		if octx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", err, context.Cause(octx))
		}
		return err
	}
	return nil
}

func (l *AnalyzeLogs) source(ctx context.Context, rc *runContext) (logSource, error) {
	if l.Dir != "" {
		return dirSource{rc.plan.resolve(l.Dir)}, nil
	}
	endpoint, anonymous := l.Endpoint, l.Anonymous
	if endpoint == "embedded" {
		endpoint, anonymous = rc.embeddedS3, true
	}
	client, err := newS3Client(ctx, l.Region, endpoint, anonymous)
	if err != nil {
		return nil, err
	}
	return s3Source{client: client, bucket: l.Bucket, prefix: l.Prefix, timeout: time.Duration(rc.plan.Timeout)}, nil
}

func (l *AnalyzeLogs) run(ctx context.Context, rc *runContext) (*LogsAnalysis, error) {
	res := newLogsAnalysis()
	src, err := l.source(ctx, rc)
	if err != nil {
		return res, err
	}
	dir, err := outDir(rc, l.OutDir, "logs")
	if err != nil {
		return res, err
	}
	a := newLogsAgg(l.Private, res)
	queries := filepath.Join(dir, queriesCSV)
	err = writeFileAtomic(queries, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		cw.Write([]string{"DATE", "URI", "STATUS CODE", "PRIVATE", "TOTAL_TIME"}) // errors surface at Flush
		if err := src.each(ctx, func(name, rel string, r io.Reader) error {
			res.Files++
			return a.read(ctx, name, rel, r, cw)
		}); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return res, err
	}
	res.Outputs = append(res.Outputs, queries)
	groups := filepath.Join(dir, groupsCSV)
	if err := writeFileAtomic(groups, a.writeGroups); err != nil {
		return res, err
	}
	res.Outputs = append(res.Outputs, groups)
	a.summarize(l.CacheSizes)
	if res.Lines == 0 {
		return res, fmt.Errorf("no log line found in %d files", res.Files)
	}
	return res, nil
}

// maxLogLine is the longest log line read; a longer one is malformed.
const maxLogLine = 1 << 20

// pairKey is a (status, private) pair.
type pairKey struct {
	status  int
	private bool
}

type groupKey struct {
	uri string
	pairKey
}

// logEvent is a GET query, for the cache replay: when, and which URI.
type logEvent struct {
	at  int64 // Unix seconds
	uri int32
}

// logsAgg reads log lines and keeps what the report and the groups file
// need: counts per group, the GET queries in a compact form, and the S3
// times per pair.
type logsAgg struct {
	private     []string
	res         *LogsAnalysis
	groups      map[groupKey]int
	uris        map[string]int32
	events      []logEvent
	counts      map[pairKey]int
	times       map[pairKey]samples // seconds
	first, last int64
	seen        bool
}

func newLogsAgg(private []string, res *LogsAnalysis) *logsAgg {
	return &logsAgg{private: private, res: res, groups: map[groupKey]int{}, uris: map[string]int32{},
		counts: map[pairKey]int{}, times: map[pairKey]samples{}}
}

func (a *logsAgg) isPrivate(rel string) bool {
	for _, p := range a.private {
		if strings.HasPrefix(rel, strings.TrimPrefix(p, "./")) {
			return true
		}
	}
	return false
}

func (a *logsAgg) malformed(name string, line int, reason string) {
	a.res.Malformed++
	if len(a.res.MalformedLines) < malformedKept {
		a.res.MalformedLines = append(a.res.MalformedLines, MalformedLine{File: name, Line: line, Reason: reason})
	}
}

// read adds one log file's lines and writes their symbol-queries.csv
// rows; an interrupt stops it.
func (a *logsAgg) read(ctx context.Context, name, rel string, r io.Reader, cw *csv.Writer) error {
	private := a.isPrivate(rel)
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		raw, tooLong, err := readLogLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		text := strings.TrimSuffix(string(raw), "\r")
		switch {
		case tooLong:
			a.res.Lines++
			a.malformed(name, n, fmt.Sprintf("longer than %d bytes", maxLogLine))
		case strings.TrimSpace(text) != "":
			a.res.Lines++
			if perr := a.add(text, private, cw); perr != nil {
				a.malformed(name, n, perr.Error())
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// readLogLine reads up to the next newline; a line over maxLogLine is
// skipped to its end and reported as too long.
func readLogLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLogLine {
			tooLong = true
		} else {
			buf = append(buf, chunk...)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if tooLong {
				buf = nil
			}
			return bytes.TrimSuffix(buf, []byte("\n")), tooLong, err
		}
	}
}

// add reads one line, writes its CSV row and counts it.
func (a *logsAgg) add(text string, private bool, cw *csv.Writer) error {
	e, err := parseLogLine(text)
	if err != nil {
		return err
	}
	total := ""
	if e.totalMS >= 0 {
		total = strconv.Itoa(e.totalMS)
	}
	cw.Write([]string{e.at.Format("2006-01-02T15:04:05"), e.uri, strconv.Itoa(e.status), strconv.FormatBool(private), total})
	at := e.at.Unix()
	if !a.seen || at < a.first {
		a.first = at
	}
	if !a.seen || at > a.last {
		a.last = at
	}
	a.seen = true
	pk := pairKey{e.status, private}
	a.counts[pk]++
	if e.totalMS >= 0 {
		a.times[pk] = append(a.times[pk], float64(e.totalMS)/1000)
	}
	if !e.get {
		a.res.NonGET++
		return nil
	}
	a.groups[groupKey{e.uri, pk}]++
	id, ok := a.uris[e.uri]
	if !ok {
		id = int32(len(a.uris))
		a.uris[e.uri] = id
	}
	a.events = append(a.events, logEvent{at, id})
	return nil
}

// writeGroups writes symbol-queries-groups.csv: one row per (URI, status,
// private) of the GET queries, the most frequent first.
func (a *logsAgg) writeGroups(w io.Writer) error {
	keys := make([]groupKey, 0, len(a.groups))
	for k := range a.groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y groupKey) int {
		return cmp.Or(cmp.Compare(a.groups[y], a.groups[x]), strings.Compare(x.uri, y.uri),
			cmp.Compare(x.status, y.status), cmp.Compare(strconv.FormatBool(x.private), strconv.FormatBool(y.private)))
	})
	cw := csv.NewWriter(w)
	cw.Write([]string{"URI", "STATUS CODE", "PRIVATE", "COUNT"}) // errors surface at Flush
	for _, k := range keys {
		cw.Write([]string{k.uri, strconv.Itoa(k.status), strconv.FormatBool(k.private), strconv.Itoa(a.groups[k])})
	}
	cw.Flush()
	return cw.Error()
}

// summarize computes the rates, the S3 times and the cache replays.
func (a *logsAgg) summarize(cacheSizes []int) {
	res := a.res
	span := float64(a.last - a.first)
	if span > 0 {
		res.SpanS = ptr(span)
	}
	pairs := sortedPairs(a.counts)
	for _, pk := range pairs {
		r := LogRate{Status: pk.status, Private: pk.private, Count: a.counts[pk]}
		if span > 0 {
			r.RatePerS = ptr(float64(r.Count) / span)
		}
		res.Rates = append(res.Rates, r)
	}
	slices.SortStableFunc(res.Rates, func(x, y LogRate) int { return cmp.Compare(y.Count, x.Count) })
	for _, pk := range pairs {
		t := LogTotalTimes{Status: pk.status, Private: pk.private, Count: len(a.times[pk])}
		if t.Count > 0 {
			s := a.times[pk].summarize()
			t.AverageS, t.MedianS, t.P95S = ptr(s.mean), ptr(s.median), ptr(s.p95)
		}
		res.TotalTimes = append(res.TotalTimes, t)
	}
	slices.SortStableFunc(a.events, func(x, y logEvent) int { return cmp.Compare(x.at, y.at) })
	seq := make([]int32, len(a.events))
	for i, e := range a.events {
		seq[i] = e.uri
	}
	for _, size := range cacheSizes {
		c := CacheFit{Size: size, Lookups: int64(len(seq)), Hits: lruHits(seq, size)}
		if c.Lookups > 0 {
			c.HitRatio = ptr(float64(c.Hits) / float64(c.Lookups))
		}
		res.Cache = append(res.Cache, c)
	}
}

func sortedPairs(m map[pairKey]int) []pairKey {
	keys := make([]pairKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y pairKey) int {
		if c := cmp.Compare(x.status, y.status); c != 0 {
			return c
		}
		if x.private == y.private {
			return 0
		}
		if x.private {
			return 1
		}
		return -1
	})
	return keys
}

// lruHits replays the sequence of keys through an LRU cache of size
// entries and counts the hits: a miss inserts the key, evicting the least
// recently used one when the cache is full; a hit makes it the most
// recently used.
func lruHits(seq []int32, size int) int64 {
	order := list.New() // front: most recently used
	at := make(map[int32]*list.Element, min(size, len(seq)))
	var hits int64
	for _, k := range seq {
		if e, ok := at[k]; ok {
			hits++
			order.MoveToFront(e)
			continue
		}
		if order.Len() >= size {
			oldest := order.Back()
			delete(at, oldest.Value.(int32))
			order.Remove(oldest)
		}
		at[k] = order.PushFront(k)
	}
	return hits
}

// logEntry is what a log line contributes.
type logEntry struct {
	at      time.Time
	uri     string // the path of a GET, else the whole request line
	get     bool
	status  int
	totalMS int // -1 when S3 logged "-"
}

// logFields is how many fields of the S3 server access log format are
// read: bucket_owner … user_agent; later fields are ignored.
const logFields = 17

// parseLogLine reads an S3 server access log line: space-separated
// fields, [bracketed] times and "quoted" strings that hold spaces, "-"
// for an absent value, and any number of trailing fields.
func parseLogLine(line string) (logEntry, error) {
	var f [logFields]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return logEntry{}, fmt.Errorf("%d fields, want at least %d", i, logFields)
		}
		var err error
		f[i], rest, err = nextLogField(rest)
		if err != nil {
			return logEntry{}, fmt.Errorf("field %d: %w", i+1, err)
		}
	}
	at, err := time.Parse("02/Jan/2006:15:04:05 -0700", f[2])
	if err != nil {
		return logEntry{}, fmt.Errorf("time %q is not like 04/May/2017:13:45:01 +0000", f[2])
	}
	e := logEntry{at: at.UTC(), uri: f[8], totalMS: -1}
	if path, ok := strings.CutPrefix(f[8], "GET "); ok {
		e.uri, _, _ = strings.Cut(path, " ")
		e.get = e.uri != ""
		if !e.get {
			e.uri = f[8]
		}
	}
	if e.status, err = strconv.Atoi(f[9]); err != nil || e.status < 100 || e.status > 999 {
		return logEntry{}, fmt.Errorf("http status %q is not a status", f[9])
	}
	if f[13] != "-" {
		if e.totalMS, err = strconv.Atoi(f[13]); err != nil || e.totalMS < 0 {
			return logEntry{}, fmt.Errorf("total time %q is not milliseconds or -", f[13])
		}
	}
	return e, nil
}

// nextLogField cuts the first field off s, which starts with no blank:
// [bracketed], "quoted" (\" and \\ escape a quote and a backslash), or a
// word. A quoted or bracketed field must be followed by a blank or end
// the line.
func nextLogField(s string) (field, rest string, err error) {
	switch s[0] {
	case '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("[ without ]")
		}
		field, rest = s[1:end], s[end+1:]
	case '"':
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return "", "", errors.New(`" without its closing "`)
		}
		field, rest = b.String(), s[i+1:]
	default:
		end := strings.IndexByte(s, ' ')
		if end < 0 {
			return s, "", nil
		}
		return s[:end], s[end:], nil
	}
	if rest != "" && rest[0] != ' ' {
		return "", "", fmt.Errorf("no blank after %q", field)
	}
	return field, rest, nil
}
