package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

const mergeUsage = "usage: teckenrun merge [-out MERGED.json|s3://…] [-partial] [-s3-endpoint URL] [-format auto|table|json] REPORT.json|s3://BUCKET/KEY.json|s3://BUCKET/PREFIX/ …"

// runMergeCmd is "teckenrun merge": it merges the reports of the shards
// of one run into the report of the whole run, evaluates the plan's
// thresholds on it, and exits as that run would have: 1 when a step of a
// shard failed or a shard was interrupted, 3 when a threshold is not
// met, 2 when the reports are not the shards of one run.
func runMergeCmd(ctx context.Context, args []string, stdout, stderr io.Writer, term terminal) error {
	fs := flag.NewFlagSet("teckenrun merge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	format := fs.String("format", "auto", "output `auto|table|json`: auto is tables on a terminal, JSON otherwise")
	out := fs.String("out", "", "also write the merged JSON report to `FILE` or s3://BUCKET/KEY")
	partial := fs.Bool("partial", false, "merge the shards given when some are missing; the report says it is partial")
	endpoint := fs.String("s3-endpoint", "", "read and write s3:// reports on the S3-compatible store at `URL` (path-style)")
	var inputs []string
	for { // flags may come before or after the reports
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "%s\n\nMerges the reports of the shards of one run (-shard I/N) into the report of the whole run,\nand evaluates the plan's thresholds on it. An s3:// URL ending in / merges every .json under it.\n\nFlags:\n", mergeUsage)
				fs.SetOutput(stderr)
				fs.PrintDefaults()
				return err
			}
			return usageErrorf("merge: %w (%s)", err, mergeUsage)
		}
		if fs.NArg() == 0 {
			break
		}
		inputs = append(inputs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(inputs) == 0 {
		return usageErrorf("merge: no reports given (%s)", mergeUsage)
	}
	render, err := chooseReporter(*format, term)
	if err != nil {
		return err
	}
	if err := checkOut(*out); err != nil {
		return err
	}
	var store reportStore
	var reports []namedReport
	for _, in := range inputs {
		if !isS3URL(in) {
			r, err := loadReport(in)
			if err != nil {
				return usageError{err}
			}
			reports = append(reports, namedReport{in, r})
			continue
		}
		if store == nil {
			if store, err = newReportStore(ctx, *endpoint); err != nil {
				return err
			}
		}
		rs, err := getReports(ctx, store, in)
		if err != nil {
			return err
		}
		reports = append(reports, rs...)
	}
	merged, err := mergeReports(reports, *partial)
	if err != nil {
		return err
	}
	if err := render(stdout, merged); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	switch {
	case *out == "":
	case isS3URL(*out):
		if store == nil {
			if store, err = newReportStore(ctx, *endpoint); err != nil {
				return err
			}
		}
		if err := putReport(ctx, store, *out, merged); err != nil {
			return err
		}
	default:
		if err := writeFileAtomic(*out, func(w io.Writer) error { return jsonReport(w, merged) }); err != nil {
			return err
		}
	}
	return mergedError(merged)
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
