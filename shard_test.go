package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

func TestParseShard(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, tt := range []struct {
		flag string
		env  map[string]string
		want shardSpec
		err  string // "" = valid
	}{
		{flag: "0/4", want: shardSpec{0, 4}},
		{flag: "3/4", want: shardSpec{3, 4}},
		{flag: "0/1", want: shardSpec{0, 1}},
		{flag: "4/4", err: "the index must be from 0 to 3"},
		{flag: "-1/4", err: "the index must be from 0 to 3"},
		{flag: "1/0", err: "the count of shards must be at least 1"},
		{flag: "2", err: `"2" is not INDEX/COUNT`},
		{flag: "a/b", err: `"a/b" is not INDEX/COUNT`},
		{flag: "auto", env: map[string]string{envShardIndex: "2", envShards: "5"}, want: shardSpec{2, 5}},
		{flag: "auto", env: map[string]string{envShards: "5"}, err: "-shard auto: JOB_COMPLETION_INDEX (set by Kubernetes in the pods of an Indexed Job) not set"},
		{flag: "auto", env: map[string]string{envShardIndex: "0"}, err: "-shard auto: TECKENRUN_SHARDS (the number of shards, set in the Job's manifest) not set"},
		{flag: "auto", err: "JOB_COMPLETION_INDEX (set by Kubernetes in the pods of an Indexed Job) and TECKENRUN_SHARDS"},
		{flag: "auto", env: map[string]string{envShardIndex: "5", envShards: "5"}, err: `-shard auto: JOB_COMPLETION_INDEX="5" and TECKENRUN_SHARDS="5": "5/5": the index must be from 0 to 4`},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			got, err := parseShard(tt.flag, env(tt.env))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseShard(%q) = %v, %v; want an error with %q", tt.flag, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseShard(%q) = %v, %v; want %v", tt.flag, got, err, tt.want)
			}
		})
	}
}

// TestIssueShards: the shards of issue's jobs are disjoint, complete and
// of the exact share, and each keeps the single run's schedule for its
// jobs.
func TestIssueShards(t *testing.T) {
	for _, total := range []int{0, 1, 2, 10, 11} {
		for _, n := range []int{1, 2, 3, 4} {
			seen := map[int]int{}
			for k := range n {
				p := pace{concurrency: 3, rate: 1e4, total: total, shard: k, shards: n}
				var mu sync.Mutex
				intended := map[int]time.Time{}
				_, err := issue(context.Background(), context.Background(), p, func(_ context.Context, i int, s slot) error {
					mu.Lock()
					defer mu.Unlock()
					intended[i] = s.intended
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(intended) != p.shareOf(total) {
					t.Errorf("total %d, shard %d/%d: %d jobs, shareOf says %d", total, k, n, len(intended), p.shareOf(total))
				}
				for i := range intended {
					if i%n != k {
						t.Errorf("total %d, shard %d/%d issued job %d", total, k, n, i)
					}
					seen[i]++
					// The single run's schedule: job i at i/rate after the start.
					if got, want := intended[i].Sub(intended[k]), time.Duration(float64(i-k)/p.rate*float64(time.Second)); got != want {
						t.Errorf("total %d, shard %d/%d: job %d intended %v after job %d, want %v", total, k, n, i, got, k, want)
					}
				}
			}
			if len(seen) != total {
				t.Errorf("total %d over %d shards: %d distinct jobs", total, n, len(seen))
			}
			for i, c := range seen {
				if c != 1 || i < 0 || i >= total {
					t.Errorf("total %d over %d shards: job %d issued %d times", total, n, i, c)
				}
			}
		}
	}
}

// recorder wraps a handler and records what each request asked: a
// download's path, a symbolication's body.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	got  map[string][]string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep, what := "download", r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/symbolicate/") {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		ep, what = "symbolicate", string(body)
	}
	rec.mu.Lock()
	rec.got[ep] = append(rec.got[ep], what)
	rec.mu.Unlock()
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) take() map[string][]string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := rec.got
	rec.got = map[string][]string{}
	return got
}

