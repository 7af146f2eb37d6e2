package breakpad

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

const sample = `MODULE windows x86 44E4EC8C2F41492B9369D6B9A059577C2 xul.pdb
INFO CODE_ID 54AF957E1B34000 xul.dll
FILE 0 a.cpp
FUNC 1000 20 0 first(int)
1000 10 1 0
FUNC m 2000 10 4 second with spaces
PUBLIC 2000 0 second_public
PUBLIC 3000 0 third
FUNC 0 junkline
PUBLIC zz 0 bad_address
STACK CFI INIT 1000 20 .cfa: $rsp 8 +
`

func TestParseAndLookup(t *testing.T) {
	s, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Syms) != 3 || s.CodeFile != "xul.dll" || s.DebugFile != "xul.pdb" || s.DebugID != "44E4EC8C2F41492B9369D6B9A059577C2" {
		t.Fatalf("parsed %+v", s)
	}
	if want := len(strings.ReplaceAll(sample, "\n", "")); s.Chars != want {
		t.Errorf("Chars %d, want %d", s.Chars, want)
	}
	tests := []struct {
		offset  int64
		name    string
		funcOff int64
	}{
		{0x1000, "first(int)", 0},
		{0x1005, "first(int)", 5},
		{0x1fff, "first(int)", 0xfff}, // sizes are ignored
		{0x2000, "second_public", 0},  // PUBLIC wins over FUNC at one address
		{0x2abc, "second_public", 0xabc},
		{0x3000, "third", 0},
		{0x99999, "third", 0x99999 - 0x3000},
		{0x10, "third", 0x10 - 0x3000}, // below all: wraps to the last, negative
	}
	for _, tt := range tests {
		sym, off, ok := s.Lookup(tt.offset)
		if !ok || sym.Name != tt.name || off != tt.funcOff {
			t.Errorf("Lookup(%#x) = %q %#x %v, want %q %#x", tt.offset, sym.Name, off, ok, tt.name, tt.funcOff)
		}
	}
	if _, _, ok := (&Symbols{}).Lookup(1); ok {
		t.Error("lookup in an empty file succeeded")
	}
}

func TestSynthesizedModulesParseBack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, platform := range Platforms {
		m := Synthesize(r, "xul", platform, 50)
		s, err := Parse(bytes.NewReader(m.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Syms) != len(m.Symbols) {
			t.Fatalf("%s: parsed %d symbols, wrote %d", platform, len(s.Syms), len(m.Symbols))
		}
		for _, want := range m.Symbols {
			got, off, _ := s.Lookup(int64(want.Address + 3))
			if got.Name != want.Name || off != 3 {
				t.Errorf("%s: lookup %#x = %q+%d, want %q+3", platform, want.Address+3, got.Name, off, want.Name)
			}
		}
		if !strings.HasPrefix(string(m.Bytes()), "MODULE ") || !strings.HasSuffix(m.Key(), "/"+SymFile(m.DebugFile)) {
			t.Errorf("%s: module %s", platform, m.Key())
		}
	}
	if SymFile("xul.pdb") != "xul.sym" || SymFile("libxul.so") != "libxul.so.sym" {
		t.Error("SymFile")
	}
}
