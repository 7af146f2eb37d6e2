package main

import (
	"context"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// TestRateDrivenTimeline: a rate-driven download has a timeline of 1 s
// intervals from the whole second of its first answer to that of its
// last, whose requests sum to the step's and to what the server answered,
// and keeps its schedule lag; without a rate there is none.
func TestRateDrivenTimeline(t *testing.T) {
	emu, url := startEmulator(t, emulator.Options{})
	r, err := runJSON(t, context.Background(), downloadPlan(url, "      rate: 100\n      duration: 2500ms\n      concurrency: 4\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Steps[0].Metrics
	tl := m.Timeline
	if m.Requests != 250 || int64(len(emu.Log())) != m.Requests {
		t.Fatalf("rate 100 for 2.5 s: %d requests, the server answered %d", m.Requests, len(emu.Log()))
	}
	if tl.IntervalS != 1 || tl.StartedAt == nil || m.FirstSentAt == nil || m.LastDoneAt == nil {
		t.Fatalf("timeline %+v", tl)
	}
	want := int(m.LastDoneAt.Truncate(time.Second).Sub(*tl.StartedAt)/time.Second) + 1
	if len(tl.Points) != want || want < 3 || want > 4 {
		t.Errorf("%d points from %s to %s, want %d (3 or 4 for 2.5 s)", len(tl.Points), tl.StartedAt, m.LastDoneAt, want)
	}
	var sum int64
	for i, p := range tl.Points {
		if p.TS != float64(i) {
			t.Errorf("point %d starts at %vs", i, p.TS)
		}
		sum += p.Requests
	}
	if sum != m.Requests {
		t.Errorf("the timeline's requests sum to %d, the step has %d", sum, m.Requests)
	}
	if m.ScheduleLag == nil || m.ServiceTime == nil || m.ResponseTime.Count != m.Requests {
		t.Errorf("a rate-driven step lacks a distribution: lag %v, service %v", m.ScheduleLag, m.ServiceTime)
	}

	r, err = runJSON(t, context.Background(), downloadPlan(url, "      concurrency: 2\n"), downloadFiles)
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Steps[0].Metrics; m.ScheduleLag != nil || *m.ResponseTime != *m.ServiceTime {
		t.Errorf("without a rate: schedule lag %+v (want null), response %+v != service %+v", m.ScheduleLag, m.ResponseTime, m.ServiceTime)
	}
}
