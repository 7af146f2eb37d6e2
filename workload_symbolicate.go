package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SymbolicateStep replays stack files at the symbolication API (all of
// symbolication.py and loadtest.py's symbolication scenario, fixed).
type SymbolicateStep struct {
	// StacksDir is a folder of *.json v4 bodies or a glob; by default the
	// out_dir of the last make-stacks step of the run.
	StacksDir   string   `yaml:"stacks_dir,omitempty"`
	API         string   `yaml:"api"`
	BatchSize   *int     `yaml:"batch_size,omitempty"`
	Limit       int      `yaml:"limit,omitempty"`
	Concurrency *int     `yaml:"concurrency,omitempty"`
	Rate        float64  `yaml:"rate,omitempty"`
	Duration    Duration `yaml:"duration,omitempty"`
	// MaxConcurrency bounds the workers a rate adds (default 10 ×
	// concurrency); Stages replace rate and duration with ramps.
	MaxConcurrency int     `yaml:"max_concurrency,omitempty"`
	Stages         []Stage `yaml:"stages,omitempty"`
	Seed           *uint64 `yaml:"seed,omitempty"`
	Sanitize       bool    `yaml:"sanitize,omitempty"`
}

func (s *SymbolicateStep) kind() string { return "symbolicate" }

func (s *SymbolicateStep) setDefaults(*Plan) {
	if s.API == "" {
		s.API = "v5"
	}
	if s.BatchSize == nil {
		s.BatchSize = ptr(1)
	}
	if s.Concurrency == nil {
		s.Concurrency = ptr(1)
	}
}

func (s *SymbolicateStep) validate(v *validator, path string) {
	validateAPI(v, path, s.API, *s.BatchSize)
	v.atLeast(path+".limit", s.Limit, 0)
	v.atLeast(path+".concurrency", *s.Concurrency, 1)
	v.nonNegative(path+".rate", s.Rate)
	v.atLeast(path+".max_concurrency", s.MaxConcurrency, 0)
	validateStages(v, path, s.Stages, s.Rate, s.Duration)
}

func (s *SymbolicateStep) needs() []need {
	if s.StacksDir == "" {
		return []need{{what: artifactStacks, field: ".stacks_dir", hint: "or set stacks_dir to a folder or glob of stack files"}}
	}
	return nil
}

func (s *SymbolicateStep) reads() []planFile { return []planFile{{"stacks_dir", s.StacksDir}} }

// symbolicateRetries is how often a request is retried after a 502, 503,
// 504, a transport error or an answer whose body broke off.
const symbolicateRetries = 4

// symbolicatePolicy is how symbolication requests are retried: 502, 503,
// 504, transport errors and bodies that break off.
func symbolicatePolicy(timeout time.Duration) retryPolicy {
	return retryPolicy{retries: symbolicateRetries, base: 200 * time.Millisecond, cap: 5 * time.Second,
		statuses: []int{502, 503, 504}, timeout: timeout}
}

// loadShuffledStacks loads the stack files of dir and shuffles them with
// seed.
func loadShuffledStacks(dir string, sanitize bool, seed uint64) ([]*stackFile, []SkippedFile, error) {
	files, skipped, err := loadStackFiles(dir, sanitize)
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	return files, skipped, nil
}

// maxSampleFiles bounds the file names kept per error message.
const maxSampleFiles = 5

// validateAPI checks a symbolication API and batch size at path.
func validateAPI(v *validator, path, api string, batchSize int) {
	if api != "v4" && api != "v5" {
		v.add(path+".api", "must be v4 or v5, got %q", api)
	}
	v.atLeast(path+".batch_size", batchSize, 1)
	if api == "v4" && batchSize > 1 {
		v.add(path+".batch_size", "v4 takes one job per request; use api: v5 to batch")
	}
}

// stacksDir is the folder of stack files a step reads: stacksDir as the
// plan gives it, or else the one an earlier make-stacks step wrote.
func stacksDir(rc *runContext, stacksDir string) (string, error) {
	if stacksDir != "" {
		return rc.plan.resolve(stacksDir), nil
	}
	if rc.state.stacksDir == "" {
		return "", errors.New("no stacks_dir, and no make-stacks step ran before this one")
	}
	return rc.state.stacksDir, nil
}

func (s *SymbolicateStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	dir, err := stacksDir(rc, s.StacksDir)
	if err != nil {
		return nil, err
	}
	files, skipped, err := loadShuffledStacks(dir, s.Sanitize, rc.stepSeed(s.Seed, rc.stepIndex))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		res, _ := newSymbolicateAgg(0, skipped, pace{}).result()
		return res, fmt.Errorf("%s: no usable stack files (%d skipped)", dir, len(skipped))
	}

	size := *s.BatchSize
	batches := (len(files) + size - 1) / size
	total := batches
	switch {
	case s.Limit > 0:
		total = s.Limit
	case s.Duration > 0 || len(s.Stages) > 0:
		total = -1
	}
	endpoint := rc.symHost + "/symbolicate/" + s.API
	tr := rc.transport(maxWorkersOf(pace{concurrency: *s.Concurrency, maxConcurrency: s.MaxConcurrency, rate: s.Rate, stages: s.Stages}))
	defer tr.CloseIdleConnections()
	pol := symbolicatePolicy(time.Duration(rc.plan.Timeout))
	p := pace{concurrency: *s.Concurrency, maxConcurrency: s.MaxConcurrency, rate: s.Rate, stages: s.Stages,
		duration: time.Duration(s.Duration), total: total, linger: time.Duration(rc.plan.Timeout)}
	agg := newSymbolicateAgg(len(files), skipped, p)
	for _, f := range files {
		agg.res.SanitizedFrames += f.sanitized
	}
	src := &symbolicateSource{files: files, size: size, partialLast: total == batches && s.Limit == 0,
		endpoint: endpoint, v5: s.API == "v5", rt: tr, pol: pol, userAgent: rc.plan.UserAgent}
	is, err := drive(ctx, rc, p, src, agg)
	agg.load(is)
	res, ferr := agg.result()
	if err == nil {
		err = ferr
	}
	return res, err
}

