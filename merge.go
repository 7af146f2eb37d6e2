package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mozilla-services/teckenrun/internal/metrics"
)

// Merging the reports of one sharded run. A report keeps every figure in a
// mergeable form: counts, exact sums and HdrHistograms (metrics.Summary,
// metrics.ValueSummary), so that the merge of the shards is what one
// process running all of their jobs would have reported, percentiles
// within the histograms' precision. Ratios and rates are computed again
// from the merged counts and time windows, never averaged.

// MergeInfo says which shards teckenrun merge added up into a report.
type MergeInfo struct {
	// Shards is the number of shards of the run.
	Shards int `json:"shards"`
	// Merged are the indexes of the shards merged, ascending.
	Merged []int `json:"merged"`
	// Missing are the indexes of the shards without a report, ascending;
	// [] unless Partial.
	Missing []int `json:"missing"`
	// Partial is true when shards were missing and -partial merged the
	// others: the figures are those of part of the run.
	Partial bool `json:"partial"`
	// Inputs are the reports merged (files or s3:// URLs), in shard order.
	Inputs []string `json:"inputs"`
}

// mergeReports merges the reports of one sharded run of count shards (0:
// the count the reports give). It refuses, as a usage error, reports that
// are not shards of one run (another plan, seed or shard count, or the
// same shard twice) and, unless partial, a run with shards missing (a
// notYet error: they may still come).
func mergeReports(in []namedReport, count int, partial bool) (*Report, error) {
	if len(in) == 0 {
		return nil, usageErrorf("merge: no reports to merge")
	}
	for _, n := range in {
		if n.r.Shard == nil {
			return nil, usageErrorf("merge: %s is not the report of a shard (it has no shard: runs made with -shard I/N have one)", n.label)
		}
	}
	in = slices.Clone(in)
	slices.SortStableFunc(in, func(a, b namedReport) int { return cmp.Compare(a.r.Shard.Index, b.r.Shard.Index) })
	first := in[0]
	if count == 0 {
		count = first.r.Shard.Count
	} else if first.r.Shard.Count != count {
		return nil, usageErrorf("merge: %s is a shard of %d, and -shard says the run has %d", first.label, first.r.Shard.Count, count)
	}
	for _, n := range in[1:] {
		r := n.r
		switch {
		case r.PlanSHA256 != first.r.PlanSHA256:
			return nil, usageErrorf("merge: %s and %s are reports of different plans (plan_sha256 %s and %s)", first.label, n.label, short(first.r.PlanSHA256), short(r.PlanSHA256))
		case r.Seed != first.r.Seed:
			return nil, usageErrorf("merge: %s and %s are runs with different seeds (%d and %d): shards of one run share its seed", first.label, n.label, first.r.Seed, r.Seed)
		case r.Shard.Count != count:
			return nil, usageErrorf("merge: %s is a shard of %d and %s of %d: shards of one run have one count", first.label, count, n.label, r.Shard.Count)
		}
	}
	info := &MergeInfo{Shards: count, Merged: []int{}, Missing: []int{}, Inputs: []string{}}
	for i, n := range in {
		if i > 0 && n.r.Shard.Index == in[i-1].r.Shard.Index {
			return nil, usageErrorf("merge: %s and %s are both shard %d/%d", in[i-1].label, n.label, n.r.Shard.Index, count)
		}
		info.Merged = append(info.Merged, n.r.Shard.Index)
		info.Inputs = append(info.Inputs, n.label)
	}
	for i := range count {
		if !slices.Contains(info.Merged, i) {
			info.Missing = append(info.Missing, i)
		}
	}
	if len(info.Missing) > 0 {
		if !partial {
			return nil, usageError{notYet{fmt.Errorf("merge: %s missing: merge every shard's report, or pass -partial to merge those given", shardList(info.Missing, count))}}
		}
		info.Partial = true
	}

	out := &Report{SchemaVersion: reportSchemaVersion, Version: first.r.Version, Plan: first.r.Plan, PlanSHA256: first.r.PlanSHA256,
		Host: first.r.Host, Embedded: first.r.Embedded, OK: true, Seed: first.r.Seed, Steps: []StepReport{},
		Thresholds: []ThresholdResult{}, Merge: info}
	var order []string // step names, each after the steps before it in any report
	steps := map[string]*StepReport{}
	for k, n := range in {
		r := n.r
		out.OK = out.OK && r.OK
		out.Interrupted = out.Interrupted || r.Interrupted
		if k == 0 || r.StartedAt.Before(out.StartedAt) {
			out.StartedAt = r.StartedAt
		}
		if k == 0 || r.EndedAt.After(out.EndedAt) {
			out.EndedAt = r.EndedAt
		}
		at := 0 // where the next new step of r goes in order
		for _, s := range r.Steps {
			s.Error = shardError(s.Error, r.Shard.Index)
			dst, seen := steps[s.Name]
			if !seen {
				steps[s.Name] = &s
				order = slices.Insert(order, at, s.Name)
				at++
				continue
			}
			at = slices.Index(order, s.Name) + 1
			if err := dst.mergeStep(s); err != nil {
				return nil, usageErrorf("merge: %s: step %q: %w", n.label, s.Name, err)
			}
		}
	}
	for _, name := range order {
		out.Steps = append(out.Steps, *steps[name])
	}
	out.DurationS = out.EndedAt.Sub(out.StartedAt).Seconds()
	ts, err := mergedThresholds(in, out)
	if err != nil {
		return nil, err
	}
	out.Thresholds = ts
	return out, nil
}

