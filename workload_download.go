package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/h1"
)

// DownloadStep replays symbol download queries from a CSV of S3 access
// log groups (URI,STATUS CODE,PRIVATE,COUNT) against the download API.
type DownloadStep struct {
	CSV string `yaml:"csv,omitempty"`
	// Uploaded replays the symbol files that upload steps of this run
	// sent, each expected to be found.
	Uploaded    bool     `yaml:"uploaded,omitempty"`
	MissingCSV  string   `yaml:"missing_csv,omitempty"`
	MaxRequests int      `yaml:"max_requests,omitempty"`
	Duration    Duration `yaml:"duration,omitempty"`
	Concurrency *int     `yaml:"concurrency,omitempty"`
	Rate        float64  `yaml:"rate,omitempty"`
	// MaxConcurrency bounds the workers a rate adds (default 10 ×
	// concurrency); Stages replace rate and duration with ramps.
	MaxConcurrency    int     `yaml:"max_concurrency,omitempty"`
	Stages            []Stage `yaml:"stages,omitempty"`
	MicrosoftLikeOnly bool    `yaml:"microsoft_like_only,omitempty"`
	Try               bool    `yaml:"try,omitempty"`
	Seed              *uint64 `yaml:"seed,omitempty"`
}

func (d *DownloadStep) kind() string { return "download" }

func (d *DownloadStep) setDefaults(*Plan) {
	if d.Concurrency == nil {
		d.Concurrency = ptr(10)
	}
}

func (d *DownloadStep) validate(v *validator, path string) {
	switch {
	case d.CSV != "" && d.Uploaded:
		v.add(path, "give csv or uploaded: true, not both")
	case d.CSV == "" && !d.Uploaded:
		v.add(path+".csv", "is required: a CSV with the header URI,STATUS CODE,PRIVATE,COUNT")
	}
	v.atLeast(path+".concurrency", *d.Concurrency, 1)
	v.atLeast(path+".max_requests", d.MaxRequests, 0)
	v.nonNegative(path+".rate", d.Rate)
	v.atLeast(path+".max_concurrency", d.MaxConcurrency, 0)
	validateStages(v, path, d.Stages, d.Rate, d.Duration)
}

func (d *DownloadStep) needs() []need {
	if d.Uploaded && d.CSV == "" {
		return []need{{what: artifactUploaded, field: ".uploaded", hint: "or give a csv instead"}}
	}
	return nil
}

func (d *DownloadStep) reads() []planFile {
	return []planFile{{"csv", d.CSV}, {"missing_csv", d.MissingCSV}}
}

func ptr[T any](v T) *T { return &v }

// downloadRetries is how often a download is retried after a
// transport error or a body that broke off (the original tried 5 times in
// all).
const downloadRetries = 4

// downloadPolicy is how downloads are retried: transport errors and
// bodies that break off, never an HTTP status.
func downloadPolicy(timeout time.Duration) retryPolicy {
	return retryPolicy{retries: downloadRetries, base: 100 * time.Millisecond, cap: 2 * time.Second, timeout: timeout}
}

