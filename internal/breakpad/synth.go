// Package breakpad writes and reads the parts of the Breakpad .sym text
// format that Tecken uses: MODULE and INFO CODE_ID headers, FILE, FUNC (with
// line records) and PUBLIC records.
package breakpad

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Symbol is one FUNC or PUBLIC record.
type Symbol struct {
	Address uint64
	Size    uint64 // 0 for PUBLIC records
	Name    string
	Public  bool
}

// Module describes one synthetic symbol file.
type Module struct {
	OS        string // windows, linux or mac (the MODULE line's word)
	Arch      string
	DebugID   string // upper-case hex, 33 characters
	DebugFile string // xul.pdb, libxul.so, XUL
	CodeFile  string // xul.dll on Windows, empty elsewhere
	CodeID    string
	Files     []string
	Symbols   []Symbol // sorted by address; FUNCs first in the file, then PUBLICs
}

// SymFile returns the symbol file name Tecken derives from a debug file
// name: X.pdb becomes X.sym, anything else N becomes N.sym.
func SymFile(debugFile string) string {
	if base, ok := strings.CutSuffix(debugFile, ".pdb"); ok {
		return base + ".sym"
	}
	return debugFile + ".sym"
}

// Key returns the storage key of the module's symbol file,
// debug_file/DEBUG_ID/sym_file.
func (m *Module) Key() string {
	return m.DebugFile + "/" + m.DebugID + "/" + SymFile(m.DebugFile)
}

// Platforms lists the platform words Synthesize accepts.
var Platforms = []string{"windows", "linux", "mac"}

var words = []string{"Frame", "Layout", "Style", "Net", "Http", "Dom", "Js", "Gc",
	"Render", "Paint", "Cache", "Stream", "Thread", "Timer", "Event", "Node",
	"Text", "Image", "Font", "Window", "Socket", "Parser", "Script", "Worker"}

func hexID(r *rand.Rand, n int) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

// Synthesize returns a deterministic module for the given base name (such as
// "xul") and platform, with nsyms symbols. The same r state gives the same
// module.
func Synthesize(r *rand.Rand, base, platform string, nsyms int) Module {
	m := Module{OS: platform, Arch: []string{"x86", "x86_64", "aarch64"}[r.IntN(3)]}
	switch platform {
	case "windows":
		m.DebugFile = base + ".pdb"
		m.CodeFile = base + ".dll"
		m.DebugID = hexID(r, 32) + "1"
		m.CodeID = hexID(r, 8) + hexID(r, 5)
	case "mac":
		m.DebugFile = base
		m.DebugID = hexID(r, 32) + "0"
		m.CodeID = hexID(r, 32)
	default:
		m.OS = "Linux"
		m.DebugFile = "lib" + base + ".so"
		m.DebugID = hexID(r, 32) + "0"
		m.CodeID = strings.ToLower(hexID(r, 40))
	}
	for i := range 3 {
		m.Files = append(m.Files, fmt.Sprintf("/builds/worker/checkouts/gecko/%s/%s%d.cpp", base, words[r.IntN(len(words))], i))
	}
	addr := uint64(0x1000)
	for i := range nsyms {
		size := uint64(16 + r.IntN(4080))
		name := fmt.Sprintf("mozilla::%s::%s%s(int)", strings.ToLower(words[r.IntN(len(words))]), words[r.IntN(len(words))], words[r.IntN(len(words))])
		public := i%5 == 4 // every fifth symbol is a PUBLIC without size
		if public {
			name = fmt.Sprintf("_%s%s_%d", words[r.IntN(len(words))], words[r.IntN(len(words))], i)
		}
		m.Symbols = append(m.Symbols, Symbol{Address: addr, Size: size, Name: name, Public: public})
		addr += size + uint64(r.IntN(64))
	}
	return m
}

// WriteTo writes the module as Breakpad .sym text.
func (m *Module) WriteTo(w io.Writer) (int64, error) {
	var n int64
	buf := make([]byte, 0, 64<<10)
	flush := func(force bool) error {
		if len(buf) < 60<<10 && !force {
			return nil
		}
		k, err := w.Write(buf)
		n += int64(k)
		buf = buf[:0]
		return err
	}
	hex := func(v uint64) { buf = strconv.AppendUint(buf, v, 16) }
	buf = fmt.Appendf(buf, "MODULE %s %s %s %s\nINFO CODE_ID %s %s\nINFO GENERATOR teckenrun synthetic 1.0\n",
		m.OS, m.Arch, m.DebugID, m.DebugFile, m.CodeID, m.CodeFile)
	for i, f := range m.Files {
		buf = fmt.Appendf(buf, "FILE %d %s\n", i, f)
	}
	for _, s := range m.Symbols {
		if s.Public {
			continue
		}
		buf = append(buf, "FUNC "...)
		hex(s.Address)
		buf = append(buf, ' ')
		hex(s.Size)
		buf = append(buf, " 0 "...)
		buf = append(buf, s.Name...)
		buf = append(buf, '\n')
		// Four line records (fewer for tiny functions) cover the function.
		step := max(s.Size/4, 1)
		for a, line := s.Address, 10; a < s.Address+s.Size; a, line = a+step, line+1 {
			hex(a)
			buf = append(buf, ' ')
			hex(min(step, s.Address+s.Size-a))
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(line), 10)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(int(a)%len(m.Files)), 10)
			buf = append(buf, '\n')
		}
		if err := flush(false); err != nil {
			return n, err
		}
	}
	for _, s := range m.Symbols {
		if s.Public {
			buf = append(buf, "PUBLIC "...)
			hex(s.Address)
			buf = append(buf, " 0 "...)
			buf = append(buf, s.Name...)
			buf = append(buf, '\n')
			if err := flush(false); err != nil {
				return n, err
			}
		}
	}
	return n, flush(true)
}

// Bytes returns the module's .sym text.
func (m *Module) Bytes() []byte {
	var sb strings.Builder
	_, _ = m.WriteTo(&sb) // a strings.Builder never fails
	return []byte(sb.String())
}
