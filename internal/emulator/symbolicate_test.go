package emulator

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

func symbolServer(t *testing.T, opts Options) (*httptest.Server, []breakpad.Module) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	mods := []breakpad.Module{breakpad.Synthesize(r, "xul", "windows", 30), breakpad.Synthesize(r, "ntdll", "windows", 30)}
	s := New(opts)
	for _, m := range mods {
		s.Put(m.Key(), m.Bytes())
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, mods
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Debug", "true")
	return doJSON(t, req)
}

func memoryMap(mods []breakpad.Module) string {
	var parts []string
	for _, m := range mods {
		parts = append(parts, fmt.Sprintf("[%q, %q]", m.DebugFile, m.DebugID))
	}
	return "[" + strings.Join(parts, ", ") + ", [\"missing.pdb\", \"0123456789ABCDEF0123456789ABCDEF1\"]]"
}

func TestSymbolicateV5(t *testing.T) {
	ts, mods := symbolServer(t, Options{})
	xul, ntdll := mods[0], mods[1]
	f0 := xul.Symbols[3]
	f1 := ntdll.Symbols[7]
	job := fmt.Sprintf(`{"memoryMap": %s, "stacks": [[[0, %d], [1, %d], [-1, 4294967295], [2, 100], [0, 5]]]}`,
		memoryMap(mods), f0.Address+10, f1.Address)
	status, out := post(t, ts.URL+"/symbolicate/v5", `{"jobs": [`+job+`, `+job+`]}`)
	if status != 200 {
		t.Fatalf("status %d: %v", status, out)
	}
	results := out["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("%d results", len(results))
	}
	first := results[0].(map[string]any)
	frames := first["stacks"].([]any)[0].([]any)
	want := []map[string]any{
		{"frame": 0.0, "module": "xul.pdb", "module_offset": fmt.Sprintf("0x%x", f0.Address+10), "function": f0.Name, "function_offset": "0xa"},
		{"frame": 1.0, "module": "ntdll.pdb", "module_offset": fmt.Sprintf("0x%x", f1.Address), "function": f1.Name, "function_offset": "0x0"},
		{"frame": 2.0, "module": "<unknown>", "module_offset": "0xffffffff"},
		{"frame": 3.0, "module": "missing.pdb", "module_offset": "0x64"},
		// Below the first symbol: the last symbol, with a negative offset.
		{"frame": 4.0, "module": "xul.pdb", "module_offset": "0x5", "function": xul.Symbols[len(xul.Symbols)-1].Name,
			"function_offset": fmt.Sprintf("-0x%x", xul.Symbols[len(xul.Symbols)-1].Address-5)},
	}
	for i, w := range want {
		got := frames[i].(map[string]any)
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("frame %d = %v, want %v", i, got, w)
		}
	}
	found := first["found_modules"].(map[string]any)
	if found[xul.DebugFile+"/"+xul.DebugID] != true || found["missing.pdb/0123456789ABCDEF0123456789ABCDEF1"] != false || len(found) != 3 {
		t.Errorf("found_modules %v", found)
	}
	dbg := first["debug"].(map[string]any)
	// Cold: one batch get, one failure check; three downloads tried, two found.
	if got := fmt.Sprint(dbg["cache_lookups"].(map[string]any)["count"], dbg["downloads"].(map[string]any)["count"],
		dbg["stacks"], dbg["modules"].(map[string]any)["count"]); got != "2 2 map[count:5 real:4] 3" {
		t.Errorf("first job debug: %s (%v)", got, dbg)
	}
	size := dbg["downloads"].(map[string]any)["size"].(float64)
	if want := float64(len(strings.ReplaceAll(string(xul.Bytes())+string(ntdll.Bytes()), "\n", ""))); size != want {
		t.Errorf("downloads.size %v, want %v", size, want)
	}
	// The second job reuses what the first downloaded: no lookups at all.
	dbg2 := results[1].(map[string]any)["debug"].(map[string]any)
	if c := dbg2["cache_lookups"].(map[string]any)["count"]; c != 0.0 {
		t.Errorf("second job cache lookups %v, want 0", c)
	}
	// A new request finds both in the cache, and the failure remembered.
	_, out = post(t, ts.URL+"/symbolicate/v5", `{"jobs": [`+job+`]}`)
	dbg3 := out["results"].([]any)[0].(map[string]any)["debug"].(map[string]any)
	if got := fmt.Sprint(dbg3["cache_lookups"].(map[string]any)["count"], dbg3["downloads"].(map[string]any)["count"]); got != "6 0" {
		t.Errorf("warm request: cache lookups and downloads %s, want 6 0 (1 + 2×2 + 1)", got)
	}
}

func TestSymbolicateV4(t *testing.T) {
	ts, mods := symbolServer(t, Options{})
	f := mods[0].Symbols[2]
	body := fmt.Sprintf(`{"memoryMap": %s, "stacks": [[[0, %d], [-1, 4294967295]]], "version": 4}`, memoryMap(mods), f.Address+1)
	status, out := post(t, ts.URL+"/symbolicate/v4", body)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	if got := fmt.Sprint(out["symbolicatedStacks"], out["knownModules"]); got != fmt.Sprintf("[[%s (in xul.pdb) 0xffffffff (in <unknown>)]] [true <nil> <nil>]", f.Name) {
		t.Errorf("v4 answer %s", got)
	}
	if _, ok := out["debug"]; !ok {
		t.Error("v4 with Debug has no debug")
	}
}

