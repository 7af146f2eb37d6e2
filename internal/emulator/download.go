package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// legacyProducts are the product prefixes the 2019 download routes accept.
var legacyProducts = map[string]bool{"firefox": true, "seamonkey": true, "sunbird": true,
	"thunderbird": true, "xulrunner": true, "fennec": true, "b2g": true}

// downloadExtensions is DOWNLOAD_FILE_EXTENSIONS_WHITELIST (case-sensitive).
var downloadExtensions = []string{".sym", ".dl_", ".ex_", ".pd_", ".dbg.gz", ".tar.bz2"}

type missing struct{ debugFile, debugID, codeFile, codeID string }

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// invalidSymbolChars reports whether s holds a character Tecken 2019
// refuses in symbol + filename.
func invalidSymbolChars(s string) bool {
	for _, c := range s {
		if c <= 0x1f || (0x80 <= c && c <= 0xff) || strings.ContainsRune("\\^`><{}[]#%\"'~|", c) {
			return true
		}
	}
	return false
}

func debugOn(r *http.Request) bool {
	switch strings.ToLower(r.Header.Get("Debug")) {
	case "1", "true", "yes":
		return true
	}
	return false
}

func setCORS(h http.Header, methods string) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", "accept,accept-encoding,authorization,content-type,dnt,origin,user-agent,x-csrftoken,x-requested-with")
}

// pyFloat formats seconds the way Python's repr prints a float.
func pyFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if f >= 1e-4 && f < 1e16 {
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

// serveDownload implements GET/HEAD /{symbol}/{debugid}/{filename}, the
// /try/ and legacy-product forms, and /missingsymbols.csv (§1).
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/missingsymbols.csv":
		s.serveMissingCSV(w)
		return
	case path == "/" && r.Method == http.MethodPost:
		writeText(w, http.StatusGone, "See http://tecken.readthedocs.io/en/latest/symbolication.html")
		return
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	tryPath := false
	if len(segs) == 4 && segs[0] == "try" {
		tryPath, segs = true, segs[1:]
	} else if len(segs) == 4 && legacyProducts[segs[0]] {
		segs = segs[1:]
	}
	if len(segs) != 3 || segs[0] == "" || segs[2] == "" || !isHex(segs[1]) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": path})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("Method Not Allowed (%s): %s", r.Method, path)})
		return
	}
	setCORS(w.Header(), "GET")
	symbol, debugID, filename := segs[0], segs[1], segs[2]
	debug := debugOn(r)

	if ignored(debugID, filename) {
		if debug {
			w.Header().Set("Debug-Time", "0")
		}
		writeText(w, http.StatusNotFound, "Symbol Not Found (and ignored)")
		return
	}
	if invalidSymbolChars(symbol + filename) {
		if debug {
			w.Header().Set("Debug-Time", "0")
		}
		writeText(w, http.StatusBadRequest, "Symbol name lookup contains invalid characters and will never be found.")
		return
	}
	query := r.URL.Query()
	_, tryQuery := query["try"]
	_, refresh := query["_refresh"]
	key := "v1/" + symbol + "/" + strings.ToUpper(debugID) + "/" + filename

	start := time.Now()
	found := s.lookup(key, refresh)
	if !found && (tryPath || tryQuery) {
		key = "try/" + key
		found = s.lookup(key, refresh)
	}
	took := time.Since(start).Seconds()

	if found {
		if debug {
			w.Header().Set("Debug-Time", pyFloat(took))
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Location", "http://"+r.Host+"/storage/"+key)
		w.WriteHeader(http.StatusFound)
		return
	}
	if r.Method == http.MethodGet {
		codeFile, codeID := query.Get("code_file"), query.Get("code_id")
		for _, f := range []struct{ name, v string }{{"code_file", codeFile}, {"code_id", codeID}} {
			if strings.ContainsRune(f.v, 0) {
				writeText(w, http.StatusBadRequest, f.name+": Null characters are not allowed.")
				return
			}
		}
		if strings.HasSuffix(symbol, ".pdb") && strings.HasSuffix(filename, ".sym") {
			s.mu.Lock()
			s.misses[missing{symbol, debugID, codeFile, codeID}] = true
			s.mu.Unlock()
		}
	}
	if debug {
		w.Header().Set("Debug-Time", pyFloat(took))
	}
	writeText(w, http.StatusNotFound, "Symbol Not Found")
}

func ignored(debugID, filename string) bool {
	if filename == "file.ptr" || debugID == strings.Repeat("0", 33) {
		return true
	}
	for _, ext := range downloadExtensions {
		if strings.HasSuffix(filename, ext) {
			return false
		}
	}
	return true
}

// lookup answers whether storageKey exists, through the existence cache.
// An uncached lookup costs Options.Latency.
func (s *Server) lookup(storageKey string, refresh bool) bool {
	s.mu.Lock()
	found, cached := s.exists[storageKey]
	s.mu.Unlock()
	if cached && !refresh {
		return found
	}
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, found = s.store[storageKey]
	s.exists[storageKey] = found
	return found
}

// serveStorage is the bucket the download redirects point at:
// /storage/v1/<key> and /storage/try/v1/<key>.
func (s *Server) serveStorage(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/storage/")
	s.mu.Lock()
	data, ok := s.store[key]
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Key>%s</Key></Error>", key)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(data)
}

func (s *Server) serveMissingCSV(w http.ResponseWriter) {
	s.mu.Lock()
	lines := make([]string, 0, len(s.misses))
	for m := range s.misses {
		lines = append(lines, m.debugFile+","+m.debugID+","+m.codeFile+","+m.codeID+"\n")
	}
	s.mu.Unlock() // writing records the response, which takes the lock
	slices.Sort(lines)
	w.Header().Set("Content-Type", "text/csv")
	w.Header().Set("Content-Disposition", `attachment; filename="missing-symbols-`+time.Now().UTC().Format("2006-01-02")+`.csv"`)
	w.Write([]byte("debug_file,debug_id,code_file,code_id\n" + strings.Join(lines, "")))
}
