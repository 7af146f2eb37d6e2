package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// UploadStep uploads symbol zips to /upload/: files from a folder, or
// URLs for Tecken to download (all of upload-symbol-zips.py).
type UploadStep struct {
	// ZipsDir holds the zips to upload; by default the save_dir of the
	// last make-zips step of the run.
	ZipsDir string   `yaml:"zips_dir,omitempty"`
	URLs    []string `yaml:"urls,omitempty"`
	// URLsFrom is "stdin" or a file: plain text (every token with ://) or
	// the JSON report of another teckenrun (its list-zips zips[].url); or
	// "list-zips" for the zips an earlier step of this run listed.
	URLsFrom       string   `yaml:"urls_from,omitempty"`
	Number         *int     `yaml:"number,omitempty"`
	MaxSize        *Size    `yaml:"max_size,omitempty"`
	Concurrency    *int     `yaml:"concurrency,omitempty"`
	Timeout        Duration `yaml:"timeout,omitempty"`
	Retries        *int     `yaml:"retries,omitempty"`
	Backoff        Duration `yaml:"backoff,omitempty"`
	DeleteUploaded bool     `yaml:"delete_uploaded,omitempty"`
	Try            bool     `yaml:"try,omitempty"`
	Seed           *uint64  `yaml:"seed,omitempty"`
	// LockStaleAfter is the age after which another run's lock on a zip
	// is taken over, even if its process may still be alive.
	LockStaleAfter Duration `yaml:"lock_stale_after,omitempty"`
}

func (u *UploadStep) kind() string { return "upload" }

func (u *UploadStep) setDefaults(*Plan) {
	if u.Number == nil {
		u.Number = ptr(1)
	}
	if u.MaxSize == nil {
		u.MaxSize = ptr(Size(1000 << 20))
	}
	if u.Concurrency == nil {
		u.Concurrency = ptr(1)
	}
	if u.Timeout == 0 {
		u.Timeout = Duration(300 * time.Second)
	}
	if u.Retries == nil {
		u.Retries = ptr(5)
	}
	if u.Backoff == 0 {
		u.Backoff = Duration(5 * time.Second)
	}
	if u.LockStaleAfter == 0 {
		u.LockStaleAfter = Duration(time.Hour)
	}
}

func (u *UploadStep) validate(v *validator, path string) {
	sources := 0
	for _, set := range []bool{u.ZipsDir != "", len(u.URLs) > 0, u.URLsFrom != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources > 1:
		v.add(path, "give one of zips_dir, urls and urls_from")
	}
	for i, raw := range u.URLs {
		if pu, err := url.Parse(raw); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			v.add(fmt.Sprintf("%s.urls[%d]", path, i), "%q is not an http(s) URL", raw)
		}
	}
	v.atLeast(path+".number", *u.Number, 1)
	v.atLeast(path+".concurrency", *u.Concurrency, 1)
	v.atLeast(path+".retries", *u.Retries, 0)
	if *u.MaxSize <= 0 {
		v.add(path+".max_size", "must be more than 0")
	}
	v.checkWrites(path)
}

func (u *UploadStep) needs() []need {
	switch {
	case u.URLsFrom == "list-zips":
		return []need{{what: artifactZipURLs, field: ".urls_from"}}
	case u.ZipsDir == "" && len(u.URLs) == 0 && u.URLsFrom == "":
		return []need{{what: artifactZips, field: ".zips_dir", hint: "or set zips_dir, urls or urls_from"}}
	}
	return nil
}

func (u *UploadStep) reads() []planFile {
	files := []planFile{{"zips_dir", u.ZipsDir}}
	if u.URLsFrom != "stdin" && u.URLsFrom != "list-zips" {
		files = append(files, planFile{"urls_from", u.URLsFrom})
	}
	return files
}

// checkWrites checks what a step that writes to Tecken needs: a token
// variable that is set, and permission to write to production.
func (v *validator) checkWrites(path string) {
	p := v.plan
	if p.Host == "embedded" {
		return
	}
	if u, err := url.Parse(p.Host); err == nil && isProduction(u.Hostname()) && !p.AllowProductionWrites {
		v.add(path, "%s is production: writing to it needs allow_production_writes: true in the plan", u.Hostname())
	}
	v.checkToken(path)
}

