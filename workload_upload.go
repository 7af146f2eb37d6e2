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
	"slices"
	"strconv"
	"strings"
	"time"
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
	case sources == 0 && !v.earlier("make-zips"):
		v.add(path+".zips_dir", "is required (or urls, or urls_from, or a make-zips step before this one)")
	}
	if u.URLsFrom == "list-zips" && !v.earlier("list-zips") {
		v.add(path+".urls_from", "list-zips needs a list-zips step before this one")
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

// productionHosts are Tecken hosts that upload steps may not write to
// unless the plan says allow_production_writes: true.
var productionHosts = []string{"symbols.mozilla.org"}

// checkWrites checks what a step that writes to Tecken needs: a token
// variable that is set, and permission to write to production.
func (v *validator) checkWrites(path string) {
	p := v.plan
	if p.Host == "embedded" {
		return
	}
	if u, err := url.Parse(p.Host); err == nil && slices.Contains(productionHosts, u.Hostname()) && !p.AllowProductionWrites {
		v.add(path, "%s is production: writing to it needs allow_production_writes: true in the plan", u.Hostname())
	}
	switch {
	case p.AuthTokenEnv == "":
		v.add("auth_token_env", "is required by %s: the name of the environment variable holding the Auth-Token", path)
	case envName.MatchString(p.AuthTokenEnv):
		if t, ok := os.LookupEnv(p.AuthTokenEnv); !ok || t == "" {
			v.add("auth_token_env", "environment variable %s is not set (%s needs the Auth-Token)", p.AuthTokenEnv, path)
		}
	}
}

// UploadResult is the report of an upload step.
type UploadResult struct {
	Uploads   []UploadRecord `json:"uploads"`
	Succeeded int            `json:"succeeded"`
	Failed    int            `json:"failed"`
	// Skipped counts zips or URLs not sent: over max_size, or locked.
	Skipped        int             `json:"skipped"`
	SkippedUploads []SkippedUpload `json:"skipped_uploads"`
	Cancelled      int             `json:"cancelled"`
	// BytesTotal is the size of the zips that succeeded: sent by
	// teckenrun, or for URLs, what Tecken downloaded.
	BytesTotal int64 `json:"bytes_total"`
	Retries    int   `json:"retries"`
}

// UploadRecord is one upload: a file or a URL.
type UploadRecord struct {
	File string `json:"file,omitempty"`
	URL  string `json:"url,omitempty"`
	// Bytes is the zip's size (for a URL, from its HEAD; 0 if unknown).
	Bytes int64 `json:"bytes"`
	// Status is the final HTTP status; 0 when none came back.
	Status   int     `json:"status"`
	Attempts int     `json:"attempts"`
	Seconds  float64 `json:"seconds"`
	UploadID *int    `json:"upload_id"`
	Error    *string `json:"error"`

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
	if err := writeFacts(w, [][2]string{
		{"UPLOADED", fmt.Sprintf("%d succeeded, %d failed, %d skipped (%s of zips)", r.Succeeded, r.Failed, r.Skipped, humanSize(float64(r.BytesTotal)))},
		{"RETRIES", strconv.Itoa(r.Retries)},
	}); err != nil {
		return err
	}
	var rows [][]string
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
		if u.Seconds > 0 && u.Bytes > 0 && u.Error == nil {
			rate = fmt.Sprintf("%.1f", float64(u.Bytes)/(1<<20)/u.Seconds)
		}
		rows = append(rows, []string{what, humanSize(float64(u.Bytes)), status, strconv.Itoa(u.Attempts),
			strconv.FormatFloat(u.Seconds, 'f', 2, 64), rate, id, errText})
	}
	if err := writeTable(w, []string{"FILE/URL", "SIZE", "STATUS", "ATTEMPTS", "SECONDS", "MB/S", "UPLOAD ID", "ERROR"}, rows, 7); err != nil {
		return err
	}
	for _, s := range r.SkippedUploads {
		what := s.File + s.URL
		if _, err := fmt.Fprintf(w, "skipped %s: %s\n", what, s.Reason); err != nil {
			return err
		}
	}
	return nil
}

