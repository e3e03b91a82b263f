//go:build unix

package verify

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used (user + system): on a
// machine shared with other work it varies far less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
