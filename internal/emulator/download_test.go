package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	testKey   = "xul.pdb/44E4EC8C2F41492B9369D6B9A059577C2/xul.sym"
	testToken = "0123456789abcdef0123456789abcdef"
)

func newTestServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.Tokens == nil {
		opts.Tokens = map[string]Token{testToken: {User: "u@example.com", Permissions: []string{PermUpload}},
			"expired0000000000000000000000000": {Expired: true}, "inactive000000000000000000000000": {Inactive: true}}
	}
	opts.KeepLog = true
	s := New(opts)
	s.Put(testKey, []byte("MODULE windows x86_64 44E4EC8C2F41492B9369D6B9A059577C2 xul.pdb\n"))
	s.PutTry("try.pdb/ABCDEF0123456789ABCDEF01234567891/try.sym", []byte("MODULE windows x86 ABCDEF0123456789ABCDEF01234567891 try.pdb\n"))
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestDownloadAPI(t *testing.T) {
	_, ts := newTestServer(t, Options{})
	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		status      int
		body        string // substring; "" = not checked
		debugTime   string // "*" = any value present, "" = absent
		location    string // suffix
		contentType string
		cors        bool
	}{
		{name: "found GET redirects to storage", method: "GET", path: "/" + testKey, header: map[string]string{"Debug": "true"},
			status: 302, debugTime: "*", location: "/storage/v1/" + testKey, cors: true},
		{name: "lower-case id is upper-cased", method: "GET", path: "/xul.pdb/44e4ec8c2f41492b9369d6b9a059577c2/xul.sym",
			status: 302, location: "/storage/v1/" + testKey, cors: true},
		{name: "found HEAD is 200 without Location", method: "HEAD", path: "/" + testKey, header: map[string]string{"Debug": "1"},
			status: 200, debugTime: "*", cors: true},
		{name: "legacy product prefix", method: "GET", path: "/firefox/" + testKey, status: 302, location: "/storage/v1/" + testKey},
		{name: "missing", method: "GET", path: "/nope.pdb/ABCDEF/nope.sym", header: map[string]string{"Debug": "yes"},
			status: 404, body: "Symbol Not Found", debugTime: "*", contentType: "text/html; charset=utf-8", cors: true},
		{name: "no Debug header, no Debug-Time", method: "GET", path: "/nope.pdb/ABCDEF/nope.sym", status: 404, debugTime: ""},
		{name: "Debug false", method: "GET", path: "/nope.pdb/ABCDEF/nope.sym", header: map[string]string{"Debug": "false"}, status: 404, debugTime: ""},
		{name: "file.ptr is ignored", method: "GET", path: "/xul.pdb/ABCDEF/file.ptr", header: map[string]string{"Debug": "true"},
			status: 404, body: "Symbol Not Found (and ignored)", debugTime: "0"},
		{name: "extension not whitelisted", method: "GET", path: "/xul.pdb/ABCDEF/xul.exe", header: map[string]string{"Debug": "true"},
			status: 404, body: "(and ignored)", debugTime: "0"},
		{name: "extension check is case-sensitive", method: "GET", path: "/XUL.PDB/ABCDEF/XUL.SYM", header: map[string]string{"Debug": "true"},
			status: 404, body: "(and ignored)", debugTime: "0"},
		{name: "all-zero id is ignored", method: "GET", path: "/xul.pdb/" + strings.Repeat("0", 33) + "/xul.sym", header: map[string]string{"Debug": "true"},
			status: 404, body: "(and ignored)", debugTime: "0"},
		{name: "bad characters", method: "GET", path: "/x%7Eul.pdb/ABCDEF/xul.sym", header: map[string]string{"Debug": "true"},
			status: 400, body: "Symbol name lookup contains invalid characters and will never be found.", debugTime: "0"},
		{name: "ignore check runs before bad characters", method: "GET", path: "/x%7Eul.pdb/ABCDEF/xul.txt",
			status: 404, body: "(and ignored)"},
		{name: "spaces are allowed", method: "GET", path: "/space%20in%20the%20filename.pdb/ABCDEF/x.sym", status: 404, body: "Symbol Not Found"},
		{name: "non-hex id does not route", method: "GET", path: "/xul.pdb/XYZ/xul.sym",
			status: 404, body: `"path":"/xul.pdb/XYZ/xul.sym"`, contentType: "application/json"},
		{name: "method not allowed", method: "PUT", path: "/" + testKey, status: 405,
			body: `Method Not Allowed (PUT): /` + testKey, contentType: "application/json"},
		{name: "try storage is not searched by default", method: "GET", path: "/try.pdb/ABCDEF0123456789ABCDEF01234567891/try.sym", status: 404},
		{name: "try path", method: "GET", path: "/try/try.pdb/ABCDEF0123456789ABCDEF01234567891/try.sym", status: 302,
			location: "/storage/try/v1/try.pdb/ABCDEF0123456789ABCDEF01234567891/try.sym"},
		{name: "try query by presence, even try=0", method: "GET", path: "/try.pdb/ABCDEF0123456789ABCDEF01234567891/try.sym?try=0", status: 302},
		{name: "try still finds regular storage first", method: "GET", path: "/try/" + testKey, status: 302, location: "/storage/v1/" + testKey},
		{name: "NUL in code_file", method: "GET", path: "/nope.pdb/ABCDEF/nope.sym?code_file=a%00b", header: map[string]string{"Debug": "true"},
			status: 400, body: "code_file: Null characters are not allowed.", debugTime: ""},
		{name: "NUL in code_id", method: "GET", path: "/nope.pdb/ABCDEF/nope.sym?code_id=%00", status: 400, body: "code_id: Null characters are not allowed."},
		{name: "HEAD does not validate code_file", method: "HEAD", path: "/nope.pdb/ABCDEF/nope.sym?code_file=a%00b", status: 404},
		{name: "found ignores code_file", method: "GET", path: "/" + testKey + "?code_file=a%00b", status: 302},
		{name: "unknown token", method: "GET", path: "/" + testKey, header: map[string]string{"Auth-Token": "bad"},
			status: 403, body: `{"error":"API Token not matched"}`},
		{name: "expired token", method: "GET", path: "/" + testKey, header: map[string]string{"Auth-Token": "expired0000000000000000000000000"},
			status: 403, body: "API Token found but expired"},
		{name: "inactive user", method: "GET", path: "/" + testKey, header: map[string]string{"Auth-Token": "inactive000000000000000000000000"},
			status: 403, body: "API Token matched but user not active"},
		{name: "valid token", method: "GET", path: "/" + testKey, header: map[string]string{"Auth-Token": testToken}, status: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := noRedirect().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && !strings.Contains(string(body), tt.body) {
				t.Errorf("body %q, want it to contain %q", body, tt.body)
			}
			dt, hasDT := resp.Header["Debug-Time"]
			switch tt.debugTime {
			case "":
				if hasDT {
					t.Errorf("Debug-Time %q, want none", dt)
				}
			case "*":
				if !hasDT || dt[0] == "0" {
					t.Errorf("Debug-Time %q, want a lookup time", dt)
				}
			default:
				if !hasDT || dt[0] != tt.debugTime {
					t.Errorf("Debug-Time %q, want %q", dt, tt.debugTime)
				}
			}
			loc := resp.Header.Get("Location")
			if tt.location != "" && (!strings.HasPrefix(loc, ts.URL+"/") || !strings.HasSuffix(loc, tt.location)) {
				t.Errorf("Location %q, want %s...%s", loc, ts.URL, tt.location)
			}
			if tt.location == "" && tt.status != 302 && loc != "" {
				t.Errorf("Location %q, want none", loc)
			}
			if tt.contentType != "" && resp.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.contentType)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin") == "*"; tt.cors && !got {
				t.Error("no CORS headers")
			}
			if tt.status == 405 {
				if resp.Header.Get("Allow") != "GET, HEAD" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
					t.Errorf("405 headers: Allow %q, CORS %q", resp.Header.Get("Allow"), resp.Header.Get("Access-Control-Allow-Origin"))
				}
			}
		})
	}
}

