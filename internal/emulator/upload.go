package emulator

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

const (
	publicBucket = "org.mozilla.crash-stats.symbols-public"
	bucketRegion = "us-west-2"
	// maxUploadSize is where 2019's PositiveIntegerField overflowed.
	maxUploadSize = 1 << 31
)

// Upload is one upload the emulator accepted, as /api/uploads shows it.
type Upload struct {
	ID           int
	User         string
	Filename     string
	Size         int64
	Try          bool
	DownloadURL  string
	RedirectURLs []string
	SkippedKeys  []string
	IgnoredKeys  []string
	CreatedAt    time.Time
	CompletedAt  time.Time
	Files        []FileUpload
}

// FileUpload is one member written to storage.
type FileUpload struct {
	ID          int
	Key         string // the storage key, v1/... or try/v1/...
	Update      bool
	Compressed  bool
	Size        int64 // bytes stored: gzip-compressed for .sym
	CreatedAt   time.Time
	CompletedAt time.Time
}

// stored is what storage remembers of an object besides its bytes.
type stored struct {
	size int64 // original size
	md5  [md5.Size]byte
}

// Uploads returns the uploads accepted so far, oldest first.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Upload(nil), s.uploads...)
}

type uploadError struct {
	status int
	msg    string
}

func (e *uploadError) Error() string { return e.msg }

func uploadErrorf(status int, format string, args ...any) *uploadError {
	return &uploadError{status, fmt.Sprintf(format, args...)}
}

// serveUpload implements POST /upload/ (§2).
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/upload/" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not Found", "path": r.URL.Path})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("Method Not Allowed (%s): %s", r.Method, r.URL.Path)})
		return
	}
	tok, ok := s.requireToken(w, r)
	if !ok {
		return
	}
	if !tok.has(PermUpload) && !tok.has(PermUploadTry) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "Forbidden"})
		return
	}
	up, err := s.receiveUpload(r, tok)
	if err != nil {
		var ue *uploadError
		if !errors.As(err, &ue) {
			ue = &uploadError{http.StatusInternalServerError, "Internal Server Error"}
		}
		writeJSON(w, ue.status, map[string]string{"error": ue.msg})
		return
	}
	var downloadURL any
	if up.DownloadURL != "" {
		downloadURL = up.DownloadURL
	}
	// 2019 serialized the object before the completion and skipped keys
	// were saved: completed_at is always null and skipped_keys empty.
	writeJSON(w, http.StatusCreated, map[string]any{"upload": map[string]any{
		"id": up.ID, "size": up.Size, "filename": up.Filename, "bucket": publicBucket, "region": bucketRegion,
		"download_url": downloadURL, "try_symbols": up.Try, "redirect_urls": nonNil(up.RedirectURLs),
		"completed_at": nil, "created_at": tsJSON(up.CreatedAt), "user": up.User, "skipped_keys": []string{},
	}})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// tsJSON formats a time as Django's JSON encoder did: milliseconds, Z.
func tsJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	if t.Nanosecond()/int(time.Microsecond) == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

// requireToken answers 403 unless the request carried a valid token (the
// middleware already refused bad ones).
func (s *Server) requireToken(w http.ResponseWriter, r *http.Request) (Token, bool) {
	key := r.Header.Get("Auth-Token")
	if key == "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "This requires an Auth-Token to authenticate the request"})
		return Token{}, false
	}
	return s.opts.Tokens[key], true
}

// receiveUpload reads the form, stores the archive in a temporary file,
// validates it and writes its members to storage.
func (s *Server) receiveUpload(r *http.Request, tok Token) (*Upload, error) {
	created := time.Now()
	fields := map[string]string{}
	var archive *os.File
	var name string
	defer func() {
		if archive != nil {
			archive.Close()
			os.Remove(archive.Name())
		}
	}()
	var size, zipLen int64 // the upload's size, and the archive's bytes on disk
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ctype {
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, uploadErrorf(http.StatusBadRequest, "%v", err)
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, uploadErrorf(http.StatusBadRequest, "%v", err)
			}
			if part.FileName() == "" {
				v, _ := io.ReadAll(io.LimitReader(part, 2621440))
				fields[part.FormName()] = string(v)
				continue
			}
			if archive != nil { // only the first file counts
				io.Copy(io.Discard, part)
				continue
			}
			name = part.FormName()
			if archive, err = os.CreateTemp("", "emulator-upload-*.zip"); err != nil {
				return nil, err
			}
			if size, err = io.Copy(archive, part); err != nil {
				return nil, uploadErrorf(http.StatusBadRequest, "%v", err)
			}
			zipLen = size
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, uploadErrorf(http.StatusBadRequest, "%v", err)
		}
		for k := range r.PostForm {
			fields[k] = r.PostForm.Get(k)
		}
	}
	if b := fields["bucket_name"]; b != "" && b != publicBucket {
		return nil, uploadErrorf(http.StatusForbidden, "No valid bucket")
	}
	try, hasTry := fields["try"]
	up := &Upload{User: tok.User, CreatedAt: created, Try: try != "" || (!hasTry && !tok.has(PermUpload))}
	if archive == nil {
		if fields["url"] == "" {
			return nil, uploadErrorf(http.StatusBadRequest, "Must be multipart form data with at least one file")
		}
		var err error
		if archive, zipLen, size, err = s.fetchArchive(fields["url"], up); err != nil {
			return nil, err
		}
		up.DownloadURL = fields["url"]
		name = path.Base(strings.SplitN(strings.SplitN(fields["url"], "?", 2)[0], "#", 2)[0])
	}
	if ext := strings.ToLower(path.Ext(name)); ext != ".zip" {
		return nil, uploadErrorf(http.StatusBadRequest, "Unrecognized archive file extension %q", path.Ext(name))
	}
	up.Filename, up.Size = name, size
	if size >= maxUploadSize {
		// Upload.size was a 32-bit column in 2019: the row cannot be written.
		return nil, uploadErrorf(http.StatusInternalServerError, "Internal Server Error")
	}
	if err := s.storeArchive(archive, zipLen, up); err != nil {
		return nil, err
	}
	return up, nil
}

