package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sharding splits one run over n processes (the pods of a Kubernetes
// Indexed Job, say): shard i runs, of every step that splits, the jobs
// whose index is ≡ i (mod n) of the sequence a single run with the same
// seed issues, at the times that run's schedule gives them. The union of
// the shards is then the single run, and teckenrun merge adds their
// reports up exactly.

// Step modes in a sharded run (the step key shards).
const (
	shardsSplit = "split" // each shard runs its share of the jobs
	shardsFirst = "first" // shard 0 runs the whole step, the others skip it
	shardsEach  = "each"  // every shard runs the whole step
)

// splittable says whether a step's job i is the same in every run with
// the same seed, so that shards can share its jobs out: a download's query
// i of the shuffled CSV, a symbolicate's batch i of the shuffled stack
// files. A download of uploaded: true replays what this shard uploaded,
// which differs from shard to shard. Such steps split by default; the
// others run on shard 0 only.
func splittable(w workload) bool {
	switch w := w.(type) {
	case *DownloadStep:
		return !w.Uploaded
	case *SymbolicateStep:
		return true
	case *MixStep: // job i's scenario and job depend on i and the seed alone
		return true
	}
	return false
}

// splittableKinds names what can split, for messages.
const splittableKinds = "download (of a csv), symbolicate and mix"

// ShardInfo says which shard of a sharded run a report is.
type ShardInfo struct {
	// Index is the shard's number, 0 to Count-1.
	Index int `json:"index"`
	// Count is the number of shards of the run.
	Count int `json:"count"`
}

// shardSpec is the -shard flag: shard index of count; count is 0 for an
// unsharded run.
type shardSpec struct{ index, count int }

// Environment of -shard auto: Kubernetes sets JOB_COMPLETION_INDEX in the
// pods of an Indexed Job; the manifest sets TECKENRUN_SHARDS.
const (
	envShardIndex = "JOB_COMPLETION_INDEX"
	envShards     = "TECKENRUN_SHARDS"
)

// parseShard reads -shard: "i/n", or "auto" for i and n from the
// environment (getenv).
func parseShard(s string, getenv func(string) string) (shardSpec, error) {
	if s == "auto" {
		idx, n := getenv(envShardIndex), getenv(envShards)
		var missing []string
		if idx == "" {
			missing = append(missing, envShardIndex+" (set by Kubernetes in the pods of an Indexed Job)")
		}
		if n == "" {
			missing = append(missing, envShards+" (the number of shards, set in the Job's manifest)")
		}
		if len(missing) > 0 {
			return shardSpec{}, fmt.Errorf("-shard auto: %s not set", strings.Join(missing, " and "))
		}
		sh, err := parseShard(idx+"/"+n, getenv)
		if err != nil {
			return shardSpec{}, fmt.Errorf("-shard auto: %s=%q and %s=%q: %w", envShardIndex, idx, envShards, n, err)
		}
		return sh, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, ierr := strconv.Atoi(is)
	n, nerr := strconv.Atoi(ns)
	switch {
	case !ok || ierr != nil || nerr != nil:
		return shardSpec{}, fmt.Errorf("%q is not INDEX/COUNT (such as 0/4) or auto", s)
	case n < 1:
		return shardSpec{}, fmt.Errorf("%q: the count of shards must be at least 1", s)
	case i < 0 || i >= n:
		return shardSpec{}, fmt.Errorf("%q: the index must be from 0 to %d (shards are numbered from 0)", s, n-1)
	}
	return shardSpec{index: i, count: n}, nil
}

// sharded reports whether the run is one of several shards.
func (sh shardSpec) sharded() bool { return sh.count > 1 }

func (sh shardSpec) String() string { return fmt.Sprintf("%d/%d", sh.index, sh.count) }

// info is the report's shard: nil for an unsharded run.
func (sh shardSpec) info() *ShardInfo {
	if sh.count == 0 {
		return nil
	}
	return &ShardInfo{Index: sh.index, Count: sh.count}
}

// shardMode returns the step's mode: its shards key, else split for the
// kinds that can split and first for the others.
func (s *Step) shardMode() string {
	if s.Shards != "" {
		return s.Shards
	}
	if ws := s.workloads(); len(ws) == 1 && splittable(ws[0]) {
		return shardsSplit
	}
	return shardsFirst
}

// checkShardMode validates a step's shards key.
func (v *validator) checkShardMode(path string, s *Step, w workload) {
	switch s.Shards {
	case "", shardsFirst, shardsEach:
	case shardsSplit:
		if !splittable(w) {
			v.add(path, "this %s step cannot split its work over shards (only %s steps can); use first or each", w.kind(), splittableKinds)
		}
	default:
		v.add(path, "must be split, first or each, got %q", s.Shards)
	}
}

// runs reports whether the step runs in this shard.
func (sh shardSpec) runs(s *Step) bool {
	return !sh.sharded() || sh.index == 0 || s.shardMode() != shardsFirst
}

// splits reports whether the step runs only its share of the jobs here.
func (sh shardSpec) splits(s *Step) bool { return sh.sharded() && s.shardMode() == shardsSplit }

// filter returns the steps that run in this shard.
func (sh shardSpec) filter(p *Plan, steps []int) []int {
	var out []int
	for _, i := range steps {
		if sh.runs(&p.Steps[i]) {
			out = append(out, i)
		}
	}
	return out
}

// checkNeeds reports the steps that run on every shard but take what they
// need from a step that runs on shard 0 only (the last one before them
// that provides it): on the other shards it would be missing.
func (sh shardSpec) checkNeeds(p *Plan, steps []int) error {
	if !sh.sharded() {
		return nil
	}
	v := &validator{plan: p, steps: steps}
	for _, i := range steps {
		s := &p.Steps[i]
		if s.shardMode() == shardsFirst {
			continue
		}
		w := s.workloads()[0]
		for _, n := range w.needs() {
			last := -1
			for _, j := range steps {
				if k, _ := kindByName(p.Steps[j].workloads()[0].kind()); j < i && slices.Contains(k.provides, n.what) {
					last = j
				}
			}
			if last >= 0 && p.Steps[last].shardMode() == shardsFirst {
				v.add(fmt.Sprintf("steps[%d].%s%s", i, w.kind(), n.field),
					"needs %s from steps[%d] (%s), which runs on shard 0 only; with -shard, give that step shards: each, or this one shards: first", n.what, last, p.Steps[last].Name)
			}
		}
	}
	return v.err()
}

// describe says, for -validate, what each step does in this shard.
func (sh shardSpec) describe(p *Plan, steps []int) string {
	if !sh.sharded() {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# In shard %d of %d (job indexes i ≡ %d mod %d of a single run with seed %d):\n", sh.index, sh.count, sh.index, sh.count, *p.Seed)
	for _, i := range steps {
		s := &p.Steps[i]
		w := s.workloads()[0]
		fmt.Fprintf(&b, "#   %s (%s, shards: %s): ", s.Name, w.kind(), s.shardMode())
		switch s.shardMode() {
		case shardsEach:
			b.WriteString("runs whole, as on every shard\n")
			continue
		case shardsFirst:
			if sh.index == 0 {
				b.WriteString("runs whole, on this shard only\n")
			} else {
				b.WriteString("skipped: it runs on shard 0 only\n")
			}
			continue
		}
		var total, key string
		var rate float64
		switch w := w.(type) {
		case *DownloadStep:
			rate = w.Rate
			if w.MaxRequests > 0 {
				total, key = strconv.Itoa(sh.shareOf(w.MaxRequests)), fmt.Sprintf("max_requests %d", w.MaxRequests)
			}
		case *SymbolicateStep:
			rate = w.Rate
			if w.Limit > 0 {
				total, key = strconv.Itoa(sh.shareOf(w.Limit)), fmt.Sprintf("limit %d", w.Limit)
			}
		}
		if total != "" {
			fmt.Fprintf(&b, "%s of the %s requests", total, key)
		} else {
			fmt.Fprintf(&b, "every %s job of the single run's, from job %d", ordinal(sh.count), sh.index)
		}
		if rate > 0 {
			fmt.Fprintf(&b, ", at %s/s of the rate %s/s (its slots of the single run's schedule)", strconv.FormatFloat(rate/float64(sh.count), 'g', 6, 64), strconv.FormatFloat(rate, 'g', 6, 64))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// shareOf is how many of total jobs (0, 1, ... total-1) fall to the shard.
func (sh shardSpec) shareOf(total int) int {
	return pace{shard: sh.index, shards: sh.count}.shareOf(total)
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return strconv.Itoa(n) + "th"
	case n%10 == 1:
		return strconv.Itoa(n) + "st"
	case n%10 == 2:
		return strconv.Itoa(n) + "nd"
	case n%10 == 3:
		return strconv.Itoa(n) + "rd"
	}
	return strconv.Itoa(n) + "th"
}

// owns reports whether job i is the pace's: every job without shards.
func (p pace) owns(i int) bool { return p.shards <= 1 || i%p.shards == p.shard }

// shareOf is how many of the jobs 0 .. total-1 the pace owns; total when
// it is -1 (until a duration) or the step is not split.
func (p pace) shareOf(total int) int {
	if p.shards <= 1 || total < 0 {
		return total
	}
	if total <= p.shard {
		return 0
	}
	return (total-p.shard-1)/p.shards + 1
}

// shardThresholds keeps a shard's thresholds with its own values, but
// without a verdict: a shard does a share of the work, so that counts and
// rates are a share too; teckenrun merge evaluates them on the whole.
// A shard thus never exits 3, and a Job's pods fail only when they could
// not run.
func (sh shardSpec) shardThresholds(rs []ThresholdResult) []ThresholdResult {
	if !sh.sharded() {
		return rs
	}
	for i := range rs {
		rs[i].OK = nil
		rs[i].Note = fmt.Sprintf("shard %s alone: teckenrun merge evaluates it", sh)
	}
	return rs
}

// outFile is where a shard writes its report: -out, or shard-I.json in
// it when -out ends in / (a folder, or a prefix in S3), so that the pods
// of an Indexed Job can share one -out.
func (sh shardSpec) outFile(out string) string {
	if sh.count == 0 || !strings.HasSuffix(out, "/") {
		return out
	}
	return fmt.Sprintf("%sshard-%d.json", out, sh.index)
}

// checkFlags refuses a sharded run without a seed, for the shards would
// then share out different sequences and overlap, and one with -baseline,
// which compares whole runs (compare the merged report instead).
func (sh shardSpec) checkFlags(p *Plan, o *options) error {
	switch {
	case sh.count == 0:
		return nil
	case p.Seed == nil:
		return usageErrorf("-shard %s needs a seed, so that every shard shares out the same sequence of jobs: set seed in %s or pass -seed N", sh, p.file)
	case o.baseline != "":
		return usageErrorf("-baseline compares whole runs, not a shard: compare the report of teckenrun merge (teckenrun compare OLD.json MERGED.json)")
	}
	return nil
}

// shardNote is what the table's first line says of a shard's report, or
// of one that merge made.
func shardNote(r *Report) string {
	switch {
	case r.Shard != nil:
		return fmt.Sprintf(", shard %d/%d", r.Shard.Index, r.Shard.Count)
	case r.Merge == nil:
		return ""
	case r.Merge.Partial:
		return fmt.Sprintf(", merged from %d of %d shards: PARTIAL, %s missing", len(r.Merge.Merged), r.Merge.Shards, shardList(r.Merge.Missing, r.Merge.Shards))
	}
	return fmt.Sprintf(", merged from %d shards", r.Merge.Shards)
}
