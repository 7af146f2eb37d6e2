package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// failureTTL is how long Tecken remembers that a symbol file is missing.
const failureTTL = 60 * time.Second

// frame is one validated [module index, module offset] pair. Offsets up to
// 2^64-1 are valid Python ints; big marks one above math.MaxInt64.
type frame struct {
	module int64
	offset int64
	big    uint64
}

func (f frame) hex() string {
	switch {
	case f.big != 0:
		return "0x" + strconv.FormatUint(f.big, 16)
	case f.offset < 0:
		return "-0x" + strconv.FormatInt(-f.offset, 16)
	}
	return "0x" + strconv.FormatInt(f.offset, 16)
}

// symError is a symbolication answer other than 200.
type symError struct {
	status int
	msg    string
}

func badRequest(format string, args ...any) *symError {
	return &symError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

var errInternal = &symError{http.StatusInternalServerError, "Internal Server Error"}

// serveSymbolicate implements POST /symbolicate/v4 and /symbolicate/v5.
func (s *Server) serveSymbolicate(w http.ResponseWriter, r *http.Request) {
	v5 := r.URL.Path == "/symbolicate/v5"
	if !v5 && r.URL.Path != "/symbolicate/v4" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": r.URL.Path})
		return
	}
	methods := "POST"
	if v5 {
		methods = "OPTIONS,POST"
	}
	setCORS(w.Header(), methods)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPost:
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "Must use HTTP POST"})
		return
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		return // the client went away
	}
	var resp any
	var serr *symError
	if s.opts.Eliot {
		resp, serr = s.symbolicateEliot(body.Bytes(), v5, r.Header.Get("Debug") != "")
	} else {
		resp, serr = s.symbolicate2019(body.Bytes(), v5, debugOn(r))
	}
	if serr != nil {
		key := "error"
		if s.opts.Eliot && serr.status == http.StatusBadRequest {
			key = "title"
		}
		writeJSON(w, serr.status, map[string]string{key: serr.msg})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func decodeObject(raw []byte) (map[string]any, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false, fmt.Errorf("invalid JSON")
	}
	m, ok := v.(map[string]any)
	return m, ok, nil
}

// symbolicate2019 answers like tecken/symbolicate/views.py at 7ae52d0c.
func (s *Server) symbolicate2019(raw []byte, v5, debug bool) (any, *symError) {
	body, isDict, err := decodeObject(raw)
	if err != nil {
		return nil, badRequest("Invalid JSON passed in")
	}
	if !isDict {
		return nil, badRequest("Not a dict")
	}
	loaded := map[string]*breakpad.Symbols{} // symbols downloaded during this request
	if !v5 {
		rawStacks, ok := body["stacks"]
		if !ok {
			return nil, badRequest(`Missing key JSON "'stacks'"`)
		}
		stacks, serr := validateStacks(rawStacks)
		if serr != nil {
			return nil, serr
		}
		rawMap, ok := body["memoryMap"]
		if !ok {
			return nil, badRequest(`Missing key JSON "'memoryMap'"`)
		}
		if n, ok := body["version"].(json.Number); !ok || n.String() != "4" {
			return nil, badRequest("Expect version==4")
		}
		modules, ok := looseModules(rawMap)
		if !ok {
			return nil, errInternal
		}
		res, serr := s.symbolicateJob(modules, stacks, loaded)
		if serr != nil {
			return nil, serr
		}
		out := map[string]any{"symbolicatedStacks": res.v4Stacks(), "knownModules": res.known}
		if debug {
			out["debug"] = res.debug
		}
		return out, nil
	}

	var jobs []any
	if _, hasStacks := body["stacks"]; hasStacks && body["memoryMap"] != nil {
		jobs = []any{body}
	} else {
		rawJobs, ok := body["jobs"]
		if !ok {
			return nil, badRequest("Missing key in JSON ('jobs')")
		}
		jobs, ok = rawJobs.([]any)
		switch {
		case ok && len(jobs) > 0:
		case ok || !truthy(rawJobs):
			return nil, badRequest("Jobs list empty")
		default:
			return nil, errInternal // iterating a non-list
		}
	}
	for i, j := range jobs {
		job, ok := j.(map[string]any)
		if !ok {
			return nil, badRequest("Wrong type of value (%s)", pythonIndexError(j))
		}
		for _, key := range []string{"memoryMap", "stacks"} {
			v, ok := job[key]
			if !ok {
				return nil, badRequest("Missing key in JSON ('%s')", key)
			}
			if _, ok := v.([]any); !ok {
				return nil, badRequest("Wrong type of value (Stack number %d is '%s' not a list)", i+1, key)
			}
		}
	}
	results := make([]map[string]any, 0, len(jobs))
	for _, j := range jobs {
		job := j.(map[string]any)
		stacks, serr := validateStacks(job["stacks"])
		if serr != nil {
			return nil, serr
		}
		modules, serr := validateMemoryMap(job["memoryMap"])
		if serr != nil {
			return nil, serr
		}
		res, serr := s.symbolicateJob(modules, stacks, loaded)
		if serr != nil {
			return nil, serr
		}
		out := map[string]any{"stacks": res.v5Stacks(false), "found_modules": res.foundModules()}
		if debug {
			out["debug"] = res.debug
		}
		results = append(results, out)
	}
	return map[string]any{"results": results}, nil
}

