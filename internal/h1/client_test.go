package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// soon is a deadline far enough away that only a broken exchange meets it.
func soon() time.Time { return time.Now().Add(10 * time.Second) }

func newClient(t testing.TB, origin string, o Options) *Client {
	t.Helper()
	c, err := New(origin, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// rawServer accepts connections on 127.0.0.1 and serves each with serve;
// it returns the origin and the number of connections accepted so far.
func rawServer(t testing.TB, serve func(n int, c net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(accepted.Add(1))
			wg.Go(func() { defer c.Close(); serve(n, c) })
		}
	})
	return "http://" + ln.Addr().String(), &accepted
}

func TestGetKeepsConnectionsAliveAndSendsTheHeaders(t *testing.T) {
	var conns atomic.Int32
	var mu sync.Mutex
	var got []http.Header
	var hosts []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got, hosts = append(got, r.Header.Clone()), append(hosts, r.Host)
		mu.Unlock()
		w.Header().Set("Debug-Time", "0.25")
		w.Header().Set("Location", "https://storage.example/"+r.URL.Path)
		w.WriteHeader(http.StatusFound)
		fmt.Fprint(w, "redirecting")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c := newClient(t, srv.URL, Options{MaxIdle: 4, Header: [][2]string{{"User-Agent", "teckenrun-test"}, {"Debug", "true"}},
		Keep: []string{"Debug-Time", "Location"}})
	const workers, each = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				resp, wrote, err := c.Get(context.Background(), fmt.Sprintf("%s/a.pdb/%d%d/a.sym", srv.URL, w, i), soon(), 0)
				switch {
				case err != nil:
					errs <- err
				case wrote != 1 || resp.Status != http.StatusFound || resp.Header("debug-time") != "0.25" ||
					resp.Header("Location") != fmt.Sprintf("https://storage.example//a.pdb/%d%d/a.sym", w, i) || resp.Body != nil:
					errs <- fmt.Errorf("wrote %d, answer %+v", wrote, resp)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := conns.Load(); n > workers {
		t.Errorf("%d connections for %d workers: they were not kept alive", n, workers)
	}
	if len(got) != workers*each {
		t.Fatalf("server saw %d requests, want %d", len(got), workers*each)
	}
	u, _ := url.Parse(srv.URL)
	if h := got[0]; h.Get("User-Agent") != "teckenrun-test" || h.Get("Debug") != "true" || hosts[0] != u.Host {
		t.Errorf("request headers %v, Host %q", h, hosts[0])
	}
}

func TestGetReadsEveryBodyFraming(t *testing.T) {
	// Each connection answers the same two requests in one framing; the
	// second request shows whether the connection was reused correctly.
	answers := map[string]string{
		"length":  "HTTP/1.1 404 Not Found\r\nContent-Length: 16\r\n\r\nSymbol Not Found",
		"chunked": "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n7;ext=1\r\nSymbol \r\n9\r\nNot Found\r\n0\r\nTrailer: x\r\n\r\n",
		"interim": "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 16\r\n\r\nSymbol Not Found",
		"empty":   "HTTP/1.1 304 Not Modified\r\nContent-Length: 16\r\n\r\n",
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			origin, accepted := rawServer(t, func(_ int, c net.Conn) {
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					io.WriteString(c, answer)
				}
			})
			c := newClient(t, origin, Options{MaxIdle: 1})
			for range 2 {
				resp, wrote, err := c.Get(context.Background(), origin+"/x", soon(), 10)
				if err != nil || wrote != 1 {
					t.Fatalf("wrote %d: %v", wrote, err)
				}
				want, body := 404, "Symbol Not"
				if name == "empty" {
					want, body = 304, ""
				}
				if resp.Status != want || string(resp.Body) != body {
					t.Fatalf("answer %d %q, want %d %q", resp.Status, resp.Body, want, body)
				}
			}
			if n := accepted.Load(); n != 1 {
				t.Errorf("%d connections, want 1 (kept alive)", n)
			}
		})
	}
}

