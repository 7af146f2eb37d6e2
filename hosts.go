package main

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mozilla-services/teckenrun/internal/emulator"
	"github.com/mozilla-services/teckenrun/internal/h1"
)

// checkHostURL reports why s is neither embedded nor an http(s) base URL
// with a host and a valid port. The error never holds a password.
func checkHostURL(s string) error {
	if s == "embedded" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("must be an http(s) URL such as https://symbols.mozilla.org, or embedded; got %q", redactURL(s))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s is not between 1 and 65535 in %q", p, redactURL(s))
		}
	}
	return nil
}

// redactURL replaces the password of a URL's user info with ***, also in
// a URL that does not parse.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return s
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return s
	}
	return scheme + "://" + user + ":***" + rest[at:]
}

// normalHost is a host name as compared: lower-case, without the
// trailing dot of a fully qualified name.
func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// productionHosts are the production Tecken and symbolication hosts.
var productionHosts = []string{"symbols.mozilla.org", "symbolication.services.mozilla.com"}

// isProduction reports whether writes to host would reach production: the
// production hosts, and any other host under mozilla.org or mozilla.com
// (Tecken's dev and stage hosts are under mozaws.net).
func isProduction(host string) bool {
	h := normalHost(host)
	return slices.Contains(productionHosts, h) || strings.HasSuffix(h, ".mozilla.org") || strings.HasSuffix(h, ".mozilla.com")
}

func isLoopback(host string) bool {
	h := normalHost(host)
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// staysOn returns whether a request to a host stays where -host allows:
// on the -host's own host name, or on this machine (the embedded
// emulator, TaskCluster and S3). Without -host everything is allowed.
func (p *Plan) staysOn() func(host string) bool {
	if p.onlyHost == "" {
		return func(string) bool { return true }
	}
	name := "" // none but loopback for embedded
	if u, err := url.Parse(p.onlyHost); err == nil && p.onlyHost != "embedded" {
		name = normalHost(u.Hostname())
	}
	return func(host string) bool {
		return isLoopback(host) || (name != "" && normalHost(host) == name)
	}
}

// overrideHost points the plan at host (the -host flag) and keeps every
// request there. With embedded, list-zips steps use the emulator's
// TaskCluster and uploaded-symbols make-zips steps its S3; with any other
// host, Validate refuses a step whose own URL would leave it.
func (p *Plan) overrideHost(host string) {
	p.Host, p.SymbolicationHost, p.onlyHost = host, host, host
	if host != "embedded" {
		return
	}
	for i := range p.Steps {
		if l := p.Steps[i].ListZips; l != nil {
			l.TaskCluster = "embedded"
		}
		if m := p.Steps[i].MakeZips; m != nil && m.Source == "uploaded-symbols" {
			m.SymbolsURL, m.Endpoint = "s3://"+emulator.PublicBucket+"/", "embedded"
		}
		if f := p.Steps[i].FetchRecords; f != nil {
			f.URL = "embedded"
		}
		if a := p.Steps[i].Analyze; a != nil && a.Logs != nil && a.Logs.Bucket != "" {
			l := a.Logs
			l.Bucket, l.Prefix, l.Endpoint, l.Private = emulator.EmbeddedLogsBucket, "", "embedded", []string{emulator.EmbeddedPrivateLogs}
		}
	}
}

// checkStaysOnHost refuses, with -host, every URL of a step that would
// leave that host, naming the key to set.
func (v *validator) checkStaysOnHost() {
	p := v.plan
	if p.onlyHost == "" {
		return
	}
	only, staysOn := redactURL(p.onlyHost), p.staysOn()
	check := func(path, raw, fix string) {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" || staysOn(u.Hostname()) {
			return // a malformed URL is reported by the step's own checks
		}
		v.add(path, "%s is not on -host %s, which every request must stay on; %s", redactURL(raw), only, fix)
	}
	for i := range p.Steps {
		path := fmt.Sprintf("steps[%d]", i)
		s := &p.Steps[i]
		if l := s.ListZips; l != nil && l.TaskCluster != "embedded" {
			check(path+".list-zips.taskcluster", l.TaskCluster, "set taskcluster to a URL on that host, or to embedded")
		}
		if m := s.MakeZips; m != nil && m.Source == "uploaded-symbols" {
			if strings.HasPrefix(m.SymbolsURL, "s3://") {
				switch m.Endpoint {
				case "embedded":
				case "":
					v.add(path+".make-zips.endpoint", "is required with -host %s: without it, s3:// symbols_url reads from AWS; set endpoint to an S3 endpoint on that host, or to embedded", only)
				default:
					check(path+".make-zips.endpoint", m.Endpoint, "set endpoint to an S3 endpoint on that host, or to embedded")
				}
			} else {
				check(path+".make-zips.symbols_url", m.SymbolsURL, "set symbols_url to a URL on that host, or use s3:// with endpoint: embedded")
			}
		}
		if f := s.FetchRecords; f != nil && f.URL != "embedded" {
			check(path+".fetch-records.url", f.URL, "set url to a URL on that host, or to embedded")
		}
		if a := s.Analyze; a != nil && a.Logs != nil && a.Logs.Bucket != "" {
			switch e := a.Logs.Endpoint; e {
			case "embedded":
			case "":
				v.add(path+".analyze.logs.endpoint", "is required with -host %s: without it, the logs are read from AWS; set endpoint to an S3 endpoint on that host, or to embedded", only)
			default:
				check(path+".analyze.logs.endpoint", e, "set endpoint to an S3 endpoint on that host, or to embedded")
			}
		}
		if u := s.Upload; u != nil {
			for j, raw := range u.URLs {
				check(fmt.Sprintf("%s.upload.urls[%d]", path, j), raw, "give URLs on that host")
			}
		}
	}
}

