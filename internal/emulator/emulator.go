// Package emulator is an in-process emulator of Mozilla's symbol server,
// Tecken, as it behaved in 2019 (see shared/tecken-api.md). It serves the
// download API and a storage bucket for the redirects, holds an in-memory
// symbol store that tests fill, injects latency and faults on request, and
// records what it answered so that tests can compare a client's report with
// the server's own view.
//
// It is test and demo infrastructure: teckenrun starts it for plans whose
// host is "embedded".
package emulator

import (
	"bytes"
	"crypto/md5"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

// Token permissions, as Tecken names them.
const (
	PermUpload    = "upload.upload_symbols"
	PermUploadTry = "upload.upload_try_symbols"
	PermViewAll   = "upload.view_all_uploads"
)

// Token is an API token the emulator accepts in the Auth-Token header.
type Token struct {
	User        string // the owner's email
	Permissions []string
	Expired     bool
	Inactive    bool // the owning user is not active
}

func (t Token) has(perm string) bool {
	for _, p := range t.Permissions {
		if p == perm {
			return true
		}
	}
	return false
}

// Fault injects a failure into a share of the requests to an endpoint.
type Fault struct {
	Endpoint   string        // "download", "storage", "symbolicate", "upload", "api", "taskcluster"; "" matches all
	Every      int           // fire on every Nth matching request (1 = all)
	Rate       float64       // or fire with this probability (0..1)
	Limit      int           // fire at most this many times; 0 = no limit
	Status     int           // answer with this status and an nginx-style HTML body
	RetryAfter string        // Retry-After header to send with Status
	Drop       bool          // close the connection without answering
	Stall      time.Duration // wait this long (or until the client goes away), then answer normally
	BodyRate   int64         // answer normally, but send the body at this many bytes per second

	seen, fired int
}

// Options configure a Server.
type Options struct {
	// Latency is the simulated storage lookup time of a key that is not in
	// the existence cache (Tecken caches positive and negative results).
	Latency time.Duration
	Tokens  map[string]Token
	Faults  []Fault
	// KeepLog keeps a Record of every request (Counts are always kept).
	KeepLog bool
	// Seed seeds the random source used by Rate faults.
	Seed uint64
	// SymbolBandwidth simulates the storage bandwidth (bytes/s) of symbol
	// downloads during symbolication; 0 = as fast as memory.
	SymbolBandwidth int64
	// DiscardUploads validates uploaded members and remembers their sizes
	// and hashes, but does not keep their bytes (for benchmarks).
	DiscardUploads bool
	// Eliot switches symbolication to the later service's behaviour:
	// top-level debug, at most 10 jobs, 400 {"title": …} errors.
	Eliot bool
}

// Record is what the emulator did with one request.
type Record struct {
	Endpoint  string
	Method    string
	Path      string
	Query     string
	Status    int    // 0 when the connection was dropped
	DebugTime string // the Debug-Time header sent, if any
	Dropped   bool
	Injected  bool // the answer came from a Fault
}

// CountKey identifies a bucket of Counts.
type CountKey struct {
	Endpoint string
	Status   int // 0 for dropped connections
}

// Server is the emulator. Its zero value is not usable; call New.
type Server struct {
	opts Options

	mu     sync.Mutex
	store  map[string][]byte // storage key (v1/... or try/v1/...) -> bytes
	exists map[string]bool   // existence cache, by storage key
	misses map[missing]bool  // GET misses of .pdb/.sym, for /missingsymbols.csv
	// symCache holds parsed symbol files by storage key (without v1/), and
	// symFailed when a missing one may be looked up again.
	symCache  map[string]*breakpad.Symbols
	symFailed map[string]time.Time
	// meta is the size and MD5 of every stored object; uploads and
	// fileUploads are the upload records.
	meta        map[string]stored
	uploads     []Upload
	fileUploads int
	bucket      *S3 // where uploads are mirrored (MirrorTo); nil for none
	// TaskCluster's index and queue.
	tcNamespaces []tcNamespace
	tcTasks      []tcTask
	counts       map[CountKey]int
	log          []Record
	rng          *rand.Rand
	faults       []Fault
	handler      http.Handler
}

// New returns an emulator with an empty store.
func New(opts Options) *Server {
	s := &Server{
		opts:      opts,
		store:     map[string][]byte{},
		exists:    map[string]bool{},
		misses:    map[missing]bool{},
		symCache:  map[string]*breakpad.Symbols{},
		symFailed: map[string]time.Time{},
		meta:      map[string]stored{},
		counts:    map[CountKey]int{},
		rng:       rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		faults:    append([]Fault(nil), opts.Faults...),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/storage/", s.serveStorage)
	mux.HandleFunc("/symbolicate/", s.serveSymbolicate)
	mux.HandleFunc("/upload/", s.serveUpload)
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/api/UploadedSymbols/", s.serveUploadedSymbols)
	mux.HandleFunc("/api/index/", s.serveTaskCluster)
	mux.HandleFunc("/api/queue/", s.serveTaskCluster)
	mux.HandleFunc("/tc-storage/", s.serveTaskCluster)
	mux.HandleFunc("/__heartbeat__", s.serveDockerflow)
	mux.HandleFunc("/__lbheartbeat__", s.serveDockerflow)
	mux.HandleFunc("/__version__", s.serveDockerflow)
	mux.HandleFunc("/", s.serveDownload)
	s.handler = mux
	return s
}

// Put stores a symbol file under key "symbol/DEBUGID/file" in regular
// storage, so that it can be downloaded.
func (s *Server) Put(key string, data []byte) { s.put("v1/"+key, data) }

// PutTry stores a symbol file in try storage.
func (s *Server) PutTry(key string, data []byte) { s.put("try/v1/"+key, data) }

func (s *Server) put(storageKey string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store[storageKey] = data
	s.meta[storageKey] = stored{size: int64(len(data)), md5: md5.Sum(data)}
	key := strings.TrimPrefix(strings.TrimPrefix(storageKey, "try/"), "v1/")
	s.forgetSymbols(key)
}

// SetLatency changes Options.Latency; call it before serving.
func (s *Server) SetLatency(d time.Duration) { s.opts.Latency = d }

// SetDiscardUploads changes Options.DiscardUploads; call it before serving.
func (s *Server) SetDiscardUploads(on bool) { s.opts.DiscardUploads = on }

// Counts returns how many requests each endpoint answered with each status.
func (s *Server) Counts() map[CountKey]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[CountKey]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Log returns the records of every request so far (Options.KeepLog).
func (s *Server) Log() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.log...)
}

