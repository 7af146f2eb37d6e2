package main

import (
	"fmt"
	"slices"
	"strings"
)

// artifact is something a step leaves for later steps of the same run.
type artifact string

const (
	artifactStacks   artifact = "stack files"           // make-stacks: its out_dir
	artifactZips     artifact = "zips"                  // make-zips: its save_dir
	artifactZipURLs  artifact = "zip URLs"              // list-zips: zips[].url
	artifactUploaded artifact = "uploaded symbol files" // upload: the members of the zips sent
)

// kindSpec describes one step kind: its plan key, the result it reports
// and what it leaves for later steps. What a step needs from earlier
// steps depends on its settings, so workloads say it (workload.needs).
type kindSpec struct {
	name string
	// result returns an empty result: the report of a step that failed
	// before it did anything, and what a saved report decodes into.
	result   func() stepResult
	provides []artifact
	// requests says whether the kind issues requests and so reports the
	// shared request metrics.
	requests bool
	// metrics are the kind's own metrics for thresholds, after the shared
	// request metrics.
	metrics []metricDef
}

// kinds is the registry of step kinds. Plan parsing, validation, the
// dependency checks and report decoding derive from it; a kind's plan
// key is also a field of Step (TestKindsMatchStep keeps the two equal).
var kinds = []kindSpec{
	{name: "download", result: func() stepResult { r, _ := newDownloadAgg(&queries{}, pace{}).result(); return r }, requests: true,
		metrics: []metricDef{
			{"right_pct", unitPct, "requests whose status matched the CSV's", func(r stepResult) *float64 { return r.(*DownloadResult).RightPct }},
			{"right", unitCount, "requests whose status matched the CSV's", func(r stepResult) *float64 { return ptr(float64(r.(*DownloadResult).Right)) }},
			{"ignore_hits_pct", unitPct, "answers with Debug-Time: 0", func(r stepResult) *float64 { return r.(*DownloadResult).IgnoreHitsPct }},
			{"fastcache_pct", unitPct, "recent lookups under 10 ms", func(r stepResult) *float64 { return r.(*DownloadResult).FastcachePct }},
		}},
	{name: "make-stacks", result: func() stepResult { return &MakeStacksResult{} }, provides: []artifact{artifactStacks},
		metrics: []metricDef{
			{"files", unitCount, "stack files written", func(r stepResult) *float64 { return ptr(float64(r.(*MakeStacksResult).Files)) }},
			{"frames", unitCount, "frames written", func(r stepResult) *float64 { return ptr(float64(r.(*MakeStacksResult).Frames)) }},
		}},
	{name: "symbolicate", result: func() stepResult { r, _ := newSymbolicateAgg(0, nil, pace{}).result(); return r }, requests: true,
		metrics: []metricDef{
			{"symbolicated_pct", unitPct, "frames in found modules that got a function name", func(r stepResult) *float64 { return r.(*SymbolicateResult).SymbolicatedPct }},
			{"invalid_responses", unitCount, "200 answers that do not fit their request", func(r stepResult) *float64 { return ptr(float64(r.(*SymbolicateResult).InvalidResponses)) }},
			{"jobs", unitCount, "jobs in answered requests", func(r stepResult) *float64 { return ptr(float64(r.(*SymbolicateResult).Jobs)) }},
		}},
	{name: "list-zips", result: func() stepResult { return newListZipsResult() }, provides: []artifact{artifactZipURLs},
		metrics: []metricDef{
			{"zips", unitCount, "zip URLs listed", func(r stepResult) *float64 { return ptr(float64(len(r.(*ListZipsResult).Zips))) }},
		}},
	{name: "make-zips", result: func() stepResult { return newMakeZipsResult() }, provides: []artifact{artifactZips},
		metrics: []metricDef{
			{"zips", unitCount, "zips written", func(r stepResult) *float64 { return ptr(float64(len(r.(*MakeZipsResult).Zips))) }},
			{"failed_files", unitCount, "symbol files that could not be fetched", func(r stepResult) *float64 { return ptr(float64(len(r.(*MakeZipsResult).FailedFiles))) }},
		}},
	{name: "mix", result: func() stepResult { return newMixResult() }, requests: true,
		metrics: []metricDef{
			{"check_failures", unitCount, "answers that failed loadtest.py's checks", func(r stepResult) *float64 { return ptr(float64(r.(*MixResult).CheckFailures)) }},
		}},
	{name: "upload", result: func() stepResult { return newUploadResult() }, provides: []artifact{artifactUploaded}, requests: true,
		metrics: []metricDef{
			{"succeeded", unitCount, "uploads that got a 201", func(r stepResult) *float64 { return ptr(float64(r.(*UploadResult).Succeeded)) }},
			{"failed", unitCount, "uploads that failed", func(r stepResult) *float64 { return ptr(float64(r.(*UploadResult).Failed)) }},
			{"skipped", unitCount, "zips or URLs not sent (over max_size, locked)", func(r stepResult) *float64 { return ptr(float64(r.(*UploadResult).Skipped)) }},
		}},
	{name: "analyze", result: func() stepResult { return &AnalyzeResult{} }, metrics: analyzeMetrics},
	{name: "fetch-records", result: func() stepResult { return newFetchRecordsResult() },
		metrics: []metricDef{
			{"hits", unitCount, "uploads in the records fetched", func(r stepResult) *float64 { return ptr(float64(r.(*FetchRecordsResult).Hits)) }},
			{"files", unitCount, "record files written", func(r stepResult) *float64 { return ptr(float64(len(r.(*FetchRecordsResult).Files))) }},
		}},
}

// kindByName returns the registry entry of a kind.
func kindByName(name string) (kindSpec, bool) {
	i := slices.IndexFunc(kinds, func(k kindSpec) bool { return k.name == name })
	if i < 0 {
		return kindSpec{}, false
	}
	return kinds[i], true
}

// kindNames lists the kinds in registry order.
func kindNames() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return names
}

// need is something a step takes from an earlier step of the run: the
// field path (relative to the step's kind) that asks for it, and what a
// user can do instead.
type need struct {
	what  artifact
	field string
	hint  string
}

// providers names the kinds that provide a.
func providers(a artifact) []string {
	var names []string
	for _, k := range kinds {
		if slices.Contains(k.provides, a) {
			names = append(names, k.name)
		}
	}
	return names
}

// checkNeeds reports each need of the step at index i that no earlier
// step among those that will run provides.
func (v *validator) checkNeeds(i int, path string, w workload) {
	for _, n := range w.needs() {
		if v.provided(n.what, i) {
			continue
		}
		msg := fmt.Sprintf("needs %s from an earlier %s step, and none runs before this one", n.what, orList(providers(n.what)))
		if v.only {
			msg += " (with -only, include that step)"
		}
		if n.hint != "" {
			msg += "; " + n.hint
		}
		v.add(path+n.field, "%s", msg)
	}
}

// provided reports whether a step that runs before step i provides a.
func (v *validator) provided(a artifact, i int) bool {
	for _, j := range v.steps {
		if j >= i {
			break
		}
		if ws := v.plan.Steps[j].workloads(); len(ws) == 1 {
			if k, ok := kindByName(ws[0].kind()); ok && slices.Contains(k.provides, a) {
				return true
			}
		}
	}
	return false
}

// orList joins names as "a", "a or b", "a, b or c".
func orList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return fmt.Sprintf("%s or %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}