// symbolicateSource makes the symbolicate jobs: request r takes the next
// batch_size files, cycling.
type symbolicateSource struct {
	files []*stackFile
	size  int
	// partialLast: every file is sent once (no limit or duration), so the
	// last batch may be partial.
	partialLast bool
	endpoint    string
	v5          bool
	rt          http.RoundTripper
	pol         retryPolicy
	userAgent   string
}

func (src *symbolicateSource) job(ctx context.Context, r int, s slot) symOutcome {
	n := src.size
	if batches := (len(src.files) + n - 1) / n; src.partialLast && r == batches-1 {
		n = len(src.files) - r*src.size
	}
	batch := make([]*stackFile, n)
	for k := range batch {
		batch[k] = src.files[(r*src.size+k)%len(src.files)]
	}
	return symbolicate(ctx, src.rt, src.pol, src.endpoint, src.userAgent, src.v5, batch, s)
}

// stackFile is one loaded v4 body.
type stackFile struct {
	name      string
	raw       []byte          // the file as it is, sent unchanged by v4
	memoryMap json.RawMessage // as in the file
	stacks    json.RawMessage // sanitized if asked
	modules   []string        // memoryMap as "name/id"
	frames    [][]int64       // module index of every frame, per stack
	sanitized int
}

// loadStackFiles reads a folder's *.json files (or a glob). A file that is
// not a v4 body, or a directory, is skipped and named in skipped, not
// fatal.
func loadStackFiles(dir string, sanitize bool) ([]*stackFile, []SkippedFile, error) {
	pattern := dir
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		pattern = filepath.Join(dir, "*.json")
	}
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, nil, fmt.Errorf("stacks_dir %q: %w", dir, err)
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil && !strings.ContainsAny(dir, "*?[") {
			return nil, nil, err
		}
	}
	slices.Sort(paths)
	var files []*stackFile
	var skipped []SkippedFile
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			skipped = append(skipped, SkippedFile{File: p, Error: "a directory, not a stack file"})
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		f, err := parseStackFile(filepath.Base(p), raw, sanitize)
		if err != nil {
			skipped = append(skipped, SkippedFile{File: p, Error: err.Error()})
			continue
		}
		files = append(files, f)
	}
	return files, skipped, nil
}

