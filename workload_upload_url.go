package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxRedirects is how many redirects a HEAD for a size follows.
const maxRedirects = 10

// collectURLs gathers the URLs to upload from urls and urls_from.
func (u *UploadStep) collectURLs(rc *runContext) ([]string, error) {
	urls := append([]string(nil), u.URLs...)
	if u.URLsFrom == "" {
		return urls, nil
	}
	if u.URLsFrom == "list-zips" {
		return append(urls, rc.state.zipURLs...), nil
	}
	var raw []byte
	var err error
	if u.URLsFrom == "stdin" {
		if rc.stdinPrompt != nil {
			fmt.Fprintln(rc.stdinPrompt, "reading URLs from stdin (end with Ctrl-D)…")
		}
		raw, err = io.ReadAll(rc.stdin)
	} else {
		raw, err = os.ReadFile(rc.plan.resolve(u.URLsFrom))
	}
	if err != nil {
		return nil, fmt.Errorf("urls_from %s: %w", u.URLsFrom, err)
	}
	found, err := parseURLList(raw)
	if err != nil {
		return nil, fmt.Errorf("urls_from %s: %w", u.URLsFrom, err)
	}
	return append(urls, found...), nil
}

// parseURLList reads URLs from the JSON report of another teckenrun (the
// zips[].url of its steps) or from text (every token containing ://).
func parseURLList(raw []byte) ([]string, error) {
	trimmed := bytes.TrimSpace(raw)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		var report struct {
			Steps []struct {
				Zips []struct {
					URL string `json:"url"`
				} `json:"zips"`
			} `json:"steps"`
		}
		if err := json.Unmarshal(trimmed, &report); err != nil {
			return nil, fmt.Errorf("looks like JSON but is not a teckenrun report: %w", err)
		}
		var urls []string
		for _, s := range report.Steps {
			for _, z := range s.Zips {
				if z.URL != "" {
					urls = append(urls, z.URL)
				}
			}
		}
		return urls, nil
	}
	var urls []string
	for _, tok := range strings.Fields(string(raw)) {
		if strings.Contains(tok, "://") {
			urls = append(urls, tok)
		}
	}
	return urls, nil
}

// uploadURL asks Tecken to download a zip: it learns the size first (from
// index.json, or a HEAD following redirects), skips zips over max_size,
// and posts the form field url. The index.json GET and the HEADs are
// retried as the upload is, each attempt within the plan's timeout.
func (u *UploadStep) uploadURL(ctx context.Context, rt http.RoundTripper, pol retryPolicy, rc *runContext, endpoint, token, target string, rng *mrand.Rand) UploadRecord {
	rec := UploadRecord{URL: target}
	fail := func(err error) UploadRecord {
		msg := err.Error()
		rec.Error = &msg
		return rec
	}
	lookup := pol
	lookup.timeout = time.Duration(rc.plan.Timeout)
	var size int64 = -1
	var err error
	if strings.HasSuffix(strings.SplitN(target, "?", 2)[0], "index.json") {
		target, size, err = u.pickFromIndex(ctx, rt, lookup, target, rc.plan.UserAgent, rng)
	} else {
		size, err = headSize(ctx, rt, lookup, target, rc.plan.UserAgent)
	}
	if err != nil {
		rec.cancelled = errorClass(err) == classCancelled
		return fail(err)
	}
	rec.URL = target
	rec.Bytes = max(size, 0)
	if size > int64(*u.MaxSize) {
		rec.skipped = &SkippedUpload{URL: target, Bytes: size, Reason: fmt.Sprintf("%s is over max_size %s", humanSize(float64(size)), u.MaxSize)}
		return rec
	}
	form := url.Values{"url": {target}}
	if u.Try {
		form.Set("try", "1")
	}
	body := form.Encode()
	begin := time.Now()
	rec.ex = ptr(start(slot{sent: begin}))
	resp, attempts, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Auth-Token", token)
		req.Header.Set("User-Agent", rc.plan.UserAgent)
		return req, nil
	}, nil) // the answer is read by finish, and not retried once it came
	rec.Attempts = attempts
	err = rec.finish(resp, attempts, err)
	rec.DurationS = time.Since(begin).Seconds()
	if err != nil {
		return fail(err)
	}
	return rec
}

// headSize finds a URL's size with HEAD, following up to maxRedirects
// redirects, each retried per pol. -1 means the size is unknown (no
// Content-Length).
func headSize(ctx context.Context, rt http.RoundTripper, pol retryPolicy, target, userAgent string) (int64, error) {
	current := target
	for hop := 0; ; hop++ {
		if hop > maxRedirects {
			return 0, fmt.Errorf("HEAD %s: more than %d redirects", target, maxRedirects)
		}
		resp, _, err := send(ctx, rt, pol, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodHead, current, nil)
			if err == nil {
				req.Header.Set("User-Agent", userAgent)
			}
			return req, err
		}, discardBody)
		if err != nil {
			return 0, fmt.Errorf("HEAD %s: %w", current, err)
		}
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Location()
			if err != nil {
				return 0, fmt.Errorf("HEAD %s: %d without a usable Location", current, resp.StatusCode)
			}
			current = loc.String()
		case resp.StatusCode != http.StatusOK:
			return 0, fmt.Errorf("HEAD %s: %d", current, resp.StatusCode)
		default:
			return resp.ContentLength, nil
		}
	}
}

// pickFromIndex resolves an index.json URL as upload-symbol-zips.py did:
// one of its files not over max_size, chosen with the step's seed. The
// GET is retried per pol.
func (u *UploadStep) pickFromIndex(ctx context.Context, rt http.RoundTripper, pol retryPolicy, target, userAgent string, rng *mrand.Rand) (string, int64, error) {
	raw, err := getOK(ctx, rt, pol, target, target, userAgent, "", 16<<20)
	if err != nil {
		return "", 0, err
	}
	var index struct {
		Files []struct {
			URI  string `json:"uri"`
			Size int64  `json:"size"`
		} `json:"files"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return "", 0, fmt.Errorf("%s: not an index of files: %w", target, err)
	}
	var fits []int
	for i, f := range index.Files {
		if f.Size <= int64(*u.MaxSize) && f.URI != "" {
			fits = append(fits, i)
		}
	}
	if len(fits) == 0 {
		return "", 0, errors.New(target + ": no file of at most max_size " + u.MaxSize.String())
	}
	f := index.Files[fits[rng.IntN(len(fits))]]
	base := strings.SplitN(target, "?", 2)[0]
	return strings.TrimSuffix(base, "index.json") + f.URI, f.Size, nil
}
