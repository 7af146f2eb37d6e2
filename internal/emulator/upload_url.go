package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// headRetries is how often Tecken retried the HEAD check on connection
// errors and 500/502/504 (urllib3 Retry(3, backoff_factor=0.3)).
const headRetries = 3

// isLoopback reports whether host (without port) is this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errNotLoopback refuses any connection off this machine: the emulator
// only ever fetches from loopback addresses.
var errNotLoopback = errors.New("the emulator only connects to loopback addresses")

func loopbackTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil || !isLoopback(host) {
				return nil, errNotLoopback
			}
			return d.DialContext(ctx, network, addr)
		},
	}
}

// fetchArchive is Tecken's upload by download URL (§2.3): the URL is
// validated, HEAD-checked with redirects followed by hand, then fetched
// into a temporary file. Unlike Tecken, only loopback hosts are allowed
// (plain http too), so that the emulator never leaves this machine.
func (s *Server) fetchArchive(raw string, up *Upload) (f *os.File, written, size int64, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, 0, uploadErrorf(http.StatusBadRequest, "Enter a valid URL.")
	}
	if !isLoopback(u.Hostname()) {
		if u.Scheme != "https" {
			return nil, 0, 0, uploadErrorf(http.StatusBadRequest, "Insecure URL")
		}
		return nil, 0, 0, uploadErrorf(http.StatusBadRequest, "Not an allowed domain (%q) to download from.", u.Hostname())
	}
	tr := loopbackTransport()
	defer tr.CloseIdleConnections()
	head := &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	current := raw
	for {
		resp, err := headWithRetries(head, current)
		if err != nil {
			return nil, 0, 0, err
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, 0, 0, uploadErrorf(http.StatusInternalServerError, "Internal Server Error")
			}
			up.RedirectURLs = append(up.RedirectURLs, loc.String())
			if len(up.RedirectURLs) > 5 {
				return nil, 0, 0, uploadErrorf(http.StatusBadRequest, "Too many redirects trying to open %s", raw)
			}
			current = loc.String()
			continue
		case resp.StatusCode >= 400:
			return nil, 0, 0, uploadErrorf(http.StatusBadRequest, "%s can't be found (%d)", current, resp.StatusCode)
		}
		cl := resp.Header.Get("Content-Length")
		if size, err = strconv.ParseInt(cl, 10, 64); err != nil {
			return nil, 0, 0, uploadErrorf(http.StatusInternalServerError, "Internal Server Error") // an unhandled KeyError in 2019
		}
		break
	}
	get := &http.Client{Transport: tr, Timeout: 300 * time.Second}
	resp, err := get.Get(raw)
	if err != nil {
		return nil, 0, 0, uploadErrorf(http.StatusInternalServerError, "ConnectionError trying to open %s", raw)
	}
	defer resp.Body.Close()
	// 2019 did not check the GET's status: an error page fails as a zip.
	if f, err = os.CreateTemp("", "emulator-download-*.zip"); err != nil {
		return nil, 0, 0, err
	}
	if written, err = io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, 0, uploadErrorf(http.StatusInternalServerError, "ConnectionError trying to open %s", raw)
	}
	return f, written, size, nil
}

// headWithRetries is the HEAD check with Tecken's retries.
func headWithRetries(c *http.Client, target string) (*http.Response, error) {
	for try := 0; ; try++ {
		resp, err := c.Head(target)
		retryable := err != nil || resp.StatusCode == 500 || resp.StatusCode == 502 || resp.StatusCode == 504
		if !retryable {
			if resp.StatusCode >= 500 {
				return nil, uploadErrorf(http.StatusInternalServerError, "%s errored (%d)", target, resp.StatusCode)
			}
			return resp, nil
		}
		if resp != nil {
			resp.Body.Close()
		}
		if try >= headRetries {
			if err != nil {
				return nil, uploadErrorf(http.StatusInternalServerError, "ConnectionError trying to open %s", target)
			}
			return nil, uploadErrorf(http.StatusInternalServerError, "RetryError trying to open %s", target)
		}
		time.Sleep(time.Duration(float64(300*time.Millisecond) * float64(int(1)<<try) / 2))
	}
}
