package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock whose ticks the test fires by hand. Each now()
// moves the time on by step, so that a step that reads it at its start
// and at its end takes step.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	step  time.Duration
	ticks chan time.Time
	asked []time.Duration // the intervals tick was called with
}

func newFakeClock(step time.Duration) *fakeClock {
	return &fakeClock{t: t0, step: step, ticks: make(chan time.Time)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) tick(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, d)
	return c.ticks, func() {}
}

// fire moves the time on by d and delivers a tick; it returns once the
// drawing goroutine has taken it.
func (c *fakeClock) fire(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	t := c.t
	c.mu.Unlock()
	c.ticks <- t
}

// writes is a writer that hands each write to the test, which waits for
// it rather than for time to pass.
type writes chan string

func (w writes) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// count reports n items done, failed of them failed.
func count(p *progress, n, failed int) {
	for i := range n {
		p.add(i < failed)
	}
}

// TestStatusLineEveryTenSeconds: off a terminal, each tick of 10 s
// writes one plain line with what is done so far; a step that ran that
// long gets a last line when it ends.
func TestStatusLineEveryTenSeconds(t *testing.T) {
	fc := newFakeClock(0)
	out := make(writes, 10)
	p := startProgress(runSettings{progressTo: out, clock: fc}, "download")
	p.expect(func(pl *progressPlan) { pl.total, pl.errors = 200000, true })
	count(p, 12000, 3)
	fc.fire(10 * time.Second)
	first := <-out
	count(p, 18000, 0)
	fc.fire(10 * time.Second)
	second := <-out
	p.finish()
	last := <-out
	want := []string{
		"teckenrun: download: 12000/200000 done, 3 errors, 1200/s, ETA 2m37s\n",
		"teckenrun: download: 30000/200000 done, 3 errors, 1500/s, ETA 1m53s\n",
		"teckenrun: download: 30000/200000 done, 3 errors, 1500/s in 20s\n",
	}
	for i, got := range []string{first, second, last} {
		if got != want[i] {
			t.Errorf("line %d: %q, want %q", i+1, got, want[i])
		}
	}
	if len(fc.asked) != 1 || fc.asked[0] != 10*time.Second {
		t.Errorf("ticks asked every %v, want 10s", fc.asked)
	}
	if len(out) != 0 {
		t.Errorf("more lines: %q", <-out)
	}
}

// TestShortStepWritesNoStatus: off a terminal, a step shorter than 10 s
// writes nothing at all, so that a quick cron run stays silent; one that
// says nothing of its work still shows that it is alive.
func TestShortStepWritesNoStatus(t *testing.T) {
	fc := newFakeClock(0)
	out := make(writes, 10)
	p := startProgress(runSettings{progressTo: out, clock: fc}, "make-stacks")
	p.expect(func(pl *progressPlan) { pl.total, pl.unit = 3, "files" })
	count(p, 3, 0)
	p.finish()
	if len(out) != 0 {
		t.Errorf("a short step wrote %q", <-out)
	}
	p = startProgress(runSettings{progressTo: out, clock: fc}, "list-zips")
	fc.fire(10 * time.Second)
	if got := <-out; got != "teckenrun: list-zips: running for 10s\n" {
		t.Errorf("got %q", got)
	}
	p.finish()
	if got := <-out; got != "teckenrun: list-zips: ran for 10s\n" {
		t.Errorf("got %q", got)
	}
}

// TestTerminalLineIsRedrawnInPlace: on a terminal the line is redrawn
// four times a second with \r, never ends a line, and is cleared when the
// step ends; bytes show with their rate.
func TestTerminalLineIsRedrawnInPlace(t *testing.T) {
	fc := newFakeClock(0)
	out := make(writes, 10)
	p := startProgress(runSettings{progressTo: out, live: true, clock: fc}, "upload")
	p.expect(func(pl *progressPlan) { pl.total, pl.errors, pl.bytes, pl.totalBytes = 2, true, "sent", 4<<20 })
	p.countReads(bytes.NewReader(make([]byte, 1<<20))).Read(make([]byte, 1<<20))
	fc.fire(time.Second)
	first := <-out
	count(p, 1, 1)
	fc.fire(time.Second)
	second := <-out
	p.finish()
	last := <-out
	want := []string{
		"\r\033[Kupload: 0/2 done, 0 errors, 1.0MB sent, 1.0MB/s, ETA 3s",
		"\r\033[Kupload: 1/2 done, 1 errors, 1.0MB sent, 512.0KB/s, ETA 6s",
		"\r\033[K",
	}
	for i, got := range []string{first, second, last} {
		if got != want[i] {
			t.Errorf("write %d: %q, want %q", i+1, got, want[i])
		}
	}
	if len(fc.asked) != 1 || fc.asked[0] != liveEvery {
		t.Errorf("ticks asked every %v, want %v", fc.asked, liveEvery)
	}
}

