package main

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// kickGap is the least time between two of keepTimersOnTime's wake-ups:
// slots closer together share one. It bounds what the wake-ups cost (at
// most 2,000 a second) and how late they let a slot go out (half a
// millisecond, where Go's timers alone allow a whole one).
const kickGap = 500 * time.Microsecond

// keepTimersOnTime keeps Go's timers on time while a rate-driven step
// runs, until stop is called. With nothing else to do, the runtime sleeps
// in epoll_wait, whose timeout is in whole milliseconds: a worker's timer
// for a slot 50 µs away fires up to a millisecond late unless some other
// event wakes the process first. A timerfd armed for the times next
// returns (the schedule's slots, at most one per kickGap) is such an
// event: it wakes the poller on time, and the runtime then runs the
// timers that are due. Where no timerfd can be made, timers keep the
// runtime's own precision.
func keepTimersOnTime(next func() (int, time.Time, bool)) (stop func()) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return func() {}
	}
	f := os.NewFile(uintptr(fd), "timerfd") // non-blocking: read through the poller
	var wg sync.WaitGroup
	wg.Go(func() {
		var buf [8]byte
		var last time.Time
		for {
			_, at, ok := next()
			if !ok {
				return
			}
			if at.Sub(last) < kickGap {
				continue
			}
			last = at
			d := time.Until(at)
			if d <= 0 {
				continue
			}
			spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
			if unix.TimerfdSettime(fd, 0, &spec, nil) != nil {
				return
			}
			if _, err := f.Read(buf[:]); err != nil {
				return // closed by stop
			}
		}
	})
	return func() {
		f.Close()
		wg.Wait()
	}
}
