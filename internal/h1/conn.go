package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxHeaderBytes bounds an answer's status line and headers, as
// net/http's default does.
const maxHeaderBytes = 1 << 20

// conn is a keep-alive connection and its buffers. Only the goroutine
// that took it from the pool uses it, except ctx's abort, which only sets
// its deadline.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte // the request being written
	line []byte // a header line longer than br's buffer
	tls  bool
	last time.Time // the deadline of the connection's last exchange

	// On a plain TCP connection, send writes the request from inside a
	// poll for the answer (see send): raw is the socket, and the rest is
	// send's state.
	raw      syscall.RawConn
	sendFn   func(fd uintptr) bool
	sent     int
	sendErr  error
	sendPass int

	ctx  context.Context // the context whose end aborts the connection's I/O
	stop func() bool     // unregisters that abort
}

// dial connects to the client's origin, within deadline.
func (c *Client) dial(ctx context.Context, deadline time.Time) (*conn, error) {
	d := c.dialer
	if dd := time.Now().Add(d.Timeout); dd.Before(deadline) {
		deadline = dd
	}
	d.Deadline = deadline
	nc, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, err
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		nc.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	cn := &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), wbuf: make([]byte, 0, 512), tls: c.tls != nil}
	cn.pollSend()
	return cn, nil
}

// send writes the request in cn.wbuf and, on a plain TCP connection,
// waits until the answer can be read: written says whether all of it
// went out. Reading at once after writing would find nothing (the server
// has not answered yet) and cost a system call before waiting; net.Conn
// cannot wait without trying first. So the request is written from
// inside the poll's first pass (RawConn.Read resets the socket's
// readiness before that pass, so the answer's arrival is never missed),
// and the answer is read once the poll says it is there.
func (cn *conn) send() (written bool, err error) {
	if cn.raw == nil {
		_, err := cn.nc.Write(cn.wbuf)
		return err == nil, err
	}
	cn.sent, cn.sendErr, cn.sendPass = 0, nil, 0
	err = cn.raw.Read(cn.sendFn)
	switch {
	case cn.sendErr != nil:
		return false, &net.OpError{Op: "write", Net: "tcp", Source: cn.nc.LocalAddr(), Addr: cn.nc.RemoteAddr(), Err: os.NewSyscallError("write", cn.sendErr)}
	case cn.sent < len(cn.wbuf) && err == nil: // the socket's buffer was full
		_, err = cn.nc.Write(cn.wbuf[cn.sent:])
		return err == nil, err
	case cn.sent < len(cn.wbuf): // the deadline passed, or ctx ended, first
		return false, &net.OpError{Op: "write", Net: "tcp", Source: cn.nc.LocalAddr(), Addr: cn.nc.RemoteAddr(), Err: err}
	}
	return true, nil // a wait that failed shows again on the read
}

// aLongTimeAgo is a deadline that ends every read and write at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch makes the end of ctx abort the connection's I/O. The abort is
// registered once per context, not per request.
func (cn *conn) watch(ctx context.Context) {
	if cn.ctx == ctx {
		return
	}
	if cn.stop != nil {
		cn.stop()
	}
	nc := cn.nc
	cn.ctx, cn.stop = ctx, context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
}

func (cn *conn) close() {
	if cn.stop != nil {
		cn.stop()
	}
	cn.nc.Close()
}

// outcome says how an exchange went, for the pool and for a replay.
type outcome struct {
	written    bool // the whole request went out
	unanswered bool // it failed before any byte of the answer came back
	reusable   bool // the connection can carry the next request
}

// roundTrip writes a GET for uri and reads its answer.
func (cn *conn) roundTrip(ctx context.Context, c *Client, uri string, deadline time.Time, keepBody int) (resp Response, o outcome, err error) {
	cn.watch(ctx)
	if err := cn.nc.SetDeadline(deadline); err != nil {
		o.unanswered = true
		return resp, o, err
	}
	if err := ctx.Err(); err != nil { // ended before the deadline was set: see watch
		return resp, o, err
	}
	cn.wbuf = append(append(append(cn.wbuf[:0], "GET "...), uri...), c.head...)
	if o.written, err = cn.send(); !o.written {
		o.unanswered = true
		return resp, o, err
	}
	if _, err := cn.br.Peek(1); err != nil {
		o.unanswered = true
		if errors.Is(err, io.EOF) {
			err = errClosed
		}
		return resp, o, err
	}
	resp.keep = c.keep
	var h header
	for {
		if h, err = cn.readHead(&resp); err != nil {
			return resp, o, err
		}
		if resp.Status >= 200 || resp.Status == 101 {
			break
		}
		resp = Response{keep: c.keep} // an interim answer: the real one follows
	}
	if resp.Status == 101 {
		return resp, o, fmt.Errorf("h1: unexpected 101 Switching Protocols")
	}
	o.reusable = !h.close
	switch {
	case resp.Status == 204 || resp.Status == 304:
	case h.chunked:
		err = cn.chunked(&resp, keepBody)
	case h.length >= 0:
		err = cn.body(&resp, h.length, keepBody)
	default: // delimited by the end of the connection
		o.reusable = false
		err = cn.body(&resp, math.MaxInt64, keepBody)
	}
	if err != nil {
		return Response{}, o, err
	}
	return resp, o, nil
}

