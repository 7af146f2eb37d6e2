package main

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// MakeZipsStep builds symbol zips to upload: from the files of past
// uploads (UploadedSymbols records, make-symbol-zip.py) or synthetic.
type MakeZipsStep struct {
	Source string `yaml:"source"`
	// SaveDir receives the zips ("temp": a folder that lives as long as
	// the run, which a later upload step reads).
	SaveDir     string  `yaml:"save_dir,omitempty"`
	Number      *int    `yaml:"number,omitempty"`
	MaxSize     *Size   `yaml:"max_size,omitempty"`
	Concurrency *int    `yaml:"concurrency,omitempty"`
	Seed        *uint64 `yaml:"seed,omitempty"`
	// uploaded-symbols
	Records    string `yaml:"records,omitempty"`
	SymbolsURL string `yaml:"symbols_url,omitempty"`
	// Endpoint is an S3-compatible endpoint, or embedded for the S3 of
	// the embedded emulator (which holds the files EmbeddedRecords name).
	Endpoint  string `yaml:"endpoint,omitempty"`
	Region    string `yaml:"region,omitempty"`
	Anonymous bool   `yaml:"anonymous,omitempty"`
	Strict    bool   `yaml:"strict,omitempty"`
	// synthetic
	ZipSize  *Size  `yaml:"zip_size,omitempty"`
	SymSize  *Size  `yaml:"sym_size,omitempty"`
	Platform string `yaml:"platform,omitempty"`
}

func (m *MakeZipsStep) kind() string { return "make-zips" }

func (m *MakeZipsStep) needs() []need { return nil }

func (m *MakeZipsStep) setDefaults(*Plan) {
	if m.SaveDir == "" {
		m.SaveDir = "upload-zips"
	}
	if m.Number == nil {
		m.Number = ptr(1)
	}
	if m.MaxSize == nil {
		m.MaxSize = ptr(Size(1000 << 20))
	}
	if m.Concurrency == nil {
		m.Concurrency = ptr(5)
	}
	if m.Region == "" {
		m.Region = "us-west-2"
	}
	if m.ZipSize == nil {
		m.ZipSize = ptr(Size(1 << 20))
	}
	if m.SymSize == nil {
		m.SymSize = ptr(Size(256 << 10))
	}
	if m.Platform == "" {
		m.Platform = "windows"
	}
}

func (m *MakeZipsStep) validate(v *validator, path string) {
	switch m.Source {
	case "uploaded-symbols":
		if m.Records == "" {
			v.add(path+".records", "is required: a glob of UploadedSymbols *.json or *.json.gz files")
		}
		u, err := url.Parse(m.SymbolsURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "s3") || u.Host == "" {
			v.add(path+".symbols_url", "must be an https://… base URL or s3://bucket/prefix, got %q", m.SymbolsURL)
		} else if m.Endpoint != "" && u.Scheme != "s3" {
			v.add(path+".endpoint", "is for s3:// symbols_url only")
		}
	case "synthetic":
		if *m.ZipSize <= 0 || *m.SymSize <= 0 {
			v.add(path, "zip_size and sym_size must be more than 0")
		}
		if !slices.Contains(breakpad.Platforms, m.Platform) {
			v.add(path+".platform", "must be one of %s, got %q", strings.Join(breakpad.Platforms, ", "), m.Platform)
		}
	default:
		v.add(path+".source", "must be uploaded-symbols or synthetic, got %q", m.Source)
	}
	v.atLeast(path+".number", *m.Number, 1)
	v.atLeast(path+".concurrency", *m.Concurrency, 1)
}

func (m *MakeZipsStep) reads() []planFile { return []planFile{{"records", m.Records}} }

func (m *MakeZipsStep) writes() string {
	if m.SaveDir == "temp" {
		return ""
	}
	return m.SaveDir
}