// mergeStep adds another shard's report of the same step.
func (s *StepReport) mergeStep(o StepReport) error {
	if o.Kind != s.Kind {
		return fmt.Errorf("is a %s step in one report and a %s step in another", s.Kind, o.Kind)
	}
	s.OK = s.OK && o.OK
	s.DurationS = max(s.DurationS, o.DurationS) // the shards ran at once
	s.Ran = s.Ran || o.Ran
	s.Interrupted = s.Interrupted || o.Interrupted
	switch {
	case s.Error == nil:
		s.Error = o.Error
	case o.Error != nil:
		s.Error = ptr(*s.Error + "; " + *o.Error)
	}
	return s.result.merge(o.result)
}

// shardError prefixes a step's error with the shard it happened in.
func shardError(msg *string, shard int) *string {
	if msg == nil {
		return nil
	}
	return ptr(fmt.Sprintf("shard %d: %s", shard, *msg))
}

// mergedThresholds evaluates the plan's thresholds on the merged report.
// The expressions are those the shards' reports list (every report lists
// all of its plan's thresholds, evaluated or not); each is parsed again
// against the merged steps, by name and kind, with the registry that the
// plan was validated with. A threshold whose step is in no shard's
// report (not selected with -only, or the run stopped before it) gets a
// note and no verdict: the shards' failed step, if any, fails the merge.
func mergedThresholds(in []namedReport, out *Report) ([]ThresholdResult, error) {
	first := in[0]
	exprs := make([]string, len(first.r.Thresholds))
	for i, t := range first.r.Thresholds {
		exprs[i] = t.Expr
	}
	selected := map[string]bool{}
	for _, n := range in[1:] {
		if !slices.EqualFunc(n.r.Thresholds, first.r.Thresholds, func(a, b ThresholdResult) bool { return a.Expr == b.Expr }) {
			return nil, usageErrorf("merge: %s and %s list different thresholds: reports of one plan list the same", first.label, n.label)
		}
	}
	steps := make([]namedKind, 0, len(out.Steps))
	for _, s := range out.Steps {
		steps = append(steps, namedKind{s.Name, s.Kind})
		selected[s.Name] = true
	}
	results := make([]ThresholdResult, 0, len(exprs))
	for _, expr := range exprs {
		t, err := parseThreshold(expr, steps)
		if err != nil {
			// Its step ran in no shard: not selected (-only), or the run
			// stopped before it; the shards' reports say which.
			results = append(results, ThresholdResult{Expr: expr, Note: "step in no shard's report"})
			continue
		}
		results = append(results, evaluate([]threshold{t}, out, selected)...)
	}
	if out.Merge.Partial {
		for i := range results {
			if results[i].Note == "" {
				results[i].Note = "on a partial merge: shards missing"
			}
		}
	}
	return results, nil
}

