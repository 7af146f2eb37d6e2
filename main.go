// Command teckenrun load-tests and regression-tests Mozilla's symbol
// server, Tecken: its download, upload and symbolication APIs.
//
// It runs a YAML plan of ordered steps against a host:
//
//	teckenrun plans/demo.yaml
//
// On a terminal it prints tables and a progress line; when stdout is piped
// it prints one JSON document. With "host: embedded" it starts a built-in
// Tecken emulator on 127.0.0.1, so every step can be tried without a
// server or credentials. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
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
	exitThresholds  = 3   // reserved: plan thresholds not met
	exitInterrupted = 130 // SIGINT/SIGTERM
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C now kills the process at once
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

// exitCode prints err once, as "teckenrun: err", and chooses the exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "teckenrun: %v\n", err)
	var ue usageError
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue):
		return exitUsage
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
	seed     uint64
	seedSet  bool
	grace    time.Duration
	version  bool
	cpuprof  string
}

func parseFlags(args []string, stderr io.Writer) (*options, []string, error) {
	o := &options{}
	fs := flag.NewFlagSet("teckenrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.format, "format", "auto", "output `format`: auto (tables on a terminal, JSON otherwise), table or json")
	fs.StringVar(&o.host, "host", "", "run against this `URL` (or embedded) instead of the plan's host")
	fs.StringVar(&o.only, "only", "", "run only the steps with these `names`, comma-separated")
	fs.BoolVar(&o.validate, "validate", false, "check the plan, print it with defaults filled in, and run nothing")
	fs.StringVar(&o.out, "out", "", "also write the JSON report to `file`")
	fs.Func("seed", "seed every random choice with `n` (default: the plan's seed, else random)", func(s string) error {
		_, err := fmt.Sscan(s, &o.seed)
		o.seedSet = err == nil
		return err
	})
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "after Ctrl-C, let requests in flight finish for this `long`")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the run to `file` (for go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: teckenrun [flags] PLAN.yaml\n       teckenrun emulator [-listen addr]\n\nRuns the steps of a plan against Tecken and reports what happened.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nExit status: 0 ok, 1 a step failed, 2 usage error or invalid plan, 3 thresholds not met, 130 interrupted.\n")
	}
	// Flags may come before or after the plan.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, usageError{err}
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch o.format {
	case "auto", "table", "json":
	default:
		return nil, nil, usageErrorf("-format must be auto, table or json, got %q", o.format)
	}
	return o, positional, nil
}

// run is teckenrun without the process around it: tests call it with
// buffers. It returns an error for every non-zero exit; the report of what
// ran is written to stdout first, also when the run is interrupted.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, term terminal) error {
	if len(args) > 0 && args[0] == "emulator" {
		return runEmulator(ctx, args[1:], stdout, stderr)
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
		plan.Host = o.host
		plan.SymbolicationHost = o.host
	}
	if o.seedSet {
		plan.Seed = &o.seed
	}
	if err := plan.Validate(); err != nil {
		return err
	}
	steps, err := plan.selectSteps(o.only)
	if err != nil {
		return err
	}
	if o.validate {
		return yaml.NewEncoder(stdout).Encode(plan)
	}
	if plan.Name == "" {
		plan.Name = strings.TrimSuffix(filepath.Base(positional[0]), filepath.Ext(positional[0]))
	}
	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
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
	if term.stderr {
		progressTo = stderr
	}
	rs := runSettings{stdin: stdin, grace: o.grace, progressTo: progressTo}
	if term.stdin {
		rs.stdinPrompt = stderr
	}
	report, runErr := runPlan(ctx, plan, steps, rs)
	if report != nil {
		if err := writeReport(stdout, o, term, report); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// writeReport prints the report in the chosen format and, with -out,
// writes the JSON to a file (atomically, so a reader never sees half).
func writeReport(stdout io.Writer, o *options, term terminal, r *Report) error {
	var report reporter = jsonReport
	if o.format == "table" || (o.format == "auto" && term.stdout) {
		report = tableReport
	}
	if err := report(stdout, r); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if o.out == "" {
		return nil
	}
	return writeFileAtomic(o.out, func(w io.Writer) error { return jsonReport(w, r) })
}

// writeFileAtomic writes a file through a temporary file in the same
// directory, renamed into place only when complete.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}
