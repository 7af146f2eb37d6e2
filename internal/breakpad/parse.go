package breakpad

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Symbols is what Tecken 2019's symbolication reads of a .sym file: the
// FUNC and PUBLIC records, sorted by address.
type Symbols struct {
	Syms []Symbol
	// Chars is the number of characters in the file's lines, newlines
	// excluded: Tecken's downloads.size.
	Chars int
	// DebugID and DebugFile come from the MODULE line.
	DebugID, DebugFile string
	// CodeFile is the INFO CODE_ID line's code file (xul.dll), if any.
	CodeFile string
}

// Parse reads a .sym file the way Tecken 2019 did: only lines whose first
// word is FUNC or PUBLIC count, an optional "m" is dropped, malformed lines
// are skipped, and when a PUBLIC and a FUNC share an address the PUBLIC
// wins.
func Parse(r io.Reader) (*Symbols, error) {
	s := &Symbols{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	byAddr := map[uint64]int{} // address -> index in s.Syms
	for sc.Scan() {
		line := sc.Text()
		s.Chars += len([]rune(line))
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "FUNC", "PUBLIC":
		case "MODULE":
			if f := strings.Fields(rest); len(f) >= 4 {
				s.DebugID, s.DebugFile = f[2], strings.Join(f[3:], " ")
			}
			continue
		case "INFO":
			if f := strings.Fields(rest); len(f) >= 3 && f[0] == "CODE_ID" {
				s.CodeFile = f[2]
			}
			continue
		default:
			continue
		}
		rest = strings.TrimPrefix(rest, "m ")
		public := word == "PUBLIC"
		n := 4 // address size param_size name
		if public {
			n = 3 // address param_size name
		}
		f := strings.SplitN(rest, " ", n)
		if len(f) != n || f[n-1] == "" {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		sym := Symbol{Address: addr, Name: f[n-1], Public: public}
		if !public {
			if sym.Size, err = strconv.ParseUint(f[1], 16, 64); err != nil {
				continue
			}
		}
		if i, dup := byAddr[addr]; dup {
			if public || !s.Syms[i].Public {
				s.Syms[i] = sym
			}
			continue
		}
		byAddr[addr] = len(s.Syms)
		s.Syms = append(s.Syms, sym)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading symbols: %w", err)
	}
	slices.SortFunc(s.Syms, func(a, b Symbol) int {
		switch {
		case a.Address < b.Address:
			return -1
		case a.Address > b.Address:
			return 1
		}
		return 0
	})
	return s, nil
}

// Lookup returns the symbol with the greatest address at or below offset,
// and offset minus that address. As in Tecken 2019, sizes are ignored, and
// an offset below every symbol wraps around to the last symbol with a
// negative function offset. ok is false when there are no symbols.
func (s *Symbols) Lookup(offset int64) (sym Symbol, functionOffset int64, ok bool) {
	if len(s.Syms) == 0 {
		return Symbol{}, 0, false
	}
	// i is the number of symbols at or below offset.
	i, _ := slices.BinarySearchFunc(s.Syms, offset, func(sym Symbol, off int64) int {
		if off < 0 || sym.Address > uint64(off) {
			return 1
		}
		return -1
	})
	sym = s.Syms[(i-1+len(s.Syms))%len(s.Syms)]
	return sym, offset - int64(sym.Address), true
}
