package emulator

import (
	"regexp"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// maxEliotJobs is Eliot's cap on jobs per request.
const maxEliotJobs = 10

var eliotDebugFile = regexp.MustCompile(`^[A-Za-z0-9_.+{}@<> -]*$`)

// symbolicateEliot answers like the later symbolication service (Eliot,
// 2021-2023): stricter validation, errors as {"title": …}, at most 10
// jobs, one top-level debug object, and found frames named by their code
// file.
func (s *Server) symbolicateEliot(raw []byte, v5, debug bool) (any, *symError) {
	start := time.Now()
	body, isDict, err := decodeObject(raw)
	if err != nil || !isDict {
		return nil, badRequest("Payload is not valid JSON")
	}
	jobs := []any{body}
	if rawJobs, ok := body["jobs"]; v5 && ok {
		if jobs, ok = rawJobs.([]any); !ok {
			return nil, badRequest("job 0 is invalid")
		}
	}
	if len(jobs) > maxEliotJobs {
		return nil, badRequest("please limit number of jobs in a single request to <= %d", maxEliotJobs)
	}
	type parsed struct {
		modules []moduleRef
		stacks  [][]frame
	}
	var all []parsed
	for i, j := range jobs {
		job, ok := j.(map[string]any)
		if !ok {
			return nil, badRequest("job %d is invalid", i)
		}
		rawStacks, _ := job["stacks"].([]any)
		if len(rawStacks) == 0 {
			return nil, badRequest("job %d is invalid: no stacks specified", i)
		}
		rawMap, ok := job["memoryMap"].([]any)
		if !ok {
			return nil, badRequest("job %d is invalid: no memoryMap specified", i)
		}
		var p parsed
		for m, e := range rawMap {
			pair, _ := e.([]any)
			var name, id string
			if len(pair) == 2 {
				name, _ = pair[0].(string)
				id, _ = pair[1].(string)
			}
			if len(pair) != 2 || !eliotDebugFile.MatchString(name) {
				return nil, badRequest("job %d has invalid modules: module index %d has an invalid debug_filename", i, m)
			}
			if id != "" && !isHex(id) {
				return nil, badRequest("job %d has invalid modules: module index %d has an invalid debug_id", i, m)
			}
			p.modules = append(p.modules, moduleRef{name, id})
		}
		for si, st := range rawStacks {
			frames, _ := st.([]any)
			var out []frame
			for fi, fr := range frames {
				pair, _ := fr.([]any)
				if len(pair) != 2 {
					return nil, badRequest("job %d has invalid stacks: stack %d frame %d is invalid", i, si, fi)
				}
				idx, ibig, ok := pyInt(pair[0])
				if !ok || ibig != 0 || idx < -1 || idx >= int64(len(p.modules)) {
					return nil, badRequest("job %d has invalid stacks: stack %d frame %d has a module_index that isn't in modules", i, si, fi)
				}
				off, obig, ok := pyInt(pair[1])
				if !ok || off < -1 {
					return nil, badRequest("job %d has invalid stacks: stack %d frame %d has an invalid module_offset", i, si, fi)
				}
				out = append(out, frame{module: idx, offset: off, big: obig})
			}
			p.stacks = append(p.stacks, out)
		}
		all = append(all, p)
	}
	loaded := map[string]*breakpad.Symbols{}
	var results []map[string]any
	var v4 map[string]any
	total := map[string]float64{}
	perModule := map[string]int{}
	sizePerModule := map[string]int{}
	for _, p := range all {
		res, serr := s.symbolicateJob(p.modules, p.stacks, loaded)
		if serr != nil {
			return nil, serr
		}
		cl := res.debug["cache_lookups"].(map[string]any)
		dl := res.debug["downloads"].(map[string]any)
		total["cache_lookups.count"] += float64(cl["count"].(int))
		total["cache_lookups.time"] += cl["time"].(float64)
		total["downloads.count"] += float64(dl["count"].(int))
		total["downloads.time"] += dl["time"].(float64)
		total["downloads.size"] += dl["size"].(float64)
		for i, k := range res.known {
			if k != nil {
				total["modules.count"]++
				key := p.modules[i].name + "/" + p.modules[i].id
				perModule[key]++
				if res.syms[i] != nil {
					sizePerModule[key] = res.syms[i].Chars
				}
			}
		}
		if !v5 {
			v4 = map[string]any{"symbolicatedStacks": res.v4Stacks(), "knownModules": res.known}
			continue
		}
		results = append(results, map[string]any{"stacks": res.v5Stacks(true), "found_modules": res.foundModules()})
	}
	if !v5 {
		return v4, nil // Eliot's v4 never returns debug information
	}
	out := map[string]any{"results": results}
	if debug {
		cache := map[string]any{"count": int(total["cache_lookups.count"]), "time": total["cache_lookups.time"]}
		if total["cache_lookups.count"] > 0 {
			cache["hits"] = int(total["cache_lookups.count"])
		}
		out["debug"] = map[string]any{
			"time":          time.Since(start).Seconds(),
			"cache_lookups": cache,
			"downloads": map[string]any{"count": int(total["downloads.count"]), "size": int(total["downloads.size"]),
				"time": total["downloads.time"], "size_per_module": sizePerModule, "time_per_module": map[string]float64{}},
			"parse_sym": map[string]any{"time": 0.0, "time_per_module": map[string]float64{}},
			"modules":   map[string]any{"count": int(total["modules.count"]), "stacks_per_module": perModule},
		}
	}
	return out, nil
}