// UploadResult is the report of an upload step.
type UploadResult struct {
	// Metrics are the request metrics of the uploads sent (not of those
	// skipped, or that failed before a request was made).
	Metrics   metrics.Summary `json:"metrics"`
	Uploads   []UploadRecord  `json:"uploads"`
	Succeeded int             `json:"succeeded"`
	Failed    int             `json:"failed"`
	// Skipped counts zips or URLs not sent: over max_size, or locked.
	Skipped        int             `json:"skipped"`
	SkippedUploads []SkippedUpload `json:"skipped_uploads"`
	Cancelled      int             `json:"cancelled"`
	// BytesTotal is the size of the zips that succeeded: sent by
	// teckenrun, or for URLs, what Tecken downloaded.
	BytesTotal int64 `json:"bytes_total"`
	// Retries is metrics.retries: the attempts after the first.
	Retries int `json:"retries"`
	// StaleLocksTakenOver are the locks of zips this step took over from
	// runs that are gone or older than lock_stale_after.
	StaleLocksTakenOver []StaleLock `json:"stale_locks_taken_over"`
}

// UploadRecord is one upload: a file or a URL.
type UploadRecord struct {
	File string `json:"file,omitempty"`
	URL  string `json:"url,omitempty"`
	// Bytes is the zip's size (for a URL, from its HEAD; 0 if unknown).
	Bytes int64 `json:"bytes"`
	// Status is the final HTTP status; 0 when none came back.
	Status   int `json:"status"`
	Attempts int `json:"attempts"`
	// DurationS is how long the upload took to Tecken's answer: for a
	// file from locking it, for a URL from the POST.
	DurationS float64 `json:"duration_s"`
	UploadID  *int    `json:"upload_id"`
	Error     *string `json:"error"`
	// DeleteError says why a zip that Tecken accepted could not be
	// deleted afterwards (delete_uploaded); the upload still succeeded.
	DeleteError *string `json:"delete_error"`

	ex        *exchange      // the upload request; nil when none was made
	cancelled bool           // cut off by an interrupt
	skipped   *SkippedUpload // not sent
	members   []string       // symbol keys in the zip, after a 201
}