func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case json.Number:
		f, _ := v.Float64()
		return f != 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// pythonIndexError is the TypeError text of job["memoryMap"] on a job that
// is not a dict.
func pythonIndexError(v any) string {
	switch v := v.(type) {
	case []any:
		return "list indices must be integers or slices, not str"
	case string:
		return "string indices must be integers"
	case nil:
		return "'NoneType' object is not subscriptable"
	case bool:
		return "'bool' object is not subscriptable"
	case json.Number:
		if strings.ContainsAny(v.String(), ".eE") {
			return "'float' object is not subscriptable"
		}
		return "'int' object is not subscriptable"
	}
	return "unsupported job"
}

// validateStacks checks a stacks list with the 2019 messages.
func validateStacks(v any) ([][]frame, *symError) {
	list, ok := v.([]any)
	if !ok {
		return nil, badRequest("Must be a list")
	}
	stacks := make([][]frame, len(list))
	for i, st := range list {
		frames, ok := st.([]any)
		if !ok {
			return nil, badRequest("Must be a list of lists")
		}
		for _, fr := range frames {
			pair, ok := fr.([]any)
			if !ok {
				return nil, badRequest("Must be a list of lists of lists")
			}
			if len(pair) != 2 {
				return nil, badRequest("List of lists of frames must be 2 numbers")
			}
			f, ok := parseFrame(pair[0], pair[1])
			if !ok {
				return nil, badRequest("Frame must be two integers")
			}
			stacks[i] = append(stacks[i], f)
		}
	}
	return stacks, nil
}

// pyInt reads a JSON value as Python's isinstance(x, int) sees it: an
// integer literal or a bool.
func pyInt(v any) (n int64, big uint64, ok bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return 1, 0, true
		}
		return 0, 0, true
	case json.Number:
		s := v.String()
		if strings.ContainsAny(s, ".eE") {
			return 0, 0, false
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, 0, true
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return math.MaxInt64, u, true
		}
		return math.MaxInt64, math.MaxUint64, true // larger still: past every symbol
	}
	return 0, 0, false
}

func parseFrame(module, offset any) (frame, bool) {
	m, mbig, ok1 := pyInt(module)
	o, obig, ok2 := pyInt(offset)
	if !ok1 || !ok2 {
		return frame{}, false
	}
	if mbig != 0 {
		m = math.MaxInt64
	}
	return frame{module: m, offset: o, big: obig}, true
}

type moduleRef struct{ name, id string }

