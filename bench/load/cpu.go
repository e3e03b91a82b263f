package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on Linux for every architecture Go runs on).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time a process has used so far, user and system, all
// threads: fields 14 (utime) and 15 (stime) of /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)) // #nosec G304 -- procfs of a child we started
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis, where field 3 starts.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	u, err := strconv.ParseUint(f[utime], 10, 64)
	if err != nil {
		return 0, err
	}
	st, err := strconv.ParseUint(f[stime], 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(u+st) * clockTick, nil
}

// perRequest is CPU time per request in µs; NaN when nothing was served.
func perRequest(cpu time.Duration, requests uint64) float64 {
	if requests == 0 {
		return math.NaN()
	}
	return float64(cpu) / float64(time.Microsecond) / float64(requests)
}