// MakeZipsResult is the report of a make-zips step.
type MakeZipsResult struct {
	Zips        []MadeZip    `json:"zips"`
	FailedFiles []FailedFile `json:"failed_files"`
	// DownloadedBytes, SumS and WallS describe the downloads of
	// uploaded-symbols, every try of every file (a body that broke off,
	// a file that failed): the bytes that came over the wire, the sum of
	// per-file times against wall time.
	DownloadedBytes int64    `json:"downloaded_bytes"`
	SumS            float64  `json:"sum_s"`
	WallS           float64  `json:"wall_s"`
	SumBytesPerS    *float64 `json:"sum_bytes_per_s"`
	WallBytesPerS   *float64 `json:"wall_bytes_per_s"`
	ZipBytesPerS    *float64 `json:"zip_bytes_per_s"`
	SaveDir         string   `json:"save_dir"`
	// CandidateRecords and SkippedAsTooLarge count the uploaded-symbols
	// records read and those skipped for max_size (0 for synthetic zips).
	CandidateRecords  int `json:"candidate_records"`
	SkippedAsTooLarge int `json:"skipped_too_large"`
}

func newMakeZipsResult() *MakeZipsResult {
	return &MakeZipsResult{Zips: []MadeZip{}, FailedFiles: []FailedFile{}}
}

// MadeZip is one zip written.
type MadeZip struct {
	Path  string `json:"path"`
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
}

