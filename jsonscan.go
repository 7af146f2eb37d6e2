package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// jsonScanner walks a JSON document without building it, for the hot path
// of checking symbolication answers: encoding/json's reflection costs as
// much CPU as the server spends producing the answer. It validates what
// it walks and skips what it is not asked for.
type jsonScanner struct {
	b     []byte
	i     int
	depth int // objects and arrays open
}

// maxJSONDepth is how deeply objects and arrays may nest, as in
// encoding/json.
const maxJSONDepth = 10000

var errJSONEnd = errors.New("unexpected end of JSON")

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON offset %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return errJSONEnd
		}
		return s.errorf("want %q, got %q", c, s.b[s.i])
	}
	s.i++
	return nil
}

// rawString returns a string's bytes between the quotes, still escaped.
func (s *jsonScanner) rawString() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '\\':
			if err := s.escape(); err != nil {
				return nil, err
			}
		case c == '"':
			s.i++
			return s.b[start : s.i-1], nil
		case c < 0x20:
			return nil, s.errorf("control character in a string")
		default:
			s.i++
		}
	}
	return nil, errJSONEnd
}

// escape consumes an escape sequence in a string: \", \\, \/, \b, \f,
// \n, \r, \t or \u and four hex digits.
func (s *jsonScanner) escape() error {
	if s.i+1 >= len(s.b) {
		return errJSONEnd
	}
	switch s.b[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return nil
	case 'u':
		for k := s.i + 2; k < s.i+6; k++ {
			if k >= len(s.b) {
				return errJSONEnd
			}
			if !isHexDigit(s.b[k]) {
				return s.errorf("bad \\u escape in a string")
			}
		}
		s.i += 6
		return nil
	}
	return s.errorf("invalid escape %q in a string", s.b[s.i:s.i+2])
}

// str returns a string's value, unescaped.
func (s *jsonScanner) str() (string, error) {
	v, err := s.key()
	return string(v), err
}

// key returns a string's value, unescaped; it aliases the input when
// there is nothing to unescape, so comparing it allocates nothing.
func (s *jsonScanner) key() ([]byte, error) {
	start := s.i
	raw, err := s.rawString()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		var v string
		err := json.Unmarshal(s.b[start:s.i], &v)
		return []byte(v), err
	}
	return raw, nil
}

// open consumes the { or [ that starts an object or array, which may
// nest no deeper than encoding/json allows.
func (s *jsonScanner) open(c byte) error {
	if err := s.expect(c); err != nil {
		return err
	}
	if s.depth++; s.depth > maxJSONDepth {
		return s.errorf("nested more than %d deep", maxJSONDepth)
	}
	return nil
}

func (s *jsonScanner) close() { s.depth-- }

// object calls field for each key; field must consume the value. The key
// is only valid during the call.
func (s *jsonScanner) object(field func(key []byte) error) error {
	if err := s.open('{'); err != nil {
		return err
	}
	defer s.close()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		key, err := s.key()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("want , or } in an object")
		}
	}
}

// array calls elem for each element; elem must consume it.
func (s *jsonScanner) array(elem func(i int) error) error {
	if err := s.open('['); err != nil {
		return err
	}
	defer s.close()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := elem(n); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("want , or ] in an array")
		}
	}
}

// literal consumes true, false or null and returns it.
func (s *jsonScanner) literal() (string, error) {
	s.ws()
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return lit, nil
		}
	}
	return "", s.errorf("want true, false or null")
}

// number consumes a number and returns its value.
func (s *jsonScanner) number() (float64, error) {
	v, err := s.raw()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(string(v), 64)
}

// raw consumes any value and returns its bytes.
func (s *jsonScanner) raw() ([]byte, error) {
	s.ws()
	start := s.i
	err := s.skip()
	return s.b[start:s.i], err
}

// skip consumes any value.
func (s *jsonScanner) skip() error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(func(int) error { return s.skip() })
	case c == '"':
		_, err := s.rawString()
		return err
	case c == 't' || c == 'f' || c == 'n':
		_, err := s.literal()
		return err
	case c == '-' || ('0' <= c && c <= '9'):
		start := s.i
		for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] == '+' || s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E' || ('0' <= s.b[s.i] && s.b[s.i] <= '9')) {
			s.i++
		}
		if !json.Valid(s.b[start:s.i]) {
			return s.errorf("bad number %q", s.b[start:s.i])
		}
		return nil
	case c == 0:
		return errJSONEnd
	default:
		return s.errorf("unexpected %q", c)
	}
}

// end checks that nothing but space follows the document.
func (s *jsonScanner) end() error {
	if s.ws(); s.i < len(s.b) { // not peek: a NUL byte is data too
		return s.errorf("data after the document")
	}
	return nil
}