// shardPlan downloads (cycling through the demo CSV) and symbolicates
// stack files made alike on every shard, against host.
func shardPlan(host string, extra string) string {
	csv, _ := filepath.Abs("plans/demo/queries.csv")
	return "name: sharded\nhost: " + host + "\nseed: 7\ntimeout: 10s\n" + extra + "steps:\n" +
		"  - name: download\n    download: {csv: " + csv + ", max_requests: 37, concurrency: 3}\n" +
		"  - name: make-stacks\n    shards: each\n    make-stacks: {from: embedded, count: 14}\n" +
		"  - name: symbolicate\n    symbolicate: {batch_size: 2, concurrency: 2}\n"
}

// TestShardPartitions: the shards' requests, download paths and
// symbolication bodies, are together those of the single run with the
// same seed, each once.
func TestShardPartitions(t *testing.T) {
	rec := &recorder{next: emulator.NewEmbedded(), got: map[string][]string{}}
	ts := httptest.NewServer(rec)
	defer ts.Close()
	plan := shardPlan(ts.URL, "")
	if _, _, err := runPlanAs[Report](t, context.Background(), plan, nil, nil); err != nil {
		t.Fatal(err)
	}
	single := rec.take()
	union := map[string][]string{}
	for k := range 3 {
		r, _, err := runPlanAs[Report](t, context.Background(), plan, nil, nil, "-shard", string(rune('0'+k))+"/3")
		if err != nil {
			t.Fatal(err)
		}
		if r.Shard == nil || *r.Shard != (ShardInfo{k, 3}) {
			t.Errorf("shard %d: report's shard is %+v", k, r.Shard)
		}
		for ep, what := range rec.take() {
			union[ep] = append(union[ep], what...)
		}
	}
	// 37 downloads; 14 stack files in batches of 2.
	for ep, want := range map[string]int{"download": 37, "symbolicate": 7} {
		if got := len(single[ep]); got != want {
			t.Errorf("%s: %d requests in the single run, want %d", ep, got, want)
		}
		a, b := slices.Sorted(slices.Values(single[ep])), slices.Sorted(slices.Values(union[ep]))
		if !slices.Equal(a, b) {
			t.Errorf("%s: the shards' requests differ from the single run's (%d and %d requests)", ep, len(b), len(a))
		}
	}
}

// TestShardAuto: -shard auto takes the shard from the environment of an
// Indexed Job's pod, runs the share of it and writes shard-I.json into an
// -out that ends in /; the shard's thresholds
// have no verdict, so that it exits 0 where the whole would not.
func TestShardAuto(t *testing.T) {
	emu := emulator.NewEmbedded()
	url, stop, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	t.Setenv(envShardIndex, "1")
	t.Setenv(envShards, "3")
	out := t.TempDir()
	r, _, err := runPlanAs[struct {
		Shard      *ShardInfo        `json:"shard"`
		Thresholds []ThresholdResult `json:"thresholds"`
		Steps      []struct {
			Name    string `json:"name"`
			Metrics struct {
				Requests int `json:"requests"`
			} `json:"metrics"`
		} `json:"steps"`
	}](t, context.Background(), shardPlan(url, "thresholds: [\"download.requests > 100\"]\n"), nil, nil, "-shard", "auto", "-out", out+"/")
	if err != nil {
		t.Fatalf("shard run: %v", err)
	}
	if saved, err := loadReport(filepath.Join(out, "shard-1.json")); err != nil || *saved.Shard != (ShardInfo{1, 3}) {
		t.Errorf("-out FOLDER/: %v", err)
	}
	if r.Shard == nil || *r.Shard != (ShardInfo{1, 3}) {
		t.Errorf("shard %+v, want {1 3}", r.Shard)
	}
	if r.Steps[0].Name != "download" || r.Steps[0].Metrics.Requests != 12 { // jobs 1, 4, ..., 34 of 37
		t.Errorf("download: %+v, want 12 requests", r.Steps[0])
	}
	th := r.Thresholds[0]
	if th.OK != nil || th.Value == nil || *th.Value != 12 || !strings.Contains(th.Note, "teckenrun merge evaluates it") {
		t.Errorf("threshold %+v, want the shard's value 12 without a verdict", th)
	}
}

