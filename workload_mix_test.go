package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

type mixReport struct {
	Steps []struct {
		Kind  string  `json:"kind"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		MixResult
	} `json:"steps"`
	Thresholds []ThresholdResult `json:"thresholds"`
}

// mixStore is an emulator with the download test store and three modules
// to symbolicate, and a folder of stack files drawn from them.
func mixStore(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	emu, _, dir := symbolStore(t, emulator.Options{}, 6)
	for _, k := range testStoreKeys {
		emu.Put(k, []byte("MODULE "+k+"\n"))
	}
	return emu, dir
}

func mixPlan(host, stacks, extra string) string {
	return fmt.Sprintf(`host: %s
seed: 9
timeout: 5s
steps:
  - mix:
      workers: 8
%s      scenarios:
        download: {weight: 60, csv: q.csv, missing_csv: m.csv}
        symbolicate: {weight: 40, stacks_dir: %s, api: v4}
`, host, extra, stacks)
}

func runMix(t *testing.T, plan string) (*mixReport, error) {
	t.Helper()
	r, _, err := runPlanAs[mixReport](t, context.Background(), plan, downloadFiles, nil)
	if r == nil {
		t.Fatalf("no report: %v", err)
	}
	return r, err
}

// TestMixWeightsHold: over 5,000 jobs, each scenario's share is within 2
// points of its weight, by the emulator's own count.
func TestMixWeightsHold(t *testing.T) {
	emu, stacks := mixStore(t)
	ts := httptest.NewServer(emu)
	defer ts.Close()
	plan := mixPlan(ts.URL, stacks, "      max_requests: 5000\n") + "thresholds:\n  - \"mix.download.p99 < 30s\"\n  - \"mix.symbolicate.symbolicated_pct >= 99\"\n  - \"mix.check_failures == 0\"\n"
	r, err := runMix(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	served := map[string]int64{}
	for k, n := range emu.Counts() {
		served[k.Endpoint] += int64(n)
	}
	dl, sym := s.Scenarios.Download, s.Scenarios.Symbolicate
	if s.Metrics.Requests != 5000 || served["download"] != dl.Metrics.Requests || served["symbolicate"] != sym.Metrics.Requests ||
		dl.Metrics.Requests+sym.Metrics.Requests != 5000 || int64(dl.Draws) != dl.Metrics.Requests {
		t.Fatalf("requests %d: download %d (served %d), symbolicate %d (served %d)", s.Metrics.Requests,
			dl.Metrics.Requests, served["download"], sym.Metrics.Requests, served["symbolicate"])
	}
	if share := 100 * float64(served["download"]) / 5000; math.Abs(share-60) > 2 || math.Abs(*dl.SharePct-share) > 1e-9 {
		t.Errorf("download share %.2f%% (report %v), weight 60", share, *dl.SharePct)
	}
	if s.CheckFailures != 0 || dl.CheckFailures != 0 || sym.CheckFailures != 0 {
		t.Errorf("check failures %d: %v %v", s.CheckFailures, dl.CheckSamples, sym.CheckSamples)
	}
	for _, th := range r.Thresholds {
		if th.OK == nil || !*th.OK {
			t.Errorf("threshold %+v", th)
		}
	}
}

func TestMixBalance(t *testing.T) {
	emu, stacks := mixStore(t)
	ts := httptest.NewServer(emu)
	defer ts.Close()
	r, err := runMix(t, mixPlan(ts.URL, stacks, "      max_requests: 200\n      balance: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	// testCSV's usable rows hold 9 jobs expected to be found (logged 200)
	// and 11 expected missing (404, and a 403 that counts as one).
	b := r.Steps[0].Balance
	if b == nil || b.FoundJobs != 9 || b.MissingJobs != 11 || b.KeptFound != 9 || b.KeptMissing != 9 {
		t.Errorf("balance %+v", b)
	}
}

// TestMixChecks: each of loadtest.py's checks catches its fault.
func TestMixChecks(t *testing.T) {
	emu, stacks := mixStore(t)
	for _, tt := range []struct {
		name     string
		scenario string
		rewrite  func(r *http.Request, status int, h http.Header, body []byte) (int, []byte)
		want     string
	}{
		{"a wrong Location", "download", func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
			if status == http.StatusFound {
				h.Set("Location", "http://127.0.0.1:1/elsewhere")
			}
			return status, body
		}, "redirects to \"http://127.0.0.1:1/elsewhere\""},
		{"a 404 without the text", "download", func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
			if status == http.StatusNotFound {
				return status, []byte("nothing here")
			}
			return status, body
		}, `without "Symbol Not Found"`},
		{"a 200 without knownModules", "symbolicate", func(r *http.Request, status int, h http.Header, body []byte) (int, []byte) {
			if !strings.HasPrefix(r.URL.Path, "/symbolicate/") {
				return status, body
			}
			var m map[string]any
			json.Unmarshal(body, &m)
			delete(m, "knownModules")
			b, _ := json.Marshal(m)
			return status, b
		}, "knownModules"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				emu.ServeHTTP(rec, r)
				status, body := tt.rewrite(r, rec.Code, rec.Header(), rec.Body.Bytes())
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.Header().Del("Content-Length")
				w.WriteHeader(status)
				w.Write(body)
			}))
			defer ts.Close()
			r, _ := runMix(t, mixPlan(ts.URL, stacks, "      max_requests: 300\n"))
			s := r.Steps[0]
			var share MixShare
			if tt.scenario == "download" {
				share = s.Scenarios.Download.MixShare
			} else {
				share = s.Scenarios.Symbolicate.MixShare
			}
			if share.CheckFailures == 0 || len(share.CheckSamples) == 0 || !strings.Contains(share.CheckSamples[0], tt.want) || s.CheckFailures < share.CheckFailures {
				t.Errorf("%s: %d check failures %q, want samples with %q", tt.scenario, share.CheckFailures, share.CheckSamples, tt.want)
			}
		})
	}
}

// TestMixScenarioSequence: a job's scenario depends on its index and the
// seed alone, so that a run repeats and shards split one sequence.
func TestMixScenarioSequence(t *testing.T) {
	a, b := &mixSource{seed: 42, weights: [2]int{60, 40}}, &mixSource{seed: 42, weights: [2]int{60, 40}}
	first := make([]int, 5001)
	for i := range first { // in order on one source...
		first[i] = a.scenario(i)
	}
	n := 0
	for i := 5000; i >= 0; i-- { // ...backwards on another: the same draws
		if b.scenario(i) != first[i] {
			t.Fatalf("job %d drew differently", i)
		}
		if a.scenario(i) == scenarioDownload {
			n++
		}
	}
	if share := 100 * float64(n) / 5001; math.Abs(share-60) > 2 {
		t.Errorf("download share %.2f%%", share)
	}
}

func TestMixNeedsAScenario(t *testing.T) {
	_, stderr, err := runArgs(t, terminal{}, "-validate", writePlan(t, "host: embedded\nsteps:\n  - mix: {duration: 1s, scenarios: {}}\n", nil))
	if err == nil || !strings.Contains(err.Error(), "steps[0].mix.scenarios: needs download, symbolicate or both") {
		t.Errorf("%v %s", err, stderr)
	}
}

// TestMixShardsSplitOneSequence: three shards of a mix send, between
// them, the requests of the single run, scenario for scenario (a job's
// scenario and its row or stack file depend on its index alone).
func TestMixShardsSplitOneSequence(t *testing.T) {
	emu, stacks := mixStore(t)
	rec := &recorder{next: emu, got: map[string][]string{}}
	ts := httptest.NewServer(rec)
	defer ts.Close()
	plan := mixPlan(ts.URL, stacks, "      max_requests: 300\n")
	if _, err := runMix(t, plan); err != nil {
		t.Fatal(err)
	}
	single := rec.take()
	union := map[string][]string{}
	for k := range 3 {
		if _, _, err := runPlanAs[mixReport](t, context.Background(), plan, downloadFiles, nil, "-shard", fmt.Sprintf("%d/3", k)); err != nil {
			t.Fatal(err)
		}
		for ep, what := range rec.take() {
			union[ep] = append(union[ep], what...)
		}
	}
	if n := len(single["download"]) + len(single["symbolicate"]); n != 300 || len(single["download"]) == 0 || len(single["symbolicate"]) == 0 {
		t.Fatalf("single run: %d downloads, %d symbolications", len(single["download"]), len(single["symbolicate"]))
	}
	for _, ep := range []string{"download", "symbolicate"} {
		if a, b := slices.Sorted(slices.Values(single[ep])), slices.Sorted(slices.Values(union[ep])); !slices.Equal(a, b) {
			t.Errorf("%s: the shards' %d requests differ from the single run's %d", ep, len(b), len(a))
		}
	}
}

// TestMixThatFailsBeforeStartingHasItsScenarios: the report of a mix whose
// CSV has no usable row still has its scenarios, with their keys.
func TestMixThatFailsBeforeStartingHasItsScenarios(t *testing.T) {
	r, _, err := runPlanAs[mixReport](t, context.Background(), "host: http://127.0.0.1:1\nsteps:\n  - mix:\n      max_requests: 5\n      scenarios:\n        download: {weight: 1, csv: q.csv}\n",
		map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n"}, nil)
	if err == nil || r == nil {
		t.Fatalf("a mix without rows: %v", err)
	}
	s := r.Steps[0]
	if d := s.Scenarios.Download; d == nil || d.Weight != 1 || d.CheckSamples == nil || d.ByStatus == nil || s.Scenarios.Symbolicate != nil {
		t.Errorf("scenarios %+v", s.Scenarios)
	}
}

// TestMixWithoutStacksSaysWhy: a mix whose symbolicate scenario has no
// stacks_dir, when no make-stacks step wrote one (it failed, say), says so
// as the symbolicate step does, not with a file error.
func TestMixWithoutStacksSaysWhy(t *testing.T) {
	rc := &runContext{state: &runState{}, plan: &Plan{}}
	m := &MixStep{Workers: ptr(1), Scenarios: MixScenarios{Symbolicate: &MixSymbolicate{Weight: 1, API: "v4", BatchSize: ptr(1)}}}
	_, err := m.run(context.Background(), rc)
	if err == nil || err.Error() != "no stacks_dir, and no make-stacks step ran before this one" {
		t.Fatalf("error %v", err)
	}
}