func parseStackFile(name string, raw []byte, sanitize bool) (*stackFile, error) {
	var body struct {
		MemoryMap json.RawMessage `json:"memoryMap"`
		Stacks    json.RawMessage `json:"stacks"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	f := &stackFile{name: name, raw: raw, memoryMap: body.MemoryMap, stacks: body.Stacks}
	var mm [][]any
	if err := json.Unmarshal(body.MemoryMap, &mm); err != nil || body.MemoryMap == nil {
		return nil, errors.New(`"memoryMap" is not a list of [name, id] pairs`)
	}
	for _, e := range mm {
		if len(e) != 2 {
			return nil, errors.New(`"memoryMap" is not a list of [name, id] pairs`)
		}
		f.modules = append(f.modules, fmt.Sprint(e[0])+"/"+fmt.Sprint(e[1]))
	}
	dec := json.NewDecoder(bytes.NewReader(body.Stacks))
	dec.UseNumber()
	var stacks [][][]any
	if err := dec.Decode(&stacks); err != nil || body.Stacks == nil {
		return nil, errors.New(`"stacks" is not a list of lists of [module, offset] frames`)
	}
	changed := false
	for _, st := range stacks {
		var mods []int64
		for _, fr := range st {
			if len(fr) != 2 {
				return nil, errors.New("a frame is not a [module, offset] pair")
			}
			fixed := false
			for k, v := range fr {
				n, ok := v.(json.Number)
				if !ok {
					return nil, fmt.Errorf("frame value %v is not a number", v)
				}
				if sanitize && !isInteger(n) {
					fr[k], fixed = integerOf(n), true
				}
			}
			if fixed {
				f.sanitized++
				changed = true
			}
			m, _ := strconv.ParseInt(fr[0].(json.Number).String(), 10, 64)
			mods = append(mods, m)
		}
		f.frames = append(f.frames, mods)
	}
	if changed {
		f.stacks, _ = json.Marshal(stacks) // json.Number values marshal as written
		f.raw = nil
	}
	return f, nil
}

func isInteger(n json.Number) bool { return !strings.ContainsAny(n.String(), ".eE") }

// integerOf turns a float the real server rejects into the integer it
// stands for: truncated when it fits in 64 bits, else the largest 64-bit
// address (1.8446744073709552e+19 is 2^64, one past it).
func integerOf(n json.Number) json.Number {
	f, err := n.Float64()
	switch {
	case err != nil || math.IsNaN(f):
		return "0"
	case f >= math.MaxUint64:
		return json.Number(strconv.FormatUint(math.MaxUint64, 10))
	case f >= math.MaxInt64:
		return json.Number(strconv.FormatUint(uint64(f), 10))
	case f <= math.MinInt64:
		return json.Number(strconv.FormatInt(math.MinInt64, 10))
	}
	return json.Number(strconv.FormatInt(int64(f), 10))
}

// requestBody builds a v4 body (one file) or a v5 body (a batch).
func requestBody(v5 bool, batch []*stackFile) []byte {
	var b bytes.Buffer
	if !v5 {
		if batch[0].raw != nil {
			return batch[0].raw
		}
		fmt.Fprintf(&b, `{"memoryMap":%s,"stacks":%s,"version":4}`, batch[0].memoryMap, batch[0].stacks)
		return b.Bytes()
	}
	b.WriteString(`{"jobs":[`)
	for i, f := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"memoryMap":%s,"stacks":%s}`, f.memoryMap, f.stacks)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// symOutcome is what one request did.
type symOutcome struct {
	exchange
	jobs    int
	frames  int
	files   []string
	message string // the server's error text, for statuses other than 200
	invalid string // why a 200 answer does not fit the request
	debugs  []map[string]float64
	// knownFrames are frames in modules the server found; symbolicated
	// those of them that came back with a function name.
	knownFrames, symbolicated int
}

func symbolicate(ctx context.Context, rt http.RoundTripper, pol retryPolicy, endpoint, userAgent string, v5 bool, batch []*stackFile, s slot) symOutcome {
	body := requestBody(v5, batch)
	o := symOutcome{exchange: start(s), jobs: len(batch)}
	for _, f := range batch {
		o.files = append(o.files, f.name)
		for _, st := range f.frames {
			o.frames += len(st)
		}
	}
	var buf bytes.Buffer
	resp, attempts, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Debug", "true")
		req.Header.Set("User-Agent", userAgent)
		return req, nil
	}, func(resp *http.Response) error {
		buf.Reset()
		buf.Grow(int(max(resp.ContentLength, 0)) + bytes.MinRead)
		_, err := buf.ReadFrom(resp.Body)
		return err
	})
	raw := buf.Bytes()
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	o.end(status, attempts, err)
	if err != nil {
		return o
	}
	if o.Status != http.StatusOK {
		o.message = errorText(raw)
		return o
	}
	if v5 {
		o.checkV5(raw, batch)
	} else {
		o.checkV4(raw, batch[0])
	}
	return o
}

// errorText is the message of an error answer: Tecken's {"error": …},
// Eliot's {"title": …}, the <title> of an HTML page (nginx's 413 or
// 502), or the start of any other body.
func errorText(raw []byte) string {
	var e struct{ Error, Title string }
	if json.Unmarshal(raw, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Title != "" {
			return e.Title
		}
	}
	if m := htmlTitle.FindSubmatch(raw); m != nil {
		return strings.TrimSpace(string(m[1]))
	}
	text := strings.Join(strings.Fields(string(raw)), " ")
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return text
}

var htmlTitle = regexp.MustCompile(`(?is)<title>(.*?)</title>`)

// v5Result is what checkV5 reads of one result: whether each frame has a
// function, found_modules, and the raw debug object.
type v5Result struct {
	named [][]bool
	found map[string]string // "true", "false" or "null"
	debug []byte
}

// scanV5 reads a v5 answer with jsonScanner: only what validation needs.
func scanV5(raw []byte) (results []v5Result, topDebug []byte, err error) {
	s := &jsonScanner{b: raw}
	frame := func(named *bool) error {
		return s.object(func(key []byte) error {
			if string(key) != "function" {
				return s.skip()
			}
			v, err := s.raw()
			*named = string(v) != "null"
			return err
		})
	}
	result := func(int) error {
		var r v5Result
		err := s.object(func(key []byte) error {
			switch string(key) {
			case "stacks":
				return s.array(func(int) error {
					var frames []bool
					err := s.array(func(int) error {
						var named bool
						err := frame(&named)
						frames = append(frames, named)
						return err
					})
					r.named = append(r.named, frames)
					return err
				})
			case "found_modules":
				r.found = map[string]string{}
				return s.object(func(module []byte) error {
					v, err := s.literal()
					r.found[string(module)] = v
					return err
				})
			case "debug":
				v, err := s.raw()
				r.debug = v
				return err
			}
			return s.skip()
		})
		results = append(results, r)
		return err
	}
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "results":
			return s.array(result)
		case "debug":
			v, err := s.raw()
			topDebug = v
			return err
		}
		return s.skip()
	})
	if err == nil {
		err = s.end()
	}
	return results, topDebug, err
}

