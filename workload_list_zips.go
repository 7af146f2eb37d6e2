package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ListZipsStep lists recent Firefox symbol zips on TaskCluster
// (list-firefox-symbols-zips.py, on today's GET list routes).
type ListZipsStep struct {
	// TaskCluster is the root URL, or embedded for the emulator's.
	TaskCluster string `yaml:"taskcluster,omitempty"`
	Namespace   string `yaml:"namespace,omitempty"`
	Number      *int   `yaml:"number,omitempty"`
	MaxSize     *Size  `yaml:"max_size,omitempty"`
	// PageSize is the limit asked of each list request.
	PageSize *int `yaml:"page_size,omitempty"`
}

func (l *ListZipsStep) kind() string { return "list-zips" }

func (l *ListZipsStep) needs() []need { return nil }

func (l *ListZipsStep) setDefaults(*Plan) {
	if l.TaskCluster == "" {
		l.TaskCluster = "https://firefox-ci-tc.services.mozilla.com"
	}
	if l.Namespace == "" {
		l.Namespace = "gecko.v2.mozilla-central.revision"
	}
	if l.Number == nil {
		l.Number = ptr(5)
	}
	if l.MaxSize == nil {
		l.MaxSize = ptr(Size(1000 << 20))
	}
	if l.PageSize == nil {
		l.PageSize = ptr(100)
	}
}

func (l *ListZipsStep) validate(v *validator, path string) {
	v.checkHost(path+".taskcluster", l.TaskCluster)
	if *l.Number < 1 || *l.Number > 100 {
		v.add(path+".number", "must be between 1 and 100, got %d", *l.Number)
	}
	v.atLeast(path+".page_size", *l.PageSize, 1)
}

// ListZipsResult is the report of a list-zips step.
type ListZipsResult struct {
	Zips []ZipURL `json:"zips"`
	// Namespaces is how many revisions were listed, Expired how many of
	// them (or of their artifacts) had expired.
	Namespaces int          `json:"namespaces"`
	Expired    int          `json:"expired"`
	Skipped    []SkippedZip `json:"skipped"`
}

func newListZipsResult() *ListZipsResult {
	return &ListZipsResult{Zips: []ZipURL{}, Skipped: []SkippedZip{}}
}

// ZipURL is a symbols zip on TaskCluster and its size in bytes.
type ZipURL struct {
	URL  string `json:"url"`
	Size int64  `json:"size"`
}

// SkippedZip is a zip that was found but not listed, and why.
type SkippedZip struct {
	URL    string `json:"url"`
	Reason string `json:"reason"`
}