// header is what framing needs of an answer's headers.
type header struct {
	length  int64 // Content-Length; -1 without one
	chunked bool
	close   bool // the connection ends after this answer
}

// readHead reads a status line and headers into resp.
func (cn *conn) readHead(resp *Response) (h header, err error) {
	h.length = -1
	budget := maxHeaderBytes
	line, err := cn.readHeadLine(&budget)
	if err != nil {
		return h, err
	}
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	if len(proto) != 8 || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(code) != 3 {
		return h, fmt.Errorf("h1: malformed status line %q", shorten(line))
	}
	status, err := strconv.Atoi(string(code))
	if err != nil || status < 100 {
		return h, fmt.Errorf("h1: malformed status line %q", shorten(line))
	}
	resp.Status = status
	http10 := proto[7] == '0'
	keepAlive := false
	for {
		line, err := cn.readHeadLine(&budget)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !token(name) {
			return h, fmt.Errorf("h1: malformed header line %q", shorten(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (h.length >= 0 && n != h.length) {
				return h, fmt.Errorf("h1: bad Content-Length %q", value)
			}
			h.length = n
		case equalFold(name, "Transfer-Encoding"):
			if !equalFold(value, "chunked") {
				return h, fmt.Errorf("h1: unsupported Transfer-Encoding %q", value)
			}
			h.chunked = true
		case equalFold(name, "Connection"):
			h.close = h.close || hasToken(value, "close")
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		}
		for i, k := range resp.keep {
			if i < len(resp.vals) && resp.vals[i] == "" && equalFold(name, k) {
				resp.vals[i] = string(value)
			}
		}
	}
	if h.chunked {
		h.length = -1 // Transfer-Encoding wins over Content-Length
	}
	if http10 && !keepAlive {
		h.close = true
	}
	return h, nil
}

// readHeadLine is readLine for a status, header or trailer line.
func (cn *conn) readHeadLine(budget *int) ([]byte, error) {
	line, err := cn.readLine(budget)
	if errors.Is(err, errTooLong) {
		err = fmt.Errorf("h1: the answer's headers pass %d bytes", maxHeaderBytes)
	}
	return line, err
}

// errTooLong is the error of a line past its budget.
var errTooLong = errors.New("too long")

// readLine reads a line without its CRLF, charging it to budget; past the
// budget it fails with errTooLong.
func (cn *conn) readLine(budget *int) ([]byte, error) {
	line, err := cn.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		cn.line = append(cn.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(cn.line) <= *budget {
			line, err = cn.br.ReadSlice('\n')
			cn.line = append(cn.line, line...)
		}
		line = cn.line
	}
	*budget -= len(line)
	switch {
	case *budget < 0:
		return nil, errTooLong
	case errors.Is(err, io.EOF):
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// body reads n bytes of body (until the connection ends when n is
// math.MaxInt64), keeping the first keepBody bytes in resp.Body.
func (cn *conn) body(resp *Response, n int64, keepBody int) error {
	for n > 0 {
		if cn.br.Buffered() == 0 {
			if _, err := cn.br.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					if n == math.MaxInt64 {
						return nil
					}
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := int(min(int64(cn.br.Buffered()), n))
		if want := keepBody - len(resp.Body); want > 0 {
			b, _ := cn.br.Peek(min(k, want))
			resp.Body = append(resp.Body, b...)
		}
		cn.br.Discard(k)
		if n != math.MaxInt64 {
			n -= int64(k)
		}
	}
	return nil
}

// maxChunkLine bounds a chunk's size line (extensions included).
const maxChunkLine = 4096

// chunked reads a chunked body and its trailers; the trailers share the
// headers' budget, each chunk's lines have their own.
func (cn *conn) chunked(resp *Response, keepBody int) error {
	trailers := maxHeaderBytes
	for {
		budget := maxChunkLine
		line, err := cn.readLine(&budget)
		if errors.Is(err, errTooLong) {
			return fmt.Errorf("h1: a chunk size line passes %d bytes", maxChunkLine)
		}
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("h1: malformed chunk size %q", shorten(line))
		}
		if n == 0 {
			for { // trailers, up to an empty line
				line, err := cn.readHeadLine(&trailers)
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := cn.body(resp, n, keepBody); err != nil {
			return err
		}
		budget = maxChunkLine
		if line, err := cn.readLine(&budget); err != nil && !errors.Is(err, errTooLong) {
			return err
		} else if err != nil || len(line) != 0 {
			return errors.New("h1: malformed chunk end")
		}
	}
}

// token reports whether b is a valid header name (RFC 9110's token).
func token(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return len(b) > 0
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value holds token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if equalFold(bytes.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

func shorten(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