func (o *symOutcome) addDebug(raw []byte) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	d, err := flattenDebugJSON(raw)
	if err == nil {
		o.debugs = append(o.debugs, d)
	}
	return err
}

// shapeMismatch says how an answer's stacks differ in shape from the
// ones sent, or "" when they match.
func shapeMismatch[T any](f *stackFile, stacks [][]T) string {
	if len(stacks) != len(f.frames) {
		return fmt.Sprintf("%s: %d stacks for %d sent", f.name, len(stacks), len(f.frames))
	}
	for s, st := range stacks {
		if len(st) != len(f.frames[s]) {
			return fmt.Sprintf("%s: stack %d has %d frames for %d sent", f.name, s, len(st), len(f.frames[s]))
		}
	}
	return ""
}

// flattenDebugJSON turns a debug object into dotted keys and numbers,
// leaving out the per-module maps (stacks_per_module, size_per_module, …).
func flattenDebugJSON(raw []byte) (map[string]float64, error) {
	out := map[string]float64{}
	s := &jsonScanner{b: raw}
	var walk func(prefix string) error
	walk = func(prefix string) error {
		return s.object(func(k []byte) error {
			if bytes.HasSuffix(k, []byte("_per_module")) {
				return s.skip()
			}
			key := string(k)
			if prefix != "" {
				key = prefix + "." + key
			}
			switch c := s.peek(); {
			case c == '{':
				return walk(key)
			case c == '-' || ('0' <= c && c <= '9'):
				v, err := s.number()
				out[key] = v
				return err
			}
			return s.skip()
		})
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return out, s.end()
}

func (o *symOutcome) checkV5(raw []byte, batch []*stackFile) {
	results, topDebug, err := scanV5(raw)
	if err == nil {
		err = o.addDebug(topDebug)
	}
	if err != nil {
		o.invalid = "the answer is not v5 JSON: " + err.Error()
		return
	}
	if len(results) != len(batch) {
		o.invalid = fmt.Sprintf("%d results for %d jobs", len(results), len(batch))
		return
	}
	var known, symbolicated int
	for i, r := range results {
		f := batch[i]
		if err := o.addDebug(r.debug); err != nil {
			o.invalid = fmt.Sprintf("%s: debug is not an object: %v", f.name, err)
			return
		}
		if o.invalid = shapeMismatch(f, r.named); o.invalid != "" {
			return
		}
		want := slices.Compact(slices.Sorted(slices.Values(f.modules)))
		got := slices.Sorted(maps.Keys(r.found))
		if !slices.Equal(got, want) {
			o.invalid = fmt.Sprintf("%s: found_modules keys %v, memoryMap has %v", f.name, got, want)
			return
		}
		for s, st := range r.named {
			for j, named := range st {
				m := f.frames[s][j]
				if m < 0 || m >= int64(len(f.modules)) || r.found[f.modules[m]] != "true" {
					continue
				}
				known++
				if named {
					symbolicated++
				}
			}
		}
	}
	// Only an answer that fits its request as a whole is counted.
	o.knownFrames, o.symbolicated = known, symbolicated
}

func (o *symOutcome) checkV4(raw []byte, f *stackFile) {
	var resp struct {
		SymbolicatedStacks [][]string      `json:"symbolicatedStacks"`
		KnownModules       []*bool         `json:"knownModules"`
		Debug              json.RawMessage `json:"debug"`
	}
	err := json.Unmarshal(raw, &resp)
	if err == nil {
		err = o.addDebug(resp.Debug)
	}
	if err != nil {
		o.invalid = "the answer is not v4 JSON: " + err.Error()
		return
	}
	if len(resp.KnownModules) != len(f.modules) {
		o.invalid = fmt.Sprintf("%s: %d knownModules for %d modules", f.name, len(resp.KnownModules), len(f.modules))
		return
	}
	if o.invalid = shapeMismatch(f, resp.SymbolicatedStacks); o.invalid != "" {
		return
	}
	for s, st := range resp.SymbolicatedStacks {
		for j, label := range st {
			m := f.frames[s][j]
			if m < 0 || m >= int64(len(f.modules)) || resp.KnownModules[m] == nil || !*resp.KnownModules[m] {
				continue
			}
			o.knownFrames++
			if !strings.HasPrefix(label, "0x") && !strings.HasPrefix(label, "-0x") {
				o.symbolicated++
			}
		}
	}
}
