package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// AddUpload adds an upload to the emulator's history as if it had been
// received, with its own timestamps (and its files'), so that tests know
// what /api/uploads answers. It returns the upload's id; file uploads get
// ids too. An upload or file upload whose CompletedAt is zero did not
// complete.
func (s *Server) AddUpload(u Upload) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	u.ID = len(s.uploads) + 1
	u.Files = append([]FileUpload(nil), u.Files...)
	for i := range u.Files {
		s.fileUploads++
		u.Files[i].ID = s.fileUploads
	}
	s.uploads = append(s.uploads, u)
	return u.ID
}

// MirrorTo makes every symbol file that an upload stores also land in the
// public bucket of b, as Tecken writes uploads to its S3 bucket: a
// make-zips step reading that bucket then finds what was uploaded. Call
// it before serving.
func (s *Server) MirrorTo(b *S3) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucket = b
}

// mirror puts a stored member into the mirror bucket, if there is one.
// Try uploads are not mirrored: they are not in the public bucket.
func (s *Server) mirror(key string, data []byte) {
	s.mu.Lock()
	b := s.bucket
	s.mu.Unlock()
	if b == nil || data == nil || !strings.HasPrefix(key, "v1/") {
		return
	}
	b.Put(publicBucket, key, data) // the in-memory backend does not fail
}

// serveUploadedSymbols implements crash-stats' GET /api/UploadedSymbols/
// (§5.1) from the uploads the emulator received: one hit per upload that
// is not a try upload, created from start_date to end_date (inclusive,
// UTC), its stored files as added and the files it skipped as existed.
// It needs a token with the view-all permission.
func (s *Server) serveUploadedSymbols(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/UploadedSymbols/" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": r.URL.Path})
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "Method Not Allowed (" + r.Method + "): " + r.URL.Path})
		return
	}
	tok, ok := s.requireToken(w, r)
	if !ok {
		return
	}
	if !tok.has(PermViewAll) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "Insufficient permissions: View all Symbol Uploads"})
		return
	}
	errs := map[string][]string{}
	day := func(name string) time.Time {
		v := r.URL.Query().Get(name)
		if v == "" {
			errs[name] = []string{"This field is required."}
			return time.Time{}
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			errs[name] = []string{"Enter a valid date."}
		}
		return t
	}
	start, end := day("start_date"), day("end_date")
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": errs})
		return
	}
	end = end.AddDate(0, 0, 1)
	hits := []uploadedHit{}
	for _, u := range s.Uploads() {
		if u.Try || u.CreatedAt.Before(start) || !u.CreatedAt.Before(end) {
			continue
		}
		h := uploadedHit{Content: uploadedContent{Added: []string{}, Existed: []string{}}, User: u.User, ContentType: "text/plain",
			ID: u.ID, Size: u.Size, Date: u.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000+00:00"), Filename: u.Filename}
		for _, f := range u.Files {
			h.Content.Added = append(h.Content.Added, publicBucket+","+f.Key)
		}
		for _, k := range u.SkippedKeys {
			h.Content.Existed = append(h.Content.Existed, publicBucket+","+k)
		}
		hits = append(hits, h)
	}
	writeJSON(w, http.StatusOK, map[string]any{"hits": hits, "total": len(hits)})
}

// uploadedHit is one upload as the UploadedSymbols API lists it.
type uploadedHit struct {
	Content     uploadedContent `json:"content"`
	User        string          `json:"user"`
	ContentType string          `json:"content_type"`
	ID          int             `json:"id"`
	Size        int64           `json:"size"`
	Date        string          `json:"date"`
	Filename    string          `json:"filename"`
}

// uploadedContent lists an upload's files as "bucket,key".
type uploadedContent struct {
	Added   []string `json:"added"`
	Existed []string `json:"existed"`
}

// addEmbeddedHistory gives the embedded emulator the uploads of
// EmbeddedRecords as its past: one a day over the last days, with the
// added files stored one after the other and the existed ones skipped. A
// plan can then fetch their records, rebuild their zips from the embedded
// S3 (which holds their files) and analyse their timings.
func addEmbeddedHistory(s *Server) {
	raw, _ := EmbeddedRecords()
	var rec struct {
		Hits []uploadedHit `json:"hits"`
	}
	json.Unmarshal(raw, &rec) // EmbeddedRecords' own JSON always decodes
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i, h := range rec.Hits {
		u := Upload{User: h.User, Filename: h.Filename, Size: h.Size,
			CreatedAt: today.AddDate(0, 0, i-len(rec.Hits)).Add(time.Duration(9+i) * time.Hour)}
		at := u.CreatedAt.Add(200 * time.Millisecond)
		for j, entry := range h.Content.Added {
			_, key, _ := strings.Cut(entry, ",")
			took := time.Duration(150+100*j) * time.Millisecond
			u.Files = append(u.Files, FileUpload{Key: key, Compressed: strings.HasSuffix(key, ".sym"), CreatedAt: at, CompletedAt: at.Add(took)})
			at = at.Add(took / 2) // the next one starts while this one is stored
		}
		for _, entry := range h.Content.Existed {
			_, key, _ := strings.Cut(entry, ",")
			u.SkippedKeys = append(u.SkippedKeys, key)
		}
		u.CompletedAt = at.Add(time.Second)
		s.AddUpload(u)
	}
}
