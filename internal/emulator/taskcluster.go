package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TaskCluster's index and queue, as list-zips uses them (§6.2): the
// supported GET list routes with continuation tokens, artifact lists, and
// artifact URLs that answer 303 to a storage URL serving the bytes.

type tcNamespace struct {
	namespace string
	expires   time.Time
}

type tcTask struct {
	namespace string // e.g. gecko.v2.mozilla-central.revision.<rev>.firefox.linux64-opt
	taskID    string
	expires   time.Time
	artifacts []tcArtifact
}

type tcArtifact struct {
	name    string
	expires time.Time
	data    []byte
}

// TaskClusterArtifact is an artifact to publish with AddBuild.
type TaskClusterArtifact struct {
	Name    string // e.g. public/build/target.crashreporter-symbols-full.zip
	Expires time.Time
	Data    []byte
}

// AddBuild publishes a build under namespace (e.g.
// gecko.v2.mozilla-central.revision.<rev>): a task indexed at
// <namespace>.firefox.<platform> with the given artifacts. It returns the
// task id.
func (s *Server) AddBuild(namespace, platform string, expires time.Time, artifacts []TaskClusterArtifact) string {
	sum := sha256.Sum256([]byte(namespace + "/" + platform))
	id := base64.RawURLEncoding.EncodeToString(sum[:16]) // 22 characters, like a slugid
	t := tcTask{namespace: namespace + ".firefox." + platform, taskID: id, expires: expires}
	for _, a := range artifacts {
		t.artifacts = append(t.artifacts, tcArtifact{a.Name, a.Expires, a.Data})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.tcNamespaces, func(n tcNamespace) bool { return n.namespace == namespace }) {
		s.tcNamespaces = append(s.tcNamespaces, tcNamespace{namespace, expires})
	}
	s.tcTasks = append(s.tcTasks, t)
	return id
}

func tcTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// page slices n items by the limit and continuationToken query
// parameters; the token is the offset of the next page.
func page(r *http.Request, n int) (from, to int, next string) {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 || limit > 1000 {
		limit = 1000
	}
	from, _ = strconv.Atoi(r.URL.Query().Get("continuationToken"))
	from = min(max(from, 0), n)
	to = min(from+limit, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next
}

func withToken(body map[string]any, next string) map[string]any {
	if next != "" {
		body["continuationToken"] = next
	}
	return body
}

// serveTaskCluster implements the index and queue routes under /api/index/v1/
// and /api/queue/v1/, and the artifact storage under /tc-storage/.
func (s *Server) serveTaskCluster(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	s.mu.Lock()
	namespaces := slices.Clone(s.tcNamespaces)
	tasks := slices.Clone(s.tcTasks)
	s.mu.Unlock()
	notFound := func() {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "ResourceNotFound", "message": "Not found: " + p})
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"code": "MethodNotAllowed", "message": r.Method + " " + p})
		return
	}
	switch {
	case strings.HasPrefix(p, "/api/index/v1/namespaces/"):
		parent := strings.TrimPrefix(p, "/api/index/v1/namespaces/")
		var kids []tcNamespace
		for _, n := range namespaces {
			if rest, ok := strings.CutPrefix(n.namespace, parent+"."); ok && !strings.Contains(rest, ".") {
				kids = append(kids, n)
			}
		}
		slices.SortFunc(kids, func(a, b tcNamespace) int { return strings.Compare(a.namespace, b.namespace) })
		from, to, next := page(r, len(kids))
		list := []map[string]any{}
		for _, n := range kids[from:to] {
			list = append(list, map[string]any{"namespace": n.namespace, "name": n.namespace[strings.LastIndexByte(n.namespace, '.')+1:], "expires": tcTime(n.expires)})
		}
		writeJSON(w, http.StatusOK, withToken(map[string]any{"namespaces": list}, next))
	case strings.HasPrefix(p, "/api/index/v1/tasks/"):
		parent := strings.TrimPrefix(p, "/api/index/v1/tasks/")
		var kids []tcTask
		for _, t := range tasks {
			if rest, ok := strings.CutPrefix(t.namespace, parent+"."); ok && !strings.Contains(rest, ".") {
				kids = append(kids, t)
			}
		}
		from, to, next := page(r, len(kids))
		list := []map[string]any{}
		for _, t := range kids[from:to] {
			list = append(list, map[string]any{"namespace": t.namespace, "taskId": t.taskID, "rank": 0, "data": map[string]any{}, "expires": tcTime(t.expires)})
		}
		writeJSON(w, http.StatusOK, withToken(map[string]any{"tasks": list}, next))
	case strings.HasPrefix(p, "/api/queue/v1/task/"):
		rest := strings.TrimPrefix(p, "/api/queue/v1/task/")
		taskID, sub, _ := strings.Cut(rest, "/")
		i := slices.IndexFunc(tasks, func(t tcTask) bool { return t.taskID == taskID })
		if i < 0 {
			notFound()
			return
		}
		if sub == "artifacts" {
			from, to, next := page(r, len(tasks[i].artifacts))
			list := []map[string]any{}
			for _, a := range tasks[i].artifacts[from:to] {
				list = append(list, map[string]any{"storageType": "s3", "name": a.name, "expires": tcTime(a.expires), "contentType": "application/zip"})
			}
			writeJSON(w, http.StatusOK, withToken(map[string]any{"artifacts": list}, next))
			return
		}
		name, ok := strings.CutPrefix(sub, "artifacts/")
		if !ok || !slices.ContainsFunc(tasks[i].artifacts, func(a tcArtifact) bool { return a.name == name }) {
			notFound()
			return
		}
		w.Header().Set("Location", "http://"+r.Host+"/tc-storage/"+taskID+"/"+name)
		w.WriteHeader(http.StatusSeeOther)
	case strings.HasPrefix(p, "/tc-storage/"):
		taskID, name, _ := strings.Cut(strings.TrimPrefix(p, "/tc-storage/"), "/")
		for _, t := range tasks {
			for _, a := range t.artifacts {
				if t.taskID == taskID && a.name == name {
					w.Header().Set("Content-Type", "application/zip")
					w.Header().Set("Content-Length", strconv.Itoa(len(a.data)))
					if r.Method == http.MethodGet {
						w.Write(a.data)
					}
					return
				}
			}
		}
		notFound()
	default:
		notFound()
	}
}
