// Command teckenrun load-tests and regression-tests Mozilla's symbol
// server, Tecken: its download, upload and symbolication APIs.
//
// It runs a YAML plan of ordered steps against a host:
//
//	teckenrun plans/demo.yaml
//
// On a terminal it prints tables; when stdout is piped it prints one JSON
// document. Progress goes to stderr (-quiet turns it off). With
// "host: embedded" it starts a built-in Tecken emulator on 127.0.0.1, so
// every step can be tried without a server or credentials. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"go.yaml.in/yaml/v3"
)

// version is the program version, set at build time with
// -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// Exit codes, chosen in exitCode alone.
const (
	exitOK          = 0
	exitFailed      = 1   // a step failed, or teckenrun could not run
	exitUsage       = 2   // bad flags or an invalid plan
	exitThresholds  = 3   // plan thresholds not met, and nothing else went wrong
	exitHangup      = 129 // SIGHUP
	exitInterrupted = 130 // SIGINT/SIGTERM
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) { // under nohup, a hangup must not stop the run
			signal.Notify(sigs, sig)
		}
	}
	go func() {
		sig := <-sigs
		signal.Stop(sigs) // a second signal now kills the process at once
		cancel(interrupted{sig})
	}()
	term := terminal{
		stdin:  isatty.IsTerminal(os.Stdin.Fd()) || isatty.IsCygwinTerminal(os.Stdin.Fd()),
		stdout: isatty.IsTerminal(os.Stdout.Fd()) || isatty.IsCygwinTerminal(os.Stdout.Fd()),
		stderr: isatty.IsTerminal(os.Stderr.Fd()) || isatty.IsCygwinTerminal(os.Stderr.Fd()),
	}
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, term)
	os.Exit(exitCode(err, os.Stderr))
}

// terminal says which of stdin, stdout and stderr are terminals.
type terminal struct{ stdin, stdout, stderr bool }

// usageError marks bad flags and invalid plans (exit 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// interrupted is the cause of a run's cancellation by a signal, and the
// error of a run that it cut short. It is a context.Canceled, so that
// errors.Is(err, context.Canceled) holds for every interrupted run.
type interrupted struct {
	sig os.Signal // nil when the context was cancelled without a signal
}

func (e interrupted) Error() string {
	if e.sig == nil {
		return "interrupted"
	}
	return "interrupted by " + signalName(e.sig)
}

func (e interrupted) Is(target error) bool { return target == context.Canceled }

// interruptOf returns why ctx was cancelled: the signal, if one did it.
func interruptOf(ctx context.Context) interrupted {
	var in interrupted
	errors.As(context.Cause(ctx), &in)
	return in
}

// signalName names the signals that interrupt a run as kill -l does.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// exitCode prints err once, as "teckenrun: err" (each line of it, such as
// each failed step, so prefixed), and chooses the exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "teckenrun: %s\n", line)
	}
	var ue usageError
	var te thresholdsError
	var re regressionError
	var in interrupted
	switch {
	case errors.As(err, &in) && in.sig == syscall.SIGHUP:
		return exitHangup
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &te), errors.As(err, &re):
		return exitThresholds
	}
	return exitFailed
}

// options are the command-line flags.
type options struct {
	format   string
	host     string
	only     string
	validate bool
	out      string
	html     string
	seed     uint64
	seedSet  bool
	grace    time.Duration
	version  bool
	cpuprof  string
	quiet    bool
	// baseline is a previous report to compare the run with.
	baseline        string
	tolerance       tolerance
	baselineAnyPlan bool
	push            *url.URL  // -push: the Pushgateway, nil without one
	shard           shardSpec // -shard; zero without it
	s3Endpoint      string
}