// Start serves the emulator on addr (such as "127.0.0.1:0") and returns its
// base URL and a function that stops it.
func (s *Server) Start(addr string) (baseURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed on stop
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func endpointOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/storage/"):
		return "storage"
	case strings.HasPrefix(path, "/api/index/"), strings.HasPrefix(path, "/api/queue/"), strings.HasPrefix(path, "/tc-storage/"):
		return "taskcluster"
	case strings.HasPrefix(path, "/symbolicate/"):
		return "symbolicate"
	case strings.HasPrefix(path, "/upload/"):
		return "upload"
	case strings.HasPrefix(path, "/api/"):
		return "api"
	case strings.HasPrefix(path, "/__"):
		return "dockerflow"
	}
	return "download"
}

// ServeHTTP applies faults and the Auth-Token middleware, routes the
// request, and records the answer. The record is made when the status is
// written, before any byte reaches the client, so a client that has its
// answer can rely on the server's counts including it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Record{Endpoint: endpointOf(r.URL.Path), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	sw := &statusWriter{ResponseWriter: w, record: func(status int, h http.Header) {
		rec.Status, rec.DebugTime = status, h.Get("Debug-Time")
		s.record(rec)
	}}
	defer sw.ensureRecorded()

	if f, ok := s.fault(rec.Endpoint); ok {
		switch {
		case f.Drop:
			rec.Dropped, rec.Injected = true, true
			sw.recorded = true
			s.record(rec)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler) // closes the connection without a response
		case f.Status != 0:
			rec.Injected = true
			if f.RetryAfter != "" {
				sw.Header().Set("Retry-After", f.RetryAfter)
			}
			writeNginx(sw, f.Status)
			return
		case f.BodyRate > 0:
			rec.Injected = true
			sw.ResponseWriter = &slowWriter{ResponseWriter: w, rate: f.BodyRate, done: r.Context().Done()}
		case f.Stall > 0:
			// Read the body first: net/http only notices a client that
			// went away once the body has been consumed.
			if body, err := io.ReadAll(r.Body); err == nil {
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			t := time.NewTimer(f.Stall)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
	}
	if rec.Endpoint != "storage" && rec.Endpoint != "taskcluster" { // not Tecken
		if _, ok := s.authenticate(sw, r); !ok {
			return
		}
	}
	s.handler.ServeHTTP(sw, r)
}