// TestEveryStepReportsProgress runs the demo plan, whose steps each take
// 10 s by the fake clock: every step writes its last status line, with
// what its kind counts (files, zips and bytes written, bytes sent).
func TestEveryStepReportsProgress(t *testing.T) {
	plan, err := LoadPlan("plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := plan.selectSteps("")
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.ValidateSteps(steps, false); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r, err := runPlan(t.Context(), plan, steps, runSettings{progressTo: &out, clock: newFakeClock(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var zipBytes int64
	for _, z := range r.Steps[6].result.(*MakeZipsResult).Zips {
		zipBytes += z.Bytes
	}
	size := `[0-9.]+K?M?B`
	want := []string{
		`download: 58/58 done, 0 errors, 5\.8/s in 10s`,
		`make-stacks: 40/40 files, 4\.0/s in 10s`,
		`symbolicate: 14/14 done, 0 errors, 1\.4/s in 10s`,
		`mix: 100/100 done, 0 errors, 10\.0/s in 10s`,
		`list-zips: ran for 10s`,
		`upload-urls: 2/2 done, 0 errors, 0\.2/s in 10s`,
		`make-zips: 2/2 zips, ` + regexp.QuoteMeta(humanSize(float64(zipBytes))) + ` written, ` + size + `/s in 10s`,
		`upload-zips: 2/2 done, 0 errors, ` + size + ` sent, ` + size + `/s in 10s`,
		`download-uploaded: [0-9]+/[0-9]+ done, 0 errors, [0-9.]+/s in 10s`,
		`make-zips-from-records: 2/2 zips, ` + size + ` written, ` + size + `/s in 10s`,
		`upload-records: 2/2 done, 0 errors, ` + size + ` sent, ` + size + `/s in 10s`,
		`download-all-uploaded: [0-9]+/[0-9]+ done, 0 errors, [0-9.]+/s in 10s`,
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		if !regexp.MustCompile(`^teckenrun: ` + want[i] + `$`).MatchString(line) {
			t.Errorf("line %d: %q, want %q", i+1, line, want[i])
		}
	}
}

// TestProgressOnStderrOnly: on a terminal's stderr, a run's progress
// goes there and nowhere else: stdout is one JSON document, and stderr
// holds only redrawn lines (\r, no newline) after a run that succeeded.
// -quiet writes nothing to stderr at all.
func TestProgressOnStderrOnly(t *testing.T) {
	term := terminal{stderr: true}
	for _, quiet := range []bool{false, true} {
		args := []string{"-format", "json", "plans/demo.yaml"}
		if quiet {
			args = append([]string{"-quiet"}, args...)
		}
		stdout, stderr, err := runArgs(t, term, args...)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		var r map[string]any
		if err := dec.Decode(&r); err != nil || dec.More() || strings.ContainsAny(stdout, "\r\033") {
			t.Errorf("quiet %v: stdout is not exactly one JSON document (%v):\n%q", quiet, err, stdout)
		}
		switch {
		case quiet && stderr != "":
			t.Errorf("-quiet wrote %q to stderr", stderr)
		case !quiet && (!strings.HasPrefix(stderr, "\r\033[K") || !strings.HasSuffix(stderr, "\r\033[K") || strings.Contains(stderr, "\n")):
			t.Errorf("stderr of a terminal %q, want lines redrawn in place and cleared", stderr)
		}
	}
}

// TestProgressShowsTheTargetRate: a rate-driven step's line shows the
// rate it achieves next to the one it was asked for.
func TestProgressShowsTheTargetRate(t *testing.T) {
	var out bytes.Buffer
	p := startProgress(runSettings{progressTo: &out, clock: newFakeClock(10 * time.Second)}, "dl")
	defer p.finish()
	p.expect(func(pl *progressPlan) { pl.total, pl.errors, pl.target = 100, true, 50 })
	for range 10 {
		p.add(false)
	}
	if line := p.line(p.start.Add(2*time.Second), false); !strings.Contains(line, "dl: 10/100 done, 0 errors, 5.0/s (target 50.0/s)") {
		t.Errorf("line %q", line)
	}
}