func (r *ListZipsResult) writeTable(w io.Writer) error {
	rows := make([][]string, 0, len(r.Zips))
	for _, z := range r.Zips {
		rows = append(rows, []string{humanSize(float64(z.Size)), shorten(z.URL, 84)})
	}
	if err := writeTable(w, []string{"SIZE", "URL"}, rows, 1); err != nil {
		return err
	}
	for _, s := range r.Skipped {
		if _, err := fmt.Fprintf(w, "skipped %s: %s\n", shorten(s.URL, 60), s.Reason); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d revisions listed, %d expired\n", r.Namespaces, r.Expired)
	return err
}

func (l *ListZipsStep) run(ctx context.Context, rc *runContext) (stepResult, error) {
	res, err := l.list(ctx, rc)
	rc.state.zipURLs = rc.state.zipURLs[:0]
	for _, z := range res.Zips {
		rc.state.zipURLs = append(rc.state.zipURLs, z.URL)
	}
	return res, err
}

func (l *ListZipsStep) list(ctx context.Context, rc *runContext) (*ListZipsResult, error) {
	root := strings.TrimSuffix(l.TaskCluster, "/")
	if root == "embedded" {
		root = rc.embedded
	}
	res := newListZipsResult()
	tc := &taskCluster{rt: rc.transport(1), root: root, userAgent: rc.plan.UserAgent, pageSize: *l.PageSize,
		pol: retryPolicy{retries: 3, base: time.Second, cap: 10 * time.Second, statuses: []int{429, 500, 502, 503, 504},
			timeout: time.Duration(rc.plan.Timeout)}}
	now := time.Now()
	type namespace struct {
		Namespace string    `json:"namespace"`
		Expires   time.Time `json:"expires"`
	}
	var namespaces []namespace
	if err := tc.list(ctx, "/api/index/v1/namespaces/"+l.Namespace, "namespaces", &namespaces); err != nil {
		return res, err
	}
	res.Namespaces = len(namespaces)
	// Namespaces come sorted by name (a revision hash), not by date;
	// every build expires a fixed time after it was made, so the latest
	// expiry is the most recent build.
	namespaces = slices.DeleteFunc(namespaces, func(n namespace) bool {
		if n.Expires.Before(now) {
			res.Expired++
			return true
		}
		return false
	})
	slices.SortStableFunc(namespaces, func(a, b namespace) int { return b.Expires.Compare(a.Expires) })
	for _, ns := range namespaces {
		var tasks []struct {
			TaskID string `json:"taskId"`
		}
		if err := tc.list(ctx, "/api/index/v1/tasks/"+ns.Namespace+".firefox", "tasks", &tasks); err != nil {
			return res, err
		}
		for _, t := range tasks {
			if len(res.Zips) >= *l.Number {
				return res, nil
			}
			var artifacts []struct {
				Name    string    `json:"name"`
				Expires time.Time `json:"expires"`
			}
			if err := tc.list(ctx, "/api/queue/v1/task/"+t.TaskID+"/artifacts", "artifacts", &artifacts); err != nil {
				return res, err
			}
			best := ""
			for _, a := range artifacts {
				switch {
				case a.Expires.Before(now):
					if strings.HasSuffix(a.Name, ".crashreporter-symbols-full.zip") || strings.HasSuffix(a.Name, ".crashreporter-symbols.zip") {
						res.Expired++
					}
				case strings.HasSuffix(a.Name, ".crashreporter-symbols-full.zip"):
					best = a.Name
				case strings.HasSuffix(a.Name, ".crashreporter-symbols.zip") && best == "":
					best = a.Name
				}
			}
			if best == "" {
				continue
			}
			zipURL := root + "/api/queue/v1/task/" + t.TaskID + "/artifacts/" + best
			size, err := headSize(ctx, tc.rt, tc.pol, zipURL, tc.userAgent)
			switch {
			case err != nil:
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.Skipped = append(res.Skipped, SkippedZip{zipURL, err.Error()})
			case size > int64(*l.MaxSize):
				res.Skipped = append(res.Skipped, SkippedZip{zipURL, fmt.Sprintf("%s is over max_size %s", humanSize(float64(size)), l.MaxSize)})
			default:
				res.Zips = append(res.Zips, ZipURL{zipURL, size})
			}
		}
	}
	return res, nil
}

// taskCluster reads TaskCluster's paginated GET list routes.
type taskCluster struct {
	rt        http.RoundTripper
	root      string
	userAgent string
	pageSize  int
	pol       retryPolicy
}

// list follows continuation tokens and appends every page's items under
// key into out (a pointer to a slice).
func (tc *taskCluster) list(ctx context.Context, path, key string, out any) error {
	var all []json.RawMessage
	token := ""
	for {
		q := url.Values{"limit": {fmt.Sprint(tc.pageSize)}}
		if token != "" {
			q.Set("continuationToken", token)
		}
		target := tc.root + path + "?" + q.Encode()
		raw, err := getOK(ctx, tc.rt, tc.pol, target, target, tc.userAgent, "", 64<<20)
		if err != nil {
			return err
		}
		var page map[string]json.RawMessage
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("GET %s: not a TaskCluster list: %w", target, err)
		}
		if err := json.Unmarshal(page[key], &items); err != nil {
			return fmt.Errorf("GET %s: no %q list: %w", target, key, err)
		}
		all = append(all, items...)
		token = ""
		if t, ok := page["continuationToken"]; ok {
			json.Unmarshal(t, &token) // a non-string token ends the listing
		}
		if token == "" {
			break
		}
	}
	joined, _ := json.Marshal(all) // raw messages always marshal
	if err := json.Unmarshal(joined, out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
