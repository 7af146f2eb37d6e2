package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePlanErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"empty file", "", []string{"plan.yaml: plan is empty"}},
		{"only comments", "# nothing\n", []string{"plan.yaml: plan is empty"}},
		{"misspelled top-level key", "host: embedded\ntimout: 5s\nsteps: []\n",
			[]string{`plan.yaml:2: unknown key "timout" at the top of the plan; did you mean "timeout"?`}},
		{"misspelled step key", "host: embedded\nsteps:\n  - download:\n      csv: a.csv\n      concurency: 3\n",
			[]string{`plan.yaml:5: unknown key "concurency" in download step; did you mean "concurrency"?`}},
		{"unknown step kind", "host: embedded\nsteps:\n  - dowload:\n      csv: a.csv\n",
			[]string{`plan.yaml:3: unknown key "dowload" in a step (a step is one of: download, make-stacks, symbolicate, list-zips, make-zips, mix, upload, analyze, fetch-records); did you mean "download"?`}},
		{"misspelled make-stacks key", "host: embedded\nsteps:\n  - make-stacks: {fromm: x}\n",
			[]string{`plan.yaml:3: unknown key "fromm" in make-stacks step; did you mean "from"?`}},
		{"duplicate key", "name: a\nname: b\nhost: embedded\n",
			[]string{`plan.yaml:2: mapping key "name" already defined at line 1`}},
		{"second document", "host: embedded\nsteps: []\n---\nhost: x\n",
			[]string{"plan.yaml:3: a plan is one YAML document"}},
		{"duration without unit", "host: embedded\ntimeout: 30\n",
			[]string{`plan.yaml: timeout: "30" is not a duration; write it with a unit, such as 30s, 5m or 1h30m (line 2)`}},
		{"negative duration", "host: embedded\ntimeout: -1s\n", []string{`plan.yaml: timeout: duration "-1s" must not be negative (line 2)`}},
		{"wrong type", "host: embedded\nstop_on_error: maybe\n", []string{`plan.yaml: stop_on_error: want true or false, got "maybe" (line 2)`}},
		{"syntax error", "host: [embedded\n", []string{"plan.yaml:"}},
		{"unset variable", "host: ${TECKENRUN_TEST_UNSET_HOST}\nname: ${TECKENRUN_TEST_UNSET_NAME}\n",
			[]string{"plan.yaml:1: environment variable TECKENRUN_TEST_UNSET_HOST is not set",
				"plan.yaml:2: environment variable TECKENRUN_TEST_UNSET_NAME is not set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlan(strings.NewReader(tt.yaml), "plan.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("%v is not a usage error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no host, no steps", "name: x\n", []string{"plan.yaml: host: is required", "plan.yaml: steps: a plan needs at least one step"}},
		{"bad host", "host: symbols.mozilla.org\nsteps:\n  - download: {csv: a.csv}\n",
			[]string{`plan.yaml: host: must be an http(s) URL such as https://symbols.mozilla.org, or embedded; got "symbols.mozilla.org" (line 1)`}},
		{"step without kind", "host: embedded\nsteps:\n  - name: lonely\n",
			[]string{"plan.yaml: steps[0]: a step needs a kind, one of: download, make-stacks, symbolicate, list-zips, make-zips, mix, upload, analyze, fetch-records (line 3)"}},
		{"zero concurrency and more", "host: embedded\nsteps:\n  - download: {csv: a.csv}\n  - download: {csv: b.csv}\n  - download:\n      csv: c.csv\n      concurrency: 0\n      max_requests: -1\n      rate: -2\n",
			[]string{"plan.yaml: steps[2].download.concurrency: must be at least 1, got 0 (line 7)",
				"plan.yaml: steps[2].download.max_requests: must be at least 0, got -1 (line 8)",
				"plan.yaml: steps[2].download.rate: must not be negative, got -2 (line 9)"}},
		{"missing csv", "host: embedded\nsteps:\n  - download: {concurrency: 2}\n",
			[]string{"plan.yaml: steps[0].download.csv: is required"}},
		{"step with two kinds", "host: embedded\nsteps:\n  - download: {csv: a.csv}\n    make-stacks: {from: embedded}\n",
			[]string{"plan.yaml: steps[0]: a step has exactly one kind, this one has download and make-stacks; make them separate steps (line 3)"}},
		{"symbolicate without stacks", "host: embedded\nsteps:\n  - symbolicate: {api: v3, batch_size: 0}\n",
			[]string{"plan.yaml: steps[0].symbolicate.stacks_dir: needs stack files from an earlier make-stacks step", `steps[0].symbolicate.api: must be v4 or v5, got "v3"`,
				"steps[0].symbolicate.batch_size: must be at least 1, got 0"}},
		{"stacks from an earlier step", "host: embedded\nsteps:\n  - make-stacks: {from: embedded}\n  - symbolicate: {}\n", nil},
		{"duplicate names", "host: embedded\nsteps:\n  - {name: a, download: {csv: a.csv}}\n  - {name: a, download: {csv: a.csv}}\n",
			[]string{`plan.yaml: steps[1].name: "a" is already the name of steps[0]`}},
		{"token in auth_token_env", "host: embedded\nauth_token_env: 0123456789abcdef-secret\nsteps:\n  - download: {csv: a.csv}\n",
			[]string{"plan.yaml: auth_token_env: must be the name of an environment variable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePlan(strings.NewReader(tt.yaml), "plan.yaml")
			if err != nil {
				t.Fatal(err)
			}
			err = p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("%d problems reported, want %d:\n%v", got, len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nwant it to contain\n%s", err, w)
				}
			}
		})
	}
}

