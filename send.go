package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mozilla-services/teckenrun/internal/h1"
)

// newTransport returns the HTTP transport of a step, which keeps up to
// concurrency connections alive. Steps use it directly, not through an
// http.Client: redirects are answers to measure, never followed
// implicitly, and the client's per-request machinery costs CPU that a
// load generator needs.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          concurrency + 10,
		MaxIdleConnsPerHost:   concurrency + 10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // bodies are measured as the server sent them
	}
}

// retryPolicy says which failures are retried, how often and how long to
// wait in between.
type retryPolicy struct {
	retries  int           // extra attempts after the first
	base     time.Duration // first backoff; doubles each time, with full jitter
	cap      time.Duration // longest backoff without a Retry-After
	statuses []int         // HTTP statuses that are retried; transport errors always are
	timeout  time.Duration // per attempt, including reading the body
}

// send performs the request that build makes (once per attempt), retrying
// per pol, and returns the final response or the final error (then resp
// is nil). attempts counts the tries: each request written (the server
// may have seen it), including the ones net/http replays by itself on a
// dropped keep-alive connection, and each try that failed before a
// request went out (a refused connection), as one.
//
// With read, send reads each answer's body with it, within the attempt's
// timeout, and closes it: a body that breaks off (a reset, a timeout) is
// retried like a transport error. That suits requests that can be
// repeated, GETs and symbolication. Without read, the caller reads the
// final response's body and must close it (which ends the attempt's
// timeout); a body that breaks off is then the caller's error, never
// retried: a server that has answered an upload may have accepted it.
//
// A request the transport refuses before connecting (an invalid header
// value, a URL without a host, another scheme) and a failure pol.backoff
// calls unfixable are not retried.
func send(ctx context.Context, rt http.RoundTripper, pol retryPolicy, build func(context.Context) (*http.Request, error), read func(*http.Response) error) (resp *http.Response, attempts int, err error) {
	timedOut := &timeoutError{after: pol.timeout}
	for try := 0; ; try++ {
		var wrote atomic.Int32
		var connecting atomic.Bool
		actx, cancel := context.WithTimeoutCause(ctx, pol.timeout, timedOut)
		actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			GetConn: func(string) { connecting.Store(true) },
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				if info.Err == nil {
					wrote.Add(1)
				}
			},
		})
		req, err := build(actx)
		if err != nil {
			cancel()
			return nil, attempts, err
		}
		resp, err = rt.RoundTrip(req)
		if err != nil && !connecting.Load() && actx.Err() == nil {
			cancel()
			return nil, attempts, err // refused by the transport: never sent
		}
		attempts += max(1, int(wrote.Load()))
		switch {
		case err != nil:
			cancel()
		case read != nil:
			err = read(resp)
			resp.Body.Close()
			cancel()
		default:
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		status, ra := 0, ""
		if resp != nil {
			status, ra = resp.StatusCode, resp.Header.Get("Retry-After")
		}
		wait, retry := pol.backoff(try, status, ra, err)
		if !retry || try >= pol.retries || ctx.Err() != nil {
			if err != nil {
				return nil, attempts, stepCause(ctx, err)
			}
			return resp, attempts, nil
		}
		if read == nil && err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, attempts, err
		}
	}
}

// sendGet is send for a GET through the lean HTTP/1.1 client: the same
// retries, attempt counting and errors, with the answer's first keepBody
// bytes read within the attempt's timeout.
func sendGet(ctx context.Context, c *h1.Client, pol retryPolicy, target string, keepBody int) (resp h1.Response, attempts int, err error) {
	for try := 0; ; try++ {
		deadline := time.Now().Add(pol.timeout)
		var wrote int
		resp, wrote, err = c.Get(ctx, target, deadline, keepBody)
		if err != nil {
			if _, refused := errors.AsType[*h1.RequestError](err); refused {
				return resp, attempts, err // never sent
			}
			if ctx.Err() == nil && !time.Now().Before(deadline) &&
				(errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
				err = &timeoutError{after: pol.timeout}
			}
		}
		attempts += max(1, wrote)
		wait, retry := pol.backoff(try, resp.Status, resp.Header("Retry-After"), err)
		if !retry || try >= pol.retries || ctx.Err() != nil {
			if err != nil {
				return resp, attempts, stepCause(ctx, err)
			}
			return resp, attempts, nil
		}
		if err := sleep(ctx, wait); err != nil {
			return resp, attempts, err
		}
	}
}

