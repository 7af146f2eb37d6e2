package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// benchServer answers every request on a connection with Tecken's 302,
// as cheaply as it can, so that the client is what is measured.
func benchServer(b *testing.B) string {
	origin, _ := rawServer(b, func(_ int, c net.Conn) {
		br := bufio.NewReader(c)
		const answer = "HTTP/1.1 302 Found\r\nContent-Length: 0\r\nDebug-Time: 0.0001\r\nLocation: https://storage.example/xul.pdb/4E3B/xul.sym\r\n\r\n"
		for {
			for { // the request's head, up to its empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	})
	return origin
}

// BenchmarkGet and BenchmarkNetHTTP send the same GET over one
// keep-alive connection, through this client and through net/http's
// Transport as the download step used it (allocations per request).
func BenchmarkGet(b *testing.B) {
	origin := benchServer(b)
	c := newClient(b, origin, Options{MaxIdle: 1, Header: [][2]string{{"User-Agent", "bench"}, {"Debug", "true"}},
		Keep: []string{"Debug-Time", "Location", "Retry-After"}})
	target := origin + "/xul.pdb/4E3BE34097B5DB19CE7F4775A31FEB0F1/xul.sym"
	b.ReportAllocs()
	for b.Loop() {
		resp, _, err := c.Get(context.Background(), target, time.Now().Add(10*time.Second), 0)
		if err != nil || resp.Status != http.StatusFound || resp.Header("Location") == "" {
			b.Fatal(resp.Status, err)
		}
	}
}

func BenchmarkNetHTTP(b *testing.B) {
	origin := benchServer(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	target := origin + "/xul.pdb/4E3BE34097B5DB19CE7F4775A31FEB0F1/xul.sym"
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Debug", "true")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") == "" {
			b.Fatal(resp.StatusCode)
		}
	}
}
