package loadgen

import (
	"syscall"
	"time"
)

// sleep pauses the calling goroutine's thread for d with nanosleep(2).
// time.Sleep rounds sub-millisecond sleeps up to about a millisecond on
// Linux (the runtime's poller waits in whole milliseconds), which would
// make the generator itself late by up to a millisecond on every request
// and inflate every latency measured from the intended send time; a
// nanosleep of the dispatching thread wakes within tens of microseconds.
func sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
