package emulator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// EmbeddedLogsBucket is the bucket of the embedded S3 that holds S3 server
// access logs of the symbols buckets; the private bucket's logs are under
// EmbeddedPrivateLogs, the public one's under public-symbols/.
const (
	EmbeddedLogsBucket  = "teckenrun-embedded-logs"
	EmbeddedPrivateLogs = "private-symbols/"
)

const privateBucket = "org.mozilla.crash-stats.symbols-private"

// addEmbeddedLogs writes a day's access logs into the embedded S3, as S3
// names and writes them: GETs of the embedded store's files (200, some
// many times), of files it does not have (404), HEADs, and private-bucket
// GETs that S3 refused (403). They are the same on every call.
func addEmbeddedLogs(s *S3) {
	s.backend.CreateBucket(EmbeddedLogsBucket) // a new backend has no buckets to clash with
	r := rand.New(rand.NewPCG(2019, 801))
	mods := EmbeddedModules()
	at := time.Date(2019, 8, 1, 10, 0, 0, 0, time.UTC)
	line := func(bucket, method, key string, status int, errCode string) string {
		at = at.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
		return fmt.Sprintf(`3272ee65a908a7677109fedda345db8d9554ba26398b2ca10581de88777e2b61 %s [%s] 54.201.%d.%d - %016X REST.%s.OBJECT %s "%s /%s/%s HTTP/1.1" %d %s 339 1024 %d %d "-" "python-requests/2.22.0" - %016X= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader %s.s3.amazonaws.com TLSv1.2`+"\n",
			bucket, at.Format("02/Jan/2006:15:04:05 -0700"), r.IntN(256), r.IntN(256), r.Uint64(), method, key, method, bucket, key, status, errCode,
			5+r.IntN(400), 1+r.IntN(20), r.Uint64(), bucket)
	}
	for part := range 3 {
		var b strings.Builder
		for range 40 {
			switch n := r.IntN(10); {
			case n < 6:
				b.WriteString(line(publicBucket, "GET", "v1/"+mods[r.IntN(1+r.IntN(len(mods)))].Key(), 200, "-"))
			case n < 9:
				b.WriteString(line(publicBucket, "GET", fmt.Sprintf("v1/gone%d.pdb/%032X%d/gone%d.sym", n, r.Uint64(), n, n), 404, "NoSuchKey"))
			default:
				b.WriteString(line(publicBucket, "HEAD", "v1/"+mods[0].Key(), 200, "-"))
			}
		}
		s.backend.PutObject(EmbeddedLogsBucket, fmt.Sprintf("public-symbols/2019-08-01-1%d-00-00-%016X", part, r.Uint64()), map[string]string{},
			strings.NewReader(b.String()), int64(b.Len()), nil) // the in-memory backend does not fail
	}
	private := line(privateBucket, "GET", "v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym", 403, "AccessDenied")
	s.backend.PutObject(EmbeddedLogsBucket, EmbeddedPrivateLogs+"2019-08-01-10-00-00-5C1E3A4B2D6F7081", map[string]string{},
		strings.NewReader(private), int64(len(private)), nil)
}
