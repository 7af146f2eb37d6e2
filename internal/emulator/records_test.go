package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// TestUploadedSymbolsErrors: the API wants a token with the view-all
// permission and two valid dates.
func TestUploadedSymbolsErrors(t *testing.T) {
	_, ts := uploadServer(t)
	for _, tt := range []struct {
		token, query string
		status       int
		body         string
	}{
		{"", "start_date=2017-06-08&end_date=2017-06-08", 403, `{"error":"This requires an Auth-Token to authenticate the request"}`},
		{uploader, "start_date=2017-06-08&end_date=2017-06-08", 403, `{"error":"Insufficient permissions: View all Symbol Uploads"}`},
		{otherUser, "end_date=2017-06-08", 400, `{"errors":{"start_date":["This field is required."]}}`},
		{otherUser, "start_date=2017-06-08&end_date=8/6/2017", 400, `{"errors":{"end_date":["Enter a valid date."]}}`},
		{otherUser, "start_date=2017-06-08&end_date=2017-06-08", 200, `{"hits":[],"total":0}`},
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/UploadedSymbols/?"+tt.query, nil)
		if tt.token != "" {
			req.Header.Set("Auth-Token", tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(body) != tt.body {
			t.Errorf("%s: %d %s, want %d %s", tt.query, resp.StatusCode, body, tt.status, tt.body)
		}
	}
}

// TestEmbeddedHistory: the embedded emulator's past uploads are those of
// EmbeddedRecords, over the last days, complete, and its S3 holds
// access logs.
func TestEmbeddedHistory(t *testing.T) {
	s := NewEmbedded()
	raw, bucket := EmbeddedRecords()
	var rec struct {
		Hits []struct {
			Content struct{ Added, Existed []string } `json:"content"`
		} `json:"hits"`
	}
	json.Unmarshal(raw, &rec)
	ups := s.Uploads()
	if len(ups) != len(rec.Hits) || len(ups) != 3 {
		t.Fatalf("%d uploads", len(ups))
	}
	for i, u := range ups {
		if len(u.Files) != len(rec.Hits[i].Content.Added) || len(u.SkippedKeys) != len(rec.Hits[i].Content.Existed) ||
			u.CompletedAt.IsZero() || time.Since(u.CreatedAt) > 4*24*time.Hour || time.Since(u.CreatedAt) < 0 {
			t.Errorf("upload %d: %+v", i, u)
		}
	}
	objs, err := bucket.backend.ListBucket(EmbeddedLogsBucket, nil, gofakes3.ListBucketPage{})
	if err != nil || len(objs.Contents) != 4 || !strings.HasPrefix(objs.Contents[0].Key, EmbeddedPrivateLogs) {
		t.Errorf("logs: %v, %v", objs, err)
	}
}