func TestShardFlagErrors(t *testing.T) {
	noSeed := "host: embedded\nsteps:\n  - download: {csv: q.csv}\n"
	withSeed := "host: embedded\nseed: 3\nsteps:\n" +
		"  - make-stacks: {from: embedded, count: 2}\n  - symbolicate: {}\n"
	files := map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n/a/B/a.sym,200,false,1\n"}
	for _, tt := range []struct {
		name, plan string
		args       []string
		want       string
	}{
		{"no seed", noSeed, []string{"-shard", "0/2"}, "-shard 0/2 needs a seed, so that every shard shares out the same sequence of jobs: set seed in"},
		{"auto without the environment", noSeed, []string{"-shard", "auto"}, "-shard auto: JOB_COMPLETION_INDEX"},
		{"bad shard", noSeed, []string{"-shard", "2/2"}, "the index must be from 0 to 1"},
		{"baseline", withSeed, []string{"-shard", "0/2", "-baseline", "x.json"}, "-baseline compares whole runs, not a shard"},
		{"needs from shard 0", withSeed, []string{"-shard", "1/2"}, "steps[1].symbolicate.stacks_dir: needs stack files from steps[0] (make-stacks), which runs on shard 0 only; with -shard, give that step shards: each, or this one shards: first"},
		{"split what cannot split", "host: embedded\nseed: 3\nsteps:\n  - make-stacks: {from: embedded, count: 2}\n    shards: split\n", []string{"-shard", "0/2"},
			"steps[0].shards: this make-stacks step cannot split its work over shards (only download (of a csv), symbolicate and mix steps can); use first or each"},
		{"split a download of uploads", "host: embedded\nseed: 3\nsteps:\n  - upload: {urls: [\"http://127.0.0.1:1/a.zip\"]}\n    shards: each\n  - download: {uploaded: true}\n    shards: split\n", []string{"-shard", "0/2"},
			"steps[1].shards: this download step cannot split its work over shards"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envShardIndex, "")
			t.Setenv(envShards, "")
			_, out, err := runPlanAs[Report](t, context.Background(), tt.plan, files, nil, tt.args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v (output %q), want a usage error with %q", err, out, tt.want)
			}
			if code := exitCode(err, io.Discard); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
		})
	}
	t.Run("seed from the flag", func(t *testing.T) {
		r, _, err := runPlanAs[Report](t, context.Background(), noSeed, files, nil, "-shard", "0/2", "-seed", "9")
		if err != nil {
			t.Fatal(err)
		}
		if r.Seed != 9 || r.Shard == nil || *r.Shard != (ShardInfo{0, 2}) {
			t.Errorf("seed %d, shard %+v; want 9 and {0 2}", r.Seed, r.Shard)
		}
	})
	t.Run("bad mode", func(t *testing.T) {
		p, err := ParsePlan(strings.NewReader("host: embedded\nsteps:\n  - download: {csv: q.csv}\n    shards: half\n"), "plan.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `plan.yaml: steps[0].shards: must be split, first or each, got "half" (line 4)`) {
			t.Errorf("Validate: %v", err)
		}
	})
}

// TestValidateShard: -validate -shard says what each step does there.
func TestValidateShard(t *testing.T) {
	plan := "name: v\nhost: embedded\nseed: 5\nsteps:\n" +
		"  - download: {csv: q.csv, max_requests: 10, rate: 30}\n" +
		"  - make-stacks: {from: embedded, count: 2}\n" +
		"  - name: stacks-everywhere\n    shards: each\n    make-stacks: {from: embedded, count: 2}\n" +
		"  - symbolicate: {}\n"
	files := map[string]string{"q.csv": "URI,STATUS CODE,PRIVATE,COUNT\n/a/B/a.sym,200,false,1\n"}
	dir := t.TempDir()
	for name, content := range map[string]string{"plan.yaml": plan, "q.csv": files["q.csv"]} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runArgs(t, terminal{}, "-validate", "-shard", "1/3", filepath.Join(dir, "plan.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# In shard 1 of 3 (job indexes i ≡ 1 mod 3 of a single run with seed 5):\n",
		"#   download (download, shards: split): 3 of the max_requests 10 requests, at 10/s of the rate 30/s (its slots of the single run's schedule)\n",
		"#   make-stacks (make-stacks, shards: first): skipped: it runs on shard 0 only\n",
		"#   stacks-everywhere (make-stacks, shards: each): runs whole, as on every shard\n",
		"#   symbolicate (symbolicate, shards: split): every 3rd job of the single run's, from job 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("-validate -shard 1/3 lacks %q:\n%s", want, out)
		}
	}
}
