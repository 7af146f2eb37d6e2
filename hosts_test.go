package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"go.yaml.in/yaml/v3"
)

// recordingProxy is an HTTP proxy on loopback that refuses everything and
// records what it was asked for: a request that would leave the machine.
type recordingProxy struct {
	mu   sync.Mutex
	seen []string
}

func (p *recordingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.Host)
	p.mu.Unlock()
	http.Error(w, "teckenrun test: this request would leave the machine", http.StatusForbidden)
}

func (p *recordingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestHostEmbeddedStaysOnLoopback runs the real binary on a plan with every
// kind of step and real hosts (testdata/plans/every-kind.yaml) with -host
// embedded. Every HTTP client of teckenrun, the S3 SDK's included, takes
// its proxy from the environment and never proxies loopback: so a request
// to any host but 127.0.0.1 goes to the recording proxy, which refuses it.
func TestHostEmbeddedStaysOnLoopback(t *testing.T) {
	bin := buildTeckenrun(t)
	proxy := &recordingProxy{}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasSuffix(strings.ToUpper(name), "_PROXY") {
			env = append(env, kv)
		}
	}
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		env = append(env, name+"="+ps.URL)
	}
	cmd := exec.Command(bin, "-host", "embedded", "-format", "json", "testdata/plans/every-kind.yaml")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if seen := proxy.requests(); len(seen) > 0 {
		t.Errorf("requests left the machine: %v", seen)
	}
	if runErr != nil {
		t.Fatalf("run: %v\nstderr: %s\nstdout: %s", runErr, stderr.String(), stdout.String())
	}
	var r struct {
		OK    bool `json:"ok"`
		Steps []struct {
			Name  string          `json:"name"`
			Kind  string          `json:"kind"`
			OK    bool            `json:"ok"`
			Zips  json.RawMessage `json:"zips"`
			Error *string         `json:"error"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	kinds := map[string]bool{}
	for _, s := range r.Steps {
		kinds[s.Kind] = true
		if !s.OK {
			t.Errorf("step %s: %v", s.Name, *s.Error)
		}
		switch s.Kind {
		case "list-zips":
			var zips []ZipURL
			json.Unmarshal(s.Zips, &zips)
			for _, z := range zips {
				if !strings.HasPrefix(z.URL, "http://127.0.0.1:") {
					t.Errorf("list-zips listed %s", z.URL)
				}
			}
		case "make-zips":
			// Made from the embedded S3's files, for both symbols_url forms.
			var zips []MadeZip
			json.Unmarshal(s.Zips, &zips)
			if len(zips) != 1 || zips[0].Files == 0 {
				t.Errorf("%s made %+v", s.Name, zips)
			}
		}
	}
	if len(kinds) != len(stepKinds()) || len(r.Steps) != 15 {
		t.Errorf("ran %d steps of kinds %v, want all %d kinds", len(r.Steps), kinds, len(stepKinds()))
	}
}

func TestHostFlagRefusesStepsThatLeaveIt(t *testing.T) {
	plan := `host: https://symbols.stage.mozaws.net
auth_token_env: TECKENRUN_TEST_TOKEN
steps:
  - list-zips: {number: 1}
  - make-zips:
      source: uploaded-symbols
      records: r.json
      symbols_url: https://s3-us-west-2.amazonaws.com/bucket/
  - make-zips:
      source: uploaded-symbols
      records: r.json
      symbols_url: s3://bucket/
  - make-zips:
      source: uploaded-symbols
      records: r.json
      symbols_url: s3://bucket/
      endpoint: https://s3.example.com
  - upload:
      urls: [http://127.0.0.1:9/a.zip, https://example.com/b.zip]
`
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	_, out, err := runPlanAs[testReport](t, context.Background(), plan, map[string]string{"r.json": `{"hits": []}`}, nil,
		"-host", "http://u:secret@127.0.0.1:1")
	if code := exitCode(err, new(bytes.Buffer)); code != exitUsage {
		t.Fatalf("exit %d (%v), want %d", code, err, exitUsage)
	}
	for _, want := range []string{
		"plan.yaml: steps[0].list-zips.taskcluster: https://firefox-ci-tc.services.mozilla.com is not on -host http://u:***@127.0.0.1:1, which every request must stay on; set taskcluster to a URL on that host, or to embedded (line 4)",
		"plan.yaml: steps[1].make-zips.symbols_url: https://s3-us-west-2.amazonaws.com/bucket/ is not on -host",
		"plan.yaml: steps[2].make-zips.endpoint: is required with -host http://u:***@127.0.0.1:1: without it, s3:// symbols_url reads from AWS",
		"plan.yaml: steps[3].make-zips.endpoint: https://s3.example.com is not on -host",
		"plan.yaml: steps[4].upload.urls[1]: https://example.com/b.zip is not on -host",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nwant it to contain\n%s", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("%d problems, want 5: %v", n, err)
	}
	if strings.Contains(err.Error()+out, "secret") {
		t.Error("the password of -host was printed")
	}
}

// TestHostFlagRefusesURLsReadAtRunTime checks what validation cannot: URLs
// read from a file when the step runs are not fetched when they would
// leave -host.
func TestHostFlagRefusesURLsReadAtRunTime(t *testing.T) {
	emu, ts := uploadEmulator(t)
	r, _, err := runPlanAs[uploadReport](t, context.Background(),
		uploadPlan("https://symbols.stage.mozaws.net", "      urls_from: urls.txt\n      retries: 0\n"),
		map[string]string{"urls.txt": "https://example.invalid/a.zip\n"}, nil, "-host", ts.URL)
	if err == nil || r == nil {
		t.Fatalf("run: %v", err)
	}
	u := r.Steps[0].Uploads
	if len(u) != 1 || u[0].Error == nil || !strings.Contains(*u[0].Error, "example.invalid is not on -host "+ts.URL) {
		t.Errorf("uploads %+v", u)
	}
	if n := len(emu.Uploads()); n != 0 {
		t.Errorf("the server got %d uploads", n)
	}
}

func TestValidateShowsWhereRequestsGo(t *testing.T) {
	stdout, _, err := runArgs(t, terminal{}, "-validate", "-host", "embedded", "testdata/plans/every-kind.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Requests of this run go to:\n#   host: embedded (the built-in emulator on 127.0.0.1)\n",
		"#   list-zips (list-zips): TaskCluster embedded (the built-in emulator on 127.0.0.1)\n",
		"#   make-zips-from-https (make-zips): s3://org.mozilla.crash-stats.symbols-public/ on the embedded S3 (127.0.0.1)\n",
		"#   upload-by-url (upload): the URLs from list-zips (and where they redirect)\n",
		"taskcluster: embedded", "endpoint: embedded",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("-validate output lacks %q:\n%s", want, stdout)
		}
	}
	var p map[string]any
	if err := yaml.Unmarshal([]byte(stdout), &p); err != nil || p["host"] != "embedded" {
		t.Errorf("-validate output is not the plan in YAML (%v): %v", err, p)
	}
}

func TestProductionHostsNeedPermission(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken)
	for _, tt := range []struct {
		host       string
		production bool
	}{
		{"https://symbols.mozilla.org", true},
		{"https://SYMBOLS.mozilla.org", true},
		{"https://symbols.mozilla.org.", true},
		{"https://Symbols.Mozilla.Org.:443", true},
		{"https://tecken-new.mozilla.org", true},
		{"https://symbolication.services.mozilla.com", true},
		{"https://SYMBOLICATION.services.mozilla.com.", true},
		{"https://symbols.stage.mozaws.net", false},
		{"https://symbols.dev.mozaws.net", false},
		{"https://mozilla.org.example.com", false},
		{"http://127.0.0.1:8000", false},
	} {
		p, err := ParsePlan(strings.NewReader("host: "+tt.host+"\nauth_token_env: TECKENRUN_TEST_TOKEN\nsteps:\n  - upload: {zips_dir: z}\n"), "plan.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = p.Validate()
		if got := err != nil && strings.Contains(err.Error(), "is production: writing to it needs allow_production_writes: true"); got != tt.production {
			t.Errorf("%s: production %v, want %v (%v)", tt.host, got, tt.production, err)
		}
	}
}

func TestTokensAreTrimmedAndCheckedWithoutBeingShown(t *testing.T) {
	const secret = "s3cr3tT0k3n"
	plan := "host: https://symbols.stage.mozaws.net\nauth_token_env: %s\nsteps:\n  - upload: {zips_dir: z}\n"
	for _, tt := range []struct {
		name, env, value, want string
	}{
		{"newline of a mounted secret", "TECKENRUN_TEST_TOKEN", "  " + secret + "\n", ""},
		{"control character", "TECKENRUN_TEST_TOKEN", secret + "\x01x", "the Auth-Token in environment variable TECKENRUN_TEST_TOKEN holds a control character"},
		{"inner newline", "TECKENRUN_TEST_TOKEN", secret + "\nx", "holds a control character"},
		{"blank", "TECKENRUN_TEST_TOKEN", " \n", "environment variable TECKENRUN_TEST_TOKEN is not set"},
		{"the token itself as the name", "a0b1" + secret, "", "auth_token_env: must be the name of an environment variable"},
		{"a name with a hyphen", "TOKEN-" + secret, "", "auth_token_env: must be the name of an environment variable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.value != "" {
				t.Setenv(tt.env, tt.value)
			}
			p, err := ParsePlan(strings.NewReader(strings.Replace(plan, "%s", tt.env, 1)), "plan.yaml")
			if err != nil {
				t.Fatal(err)
			}
			err = p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Errorf("the token was printed: %v", err)
			}
		})
	}
}

// TestTokenWithNewlineIsSentTrimmed uploads with a token that ends in a
// newline, as a mounted secret does: the server must get the token.
func TestTokenWithNewlineIsSentTrimmed(t *testing.T) {
	emu, ts := uploadEmulator(t)
	t.Setenv("TECKENRUN_TEST_TOKEN", testToken+"\n")
	dir := t.TempDir()
	goodZip(t, dir, "a.zip", 3)
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      retries: 0\n"), nil)
	if err != nil {
		t.Fatalf("run: %v (%+v)", err, r)
	}
	if n := len(emu.Uploads()); n != 1 || r.Steps[0].Succeeded != 1 {
		t.Errorf("server has %d uploads; report %+v", n, r.Steps[0].UploadResult)
	}
}

func TestHostPasswordIsNeverPrinted(t *testing.T) {
	_, url := startEmulator(t, emulator.Options{})
	host := strings.Replace(url, "http://", "http://tester:hunter2@", 1)
	want := strings.Replace(url, "http://", "http://tester:***@", 1)
	for _, format := range []string{"json", "table"} {
		dir := t.TempDir()
		for name, content := range downloadFiles {
			os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
		}
		plan := filepath.Join(dir, "plan.yaml")
		os.WriteFile(plan, []byte(downloadPlan("https://symbols.stage.mozaws.net", "")), 0o644)
		stdout, stderr, err := runArgs(t, terminal{}, "-format", format, "-host", host, plan)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stdout, want) {
			t.Errorf("%s report:\n%s\nstderr: %s", format, stdout, stderr)
		}
		stdout, stderr, err = runArgs(t, terminal{}, "-validate", "-host", host, plan)
		if err != nil || strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stdout, "host: "+want) {
			t.Errorf("-validate (%v):\n%s", err, stdout)
		}
	}
	_, _, err := runArgs(t, terminal{}, "-host", "ftp://tester:hunter2@x", "plans/demo.yaml")
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "ftp://tester:***@x") {
		t.Errorf("-host error: %v", err)
	}
	if redactURL("https://u:p@ss@host/x@y") != "https://u:***@host/x@y" || redactURL("https://host/a:b@c") != "https://host/a:b@c" {
		t.Errorf("redactURL: %s, %s", redactURL("https://u:p@ss@host/x@y"), redactURL("https://host/a:b@c"))
	}
}
