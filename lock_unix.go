//go:build unix && !aix && !solaris

package main

import (
	"errors"
	"os"
	"syscall"
)

// processAlive reports whether process pid exists on this host: signal 0
// checks without sending anything (EPERM: it exists, but is another
// user's).
func processAlive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// flock takes an exclusive flock on f, waiting for it or not; it reports
// whether it got it.
func flock(f *os.File, wait bool) bool {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err == nil
		}
	}
}

func funlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) } //nolint:errcheck // closing releases it too

// replaceLock renames tmp over path while old, the file at path, is open
// and flocked: only a rename keeps path existing throughout.
func replaceLock(_ *os.File, tmp, path string) error { return os.Rename(tmp, path) }

// removeLock removes the lock file f at path, flocked until it is gone.
func removeLock(_ *os.File, path string) error { return os.Remove(path) }
