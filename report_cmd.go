package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// runReportCmd is "teckenrun report": it prints a saved report as the run
// printed it, as a table or as JSON, or draws one or more reports as HTML.
func runReportCmd(args []string, stdout, stderr io.Writer, term terminal) error {
	fs := flag.NewFlagSet("teckenrun report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "auto", "output `format`: auto (a table on a terminal, JSON otherwise), table, json, openmetrics or html")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: teckenrun report [-format auto|table|json|openmetrics] RESULT.json\n       teckenrun report -format html RESULT.json [MORE.json ...] > run.html\n\nPrints a report that a run saved (with -out, or its JSON stdout) as the run printed it,\nor draws reports as one HTML page, several overlaid on the same charts.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *format == "html" {
		if fs.NArg() == 0 {
			return usageErrorf("report: want one or more report files (usage: teckenrun report -format html RESULT.json [MORE.json ...])")
		}
		labels := fileLabels(fs.Args())
		reports := make([]namedReport, fs.NArg())
		for i, path := range fs.Args() {
			r, err := loadReport(path)
			if err != nil {
				return usageError{err}
			}
			reports[i] = namedReport{labels[i], r}
		}
		return htmlReport(stdout, reports)
	}
	if fs.NArg() != 1 {
		return usageErrorf("report: want one report file, got %d arguments (usage: teckenrun report [-format table|json|openmetrics] RESULT.json; several only with -format html)", fs.NArg())
	}
	render, err := chooseReporter(*format, term)
	if err != nil {
		return err
	}
	r, err := loadReport(fs.Arg(0))
	if err != nil {
		return usageError{err}
	}
	return render(stdout, r)
}

// chooseReporter returns the reporter of a -format value: auto is a table
// on a terminal and JSON otherwise.
func chooseReporter(format string, term terminal) (reporter, error) {
	switch format {
	case "json":
		return jsonReport, nil
	case "table":
		return tableReport, nil
	case "openmetrics":
		return openMetricsReport, nil
	case "auto":
		if term.stdout {
			return tableReport, nil
		}
		return jsonReport, nil
	}
	return nil, usageErrorf("-format must be auto, table, json or openmetrics, got %q", format)
}