// looseModules reads a v4 memoryMap, which 2019 did not validate: an
// entry that is not [name, id] strings fails later, as a 500.
func looseModules(v any) ([]moduleRef, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	mods := make([]moduleRef, len(list))
	for i, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, false
		}
		name, ok1 := pair[0].(string)
		id, ok2 := pair[1].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		mods[i] = moduleRef{name, id}
	}
	return mods, true
}

// validateMemoryMap checks a v5 job's memoryMap with the 2019 messages.
func validateMemoryMap(v any) ([]moduleRef, *symError) {
	list, ok := v.([]any)
	if !ok {
		return nil, badRequest("Must be a list")
	}
	mods := make([]moduleRef, len(list))
	for i, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, badRequest("Must be a list of lists of size 2")
		}
		name, _ := pair[0].(string)
		id, _ := pair[1].(string)
		switch {
		case len(name) > 1024:
			return nil, badRequest("module name too long")
		case id == "":
			return nil, badRequest("debugID empty or missing")
		case strings.ContainsRune(name, 0):
			return nil, badRequest("module_name contains null-byte")
		}
		if _, ok := pair[0].(string); !ok {
			return nil, errInternal
		}
		mods[i] = moduleRef{name, id}
	}
	return mods, nil
}

// jobResult is one symbolicated job.
type jobResult struct {
	modules []moduleRef
	stacks  [][]frame
	syms    []*breakpad.Symbols // per module; nil when not found or not referenced
	known   []any               // true, false or nil per module
	debug   map[string]any
	codeAs  bool // Eliot: found frames name the code file
}

func (res *jobResult) v4Stacks() [][]string {
	out := make([][]string, len(res.stacks))
	for i, st := range res.stacks {
		out[i] = make([]string, len(st))
		for j, f := range st {
			fr := res.frameJSON(j, f)
			label := f.hex()
			if fn, ok := fr["function"]; ok {
				label = fn.(string)
			}
			out[i][j] = label + " (in " + fr["module"].(string) + ")"
		}
	}
	return out
}

func (res *jobResult) v5Stacks(codeAs bool) [][]map[string]any {
	res.codeAs = codeAs
	out := make([][]map[string]any, len(res.stacks))
	for i, st := range res.stacks {
		out[i] = make([]map[string]any, len(st))
		for j, f := range st {
			out[i][j] = res.frameJSON(j, f)
		}
	}
	return out
}

func (res *jobResult) frameJSON(index int, f frame) map[string]any {
	fr := map[string]any{"frame": index, "module_offset": f.hex(), "module": "<unknown>"}
	if f.module < 0 {
		return fr
	}
	fr["module"] = res.modules[f.module].name
	syms := res.syms[f.module]
	if syms == nil {
		return fr
	}
	offset := f.offset
	sym, fnOff, ok := syms.Lookup(offset)
	if !ok {
		return fr
	}
	if f.big != 0 {
		fnOff = math.MaxInt64 // the offset is past every symbol
	}
	fr["function"] = sym.Name
	fr["function_offset"] = frame{offset: fnOff}.hex()
	if res.codeAs && syms.CodeFile != "" {
		fr["module"] = syms.CodeFile
	}
	return fr
}

func (res *jobResult) foundModules() map[string]any {
	out := make(map[string]any, len(res.modules))
	for i, m := range res.modules {
		out[m.name+"/"+m.id] = res.known[i]
	}
	return out
}

