package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

const mergeUsage = "usage: teckenrun merge [-out MERGED.json|s3://…] [-partial] [-shard I/N|auto] [-wait DURATION] [-s3-endpoint URL] [-format auto|table|json] REPORT.json|s3://BUCKET/KEY.json|s3://BUCKET/PREFIX/ …"

// mergePoll is how often merge -wait looks for the reports of missing
// shards again.
const mergePoll = 10 * time.Second

// mergeSleep waits between two looks for missing reports; tests replace
// it.
var mergeSleep = sleep

// notYet marks what waiting may fix: a shard's report that is not there
// yet.
type notYet struct{ error }

func (e notYet) Unwrap() error { return e.error }

// runMergeCmd is "teckenrun merge": it merges the reports of the shards
// of one run into the report of the whole run, evaluates the plan's
// thresholds on it, and exits as that run would have: 1 when a step of a
// shard failed or a shard was interrupted, 3 when a threshold is not
// met, 2 when the reports are not the shards of one run.
//
// With -shard, merge runs in the pod of a shard (the main container of an
// Indexed Job's pods, after the shard's init container): shard 0 merges,
// the other shards have nothing to do. With -wait, it waits that long for
// the reports of shards still running.
func runMergeCmd(ctx context.Context, args []string, stdout, stderr io.Writer, term terminal) error {
	fset := flag.NewFlagSet("teckenrun merge", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	format := fset.String("format", "auto", "output `auto|table|json`: auto is tables on a terminal, JSON otherwise")
	out := fset.String("out", "", "also write the merged JSON report to `FILE` or s3://BUCKET/KEY")
	partial := fset.Bool("partial", false, "merge the shards given when some are missing; the report says it is partial")
	endpoint := fset.String("s3-endpoint", "", "read and write s3:// reports on the S3-compatible store at `URL` (path-style)")
	wait := fset.Duration("wait", 0, "wait up to `DURATION` for the reports of shards that are missing")
	var sh shardSpec
	fset.Func("shard", "in the pod of shard `I/N` (or auto, as a run takes it): shard 0 merges N shards, the others exit at once", func(s string) (err error) {
		sh, err = parseShard(s, os.Getenv)
		return err
	})
	var inputs []string
	for { // flags may come before or after the reports
		if err := fset.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "%s\n\nMerges the reports of the shards of one run (-shard I/N) into the report of the whole run,\nand evaluates the plan's thresholds on it. An s3:// URL ending in / merges every .json under it.\n\nFlags:\n", mergeUsage)
				fset.SetOutput(stderr)
				fset.PrintDefaults()
				return err
			}
			return usageErrorf("merge: %w (%s)", err, mergeUsage)
		}
		if fset.NArg() == 0 {
			break
		}
		inputs = append(inputs, fset.Arg(0))
		args = fset.Args()[1:]
	}
	if len(inputs) == 0 {
		return usageErrorf("merge: no reports given (%s)", mergeUsage)
	}
	render, err := chooseReporter(*format, term)
	if err != nil {
		return err
	}
	if err := checkOut("-out", *out); err != nil {
		return err
	}
	if sh.count > 0 && sh.index != 0 {
		fmt.Fprintf(stderr, "teckenrun merge: shard %s: shard 0 merges the run, nothing to do here\n", sh)
		return nil
	}
	var store reportStore
	openStore := func() (reportStore, error) {
		if store == nil {
			s, err := newReportStore(ctx, *endpoint)
			if err != nil {
				return nil, err
			}
			store = s
		}
		return store, nil
	}
	deadline := time.Now().Add(*wait)
	var merged *Report
	for {
		reports, err := loadInputs(ctx, inputs, openStore)
		if err == nil {
			merged, err = mergeReports(reports, sh.count, *partial)
		}
		if err == nil {
			break
		}
		var ny notYet
		if !errors.As(err, &ny) || !time.Now().Before(deadline) {
			return err
		}
		if serr := mergeSleep(ctx, min(mergePoll, time.Until(deadline))); serr != nil {
			return fmt.Errorf("%w while waiting: %w", serr, err)
		}
	}
	if err := render(stdout, merged); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	switch {
	case *out == "":
	case isS3URL(*out):
		st, err := openStore()
		if err != nil {
			return err
		}
		if err := putReport(ctx, st, *out, merged); err != nil {
			return err
		}
	default:
		if err := writeFileAtomic(*out, func(w io.Writer) error { return jsonReport(w, merged) }); err != nil {
			return err
		}
	}
	return mergedError(merged)
}

// loadInputs reads the reports of files and s3:// URLs; a report that is
// not there (yet) is a notYet error.
func loadInputs(ctx context.Context, inputs []string, openStore func() (reportStore, error)) ([]namedReport, error) {
	var reports []namedReport
	for _, in := range inputs {
		if !isS3URL(in) {
			r, err := loadReport(in)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, usageError{notYet{err}}
			case err != nil:
				return nil, usageError{err}
			}
			reports = append(reports, namedReport{in, r})
			continue
		}
		st, err := openStore()
		if err != nil {
			return nil, err
		}
		rs, err := getReports(ctx, st, in)
		if err != nil {
			return nil, err
		}
		reports = append(reports, rs...)
	}
	return reports, nil
}

// mergedError is the error of the merged run, as runPlan and run would
// return it: failed steps first, then thresholds not met.
func mergedError(r *Report) error {
	var failed []string
	for _, s := range r.Steps {
		if !s.OK {
			failed = append(failed, s.Name)
		}
	}
	switch {
	case r.Interrupted:
		return errors.New("a shard was interrupted; the report shows what finished")
	case len(failed) > 0:
		return fmt.Errorf("step %s failed", strings.Join(failed, ", "))
	}
	return failedThresholds(r.Thresholds)
}