func TestSymbolicateErrors(t *testing.T) {
	ts, _ := symbolServer(t, Options{})
	mm := `[["xul.pdb", "44E4EC8C2F41492B9369D6B9A059577C2"]]`
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"invalid JSON", "v5", `{"jobs": `, 400, "Invalid JSON passed in"},
		{"empty body", "v5", ``, 400, "Invalid JSON passed in"},
		{"not a dict", "v5", `[1]`, 400, "Not a dict"},
		{"no jobs", "v5", `{}`, 400, "Missing key in JSON ('jobs')"},
		{"empty jobs", "v5", `{"jobs": []}`, 400, "Jobs list empty"},
		{"job is a list", "v5", `{"jobs": [[]]}`, 400, "Wrong type of value (list indices must be integers or slices, not str)"},
		{"job without memoryMap", "v5", `{"jobs": [{"stacks": []}]}`, 400, "Missing key in JSON ('memoryMap')"},
		{"memoryMap not a list", "v5", `{"jobs": [{"stacks": [], "memoryMap": {}}]}`, 400, "Wrong type of value (Stack number 1 is 'memoryMap' not a list)"},
		{"float offset", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [[[-1, 1.8446744073709552e+19]]]}]}`, 400, "Frame must be two integers"},
		{"short frame", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [[[0]]]}]}`, 400, "List of lists of frames must be 2 numbers"},
		{"frame not a list", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [[5]]}]}`, 400, "Must be a list of lists of lists"},
		{"stack not a list", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [5]}]}`, 400, "Must be a list of lists"},
		{"memoryMap entry", "v5", `{"jobs": [{"memoryMap": [["xul.pdb"]], "stacks": []}]}`, 400, "Must be a list of lists of size 2"},
		{"empty debug id", "v5", `{"jobs": [{"memoryMap": [["xul.pdb", ""]], "stacks": []}]}`, 400, "debugID empty or missing"},
		{"long module name", "v5", `{"jobs": [{"memoryMap": [["` + strings.Repeat("x", 1025) + `", "AB"]], "stacks": []}]}`, 400, "module name too long"},
		{"null byte", "v5", `{"jobs": [{"memoryMap": [["x\u0000.pdb", "AB"]], "stacks": []}]}`, 400, "module_name contains null-byte"},
		{"module index past the end", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [[[1, 5]]]}]}`, 500, "Internal Server Error"},
		{"bool passes as int", "v5", `{"jobs": [{"memoryMap": ` + mm + `, "stacks": [[[true, 5]]]}]}`, 500, "Internal Server Error"},
		{"v4 without stacks", "v4", `{"memoryMap": []}`, 400, `Missing key JSON "'stacks'"`},
		{"v4 without memoryMap", "v4", `{"stacks": []}`, 400, `Missing key JSON "'memoryMap'"`},
		{"v4 wrong version", "v4", `{"stacks": [], "memoryMap": [], "version": 5}`, 400, "Expect version==4"},
		{"v4 float offset", "v4", `{"stacks": [[[0, 1.5]]], "memoryMap": ` + mm + `, "version": 4}`, 400, "Frame must be two integers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := post(t, ts.URL+"/symbolicate/"+tt.path, tt.body)
			if status != tt.status || out["error"] != tt.msg {
				t.Errorf("%d %v, want %d %q", status, out, tt.status, tt.msg)
			}
		})
	}
	resp, _ := http.Get(ts.URL + "/symbolicate/v5")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || !bytes.Contains(b, []byte("Must use HTTP POST")) {
		t.Errorf("GET: %d %s", resp.StatusCode, b)
	}
}

func TestSymbolicateEliot(t *testing.T) {
	ts, mods := symbolServer(t, Options{Eliot: true})
	f := mods[0].Symbols[1]
	job := fmt.Sprintf(`{"memoryMap": %s, "stacks": [[[0, %d]]]}`, memoryMap(mods), f.Address)
	status, out := post(t, ts.URL+"/symbolicate/v5", `{"jobs": [`+job+`, `+job+`]}`)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	res := out["results"].([]any)[0].(map[string]any)
	fr := res["stacks"].([]any)[0].([]any)[0].(map[string]any)
	if fr["module"] != mods[0].CodeFile || fr["function"] != f.Name {
		t.Errorf("frame %v, want module %s", fr, mods[0].CodeFile)
	}
	if _, ok := res["debug"]; ok {
		t.Error("Eliot has per-result debug")
	}
	dbg := out["debug"].(map[string]any)
	if dbg["downloads"].(map[string]any)["count"] != 1.0 || dbg["modules"].(map[string]any)["count"] != 2.0 {
		t.Errorf("debug %v", dbg)
	}
	jobs := strings.Repeat(job+",", 10) + job
	status, out = post(t, ts.URL+"/symbolicate/v5", `{"jobs": [`+jobs+`]}`)
	if status != 400 || out["title"] != "please limit number of jobs in a single request to <= 10" {
		t.Errorf("11 jobs: %d %v", status, out)
	}
	status, out = post(t, ts.URL+"/symbolicate/v5", `{"jobs": [{"memoryMap": [], "stacks": [[[0, 1]]]}]}`)
	if status != 400 || out["title"] != "job 0 has invalid stacks: stack 0 frame 0 has a module_index that isn't in modules" {
		t.Errorf("bad index: %d %v", status, out)
	}
}