// SkippedUpload is a zip or URL that was not sent, and why.
type SkippedUpload struct {
	File   string `json:"file,omitempty"`
	URL    string `json:"url,omitempty"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

func (r *UploadResult) writeTable(w io.Writer) error {
	if err := writeRequestFacts(w, r.Metrics, [][2]string{
		{"UPLOADED", fmt.Sprintf("%d succeeded, %d failed, %d skipped, %d cancelled (%s of zips)", r.Succeeded, r.Failed, r.Skipped, r.Cancelled, humanSize(float64(r.BytesTotal)))},
	}); err != nil {
		return err
	}
	var largest float64
	for _, u := range r.Uploads {
		largest = max(largest, u.DurationS)
	}
	unit := unitFor(largest)
	var rows [][]string
	var failures []string
	for _, u := range r.Uploads {
		what, id, status, errText := u.File, "", "-", ""
		if what == "" {
			what = u.URL
		}
		if u.UploadID != nil {
			id = strconv.Itoa(*u.UploadID)
		}
		if u.Status != 0 {
			status = strconv.Itoa(u.Status)
		}
		if u.Error != nil {
			errText = *u.Error
		}
		rate := ""
		if u.DurationS > 0 && u.Bytes > 0 && u.Error == nil {
			rate = fmt.Sprintf("%.1f", float64(u.Bytes)/(1<<20)/u.DurationS)
		}
		rows = append(rows, []string{shorten(what, 36), humanSize(float64(u.Bytes)), status, strconv.Itoa(u.Attempts),
			unit.format(u.DurationS), rate, id})
		if errText != "" {
			failures = append(failures, shorten(what, 40)+": "+errText)
		}
	}
	if err := writeTable(w, []string{"FILE/URL", "SIZE", "STATUS", "TRIES", "TIME " + unit.name, "MB/S", "UPLOAD ID"}, rows); err != nil {
		return err
	}
	for _, f := range failures {
		if _, err := fmt.Fprintf(w, "failed %s\n", f); err != nil {
			return err
		}
	}
	for _, s := range r.SkippedUploads {
		what := s.File + s.URL
		if _, err := fmt.Fprintf(w, "skipped %s: %s\n", shorten(what, 60), s.Reason); err != nil {
			return err
		}
	}
	for _, s := range r.StaleLocksTakenOver {
		if _, err := fmt.Fprintf(w, "took over the stale lock of %s: %s\n", s.File, s.Reason); err != nil {
			return err
		}
	}
	return nil
}

func (u *UploadStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	res := newUploadResult()
	token := rc.token()
	tr := rc.transport(*u.Concurrency)
	defer tr.CloseIdleConnections()
	pol := retryPolicy{retries: *u.Retries, base: time.Duration(u.Backoff), cap: 32 * time.Duration(u.Backoff),
		statuses: []int{408, 429, 502, 503, 504}, timeout: time.Duration(u.Timeout)}
	seed := rc.stepSeed(u.Seed, rc.stepIndex)
	rng := mrand.New(mrand.NewPCG(seed, seed>>32|1))
	endpoint := rc.host + "/upload/"

	var jobs uploadSource
	if len(u.URLs) > 0 || u.URLsFrom != "" {
		urls, err := u.collectURLs(rc)
		if err != nil {
			return res, err
		}
		if len(urls) == 0 {
			return res, fmt.Errorf("no URLs to upload in %s", u.URLsFrom)
		}
		for i, target := range urls {
			// Workers run URL jobs at once: each gets its own random source,
			// so that an index.json pick depends on the seed alone.
			pick := mrand.New(mrand.NewPCG(seed, uint64(i)))
			jobs = append(jobs, func(ctx context.Context) UploadRecord {
				return u.uploadURL(ctx, tr, pol, rc, endpoint, token, target, pick)
			})
		}
	} else {
		dir := rc.plan.resolve(u.ZipsDir)
		if u.ZipsDir == "" {
			if dir = rc.state.zipsDir; dir == "" {
				return res, errors.New("no zips_dir, and no make-zips step ran before this one")
			}
		}
		lk := newLocker(time.Duration(u.LockStaleAfter))
		locks, err := u.pickZips(dir, rng, lk, res)
		if err != nil {
			return res, err
		}
		defer func() { // the locks of zips an interrupt kept from starting
			for _, l := range locks {
				l.release()
			}
		}()
		var total int64
		for _, l := range locks {
			if info, err := os.Stat(l.zip); err == nil {
				total += info.Size()
			}
			jobs = append(jobs, func(ctx context.Context) UploadRecord {
				return u.uploadFile(ctx, tr, pol, rc, endpoint, token, lk, l)
			})
		}
		rc.prog.expect(func(pl *progressPlan) { pl.bytes, pl.totalBytes = "sent", total })
	}
	p := pace{concurrency: *u.Concurrency, total: len(jobs)}
	agg := &uploadAgg{requests: newRequests(p), res: res, state: rc.state}
	_, err := drive(ctx, rc, p, jobs, agg)
	res.Metrics = agg.m.Summary()
	res.Retries = int(res.Metrics.Retries) // one count of them, the metrics'
	if err != nil {
		return res, err
	}
	var errs []error
	if res.Failed > 0 {
		errs = append(errs, fmt.Errorf("%d of %d uploads failed", res.Failed, res.Failed+res.Succeeded))
	}
	for _, rec := range res.Uploads {
		if rec.DeleteError != nil { // the first; each record has its own
			errs = append(errs, fmt.Errorf("uploaded, but deleting it: %s", *rec.DeleteError))
			break
		}
	}
	return res, errors.Join(errs...)
}

func newUploadResult() *UploadResult {
	return &UploadResult{Metrics: metrics.New(false).Summary(), Uploads: []UploadRecord{}, SkippedUploads: []SkippedUpload{}, StaleLocksTakenOver: []StaleLock{}}
}

// uploadSource is an upload step's jobs: one per zip or URL.
type uploadSource []func(ctx context.Context) UploadRecord

func (src uploadSource) job(ctx context.Context, i int, _ slot) UploadRecord { return src[i](ctx) }

// uploadAgg adds up the uploads; only the collector goroutine calls add.
type uploadAgg struct {
	requests
	res   *UploadResult
	state *runState
}

func (a *uploadAgg) add(rec UploadRecord) (failed bool) {
	r := a.res
	if rec.ex != nil {
		a.m.Add(rec.ex.Sample)
	}
	switch {
	case rec.skipped != nil:
		r.Skipped++
		r.SkippedUploads = append(r.SkippedUploads, *rec.skipped)
		return false
	case rec.cancelled:
		r.Cancelled++
		return false
	case rec.Error == nil:
		r.Succeeded++
		r.BytesTotal += rec.Bytes
		a.state.uploaded = append(a.state.uploaded, rec.members...)
	default:
		r.Failed++
	}
	r.Uploads = append(r.Uploads, rec)
	return rec.Error != nil
}

// pickZips locks up to number zips under max_size, tried in an order the
// seed chooses. A zip that a live run has locked, or that another run
// uploaded and deleted meanwhile, is skipped and the next one tried; a
// stale lock is taken over and reported. Finding every zip taken by
// other runs is not an error: there is nothing left for this run to do.
func (u *UploadStep) pickZips(dir string, rng *mrand.Rand, lk locker, res *UploadResult) ([]*zipLock, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("zips_dir: %w", err)
	}
	var candidates []string
	sizes := map[string]int64{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".zip") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		switch {
		case info.Size() > int64(*u.MaxSize):
			res.Skipped++
			res.SkippedUploads = append(res.SkippedUploads, SkippedUpload{File: path, Bytes: info.Size(), Reason: "over max_size " + u.MaxSize.String()})
		default:
			candidates = append(candidates, path)
			sizes[path] = info.Size()
		}
	}
	if len(candidates) == 0 {
		if res.Skipped == 0 {
			return nil, fmt.Errorf("%s has no .zip files", dir)
		}
		return nil, fmt.Errorf("%s has no .zip files of at most max_size %s (%d larger)", dir, u.MaxSize, res.Skipped)
	}
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	var locks []*zipLock
	for _, path := range candidates {
		if len(locks) == *u.Number {
			break
		}
		l, stale, err := lk.lock(path)
		reason := ""
		switch {
		case errors.Is(err, errLocked):
			reason = err.Error()
		case err != nil:
			for _, l := range locks {
				l.release()
			}
			return nil, fmt.Errorf("locking %s: %w", path, err)
		case !fileExists(path):
			l.release()
			reason = "uploaded and deleted by another run"
		}
		if stale != nil {
			res.StaleLocksTakenOver = append(res.StaleLocksTakenOver, *stale)
		}
		if reason != "" {
			res.Skipped++
			res.SkippedUploads = append(res.SkippedUploads, SkippedUpload{File: path, Bytes: sizes[path], Reason: reason})
			continue
		}
		locks = append(locks, l)
	}
	return locks, nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// uploadFile uploads a locked zip as a streamed multipart body, and
// deletes it after a 201 if asked. The lock is renewed as the upload
// starts and removed on every path, after the zip is deleted.
func (u *UploadStep) uploadFile(ctx context.Context, rt http.RoundTripper, pol retryPolicy, rc *runContext, endpoint, token string, lk locker, lock *zipLock) UploadRecord {
	path := lock.zip
	rec := UploadRecord{File: path}
	begin := time.Now()
	fail := func(err error) UploadRecord {
		msg := err.Error()
		rec.Error = &msg
		rec.DurationS = time.Since(begin).Seconds()
		return rec
	}
	defer lock.release()
	// Zips wait for a free worker with their lock held: one that waited
	// past lock_stale_after may have been taken over.
	if ours, err := lock.renew(lk); err != nil {
		return fail(fmt.Errorf("renewing the lock: %w", err))
	} else if !ours {
		rec.skipped = &SkippedUpload{File: path, Reason: "locked by another run, which took over this run's stale lock"}
		if info, err := os.Stat(path); err == nil {
			rec.skipped.Bytes = info.Size()
		}
		return rec
	}

	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	rec.Bytes = info.Size()
	field := filepath.Base(path)
	var fields []formField
	if u.Try {
		fields = append(fields, formField{"try", "1"})
	}
	mp := newMultipart(fields, field, info.Size())
	rec.ex = ptr(start(slot{sent: time.Now()}))
	resp, attempts, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, rc.prog.countReads(mp.body(f)))
		if err != nil {
			return nil, err
		}
		req.ContentLength = mp.length
		req.Header.Set("Content-Type", mp.contentType())
		req.Header.Set("Auth-Token", token)
		req.Header.Set("User-Agent", rc.plan.UserAgent)
		return req, nil
	}, nil) // the answer is read by finish, and not retried once it came
	rec.Attempts = attempts
	if err = rec.finish(resp, attempts, err); err != nil {
		return fail(err)
	}
	rec.DurationS = time.Since(begin).Seconds()
	rec.members = zipMembers(f, info.Size())
	if u.DeleteUploaded {
		if err := os.Remove(path); err != nil {
			rec.DeleteError = ptr(err.Error())
		}
	}
	return rec
}

// finish reads the answer to an upload: 201 with the upload's id, or an
// error with the server's text. It ends the record's exchange.
func (rec *UploadRecord) finish(resp *http.Response, attempts int, err error) error {
	if err != nil {
		if errorClass(err) == classCancelled {
			rec.cancelled = true
		}
		rec.ex.end(0, attempts, err)
		return err
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		// The status came, but not the whole answer: the metrics count
		// it as a request without an answer, of the error's class.
		rec.ex.end(0, attempts, err)
		return fmt.Errorf("reading the answer: %w", err)
	}
	rec.ex.end(resp.StatusCode, attempts, nil)
	if resp.StatusCode != http.StatusCreated {
		text := errorText(raw)
		if code := strconv.Itoa(resp.StatusCode); !strings.HasPrefix(text, code+" ") {
			text = code + " " + text
		}
		return errors.New(text)
	}
	var body struct {
		Upload struct {
			ID *int `json:"id"`
		} `json:"upload"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Upload.ID == nil {
		return fmt.Errorf("201 without an upload id: %s", errorText(raw))
	}
	rec.UploadID = body.Upload.ID
	return nil
}