func parseFlags(args []string, stderr io.Writer) (*options, []string, error) {
	o := &options{grace: 5 * time.Second, tolerance: 0.1}
	fs := flag.NewFlagSet("teckenrun", flag.ContinueOnError)
	fs.StringVar(&o.format, "format", "auto", "output `auto|table|json|openmetrics`: auto is tables on a terminal, JSON otherwise")
	fs.StringVar(&o.host, "host", "", "run against this `URL` (or embedded) instead of the plan's host; every request stays on it")
	fs.StringVar(&o.only, "only", "", "run only the steps with these names (`NAME[,NAME]`)")
	fs.BoolVar(&o.validate, "validate", false, "check the plan and its files, print where requests go and the plan with defaults filled in, run nothing")
	fs.StringVar(&o.out, "out", "", "also write the JSON report to `FILE`")
	fs.StringVar(&o.html, "html", "", "also write the report as an HTML page with charts to `FILE`")
	fs.Func("seed", "seed every random choice with `N` (default: the plan's seed, else random)", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return errors.New("must be a whole number from 0 to 18446744073709551615")
		}
		o.seed, o.seedSet = n, true
		return nil
	})
	fs.Func("grace", "after Ctrl-C, let requests in flight finish for this long (`DURATION`, default 5s)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("must be a duration of 0 or more, such as 5s or 1m")
		}
		o.grace = d
		return nil
	})
	fs.StringVar(&o.baseline, "baseline", "", "compare the run with this previous report (`FILE`) of the same plan: a regression exits 3")
	fs.Var(&o.tolerance, "tolerance", "with -baseline, how much worse a figure may get (`PERCENT`, default 10%)")
	fs.BoolVar(&o.baselineAnyPlan, "baseline-any-plan", false, "with -baseline, accept a report of another plan")
	fs.Func("shard", "run shard `I/N` (0-based) of a sharded run, or auto: I from JOB_COMPLETION_INDEX, N from TECKENRUN_SHARDS", func(s string) (err error) {
		o.shard, err = parseShard(s, os.Getenv)
		return err
	})
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "with -out s3://…, use the S3-compatible store at `URL` (path-style)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.quiet, "quiet", false, "report no progress on stderr (errors still are)")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the run to `FILE` (for go tool pprof)")
	pushURL := fs.String("push", "", "after the run, push its metrics to the Prometheus Pushgateway at `URL` (job teckenrun, grouped by plan)")
	// The flag package would print a parse error and the usage; exitCode
	// prints the error once instead, and only -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// Flags may come before or after the plan.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(fs, stderr)
				return nil, nil, err
			}
			return nil, nil, usageErrorf("%w (teckenrun -h lists the flags)", err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch o.format {
	case "auto", "table", "json", "openmetrics":
	default:
		return nil, nil, usageErrorf("-format must be auto, table, json or openmetrics, got %q", o.format)
	}
	if o.host != "" {
		if err := checkHostURL(o.host); err != nil {
			return nil, nil, usageErrorf("-host: %w", err)
		}
	}
	if *pushURL != "" {
		u, err := parsePushURL(*pushURL)
		if err != nil {
			return nil, nil, usageErrorf("-push: %w", err)
		}
		o.push = u
	}
	return o, positional, nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: teckenrun [flags] PLAN.yaml\n       teckenrun report [-format auto|table|json|openmetrics] RESULT.json\n       teckenrun report -format html RESULT.json [MORE.json ...]\n       teckenrun schema report|plan\n       teckenrun metrics KIND\n       teckenrun compare [-tolerance 10%%] OLD.json NEW.json\n       teckenrun merge [-out MERGED.json] [-partial] SHARD.json… | s3://BUCKET/PREFIX/\n       teckenrun emulator [-listen ADDR]\n\nRuns the steps of a plan against Tecken and reports what happened.\n\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\nExit status: 0 ok, 1 a step failed, 2 bad flags or an invalid plan, 3 a threshold of the plan\nnot met (and nothing else failed), 129 hung up (SIGHUP), 130 interrupted (SIGINT/SIGTERM).\n")
}

