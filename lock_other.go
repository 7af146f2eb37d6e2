//go:build !(unix && !aix && !solaris)

package main

import "os"

// On systems without flock and signal 0 (Windows), a lock is judged by
// its age alone, and a takeover is not guarded against another run
// taking over the same lock at the same moment.

func processAlive(int) bool { return true }

func flock(*os.File, bool) bool { return true }

func funlock(*os.File) {}

// replaceLock renames tmp over path; old, the file at path, is closed
// first, since Windows does not rename over an open file.
func replaceLock(old *os.File, tmp, path string) error {
	old.Close()
	return os.Rename(tmp, path)
}

// removeLock closes and removes the lock file f at path.
func removeLock(f *os.File, path string) error {
	f.Close()
	return os.Remove(path)
}
