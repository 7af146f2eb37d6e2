package main

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// goldenReport is a report with fixed numbers, one step of each kind that
// has its own table.
func goldenReport() *Report {
	dl := &DownloadResult{Rows: 16, JunkRows: 2, FastcacheWindow: fastcacheWindow, byStatus: map[int]*statusAgg{}, recent: make([]bool, fastcacheWindow)}
	for _, o := range []downloadOutcome{
		{exchange: exchange{status: 302, latency: 2 * time.Millisecond, attempts: 1}, expect: 200, debugTime: "0.0012"},
		{exchange: exchange{status: 302, latency: 4 * time.Millisecond, attempts: 2}, expect: 200, debugTime: "0.02"},
		{exchange: exchange{status: 404, latency: time.Millisecond, attempts: 1}, expect: 200, debugTime: "0.5"},
		{exchange: exchange{status: 404, latency: time.Millisecond, attempts: 1}, expect: 404, debugTime: "0"},
		{exchange: exchange{class: classRefused, attempts: 5, err: errString("connect: connection refused")}, expect: 200},
	} {
		dl.add(o)
	}
	dl.finish(2 * time.Second)
	sym := &SymbolicateResult{Files: 3, Debug: map[string]DebugStat{}, latency: map[int]samples{}, debug: map[string]samples{}, messages: map[errKey]*ErrorMessage{}}
	sym.add(symOutcome{exchange: exchange{status: 200, latency: 30 * time.Millisecond, attempts: 1}, jobs: 2, frames: 10, knownFrames: 8, symbolicated: 6,
		debugs: []map[string]float64{{"time": 0.5, "downloads.size": 2048, "downloads.time": 0.25, "cache_lookups.count": 2, "cache_lookups.time": 0.01}, {"time": 0.1, "downloads.size": 0, "downloads.time": 0, "cache_lookups.count": 5, "cache_lookups.time": 0.02}}})
	sym.add(symOutcome{exchange: exchange{status: 400, latency: 5 * time.Millisecond, attempts: 1}, jobs: 1, frames: 3, files: []string{"float.json"}, message: "Frame must be two integers"})
	sym.finish(time.Second)
	msg := "1 of 2 uploads failed"
	return &Report{Plan: "golden", Host: "http://127.0.0.1:8000", OK: false, StartedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		DurationS: 3.5, Seed: 42, Version: "test", Steps: []StepReport{
			{Kind: "download", Name: "download", OK: true, DurationS: 2, result: dl},
			{Kind: "symbolicate", Name: "symbolicate", OK: true, DurationS: 1, result: sym},
			{Kind: "upload", Name: "upload", OK: false, Error: &msg, DurationS: 0.5, result: &UploadResult{
				Uploads: []UploadRecord{{File: "a.zip", Bytes: 1 << 20, Status: 201, Attempts: 1, Seconds: 0.5, UploadID: ptr(7)},
					{File: "b.zip", Bytes: 2048, Status: 400, Attempts: 1, Seconds: 0.1, Error: ptr("400 File is not a zip file")}},
				Succeeded: 1, Failed: 1, BytesTotal: 1 << 20, SkippedUploads: []SkippedUpload{}, StaleLocksTakenOver: []StaleLock{}}},
		}}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestReportGolden(t *testing.T) {
	for _, tt := range []struct {
		golden string
		render reporter
	}{{"testdata/report.txt", tableReport}, {"testdata/report.json", jsonReport}} {
		var got bytes.Buffer
		if err := tt.render(&got, goldenReport()); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(tt.golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(tt.golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			os.WriteFile(tt.golden+".got", got.Bytes(), 0o644)
			t.Errorf("%s differs; see %s.got (go test -run TestReportGolden -update to accept)", tt.golden, tt.golden)
		}
	}
}