// run is teckenrun without the process around it: tests call it with
// buffers. It returns an error for every non-zero exit; the report of what
// ran is written to stdout first, also when the run is interrupted.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, term terminal) error {
	if len(args) > 0 {
		switch args[0] {
		case "emulator":
			return runEmulator(ctx, args[1:], stdout, stderr)
		case "report":
			return runReportCmd(args[1:], stdout, stderr, term)
		case "schema":
			return runSchemaCmd(args[1:], stdout)
		case "metrics":
			return runMetricsCmd(args[1:], stdout)
		case "compare":
			return runCompareCmd(args[1:], stdout, stderr, term)
		case "merge":
			return runMergeCmd(ctx, args[1:], stdout, stderr, term)
		}
	}
	o, positional, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		_, err := fmt.Fprintf(stdout, "teckenrun %s\n", version)
		return err
	}
	if len(positional) != 1 {
		return usageErrorf("want exactly one plan file, got %d arguments (usage: teckenrun [flags] PLAN.yaml)", len(positional))
	}
	plan, err := LoadPlan(positional[0])
	if err != nil {
		var ue usageError
		if !errors.As(err, &ue) {
			err = usageError{err} // an unreadable plan is a usage error too
		}
		return err
	}
	if o.host != "" {
		plan.overrideHost(o.host)
	}
	if o.seedSet {
		plan.Seed = &o.seed
	}
	if err := o.shard.checkFlags(plan, o); err != nil {
		return err
	}
	steps, err := plan.selectSteps(o.only)
	if err != nil {
		return err
	}
	if err := plan.ValidateSteps(steps, o.only != ""); err != nil {
		return err
	}
	if err := o.shard.checkNeeds(plan, steps); err != nil {
		return err
	}
	inShard := o.shard.describe(plan, steps)
	steps = o.shard.filter(plan, steps)
	if err := plan.checkFiles(steps); err != nil {
		return err
	}
	o.out = o.shard.outFile(o.out)
	if err := checkOut("-out", o.out); err != nil {
		return err
	}
	if err := checkOut("-html", o.html); err != nil {
		return err
	}
	var base *Report
	if o.baseline != "" {
		if base, err = loadBaseline(o.baseline, plan.sha256, o.baselineAnyPlan); err != nil {
			return err
		}
	}
	if o.validate {
		shown := *plan // passwords in URLs are never printed
		shown.Host, shown.SymbolicationHost = redactURL(plan.Host), redactURL(plan.SymbolicationHost)
		if _, err := io.WriteString(stdout, plan.urlsComment(steps)+inShard); err != nil {
			return err
		}
		return yaml.NewEncoder(stdout).Encode(&shown)
	}
	if plan.Name == "" {
		plan.Name = strings.TrimSuffix(filepath.Base(positional[0]), filepath.Ext(positional[0]))
	}
	if o.cpuprof != "" {
		f, err := os.OpenFile(o.cpuprof, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var progressTo io.Writer
	if !o.quiet {
		progressTo = stderr
	}
	rs := runSettings{stdin: stdin, grace: o.grace, progressTo: progressTo, live: term.stderr, shard: o.shard}
	if term.stdin {
		rs.stdinPrompt = stderr
	}
	report, runErr := runPlan(ctx, plan, steps, rs)
	if report != nil {
		selected := map[string]bool{}
		for _, i := range steps {
			selected[plan.Steps[i].Name] = true
		}
		report.Thresholds = o.shard.shardThresholds(evaluate(plan.thresholds, report, selected))
		if base != nil {
			report.Baseline = compareReports(base, report, o.baseline, float64(o.tolerance))
		}
		if runErr == nil {
			runErr = errors.Join(failedThresholds(report.Thresholds), report.Baseline.Error())
		}
		if err := writeReport(stdout, o, term, report); err != nil {
			runErr = errors.Join(runErr, err)
		}
		// A failed push is reported, but never hides the run's own outcome
		// (a failed step, a threshold, an interrupt): exitCode finds that
		// first, so the push decides the exit code only of a good run.
		if o.push != nil {
			runErr = errors.Join(runErr, pushReport(ctx, o.push, report))
		}
	}
	return runErr
}

// writeReport prints the report in the chosen format and, with -out and
// -html, writes the JSON and the HTML page to files (atomically, so a
// reader never sees half).
func writeReport(stdout io.Writer, o *options, term terminal, r *Report) error {
	report, err := chooseReporter(o.format, term)
	if err != nil {
		return err
	}
	if err := report(stdout, r); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	switch {
	case o.out == "":
	case isS3URL(o.out):
		if err := putReportS3(o.out, o.s3Endpoint, r); err != nil {
			return err
		}
	default:
		if err := writeFileAtomic(o.out, func(w io.Writer) error { return jsonReport(w, r) }); err != nil {
			return err
		}
	}
	if o.html == "" {
		return nil
	}
	return writeFileAtomic(o.html, func(w io.Writer) error { return htmlReport(w, []namedReport{{r.Plan, r}}) })
}

// checkOut finds, before the run, a file of the flag (-out, -html) that
// could not be written at its end: a directory, or a folder where no file
// can be created.
func checkOut(name, path string) error {
	switch {
	case path == "":
		return nil
	case isS3URL(path):
		return checkS3Out(path)
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return usageErrorf("%s %s is a directory; give the report's file name", name, path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return usageErrorf("%s %s cannot be written: %w", name, path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeFileAtomic writes a file through a temporary file in the same
// directory, synced to disk and renamed into place only when complete, so
// that a reader (or a crash) never sees half a file. The file gets mode
// 0644 less the umask, as files programs create do; os.CreateTemp would
// make it 0600. The temporary file is removed when anything fails.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	var b [8]byte
	rand.Read(b[:]) // crypto/rand never fails
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(b[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op after the rename
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