func (u *UploadStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	res := &UploadResult{Uploads: []UploadRecord{}, SkippedUploads: []SkippedUpload{}}
	token := rc.token()
	tr := newTransport(*u.Concurrency)
	defer tr.CloseIdleConnections()
	pol := retryPolicy{retries: *u.Retries, base: time.Duration(u.Backoff), cap: 32 * time.Duration(u.Backoff),
		statuses: []int{408, 429, 502, 503, 504}, timeout: time.Duration(u.Timeout)}
	seed := rc.stepSeed(u.Seed, rc.stepIndex)
	rng := mrand.New(mrand.NewPCG(seed, seed>>32|1))
	endpoint := rc.host + "/upload/"

	var jobs []func(ctx context.Context) UploadRecord
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
		zips, err := u.pickZips(dir, rng, res)
		if err != nil {
			return res, err
		}
		for _, z := range zips {
			jobs = append(jobs, func(ctx context.Context) UploadRecord {
				return u.uploadFile(ctx, tr, pol, rc, endpoint, token, z)
			})
		}
	}
	_, err := drive(ctx, rc, pace{concurrency: *u.Concurrency, total: len(jobs)},
		func(ctx context.Context, i int, _ time.Time) UploadRecord { return jobs[i](ctx) },
		func(rec UploadRecord) bool {
			switch {
			case rec.skipped != nil:
				res.Skipped++
				res.SkippedUploads = append(res.SkippedUploads, *rec.skipped)
				return false
			case rec.cancelled:
				res.Cancelled++
				return false
			case rec.Error == nil:
				res.Succeeded++
				res.BytesTotal += rec.Bytes
				rc.state.uploaded = append(rc.state.uploaded, rec.members...)
			default:
				res.Failed++
			}
			res.Retries += max(rec.Attempts-1, 0)
			res.Uploads = append(res.Uploads, rec)
			return rec.Error != nil
		})
	if err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d uploads failed", res.Failed, res.Failed+res.Succeeded)
	}
	return res, nil
}

// pickZips chooses up to number zips under max_size that are not locked.
func (u *UploadStep) pickZips(dir string, rng *mrand.Rand, res *UploadResult) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("zips_dir: %w", err)
	}
	var candidates []string
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
		case fileExists(path + ".locked"):
			res.Skipped++
			res.SkippedUploads = append(res.SkippedUploads, SkippedUpload{File: path, Bytes: info.Size(), Reason: "locked by another upload"})
		default:
			candidates = append(candidates, path)
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%s has no .zip files to upload of at most %s that are not locked", dir, u.MaxSize)
	}
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	return candidates[:min(*u.Number, len(candidates))], nil
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// uploadFile locks a zip, uploads it as a streamed multipart body, and
// deletes it after a 201 if asked. The lock is removed on every path.
func (u *UploadStep) uploadFile(ctx context.Context, rt http.RoundTripper, pol retryPolicy, rc *runContext, endpoint, token, path string) UploadRecord {
	rec := UploadRecord{File: path}
	start := time.Now()
	fail := func(err error) UploadRecord {
		msg := err.Error()
		rec.Error = &msg
		rec.Seconds = time.Since(start).Seconds()
		return rec
	}
	lock, err := os.OpenFile(path+".locked", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fail(fmt.Errorf("locking: %w", err))
	}
	defer os.Remove(lock.Name())
	fmt.Fprintf(lock, "locked %d\n", time.Now().Unix())
	lock.Close()

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
	resp, attempts, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, mp.body(f))
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
	if err = rec.finish(resp, err); err != nil {
		return fail(err)
	}
	rec.Seconds = time.Since(start).Seconds()
	rec.members = zipMembers(f, info.Size())
	if u.DeleteUploaded {
		if err := os.Remove(path); err != nil {
			return fail(fmt.Errorf("uploaded, but deleting it: %w", err))
		}
	}
	return rec
}

// finish reads the answer to an upload: 201 with the upload's id, or an
// error with the server's text.
func (rec *UploadRecord) finish(resp *http.Response, err error) error {
	if err != nil {
		if errorClass(err) == classCancelled {
			rec.cancelled = true
		}
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	rec.Status = resp.StatusCode
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
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
