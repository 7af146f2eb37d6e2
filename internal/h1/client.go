// Package h1 is a lean HTTP/1.1 client for the GET requests that a load
// step sends by the hundred thousand: the download API's lookups.
//
// net/http's Transport serves any request with two goroutines per
// connection (a reader and a writer) and hands each request and answer
// between them and the caller over channels; it allocates a Request, a
// context with a timer, a header map and a Response per exchange. For a
// lookup whose answer is a status, two headers and a short body, that is
// most of the client's CPU. Here the goroutine that asks writes the request
// on a keep-alive connection it takes from the pool, reads the answer
// itself and puts the connection back: no goroutine, channel or timer per
// request, one write system call, and the request's bytes and read buffer
// are the connection's own, reused.
//
// The client does what the download step relies on net/http for: a
// deadline that covers the whole exchange, body included; cancellation by
// a context; keep-alive with Content-Length, chunked and close-delimited
// bodies; interim 1xx answers skipped; TLS (HTTP/1.1 over ALPN); and, as
// net/http does for a GET, one replay on a new connection when a reused
// one turns out to be closed before any byte of the answer came back.
// Proxies are not supported: callers use net/http when one applies.
package h1

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configure a Client.
type Options struct {
	// MaxIdle is how many idle connections the client keeps; one more
	// put back is closed.
	MaxIdle int
	// Header holds the request headers sent with every request, in order,
	// as name and value pairs (Host is added).
	Header [][2]string
	// Keep names the response headers that Response.Header returns;
	// others are read and dropped.
	Keep []string
	// TLS configures https origins; nil means the system's roots.
	TLS *tls.Config
	// DialTimeout bounds connecting (TCP and TLS), within the exchange's
	// deadline; 0 means 10 s.
	DialTimeout time.Duration
}

// Client sends GETs to one origin (scheme://host[:port]). It is safe for
// concurrent use.
type Client struct {
	origin  string // scheme://host[:port], as given
	addr    string // host:port to dial
	tls     *tls.Config
	head    []byte // " HTTP/1.1\r\nHost: …\r\n" and the fixed header lines
	keep    []string
	maxIdle int
	dialer  net.Dialer

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

// New returns a client for origin, an http or https URL without a path, or
// an error when origin is not one the client can reach directly.
func New(origin string, o Options) (*Client, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("h1: %q is not an http or https origin", origin)
	}
	if len(o.Keep) > len(Response{}.vals) {
		return nil, fmt.Errorf("h1: at most %d headers can be kept", len(Response{}.vals))
	}
	if !ascii(u.Host) {
		return nil, fmt.Errorf("h1: %q: the host is not ASCII", origin)
	}
	c := &Client{origin: u.Scheme + "://" + u.Host, keep: o.Keep, maxIdle: o.MaxIdle}
	c.addr = u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		c.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		cfg := &tls.Config{}
		if o.TLS != nil {
			cfg = o.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		if cfg.ClientSessionCache == nil { // connections added later resume the session
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
		cfg.NextProtos = []string{"http/1.1"}
		c.tls = cfg
	}
	c.dialer = net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	if c.dialer.Timeout <= 0 {
		c.dialer.Timeout = 10 * time.Second
	}
	head := " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	for _, h := range o.Header {
		if !validHeader(h[0], h[1]) {
			return nil, fmt.Errorf("h1: invalid header %q: %q", h[0], h[1])
		}
		head += h[0] + ": " + h[1] + "\r\n"
	}
	c.head = []byte(head + "\r\n")
	return c, nil
}

// Response is an answer: its status, the headers named in Options.Keep
// and the start of its body.
type Response struct {
	Status int
	// Body holds the first keepBody bytes of the body (see Get).
	Body []byte
	keep []string
	vals [4]string
}

// Header returns the value of a header named in Options.Keep, "" when the
// answer did not have it (the first one, when it had several).
func (r *Response) Header(name string) string {
	for i, k := range r.keep {
		if i < len(r.vals) && strings.EqualFold(k, name) {
			return r.vals[i]
		}
	}
	return ""
}

