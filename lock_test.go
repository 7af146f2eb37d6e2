package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// goneProcess returns the pid of a process that has exited.
func goneProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func lockJSON(host string, pid int, started time.Time) string {
	b, _ := json.Marshal(lockInfo{Host: host, PID: pid, StartedAt: started})
	return string(b)
}

// writeLockFile writes a lock for zip, last modified at mtime.
func writeLockFile(t *testing.T, zip, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(zip+".locked", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(zip+".locked", mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestStaleLocksAreTakenOver(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signal 0 to tell a gone process on Windows")
	}
	_, ts := uploadEmulator(t)
	dir := t.TempDir()
	host, _ := os.Hostname()
	now := time.Now()
	gone := goneProcess(t)
	type lockCase struct {
		content string
		mtime   time.Time
		stale   string // the reason it is taken over (a regexp); "" if it is live
	}
	cases := map[string]lockCase{
		"gone.zip":         {lockJSON(host, gone, now), now, regexp.QuoteMeta(fmt.Sprintf("process %d on %s is gone", gone, host))},
		"alive.zip":        {lockJSON(host, os.Getpid(), now), now, ""},
		"elsewhere.zip":    {lockJSON("elsewhere", 1, now.Add(-59*time.Minute)), now, ""},
		"old.zip":          {lockJSON("elsewhere", 1, now.Add(-2*time.Hour)), now, `taken 2h0m\d+s ago by process 1 on elsewhere \(lock_stale_after 1h0m0s\)`},
		"format2019.zip":   {fmt.Sprintf("locked %d\n", now.Add(-3*time.Hour).Unix()), now.Add(-3 * time.Hour), `a lock without host and pid, last modified 3h0m\d+s ago \(lock_stale_after 1h0m0s\)`},
		"fresh2019.zip":    {fmt.Sprintf("locked %d\n", now.Unix()), now, ""},
		"garbage.zip":      {"\x00\x01{", now, ""},
		"garbage-old.zip":  {"\x00\x01{", now.Add(-2 * time.Hour), `a lock without host and pid, last modified 2h0m\d+s ago \(lock_stale_after 1h0m0s\)`},
		"empty-old.zip":    {"", now.Add(-2 * time.Hour), `a lock without host and pid, last modified 2h0m\d+s ago \(lock_stale_after 1h0m0s\)`},
		"pid-negative.zip": {lockJSON(host, -1, now), now, ""},
	}
	seed := uint64(20)
	for name, c := range cases {
		zip, _ := goodZip(t, dir, name, seed)
		seed++
		writeLockFile(t, zip, c.content, c.mtime)
	}
	goodZip(t, dir, "free.zip", seed)
	r, _, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 20\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Steps[0]
	took := map[string]StaleLock{}
	for _, l := range s.StaleLocksTakenOver {
		took[filepath.Base(l.File)] = l
	}
	skipped := map[string]string{}
	for _, sk := range s.SkippedUploads {
		skipped[filepath.Base(sk.File)] = sk.Reason
	}
	uploaded := map[string]bool{}
	for _, u := range s.Uploads {
		uploaded[filepath.Base(u.File)] = u.Error == nil
	}
	for name, c := range cases {
		zip := filepath.Join(dir, name)
		got, err := os.ReadFile(zip + ".locked")
		if c.stale == "" {
			if skipped[name] != "locked by another run" || uploaded[name] {
				t.Errorf("%s: live lock: skipped %q, uploaded %v", name, skipped[name], uploaded[name])
			}
			if err != nil || string(got) != c.content {
				t.Errorf("%s: a live lock was changed: %q, %v", name, got, err)
			}
			continue
		}
		l, ok := took[name]
		switch {
		case !ok || !regexp.MustCompile("^"+c.stale+"$").MatchString(l.Reason):
			t.Errorf("%s: taken over %v, reason %q; want %q", name, ok, l.Reason, c.stale)
		case !uploaded[name]:
			t.Errorf("%s: taken over but not uploaded", name)
		case err == nil:
			t.Errorf("%s: the lock is still there after the upload: %q", name, got)
		}
		if strings.HasPrefix(c.content, "{") && (l.Host == nil || l.PID == nil) {
			t.Errorf("%s: host and pid missing: %+v", name, l)
		}
		if !strings.HasPrefix(c.content, "{") && (l.Host != nil || l.PID != nil || l.AgeS < 7200) {
			t.Errorf("%s: host %v, pid %v, age %v", name, l.Host, l.PID, l.AgeS)
		}
	}
	if len(s.StaleLocksTakenOver) != 5 || s.Succeeded != 6 || s.Skipped != 5 || !uploaded["free.zip"] {
		t.Errorf("%d taken over, %d succeeded, %d skipped", len(s.StaleLocksTakenOver), s.Succeeded, s.Skipped)
	}

	// lock_stale_after decides the age; the table says what was taken over.
	path := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(path, []byte(uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 20\n      lock_stale_after: 30m\n")), 0o644)
	var table bytes.Buffer
	if err := run(context.Background(), []string{"-format", "table", path}, nil, &table, &table, terminal{}); err != nil {
		t.Fatal(err)
	}
	want := regexp.QuoteMeta("took over the stale lock of "+filepath.Join(dir, "elsewhere.zip")+": taken 59m") + `\d+s ago by process 1 on elsewhere \(lock_stale_after 30m0s\)\n`
	if !regexp.MustCompile(want).MatchString(table.String()) {
		t.Errorf("table does not match %q:\n%s", want, table.String())
	}
}

func TestNoStaleLocksIsAnEmptyList(t *testing.T) {
	_, ts := uploadEmulator(t)
	dir := t.TempDir()
	goodZip(t, dir, "a.zip", 40)
	_, out, err := runUpload(t, context.Background(), uploadPlan(ts.URL, "      zips_dir: "+dir+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"stale_locks_taken_over": []`) {
		t.Errorf("no empty stale_locks_taken_over in\n%s", out)
	}
}

// TestOneRunWinsAStaleLock has runs take over one stale lock at the same
// moment: exactly one gets it, and the others find it locked.
func TestOneRunWinsAStaleLock(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the takeover is guarded by a flock, which Windows lacks")
	}
	zip := filepath.Join(t.TempDir(), "a.zip")
	os.WriteFile(zip, []byte("zip"), 0o644)
	writeLockFile(t, zip, lockJSON("elsewhere", 1, time.Now().Add(-2*time.Hour)), time.Now())
	lk := newLocker(time.Hour)
	const runs = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	locks := make([]*zipLock, runs)
	errs := make([]error, runs)
	for i := range runs {
		wg.Go(func() {
			<-start
			locks[i], _, errs[i] = lk.lock(zip)
		})
	}
	close(start)
	wg.Wait()
	var won []*zipLock
	for i := range runs {
		switch {
		case errs[i] == nil:
			won = append(won, locks[i])
		case !errors.Is(errs[i], errLocked):
			t.Errorf("run %d: %v", i, errs[i])
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d runs took the stale lock over", len(won))
	}
	var li lockInfo
	raw, _ := os.ReadFile(zip + ".locked")
	if err := json.Unmarshal(raw, &li); err != nil || li.PID != os.Getpid() || li.Host != lk.host {
		t.Errorf("lock after the takeover: %q", raw)
	}
	if tmps, _ := filepath.Glob(zip + ".locked.*"); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	won[0].release()
	if fileExists(zip + ".locked") {
		t.Error("release left the lock")
	}
}

// TestATakenOverLockStaysWithItsNewHolder: a holder whose lock was taken
// over as stale neither renews nor removes the new holder's lock.
func TestATakenOverLockStaysWithItsNewHolder(t *testing.T) {
	zip := filepath.Join(t.TempDir(), "a.zip")
	os.WriteFile(zip, []byte("zip"), 0o644)
	first := newLocker(time.Hour)
	mine, _, err := first.lock(zip)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.lock(zip); !errors.Is(err, errLocked) {
		t.Fatalf("a second lock of a live one: %v", err)
	}
	if ours, err := mine.renew(first); !ours || err != nil {
		t.Fatalf("renew %v, %v", ours, err)
	}
	// The upload waited for a worker past lock_stale_after.
	old := lockJSON(first.host, os.Getpid(), time.Now().Add(-2*time.Hour))
	if err := os.WriteFile(zip+".locked", []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	second := newLocker(time.Hour)
	theirs, stale, err := second.lock(zip)
	if err != nil || stale == nil || !strings.HasPrefix(stale.Reason, "taken 2h0m") {
		t.Fatalf("takeover: %v, %+v", err, stale)
	}
	if ours, err := mine.renew(first); ours || err != nil {
		t.Errorf("renewed a lock taken over: %v, %v", ours, err)
	}
	mine.release()
	if !fileExists(zip + ".locked") {
		t.Fatal("the old holder removed the new holder's lock")
	}
	theirs.release()
	if fileExists(zip + ".locked") {
		t.Error("the new holder's release left the lock")
	}
}

// TestThreeRunsShareOneFolder runs the real binary three times at once on
// one zips_dir with delete_uploaded, against the emulator. The emulator
// holds every upload until each run either has an upload in flight or
// has exited, so that all three pick and lock while every zip is still
// there: each zip is locked by exactly one run, the others lose the race.
// Every run exits 0, and the emulator gets each zip once.
func TestThreeRunsShareOneFolder(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the takeover is guarded by a flock, which Windows lacks")
	}
	bin := buildTeckenrun(t)
	emu, _ := uploadEmulator(t)
	const runs = 3
	arrived := make(chan int, 16) // the run (from its User-Agent) of each upload
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload/" {
			var i int
			fmt.Sscanf(r.UserAgent(), "run-%d", &i)
			arrived <- i
			<-release
		}
		emu.ServeHTTP(w, r)
	}))
	defer ts.Close()
	defer releaseAll()
	dir := t.TempDir()
	var zips []string
	for i := range runs {
		z, _ := goodZip(t, dir, fmt.Sprintf("z%d.zip", i), uint64(60+i))
		zips = append(zips, filepath.Base(z))
	}
	type outcome struct {
		i              int
		err            error
		stdout, stderr bytes.Buffer
	}
	outcomes := make([]*outcome, runs)
	exited := make(chan int, runs)
	for i := range runs {
		plan := filepath.Join(t.TempDir(), "plan.yaml")
		// Same seed: the runs try the zips in the same order and collide.
		os.WriteFile(plan, []byte(fmt.Sprintf("user_agent: run-%d\n", i)+
			uploadPlan(ts.URL, "      zips_dir: "+dir+"\n      number: 3\n      concurrency: 3\n      delete_uploaded: true\n")), 0o644)
		o := &outcome{i: i}
		outcomes[i] = o
		cmd := exec.Command(bin, "-format", "json", plan)
		cmd.Stdout, cmd.Stderr = &o.stdout, &o.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			o.err = cmd.Wait()
			exited <- i
		}()
	}
	uploading := map[int]bool{}
	done := map[int]bool{}
	settled := func() bool {
		for i := range runs {
			if !uploading[i] && !done[i] {
				return false
			}
		}
		return true
	}
	held := 0
	for (held < len(zips) || !settled()) && len(done) < runs {
		select {
		case i := <-arrived:
			uploading[i] = true
			held++
		case i := <-exited:
			done[i] = true
		}
	}
	releaseAll()
	for len(done) < runs {
		done[<-exited] = true
	}

	succeeded, skipped := 0, 0
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("run %d: %v\nstderr: %s", o.i, o.err, o.stderr.String())
			continue
		}
		var r uploadReport
		if err := json.Unmarshal(o.stdout.Bytes(), &r); err != nil {
			t.Fatalf("run %d: %v\n%s", o.i, err, o.stdout.String())
		}
		s := r.Steps[0]
		succeeded += s.Succeeded
		skipped += s.Skipped
		for _, sk := range s.SkippedUploads {
			if sk.Reason != "locked by another run" {
				t.Errorf("run %d skipped %s: %s", o.i, sk.File, sk.Reason)
			}
		}
		if s.Failed != 0 || !r.OK {
			t.Errorf("run %d: failed %d, ok %v", o.i, s.Failed, r.OK)
		}
	}
	got := map[string]int{}
	for _, u := range emu.Uploads() {
		got[u.Filename]++
	}
	for _, z := range zips {
		if got[z] != 1 {
			t.Errorf("the emulator got %s %d times", z, got[z])
		}
	}
	if len(got) != len(zips) || succeeded != len(zips) || skipped != (runs-1)*len(zips) {
		t.Errorf("emulator uploads %v; the runs say %d succeeded, %d skipped", got, succeeded, skipped)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the folder: %v", left)
	}
}
