package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// statusEvery is how often a step's status line is written when stderr is
// not a terminal; liveEvery how often a terminal's line is redrawn.
const (
	statusEvery = 10 * time.Second
	liveEvery   = 250 * time.Millisecond
)

// clock is the time that progress reports use; tests give a fake one, to
// fire ticks by hand.
type clock interface {
	now() time.Time
	// tick returns a channel that receives a time every d, and a func
	// that stops it.
	tick(d time.Duration) (<-chan time.Time, func())
}

type realClock struct{}

func (realClock) now() time.Time { return time.Now() }

func (realClock) tick(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// progress reports how a running step is doing on stderr, never on
// stdout. On a terminal it redraws one line in place (\r) four times a
// second and clears it when the step ends. Otherwise it writes a plain
// "teckenrun: …" status line every statusEvery, so that a cron log shows
// that a long run is alive, and a last one when such a step ends.
//
// The step says what it expects (expect, from its own goroutine) and
// counts what it does (add, addBytes, from any goroutine); one goroutine
// draws. A nil *progress (-quiet) reports nothing.
type progress struct {
	w     io.Writer
	live  bool // w is a terminal
	clock clock
	step  string
	start time.Time
	plan  atomic.Pointer[progressPlan] // nil until the step says what it expects
	done  atomic.Int64
	// failed and bytes are the failed items among done, and the bytes
	// sent or written so far.
	failed, bytes atomic.Int64
	stop, exited  chan struct{}
}

// progressPlan is what a step expects to do, and how its line shows it.
type progressPlan struct {
	total    int64         // items to do; 0 when not known
	duration time.Duration // the step stops issuing after this long; 0 for no limit
	unit     string        // what follows the count: "done", "files", "zips"
	errors   bool          // show how many items failed
	// bytes is "sent" or "written" for a step that moves bytes, whose
	// line shows them and MB/s; totalBytes is what it will move, 0 when
	// not known.
	bytes      string
	totalBytes int64
	// target is the rate a schedule asks for (its mean over stages); 0
	// without a rate.
	target float64
}

// startProgress starts reporting on the step named step, to rs.progressTo;
// it returns nil when that is nil.
func startProgress(rs runSettings, step string) *progress {
	if rs.progressTo == nil {
		return nil
	}
	c := rs.clock
	if c == nil {
		c = realClock{}
	}
	p := &progress{w: rs.progressTo, live: rs.live, clock: c, step: step, start: c.now(),
		stop: make(chan struct{}), exited: make(chan struct{})}
	every := statusEvery
	if p.live {
		every = liveEvery
	}
	ticks, stopTicks := c.tick(every)
	go func() {
		defer close(p.exited)
		defer stopTicks()
		for {
			select {
			case <-ticks:
				p.draw(false)
			case <-p.stop:
				p.draw(true)
				return
			}
		}
	}()
	return p
}

// expect changes what the step expects to do. Only the step's goroutine
// calls it.
func (p *progress) expect(change func(pl *progressPlan)) {
	if p == nil {
		return
	}
	pl := progressPlan{unit: "done"}
	if old := p.plan.Load(); old != nil {
		pl = *old
	}
	change(&pl)
	p.plan.Store(&pl)
}

// add counts one item done, failed or not.
func (p *progress) add(failed bool) {
	if p == nil {
		return
	}
	p.done.Add(1)
	if failed {
		p.failed.Add(1)
	}
}

// addBytes counts n bytes sent or written.
func (p *progress) addBytes(n int) {
	if p != nil {
		p.bytes.Add(int64(n))
	}
}

// countReads returns r, counting the bytes read from it.
func (p *progress) countReads(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.addBytes(n)
	return n, err
}

// finish stops reporting, once the step has ended.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.exited
}

// draw writes the line; final is the step's end: a terminal's line is
// cleared, and a step that ran long enough for status lines gets a last
// one.
func (p *progress) draw(final bool) {
	now := p.clock.now()
	switch {
	case p.live && final:
		fmt.Fprint(p.w, "\r\033[K")
	case p.live:
		fmt.Fprint(p.w, "\r\033[K"+p.line(now, false))
	case !final || now.Sub(p.start) >= statusEvery:
		fmt.Fprintf(p.w, "teckenrun: %s\n", p.line(now, final))
	}
}

// line is the report at now, such as
// "download: 12000/200000 done, 3 errors, 1520/s, ETA 2m4s".
func (p *progress) line(now time.Time, final bool) string {
	elapsed := now.Sub(p.start)
	pl := p.plan.Load()
	if pl == nil {
		if final {
			return fmt.Sprintf("%s: ran for %s", p.step, elapsed.Round(time.Second))
		}
		return fmt.Sprintf("%s: running for %s", p.step, elapsed.Round(time.Second))
	}
	done, bytes, secs := p.done.Load(), p.bytes.Load(), elapsed.Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", p.step, done)
	if pl.total > 0 {
		fmt.Fprintf(&b, "/%d", pl.total)
	}
	b.WriteString(" " + pl.unit)
	if pl.errors {
		fmt.Fprintf(&b, ", %d errors", p.failed.Load())
	}
	switch {
	case pl.bytes != "":
		fmt.Fprintf(&b, ", %s %s", humanSize(float64(bytes)), pl.bytes)
		if secs > 0 {
			fmt.Fprintf(&b, ", %s/s", humanSize(float64(bytes)/secs))
		}
	case secs > 0:
		r := float64(done) / secs
		digits := 0
		if r < 100 {
			digits = 1
		}
		b.WriteString(", " + strconv.FormatFloat(r, 'f', digits, 64) + "/s")
		if pl.target > 0 {
			b.WriteString(" (target " + strconv.FormatFloat(pl.target, 'f', digits, 64) + "/s)")
		}
	}
	if final {
		fmt.Fprintf(&b, " in %s", elapsed.Round(time.Second))
	} else if eta, ok := pl.eta(elapsed, done, bytes); ok {
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// eta estimates the time left from the bytes moved, else from the items
// done, else from the step's duration.
func (pl *progressPlan) eta(elapsed time.Duration, done, bytes int64) (time.Duration, bool) {
	var left time.Duration
	switch {
	case elapsed <= 0:
		return 0, false
	case pl.totalBytes > 0 && bytes > 0:
		left = time.Duration(float64(elapsed) * float64(pl.totalBytes-bytes) / float64(bytes))
	case pl.total > 0 && done > 0:
		left = time.Duration(float64(elapsed) * float64(pl.total-done) / float64(done))
	case pl.duration > 0:
		left = pl.duration - elapsed
	default:
		return 0, false
	}
	return max(left, 0), true
}
