package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/mozilla-services/teckenrun/internal/emulator"
)

type analyzeReport struct {
	Steps []struct {
		Kind  string  `json:"kind"`
		OK    bool    `json:"ok"`
		Error *string `json:"error"`
		AnalyzeResult
		DownloadResult
	} `json:"steps"`
}

const logOwner = "3272ee65a908a7677109fedda345db8d9554ba26398b2ca10581de88777e2b61"

// logLine writes an S3 server access log line as S3 does, with the
// trailing fields of today's format.
func logLine(bucket string, at time.Time, op, request string, status int, errCode, total, agent string) string {
	return fmt.Sprintf(`%s %s [%s] 54.201.12.34 - 3F1A2B3C4D5E6F70 %s %s "%s" %d %s 339 1024 %s 8 "-" "%s" - Q2xkxjY6TTzLr9Bw= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader %s.s3.amazonaws.com TLSv1.2 - -`,
		logOwner, bucket, at.Format("02/Jan/2006:15:04:05 -0700"), op, "key", request, status, errCode, total, agent, bucket)
}

const (
	pubBucket  = "org.mozilla.crash-stats.symbols-public"
	privBucket = "org.mozilla.crash-stats.symbols-private"
)

var logT0 = time.Date(2017, 5, 4, 13, 45, 0, 0, time.UTC)

// handCorpus is a small corpus whose CSVs are written out below: every
// edge case the parser must take, and malformed lines.
func handCorpus() map[string]string {
	xul := "/" + pubBucket + "/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym"
	nv := "/" + pubBucket + "/v1/nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301/nvwgf2umx.sym"
	flash := "/" + privBucket + "/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym"
	plus1 := time.FixedZone("", 3600)
	return map[string]string{
		// Later in name, earlier in time: the cache replays in time order.
		"public-symbols/b.log": strings.Join([]string{
			logLine(pubBucket, logT0.Add(4*time.Second), "REST.GET.OBJECT", "GET "+xul+" HTTP/1.1", 200, "-", "412", "python-requests/2.13.0"),
			logLine(pubBucket, logT0.Add(2*time.Second).In(plus1), "REST.GET.OBJECT", "GET "+nv+" HTTP/1.1", 404, "NoSuchKey", "-", `Mozilla/5.0 (X11; Linux x86_64) \"quoted\"`),
			"",
			logLine(pubBucket, logT0.Add(4*time.Second), "REST.HEAD.OBJECT", "HEAD "+xul+" HTTP/1.1", 200, "-", "3", "curl/7.1"),
			logLine(pubBucket, logT0.Add(4*time.Second), "REST.COPY.OBJECT_GET", "-", 200, "-", "20", "-"),
		}, "\r\n") + "\r\n",
		"public-symbols/a.log": strings.Join([]string{
			logLine(pubBucket, logT0.Add(3*time.Second), "REST.GET.OBJECT", "GET "+xul+" HTTP/1.1", 200, "-", "100", "Socorro/1.0"),
			"short line - -",
			logLine(pubBucket, logT0.Add(5*time.Second), "REST.GET.OBJECT", "GET "+nv+" HTTP/1.1", 404, "NoSuchKey", "9", "Socorro/1.0"),
			strings.Replace(logLine(pubBucket, logT0, "REST.GET.OBJECT", "GET "+xul+" HTTP/1.1", 200, "-", "1", "x"), "[04/May/2017:13:45:00", "[04-05-2017 13:45:00", 1),
			strings.Replace(logLine(pubBucket, logT0, "REST.GET.OBJECT", "GET "+xul+" HTTP/1.1", 200, "-", "1", "x"), `"GET `, `"GET`, 1)[:200],
			logLine(pubBucket, logT0, "REST.GET.OBJECT", "GET "+xul+" HTTP/1.1", 200, "-", "ten", "x"),
		}, "\n"), // no final newline
		"private-symbols/c.log":    logLine(privBucket, logT0.Add(6*time.Second), "REST.GET.OBJECT", "GET "+flash+" HTTP/1.1", 403, "AccessDenied", "6", "python-requests/2.13.0") + "\n",
		"public-symbols/notes.txt": "not a log\n",
	}
}