// RequestError is a request the client refused before sending it: a
// target outside its origin or that is not a valid URL.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// Get sends a GET for target, a URL on the client's origin, and reads the
// whole answer before deadline, keeping its first keepBody bytes. wrote
// is how many times the request was written to a connection (a server
// may have seen each): 2 when a reused connection was found closed and
// the request replayed, once, on a new one.
//
// A failure is a *RequestError (nothing was sent), the error of ctx
// (wrapped) when ctx ended the exchange, an error that wraps
// os.ErrDeadlineExceeded when the deadline did, or the network's error.
func (c *Client) Get(ctx context.Context, target string, deadline time.Time, keepBody int) (resp Response, wrote int, err error) {
	uri, err := c.requestURI(target)
	if err != nil {
		return resp, 0, &RequestError{err}
	}
	for replay := false; ; replay = true {
		if err := ctx.Err(); err != nil {
			return resp, wrote, err
		}
		var cn *conn
		var reused bool
		if replay { // the idle ones may be as dead as the last one
			cn, err = c.dial(ctx, deadline)
		} else {
			cn, reused, err = c.get(ctx, deadline)
		}
		if err != nil {
			return resp, wrote, c.ctxErr(ctx, err)
		}
		resp, st, err := cn.roundTrip(ctx, c, uri, deadline, keepBody)
		if st.written {
			wrote++
		}
		if err == nil {
			// Bytes past the answer answer nothing we asked: such a
			// connection is not used again.
			if st.reusable && cn.br.Buffered() == 0 {
				c.put(cn, deadline)
			} else {
				cn.close()
			}
			return resp, wrote, nil
		}
		cn.close()
		if !reused || !st.unanswered || ctx.Err() != nil || !time.Now().Before(deadline) {
			return Response{}, wrote, c.ctxErr(ctx, err)
		}
	}
}

// ctxErr is err, or the error of ctx when ctx ended the exchange.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// Warm opens up to n connections and keeps them idle, so that the first
// requests do not wait for them: one first, then, if it opened, the
// others at once. It gives up on those not open by deadline, and returns
// how many it opened.
func (c *Client) Warm(ctx context.Context, n int, deadline time.Time) int {
	n = min(n, c.maxIdle)
	if n <= 0 {
		return 0
	}
	first, err := c.dial(ctx, deadline)
	if err != nil {
		return 0 // the requests will say why
	}
	conns := make(chan *conn, n-1)
	for range n - 1 {
		go func() {
			cn, err := c.dial(ctx, deadline)
			if err != nil {
				cn = nil
			}
			conns <- cn
		}()
	}
	c.put(first, deadline)
	opened := 1
	for range n - 1 {
		if cn := <-conns; cn != nil {
			c.put(cn, deadline)
			opened++
		}
	}
	return opened
}

// CloseIdleConnections closes the idle connections and every connection
// put back from now on.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle, c.closed = nil, true
	c.mu.Unlock()
	for _, cn := range idle {
		cn.close()
	}
}

// staleAfter is how far apart the deadlines of two exchanges on a
// connection may be (about how long it sat idle, plus how long the first
// took) before the second checks that the server has not closed it, with
// a peek at the socket that does not wait. Deadlines stand in for the
// clock, which Get does not read.
const staleAfter = 500 * time.Millisecond

// get returns an idle connection (reused) or dials a new one.
func (c *Client) get(ctx context.Context, deadline time.Time) (*conn, bool, error) {
	for {
		c.mu.Lock()
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		if deadline.Sub(cn.last) < staleAfter || cn.alive() {
			return cn, true, nil
		}
		cn.close()
	}
	cn, err := c.dial(ctx, deadline)
	return cn, false, err
}

// put keeps cn, whose exchange had deadline, for the next request, or
// closes it when enough are idle.
func (c *Client) put(cn *conn, deadline time.Time) {
	cn.last = deadline
	c.mu.Lock()
	if !c.closed && len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	cn.close()
}

// requestURI returns the request-target of target: its path and query as
// they are when only characters that need no escaping are in them, or as
// net/http would send them otherwise.
func (c *Client) requestURI(target string) (string, error) {
	rest, ok := strings.CutPrefix(target, c.origin)
	if ok && rest == "" {
		return "/", nil
	}
	if ok && rest[0] == '/' && plainURI(rest) {
		return rest, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	if u.Scheme+"://"+u.Host != c.origin {
		return "", fmt.Errorf("h1: %s is not on %s", u.Redacted(), c.origin)
	}
	return u.RequestURI(), nil
}

// plainURI reports whether s, a path and query, holds only characters
// that a request-target carries as they are, and valid %-escapes.
func plainURI(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~/!$&'()*+,;=:@?", b) >= 0:
		case b == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] < 0x20 {
			return false
		}
	}
	return true
}

// validHeader reports whether a header line can be sent as it is.
func validHeader(name, value string) bool {
	if name == "" || strings.EqualFold(name, "Host") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b <= ' ' || b >= 0x7f || b == ':' {
			return false
		}
	}
	for i := 0; i < len(value); i++ {
		if b := value[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// errClosed is the error of a connection that the server closed before
// any byte of its answer.
var errClosed = fmt.Errorf("h1: the server closed the connection before answering: %w", io.EOF)
