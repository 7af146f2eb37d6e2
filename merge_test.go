package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// runShards runs the shards of plan at once, each writing its report to
// dir/shard-K.json, and returns the files.
func runShards(t *testing.T, plan string, n int, dir string) []string {
	t.Helper()
	path := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(path, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	files := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		files[k] = filepath.Join(dir, fmt.Sprintf("shard-%d.json", k))
		wg.Go(func() {
			errs[k] = run(context.Background(), []string{"-format", "json", "-shard", fmt.Sprintf("%d/%d", k, n), "-out", files[k], path},
				strings.NewReader(""), io.Discard, io.Discard, terminal{})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return files
}

// mergeArgs runs teckenrun merge -format json and decodes the report.
func mergeArgs(t *testing.T, args ...string) (*Report, error) {
	t.Helper()
	stdout, _, err := runArgs(t, terminal{}, append([]string{"merge", "-format", "json"}, args...)...)
	if stdout == "" {
		return nil, err
	}
	r, derr := DecodeReport(strings.NewReader(stdout), "merge's stdout")
	if derr != nil {
		t.Fatal(derr)
	}
	return r, err
}

// statusCounts are a request step's requests by status.
func statusCounts(r *Report, step string) map[int]int64 {
	i := slices.IndexFunc(r.Steps, func(s StepReport) bool { return s.Name == step })
	out := map[int]int64{}
	for _, s := range r.Steps[i].result.(requestResult).requestMetrics().ByStatus {
		out[s.Status] = s.Requests
	}
	return out
}

func stepMetrics(r *Report, step string) *metrics.Summary {
	i := slices.IndexFunc(r.Steps, func(s StepReport) bool { return s.Name == step })
	return r.Steps[i].result.(requestResult).requestMetrics()
}

// TestMergeShardsEqualsEmulatorAndSingleRun: two shards run at once
// against one emulator; their merge counts what the emulator answered,
// and what one unsharded run with the same seed does.
func TestMergeShardsEqualsEmulatorAndSingleRun(t *testing.T) {
	emu := emulator.NewEmbedded()
	url, stop, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	dir := t.TempDir()
	plan := shardPlan(url, "thresholds: [\"download.requests == 37\", \"symbolicate.jobs == 14\", \"download.p99 < 1h\"]\n")
	files := runShards(t, plan, 2, dir)
	mergedPath := filepath.Join(dir, "merged.json")
	merged, err := mergeArgs(t, "-out", mergedPath, files[1], files[0])
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if saved, err := loadReport(mergedPath); err != nil || saved.Merge == nil {
		t.Fatalf("-out: %v, %+v", err, saved)
	}
	if m := merged.Merge; m.Shards != 2 || !slices.Equal(m.Merged, []int{0, 1}) || len(m.Missing) != 0 || m.Partial ||
		!slices.Equal(m.Inputs, files) || merged.Shard != nil {
		t.Errorf("merge info %+v, shard %+v", m, merged.Shard)
	}
	if names := []string{merged.Steps[0].Name, merged.Steps[1].Name, merged.Steps[2].Name}; !slices.Equal(names, []string{"download", "make-stacks", "symbolicate"}) {
		t.Errorf("steps %v", names)
	}

	// The emulator's own counts.
	emuCounts := map[string]map[int]int64{"download": {}, "symbolicate": {}}
	for k, n := range emu.Counts() {
		if c, ok := emuCounts[k.Endpoint]; ok {
			c[k.Status] += int64(n)
		}
	}
	for _, step := range []string{"download", "symbolicate"} {
		if got, want := statusCounts(merged, step), emuCounts[step]; !equalMaps(got, want) {
			t.Errorf("%s: merged counts by status %v, the emulator answered %v", step, got, want)
		}
		m := stepMetrics(merged, step)
		if m.Retries != 0 || m.Errors != 0 {
			t.Errorf("%s: %d retries, %d errors: the emulator's counts include attempts", step, m.Retries, m.Errors)
		}
		var inTimeline int64
		for _, p := range m.Timeline.Points {
			inTimeline += p.Requests
		}
		if inTimeline != m.Requests || m.RatePerS == nil || math.Abs(*m.RatePerS-float64(m.Requests)/m.RanForS) > 1e-9 {
			t.Errorf("%s: timeline holds %d of %d requests; rate %v over %vs", step, inTimeline, m.Requests, m.RatePerS, m.RanForS)
		}
	}
	for i, th := range merged.Thresholds {
		if th.OK == nil || !*th.OK || th.Note != "" {
			t.Errorf("threshold %d: %+v, want it met on the merge", i, th)
		}
	}

	// One unsharded run with the same seed, against a fresh emulator.
	emu2 := emulator.NewEmbedded()
	url2, stop2, err := emu2.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	single, _, err := runPlanAs[Report](t, context.Background(), shardPlan(url2, ""), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(single) // into the types a saved report decodes into
	if single, err = DecodeReport(bytes.NewReader(raw), "single"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"download", "symbolicate"} {
		if got, want := statusCounts(merged, step), statusCounts(single, step); !equalMaps(got, want) {
			t.Errorf("%s: merged counts by status %v, the single run's %v", step, got, want)
		}
	}
	md, sd := merged.Steps[0].result.(*DownloadResult), single.Steps[0].result.(*DownloadResult)
	if md.Right != sd.Right || md.IgnoreHits != sd.IgnoreHits || *md.RightPct != *sd.RightPct || md.Rows != sd.Rows {
		t.Errorf("download: merged right %d, ignore hits %d, rows %d; single %d, %d, %d", md.Right, md.IgnoreHits, md.Rows, sd.Right, sd.IgnoreHits, sd.Rows)
	}
	ms, ss := merged.Steps[2].result.(*SymbolicateResult), single.Steps[2].result.(*SymbolicateResult)
	if ms.Jobs != ss.Jobs || ms.Frames != ss.Frames || ms.KnownFrames != ss.KnownFrames || ms.SymbolicatedFrames != ss.SymbolicatedFrames ||
		ms.DebugObjects != ss.DebugObjects || ms.Files != ss.Files || len(ms.Debug) != len(ss.Debug) {
		t.Errorf("symbolicate: merged %+v\nsingle %+v", ms, ss)
	}
	for k, d := range ss.Debug {
		// What the server downloaded or found cached depends on the order
		// the shards' requests reached it; what the requests carried not.
		if (strings.HasPrefix(k, "stacks.") || strings.HasPrefix(k, "modules.")) && (ms.Debug[k] == nil || ms.Debug[k].Sum != d.Sum || ms.Debug[k].Count != d.Count) {
			t.Errorf("symbolicate debug %s: merged %+v, single %+v", k, ms.Debug[k], d)
		}
	}

	t.Run("a threshold not met exits 3", func(t *testing.T) {
		for _, f := range files {
			r, err := loadReport(f)
			if err != nil {
				t.Fatal(err)
			}
			r.Thresholds[0].Expr = "download.requests > 37"
			if err := writeFileAtomic(f, func(w io.Writer) error { return jsonReport(w, r) }); err != nil {
				t.Fatal(err)
			}
		}
		merged, err := mergeArgs(t, files...)
		if code := exitCode(err, io.Discard); code != exitThresholds {
			t.Fatalf("exit code %d (%v), want %d", code, err, exitThresholds)
		}
		th := merged.Thresholds[0]
		if th.OK == nil || *th.OK || th.Value == nil || *th.Value != 37 {
			t.Errorf("threshold %+v, want 37 and not met", th)
		}
	})
}

func equalMaps(a, b map[int]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMergedPercentiles: the percentiles of merged shards are those of a
// histogram of all the samples, and within its precision of the exact
// percentiles of the raw samples.
func TestMergedPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	all := metrics.New(false)
	shards := []*metrics.Metrics{metrics.New(false), metrics.New(false), metrics.New(false)}
	var raw []float64
	for i := range 3000 {
		lat := time.Duration(math.Exp(rng.NormFloat64()*1.2+3) * float64(time.Millisecond)) // log-normal, ~20 ms
		sent := base.Add(time.Duration(i) * 7 * time.Millisecond)
		s := metrics.Sample{Sent: sent, Done: sent.Add(lat), Status: []int{200, 200, 200, 404, 500}[i%5], Attempts: 1}
		all.Add(s)
		shards[rng.IntN(3)].Add(s) // uneven shares
		raw = append(raw, lat.Seconds())
	}
	var in []namedReport
	for k, m := range shards {
		res := &DownloadResult{Metrics: m.Summary(), ByStatus: []DownloadStatus{}}
		r := &Report{SchemaVersion: reportSchemaVersion, PlanSHA256: "ab", Seed: 1, Shard: &ShardInfo{k, 3},
			Steps: []StepReport{{Kind: "download", Name: "download", OK: true, result: res}}, Thresholds: []ThresholdResult{}}
		var b bytes.Buffer
		if err := jsonReport(&b, r); err != nil {
			t.Fatal(err)
		}
		dec, err := DecodeReport(&b, fmt.Sprint("shard ", k))
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, namedReport{fmt.Sprint("shard-", k), dec})
	}
	merged, err := mergeReports(in, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	got, want := *stepMetrics(merged, "download"), all.Summary()
	if got.Requests != 3000 || got.Requests != want.Requests {
		t.Fatalf("requests %d, want %d", got.Requests, want.Requests)
	}
	if *got.ResponseTime != *want.ResponseTime {
		t.Errorf("merged response time %+v\nwant (one histogram of all) %+v", *got.ResponseTime, *want.ResponseTime)
	}
	for i := range want.ByStatus {
		if *got.ByStatus[i].ResponseTime != *want.ByStatus[i].ResponseTime || got.ByStatus[i].Requests != want.ByStatus[i].Requests {
			t.Errorf("status %d: merged %+v, want %+v", want.ByStatus[i].Status, got.ByStatus[i], want.ByStatus[i])
		}
	}
	slices.Sort(raw)
	d := got.ResponseTime
	for _, q := range []struct {
		p   float64
		got float64
	}{{0.5, d.P50S}, {0.9, d.P90S}, {0.95, d.P95S}, {0.99, d.P99S}} {
		exact := raw[rank(len(raw), q.p)]
		// 3 significant digits: within 0.1% (and a microsecond of rounding).
		if math.Abs(q.got-exact) > exact*1e-3+1e-6 {
			t.Errorf("p%v: merged %v, exact %v", q.p*100, q.got, exact)
		}
	}
	if d.MinS != math.Round(raw[0]*1e6)/1e6 || d.MaxS != math.Round(raw[len(raw)-1]*1e6)/1e6 {
		t.Errorf("min %v max %v, raw %v %v", d.MinS, d.MaxS, raw[0], raw[len(raw)-1])
	}
}

// shardReport is a minimal report of shard k of count.
func shardReport(k, count int, mod func(r *Report)) *Report {
	r := &Report{SchemaVersion: reportSchemaVersion, Version: version, Plan: "p", PlanSHA256: "aaaa", Seed: 1, OK: true,
		StartedAt: time.Date(2026, 12, 1, 0, 0, k, 0, time.UTC), EndedAt: time.Date(2026, 12, 1, 0, 1, k, 0, time.UTC),
		Shard: &ShardInfo{k, count}, Steps: []StepReport{}, Thresholds: []ThresholdResult{}}
	if mod != nil {
		mod(r)
	}
	return r
}

func writeReports(t *testing.T, reports ...*Report) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, r := range reports {
		p := filepath.Join(dir, fmt.Sprintf("r%d.json", i))
		if err := writeFileAtomic(p, func(w io.Writer) error { return jsonReport(w, r) }); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// badDownload gives a report a download step whose metrics count requests
// that none of its distributions hold.
func badDownload(r *Report) {
	res := &DownloadResult{Metrics: metrics.New(false).Summary(), ByStatus: []DownloadStatus{}}
	res.Metrics.Requests = 5
	r.Steps = []StepReport{{Kind: "download", Name: "download", OK: true, result: res}}
}

// TestMergeRefuses: every report set that is not the shards of one run
// is refused with a clear message and exit 2.
func TestMergeRefuses(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reports []*Report
		args    []string
		want    string
	}{
		{"different plans", []*Report{shardReport(0, 2, nil), shardReport(1, 2, func(r *Report) { r.PlanSHA256 = "bbbb" })}, nil,
			"r0.json and %s/r1.json are reports of different plans (plan_sha256 aaaa and bbbb)"},
		{"different seeds", []*Report{shardReport(0, 2, nil), shardReport(1, 2, func(r *Report) { r.Seed = 2 })}, nil,
			"r1.json are runs with different seeds (1 and 2): shards of one run share its seed"},
		{"different counts", []*Report{shardReport(0, 2, nil), shardReport(1, 3, nil)}, nil,
			"r0.json is a shard of 2 and %s/r1.json of 3: shards of one run have one count"},
		{"duplicate shard", []*Report{shardReport(1, 2, nil), shardReport(0, 2, nil), shardReport(1, 2, nil)}, nil,
			"r0.json and %s/r2.json are both shard 1/2"},
		{"missing shard", []*Report{shardReport(0, 3, nil), shardReport(2, 3, nil)}, nil,
			"merge: shard 1 of 3 is missing: merge every shard's report, or pass -partial to merge those given"},
		{"missing shards", []*Report{shardReport(0, 4, nil)}, nil, "merge: shards 1, 2, 3 of 4 are missing"},
		{"not a shard", []*Report{shardReport(0, 2, nil), shardReport(1, 2, func(r *Report) { r.Shard = nil })}, nil,
			"r1.json is not the report of a shard (it has no shard: runs made with -shard I/N have one)"},
		{"different thresholds", []*Report{shardReport(0, 2, func(r *Report) { r.Thresholds = []ThresholdResult{{Expr: "a.requests > 1"}} }), shardReport(1, 2, nil)}, nil,
			"list different thresholds"},
		{"metrics that do not add up", []*Report{shardReport(0, 2, badDownload), shardReport(1, 2, badDownload)}, nil,
			`r1.json: step "download": metrics.first_sent_at: first_sent_at and last_done_at must be null exactly when there are no requests`},
		{"no reports", nil, nil, "merge: no reports given"},
		{"bad flag", nil, []string{"-nope"}, "merge: flag provided but not defined: -nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			paths := writeReports(t, tt.reports...)
			want := tt.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, filepath.Dir(paths[0]))
			}
			_, err := mergeArgs(t, append(tt.args, paths...)...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
				t.Fatalf("merge: %v, want a usage error with %q", err, want)
			}
			if code := exitCode(err, io.Discard); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
		})
	}
	t.Run("not a report", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.json")
		os.WriteFile(p, []byte("{}"), 0o644)
		_, err := mergeArgs(t, p)
		if code := exitCode(err, io.Discard); code != exitUsage || !strings.Contains(err.Error(), "x.json: no schema_version") {
			t.Errorf("exit code %d: %v", code, err)
		}
	})
}