// loadDownloadJobs reads a download CSV and its missing CSV (code_file and
// code_id query strings by debug key), and shuffles the jobs with seed.
func loadDownloadJobs(rc *runContext, csv, missingCSV string, microsoftOnly bool, seed uint64) (*queries, map[string]string, error) {
	qs, err := loadQueries(rc.plan.resolve(csv), microsoftOnly)
	if err != nil {
		return nil, nil, err
	}
	codes := map[string]string{}
	if missingCSV != "" {
		if codes, err = loadMissing(rc.plan.resolve(missingCSV)); err != nil {
			return nil, nil, err
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	rng.Shuffle(len(qs.jobs), func(i, j int) { qs.jobs[i], qs.jobs[j] = qs.jobs[j], qs.jobs[i] })
	return qs, codes, nil
}

// fastcacheWindow is how many recent lookups the fast-cache share covers.
const fastcacheWindow = 500

// fastcacheLimit is the Debug-Time under which a lookup counts as served
// from Tecken's cache.
const fastcacheLimit = 0.01

func (d *DownloadStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	var queries *queries
	codes := map[string]string{}
	var err error
	if d.Uploaded {
		queries = uploadedQueries(rc.state.uploaded)
	} else if queries, codes, err = loadDownloadJobs(rc, d.CSV, d.MissingCSV, d.MicrosoftLikeOnly, rc.stepSeed(d.Seed, rc.stepIndex)); err != nil {
		return nil, err
	}
	if len(queries.jobs) == 0 {
		res, _ := newDownloadAgg(queries, pace{}).result()
		if d.Uploaded {
			return res, errors.New("no symbol files were uploaded earlier in this run")
		}
		return res, fmt.Errorf("%s: no usable rows (%d junk rows skipped)", d.CSV, queries.junk)
	}

	total := len(queries.jobs)
	switch {
	case d.MaxRequests > 0:
		total = d.MaxRequests // cycles through the rows when it exceeds them
	case d.Duration > 0 || len(d.Stages) > 0:
		total = -1 // cycles until the duration is up
	}
	prefix := rc.host
	if d.Try {
		prefix += "/try"
	}
	p := pace{concurrency: *d.Concurrency, maxConcurrency: d.MaxConcurrency, rate: d.Rate, stages: d.Stages,
		duration: time.Duration(d.Duration), total: total, linger: time.Duration(rc.plan.Timeout)}
	tr := rc.transport(maxWorkersOf(p))
	defer tr.CloseIdleConnections()
	agg := newDownloadAgg(queries, p)
	src := newDownloadSource(rc, tr, maxWorkersOf(p), queries, codes, prefix, false)
	defer src.close()
	is, err := drive(ctx, rc, p, src, agg)
	agg.load(is)
	res, ferr := agg.result()
	if err == nil {
		err = ferr
	}
	return res, err
}

// downloadSource makes the download jobs: job i is a query of the CSV,
// cycling through them.
type downloadSource struct {
	queries *queries
	codes   map[string]string // code_file/code_id query strings by debug key
	prefix  string
	// direct sends the GETs when the host is reached without a proxy
	// (the lean client of internal/h1); otherwise rt does.
	direct    *h1.Client
	rt        http.RoundTripper
	pol       retryPolicy
	userAgent string
	// check keeps what loadtest.py's checks look at: the Location and
	// the start of a 404's body.
	check bool
}

// newDownloadSource prepares the download jobs of a step whose workers
// keep up to conns connections open to the host.
func newDownloadSource(rc *runContext, tr *http.Transport, conns int, qs *queries, codes map[string]string, prefix string, check bool) *downloadSource {
	return &downloadSource{queries: qs, codes: codes, prefix: prefix, direct: rc.directClient(tr, conns), rt: tr,
		pol: downloadPolicy(time.Duration(rc.plan.Timeout)), userAgent: rc.plan.UserAgent, check: check}
}

// close closes the direct client's idle connections.
func (src *downloadSource) close() {
	if src.direct != nil {
		src.direct.CloseIdleConnections()
	}
}

// warm opens conns connections to the host before the step starts.
func (src *downloadSource) warm(ctx context.Context, conns int) {
	if src.direct != nil {
		src.direct.Warm(ctx, conns, time.Now().Add(warmFor))
	}
}

func (src *downloadSource) job(ctx context.Context, i int, s slot) downloadOutcome {
	qs := src.queries
	q := &qs.rows[qs.jobs[i%len(qs.jobs)]]
	target := src.prefix + "/" + qs.path(q)
	if c, ok := src.codes[qs.debugKey(q)]; ok {
		target += "?" + c
	}
	var o downloadOutcome
	if src.direct != nil {
		o = downloadDirect(ctx, src.direct, src.pol, target, int(q.expect), s, src.check)
	} else {
		o = download(ctx, src.rt, src.pol, target, src.userAgent, int(q.expect), s, src.check)
	}
	if src.check {
		o.checkAnswer(qs.path(q))
	}
	return o
}

// downloadOutcome is what one job did.
type downloadOutcome struct {
	exchange
	expect    int
	debugTime string // "" when the header was absent
	// With checks (the mix step): the answer's Location, the start of its
	// body, and what loadtest.py's checks found wrong ("" for nothing).
	location, body, checkFailure string
}

// checkAnswer runs loadtest.py's checks on an answer to the query path
// (symbol/debugid/file): the status is 302 or 404, a 302's Location
// holds the path, a 404's body says "Symbol Not Found".
func (o *downloadOutcome) checkAnswer(path string) {
	switch {
	case o.Status == 0 || o.Class == classCancelled:
	case o.Status == http.StatusFound && !strings.Contains(o.location, path):
		o.checkFailure = fmt.Sprintf("302 for %s redirects to %q", path, o.location)
	case o.Status == http.StatusNotFound && !strings.Contains(o.body, "Symbol Not Found"):
		o.checkFailure = fmt.Sprintf("404 for %s without \"Symbol Not Found\": %q", path, shorten(o.body, 60))
	case o.Status != http.StatusFound && o.Status != http.StatusNotFound:
		o.checkFailure = fmt.Sprintf("status %d for %s, want 302 or 404", o.Status, path)
	}
}

// checkedBody is how much of a body the checks keep.
const checkedBody = 4096

// downloadDirect is download through the lean HTTP/1.1 client.
func downloadDirect(ctx context.Context, c *h1.Client, pol retryPolicy, target string, expect int, s slot, check bool) downloadOutcome {
	o := downloadOutcome{exchange: start(s), expect: expect}
	keep := 0
	if check {
		keep = checkedBody
	}
	resp, attempts, err := sendGet(ctx, c, pol, target, keep)
	if err == nil {
		o.debugTime, o.location, o.body = resp.Header("Debug-Time"), resp.Header("Location"), string(resp.Body)
	}
	o.end(resp.Status, attempts, err)
	return o
}

// download sends a download's GET through net/http (via a proxy).
func download(ctx context.Context, rt http.RoundTripper, pol retryPolicy, target, userAgent string, expect int, s slot, check bool) downloadOutcome {
	o := downloadOutcome{exchange: start(s), expect: expect}
	read := discardBody
	if check {
		read = func(resp *http.Response) error {
			b, err := io.ReadAll(io.LimitReader(resp.Body, checkedBody))
			o.body = string(b)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			return err
		}
	}
	resp, attempts, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Debug", "true")
		req.Header.Set("User-Agent", userAgent)
		return req, nil
	}, read)
	status := 0
	if err == nil {
		status, o.debugTime, o.location = resp.StatusCode, resp.Header.Get("Debug-Time"), resp.Header.Get("Location")
	}
	o.end(status, attempts, err)
	return o
}

