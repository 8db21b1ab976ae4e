//go:build unix

package overhead

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) this process has used.
// The servers share the process with the generator, so a step's CPU time
// divided by its requests is the cost per request of generator and server
// together: the generator's part is the same for both servers, so the
// difference is the server's.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
