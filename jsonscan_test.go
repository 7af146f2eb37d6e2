package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func scanAll(b []byte) error {
	s := &jsonScanner{b: b}
	if err := s.skip(); err != nil {
		return err
	}
	return s.end()
}

func TestJSONScanner(t *testing.T) {
	valid := []string{`{}`, `[]`, ` {"a": [1, -2.5e3, "x\"y", true, false, null, {"b": {}}]} `, `"\u00e9"`, `0`,
		`"\"\\\/\b\f\n\r\t\uD83D\uDE00"`, strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)}
	for _, doc := range valid {
		if err := scanAll([]byte(doc)); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
	invalid := []string{``, `{`, `{"a" 1}`, `{"a": 1,}`, `[1 2]`, `tru`, `{"a": 1} x`, `"abc`, `01`, `1e`, `--1`, "\"a\x01\"",
		`"\q"`, `"\u12"`, `["\u12g4"]`, `{"a": "\x41"}`, `{"k\q": 1}`, `"\`, `"\u00`, `"\'"`, "0\x00",
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)}
	for _, doc := range invalid {
		if err := scanAll([]byte(doc)); err == nil {
			t.Errorf("%.60q accepted", doc)
		}
	}
	s := &jsonScanner{b: []byte(`{"k\u00e9y": {"function": "f", "x": [1]}, "n": null}`)}
	var keys []string
	var function string
	err := s.object(func(key []byte) error {
		keys = append(keys, string(key))
		if string(key) != "kéy" {
			return s.skip()
		}
		return s.object(func(k []byte) error {
			if string(k) == "function" {
				v, err := s.str()
				function = v
				return err
			}
			return s.skip()
		})
	})
	if err != nil || len(keys) != 2 || keys[0] != "kéy" || function != "f" {
		t.Errorf("keys %q, function %q, %v", keys, function, err)
	}
}

// FuzzJSONScanner checks that the scanner accepts exactly the documents
// encoding/json does: every valid one, and no invalid one.
func FuzzJSONScanner(f *testing.F) {
	for _, seed := range []string{`{"results": [{"stacks": [[{"function": "a", "frame": 0}]], "found_modules": {"a/b": true}}]}`, `[1, "x", null]`,
		`{"function": "\q"}`, `["\u12"]`, `{"a": 1,}`, `[01]`, `{"a" "b"}`, `"\u00e9\n"`, `[1e5, -0.5, tru]`, "\"\xff\"", `{"a":[}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := scanAll(b)
		switch valid := json.Valid(b); {
		case valid && err != nil:
			t.Errorf("valid JSON %q rejected: %v", b, err)
		case !valid && err == nil:
			t.Errorf("invalid JSON %.60q accepted", b)
		}
	})
}