// rightAnswer is download.py's rule: Tecken's status matches the status
// S3 logged, where a logged 403 (private bucket) is served as 404 and a
// logged 200 as a 302 redirect to storage.
func rightAnswer(expect, got int) bool {
	return expect == got || (expect == 403 && got == 404) || (expect == 200 && got == 302)
}

// query is one usable CSV row: its path (symbol/debugid/filename, as
// logged) is chunks[chunk][off:end] of its queries.
type query struct {
	chunk, off, end uint32
	expect          uint16
}

// queries is a loaded download CSV: the usable rows, and the jobs (row
// indexes, each row repeated COUNT times). Row paths are packed into 1 MiB
// strings, so that a million rows cost little more than their text.
type queries struct {
	chunks []string
	rows   []query
	jobs   []uint32
	junk   int
}

func (qs *queries) path(q *query) string { return qs.chunks[q.chunk][q.off:q.end] }

const chunkSize = 1 << 20

// pack appends a row's path to the chunk being filled (buf), first
// sealing buf into a string when the path does not fit.
func (qs *queries) pack(buf []byte, rel []byte, expect int) []byte {
	if len(buf)+len(rel) > chunkSize && len(buf) > 0 {
		qs.chunks = append(qs.chunks, string(buf))
		buf = buf[:0]
	}
	off := len(buf)
	buf = append(buf, rel...)
	qs.rows = append(qs.rows, query{chunk: uint32(len(qs.chunks)), off: uint32(off), end: uint32(len(buf)), expect: uint16(expect)})
	return buf
}

