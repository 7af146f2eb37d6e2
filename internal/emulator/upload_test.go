package emulator

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mozilla-services/teckenrun/internal/breakpad"
)

const (
	uploader  = "00000000000000000000000000000001"
	tryOnly   = "00000000000000000000000000000002"
	noPerms   = "00000000000000000000000000000003"
	otherUser = "00000000000000000000000000000004"
)

func uploadServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := New(Options{KeepLog: true, Tokens: map[string]Token{
		uploader:  {User: "a@example.com", Permissions: []string{PermUpload}},
		tryOnly:   {User: "a@example.com", Permissions: []string{PermUploadTry}},
		noPerms:   {User: "b@example.com"},
		otherUser: {User: "c@example.com", Permissions: []string{PermUpload, PermViewAll}},
	}})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func zipOf(t *testing.T, members map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, content := range members {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	zw.Close()
	return b.Bytes()
}

// postFile uploads data as a multipart file part named field.
func postFile(t *testing.T, target, token, field string, data []byte, extra map[string]string) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range extra {
		mw.WriteField(k, v)
	}
	if field != "" {
		w, _ := mw.CreateFormFile(field, "whatever.bin")
		w.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", target, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if token != "" {
		req.Header.Set("Auth-Token", token)
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%d %q is not JSON", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func TestUploadValidation(t *testing.T) {
	_, ts := uploadServer(t)
	good := zipOf(t, map[string]string{"xul.pdb/ABC1/xul.sym": "MODULE x"})
	tests := []struct {
		name, token, field string
		data               []byte
		extra              map[string]string
		status             int
		msg                string
	}{
		{"no token", "", "a.zip", good, nil, 403, "This requires an Auth-Token to authenticate the request"},
		{"bad token", "nope", "a.zip", good, nil, 403, "API Token not matched"},
		{"no permission", noPerms, "a.zip", good, nil, 403, "Forbidden"},
		{"no file, no url", uploader, "", nil, nil, 400, "Must be multipart form data with at least one file"},
		{"field name decides the extension", uploader, "a.rar", good, nil, 400, `Unrecognized archive file extension ".rar"`},
		{"no extension", uploader, "archive", good, nil, 400, `Unrecognized archive file extension ""`},
		{"not a zip", uploader, "a.zip", []byte("not a zip"), nil, 400, "File is not a zip file"},
		{"empty body", uploader, "a.zip", nil, nil, 400, "File is not a zip file"},
		{"disallowed snippet", uploader, "a.zip", zipOf(t, map[string]string{"qcom/proprietary/x/y": "1"}), nil, 400,
			"Content of archive file contains the snippet 'qcom/proprietary' which is not allowed"},
		{"invalid character", uploader, "a.zip", zipOf(t, map[string]string{"xpcfoo.dbg/A7D6F1BB18CD4CB48/p%eter.sym": "1"}), nil, 400,
			"Invalid character in filename 'xpcfoo.dbg/A7D6F1BB18CD4CB48/p%eter.sym'"},
		{"unrecognized pattern", uploader, "a.zip", zipOf(t, map[string]string{"xpcshell.sym": "1"}), nil, 400,
			"Unrecognized file pattern. Should only be <module>/<hex>/<file> or <name>-symbols.txt and nothing else. (First unrecognized pattern was xpcshell.sym)"},
		{"leading v1/", uploader, "a.zip", zipOf(t, map[string]string{"v1/xul.pdb/ABC1/xul.sym": "1"}), nil, 400,
			"(First unrecognized pattern was v1/xul.pdb/ABC1/xul.sym)"},
		{"non-hex id", uploader, "a.zip", zipOf(t, map[string]string{"xul.pdb/XYZ/xul.sym": "1"}), nil, 400, "Unrecognized file pattern"},
		{"bucket not allowed", uploader, "a.zip", good, map[string]string{"bucket_name": "elsewhere"}, 403, "No valid bucket"},
		{"by url: invalid", uploader, "", nil, map[string]string{"url": "not a url"}, 400, "Enter a valid URL."},
		{"by url: insecure", uploader, "", nil, map[string]string{"url": "http://queue.taskcluster.net/a.zip"}, 400, "Insecure URL"},
		{"by url: domain", uploader, "", nil, map[string]string{"url": "https://notwhitelisted.example.com/a.zip"}, 400,
			`Not an allowed domain ("notwhitelisted.example.com") to download from.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := postFile(t, ts.URL+"/upload/", tt.token, tt.field, tt.data, tt.extra)
			if status != tt.status || !strings.Contains(fmt.Sprint(out["error"]), tt.msg) {
				t.Errorf("%d %v, want %d %q", status, out, tt.status, tt.msg)
			}
		})
	}
	resp, _ := http.Get(ts.URL + "/upload/")
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /upload/: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestUploadStoresMembers(t *testing.T) {
	s, ts := uploadServer(t)
	m := breakpad.Synthesize(rand.New(rand.NewPCG(1, 1)), "up", "windows", 10)
	data := zipOf(t, map[string]string{m.Key(): string(m.Bytes()), "firefox-1.0-symbols.txt": "x", "a/.DS_Store": ""})
	// The file part comes first; the second file part is ignored.
	status, out := postFile(t, ts.URL+"/upload/", uploader, "symbols.zip", data, nil)
	if status != 201 {
		t.Fatalf("%d %v", status, out)
	}
	up := out["upload"].(map[string]any)
	if up["filename"] != "symbols.zip" || up["size"] != float64(len(data)) || up["completed_at"] != nil ||
		up["try_symbols"] != false || len(up["skipped_keys"].([]any)) != 0 || up["user"] != "a@example.com" {
		t.Errorf("201 body %v", up)
	}
	if !strings.HasSuffix(up["created_at"].(string), "Z") {
		t.Errorf("created_at %v", up["created_at"])
	}
	resp, err := noRedirect().Get(ts.URL + "/" + m.Key())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Errorf("uploaded member answered %d, want 302", resp.StatusCode)
	}
	// The same archive again: every member is skipped.
	postFile(t, ts.URL+"/upload/", uploader, "symbols.zip", data, nil)
	ups := s.Uploads()
	if len(ups) != 2 || len(ups[0].Files) != 1 || len(ups[1].Files) != 0 || len(ups[1].SkippedKeys) != 1 ||
		len(ups[0].IgnoredKeys) != 2 || !ups[0].Files[0].Compressed {
		t.Errorf("uploads %+v", ups)
	}
}

func TestTryUploads(t *testing.T) {
	_, ts := uploadServer(t)
	m := breakpad.Synthesize(rand.New(rand.NewPCG(2, 2)), "tryme", "linux", 5)
	data := zipOf(t, map[string]string{m.Key(): string(m.Bytes())})
	for _, tt := range []struct {
		token string
		extra map[string]string
		try   bool
	}{{uploader, map[string]string{"try": "1"}, true}, {uploader, map[string]string{"try": "0"}, true},
		{tryOnly, nil, true}, {tryOnly, map[string]string{"try": ""}, false}} {
		status, out := postFile(t, ts.URL+"/upload/", tt.token, "t.zip", data, tt.extra)
		if status != 201 || out["upload"].(map[string]any)["try_symbols"] != tt.try {
			t.Errorf("token %s, fields %v: %d %v, want try %v", tt.token, tt.extra, status, out, tt.try)
		}
	}
	_, ts = uploadServer(t)
	postFile(t, ts.URL+"/upload/", uploader, "t.zip", data, map[string]string{"try": "yes"})
	for path, want := range map[string]int{"/" + m.Key(): 404, "/try/" + m.Key(): 302, "/" + m.Key() + "?try": 302} {
		resp, _ := noRedirect().Get(ts.URL + path)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestUploadByURL(t *testing.T) {
	_, ts := uploadServer(t)
	m := breakpad.Synthesize(rand.New(rand.NewPCG(3, 3)), "byurl", "mac", 5)
	data := zipOf(t, map[string]string{m.Key(): string(m.Bytes())})
	var hops int
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect/a.zip":
			http.Redirect(w, r, "/files/a.zip", http.StatusFound)
		case "/loop.zip":
			hops++
			http.Redirect(w, r, "/loop.zip", http.StatusFound)
		case "/files/a.zip", "/a.zip":
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data)
		case "/broken.zip":
			w.WriteHeader(503)
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()
	form := func(u string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", ts.URL+"/upload/", strings.NewReader(url.Values{"url": {u}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Auth-Token", uploader)
		return doJSON(t, req)
	}
	status, out := form(files.URL + "/redirect/a.zip")
	if status != 201 {
		t.Fatalf("%d %v", status, out)
	}
	up := out["upload"].(map[string]any)
	if up["filename"] != "a.zip" || up["size"] != float64(len(data)) || up["download_url"] != files.URL+"/redirect/a.zip" ||
		fmt.Sprint(up["redirect_urls"]) != "["+files.URL+"/files/a.zip]" {
		t.Errorf("201 body %v", up)
	}
	for _, tt := range []struct{ path, msg string }{
		{"/missing.zip", files.URL + "/missing.zip can't be found (404)"},
		{"/loop.zip", "Too many redirects trying to open " + files.URL + "/loop.zip"},
		{"/broken.zip", files.URL + "/broken.zip errored (503)"},
	} {
		status, out := form(files.URL + tt.path)
		if out["error"] != tt.msg {
			t.Errorf("%s: %d %v, want %q", tt.path, status, out, tt.msg)
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if _, out := form(closed.URL + "/a.zip"); out["error"] != "ConnectionError trying to open "+closed.URL+"/a.zip" {
		t.Errorf("closed port: %v", out)
	}
}

func TestUploadsAPI(t *testing.T) {
	_, ts := uploadServer(t)
	for i := range 23 {
		m := breakpad.Synthesize(rand.New(rand.NewPCG(uint64(i), 9)), "api", "linux", 3)
		postFile(t, ts.URL+"/upload/", uploader, fmt.Sprintf("u%d.zip", i), zipOf(t, map[string]string{m.Key(): string(m.Bytes())}), nil)
	}
	get := func(path, token string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if token != "" {
			req.Header.Set("Auth-Token", token)
		}
		return doJSON(t, req)
	}
	status, out := get("/api/uploads/?page=2", uploader)
	if status != 200 || len(out["uploads"].([]any)) != 3 || out["total"] != 23.0 || out["batch_size"] != 20.0 {
		t.Fatalf("page 2: %d total %v, %d rows", status, out["total"], len(out["uploads"].([]any)))
	}
	if _, out := get("/api/uploads/?page=3", uploader); len(out["uploads"].([]any)) != 0 {
		t.Error("a page past the end is not empty")
	}
	if status, out := get("/api/uploads/?page=x", uploader); status != 400 || fmt.Sprint(out["errors"]) != "map[page:[Not a number 'x']]" {
		t.Errorf("page=x: %d %v", status, out)
	}
	if status, out := get("/api/uploads/", ""); status != 403 || out["error"] != "This requires an Auth-Token to authenticate the request" {
		t.Errorf("no token: %d %v", status, out)
	}
	if _, out := get("/api/uploads/", noPerms); out["total"] != 0.0 {
		t.Errorf("another user sees %v uploads", out["total"])
	}
	status, out = get("/api/uploads/upload/1", uploader)
	files := out["upload"].(map[string]any)["file_uploads"].([]any)
	if status != 200 || len(files) != 1 || files[0].(map[string]any)["completed_at"] == nil {
		t.Errorf("upload 1: %d %v", status, out)
	}
	if status, out := get("/api/uploads/upload/1", noPerms); status != 403 || out["error"] != "Insufficient access to view this upload" {
		t.Errorf("someone else's: %d %v", status, out)
	}
	if status, _ := get("/api/uploads/upload/1", otherUser); status != 200 {
		t.Errorf("view-all: %d", status)
	}
	if status, out := get("/api/uploads/upload/999", uploader); status != 404 || out["error"] != "No Upload matches the given query." {
		t.Errorf("unknown id: %d %v", status, out)
	}
}

func TestTaskClusterRoutes(t *testing.T) {
	s, ts := uploadServer(t)
	exp := time.Now().AddDate(1, 0, 0)
	for i := range 5 {
		s.AddBuild(fmt.Sprintf("gecko.v2.mozilla-central.revision.%02d", i), "linux64-opt", exp,
			[]TaskClusterArtifact{{Name: "public/build/target.crashreporter-symbols.zip", Expires: exp, Data: []byte("zipdata")}})
	}
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		resp, _ := http.Get(ts.URL + "/api/index/v1/namespaces/gecko.v2.mozilla-central.revision?limit=2&continuationToken=" + token)
		var out struct {
			Namespaces []struct{ Namespace string }
			Token      string `json:"continuationToken"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		for _, n := range out.Namespaces {
			names = append(names, n.Namespace)
		}
		if token = out.Token; token == "" {
			if pages != 2 {
				t.Errorf("%d pages of 2 for 5 namespaces", pages+1)
			}
			break
		}
	}
	if len(names) != 5 {
		t.Fatalf("namespaces %v", names)
	}
	resp, _ := http.Get(ts.URL + "/api/index/v1/tasks/" + names[0] + ".firefox")
	var tasks struct{ Tasks []struct{ TaskID string } }
	json.NewDecoder(resp.Body).Decode(&tasks)
	resp.Body.Close()
	if len(tasks.Tasks) != 1 {
		t.Fatalf("tasks %v", tasks)
	}
	art := ts.URL + "/api/queue/v1/task/" + tasks.Tasks[0].TaskID + "/artifacts/public/build/target.crashreporter-symbols.zip"
	resp, _ = noRedirect().Head(art)
	if resp.StatusCode != 303 {
		t.Fatalf("HEAD artifact: %d", resp.StatusCode)
	}
	resp, _ = http.Head(art)
	if resp.StatusCode != 200 || resp.ContentLength != 7 {
		t.Errorf("followed: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
}
