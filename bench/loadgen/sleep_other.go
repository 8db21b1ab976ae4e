//go:build !linux

package loadgen

import "time"

// sleep pauses for d (time.Sleep; see sleep_linux.go for why Linux differs).
func sleep(d time.Duration) { time.Sleep(d) }
