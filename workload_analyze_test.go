package main

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

const analystToken = "0123456789abcdef0123456789abcdef"

// apiEmulator is an emulator that knows analystToken with the view-all
// permission, and keeps a log of its requests.
func apiEmulator(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	emu := emulator.New(emulator.Options{KeepLog: true, Tokens: map[string]emulator.Token{
		analystToken: {User: "analyst@example.com", Permissions: []string{emulator.PermViewAll, emulator.PermUpload}}}})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	t.Setenv("TECKENRUN_TEST_TOKEN", analystToken)
	return emu, ts.URL
}

// timedUpload is an upload created at start+at that took took (0: not
// completed), with files given as [created, completed] offsets from its
// start (completed < 0: not completed).
func timedUpload(start time.Time, at, took time.Duration, files ...[2]time.Duration) emulator.Upload {
	u := emulator.Upload{User: "analyst@example.com", Filename: "symbols.zip", Size: 1 << 20, CreatedAt: start.Add(at)}
	if took > 0 {
		u.CompletedAt = u.CreatedAt.Add(took)
	}
	for i, f := range files {
		fu := emulator.FileUpload{Key: fmt.Sprintf("v1/lib%d.pdb/ABC/lib%d.sym", i, i), CreatedAt: u.CreatedAt.Add(f[0])}
		if f[1] >= 0 {
			fu.CompletedAt = u.CreatedAt.Add(f[1])
		}
		u.Files = append(u.Files, fu)
	}
	return u
}