// shardList names shards: "shard 2 of 4 is", "shards 1, 3 of 4 are".
func shardList(idx []int, count int) string {
	parts := make([]string, len(idx))
	for i, v := range idx {
		parts[i] = fmt.Sprint(v)
	}
	if len(idx) == 1 {
		return fmt.Sprintf("shard %s of %d is", parts[0], count)
	}
	return fmt.Sprintf("shards %s of %d are", strings.Join(parts, ", "), count)
}

// short cuts a hex digest for messages.
func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12] + "…"
	}
	return sha
}

// mergeSummary adds the request metrics of b to a, exactly.
func mergeSummary(a *metrics.Summary, b metrics.Summary) error {
	ma, err := metrics.FromSummary(*a)
	if err != nil {
		return fmt.Errorf("metrics.%w", err)
	}
	mb, err := metrics.FromSummary(b)
	if err != nil {
		return fmt.Errorf("metrics.%w", err)
	}
	ma.Merge(mb)
	*a = ma.Summary()
	return nil
}

// mergeValues adds the value distribution b to a; either may be nil.
func mergeValues(a, b *metrics.ValueSummary) (*metrics.ValueSummary, error) {
	da, err := metrics.FromValueSummary(a)
	if err != nil {
		return nil, err
	}
	db, err := metrics.FromValueSummary(b)
	if err != nil {
		return nil, err
	}
	da.Merge(db)
	return da.Summary(), nil
}

// merge adds another shard's download: counts and distributions add up
// and the shares are computed again. The CSV's rows are every shard's
// (each reads the whole CSV). The fast-cache share covers the last
// fastcache_window lookups of each shard, so up to shards × the window.
func (r *DownloadResult) merge(other stepResult) error {
	o := other.(*DownloadResult)
	if err := mergeSummary(&r.Metrics, o.Metrics); err != nil {
		return err
	}
	r.Right += o.Right
	r.IgnoreHits += o.IgnoreHits
	r.FastcacheFast += o.FastcacheFast
	r.FastcacheLookups += o.FastcacheLookups
	r.RightPct = pctOf(int64(r.Right), r.Metrics.Requests)
	r.IgnoreHitsPct = pctOf(int64(r.IgnoreHits), r.Metrics.Requests)
	r.FastcachePct = pctOf(int64(r.FastcacheFast), int64(r.FastcacheLookups))
	byStatus := map[int]DownloadStatus{}
	for _, s := range slices.Concat(r.ByStatus, o.ByStatus) {
		m, ok := byStatus[s.Status]
		if !ok {
			byStatus[s.Status] = s
			continue
		}
		in, err := mergeValues(m.Internal, s.Internal)
		if err != nil {
			return fmt.Errorf("by_status %d: internal.%w", s.Status, err)
		}
		byStatus[s.Status] = DownloadStatus{Status: s.Status, Count: m.Count + s.Count, Right: m.Right + s.Right, Internal: in}
	}
	r.ByStatus = r.ByStatus[:0]
	for _, status := range slices.Sorted(maps.Keys(byStatus)) {
		r.ByStatus = append(r.ByStatus, byStatus[status])
	}
	return nil
}

// merge adds another shard's symbolication: counts, error messages and
// debug figures add up, and the shares and the conclusion are computed
// again from the sums. The stack files (files, skipped_files,
// sanitized_frames) are every shard's, each having read them all; the
// invalid sample is the lowest shard's.
func (r *SymbolicateResult) merge(other stepResult) error {
	o := other.(*SymbolicateResult)
	if err := mergeSummary(&r.Metrics, o.Metrics); err != nil {
		return err
	}
	r.Jobs += o.Jobs
	r.Frames += o.Frames
	r.KnownFrames += o.KnownFrames
	r.SymbolicatedFrames += o.SymbolicatedFrames
	r.SymbolicatedPct = pctOf(int64(r.SymbolicatedFrames), int64(r.KnownFrames))
	r.InvalidResponses += o.InvalidResponses
	if r.InvalidSample == "" {
		r.InvalidSample = o.InvalidSample
	}
	r.DebugObjects += o.DebugObjects
	if r.Debug == nil {
		r.Debug = map[string]*metrics.ValueSummary{}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Debug)) {
		v, err := mergeValues(r.Debug[k], o.Debug[k])
		if err != nil {
			return fmt.Errorf("debug[%q].%w", k, err)
		}
		r.Debug[k] = v
	}
	r.conclude()
	for _, m := range o.ErrorsByMessage {
		i := slices.IndexFunc(r.ErrorsByMessage, func(e ErrorMessage) bool { return e.Status == m.Status && e.Message == m.Message })
		if i < 0 {
			r.ErrorsByMessage = append(r.ErrorsByMessage, m)
			continue
		}
		e := &r.ErrorsByMessage[i]
		e.Count += m.Count
		e.SampleFiles = append(e.SampleFiles, m.SampleFiles[:min(len(m.SampleFiles), max(maxSampleFiles-len(e.SampleFiles), 0))]...)
	}
	sortErrorMessages(r.ErrorsByMessage)
	return nil
}