// TestMergePartial: -partial merges the shards given and says so; the
// steps of shard 0 only come with it, in the plan's order.
func TestMergePartial(t *testing.T) {
	dl := func() stepResult { k, _ := kindByName("download"); return k.result() }
	withSteps := func(names ...string) func(r *Report) {
		return func(r *Report) {
			for _, n := range names {
				res := dl()
				if n == "make-stacks" {
					res = &MakeStacksResult{}
				}
				kind := map[bool]string{true: "make-stacks", false: "download"}[n == "make-stacks"]
				r.Steps = append(r.Steps, StepReport{Kind: kind, Name: n, OK: true, Ran: true, result: res})
			}
			r.Thresholds = []ThresholdResult{{Expr: "make-stacks.files == 0"}, {Expr: "a.requests == 0"}}
		}
	}
	all := writeReports(t, shardReport(0, 3, withSteps("make-stacks", "a", "b")), shardReport(1, 3, withSteps("a", "b")), shardReport(2, 3, withSteps("a", "b")))
	merged, err := mergeArgs(t, all...)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range merged.Steps {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"make-stacks", "a", "b"}) {
		t.Errorf("steps %v", names)
	}
	if d := merged.DurationS; d != 62 { // 00:00:00 to 00:01:02
		t.Errorf("duration %vs, want the union of the windows, 62s", d)
	}

	merged, err = mergeArgs(t, "-partial", all[1], all[2])
	if err != nil {
		t.Fatalf("-partial: %v", err)
	}
	m := merged.Merge
	if !m.Partial || !slices.Equal(m.Missing, []int{0}) || !slices.Equal(m.Merged, []int{1, 2}) {
		t.Errorf("merge info %+v, want partial without shard 0", m)
	}
	if len(merged.Steps) != 2 {
		t.Errorf("%d steps, want a and b", len(merged.Steps))
	}
	th := merged.Thresholds
	if th[0].OK != nil || th[0].Note != "step in no shard's report" {
		t.Errorf("threshold of make-stacks: %+v", th[0])
	}
	if th[1].OK == nil || !*th[1].OK || th[1].Note != "on a partial merge: shards missing" {
		t.Errorf("threshold of a: %+v", th[1])
	}
	table, _, err := runArgs(t, terminal{}, "merge", "-format", "table", "-partial", all[1], all[2])
	if err != nil || !strings.Contains(table, "(seed 1, merged from 2 of 3 shards: PARTIAL, shard 0 of 3 is missing)\n") {
		t.Errorf("table: %v\n%s", err, table)
	}
}

