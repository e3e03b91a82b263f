package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// results are the saturated rounds: per target, one throughput (req/s) and
// one CPU time per request (µs) of its serving process per round; for a
// target with a baseline, also the baseline's, measured right before it in
// the same round.
type results struct {
	sat, cpu         map[string][]float64
	baseSat, baseCPU map[string][]float64
}

type row struct {
	t          target
	sat, ratio float64
	// cpu is the median CPU µs per request; added the median, over rounds,
	// of cpu minus the baseline's in the same round (NaN without baseline).
	cpu, added float64
	// addedRounds is added per round (NaN for a round that served
	// nothing), by round index, so two targets can be paired round by round.
	addedRounds []float64
	rounds      []float64
	// rate is the open-loop rate of the equal-rate phase, eq its figures
	// (nil when the phase did not run for this target).
	rate int
	eq   *eqResult
}

// perRound is the median over rounds of f(x, y), x this target's value and
// y the other's in the same round: load from elsewhere on the machine moves
// both, so it cancels out better than in a ratio or difference of medians.
func perRound(xs, ys []float64, f func(x, y float64) float64) float64 {
	return median(roundValues(xs, ys, f))
}

// roundValues is f(x, y) round by round, NaN where a round served nothing.
func roundValues(xs, ys []float64, f func(x, y float64) float64) []float64 {
	out := make([]float64, min(len(xs), len(ys)))
	for i := range out {
		out[i] = math.NaN()
		if xs[i] > 0 && ys[i] > 0 { // a round that served nothing has no value
			out[i] = f(xs[i], ys[i])
		}
	}
	return out
}

// quartiles are the 25th and 75th percentiles of xs, NaN left out: the
// spread of a per-round value, so a reader sees the noise of the run.
func quartiles(xs []float64) (lo, hi float64) {
	s := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(s) == 0 {
		return math.NaN(), math.NaN()
	}
	sort.Float64s(s)
	return s[len(s)/4], s[(3*len(s))/4]
}

// pairDiff is x − y index by index for values that may be zero or
// negative (CPU added per request), NaN where either side is NaN.
func pairDiff(xs, ys []float64) []float64 {
	out := make([]float64, min(len(xs), len(ys)))
	for i := range out {
		out[i] = xs[i] - ys[i] // NaN stays NaN
	}
	return out
}

func ratio(x, y float64) float64 { return x / y }
func diff(x, y float64) float64  { return x - y }