// debugKey returns "symbol/debugid" of a row, the missing CSV's key.
func (qs *queries) debugKey(q *query) string {
	p := qs.path(q)
	return p[:strings.LastIndexByte(p, '/')]
}

const queriesHeader = "URI,STATUS CODE,PRIVATE,COUNT"

// maxCSVLine is the longest line loadQueries reads.
const maxCSVLine = 1 << 20

// maxJobs is how many jobs the COUNTs of a CSV may add up to: a job costs
// 4 bytes, so the list stays under 400 MB.
const maxJobs = 100_000_000

// utf8BOM is the byte order mark some tools write at the start of a CSV.
var utf8BOM = []byte("\xef\xbb\xbf")

// loadQueries reads a URI,STATUS CODE,PRIVATE,COUNT file, which may start
// with a UTF-8 byte order mark. Junk rows (a URI that is not
// .../symbol/debugid/file, has spaces or is a whole request line) are
// counted and skipped; a malformed row, STATUS CODE, PRIVATE or COUNT, a
// line over maxCSVLine and COUNTs adding up to more than maxJobs are
// errors naming the line.
//
// Rows are split by hand, and only lines with a quote go through
// encoding/csv: that keeps a million-row file to seconds and to little
// more memory than its paths.
func loadQueries(path string, microsoftOnly bool) (*queries, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	q := &queries{}
	buf := make([]byte, 0, chunkSize)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxCSVLine)
	var fields [4][]byte
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if line == 1 {
			text = bytes.TrimPrefix(text, utf8BOM)
		}
		if err := splitRow(text, &fields); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if line == 1 {
			if got := string(bytes.Join(fields[:], []byte(","))); got != queriesHeader {
				return nil, fmt.Errorf("%s:1: header is %q, want %q", path, got, queriesHeader)
			}
			continue
		}
		status, ok := atoi(fields[1])
		if !ok || status < 100 || status > 999 {
			return nil, fmt.Errorf("%s:%d: STATUS CODE %q is not an HTTP status", path, line, fields[1])
		}
		if private := string(fields[2]); private != "true" && private != "false" {
			return nil, fmt.Errorf("%s:%d: PRIVATE %q is not true or false", path, line, fields[2])
		}
		count, ok := atoi(fields[3])
		if !ok {
			return nil, fmt.Errorf("%s:%d: COUNT %q is not a count", path, line, fields[3])
		}
		if count > maxJobs-len(q.jobs) {
			return nil, fmt.Errorf("%s:%d: COUNT %s is too large: the COUNTs of a CSV may add up to at most %d jobs", path, line, fields[3], maxJobs)
		}
		rel, ok := queryPath(fields[0])
		if !ok {
			q.junk++
			continue
		}
		if microsoftOnly && !microsoftLike(rel) {
			continue
		}
		buf = q.pack(buf, rel, status)
		for range count {
			q.jobs = append(q.jobs, uint32(len(q.rows)-1))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: the line is longer than %d bytes, the most a row may take", path, line+1, maxCSVLine)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	q.chunks = append(q.chunks, string(buf))
	return q, nil
}

