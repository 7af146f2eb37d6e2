package emulator

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// apiBatchSize is API_UPLOADS_BATCH_SIZE.
const apiBatchSize = 20

// serveAPI implements GET /api/uploads/ and /api/uploads/upload/{id} (§3).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/uploads/" && !strings.HasPrefix(r.URL.Path, "/api/uploads/upload/") {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": r.URL.Path})
		return
	}
	var id int
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/uploads/upload/"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": r.URL.Path})
			return
		}
		id = n
	}
	tok, ok := s.requireToken(w, r)
	if !ok {
		return
	}
	viewAll := tok.has(PermViewAll)
	s.mu.Lock()
	uploads := append([]Upload(nil), s.uploads...)
	s.mu.Unlock()
	if r.URL.Path != "/api/uploads/" {
		i := slices.IndexFunc(uploads, func(u Upload) bool { return u.ID == id })
		switch {
		case i < 0:
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "No Upload matches the given query."})
		case !viewAll && uploads[i].User != tok.User:
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "Insufficient access to view this upload"})
		default:
			u := uploadJSON(uploads[i])
			u["user"] = map[string]any{"id": 1, "email": uploads[i].User}
			files := []map[string]any{}
			for _, f := range uploads[i].Files {
				files = append(files, map[string]any{"id": f.ID, "bucket_name": publicBucket, "key": f.Key, "update": f.Update,
					"compressed": f.Compressed, "size": f.Size, "microsoft_download": false,
					"created_at": tsJSON(f.CreatedAt), "completed_at": tsJSON(f.CompletedAt)})
			}
			u["file_uploads"] = files
			u["related"] = []any{}
			delete(u, "files_count")
			delete(u, "files_incomplete_count")
			writeJSON(w, http.StatusOK, map[string]any{"upload": u})
		}
		return
	}
	q := r.URL.Query()
	page := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]any{"page": []string{"Not a number '" + v + "'"}}})
			return
		}
		page = max(n, 1)
	}
	sortBy := q.Get("sort")
	switch sortBy {
	case "":
		sortBy = "created_at"
	case "created_at", "size":
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": map[string]any{"sort": []string{"Invalid sort '" + sortBy + "'"}}})
		return
	}
	reverse := q.Get("reverse") != "false"
	var visible []Upload
	for _, u := range uploads {
		if viewAll || u.User == tok.User {
			visible = append(visible, u)
		}
	}
	slices.SortStableFunc(visible, func(a, b Upload) int {
		c := a.CreatedAt.Compare(b.CreatedAt)
		if sortBy == "size" {
			c = cmp.Compare(a.Size, b.Size)
		}
		if reverse {
			return -c
		}
		return c
	})
	var sum, skipped, files int64
	for _, u := range visible {
		sum += u.Size
		skipped += int64(len(u.SkippedKeys))
		files += int64(len(u.Files))
	}
	var avg any
	if len(visible) > 0 {
		avg = float64(sum) / float64(len(visible))
	}
	rows := []map[string]any{}
	for i := (page - 1) * apiBatchSize; i < min(page*apiBatchSize, len(visible)); i++ {
		rows = append(rows, uploadJSON(visible[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"uploads":      rows,
		"can_view_all": viewAll,
		"aggregates": map[string]any{
			"uploads": map[string]any{"count": len(visible), "size": map[string]any{"average": avg, "sum": sum}, "skipped": map[string]any{"sum": skipped}},
			"files":   map[string]any{"count": files},
		},
		"total":      len(visible),
		"batch_size": apiBatchSize,
		"order_by":   map[string]any{"sort": sortBy, "reverse": reverse},
	})
}

func uploadJSON(u Upload) map[string]any {
	incomplete := 0
	for _, f := range u.Files {
		if f.CompletedAt.IsZero() {
			incomplete++
		}
	}
	var downloadURL any
	if u.DownloadURL != "" {
		downloadURL = u.DownloadURL
	}
	return map[string]any{
		"id": u.ID, "user": map[string]any{"email": u.User}, "filename": u.Filename, "size": u.Size,
		"bucket_name": publicBucket, "bucket_region": bucketRegion, "bucket_endpoint_url": nil,
		"skipped_keys": nonNil(u.SkippedKeys), "ignored_keys": nonNil(u.IgnoredKeys), "try_symbols": u.Try,
		"download_url": downloadURL, "redirect_urls": nonNil(u.RedirectURLs),
		"completed_at": tsJSON(u.CompletedAt), "created_at": tsJSON(u.CreatedAt),
		"files_count": len(u.Files) - incomplete, "files_incomplete_count": incomplete,
	}
}