const handQueries = `DATE,URI,STATUS CODE,PRIVATE,TOTAL_TIME
2017-05-04T13:45:06,/org.mozilla.crash-stats.symbols-private/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym,403,true,6
2017-05-04T13:45:03,/org.mozilla.crash-stats.symbols-public/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym,200,false,100
2017-05-04T13:45:05,/org.mozilla.crash-stats.symbols-public/v1/nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301/nvwgf2umx.sym,404,false,9
2017-05-04T13:45:04,/org.mozilla.crash-stats.symbols-public/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym,200,false,412
2017-05-04T13:45:02,/org.mozilla.crash-stats.symbols-public/v1/nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301/nvwgf2umx.sym,404,false,
2017-05-04T13:45:04,HEAD /org.mozilla.crash-stats.symbols-public/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym HTTP/1.1,200,false,3
2017-05-04T13:45:04,-,200,false,20
`

const handGroups = `URI,STATUS CODE,PRIVATE,COUNT
/org.mozilla.crash-stats.symbols-public/v1/nvwgf2umx.pdb/8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301/nvwgf2umx.sym,404,false,2
/org.mozilla.crash-stats.symbols-public/v1/xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym,200,false,2
/org.mozilla.crash-stats.symbols-private/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym,403,true,1
`

// generatedCorpus adds n seeded lines over several files to the hand corpus.
func generatedCorpus(n int) map[string]string {
	files := handCorpus()
	r := rand.New(rand.NewPCG(12, 5))
	var b strings.Builder
	for i := range n {
		bucket, dir := pubBucket, "public-symbols"
		if r.IntN(10) == 0 {
			bucket, dir = privBucket, "private-symbols"
		}
		method := []string{"GET", "GET", "GET", "HEAD", "PUT"}[r.IntN(5)]
		status := []int{200, 200, 404, 403, 500}[r.IntN(5)]
		uri := fmt.Sprintf("/%s/v1/lib%d.pdb/%032X%d/lib%d.sym", bucket, r.IntN(40), r.Uint64(), r.IntN(3), r.IntN(40))
		total := fmt.Sprint(r.IntN(2000))
		if r.IntN(20) == 0 {
			total = "-"
		}
		b.WriteString(logLine(bucket, logT0.Add(time.Duration(r.IntN(7200))*time.Second), "REST."+method+".OBJECT", method+" "+uri+" HTTP/1.1", status, "-", total, "agent, with comma") + "\n")
		if i%250 == 249 || i == n-1 {
			files[fmt.Sprintf("%s/gen-%04d.log", dir, i)] = b.String()
			b.Reset()
		}
	}
	return files
}

