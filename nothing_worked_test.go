package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// These steps did nothing useful: each must fail (exit 1) and say why.

func TestSymbolicateWithoutAValidAnswerFails(t *testing.T) {
	_, _, dir := symbolStore(t, emulator.Options{}, 3)
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"an HTML page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><title>Maintenance</title><body>back soon</body></html>"))
		}, "3 requests got 3× 200; the 3 200s did not fit their request"},
		{"400s", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": "Frame must be two integers"}`, http.StatusBadRequest)
		}, "3 requests got 3× 400; most common error: 400 Frame must be two integers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			defer ts.Close()
			r, err := runSymJSON(t, symPlan(ts.URL, dir, ""))
			if err == nil || r == nil || exitCode(err, &strings.Builder{}) != exitFailed {
				t.Fatalf("err %v, want a failed step (exit 1)", err)
			}
			if e := r.Steps[0].Error; e == nil || !strings.Contains(*e, "no answer was a valid symbolication: "+tt.want) {
				t.Errorf("step error %v, want %q", e, tt.want)
			}
		})
	}
}

func TestMakeZipsWritesNoZipWhenEveryFileFailed(t *testing.T) {
	// An empty bucket: every symbol file of the upload is a 404.
	records, _ := embeddedHit(t)
	backend := s3mem.New()
	backend.CreateBucket("symbols")
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	defer ts.Close()
	dir := t.TempDir()
	plan := fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - make-zips:\n      source: uploaded-symbols\n      records: %s\n      symbols_url: s3://symbols/mirror\n      endpoint: %s\n      anonymous: true\n      save_dir: %s\n", records, ts.URL, dir)
	r, err := runMakeZips(t, plan)
	if err == nil || r == nil || r.Steps[0].Error == nil || !strings.Contains(*r.Steps[0].Error, "no zip written: none of the uploads' files could be fetched") {
		t.Fatalf("make-zips with every file failing: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("written: %v", entries)
	}
	if len(r.Steps[0].Zips) != 0 || len(r.Steps[0].FailedFiles) == 0 {
		t.Errorf("zips %v, failed files %v", r.Steps[0].Zips, r.Steps[0].FailedFiles)
	}
}

func TestUploadOfAnEmptyFolderSaysSo(t *testing.T) {
	_, ts := uploadEmulator(t)
	dir := t.TempDir()
	_, out, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n"), nil)
	if err == nil || !strings.Contains(out, dir+" has no .zip files") || strings.Contains(out, "locked") {
		t.Errorf("an empty zips_dir: %v\n%s", err, out)
	}
}
