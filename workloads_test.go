package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cutBody answers 200 with headers promising 100 bytes, sends 3 of them
// and closes the connection.
func cutBody(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("abc"))
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// stallServer starts a server whose handler counts its requests, sends
// headers and part of a body when withHeaders (else nothing), and then
// waits until the client goes away. Its counter is final once the server
// is closed, which waits for the handlers. It can be lower than the
// client's count of attempts: on a loaded machine an attempt can time out
// while it connects, before the server sees its request.
func stallServer(t *testing.T, withHeaders bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if withHeaders {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("abc"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(release) }) // runs before ts.Close
	return ts, &hits
}

func getRequest(target string, header http.Header) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err == nil {
			for k, v := range header {
				req.Header[k] = v
			}
		}
		return req, err
	}
}

// TestSendDoesNotRetryWhatNoRetryCanFix: a request the transport refuses
// (an invalid header value, a malformed URL) is never sent, and a server
// certificate that does not verify is tried once.
func TestSendDoesNotRetryWhatNoRetryCanFix(t *testing.T) {
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are expected
	ts.StartTLS()
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	otherName := newTransport(1)
	otherName.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: "teckenrun.invalid"}
	for _, tt := range []struct {
		name      string
		rt        http.RoundTripper
		target    string
		header    http.Header
		attempts  int32
		wantError string
	}{
		{"invalid header value", newTransport(1), ts.URL, http.Header{"Auth-Token": {"abc\x01"}}, 0, `invalid header field value for "Auth-Token"`},
		{"URL without a host", newTransport(1), "https:///x", nil, 0, "no Host in request URL"},
		{"malformed URL", newTransport(1), "https://[::1/x", nil, 0, "missing ']' in host"},
		{"unknown authority", newTransport(1), ts.URL, nil, 1, "x509: certificate signed by unknown authority"},
		{"another host name", otherName, ts.URL, nil, 1, "x509: certificate is valid for"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := conns.Load()
			pol := retryPolicy{retries: 3, timeout: 5 * time.Second} // retries without waiting
			resp, attempts, err := send(context.Background(), tt.rt, pol, getRequest(tt.target, tt.header), discardBody)
			if resp != nil || err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Fatalf("resp %v, error %v; want %q", resp, err, tt.wantError)
			}
			if got := conns.Load() - before; attempts != int(tt.attempts) || got != tt.attempts {
				t.Errorf("%d attempts, %d connections; want %d", attempts, got, tt.attempts)
			}
		})
	}
}

// TestSendTimeouts: an attempt that times out, waiting for the answer or
// reading its body within send, is retried and reads as the timeout that
// was set; a body the caller reads is not retried.
func TestSendTimeouts(t *testing.T) {
	pol := retryPolicy{retries: 2, timeout: 50 * time.Millisecond}
	for _, tt := range []struct {
		name        string
		withHeaders bool
		read        func(*http.Response) error
		attempts    int32
	}{
		{"waiting for the answer", false, nil, 3},
		{"reading the body in send", true, discardBody, 3},
		{"reading the body after send", true, nil, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts, hits := stallServer(t, tt.withHeaders)
			tr := newTransport(1)
			defer tr.CloseIdleConnections()
			resp, attempts, err := send(context.Background(), tr, pol, getRequest(ts.URL, nil), tt.read)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil || err.Error() != "timed out after 50ms" || !errors.Is(err, context.DeadlineExceeded) || errorClass(err) != classTimeout {
				t.Errorf("error %v (class %s), want \"timed out after 50ms\", a timeout", err, errorClass(err))
			}
			ts.Close()
			if attempts != int(tt.attempts) || hits.Load() < 1 || hits.Load() > tt.attempts {
				t.Errorf("%d attempts, server saw %d; want %d", attempts, hits.Load(), tt.attempts)
			}
		})
	}
}
