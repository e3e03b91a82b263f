package audit

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks report it per
// op ("cpu-ns/op") besides wall time, because on a shared, loaded machine
// wall time measures the queue for a core, not the work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op for the time since start.
func reportCPU(b *testing.B, start time.Duration, perOp float64) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/perOp, "cpu-ns/op")
}