// TestMergeWaitsForShards: with -wait, merge looks again until the
// missing shard's report is there.
func TestMergeWaitsForShards(t *testing.T) {
	paths := writeReports(t, shardReport(0, 2, nil), shardReport(1, 2, nil))
	late, err := os.ReadFile(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(paths[1])
	sleeps := 0
	old := mergeSleep
	t.Cleanup(func() { mergeSleep = old })
	mergeSleep = func(ctx context.Context, d time.Duration) error {
		sleeps++
		if sleeps == 2 { // shard 1 finishes while merge waits
			return os.WriteFile(paths[1], late, 0o644)
		}
		return nil
	}
	dir := filepath.Dir(paths[0])
	merged, err := mergeArgs(t, "-wait", "1h", "-shard", "0/2", filepath.Join(dir, "r0.json"), filepath.Join(dir, "r1.json"))
	if err != nil {
		t.Fatalf("merge -wait: %v", err)
	}
	if sleeps != 2 || !slices.Equal(merged.Merge.Merged, []int{0, 1}) {
		t.Errorf("%d waits, merged %v; want 2 waits and both shards", sleeps, merged.Merge.Merged)
	}

	// Without -wait, the missing shard is an error at once.
	os.Remove(paths[1])
	if _, err := mergeArgs(t, paths[0], paths[1]); !errors.Is(err, fs.ErrNotExist) || exitCode(err, io.Discard) != exitUsage {
		t.Errorf("merge without shard 1's report: %v", err)
	}
}

// TestMergeShardFlag: in the pods of shards other than 0, merge has
// nothing to do; in shard 0's, the count is the flag's.
func TestMergeShardFlag(t *testing.T) {
	_, stderr, err := runArgs(t, terminal{}, "merge", "-shard", "2/3", "s3://reports/not-read/")
	if err != nil || !strings.Contains(stderr, "shard 2/3: shard 0 merges the run, nothing to do here") {
		t.Errorf("merge -shard 2/3: %v, stderr %q", err, stderr)
	}
	t.Setenv(envShardIndex, "0")
	t.Setenv(envShards, "3")
	paths := writeReports(t, shardReport(0, 2, nil), shardReport(1, 2, nil))
	_, err = mergeArgs(t, "-shard", "auto", paths[0], paths[1])
	if code := exitCode(err, io.Discard); code != exitUsage || !strings.Contains(err.Error(), "r0.json is a shard of 2, and -shard says the run has 3") {
		t.Errorf("exit code %d: %v", code, err)
	}
}

// TestKindMergesEqualOneAggregate: each request kind's result, merged from
// two shards' aggregates (through their JSON), equals the result of one
// aggregate of all the outcomes.
func TestKindMergesEqualOneAggregate(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ex := func(i, status int) exchange {
		sent := base.Add(time.Duration(i) * 3 * time.Millisecond)
		e := exchange{Sample: metrics.Sample{Sent: sent, Done: sent.Add(time.Duration(1+i%17) * time.Millisecond), Status: status, Attempts: 1 + i%3/2}}
		if status == 0 {
			e.Class, e.err = classTimeout, errors.New("timed out")
		}
		return e
	}
	// roundTrip encodes a result and decodes it as a saved report would.
	roundTrip := func(t *testing.T, kind string, r stepResult) stepResult {
		raw, err := json.Marshal(StepReport{Kind: kind, Name: kind, OK: true, result: r})
		if err != nil {
			t.Fatal(err)
		}
		var s StepReport
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return s.result
	}
	check := func(t *testing.T, kind string, a, b, all stepResult, normalize func(stepResult)) {
		t.Helper()
		merged := roundTrip(t, kind, a)
		if err := merged.merge(roundTrip(t, kind, b)); err != nil {
			t.Fatal(err)
		}
		normalize(merged)
		normalize(all)
		got, _ := json.MarshalIndent(merged, "", " ")
		want, _ := json.MarshalIndent(all, "", " ")
		if string(got) != string(want) {
			t.Errorf("%s: merged\n%s\nwant (one aggregate)\n%s", kind, got, want)
		}
	}

	t.Run("download", func(t *testing.T) {
		q := &queries{rows: make([]query, 9), junk: 1}
		aggs := []*downloadAgg{newDownloadAgg(q, pace{}), newDownloadAgg(q, pace{}), newDownloadAgg(q, pace{})}
		for i := range 300 {
			status := []int{302, 302, 404, 200, 0}[i%5]
			o := downloadOutcome{exchange: ex(i, status), expect: []int{200, 404}[i%2], debugTime: []string{"0", "0.004", "0.02", ""}[i%4]}
			aggs[i%2].add(o)
			aggs[2].add(o)
		}
		var res [3]*DownloadResult
		for i, a := range aggs {
			res[i], _ = a.result()
		}
		check(t, "download", res[0], res[1], res[2], func(stepResult) {})
	})

	t.Run("symbolicate", func(t *testing.T) {
		aggs := []*symbolicateAgg{newSymbolicateAgg(4, nil, pace{}), newSymbolicateAgg(4, nil, pace{}), newSymbolicateAgg(4, nil, pace{})}
		for i := range 200 {
			status := []int{200, 200, 200, 400, 502}[i%5]
			o := symOutcome{exchange: ex(i, status), jobs: 1 + i%3, frames: 10 + i%7, files: []string{fmt.Sprint("f", i)},
				knownFrames: 8, symbolicated: 4 + i%5}
			switch {
			case status != 200:
				o.message = fmt.Sprint("error ", i%4)
			case i%40 == 0:
				o.invalid = "wrong number of stacks"
			default:
				o.debugs = []map[string]float64{{"time": float64(i%9) / 100, "downloads.time": float64(i%4) / 1000, "downloads.size": float64(i * 100), "stacks.count": float64(i % 6)}}
			}
			aggs[i%2].add(o)
			aggs[2].add(o)
		}
		for k := range 2 { // a message each shard saw once
			o := symOutcome{exchange: ex(200+k, 502), jobs: 1, files: []string{fmt.Sprint("rare", k)}, message: "rare"}
			aggs[k].add(o)
			aggs[2].add(o)
		}
		var res [3]*SymbolicateResult
		for i, a := range aggs {
			res[i], _ = a.result()
		}
		// Sample files are the first ones each shard saw, in its order:
		// those of a message both saw once are both shards'.
		merged := roundTrip(t, "symbolicate", res[0])
		if err := merged.merge(roundTrip(t, "symbolicate", res[1])); err != nil {
			t.Fatal(err)
		}
		for _, m := range merged.(*SymbolicateResult).ErrorsByMessage {
			if m.Message == "rare" && !slices.Equal(m.SampleFiles, []string{"rare0", "rare1"}) {
				t.Errorf("sample files of the rare message: %v, want both shards'", m.SampleFiles)
			}
			if len(m.SampleFiles) > maxSampleFiles {
				t.Errorf("%q: %d sample files, at most %d", m.Message, len(m.SampleFiles), maxSampleFiles)
			}
		}
		check(t, "symbolicate", res[0], res[1], res[2], func(r stepResult) {
			for i := range r.(*SymbolicateResult).ErrorsByMessage {
				r.(*SymbolicateResult).ErrorsByMessage[i].SampleFiles = nil
			}
		})
	})

	t.Run("mix", func(t *testing.T) {
		newAgg := func() *mixAgg {
			return &mixAgg{requests: newRequests(pace{}), res: newMixResult(), weights: [2]int{60, 40},
				dl: newDownloadAgg(&queries{rows: make([]query, 5)}, pace{}), sym: newSymbolicateAgg(3, nil, pace{})}
		}
		aggs := []*mixAgg{newAgg(), newAgg(), newAgg()}
		for i := range 200 {
			var o mixOutcome
			if i%5 < 3 {
				o = mixOutcome{scenario: scenarioDownload, dl: downloadOutcome{exchange: ex(i, []int{302, 404, 0}[i%3]), expect: 200, debugTime: "0.004"}}
				if i%49 == 0 { // a few: fewer than the samples kept
					o.dl.checkFailure = fmt.Sprint("302 for a/", i, " redirects elsewhere")
				}
			} else {
				o = mixOutcome{scenario: scenarioSymbolicate, sym: symOutcome{exchange: ex(i, 200), jobs: 1, frames: 5, knownFrames: 5, symbolicated: 4}}
			}
			aggs[i%2].add(o)
			aggs[2].add(o)
		}
		var res [3]*MixResult
		for i, a := range aggs {
			res[i], _ = a.result()
		}
		// Check samples are the first ones each shard saw, in its order.
		merged := roundTrip(t, "mix", res[0])
		if err := merged.merge(roundTrip(t, "mix", res[1])); err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(res[0].Scenarios.Download.CheckSamples), res[1].Scenarios.Download.CheckSamples...)
		if got := merged.(*MixResult).Scenarios.Download.CheckSamples; len(res[1].Scenarios.Download.CheckSamples) == 0 ||
			len(res[0].Scenarios.Download.CheckSamples) >= maxCheckSamples || !slices.Equal(got, want[:min(len(want), maxCheckSamples)]) {
			t.Errorf("merged check samples %q, want the first shard's then the second's (%q)", got, want)
		}
		check(t, "mix", res[0], res[1], res[2], func(r stepResult) {
			for _, sh := range []*MixShare{&r.(*MixResult).Scenarios.Download.MixShare, &r.(*MixResult).Scenarios.Symbolicate.MixShare} {
				sh.CheckSamples = nil
			}
		})
	})

	t.Run("upload", func(t *testing.T) {
		aggs := []*uploadAgg{}
		for range 3 {
			aggs = append(aggs, &uploadAgg{requests: newRequests(pace{}), res: newUploadResult(), state: &runState{}})
		}
		for i := range 12 {
			rec := UploadRecord{File: fmt.Sprintf("z%02d.zip", i), Bytes: int64(1000 + i), Attempts: 1 + i%2, Status: 201}
			e := ex(i, 201)
			rec.ex = &e
			switch i % 4 {
			case 1:
				rec.Status, rec.Error = 400, ptr("bad zip")
			case 2:
				rec.ex, rec.skipped = nil, &SkippedUpload{File: rec.File, Reason: "locked"}
			}
			aggs[i%2].add(rec)
			aggs[2].add(rec)
		}
		for _, a := range aggs {
			a.res.Metrics = a.m.Summary()
		}
		// Each shard's uploads come in turn: compare them in file order.
		check(t, "upload", aggs[0].res, aggs[1].res, aggs[2].res, func(r stepResult) {
			u := r.(*UploadResult)
			slices.SortFunc(u.Uploads, func(a, b UploadRecord) int { return strings.Compare(a.File, b.File) })
			slices.SortFunc(u.SkippedUploads, func(a, b SkippedUpload) int { return strings.Compare(a.File, b.File) })
		})
	})
}

// TestMergeKnowsEveryKind: the shards' reports of a step of any kind
// merge, with its thresholds evaluated on the merged result; a step that
// ran in one shard only ran.
func TestMergeKnowsEveryKind(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			metric := metricsOf(k)[0].name
			expr := k.name + "." + metric + " >= 0"
			step := func(ran bool) func(r *Report) {
				return func(r *Report) {
					r.Steps = []StepReport{{Kind: k.name, Name: k.name, OK: true, Ran: ran, result: k.result()}}
					r.Thresholds = []ThresholdResult{{Expr: expr}}
				}
			}
			merged, err := mergeArgs(t, writeReports(t, shardReport(0, 2, step(false)), shardReport(1, 2, step(true)))...)
			if merged == nil || (err != nil && exitCode(err, io.Discard) != exitThresholds) { // an empty result may miss it
				t.Fatalf("merge: %v", err)
			}
			if s := merged.Steps[0]; !s.Ran {
				t.Errorf("the merged step did not run; shard 1 ran it")
			}
			if th := merged.Thresholds; len(th) != 1 || th[0].OK == nil || th[0].Note == "step in no shard's report" {
				t.Errorf("thresholds %+v: %q was not evaluated on the merged step", th, expr)
			}
		})
	}
}