// merge adds another shard's uploads: each shard that ran the step
// (shards: each) uploaded zips or URLs of its own, so the lists join and
// the counts add up.
func (r *UploadResult) merge(other stepResult) error {
	o := other.(*UploadResult)
	if err := mergeSummary(&r.Metrics, o.Metrics); err != nil {
		return err
	}
	r.Uploads = append(r.Uploads, o.Uploads...)
	r.Succeeded += o.Succeeded
	r.Failed += o.Failed
	r.Skipped += o.Skipped
	r.SkippedUploads = append(r.SkippedUploads, o.SkippedUploads...)
	r.Cancelled += o.Cancelled
	r.BytesTotal += o.BytesTotal
	r.Retries += o.Retries
	r.StaleLocksTakenOver = append(r.StaleLocksTakenOver, o.StaleLocksTakenOver...)
	return nil
}

// The kinds that prepare files (make-stacks, list-zips, make-zips) run on
// shard 0 alone, or with shards: each on every shard, where each makes
// the same files from the run's seed for the steps after it: their merge
// is the lowest shard's result, the others adding nothing to it.

func (r *MakeStacksResult) merge(stepResult) error   { return nil }
func (r *ListZipsResult) merge(stepResult) error     { return nil }
func (r *MakeZipsResult) merge(stepResult) error     { return nil }
func (r *AnalyzeResult) merge(stepResult) error      { return nil }
func (r *FetchRecordsResult) merge(stepResult) error { return nil }

// merge adds another shard's mix: its metrics, each scenario's report as
// that kind merges it, the draws and the checks.
func (r *MixResult) merge(other stepResult) error {
	o := other.(*MixResult)
	if err := mergeSummary(&r.Metrics, o.Metrics); err != nil {
		return err
	}
	r.CheckFailures += o.CheckFailures
	if r.Balance != nil && o.Balance != nil { // every shard balanced the same CSV
		r.Balance = o.Balance
	}
	d, od := r.Scenarios.Download, o.Scenarios.Download
	s, os := r.Scenarios.Symbolicate, o.Scenarios.Symbolicate
	if (d == nil) != (od == nil) || (s == nil) != (os == nil) {
		return errors.New("the shards' mixes have different scenarios")
	}
	draws := 0
	if d != nil {
		if err := d.DownloadResult.merge(&od.DownloadResult); err != nil {
			return err
		}
		d.MixShare.add(od.MixShare)
		draws += d.Draws
	}
	if s != nil {
		if err := s.SymbolicateResult.merge(&os.SymbolicateResult); err != nil {
			return err
		}
		s.MixShare.add(os.MixShare)
		draws += s.Draws
	}
	if d != nil {
		d.SharePct = pctOf(int64(d.Draws), int64(draws))
	}
	if s != nil {
		s.SharePct = pctOf(int64(s.Draws), int64(draws))
	}
	return nil
}

// add adds another shard's draws and checks to a scenario's share.
func (sh *MixShare) add(o MixShare) {
	sh.Draws += o.Draws
	sh.CheckFailures += o.CheckFailures
	for _, c := range o.CheckSamples {
		if len(sh.CheckSamples) < maxCheckSamples {
			sh.CheckSamples = append(sh.CheckSamples, c)
		}
	}
}