func (r results) rows(tgts []target) []row {
	var rows []row
	for _, t := range tgts {
		base := t.baseline
		if base == "" {
			base = bareName
		}
		rw := row{t: t, sat: median(r.sat[t.name]), cpu: median(r.cpu[t.name]), rounds: r.sat[t.name], added: math.NaN()}
		rw.ratio = perRound(r.sat[t.name], r.sat[base], ratio)
		if t.baseline != "" {
			rw.ratio = perRound(r.sat[t.name], r.baseSat[t.name], ratio)
			rw.addedRounds = roundValues(r.cpu[t.name], r.baseCPU[t.name], diff)
			rw.added = median(rw.addedRounds)
		}
		rows = append(rows, rw)
	}
	return rows
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func us(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%+.1f", x)
}

func printReport(rows []row, res results, pairs int) {
	fmt.Println()
	fmt.Printf("%-54s %7s %6s %8s %8s   %s\n", "saturated (closed loop, median of rounds)", "req/s", "×bare", "CPU µs", "added", "req/s per round")
	for _, r := range rows {
		var rs []string
		for _, x := range r.rounds {
			rs = append(rs, fmt.Sprintf("%.0f", x))
		}
		fmt.Printf("%-54s %7.0f %6.2f %8.1f %8s   %s\n", r.t.name, r.sat, r.ratio, r.cpu, us(r.added), strings.Join(rs, " "))
	}
	fmt.Println("(CPU µs: utime+stime of the serving process per request served. added and ×bare: against its")
	fmt.Println(" bare site run right before it in the same round; medians of per-round values. oauth2-proxy and")
	fmt.Println(" \"before: bare\" run in their own processes; their ×bare is against Caddy's bare of the round)")

	printPeers(rows, res)
	printBefore(rows)
	printOverFloor(rows)

	printEqualRate(rows, pairs)
	fmt.Println()
}

// printPeers prints each gate target's throughput over every peer's, as the
// median of per-round ratios.
func printPeers(rows []row, res results) {
	var ps []row
	for _, r := range rows {
		if r.t.peer {
			ps = append(ps, r)
		}
	}
	if len(ps) == 0 {
		return
	}
	fmt.Println()
	fmt.Printf("%-54s", "throughput over the peer's (per-round median)")
	for _, p := range ps {
		fmt.Printf(" %26s", p.t.name)
	}
	fmt.Println()
	// Bare is listed too: no gate can serve more than its own bare does,
	// so bare's ratio is the ceiling of every gate target's.
	for _, r := range rows {
		if r.t.proc != procCaddy {
			continue
		}
		fmt.Printf("%-54s", r.t.name)
		for _, p := range ps {
			fmt.Printf(" %25.2f×", perRound(res.sat[r.t.name], res.sat[p.t.name], ratio))
		}
		fmt.Println()
	}
}

// printBefore sets the added CPU of each target next to the same target
// served by the BENCH_BEFORE build in the same run.
func printBefore(rows []row) {
	before := map[string]row{}
	for _, r := range rows {
		if r.t.proc == procCaddyBefore {
			before[strings.TrimPrefix(r.t.name, beforePrefix)] = r
		}
	}
	if len(before) == 0 {
		return
	}
	fmt.Println()
	fmt.Printf("%-54s %12s %12s %10s %10s %10s   %s\n", "before (BENCH_BEFORE) and after, same run", "added before", "added after", "change", "×bare bef.", "×bare aft.", "after−before per round: median [p25, p75]")
	for _, r := range rows {
		b, ok := before[r.t.name]
		if r.t.proc != procCaddy || r.t.bare || !ok {
			continue
		}
		d := pairDiff(r.addedRounds, b.addedRounds)
		lo, hi := quartiles(d)
		fmt.Printf("%-54s %12s %12s %9.0f%% %10.2f %10.2f   %s [%s, %s]\n", r.t.name, us(b.added), us(r.added), 100*(r.added-b.added)/b.added, b.ratio, r.ratio,
			us(median(d)), us(lo), us(hi))
	}
	fmt.Println("(after−before per round: the after build's added minus the before build's, both measured in the")
	fmt.Println(" same round; its spread is the noise a single run's change has on this machine)")
}

// printOverFloor sets each gate target's added CPU against the floor's
// (the bare site carrying the gate's headers, no gate) round by round: what
// the gate's own work costs beyond what Caddy spends carrying its headers.
func printOverFloor(rows []row) {
	printed := false
	for _, proc := range []string{procCaddy, procCaddyBefore} {
		var floor *row
		for i := range rows {
			if rows[i].t.proc == proc && rows[i].t.floor {
				floor = &rows[i]
			}
		}
		if floor == nil {
			continue
		}
		title := "the gate's own work: added over the floor's"
		if proc == procCaddyBefore {
			title = beforePrefix + title
		}
		fmt.Println()
		fmt.Printf("%-54s %12s %12s   %s\n", title, "added", "over floor", "over floor per round: [p25, p75]")
		for _, r := range rows {
			if r.t.proc != proc || r.t.bare || r.t.floor || r.t.baseline == "" {
				continue
			}
			d := pairDiff(r.addedRounds, floor.addedRounds)
			lo, hi := quartiles(d)
			fmt.Printf("%-54s %12s %12s   [%s, %s]\n", r.t.name, us(r.added), us(median(d)), us(lo), us(hi))
		}
		printed = true
	}
	if printed {
		fmt.Println("(over floor: the target's added minus the floor's in the same round; the floor is the site with")
		fmt.Println(" no gate whose reverse_proxy sends the gate's headers, so this is what the gate adds beyond them)")
	}
}

// findTarget is the target BENCH_PROFILE_TARGET names: the one of that
// exact name, else the only one whose name contains it (any case).
func findTarget(tgts []target, name string) (target, error) {
	var hits []target
	for _, t := range tgts {
		if t.name == name {
			return t, nil
		}
		if strings.Contains(strings.ToLower(t.name), strings.ToLower(name)) {
			hits = append(hits, t)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		return target{}, fmt.Errorf("BENCH_PROFILE_TARGET %q names no selected target", name)
	}
	var names []string
	for _, t := range hits {
		names = append(names, fmt.Sprintf("%q", t.name))
	}
	return target{}, fmt.Errorf("BENCH_PROFILE_TARGET %q names %d targets (%s): give more of the name", name, len(hits), strings.Join(names, ", "))
}

// profileTarget takes a CPU profile of the Caddy process serving the target
// BENCH_PROFILE_TARGET names while it runs saturated (Caddy's admin
// endpoint serves /debug/pprof/).
func profileTarget(st *stack, tgts []target, s settings) error {
	t, err := findTarget(tgts, s.profileTarget)
	if err != nil {
		return err
	}
	admin := st.admin[t.proc]
	if admin == "" {
		return fmt.Errorf("BENCH_PROFILE: %q is not served by Caddy", t.name)
	}
	done := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(s.profileFor.Seconds()))
		resp, err := http.Get(url) // #nosec G107 -- loopback admin endpoint we started
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(s.profile)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	pid := st.pid(t)
	c0, _ := cpuTime(pid)
	m := attack(st, t, s.workers, 0, s.profileFor+time.Second)
	c1, _ := cpuTime(pid)
	if err := <-done; err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	// To read the profile in µs per request: a function's share of the
	// samples times the CPU per request.
	cpu := perRequest(c1-c0, served(m))
	fmt.Printf("bench-load: during the profile %d requests, %.1f µs CPU per request: 1%% of the samples is %.2f µs per request\n",
		served(m), cpu, cpu/100)
	bin := s.caddy
	if t.proc == procCaddyBefore {
		bin = s.before
	}
	fmt.Printf("bench-load: CPU profile of %q in %s (go tool pprof -top %s %s)\n", t.name, s.profile, bin, s.profile)
	return nil
}