// uploadedQueries makes one job per uploaded symbol key, expecting it to
// be found (as S3 would have served it: 200).
func uploadedQueries(keys []string) *queries {
	q := &queries{}
	buf := make([]byte, 0, chunkSize)
	for _, k := range keys {
		buf = q.pack(buf, []byte(k), http.StatusOK)
		q.jobs = append(q.jobs, uint32(len(q.rows)-1))
	}
	q.chunks = append(q.chunks, string(buf))
	return q
}

// splitRow splits a line into exactly four fields.
func splitRow(line []byte, fields *[4][]byte) error {
	if bytes.IndexByte(line, '"') >= 0 {
		r := csv.NewReader(bytes.NewReader(line))
		r.FieldsPerRecord = 4
		rec, err := r.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return err
		}
		for i := range fields {
			fields[i] = []byte(rec[i])
		}
		return nil
	}
	n := 0
	for n < 4 {
		i := bytes.IndexByte(line, ',')
		if i < 0 || n == 3 {
			fields[n] = line
			n++
			if i >= 0 {
				return fmt.Errorf("wrong number of fields: more than 4")
			}
			break
		}
		fields[n], line = line[:i], line[i+1:]
		n++
	}
	if n != 4 {
		return fmt.Errorf("wrong number of fields: %d, want 4", n)
	}
	return nil
}

// csvErr names the file and line of an encoding/csv error.
func csvErr(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w", path, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// atoi parses a non-negative decimal number; one too large for an int
// comes back as math.MaxInt.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt-9)/10 {
			n = math.MaxInt
		} else if n != math.MaxInt {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}

// queryPath returns the last three segments of a logged URI, or false for
// a junk URI: spaces, a request line, fewer than three segments, an empty
// segment, control characters or a broken percent-escape.
func queryPath(uri []byte) ([]byte, bool) {
	if len(uri) == 0 || bytes.ContainsAny(uri, " \t") || bytes.Contains(uri, []byte("HTTP/1.1")) {
		return nil, false
	}
	start := len(uri)
	for seg := 0; seg < 3; seg++ {
		i := bytes.LastIndexByte(uri[:start], '/')
		if seg < 2 && i < 0 {
			return nil, false
		}
		if start-i-1 == 0 { // empty segment
			return nil, false
		}
		if seg < 2 {
			start = i
		} else {
			start = i + 1
		}
	}
	rel := uri[start:]
	for i := 0; i < len(rel); i++ {
		c := rel[i]
		if c < 0x20 || c == 0x7f {
			return nil, false
		}
		if c == '%' && (i+2 >= len(rel) || !isHexDigit(rel[i+1]) || !isHexDigit(rel[i+2])) {
			return nil, false
		}
	}
	return rel, true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// microsoftLike is download.py's --microsoft-like-only filter: a .pdb
// debug file and a .sym symbol file.
func microsoftLike(rel []byte) bool {
	symbol, _, _ := bytes.Cut(rel, []byte("/"))
	return bytes.HasSuffix(symbol, []byte(".pdb")) && bytes.HasSuffix(rel, []byte(".sym"))
}

// loadMissing reads a debug_file,debug_id,code_file,code_id file, which
// may start with a UTF-8 byte order mark, into query strings keyed by
// "debug_file/debug_id".
func loadMissing(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = 4
	const want = "debug_file,debug_id,code_file,code_id"
	header, err := r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%s: empty, want the header %q", path, want)
	case err != nil:
		return nil, csvErr(path, err)
	}
	if got := strings.Join(header, ","); got != want {
		return nil, fmt.Errorf("%s:1: header is %q, want %q", path, got, want)
	}
	codes := map[string]string{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return codes, nil
		}
		if err != nil {
			return nil, csvErr(path, err)
		}
		if rec[2] == "" && rec[3] == "" {
			continue
		}
		codes[rec[0]+"/"+rec[1]] = url.Values{"code_file": {rec[2]}, "code_id": {rec[3]}}.Encode()
	}
}