// symbolicateJob resolves a job's frames and builds its 2019 debug object.
// loaded holds the symbols downloaded earlier in the same request, which
// need no cache lookup (one symbolicator serves all of a request's jobs).
func (s *Server) symbolicateJob(modules []moduleRef, stacks [][]frame, loaded map[string]*breakpad.Symbols) (*jobResult, *symError) {
	start := time.Now()
	res := &jobResult{modules: modules, stacks: stacks, syms: make([]*breakpad.Symbols, len(modules)), known: make([]any, len(modules))}
	var referenced []int
	seen := map[int64]bool{}
	frames, real := 0, 0
	for _, st := range stacks {
		for _, f := range st {
			frames++
			if f.module < 0 {
				continue
			}
			real++
			if f.module >= int64(len(modules)) {
				return nil, errInternal // IndexError in 2019
			}
			if !seen[f.module] {
				seen[f.module] = true
				referenced = append(referenced, int(f.module))
			}
		}
	}
	perModule := map[string]int{}
	var cacheCount int
	var cacheTime, dlTime, dlSize float64
	dlCount := 0
	var pending []int // referenced modules not loaded earlier in this request
	for _, i := range referenced {
		key := modules[i].name + "/" + modules[i].id
		perModule[key] = 1
		if syms, ok := loaded[key]; ok {
			res.syms[i], res.known[i] = syms, syms != nil
			continue
		}
		pending = append(pending, i)
	}
	if len(pending) > 0 {
		t0 := time.Now()
		cacheCount++ // one batch get of the cached symbol maps
		var cold []int
		s.mu.Lock()
		for _, i := range pending {
			if syms, ok := s.symCache[symKey(modules[i])]; ok {
				cacheCount += 2 // a length check and a fetch of the map
				res.syms[i], res.known[i] = syms, true
			} else {
				cold = append(cold, i)
			}
		}
		s.mu.Unlock()
		var toFetch []int
		if len(cold) > 0 {
			cacheCount++ // one batch get of the remembered failures
			s.mu.Lock()
			for _, i := range cold {
				if until, failed := s.symFailed[symKey(modules[i])]; failed && time.Now().Before(until) {
					res.known[i] = false
				} else {
					toFetch = append(toFetch, i)
				}
			}
			s.mu.Unlock()
		}
		cacheTime = time.Since(t0).Seconds()
		for _, i := range toFetch {
			t1 := time.Now()
			syms := s.fetchSymbols(modules[i])
			key := modules[i].name + "/" + modules[i].id
			if syms == nil {
				res.known[i] = false
				loaded[key] = nil
				continue
			}
			dlCount++
			dlSize += float64(syms.Chars)
			if bw := s.opts.SymbolBandwidth; bw > 0 {
				time.Sleep(time.Duration(float64(syms.Chars) / float64(bw) * float64(time.Second)))
			}
			dlTime += time.Since(t1).Seconds()
			res.syms[i], res.known[i] = syms, true
			loaded[key] = syms
		}
	}
	res.debug = map[string]any{
		"time":          time.Since(start).Seconds(),
		"stacks":        map[string]any{"count": frames, "real": real},
		"modules":       map[string]any{"count": len(referenced), "stacks_per_module": perModule},
		"cache_lookups": map[string]any{"count": cacheCount, "time": cacheTime},
		"downloads":     map[string]any{"count": dlCount, "time": dlTime, "size": dlSize},
	}
	return res, nil
}

func symKey(m moduleRef) string {
	return m.name + "/" + strings.ToUpper(m.id) + "/" + breakpad.SymFile(m.name)
}

// fetchSymbols reads and parses a module's symbol file from storage (then
// try storage), caching the result; nil means missing or empty, which is
// remembered for failureTTL.
func (s *Server) fetchSymbols(m moduleRef) *breakpad.Symbols {
	key := symKey(m)
	s.mu.Lock()
	data, ok := s.store["v1/"+key]
	if !ok {
		data, ok = s.store["try/v1/"+key]
	}
	s.mu.Unlock()
	var syms *breakpad.Symbols
	if ok && len(data) > 0 {
		syms, _ = breakpad.Parse(bytes.NewReader(data)) // a scanner over memory only fails on huge lines
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if syms == nil {
		s.symFailed[key] = time.Now().Add(failureTTL)
		return nil
	}
	s.symCache[key] = syms
	return syms
}

// forgetSymbols drops cached symbols and failures of a storage key, as an
// upload does.
func (s *Server) forgetSymbols(key string) {
	delete(s.symCache, key)
	delete(s.symFailed, key)
}