// zipMembers lists the symbol files (symbol/debugid/file) in a zip.
func zipMembers(f io.ReaderAt, size int64) []string {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil // Tecken took it; what it holds only feeds later steps
	}
	var keys []string
	for _, m := range zr.File {
		if strings.Count(m.Name, "/") == 2 && !strings.HasSuffix(m.Name, "/") {
			keys = append(keys, m.Name)
		}
	}
	return keys
}

type formField struct{ name, value string }

// multipart is a multipart/form-data body with form fields and one file
// part, streamed from the file with an exact Content-Length.
type multipart struct {
	boundary   string
	head, tail []byte
	size       int64 // of the file
	length     int64
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

func newMultipart(fields []formField, fileField string, size int64) *multipart {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand never fails
	m := &multipart{boundary: "teckenrun" + hex.EncodeToString(b[:]), size: size}
	var head bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", m.boundary, quoteEscaper.Replace(f.name), f.value)
	}
	name := quoteEscaper.Replace(fileField)
	fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\nContent-Type: application/zip\r\n\r\n", m.boundary, name, name)
	m.head = head.Bytes()
	m.tail = []byte("\r\n--" + m.boundary + "--\r\n")
	m.length = int64(len(m.head)) + size + int64(len(m.tail))
	return m
}

func (m *multipart) contentType() string { return "multipart/form-data; boundary=" + m.boundary }

// body returns a fresh reader over the whole body, for one attempt.
func (m *multipart) body(f io.ReaderAt) io.Reader {
	return io.MultiReader(bytes.NewReader(m.head), io.NewSectionReader(f, 0, m.size), bytes.NewReader(m.tail))
}