// storeArchive validates the zip (§2.4) and writes its members (§2.6).
func (s *Server) storeArchive(f *os.File, size int64, up *Upload) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return uploadErrorf(http.StatusBadRequest, "File is not a zip file")
	}
	sizes := map[string]uint64{}
	var members []*zip.File
	for _, m := range zr.File {
		if strings.HasSuffix(m.Name, "/") {
			continue
		}
		if prev, dup := sizes[m.Name]; dup {
			if prev != m.UncompressedSize64 {
				return uploadErrorf(http.StatusBadRequest, "The zipfile buffer contains two files both called %s and they have difference sizes (%d != %d)", m.Name, prev, m.UncompressedSize64)
			}
			continue
		}
		sizes[m.Name] = m.UncompressedSize64
		if strings.Contains(m.Name, "qcom/proprietary") {
			return uploadErrorf(http.StatusBadRequest, "Content of archive file contains the snippet 'qcom/proprietary' which is not allowed")
		}
		parts := strings.Split(m.Name, "/")
		switch {
		case parts[len(parts)-1] == ".DS_Store":
			up.IgnoredKeys = append(up.IgnoredKeys, m.Name)
		case len(parts) == 3 && (parts[1] == "" || isHex(parts[1])):
			if invalidSymbolChars(parts[0] + parts[2]) {
				return uploadErrorf(http.StatusBadRequest, "Invalid character in filename '%s'", m.Name)
			}
			members = append(members, m)
		case len(parts) == 1 && strings.HasSuffix(strings.ToLower(m.Name), "-symbols.txt"):
			up.IgnoredKeys = append(up.IgnoredKeys, m.Name)
		default:
			return uploadErrorf(http.StatusBadRequest, "Unrecognized file pattern. Should only be <module>/<hex>/<file> or <name>-symbols.txt and nothing else. (First unrecognized pattern was %s)", m.Name)
		}
	}
	prefix := "v1/"
	if up.Try {
		prefix = "try/v1/"
	}
	for _, m := range members {
		if err := s.storeMember(m, prefix, up); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	up.ID = len(s.uploads) + 1
	up.CompletedAt = time.Now()
	s.uploads = append(s.uploads, *up)
	return nil
}

func (s *Server) storeMember(m *zip.File, prefix string, up *Upload) error {
	rc, err := m.Open()
	if err != nil {
		return uploadErrorf(http.StatusBadRequest, "File is not a zip file")
	}
	defer rc.Close()
	var data []byte
	var sum [md5.Size]byte
	if s.opts.DiscardUploads {
		h := md5.New()
		if _, err := io.Copy(h, rc); err != nil {
			return uploadErrorf(http.StatusBadRequest, "File is not a zip file")
		}
		copy(sum[:], h.Sum(nil))
	} else {
		if data, err = io.ReadAll(rc); err != nil {
			return uploadErrorf(http.StatusBadRequest, "File is not a zip file")
		}
		sum = md5.Sum(data)
	}
	key := prefix + m.Name
	isSym := strings.HasSuffix(m.Name, ".sym")
	s.mu.Lock()
	prev, exists := s.meta[key]
	s.mu.Unlock()
	if exists && prev.size == int64(m.UncompressedSize64) && (!isSym || prev.md5 == sum) {
		up.SkippedKeys = append(up.SkippedKeys, key)
		return nil
	}
	fu := FileUpload{Key: key, Update: exists, Compressed: isSym, Size: int64(m.UncompressedSize64), CreatedAt: time.Now()}
	if isSym && data != nil {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed) // a valid level never fails
		zw.Write(data)
		zw.Close()
		fu.Size = int64(gz.Len())
	}
	s.mu.Lock()
	s.meta[key] = stored{size: int64(m.UncompressedSize64), md5: sum}
	if !s.opts.DiscardUploads {
		s.store[key] = data
	}
	delete(s.exists, key) // an upload through Tecken refreshes the lookup cache
	s.forgetSymbols(strings.TrimPrefix(strings.TrimPrefix(key, "try/"), "v1/"))
	fu.ID = s.fileUploads + 1
	s.fileUploads++
	s.mu.Unlock()
	s.mirror(key, data)
	fu.CompletedAt = time.Now()
	up.Files = append(up.Files, fu)
	return nil
}