// sleep waits d, or until ctx ends: then it returns the step's cause.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return stepCause(ctx, ctx.Err())
	}
}

// getOK sends a GET to target, retried per pol, with the User-Agent and,
// unless token is "", the Auth-Token. It reads at most limit bytes of the
// answer and returns a 200's body; another status is an error with the
// server's error text. Errors start with "GET shown": the URL as it may be
// printed.
func getOK(ctx context.Context, rt http.RoundTripper, pol retryPolicy, target, shown, userAgent, token string, limit int64) ([]byte, error) {
	var raw []byte
	resp, _, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err == nil {
			req.Header.Set("User-Agent", userAgent)
			if token != "" {
				req.Header.Set("Auth-Token", token)
			}
		}
		return req, err
	}, func(resp *http.Response) (err error) {
		raw, err = io.ReadAll(io.LimitReader(resp.Body, limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", shown, resp.StatusCode, errorText(raw))
	}
	return raw, nil
}

// stepCause is the error of a request that ctx cut off: the cause the
// step gave ctx (its duration was up: a timeout), or err for an interrupt.
func stepCause(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// durationUpError cuts off the requests still in flight once a step's
// duration and the plan's timeout after it are up: they count as
// timeouts, not as cancelled by an interrupt.
type durationUpError struct{ after time.Duration }

func (e *durationUpError) Error() string {
	return "timed out: the step's duration and the plan's timeout were up after " + e.after.String()
}
func (e *durationUpError) Timeout() bool { return true }
func (e *durationUpError) Unwrap() error { return context.DeadlineExceeded }

// maxRetryAfter is the longest Retry-After that is honoured as sent.
const maxRetryAfter = 10 * time.Minute

// backoff decides whether an attempt's outcome (an answer's status and
// Retry-After, or err) is retried and after how long: exponential with
// full jitter, or the server's Retry-After. An answer may come with err
// when its body broke off.
func (pol retryPolicy) backoff(try, status int, retryAfterValue string, err error) (time.Duration, bool) {
	if err != nil {
		if errors.Is(err, context.Canceled) || unfixable(err) {
			return 0, false
		}
	} else if !slices.Contains(pol.statuses, status) {
		return 0, false
	}
	if ra, ok := retryAfter(retryAfterValue); ok {
		return min(ra, maxRetryAfter), true
	}
	ceiling := pol.base << min(try, 20)
	if ceiling <= 0 || ceiling > pol.cap {
		ceiling = pol.cap
	}
	if ceiling <= 0 {
		return 0, true
	}
	return time.Duration(rand.Int64N(int64(ceiling)) + 1), true
}

// unfixable says whether a transport error is one that no retry can fix:
// the server's certificate does not verify (an unknown authority, another
// host name, expired).
func unfixable(err error) bool {
	var cert *tls.CertificateVerificationError
	return errors.As(err, &cert)
}

// timeoutError is an attempt's timeout. It reads as the timeout that was
// set ("timed out after 3s"), not "context deadline exceeded", and is a
// context.DeadlineExceeded.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return "timed out after " + e.after.String() }
func (e *timeoutError) Timeout() bool { return true }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// discardBody reads a body to its end, for send.
func discardBody(resp *http.Response) error {
	_, err := io.Copy(io.Discard, resp.Body)
	return err
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// cancelBody ends an attempt's context when its body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Transport error classes, as reported.
const (
	classTimeout   = "timeout"
	classRefused   = "refused"
	classReset     = "reset"
	classOther     = "other"
	classCancelled = "cancelled"
)

// errorClass sorts a transport error into a class.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return classCancelled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return classTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return classRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return classReset
	}
	return classOther
}