func TestPlanDefaultsAndExpansion(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_HOST", "http://127.0.0.1:8000")
	p, err := ParsePlan(strings.NewReader("host: ${TECKENRUN_TEST_HOST}\n# ${NOT_EXPANDED_IN_COMMENTS}\nsteps:\n  - download: {csv: a.csv}\n  - download: {csv: b.csv, concurrency: 3}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Host != "http://127.0.0.1:8000" || p.SymbolicationHost != p.Host {
		t.Errorf("host %q, symbolication_host %q", p.Host, p.SymbolicationHost)
	}
	if time.Duration(p.Timeout) != 30*time.Second || !p.StopOnError || p.UserAgent != "teckenrun/"+version {
		t.Errorf("defaults: timeout %v, stop_on_error %v, user_agent %q", time.Duration(p.Timeout), p.StopOnError, p.UserAgent)
	}
	if *p.Steps[0].Download.Concurrency != 10 || *p.Steps[1].Download.Concurrency != 3 {
		t.Errorf("concurrency %d and %d, want 10 (default) and 3", *p.Steps[0].Download.Concurrency, *p.Steps[1].Download.Concurrency)
	}
	if p.Steps[0].Name != "download" || p.Steps[1].Name != "download-2" {
		t.Errorf("default names %q, %q", p.Steps[0].Name, p.Steps[1].Name)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string
	}{
		{"250mb", 250 << 20, ""},
		{"1.5GB", 3 << 29, ""},
		{"512k", 512 << 10, ""},
		{"100M", 100 << 20, ""},
		{"42", 42, ""},
		{"7 KiB", 7 << 10, ""},
		{"2t", 2 << 40, ""},
		{"10 parsecs", 0, `unknown unit "parsecs"`},
		{"-5mb", 0, "is not a size"},
		{"mb", 0, "is not a size"},
		{"", 0, "is not a size"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseSize(%q) error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if s := Size(1536 << 20).String(); s != "1536mb" {
		t.Errorf("String() = %q", s)
	}
}

// TestShippedPlansValidate keeps every plan in plans/ valid; only the
// embedded demo is ever run by the tests.
func TestShippedPlansValidate(t *testing.T) {
	for _, v := range []string{"TECKEN_AUTH_TOKEN", "TECKEN_DEV_AUTH_TOKEN", "TECKEN_STAGE_AUTH_TOKEN", "CRASH_STATS_AUTH_TOKEN", "TECKEN_LOGS_BUCKET", "TECKEN_LOGS_PREFIX"} {
		t.Setenv(v, "not-a-real-token")
	}
	t.Setenv("RECORDS_FROM", "2026-11-24")
	paths, _ := filepath.Glob("plans/*.yaml")
	if len(paths) < 5 {
		t.Fatalf("plans: %v", paths)
	}
	for _, path := range paths {
		p, err := LoadPlan(path)
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		// Every plan can be tried on this machine alone with -host embedded.
		if p, err = LoadPlan(path); err == nil {
			p.overrideHost("embedded")
			err = p.Validate()
		}
		if err != nil {
			t.Errorf("%s with -host embedded: %v", path, err)
		}
	}
}

func TestYAMLTypeErrorsNameTheFieldPath(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"string for an integer", "name: x\nhost: embedded\nsteps:\n  - download:\n      csv: a.csv\n      max_requests: 5\n      concurrency: ten\n",
			[]string{`plan.yaml: steps[0].download.concurrency: want an integer, got "ten" (line 7)`}},
		{"two on one line, one long", "host: embedded\nsteps:\n  - download: {csv: averyveryverylongvalue, concurrency: averyveryverylongvalue, try: maybe}\n",
			[]string{`plan.yaml: steps[0].download.concurrency: want an integer, got "averyveryverylongvalue" (line 3)`,
				`plan.yaml: steps[0].download.try: want true or false, got "maybe" (line 3)`}},
		{"list for a number", "host: embedded\nsteps:\n  - symbolicate:\n      rate: [1, 2]\n",
			[]string{`plan.yaml: steps[0].symbolicate.rate: want a number, got a list (line 4)`}},
		{"negative seed", "host: embedded\nseed: -1\n", []string{`plan.yaml: seed: want a whole number of 0 or more, got "-1" (line 2)`}},
		{"steps as a mapping", "host: embedded\nsteps:\n  download: {csv: a.csv}\n",
			[]string{`plan.yaml: steps: want a list of steps, got a mapping (line 3)`}},
		{"a kind as a list", "host: embedded\nsteps:\n  - make-zips: [synthetic]\n  - plain\n",
			[]string{`plan.yaml: steps[0].make-zips: want a mapping of make-zips keys, got a list (line 3)`,
				`plan.yaml: steps[1]: want a step (a mapping with one kind and an optional name), got "plain" (line 4)`}},
		{"a list for a plan", "- host: embedded\n", []string{`plan.yaml: want a mapping of plan keys, got a list (line 1)`}},
		{"durations and sizes, every one", "host: embedded\ntimeout: 30\nsteps:\n  - upload: {backoff: -1s, max_size: 10 parsecs, timeout: [1], concurrency: x}\n",
			[]string{`plan.yaml: timeout: "30" is not a duration; write it with a unit, such as 30s, 5m or 1h30m (line 2)`,
				`plan.yaml: steps[0].upload.backoff: duration "-1s" must not be negative (line 4)`,
				`plan.yaml: steps[0].upload.max_size: "10 parsecs" has an unknown unit "parsecs"; use b, k, m, g or t (line 4)`,
				`plan.yaml: steps[0].upload.timeout: want a duration such as 30s, 5m or 1h30m, got a list (line 4)`,
				`plan.yaml: steps[0].upload.concurrency: want an integer, got "x" (line 4)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlan(strings.NewReader(tt.yaml), "plan.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("error\n%v\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestEnvIsNotExpandedInComments(t *testing.T) {
	t.Setenv("TECKENRUN_TEST_NAME", "n")
	plan := "host: embedded # ${TECKENRUN_TEST_UNSET_1}\n" +
		"name: \"a # ${TECKENRUN_TEST_NAME}\" # ${TECKENRUN_TEST_UNSET_2}\n" +
		"user_agent: it's ${TECKENRUN_TEST_NAME}#${TECKENRUN_TEST_NAME} # it's ${TECKENRUN_TEST_UNSET_3}\n" +
		"symbolication_host: 'embedded''s # ${TECKENRUN_TEST_NAME}' # ${TECKENRUN_TEST_UNSET_7}\n" +
		"steps: # ${TECKENRUN_TEST_UNSET_4}\n" +
		"  - download: {csv: 'b # ${TECKENRUN_TEST_NAME}'} # ${TECKENRUN_TEST_UNSET_5}\n"
	p, err := ParsePlan(strings.NewReader(plan), "plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "a # n" || p.UserAgent != "it's n#n" || p.SymbolicationHost != "embedded's # n" || p.Steps[0].Download.CSV != "b # n" {
		t.Errorf("name %q, user_agent %q, symbolication_host %q, csv %q", p.Name, p.UserAgent, p.SymbolicationHost, p.Steps[0].Download.CSV)
	}
	_, err = ParsePlan(strings.NewReader("host: ${TECKENRUN_TEST_UNSET_6} # ok\n"), "plan.yaml")
	if err == nil || !strings.Contains(err.Error(), "plan.yaml:1: environment variable TECKENRUN_TEST_UNSET_6 is not set") {
		t.Errorf("unset variable before a comment: %v", err)
	}
}

func TestSyntheticPlatformIsExact(t *testing.T) {
	for _, tt := range []struct{ platform, want string }{
		{"windows", ""}, {"linux", ""}, {"mac", ""},
		{"dows", `plan.yaml: steps[0].make-zips.platform: must be one of windows, linux, mac, got "dows" (line 3)`},
		{"lin", `got "lin"`}, {"Windows", `got "Windows"`}, {"windows linux", `got "windows linux"`},
	} {
		p, err := ParsePlan(strings.NewReader("host: embedded\nsteps:\n  - make-zips: {source: synthetic, platform: \""+tt.platform+"\"}\n"), "plan.yaml")
		if err != nil {
			t.Fatal(err)
		}
		err = p.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("platform %q: %v, want %q", tt.platform, err, tt.want)
		}
	}
}
