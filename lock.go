package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// Upload locks: while a run uploads zip, it holds zip+".locked", which
// says who holds it (lockInfo). Another run skips a zip whose lock is
// live, and takes over one that is stale: its process is gone (same host)
// or it is older than lock_stale_after. A lock file is only ever replaced
// by a rename, never removed and created again, and every check of what
// it says is made under a flock on it, so that two runs taking over the
// same stale lock at once cannot both win (see takeOver).

// lockInfo is what a lock file holds (JSON).
type lockInfo struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
}

// StaleLock is a lock that the run found stale and took over.
type StaleLock struct {
	// File is the zip the lock was for.
	File string `json:"file"`
	// Host and PID are the holder's; null for a lock in the old format
	// ("locked <unix time>") or one that cannot be read.
	Host *string `json:"host"`
	PID  *int    `json:"pid"`
	// AgeS is how old the lock was: since its started_at, or since the
	// file was modified when it has none.
	AgeS   float64 `json:"age_s"`
	Reason string  `json:"reason"`
}

// errLocked says that a live run holds the lock, or took it over first.
var errLocked = errors.New("locked by another run")

// locker takes locks for this process.
type locker struct {
	host       string // os.Hostname; "" if unknown (then only age counts)
	staleAfter time.Duration
}

func newLocker(staleAfter time.Duration) locker {
	host, _ := os.Hostname()
	return locker{host: host, staleAfter: staleAfter}
}

func (lk locker) content() []byte {
	b, _ := json.Marshal(lockInfo{Host: lk.host, PID: os.Getpid(), StartedAt: time.Now().UTC()}) // cannot fail
	return append(b, '\n')
}

// zipLock is a lock this run holds.
type zipLock struct {
	zip, path string
	info      os.FileInfo // of the file this run wrote: only that one is ours
	once      sync.Once
}

// lock takes zip's lock: it creates the lock file exclusively, or takes
// over a stale one (then reported in stale). It returns errLocked when a
// live run has the lock.
func (lk locker) lock(zip string) (*zipLock, *StaleLock, error) {
	path := zip + ".locked"
	// A lock that is released between the exclusive create and opening
	// it is tried again, a few times.
	for range 3 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		switch {
		case err == nil:
			info, err := writeLock(f, lk.content())
			if err != nil {
				os.Remove(path)
				return nil, nil, err
			}
			return &zipLock{zip: zip, path: path, info: info}, nil, nil
		case !errors.Is(err, fs.ErrExist):
			return nil, nil, err
		}
		l, stale, err := lk.takeOver(zip, path)
		if !errors.Is(err, fs.ErrNotExist) {
			return l, stale, err
		}
	}
	return nil, nil, errLocked
}

// writeLock writes body to a new lock file, closes it and returns its
// identity.
func writeLock(f *os.File, body []byte) (os.FileInfo, error) {
	_, err := f.Write(body)
	info, serr := f.Stat()
	cerr := f.Close()
	if err == nil {
		err = serr
	}
	if err == nil {
		err = cerr
	}
	return info, err
}

// takeOver replaces the lock file at path with this run's if it is stale.
//
// Runs that find the same stale lock at once race like this: each opens
// the file and tries a flock on it without waiting; the one that gets it
// checks that path still names that very file, judges it from what it
// says, and renames its own lock over it before letting go. A run that
// gets the flock later finds path naming another file (the winner's), and
// a run that opens path after the rename judges the winner's live lock:
// either way it gets errLocked. Because the lock is replaced by a rename,
// path never stops existing, so a run that tries to create it meanwhile
// fails too. The holder renews and releases its lock under the same flock
// (whileOwned), so a takeover never removes a lock that was renewed after
// it was read, and a release never removes a lock that was taken over.
func (lk locker) takeOver(zip, path string) (*zipLock, *StaleLock, error) {
	old, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer old.Close()
	if !flock(old, false) {
		return nil, nil, errLocked // another run is taking it over or releasing it
	}
	defer funlock(old)
	if !names(path, old) {
		return nil, nil, errLocked
	}
	stale, err := lk.judge(old)
	switch {
	case err != nil:
		return nil, nil, err
	case stale == nil:
		return nil, nil, errLocked
	}
	stale.File = zip
	var b [8]byte
	rand.Read(b[:]) // crypto/rand never fails
	tmp := path + "." + hex.EncodeToString(b[:]) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, nil, err
	}
	info, err := writeLock(f, lk.content())
	if err == nil {
		err = replaceLock(old, tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, nil, err
	}
	return &zipLock{zip: zip, path: path, info: info}, stale, nil
}

// names reports whether path is the file f.
func names(path string, f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	pi, err := os.Stat(path)
	return err == nil && os.SameFile(fi, pi)
}

// judge reads a lock and returns why it is stale, or nil when it is live.
func (lk locker) judge(f *os.File) (*StaleLock, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, 4096))
	var li lockInfo
	if err != nil || json.Unmarshal(raw, &li) != nil || li.PID <= 0 || li.StartedAt.IsZero() {
		// The old format, "locked <unix time>", or unreadable: by its age.
		age := time.Since(fi.ModTime())
		if age <= lk.staleAfter {
			return nil, nil
		}
		return &StaleLock{AgeS: age.Seconds(), Reason: fmt.Sprintf("a lock without host and pid, last modified %s ago (lock_stale_after %s)",
			age.Truncate(time.Second), lk.staleAfter)}, nil
	}
	age := time.Since(li.StartedAt)
	s := &StaleLock{Host: &li.Host, PID: &li.PID, AgeS: age.Seconds()}
	switch {
	case lk.host != "" && li.Host == lk.host && !processAlive(li.PID):
		s.Reason = fmt.Sprintf("process %d on %s is gone", li.PID, li.Host)
	case age > lk.staleAfter:
		s.Reason = fmt.Sprintf("taken %s ago by process %d on %s (lock_stale_after %s)", age.Truncate(time.Second), li.PID, li.Host, lk.staleAfter)
	default:
		return nil, nil
	}
	return s, nil
}

// whileOwned calls do with the lock file open for writing if it is still
// this run's (a run may have taken it over as stale), under its flock;
// it reports whether it was.
func (l *zipLock) whileOwned(do func(f *os.File) error) (bool, error) {
	f, err := os.OpenFile(l.path, os.O_RDWR, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	flock(f, true)
	defer funlock(f)
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, l.info) || !names(l.path, f) {
		return false, nil
	}
	return true, do(f)
}

// renew rewrites the lock with the time now, when its upload starts; it
// reports false when another run took the lock over meanwhile.
func (l *zipLock) renew(lk locker) (bool, error) {
	return l.whileOwned(func(f *os.File) error {
		body := lk.content()
		if _, err := f.WriteAt(body, 0); err != nil {
			return err
		}
		return f.Truncate(int64(len(body)))
	})
}

// release removes the lock if it is still this run's. It may be called
// more than once.
func (l *zipLock) release() {
	l.once.Do(func() {
		l.whileOwned(func(f *os.File) error { return removeLock(f, l.path) }) //nolint:errcheck // nothing more to do
	})
}