func TestRedirectServesTheStoredBytes(t *testing.T) {
	_, ts := newTestServer(t, Options{})
	resp, err := http.Get(ts.URL + "/" + testKey) // follows the 302
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "MODULE windows x86_64 44E4EC8C") {
		t.Fatalf("storage answered %d %q", resp.StatusCode, body)
	}
}

func TestMissingSymbolsCSV(t *testing.T) {
	_, ts := newTestServer(t, Options{})
	for _, p := range []string{"/a.pdb/ABC/a.sym?code_file=a.dll&code_id=5D", "/a.pdb/ABC/a.sym?code_file=a.dll&code_id=5D", "/b.so/ABC/b.so.sym"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(ts.URL + "/missingsymbols.csv")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "debug_file,debug_id,code_file,code_id\na.pdb,ABC,a.dll,5D\n"; string(body) != want {
		t.Errorf("missingsymbols.csv = %q, want %q", body, want)
	}
}

func TestFaultsAndCounts(t *testing.T) {
	s, ts := newTestServer(t, Options{Faults: []Fault{
		{Endpoint: "download", Every: 3, Status: 502},
		{Endpoint: "download", Every: 5, Drop: true, Limit: 1},
		{Endpoint: "download", Every: 7, Status: 429, RetryAfter: "2", Limit: 1},
	}})
	statuses := map[int]int{}
	drops := 0
	// A new connection per request: net/http silently replays a GET that
	// fails on a reused one, which would hide the drop from this count.
	client := noRedirect()
	client.Transport = &http.Transport{DisableKeepAlives: true}
	for range 12 {
		resp, err := client.Get(ts.URL + "/" + testKey)
		if err != nil {
			drops++
			continue
		}
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "2" {
			t.Errorf("429 without Retry-After: %v", resp.Header)
		}
		if resp.StatusCode == 502 {
			b, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(b), "<h1>502 Bad Gateway</h1>") {
				t.Errorf("502 body %q is not nginx's", b)
			}
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	// Faults are tried in order, each counting the requests it sees.
	want := map[int]int{502: 4, 429: 1, 302: 6}
	for status, n := range want {
		if statuses[status] != n {
			t.Errorf("got %d × %d, want %d (all: %v)", statuses[status], status, n, statuses)
		}
	}
	if drops != 1 {
		t.Errorf("dropped %d connections, want 1", drops)
	}
	counts := s.Counts()
	for status, n := range statuses {
		if counts[CountKey{"download", status}] != n {
			t.Errorf("server counted %d × %d, client saw %d", counts[CountKey{"download", status}], status, n)
		}
	}
	if counts[CountKey{"download", 0}] != drops {
		t.Errorf("server counted %d drops, client saw %d", counts[CountKey{"download", 0}], drops)
	}
}

func TestDockerflow(t *testing.T) {
	_, ts := newTestServer(t, Options{})
	resp, err := http.Get(ts.URL + "/__version__")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("__version__: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

func TestSlowBody(t *testing.T) {
	s := New(Options{Faults: []Fault{{Endpoint: "storage", Every: 1, BodyRate: 20 << 10}}})
	data := bytes.Repeat([]byte("x"), 10<<10)
	s.Put(testKey, data)
	ts := httptest.NewServer(s)
	defer ts.Close()
	start := time.Now()
	resp, err := http.Get(ts.URL + "/storage/v1/" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("read %d bytes: %v", len(body), err)
	}
	// 10 KiB at 20 KiB/s cannot arrive in less than half a second.
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Errorf("the body took %v", took)
	}
}