// TestAnalyzeUploadsGivesExactFigures: uploads with known per-file
// timestamps give the WIN and SAVING figures worked out by hand, the
// incomplete ones are skipped with their reason, and with fewer uploads
// than limit the step stops after the one page there is.
func TestAnalyzeUploadsGivesExactFigures(t *testing.T) {
	emu, url := apiEmulator(t)
	start := time.Date(2019, 7, 31, 9, 58, 1, 4_000_000, time.UTC)
	s := time.Second
	ids := []int{
		// 10 s; files 4 + 5 + 3 = 12 s: WIN 120 %, SAVING 2 s.
		emu.AddUpload(timedUpload(start, 0, 10*s, [2]time.Duration{0, 4 * s}, [2]time.Duration{s, 6 * s}, [2]time.Duration{2 * s, 5 * s})),
		// 2.5 s; files 2.5 + 2.5 = 5 s: WIN 200 %, SAVING 2.5 s.
		emu.AddUpload(timedUpload(start, time.Minute, 2500*time.Millisecond, [2]time.Duration{0, 2500 * time.Millisecond}, [2]time.Duration{0, 2500 * time.Millisecond})),
		// 0 s (TIME = 0): no WIN, SAVING 0.5 s.
		emu.AddUpload(timedUpload(start, 2*time.Minute, time.Nanosecond, [2]time.Duration{0, 500 * time.Millisecond})),
		emu.AddUpload(timedUpload(start, 3*time.Minute, 0, [2]time.Duration{0, s})),
		emu.AddUpload(timedUpload(start, 4*time.Minute, 5*s, [2]time.Duration{0, s}, [2]time.Duration{0, -1})),
		emu.AddUpload(timedUpload(start, 5*time.Minute, 5*s)),
	}
	r, err := runAnalyze(t, fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - analyze:\n      uploads: {limit: 10, concurrency: 2}\n", url))
	if err != nil {
		t.Fatal(err)
	}
	u := r.Steps[0].Uploads
	if u == nil || r.Steps[0].Logs != nil {
		t.Fatalf("uploads %v, logs %v", u, r.Steps[0].Logs)
	}
	// Newest first, as the API lists them.
	want := []struct {
		id           int
		time, sum    float64
		files        int
		win          *float64
		saving       float64
		createdAtOff time.Duration
	}{
		{ids[2], 0, 0.5, 1, nil, 0.5, 2 * time.Minute},
		{ids[1], 2.5, 5, 2, ptr(200.0), 2.5, time.Minute},
		{ids[0], 10, 12, 3, ptr(120.0), 2, 0},
	}
	if u.Analyzed != 3 || len(u.Rows) != 3 {
		t.Fatalf("analysed %d: %+v", u.Analyzed, u.Rows)
	}
	for i, w := range want {
		g := u.Rows[i]
		if g.ID != w.id || g.TimeS != w.time || g.SumTimesS != w.sum || g.Files != w.files || g.SavingS != w.saving ||
			(g.WinPct == nil) != (w.win == nil) || (w.win != nil && *g.WinPct != *w.win) || !g.CreatedAt.Equal(start.Add(w.createdAtOff)) || g.Size != 1<<20 {
			t.Errorf("row %d = %+v (win %v), want %+v (win %v)", i, g, g.WinPct, w, w.win)
		}
	}
	if *u.AverageWinPct != 160 || *u.MedianWinPct != 160 || *u.AverageSavingS != 5.0/3 || *u.MedianSavingS != 2 {
		t.Errorf("average win %v, median win %v, average saving %v, median saving %v", *u.AverageWinPct, *u.MedianWinPct, *u.AverageSavingS, *u.MedianSavingS)
	}
	wantSkipped := []SkippedAnalyze{{ids[5], "no file uploads"}, {ids[4], "1 of 2 file uploads not completed"}, {ids[3], "not completed"}}
	if u.Skipped != 3 || fmt.Sprint(u.SkippedUploads) != fmt.Sprint(wantSkipped) {
		t.Errorf("skipped %d: %v, want %v", u.Skipped, u.SkippedUploads, wantSkipped)
	}
	lists, details := 0, 0
	for _, rec := range emu.Log() {
		switch {
		case rec.Path == "/api/uploads/":
			lists++
		case strings.HasPrefix(rec.Path, "/api/uploads/upload/"):
			details++
		}
	}
	if lists != 1 || details != 6 {
		t.Errorf("%d list pages and %d details fetched, want 1 and 6", lists, details)
	}
}

// TestAnalyzeUploadsPagesUpToLimit: pages are fetched until limit uploads
// (not a whole page more), or until total when there are fewer.
func TestAnalyzeUploadsPagesUpToLimit(t *testing.T) {
	emu, url := apiEmulator(t)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 23 {
		emu.AddUpload(timedUpload(start, time.Duration(i)*time.Minute, 2*time.Second, [2]time.Duration{0, time.Second}))
	}
	for _, tt := range []struct{ limit, analyzed, lists int }{{21, 21, 2}, {100, 23, 2}, {5, 5, 1}} {
		before := len(emu.Log())
		r, err := runAnalyze(t, fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - analyze:\n      uploads: {limit: %d}\n", url, tt.limit))
		if err != nil {
			t.Fatal(err)
		}
		lists := 0
		for _, rec := range emu.Log()[before:] {
			if rec.Path == "/api/uploads/" {
				lists++
			}
		}
		if u := r.Steps[0].Uploads; u.Analyzed != tt.analyzed || lists != tt.lists || *u.MedianWinPct != 50 {
			t.Errorf("limit %d: analysed %d after %d pages, want %d after %d", tt.limit, u.Analyzed, lists, tt.analyzed, tt.lists)
		}
	}
}

// TestAnalyzeUploadsRefusedToken: a token Tecken refuses fails the step
// with Tecken's message, and the token is never shown.
func TestAnalyzeUploadsRefusedToken(t *testing.T) {
	_, url := apiEmulator(t)
	bad := "fedcba9876543210fedcba9876543210"
	t.Setenv("TECKENRUN_TEST_TOKEN", bad)
	r, out, err := runPlanAs[analyzeReport](t, t.Context(), fmt.Sprintf("host: %s\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - analyze:\n      uploads: {}\n", url), nil, nil)
	if err == nil || r == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, "403 API Token not matched") {
		t.Fatalf("err %v, report %+v", err, r)
	}
	if u := r.Steps[0].Uploads; u == nil || u.Rows == nil || u.AverageWinPct != nil {
		t.Errorf("a failed analysis reports %+v", u)
	}
	if strings.Contains(out, bad) {
		t.Error("the token was printed")
	}
}
