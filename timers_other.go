//go:build !linux

package main

import "time"

// keepTimersOnTime does nothing here: timers keep the runtime's own
// precision (see timers_linux.go).
func keepTimersOnTime(func() (int, time.Time, bool)) (stop func()) { return func() {} }
