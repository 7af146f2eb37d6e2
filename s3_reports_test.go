package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// fakeS3 serves an in-process S3 with a bucket "reports", and points the
// SDK's credential chain at static keys, so that nothing leaves the
// machine.
func fakeS3(t *testing.T) (endpoint string, backend *s3mem.Backend) {
	t.Helper()
	backend = s3mem.New()
	if err := backend.CreateBucket("reports"); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "", "AWS_REGION": "",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	return ts.URL, backend
}

// TestS3RoundTrip: shards write their reports to S3 with -out s3://…/
// (each to its shard-I.json), and merge reads every report under the prefix and writes the merged
// one back to S3.
func TestS3RoundTrip(t *testing.T) {
	endpoint, backend := fakeS3(t)
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	if err := writeFileAtomic(plan, func(w io.Writer) error { _, err := io.WriteString(w, shardPlan("embedded", "")); return err }); err != nil {
		t.Fatal(err)
	}
	prefix := "s3://reports/runs/2026-12-01/"
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k := range 2 {
		wg.Go(func() {
			errs[k] = run(context.Background(), []string{"-format", "json", "-shard", fmt.Sprintf("%d/2", k), "-s3-endpoint", endpoint,
				"-out", prefix, plan}, strings.NewReader(""), io.Discard, io.Discard, terminal{})
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("shard %d: %v", k, err)
		}
	}
	// Not a report: merge skips what does not end in .json.
	if _, err := backend.PutObject("reports", "runs/2026-12-01/notes.txt", map[string]string{}, strings.NewReader("notes"), 5, nil); err != nil {
		t.Fatal(err)
	}

	merged, err := mergeArgs(t, "-s3-endpoint", endpoint, "-out", "s3://reports/merged/2026-12-01.json", prefix)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if want := []string{prefix + "shard-0.json", prefix + "shard-1.json"}; !slices.Equal(merged.Merge.Inputs, want) {
		t.Errorf("inputs %v, want %v", merged.Merge.Inputs, want)
	}
	if n := stepMetrics(merged, "download").Requests; n != 37 {
		t.Errorf("merged %d downloads, want 37", n)
	}
	obj, err := backend.GetObject("reports", "merged/2026-12-01.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Contents.Close()
	saved, err := DecodeReport(obj.Contents, "s3://reports/merged/2026-12-01.json")
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	jsonReport(&a, merged)
	jsonReport(&b, saved)
	if a.String() != b.String() {
		t.Errorf("the report in S3 differs from the one printed")
	}

	// Single objects merge too, and bad places say what is wrong.
	if _, err := mergeArgs(t, "-s3-endpoint", endpoint, prefix+"shard-1.json", prefix+"shard-0.json"); err != nil {
		t.Errorf("merge of two objects: %v", err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"s3://reports/empty/"}, "s3://reports/empty/ holds no .json reports"},
		{[]string{prefix + "shard-7.json"}, prefix + "shard-7.json: no such object (to merge every report under a prefix, end it with /)"},
		{[]string{"-out", "s3://reports/merged/", prefix}, "-out s3://reports/merged/ names a folder; give the report's key"},
		{[]string{"s3:///x.json"}, `"s3:///x.json" is not s3://BUCKET/KEY`},
	} {
		_, err := mergeArgs(t, append([]string{"-s3-endpoint", endpoint}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("merge %v: %v, want %q", tt.args, err, tt.want)
		}
	}
}