func TestGetReadsABodyUntilTheConnectionCloses(t *testing.T) {
	body := strings.Repeat("x", 40000) // more than the read buffer
	origin, accepted := rawServer(t, func(_ int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n"+body)
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	for range 2 {
		resp, _, err := c.Get(context.Background(), origin+"/x", soon(), 50000)
		if err != nil || resp.Status != 200 || string(resp.Body) != body {
			t.Fatalf("answer %d with %d bytes: %v", resp.Status, len(resp.Body), err)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: a body that ends with the connection ends it", n)
	}
}

func TestGetRejectsMalformedAnswers(t *testing.T) {
	for _, tc := range []struct{ answer, want string }{
		{"HTTP/2 200 OK\r\n\r\n", "malformed status line"},
		{"HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"},
		{"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header line"},
		{"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n", "malformed header line"},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "bad Content-Length"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "malformed chunk end"},
		{"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", io.ErrUnexpectedEOF.Error()},
		{"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("y", maxHeaderBytes) + "\r\n\r\n", "headers pass"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			origin, _ := rawServer(t, func(_ int, c net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, tc.answer)
				}
			})
			c := newClient(t, origin, Options{MaxIdle: 1})
			_, wrote, err := c.Get(context.Background(), origin+"/x", soon(), 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if wrote != 1 {
				t.Errorf("wrote %d, want 1", wrote)
			}
		})
	}
}

func TestGetDeadlineCoversTheBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	origin, _ := rawServer(t, func(_ int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
			<-release
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	start := time.Now()
	_, wrote, err := c.Get(context.Background(), origin+"/x", time.Now().Add(200*time.Millisecond), 0)
	if !errors.Is(err, os.ErrDeadlineExceeded) || wrote != 1 {
		t.Fatalf("wrote %d, error %v; want a deadline error", wrote, err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the deadline", took)
	}
}

func TestGetStopsWhenTheContextEnds(t *testing.T) {
	got := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	origin, _ := rawServer(t, func(_ int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			close(got)
			<-release
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, wrote, err := c.Get(ctx, origin+"/x", soon(), 0)
	if !errors.Is(err, context.Canceled) || wrote != 1 {
		t.Fatalf("wrote %d, error %v; want context.Canceled", wrote, err)
	}
	if _, wrote, err := c.Get(ctx, origin+"/x", soon(), 0); !errors.Is(err, context.Canceled) || wrote != 0 {
		t.Fatalf("after the end: wrote %d, error %v; want context.Canceled, nothing sent", wrote, err)
	}
}

func TestGetReplaysOnceWhenAReusedConnectionWasClosed(t *testing.T) {
	// The server answers one request per connection and closes it
	// without saying so: the second request goes out on the dead
	// connection, finds no answer, and is replayed on a new one.
	origin, accepted := rawServer(t, func(_ int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	d := soon()
	if _, wrote, err := c.Get(context.Background(), origin+"/1", d, 0); err != nil || wrote != 1 {
		t.Fatalf("first: wrote %d: %v", wrote, err)
	}
	resp, wrote, err := c.Get(context.Background(), origin+"/2", d, 0) // same deadline: no liveness check
	if err != nil || resp.Status != 200 {
		t.Fatalf("second: %v", err)
	}
	if wrote != 2 || accepted.Load() != 2 {
		t.Errorf("wrote %d on %d connections, want 2 on 2 (a replay)", wrote, accepted.Load())
	}
}

func TestGetChecksAnIdleConnectionBeforeReusingIt(t *testing.T) {
	closed := make(chan struct{})
	origin, accepted := rawServer(t, func(n int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		if n == 1 {
			c.Close()
			close(closed)
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	if _, _, err := c.Get(context.Background(), origin+"/1", soon(), 0); err != nil {
		t.Fatal(err)
	}
	<-closed
	// A deadline later by more than staleAfter stands for a connection
	// that sat idle: the client looks before writing on it.
	resp, wrote, err := c.Get(context.Background(), origin+"/2", soon().Add(staleAfter), 0)
	if err != nil || resp.Status != 200 {
		t.Fatal(err)
	}
	if wrote != 1 || accepted.Load() != 2 {
		t.Errorf("wrote %d on %d connections, want 1 on 2: the closed one was seen and left", wrote, accepted.Load())
	}
}

func TestGetOverTLS(t *testing.T) {
	var proto, resumed atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		resumed.Store(r.TLS.DidResume)
		w.Header().Set("Location", "https://storage.example/x")
		w.WriteHeader(http.StatusFound)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	c := newClient(t, srv.URL, Options{MaxIdle: 1, Keep: []string{"Location"}, TLS: &tls.Config{RootCAs: roots}})
	resp, wrote, err := c.Get(context.Background(), srv.URL+"/x", soon(), 0)
	if err != nil || wrote != 1 || resp.Status != http.StatusFound || resp.Header("Location") != "https://storage.example/x" {
		t.Fatalf("wrote %d, answer %+v: %v", wrote, resp, err)
	}
	if p := proto.Load(); p != "HTTP/1.1" {
		t.Errorf("protocol %v, want HTTP/1.1", p)
	}
	c.CloseIdleConnections() // the next request needs a new connection...
	if _, _, err := c.Get(context.Background(), srv.URL+"/x", soon(), 0); err != nil {
		t.Fatal(err)
	}
	if r := resumed.Load(); r == nil || !r.(bool) {
		t.Errorf("a new connection did a full handshake again: resumed %v", r) // ...which resumes the session
	}

	untrusted := newClient(t, srv.URL, Options{MaxIdle: 1})
	_, wrote, err = untrusted.Get(context.Background(), srv.URL+"/x", soon(), 0)
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok || wrote != 0 {
		t.Fatalf("wrote %d, error %v; want a certificate verification error", wrote, err)
	}
}

func TestGetRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	ln.Close()
	c := newClient(t, origin, Options{MaxIdle: 1})
	if _, wrote, err := c.Get(context.Background(), origin+"/x", soon(), 0); !errors.Is(err, syscall.ECONNREFUSED) || wrote != 0 {
		t.Fatalf("wrote %d, error %v; want ECONNREFUSED", wrote, err)
	}
}

func TestGetRequestTarget(t *testing.T) {
	var mu sync.Mutex
	var uris []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, Options{MaxIdle: 1})
	for _, target := range []string{
		srv.URL,
		srv.URL + "/xul.pdb/4E3B/xul.sym?code_file=xul.dll&code_id=5F2A",
		srv.URL + "/a%20b.pdb/ID/a%2fb.sym",
		srv.URL + "/a b.pdb/ID/é.sym",
		srv.URL + `/a"b<c>.pdb/ID/x.sym`,
	} {
		mu.Lock()
		uris = uris[:0]
		mu.Unlock()
		if _, _, err := c.Get(context.Background(), target, soon(), 0); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		u, _ := url.Parse(target)
		if want := u.RequestURI(); len(uris) != 1 || uris[0] != want {
			t.Errorf("%s: sent %q, want %q as net/http sends it", target, uris, want)
		}
	}
	for _, target := range []string{"http://elsewhere.example/x", srv.URL + "/a\x7fb", "https" + strings.TrimPrefix(srv.URL, "http") + "/x"} {
		_, wrote, err := c.Get(context.Background(), target, soon(), 0)
		if _, ok := errors.AsType[*RequestError](err); !ok || wrote != 0 {
			t.Errorf("%q: wrote %d, error %v; want a RequestError", target, wrote, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		origin string
		o      Options
	}{
		{"ftp://h", Options{}},
		{"http://h/path", Options{}},
		{"http://user:pw@h", Options{}},
		{"http://bücher.example", Options{}},
		{"http://h", Options{Header: [][2]string{{"X", "a\r\nb"}}}},
		{"http://h", Options{Header: [][2]string{{"Host", "x"}}}},
		{"http://h", Options{Keep: []string{"a", "b", "c", "d", "e"}}},
	} {
		if _, err := New(tc.origin, tc.o); err == nil {
			t.Errorf("New(%q, %+v) accepted", tc.origin, tc.o)
		}
	}
}

func TestIdleConnectionsBeyondMaxIdleAreClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	c := newClient(t, srv.URL, Options{MaxIdle: 1})
	// Two exchanges at once need two connections; once both are back,
	// one is kept.
	cn1, _, err := c.get(context.Background(), soon())
	if err != nil {
		t.Fatal(err)
	}
	cn2, _, err := c.get(context.Background(), soon())
	if err != nil {
		t.Fatal(err)
	}
	c.put(cn1, soon())
	c.put(cn2, soon())
	if n := len(c.idle); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	c.CloseIdleConnections()
	if _, _, err := c.Get(context.Background(), srv.URL+"/x", soon(), 0); err != nil {
		t.Fatal(err)
	}
	if n := len(c.idle); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections, want 0", n)
	}
}

func TestWarmOpensConnectionsBeforeTheFirstRequest(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv.URL, Options{MaxIdle: 2})
	if n := c.Warm(context.Background(), 3, soon()); n != 2 {
		t.Fatalf("Warm opened %d connections, want 2 (MaxIdle)", n)
	}
	for range 4 {
		if _, _, err := c.Get(context.Background(), srv.URL+"/x", soon(), 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the server saw %d connections, want the 2 warmed ones", n)
	}

	// A host that cannot be reached costs one try, not one per connection.
	tlsConns := atomic.Int32{}
	bad := httptest.NewUnstartedServer(http.NotFoundHandler())
	bad.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			tlsConns.Add(1)
		}
	}
	bad.Config.ErrorLog = log.New(io.Discard, "", 0)
	bad.StartTLS()
	defer bad.Close()
	untrusted := newClient(t, bad.URL, Options{MaxIdle: 5})
	if n := untrusted.Warm(context.Background(), 5, soon()); n != 0 || tlsConns.Load() != 1 {
		t.Errorf("Warm opened %d connections in %d tries to a host whose certificate fails, want 0 in 1", n, tlsConns.Load())
	}
}

// TestGetReplaysOnANewConnectionNotAnotherIdleOne: when the server has
// closed every idle connection (a restart), the request is replayed once,
// on a new connection, not on each dead idle one in turn.
func TestGetReplaysOnANewConnectionNotAnotherIdleOne(t *testing.T) {
	origin, accepted := rawServer(t, func(n int, c net.Conn) {
		if n <= 3 {
			return // the first three connections die unanswered
		}
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 3})
	d := soon()
	if n := c.Warm(context.Background(), 3, d); n != 3 {
		t.Fatalf("warmed %d connections, want 3", n)
	}
	resp, wrote, err := c.Get(context.Background(), origin+"/x", d, 0) // same deadline: no liveness check
	if err != nil || resp.Status != 200 {
		t.Fatal(err)
	}
	if wrote != 2 || accepted.Load() != 4 {
		t.Errorf("wrote %d, %d connections; want 2 writes: one on a dead connection, one on a new one", wrote, accepted.Load())
	}
}

// TestGetReusesAConnectionWhoseDeadlinePassed: a connection idle past
// its last exchange's deadline is checked and reused, not redialled.
func TestGetReusesAConnectionWhoseDeadlinePassed(t *testing.T) {
	origin, accepted := rawServer(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	first := time.Now().Add(time.Second)
	if _, _, err := c.Get(context.Background(), origin+"/1", first, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(first)) // a clock condition: the deadline has passed
	if _, wrote, err := c.Get(context.Background(), origin+"/2", soon(), 0); err != nil || wrote != 1 {
		t.Fatalf("wrote %d: %v", wrote, err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (the idle one reused)", n)
	}
}

func TestGetReadsManySmallChunks(t *testing.T) {
	const chunks = 300000
	var body strings.Builder
	body.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range chunks {
		body.WriteString("1\r\nx\r\n")
	}
	body.WriteString("0\r\n\r\n")
	origin, _ := rawServer(t, func(_ int, c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.WriteString(c, body.String())
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	resp, _, err := c.Get(context.Background(), origin+"/x", soon(), chunks)
	if err != nil || len(resp.Body) != chunks {
		t.Fatalf("%d bytes: %v", len(resp.Body), err)
	}
}

// TestGetDropsAConnectionWithBytesPastTheAnswer: bytes after an answer
// answer nothing that was asked; the connection is not used again.
func TestGetDropsAConnectionWithBytesPastTheAnswer(t *testing.T) {
	origin, accepted := rawServer(t, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
		}
	})
	c := newClient(t, origin, Options{MaxIdle: 1})
	for range 2 {
		if resp, _, err := c.Get(context.Background(), origin+"/x", soon(), 10); err != nil || string(resp.Body) != "ok" {
			t.Fatalf("%q: %v", resp.Body, err)
		}
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestGetOverIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "host="+r.Host)
		w.WriteHeader(http.StatusFound)
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	c := newClient(t, srv.URL, Options{MaxIdle: 1, Keep: []string{"Location"}})
	resp, _, err := c.Get(context.Background(), srv.URL+"/x", soon(), 0)
	if err != nil || resp.Header("Location") != "host="+ln.Addr().String() {
		t.Fatalf("answer %+v: %v", resp, err)
	}
}