func writeCorpus(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// s3Corpus serves the files on an in-process gofakes3 under prefix.
func s3Corpus(t *testing.T, files map[string]string, prefix string) string {
	t.Helper()
	backend := s3mem.New()
	backend.CreateBucket("logs")
	for name, content := range files {
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		if _, err := backend.PutObject("logs", prefix+name, map[string]string{}, strings.NewReader(content), int64(len(content)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// An object outside the prefix is not read.
	backend.PutObject("logs", "other/x.log", map[string]string{}, strings.NewReader("junk\n"), 5, nil)
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	return ts.URL
}

func runAnalyze(t *testing.T, plan string) (*analyzeReport, error) {
	t.Helper()
	r, out, err := runPlanAs[analyzeReport](t, context.Background(), plan, nil, nil)
	if r == nil {
		t.Fatalf("no report: %v\n%s", err, out)
	}
	return r, err
}

// TestAnalyzeLogsHandCorpus: the CSVs of a corpus with every edge case
// are exactly as written out, and malformed lines are counted with their
// file and line.
func TestAnalyzeLogsHandCorpus(t *testing.T) {
	dir := writeCorpus(t, handCorpus())
	out := t.TempDir()
	r, err := runAnalyze(t, fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - analyze:\n      logs: {dir: %s, private: [private-symbols], out_dir: %s, cache_sizes: [1, 2]}\n", dir, out))
	if err != nil {
		t.Fatal(err)
	}
	l := r.Steps[0].Logs
	if l == nil || r.Steps[0].Uploads != nil {
		t.Fatalf("logs %v, uploads %v", l, r.Steps[0].Uploads)
	}
	for name, want := range map[string]string{queriesCSV: handQueries, groupsCSV: handGroups} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	if l.Files != 3 || l.Lines != 11 || l.NonGET != 2 || l.Malformed != 4 || l.SpanS == nil || *l.SpanS != 4 {
		t.Errorf("files %d, lines %d, non-GET %d, malformed %d, span %v", l.Files, l.Lines, l.NonGET, l.Malformed, l.SpanS)
	}
	a := filepath.Join(dir, "public-symbols", "a.log")
	want := []struct {
		line   int
		reason string
	}{{2, "4 fields, want at least 17"}, {4, `time "04-05-2017 13:45:00 +0000" is not like`}, {5, "field 9: \" without its closing"}, {6, `total time "ten"`}}
	if len(l.MalformedLines) != len(want) {
		t.Fatalf("malformed %+v", l.MalformedLines)
	}
	for i, w := range want {
		m := l.MalformedLines[i]
		if m.File != a || m.Line != w.line || !strings.Contains(m.Reason, w.reason) {
			t.Errorf("malformed[%d] = %+v, want %s:%d: %s", i, m, a, w.line, w.reason)
		}
	}
	if !slices.Equal(l.Outputs, []string{filepath.Join(out, queriesCSV), filepath.Join(out, groupsCSV)}) {
		t.Errorf("outputs %v", l.Outputs)
	}
	// Over 4 s: rates per (status, private), the most frequent first.
	wantRates := []LogRate{{200, false, 4, ptr(4.0 / 4)}, {404, false, 2, ptr(2.0 / 4)}, {403, true, 1, ptr(1.0 / 4)}}
	if len(l.Rates) != 3 {
		t.Fatalf("rates %+v", l.Rates)
	}
	for i, w := range wantRates {
		g := l.Rates[i]
		if g.Status != w.Status || g.Private != w.Private || g.Count != w.Count || g.RatePerS == nil || *g.RatePerS != *w.RatePerS {
			t.Errorf("rates[%d] = %+v, want %+v", i, g, w)
		}
	}
	// S3 times (ms): 200: 412, 100, 3, 20; 404: 9 (one logged "-").
	tt := l.TotalTimes
	near := func(v *float64, want float64) bool { return v != nil && math.Abs(*v-want) < 1e-12 }
	if len(tt) != 3 || tt[0].Status != 200 || tt[0].Count != 4 || !near(tt[0].AverageS, 0.13375) || !near(tt[0].MedianS, 0.06) || !near(tt[0].P95S, 0.412) ||
		tt[1].Status != 403 || tt[1].Private != true || tt[2].Status != 404 || tt[2].Count != 1 || !near(tt[2].MedianS, 0.009) {
		t.Errorf("total times %+v", tt)
	}
	// GET queries in time order: nv xul xul nv flash. An LRU of 1 hits
	// once (in file order, flash xul nv xul nv, it would never hit); of 2
	// every repeat hits.
	if c := l.Cache; len(c) != 2 || c[0].Lookups != 5 || c[0].Hits != 1 || *c[0].HitRatio != 0.2 || c[1].Hits != 2 || *c[1].HitRatio != 0.4 {
		t.Errorf("cache %+v", c)
	}
}

// TestAnalyzeLogsDirAndS3GiveTheSameCSVs: a generated corpus read from a
// folder and from S3 (gofakes3) gives byte-identical CSVs.
func TestAnalyzeLogsDirAndS3GiveTheSameCSVs(t *testing.T) {
	files := generatedCorpus(3000)
	dir := writeCorpus(t, files)
	endpoint := s3Corpus(t, files, "logs/2017/")
	outDir, outS3 := t.TempDir(), t.TempDir()
	rd, err := runAnalyze(t, fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - analyze:\n      logs: {dir: %s, private: [private-symbols/], out_dir: %s}\n", dir, outDir))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := runAnalyze(t, fmt.Sprintf("host: http://127.0.0.1:1\nsteps:\n  - analyze:\n      logs: {bucket: logs, prefix: logs/2017/, endpoint: %s, anonymous: true, private: [private-symbols/], out_dir: %s}\n", endpoint, outS3))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{queriesCSV, groupsCSV} {
		a, _ := os.ReadFile(filepath.Join(outDir, name))
		b, _ := os.ReadFile(filepath.Join(outS3, name))
		if len(a) < 1000 || !bytes.Equal(a, b) {
			t.Errorf("%s: %d bytes from the folder, %d from S3, or they differ", name, len(a), len(b))
		}
	}
	ld, ls := rd.Steps[0].Logs, rs.Steps[0].Logs
	if ld.Files != 15 || ls.Files != 15 || ld.Lines != 3011 || ls.Lines != 3011 || ls.Malformed != 4 {
		t.Errorf("folder: %d files %d lines; S3: %d files, %d lines, %d malformed", ld.Files, ld.Lines, ls.Files, ls.Lines, ls.Malformed)
	}
	if m := ls.MalformedLines[0]; m.File != "s3://logs/logs/2017/public-symbols/a.log" || m.Line != 2 {
		t.Errorf("malformed on S3 at %s:%d", m.File, m.Line)
	}
	// Every non-GET line is in the queries file but not in the groups.
	groups, _ := os.ReadFile(filepath.Join(outS3, groupsCSV))
	if strings.Contains(string(groups), "HEAD ") || strings.Contains(string(groups), "PUT ") {
		t.Error("the groups file has non-GET lines")
	}
	if ld.NonGET < 1000 || ld.NonGET != ls.NonGET {
		t.Errorf("non-GET: %d and %d", ld.NonGET, ls.NonGET)
	}
	if len(ld.Cache) != 3 || len(ls.Cache) != 3 {
		t.Fatalf("%d and %d cache sizes simulated, want the 3 defaults", len(ld.Cache), len(ls.Cache))
	}
	for i, c := range ld.Cache {
		if c.Size != []int{300, 1000, 10000}[i] || c.Hits != ls.Cache[i].Hits || c.Lookups != 3007-ld.NonGET {
			t.Errorf("cache %+v and %+v", c, ls.Cache[i])
		}
	}
}

// TestLRUHits checks the replay on a sequence worked out by hand.
func TestLRUHits(t *testing.T) {
	// A B C A D B A E A B B
	seq := []int32{0, 1, 2, 0, 3, 1, 0, 4, 0, 1, 1}
	for _, tt := range []struct {
		size int
		hits int64
	}{
		{1, 1},  // only the last B B
		{2, 2},  // A (after E A), the last B
		{3, 5},  // A (4th), A (7th), A (9th), B (10th), B (11th)
		{5, 6},  // every repeat: 11 lookups, 5 distinct keys
		{50, 6}, // a cache larger than the keys does no better
	} {
		if got := lruHits(seq, tt.size); got != tt.hits {
			t.Errorf("size %d: %d hits, want %d", tt.size, got, tt.hits)
		}
	}
}

// TestAnalyzeLogsGroupsDriveADownload: the groups file that analyze
// writes is what a download step replays, against the emulator.
func TestAnalyzeLogsGroupsDriveADownload(t *testing.T) {
	emu := emulator.New(emulator.Options{})
	mods := emulator.EmbeddedModules()[:3]
	for _, m := range mods {
		emu.Put(m.Key(), m.Bytes())
	}
	ts := httptest.NewServer(emu)
	defer ts.Close()
	var lines []string
	at := logT0
	add := func(bucket, request string, status int) {
		at = at.Add(time.Second)
		lines = append(lines, logLine(bucket, at, "REST.GET.OBJECT", request, status, "-", "5", "Socorro/1.0"))
	}
	for i, m := range mods {
		for range i + 1 {
			add(pubBucket, "GET /"+pubBucket+"/v1/"+m.Key()+" HTTP/1.1", 200)
		}
	}
	add(pubBucket, "GET /"+pubBucket+"/v1/gone.pdb/0123456789ABCDEF0123456789ABCDEF0/gone.sym HTTP/1.1", 404)
	add(pubBucket, "HEAD /"+pubBucket+"/v1/"+mods[0].Key()+" HTTP/1.1", 200)
	var private []string
	private = append(private, logLine(privBucket, at, "REST.GET.OBJECT", "GET /"+privBucket+"/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym HTTP/1.1", 403, "AccessDenied", "4", "x"))
	dir := writeCorpus(t, map[string]string{"pub/1.log": strings.Join(lines, "\n"), "priv/1.log": private[0]})
	out := filepath.Join(t.TempDir(), "downloading")
	plan := fmt.Sprintf("host: %s\nsteps:\n  - analyze:\n      logs: {dir: %s, private: [priv], out_dir: %s}\n  - download:\n      csv: %s\n      concurrency: 2\n",
		ts.URL, dir, out, filepath.Join(out, groupsCSV))
	r, err := runAnalyze(t, plan)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Steps[1].DownloadResult
	// 1+2+3 hits (302), one 404 and the private 403 (Tecken: 404); the
	// HEAD is not replayed.
	if d.Metrics.Requests != 8 || d.Right != 8 || d.Rows != 5 || d.JunkRows != 0 {
		t.Errorf("download: %d requests, %d right, %d rows, %d junk", d.Metrics.Requests, d.Right, d.Rows, d.JunkRows)
	}
	counts := emu.Counts()
	if counts[emulator.CountKey{Endpoint: "download", Status: 302}] != 6 || counts[emulator.CountKey{Endpoint: "download", Status: 404}] != 2 {
		t.Errorf("the emulator answered %v", counts)
	}
}
