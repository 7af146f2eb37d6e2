package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// compileSchema compiles what "teckenrun schema WHAT" prints with a real
// validator.
func compileSchema(t *testing.T, what string) *jsonschema.Schema {
	t.Helper()
	stdout, _, err := runArgs(t, terminal{}, "schema", what)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(what+".schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(what + ".schema.json")
	if err != nil {
		t.Fatalf("the %s schema does not compile: %v", what, err)
	}
	return s
}

func TestReportSchemaValidatesReports(t *testing.T) {
	s := compileSchema(t, "report")
	demo, _, err := runArgs(t, terminal{}, "plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"testdata/report.json": string(golden), "the demo's report": demo} {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(doc); err != nil {
			t.Errorf("%s does not follow the report schema: %v", name, err)
		}
	}
	// The schema is strict: a missing key, a wrong kind, an unknown key
	// each fail it.
	for name, spoil := range map[string]func(step map[string]any){
		"a step without right_pct":   func(step map[string]any) { delete(step, "right_pct") },
		"a step with an unknown key": func(step map[string]any) { step["typo"] = 1 },
		"a step of an unknown kind":  func(step map[string]any) { step["kind"] = "downlaod" },
	} {
		var r map[string]any
		json.Unmarshal(golden, &r)
		spoil(r["steps"].([]any)[0].(map[string]any))
		b, _ := json.Marshal(r)
		doc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err := s.Validate(doc); err == nil {
			t.Errorf("%s passed the schema", name)
		}
	}
}

func TestPlanSchemaValidatesShippedPlans(t *testing.T) {
	s := compileSchema(t, "plan")
	committed, err := os.ReadFile("plans/plan.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := runArgs(t, terminal{}, "schema", "plan"); got != string(committed) {
		t.Error("plans/plan.schema.json is not what teckenrun schema plan prints; run: go run . schema plan > plans/plan.schema.json")
	}
	plans, _ := filepath.Glob("plans/*.yaml")
	if len(plans) == 0 {
		t.Fatal("no plans")
	}
	for _, p := range plans {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("# yaml-language-server: $schema=plan.schema.json\n")) {
			t.Errorf("%s does not start with the yaml-language-server line", p)
		}
		if err := s.Validate(yamlDoc(t, raw)); err != nil {
			t.Errorf("%s does not follow the plan schema: %v", p, err)
		}
	}
	for name, bad := range map[string]string{
		"typo":      "host: embedded\nsteps:\n  - download: {csv: q.csv, concurency: 2}\n",
		"two kinds": "host: embedded\nsteps:\n  - download: {csv: q.csv}\n    upload: {}\n",
		"no host":   "steps:\n  - download: {csv: q.csv}\n",
		"duration":  "host: embedded\nsteps:\n  - download: {csv: q.csv, duration: 30}\n",
	} {
		if err := s.Validate(yamlDoc(t, []byte(bad))); err == nil {
			t.Errorf("%s: a bad plan passed the schema", name)
		}
	}
}

// yamlDoc turns a YAML document into what the validator reads.
func yamlDoc(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
