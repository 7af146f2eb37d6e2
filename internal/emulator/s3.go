package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// PublicBucket is the bucket Tecken's public symbols live in.
const PublicBucket = publicBucket

// S3 is an in-process S3 (gofakes3) that holds symbol files the way
// Tecken's bucket does: keys v1/<symbol>/<ID>/<file>, .sym files
// gzip-encoded with Content-Encoding: gzip.
type S3 struct {
	backend *s3mem.Backend
	faker   *gofakes3.GoFakeS3
}

// NewS3 returns an empty S3 with the public bucket.
func NewS3() *S3 {
	b := s3mem.New()
	b.CreateBucket(publicBucket) // a new backend has no buckets to clash with
	return &S3{backend: b, faker: gofakes3.New(b)}
}

// Put stores an object; .sym files are gzip-encoded as Tecken stores them.
func (s *S3) Put(bucket, key string, data []byte) error {
	meta := map[string]string{}
	if strings.HasSuffix(key, ".sym") {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		data, meta["Content-Encoding"] = gz.Bytes(), "gzip"
	}
	_, err := s.backend.PutObject(bucket, key, meta, bytes.NewReader(data), int64(len(data)), nil)
	return err
}

// Handler serves the S3 API (path-style requests).
func (s *S3) Handler() http.Handler { return s.faker.Server() }

// Start serves the S3 on addr and returns its endpoint URL and a stop
// function.
func (s *S3) Start(addr string) (endpoint string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed on stop
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// EmbeddedRecords returns UploadedSymbols records (the crash-stats
// format of §5) for three synthetic uploads, and an S3 holding their files
// except one, which answers 404 as a real bucket sometimes does, and
// access logs in EmbeddedLogsBucket. Both are the same on every call.
func EmbeddedRecords() (records []byte, s3 *S3) {
	r := rand.New(rand.NewPCG(2017, 6))
	s3 = NewS3()
	addEmbeddedLogs(s3)
	var hits []uploadedHit
	for i := range 3 {
		h := uploadedHit{User: "uploader@example.com", ContentType: "text/plain", ID: 154300 + i, Filename: "symbols.zip",
			Date: fmt.Sprintf("2017-06-14T1%d:%02d:%02d.%06d+00:00", i, r.IntN(60), r.IntN(60), r.IntN(1000000))}
		for j := range 4 {
			m := breakpad.Synthesize(r, fmt.Sprintf("rec%dlib%d", i, j), breakpad.Platforms[j%3], 40)
			key := "v1/" + m.Key()
			entry := publicBucket + "," + key
			if j%2 == 0 {
				h.Content.Added = append(h.Content.Added, entry)
			} else {
				h.Content.Existed = append(h.Content.Existed, entry)
			}
			if i == 2 && j == 3 {
				continue // missing from the bucket
			}
			data := m.Bytes()
			h.Size += int64(len(data))
			s3.Put(publicBucket, key, data) // the in-memory backend does not fail
		}
		txt := fmt.Sprintf("v1/firefox-55.0a1-WINNT-2017061%d-symbols.txt", i)
		h.Content.Added = append(h.Content.Added, publicBucket+","+txt)
		s3.Put(publicBucket, txt, []byte("rec0lib0.pdb\n")) // the in-memory backend does not fail
		hits = append(hits, h)
	}
	records, _ = json.MarshalIndent(map[string]any{"hits": hits, "total": len(hits)}, "", "  ") // plain values always marshal
	return append(records, '\n'), s3
}