// FailedFile is a symbol file that could not be fetched.
type FailedFile struct {
	Zip   string `json:"zip"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

func (r *MakeZipsResult) writeTable(w io.Writer) error {
	var rows [][]string
	for _, z := range r.Zips {
		rows = append(rows, []string{shorten(z.Path, 70), strconv.Itoa(z.Files), humanSize(float64(z.Bytes))})
	}
	if err := writeTable(w, []string{"ZIP", "FILES", "SIZE"}, rows); err != nil {
		return err
	}
	speed := func(v *float64) string {
		if v == nil {
			return "n/a"
		}
		return humanSize(*v) + "/s"
	}
	facts := [][2]string{{"ZIP WRITE SPEED", speed(r.ZipBytesPerS)}}
	if r.DownloadedBytes > 0 {
		facts = append(facts,
			[2]string{"DOWNLOADED", humanSize(float64(r.DownloadedBytes))},
			[2]string{"SUM OF TIMES", fmt.Sprintf("%.3fs (%s)", r.SumS, speed(r.SumBytesPerS))},
			[2]string{"WALL CLOCK", fmt.Sprintf("%.3fs (%s)", r.WallS, speed(r.WallBytesPerS))})
	}
	if len(r.FailedFiles) > 0 {
		facts = append(facts, [2]string{"FAILED FILES", fmt.Sprintf("%d, e.g. %s: %s", len(r.FailedFiles), r.FailedFiles[0].Key, r.FailedFiles[0].Error)})
	}
	return writeFacts(w, facts)
}

func (m *MakeZipsStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	res := newMakeZipsResult()
	dir, err := outDir(rc, m.SaveDir, "zips")
	if err != nil {
		return res, err
	}
	res.SaveDir = dir
	seed := rc.stepSeed(m.Seed, rc.stepIndex)
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	start := time.Now()
	rc.prog.expect(func(pl *progressPlan) { pl.total, pl.unit, pl.bytes = int64(*m.Number), "zips", "written" })
	if m.Source == "synthetic" {
		err = m.synthetic(ctx, rc.prog, dir, rng, res)
	} else {
		err = m.fromUploads(ctx, rc, dir, rng, res)
	}
	res.WallS = time.Since(start).Seconds()
	var written int64
	for _, z := range res.Zips {
		written += z.Bytes
	}
	if res.WallS > 0 && written > 0 {
		res.ZipBytesPerS = ptr(float64(written) / res.WallS)
		if res.DownloadedBytes > 0 {
			res.WallBytesPerS = ptr(float64(res.DownloadedBytes) / res.WallS)
		}
	}
	if res.SumS > 0 {
		res.SumBytesPerS = ptr(float64(res.DownloadedBytes) / res.SumS)
	}
	rc.state.zipsDir = dir
	return res, err
}

// synthetic writes number zips of deterministic, symbolicatable Breakpad
// files (valid MODULE/INFO/FILE/FUNC/PUBLIC records) until each zip
// reaches zip_size on disk.
func (m *MakeZipsStep) synthetic(ctx context.Context, prog *progress, dir string, rng *rand.Rand, res *MakeZipsResult) error {
	for range *m.Number {
		seed := rng.Uint64()
		name := filepath.Join(dir, fmt.Sprintf("teckenrun-synthetic-%016x.zip", seed))
		files := 0
		err := writeZipAtomic(name, prog, func(zw *zip.Writer, size func() int64) error {
			var err error
			files, err = m.syntheticMembers(ctx, zw, size, seed)
			return err
		})
		if err != nil {
			return err
		}
		info, err := os.Stat(name)
		if err != nil {
			return err
		}
		res.Zips = append(res.Zips, MadeZip{Path: name, Files: files, Bytes: info.Size()})
		prog.add(false)
	}
	return nil
}

// compressedMember is a zip member compressed ahead of writing.
type compressedMember struct {
	name       string
	crc        uint32
	size       uint64
	compressed []byte
	err        error
}

// syntheticMembers fills a zip with modules until it reaches zip_size.
// Module i is made from (seed, i) alone, so the members are the same
// however the work is spread: one goroutine per core makes and compresses
// modules, and this one writes them in order with CreateRaw.
func (m *MakeZipsStep) syntheticMembers(ctx context.Context, zw *zip.Writer, size func() int64, seed uint64) (int, error) {
	symbols := m.symbolsPerModule(seed) // once per zip: it writes a sample module
	module := func(i int) breakpad.Module {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		return breakpad.Synthesize(r, fmt.Sprintf("synth%08x", r.Uint32()), m.Platform, symbols)
	}
	stop := make(chan struct{})
	defer close(stop)
	futures := make(chan chan compressedMember, runtime.GOMAXPROCS(0))
	go func() {
		defer close(futures)
		for i := 0; ; i++ {
			f := make(chan compressedMember, 1)
			select {
			case futures <- f:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
			go func() { f <- compressModule(module(i)) }()
		}
	}()
	files := 0
	for f := range futures {
		c := <-f
		if c.err != nil {
			return files, c.err
		}
		w, err := zw.CreateRaw(rawHeader(c, time.Now()))
		if err != nil {
			return files, err
		}
		if _, err := w.Write(c.compressed); err != nil {
			return files, err
		}
		files++
		if size() >= int64(*m.ZipSize) {
			return files, nil
		}
	}
	return files, ctx.Err()
}

// rawHeader is the header of a member compressed ahead of writing,
// modified at modified. CreateRaw, unlike CreateHeader, writes the header
// as it is: it would date the member 1980 (MS-DOS time 0) without the
// MS-DOS time fields and the extended timestamp filled in here, as
// CreateHeader fills them in from Modified.
func rawHeader(c compressedMember, modified time.Time) *zip.FileHeader {
	modified = modified.UTC()
	fh := &zip.FileHeader{Name: c.name, Method: zip.Deflate, CRC32: c.crc,
		CompressedSize64: uint64(len(c.compressed)), UncompressedSize64: c.size, Modified: modified}
	//lint:ignore SA1019 CreateRaw writes the MS-DOS time fields as given: nothing else dates the member.
	fh.ModifiedDate, fh.ModifiedTime = uint16(modified.Day()+int(modified.Month())<<5+(modified.Year()-1980)<<9),
		uint16(modified.Second()/2+modified.Minute()<<5+modified.Hour()<<11)
	// Extended timestamp (0x5455): flags 1 (modification time), then the
	// time in Unix seconds, little-endian.
	fh.Extra = binary.LittleEndian.AppendUint16(fh.Extra, 0x5455)
	fh.Extra = binary.LittleEndian.AppendUint16(fh.Extra, 5)
	fh.Extra = append(fh.Extra, 1)
	fh.Extra = binary.LittleEndian.AppendUint32(fh.Extra, uint32(modified.Unix()))
	return fh
}

// symbolsPerModule sizes modules to about sym_size, from a sample module.
func (m *MakeZipsStep) symbolsPerModule(seed uint64) int {
	const sample = 500
	probe := breakpad.Synthesize(rand.New(rand.NewPCG(seed, math.MaxUint64)), "probe", m.Platform, sample)
	n, _ := probe.WriteTo(io.Discard) // io.Discard never fails
	return max(int(int64(*m.SymSize)*sample/max(n, 1)), 4)
}

func compressModule(mod breakpad.Module) compressedMember {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed) // a valid level never fails
	h := crc32.NewIEEE()
	n, err := mod.WriteTo(io.MultiWriter(fw, h))
	if err == nil {
		err = fw.Close()
	}
	return compressedMember{name: mod.Key(), crc: h.Sum32(), size: uint64(n), compressed: buf.Bytes(), err: err}
}

// writeZipAtomic writes a DEFLATE zip through a temporary file renamed
// into place when complete: a crash or an error never leaves half a zip.
// size reports the bytes written to disk so far, which prog counts.
func writeZipAtomic(path string, prog *progress, fill func(zw *zip.Writer, size func() int64) error) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		cw := &countingWriter{w: w, prog: prog}
		zw := zip.NewWriter(cw)
		// Zips to upload need not be small: the fastest DEFLATE level keeps
		// writing them from being the bottleneck.
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, flate.BestSpeed)
		})
		if err := fill(zw, func() int64 { return cw.n }); err != nil {
			return err
		}
		return zw.Close()
	})
}

type countingWriter struct {
	w    io.Writer
	n    int64
	prog *progress
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.prog.addBytes(n)
	return n, err
}

// uploadedHit is one upload of an UploadedSymbols record (§5).
type uploadedHit struct {
	Content struct {
		Added   []string `json:"added"`
		Existed []string `json:"existed"`
	} `json:"content"`
	Size int64  `json:"size"`
	Date string `json:"date"`
	ID   int    `json:"id"`
}

// zipName is make-symbol-zip.py's name: the date cut at the first "."
// with ":" replaced by "_".
func (h *uploadedHit) zipName() string {
	date, _, _ := strings.Cut(h.Date, ".")
	return "symbols-" + strings.ReplaceAll(date, ":", "_") + ".zip"
}

// loadRecords reads every hit of the UploadedSymbols files matching glob.
func loadRecords(glob string) ([]uploadedHit, error) {
	paths, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("records %q: %w", glob, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("records %q: no files match", glob)
	}
	var hits []uploadedHit
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			gz, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			r = gz
		}
		var rec struct {
			Hits []uploadedHit `json:"hits"`
		}
		err = json.NewDecoder(r).Decode(&rec)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: not an UploadedSymbols record: %w", p, err)
		}
		hits = append(hits, rec.Hits...)
	}
	return hits, nil
}

// fetchedFile is a symbol file downloaded into a temporary file.
type fetchedFile struct {
	name    string // the zip member name
	path    string
	bytes   int64
	seconds float64
	err     error
	key     string
}

// errNotFound marks a symbol file storage does not have.
var errNotFound = errors.New("not found")

// fetcher opens one storage object; gzipped says whether its bytes are
// gzip-encoded (Tecken stores .sym files that way).
type fetcher interface {
	fetch(ctx context.Context, key string) (body io.ReadCloser, gzipped bool, err error)
}

// httpFetcher fetches from an https://…/ base URL, retrying 5xx.
type httpFetcher struct {
	rt        http.RoundTripper
	base      string
	userAgent string
	pol       retryPolicy
}

func (h *httpFetcher) fetch(ctx context.Context, key string) (io.ReadCloser, bool, error) {
	target := h.base + key
	resp, _, err := send(ctx, h.rt, h.pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err == nil {
			req.Header.Set("User-Agent", h.userAgent)
		}
		return req, err
	}, nil) // streamed to a file by fetchOnce, which fetches again if it breaks off
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
			return nil, false, fmt.Errorf("%w (%d)", errNotFound, resp.StatusCode)
		}
		return nil, false, fmt.Errorf("GET %s: %d", target, resp.StatusCode)
	}
	return resp.Body, resp.Header.Get("Content-Encoding") == "gzip", nil
}

// fromUploads rebuilds number past uploads as zips: their added and
// existed files fetched concurrently into temporary files, then streamed
// into the zip one at a time, so memory does not grow with the zip.
func (m *MakeZipsStep) fromUploads(ctx context.Context, rc *runContext, dir string, rng *rand.Rand, res *MakeZipsResult) error {
	hits, err := loadRecords(rc.plan.resolve(m.Records))
	if err != nil {
		return err
	}
	var candidates []uploadedHit
	for _, h := range hits {
		switch {
		case h.Size > int64(*m.MaxSize):
			res.SkippedAsTooLarge++
		case !fileExists(filepath.Join(dir, h.zipName())):
			candidates = append(candidates, h)
		}
	}
	res.CandidateRecords = len(candidates)
	if len(candidates) == 0 {
		return fmt.Errorf("no upload in %s is under max_size %s and not saved already", m.Records, m.MaxSize)
	}
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	rc.prog.expect(func(pl *progressPlan) { pl.total = int64(min(*m.Number, len(candidates))) })
	f, err := m.newFetcher(ctx, rc)
	if err != nil {
		return err
	}
	for _, h := range candidates[:min(*m.Number, len(candidates))] {
		if err := m.zipUpload(ctx, rc, f, dir, h, res); err != nil {
			return err
		}
	}
	if len(res.Zips) == 0 && ctx.Err() == nil {
		msg := "no zip written: none of the uploads' files could be fetched"
		if len(res.FailedFiles) > 0 {
			ff := res.FailedFiles[0]
			msg += fmt.Sprintf(" (%d failed, such as %s: %s)", len(res.FailedFiles), ff.Key, ff.Error)
		}
		return errors.New(msg)
	}
	return nil
}

// errNoFiles ends a zip none of whose files could be fetched: it is not
// written.
var errNoFiles = errors.New("no file could be fetched")

func (m *MakeZipsStep) newFetcher(ctx context.Context, rc *runContext) (fetcher, error) {
	u, _ := url.Parse(m.SymbolsURL) // validated
	if u.Scheme == "s3" {
		if m.Endpoint == "embedded" {
			return newS3Fetcher(ctx, u.Host, strings.TrimPrefix(u.Path, "/"), m.Region, rc.embeddedS3, true, time.Duration(rc.plan.Timeout))
		}
		return newS3Fetcher(ctx, u.Host, strings.TrimPrefix(u.Path, "/"), m.Region, m.Endpoint, m.Anonymous, time.Duration(rc.plan.Timeout))
	}
	base := m.SymbolsURL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &httpFetcher{rt: rc.transport(*m.Concurrency), base: base, userAgent: rc.plan.UserAgent,
		pol: retryPolicy{retries: 3, base: 500 * time.Millisecond, cap: 5 * time.Second, statuses: []int{429, 500, 502, 503, 504},
			timeout: time.Duration(rc.plan.Timeout)}}, nil
}

func (m *MakeZipsStep) zipUpload(ctx context.Context, rc *runContext, f fetcher, dir string, h uploadedHit, res *MakeZipsResult) error {
	zipPath := filepath.Join(dir, h.zipName())
	tmp, err := os.MkdirTemp("", "teckenrun-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var keys []string
	for _, entry := range append(append([]string(nil), h.Content.Added...), h.Content.Existed...) {
		_, key, _ := strings.Cut(entry, ",") // "<bucket>,<key>"; the bucket is not used
		if key == "" || strings.HasSuffix(key, "/") {
			res.FailedFiles = append(res.FailedFiles, FailedFile{Zip: zipPath, Key: entry, Error: "not a file: ignored"})
			continue
		}
		keys = append(keys, key)
	}
	files := 0
	err = writeZipAtomic(zipPath, rc.prog, func(zw *zip.Writer, _ func() int64) error {
		var writeErr error
		col := collect(*m.Concurrency, func(ff fetchedFile) {
			res.DownloadedBytes += ff.bytes // a failed file's tries came over the wire too
			res.SumS += ff.seconds
			if ff.err != nil {
				res.FailedFiles = append(res.FailedFiles, FailedFile{Zip: zipPath, Key: ff.key, Error: ff.err.Error()})
				return
			}
			defer os.Remove(ff.path)
			if writeErr == nil {
				writeErr = copyIntoZip(zw, ff.name, ff.path)
				files++
			}
		})
		work, cancel := graceContext(ctx, 0)
		defer cancel()
		_, err := issue(ctx, work, pace{concurrency: *m.Concurrency, total: len(keys)}, func(ctx context.Context, i int, _ slot) error {
			ff := fetchToFile(ctx, f, keys[i], tmp, i)
			if ff.err != nil && m.Strict && errors.Is(ff.err, errNotFound) {
				return fmt.Errorf("%s: %w (strict)", keys[i], ff.err)
			}
			col.send(ff)
			return nil
		})
		col.close()
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
		if writeErr != nil {
			return writeErr
		}
		if files == 0 {
			return errNoFiles // not even an empty zip is written
		}
		return nil
	})
	if errors.Is(err, errNoFiles) {
		return nil
	}
	if err != nil {
		return err
	}
	info, err := os.Stat(zipPath)
	if err != nil {
		return err
	}
	res.Zips = append(res.Zips, MadeZip{Path: zipPath, Files: files, Bytes: info.Size()})
	rc.prog.add(false)
	return nil
}

// fetchRetries is how often a file whose body broke off is fetched again
// (a failed request is already retried by the fetcher).
const fetchRetries = 3

// fetchToFile downloads one object, gunzipping a gzip-encoded one. A body
// that breaks off (a timeout, a reset) is fetched again from the start.
func fetchToFile(ctx context.Context, f fetcher, key, dir string, i int) fetchedFile {
	ff := fetchedFile{key: key, name: strings.TrimPrefix(key, "v1/"), path: filepath.Join(dir, strconv.Itoa(i))}
	start := time.Now()
	for try := 0; ; try++ {
		n, retry, err := fetchOnce(ctx, f, key, ff.path)
		ff.bytes, ff.err = ff.bytes+n, err // every try's bytes came over the wire
		if ff.err == nil || !retry || try >= fetchRetries || ctx.Err() != nil {
			break
		}
	}
	ff.seconds = time.Since(start).Seconds()
	return ff
}

// fetchOnce writes one object to path and returns the bytes that came
// over the wire (as the original counted them), and whether a failure is
// worth another try.
func fetchOnce(ctx context.Context, f fetcher, key, path string) (n int64, retry bool, err error) {
	body, gzipped, err := f.fetch(ctx, key)
	if err != nil {
		return 0, false, err // the fetcher has retried what can be retried
	}
	defer body.Close()
	cr := &countingReader{r: body}
	var r io.Reader = cr
	if gzipped {
		gz, err := gzip.NewReader(cr)
		if err != nil {
			return cr.n, errorClass(err) != classOther, fmt.Errorf("reading %s: gzip: %w", key, err)
		}
		r = gz
	}
	out, err := os.Create(path)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil && cerr != nil {
		return cr.n, false, cerr
	}
	if err != nil {
		return cr.n, errorClass(err) != classCancelled, fmt.Errorf("reading %s: %s: %w", key, errorClass(err), err)
	}
	return cr.n, false, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func copyIntoZip(zw *zip.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
