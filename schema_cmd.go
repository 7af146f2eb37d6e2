package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// schemaBase is where the schemas live in the repository.
const schemaBase = "https://github.com/mozilla-services/teckenrun/"

// runSchemaCmd is "teckenrun schema report|plan": it prints the JSON
// Schema (draft 2020-12) of a report or of a plan, generated from the Go
// types that read and write them.
func runSchemaCmd(args []string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "report" && args[0] != "plan") {
		return usageErrorf("usage: teckenrun schema report|plan")
	}
	s := planSchema()
	if args[0] == "report" {
		s = reportSchema()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// planSchema is the schema of a plan file, for editors: every key is
// optional except host and steps, unknown keys are refused, and a step
// has exactly one kind.
func planSchema() *jsonschema.Schema {
	r := &jsonschema.Reflector{FieldNameTag: "yaml", RequiredFromJSONSchemaTags: true}
	s := r.Reflect(&Plan{})
	s.ID = schemaBase + "plans/plan.schema.json"
	s.Title = "teckenrun plan"
	return s
}

// JSONSchema describes a Duration as plans write it.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`,
		Description: "a Go duration with a unit, such as 30s, 5m or 1h30m", Examples: []any{"30s"}}
}

// JSONSchema describes a Size as plans write it.
func (Size) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Pattern: `^\s*[0-9]+(\.[0-9]+)?\s*([bBkKmMgGtT]([iI]?[bB])?)?\s*$`,
		Description: "a size: 250mb, 1.5GB or 512k (binary units, any case); a bare number is bytes", Examples: []any{"250mb"}}
}

// JSONSchemaExtend says that a step has exactly one kind.
func (Step) JSONSchemaExtend(s *jsonschema.Schema) {
	for _, k := range kindNames() {
		s.OneOf = append(s.OneOf, &jsonschema.Schema{Required: []string{k}})
	}
}

// reportSchema is the schema of a report: every key is required (a
// report always has all of its kind's keys), and a step is one of the
// kinds' results, told apart by "kind".
func reportSchema() *jsonschema.Schema {
	common := reflect.TypeFor[stepCommon]()
	results := map[reflect.Type]string{}
	for _, k := range kinds {
		results[reflect.TypeOf(k.result()).Elem()] = k.name
	}
	r := &jsonschema.Reflector{
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[json.Number]() {
				return &jsonschema.Schema{Type: "number"}
			}
			if t != reflect.TypeFor[StepReport]() {
				return nil
			}
			s := &jsonschema.Schema{}
			for _, k := range kinds {
				s.OneOf = append(s.OneOf, &jsonschema.Schema{Ref: "#/$defs/" + reflect.TypeOf(k.result()).Elem().Name()})
			}
			return s
		},
	}
	s := r.Reflect(&Report{})
	s.ID = schemaBase + "report.schema.json"
	s.Title = "teckenrun report"
	// A kind's result carries the common step keys in JSON.
	commonDef := r.ReflectFromType(common).Definitions[common.Name()]
	for t, kind := range results {
		sub := r.ReflectFromType(t)
		for name, def := range sub.Definitions {
			s.Definitions[name] = def
		}
		def := s.Definitions[t.Name()]
		if def == nil {
			panic(fmt.Sprintf("schema: no definition for %s", t.Name()))
		}
		for pair := commonDef.Properties.Oldest(); pair != nil; pair = pair.Next() {
			def.Properties.Set(pair.Key, pair.Value)
		}
		def.Required = append(def.Required, commonDef.Required...)
		def.Properties.Set("kind", &jsonschema.Schema{Const: kind})
	}
	seen := map[reflect.Type]bool{}
	for t := range results {
		nullable(s, s.Definitions[t.Name()], common, seen)
		nullable(s, nil, t, seen)
	}
	nullable(s, nil, reflect.TypeFor[Report](), seen)
	return s
}

// nullable lets every pointer field of t, and of the types it holds, be
// null in the schema: reports write null for what cannot be known. def
// is t's definition, or nil to look it up by t's name.
func nullable(s, def *jsonschema.Schema, t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	if def == nil {
		if seen[t] {
			return
		}
		seen[t] = true
		if def = s.Definitions[t.Name()]; def == nil {
			return
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case f.Anonymous && name == "":
			nullable(s, def, f.Type, seen) // its fields are inlined into def
			continue
		case !f.IsExported() || name == "-":
			continue
		}
		if prop, ok := def.Properties.Get(name); ok && f.Type.Kind() == reflect.Pointer && prop.OneOf == nil {
			def.Properties.Set(name, &jsonschema.Schema{OneOf: []*jsonschema.Schema{prop, {Type: "null"}}})
		}
		nullable(s, nil, f.Type, seen)
	}
}
