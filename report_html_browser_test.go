package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium): the HTML report is not checked in a browser")
	return ""
}

// chartCheck is what the page shows of one chart of its data.
type chartCheck struct {
	ID string `json:"id"`
	// Want is the number of series in the data; Series the number of
	// series the SVG has, Drawn those with visible geometry, WantDrawn
	// those with something to draw (a bar of errors needs errors).
	Want      int     `json:"want"`
	Series    int     `json:"series"`
	Drawn     int     `json:"drawn"`
	WantDrawn int     `json:"wantDrawn"`
	Width     float64 `json:"width"`
	Height    float64 `json:"height"`
	Numbers   int     `json:"numbers"` // rows of the chart's table of numbers
	Legend    int     `json:"legend"`
}

// checkCharts compares every chart of the page with its data.
const checkCharts = `(() => {
	const data = JSON.parse(document.getElementById('teckenrun-data').textContent);
	const charts = [data.overview, ...data.steps.flatMap(s => s.charts)].filter(c => c.series.length > 0);
	return charts.map(c => {
		const fig = document.querySelector('figure[data-chart="' + c.id + '"]');
		const out = {id: c.id, want: c.series.length, series: -1, drawn: 0, numbers: 0, legend: 0, width: 0, height: 0,
			wantDrawn: c.series.filter(s => s.points.some(p => c.type !== 'bars' || p[1] > 0)).length};
		if (!fig) return out;
		const svg = fig.querySelector('svg.chart');
		const box = svg.getBoundingClientRect();
		out.width = box.width; out.height = box.height;
		const groups = [...svg.querySelectorAll('g.series')];
		out.series = groups.length;
		out.drawn = groups.filter(g => [...g.querySelectorAll('path.line, rect.bar')].some(e => {
			const b = e.getBBox();
			return e.tagName === 'path' ? b.width > 0 : b.width > 0 && b.height > 0;
		})).length;
		out.numbers = fig.querySelectorAll('details table tbody tr').length;
		out.legend = fig.querySelectorAll('ul.legend li').length;
		return out;
	});
})()`

// TestHTMLReportInBrowser runs the demo plan with -html and opens the page
// in headless Chromium from a file:// URL, with the network blocked: no
// request leaves the page, nothing is logged as an error, every chart drew
// its series, and a 390 px wide viewport does not scroll sideways.
func TestHTMLReportInBrowser(t *testing.T) {
	dir := t.TempDir()
	out, page := filepath.Join(dir, "report.json"), filepath.Join(dir, "run.html")
	if _, _, err := runArgs(t, terminal{}, "-format", "json", "-out", out, "-html", page, "plans/demo.yaml"); err != nil {
		t.Fatal(err)
	}
	// The page of the run draws the run's report.
	r, err := loadReport(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := buildHTMLData([]namedReport{{"demo", r}})
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pageData(t, html)
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("the -html page's data is not that of the -out report")
	}
	spans := got.Files[0].Spans
	if end := r.EndedAt.Sub(r.StartedAt).Seconds(); math.Abs(spans[len(spans)-1].EndS-end) > 1e-6 || spans[0].StartS < 0 {
		t.Errorf("spans %v s .. %v s, the run ended at %v s", spans[0].StartS, spans[len(spans)-1].EndS, end)
	}

	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // bounds a hung browser
	defer cancel()
	ctx, cancel = chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()

	var mu sync.Mutex
	var requests, problems []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, "console "+string(ev.Type))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, "log "+string(ev.Entry.Level)+": "+ev.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	var blocked []*network.BlockPattern
	for _, scheme := range []string{"http", "https", "ws", "wss", "ftp"} {
		blocked = append(blocked, &network.BlockPattern{URLPattern: scheme + "://*:*/*", Block: true})
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: blocked}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	url := "file://" + page
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[[]chartCheck](checkCharts))
	if err != nil {
		t.Fatal(err)
	}
	type widths struct{ Scroll, Client int }
	w, err := chromedp.Run(ctx, chromedp.Evaluate[widths](`({Scroll: document.documentElement.scrollWidth, Client: document.documentElement.clientWidth})`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(t.TempDir(), "report-390px.png")
	if err := os.WriteFile(png, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", png)

	// Charts: the overview and five per request step of the demo.
	requestSteps := 0
	for _, s := range got.Steps {
		if len(s.Charts) > 0 {
			requestSteps++
		}
	}
	if requestSteps < 3 || len(charts) != 1+5*requestSteps {
		t.Errorf("%d charts for %d request steps with requests", len(charts), requestSteps)
	}
	for _, c := range charts {
		if c.Series != c.Want || c.Drawn != c.WantDrawn || c.WantDrawn == 0 || c.Legend != c.Want || c.Numbers == 0 ||
			c.Width <= 0 || c.Width > float64(w.Client) || c.Height <= 0 {
			t.Errorf("chart %s: %+v", c.ID, c)
		}
	}
	if w.Client != 390 || w.Scroll > w.Client {
		t.Errorf("at 390 px the page is %d px wide in a %d px viewport", w.Scroll, w.Client)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, u := range requests {
		if u != url {
			t.Errorf("the page requested %s", u)
		}
	}
	if len(requests) == 0 {
		t.Error("no request seen, not even the page's own: the listener saw nothing")
	}
	if len(problems) > 0 {
		t.Errorf("the browser reported: %s", strings.Join(problems, "; "))
	}
}