func (s *Server) record(rec Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[CountKey{rec.Endpoint, rec.Status}]++
	if s.opts.KeepLog {
		s.log = append(s.log, rec)
	}
}

// fault decides under the lock whether a fault fires for this request.
func (s *Server) fault(endpoint string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.faults {
		f := &s.faults[i]
		if f.Endpoint != "" && f.Endpoint != endpoint {
			continue
		}
		if f.Limit > 0 && f.fired >= f.Limit {
			continue
		}
		f.seen++
		fire := (f.Every > 0 && f.seen%f.Every == 0) || (f.Rate > 0 && s.rng.Float64() < f.Rate)
		if fire {
			f.fired++
			return *f, true
		}
	}
	return Fault{}, false
}

// authenticate runs Tecken's Auth-Token middleware: a request without the
// header is anonymous; one with an unknown, expired or inactive token is
// answered with 403.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (tok Token, ok bool) {
	key := r.Header.Get("Auth-Token")
	if key == "" {
		return Token{}, true
	}
	t, found := s.opts.Tokens[key]
	switch {
	case !found:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "API Token not matched"})
	case t.Expired:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "API Token found but expired"})
	case t.Inactive:
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "API Token matched but user not active"})
	default:
		return t, true
	}
	return Token{}, false
}

func (s *Server) serveDockerflow(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__version__":
		writeJSON(w, http.StatusOK, map[string]string{"source": "teckenrun emulator", "version": "2019"})
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// statusWriter calls record once, with the status and headers, before
// the response is written.
type statusWriter struct {
	http.ResponseWriter
	record   func(status int, h http.Header)
	recorded bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.recorded {
		w.recorded = true
		w.record(code, w.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.recorded {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// ensureRecorded records a handler that wrote nothing (an implicit 200).
func (w *statusWriter) ensureRecorded() {
	if !w.recorded {
		w.WriteHeader(http.StatusOK)
	}
}

// slowWriter sends a body at a fixed rate, in small flushed chunks.
type slowWriter struct {
	http.ResponseWriter
	rate int64
	done <-chan struct{}
}

func (w *slowWriter) Write(p []byte) (int, error) {
	const chunk = 1024
	written := 0
	for written < len(p) {
		n := min(chunk, len(p)-written)
		k, err := w.ResponseWriter.Write(p[written : written+n])
		written += k
		if err != nil {
			return written, err
		}
		http.NewResponseController(w.ResponseWriter).Flush()
		t := time.NewTimer(time.Duration(float64(n) / float64(w.rate) * float64(time.Second)))
		select {
		case <-t.C:
		case <-w.done:
			t.Stop()
			return written, http.ErrAbortHandler
		}
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error": "Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// writeNginx answers like the infrastructure in front of Tecken does: an
// HTML body, not JSON.
func writeNginx(w http.ResponseWriter, status int) {
	title := http.StatusText(status)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	w.Write([]byte("<html>\r\n<head><title>" + itoa(status) + " " + title + "</title></head>\r\n<body>\r\n<center><h1>" +
		itoa(status) + " " + title + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
}