// transport returns a step's HTTP transport (newTransport). With -host,
// it refuses every request that would leave that host: URLs read at run
// time (urls_from, index.json) and redirects are checked here.
func (rc *runContext) transport(concurrency int) *http.Transport {
	t := newTransport(concurrency)
	if only := rc.plan.onlyHost; only != "" {
		staysOn := rc.plan.staysOn()
		t.Proxy = func(req *http.Request) (*url.URL, error) {
			if !staysOn(req.URL.Hostname()) {
				return nil, fmt.Errorf("%s is not on -host %s, which every request must stay on", req.URL.Host, redactURL(only))
			}
			return http.ProxyFromEnvironment(req)
		}
	}
	return t
}

// directClient returns the lean HTTP/1.1 client (internal/h1) for the
// download GETs of a step to rc.host, keeping up to conns connections
// idle; nil when tr would send them through a proxy (or refuse them), and
// net/http then carries them.
func (rc *runContext) directClient(tr *http.Transport, conns int) *h1.Client {
	u, err := url.Parse(rc.host)
	if err != nil {
		return nil
	}
	if proxy, err := tr.Proxy(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}); err != nil || proxy != nil {
		return nil
	}
	header := [][2]string{{"Debug", "true"}}
	if ua := rc.plan.UserAgent; ua != "" {
		header = [][2]string{{"User-Agent", ua}, {"Debug", "true"}} // net/http's order
	}
	c, err := h1.New(u.Scheme+"://"+u.Host, h1.Options{MaxIdle: conns + 10, Header: header,
		Keep: []string{"Debug-Time", "Location", "Retry-After"}})
	if err != nil {
		return nil
	}
	return c
}

// urlsComment describes, as YAML comment lines, where the run's requests
// go; -validate prints it above the plan.
func (p *Plan) urlsComment(steps []int) string {
	show := func(s string) string {
		if s == "embedded" {
			return "embedded (the built-in emulator on 127.0.0.1)"
		}
		return redactURL(s)
	}
	var b strings.Builder
	b.WriteString("# Requests of this run go to:\n")
	fmt.Fprintf(&b, "#   host: %s\n", show(p.Host))
	if p.SymbolicationHost != p.Host {
		fmt.Fprintf(&b, "#   symbolication_host: %s\n", show(p.SymbolicationHost))
	}
	for _, i := range steps {
		s := &p.Steps[i]
		switch {
		case s.ListZips != nil:
			fmt.Fprintf(&b, "#   %s (list-zips): TaskCluster %s\n", s.Name, show(s.ListZips.TaskCluster))
		case s.MakeZips != nil && s.MakeZips.Source == "uploaded-symbols":
			m := s.MakeZips
			where := ""
			switch {
			case m.Endpoint == "embedded":
				where = " on the embedded S3 (127.0.0.1)"
			case m.Endpoint != "":
				where = " on " + redactURL(m.Endpoint)
			case strings.HasPrefix(m.SymbolsURL, "s3://"):
				where = " on AWS (" + m.Region + ")"
			}
			fmt.Fprintf(&b, "#   %s (make-zips): %s%s\n", s.Name, redactURL(m.SymbolsURL), where)
		case s.FetchRecords != nil:
			fmt.Fprintf(&b, "#   %s (fetch-records): %s\n", s.Name, show(s.FetchRecords.URL))
		case s.Analyze != nil && s.Analyze.Logs != nil && s.Analyze.Logs.Bucket != "":
			l := s.Analyze.Logs
			where := " on AWS (" + l.Region + ")"
			switch {
			case l.Endpoint == "embedded":
				where = " on the embedded S3 (127.0.0.1)"
			case l.Endpoint != "":
				where = " on " + redactURL(l.Endpoint)
			}
			fmt.Fprintf(&b, "#   %s (analyze): s3://%s/%s%s\n", s.Name, l.Bucket, l.Prefix, where)
		case s.Upload != nil && s.Upload.URLsFrom != "":
			fmt.Fprintf(&b, "#   %s (upload): the URLs from %s (and where they redirect)\n", s.Name, s.Upload.URLsFrom)
		case s.Upload != nil && len(s.Upload.URLs) > 0:
			fmt.Fprintf(&b, "#   %s (upload): the URLs in urls (and where they redirect)\n", s.Name)
		}
	}
	if p.onlyHost != "" {
		fmt.Fprintf(&b, "# and nowhere but %s and 127.0.0.1 (-host).\n", show(p.onlyHost))
	}
	return b.String()
}
