package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The equal-rate phase: each gate target open loop at half its own
// saturated rate, paired with its bare site at that same rate.
//
// Why it exists next to the saturated rounds: saturated, bare and the gate
// run at different request rates, and the CPU a request costs outside the
// handler depends on the rate (at a lower rate each write more often wakes a
// sleeping peer, a system call and a context switch more per request). So
// the saturated "added" mixes the gate's own work with the cost of running
// slower. At the same offered load both halves of a pair pay the same
// wake-ups, and "added" is the gate's own work.

// eqResult is one target's equal-rate figures, medians over pairs.
type eqResult struct {
	// bare and gate are CPU µs per request of the serving process; added
	// is the median of gate − bare per pair, addedPairs those values.
	bare, gate, added  float64
	addedPairs         []float64
	p50, p99           time.Duration
	bareP50, bareP99   time.Duration
	served, bareServed float64
}

// openRound runs t open loop at rate for d and reads its serving process's
// CPU time around it: the metrics and the CPU µs per request served.
func openRound(st *stack, t target, s settings, rate int) (*vegeta.Metrics, float64, error) {
	pid := st.pid(t)
	c0, _ := cpuTime(pid)
	m := attack(st, t, s.workers, rate, s.lat)
	c1, err := cpuTime(pid)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: CPU time: %w", t.name, err)
	}
	return m, perRequest(c1-c0, served(m)), nil
}

// equalRate runs BENCH_LAT_ROUNDS pairs per gate target (bare and gate at
// the same rate, the order alternating from pair to pair so neither always
// goes first), every target's pair of a round before the next round (the
// order of the targets reversed every other round), and fills rows' rate
// and eq. A BENCH_BEFORE target runs at the rate of the
// same target of the build under test, so before and after see the same
// offered load too.
func equalRate(st *stack, s settings, tgts []target, rows []row) error {
	if s.lat == 0 {
		return nil
	}
	idx := map[string]int{}
	for i, t := range tgts {
		idx[t.name] = i
	}
	var lat []int
	for i, t := range tgts {
		if t.baseline == "" || t.peer || (t.proc != procCaddy && t.proc != procCaddyBefore) {
			continue
		}
		if rows[i].sat > 0 { // false for NaN too
			rows[i].rate = int(rows[i].sat / 2)
		}
		lat = append(lat, i)
	}
	for _, i := range lat { // before: the after build's rate
		if j, ok := idx[strings.TrimPrefix(tgts[i].name, beforePrefix)]; ok && tgts[i].proc == procCaddyBefore && rows[j].rate > 0 {
			rows[i].rate = rows[j].rate
		}
	}
	// A target's BENCH_BEFORE twin runs right next to it, so before and
	// after are compared seconds apart too.
	slices.SortStableFunc(lat, func(a, b int) int {
		return strings.Compare(strings.TrimPrefix(tgts[a].name, beforePrefix), strings.TrimPrefix(tgts[b].name, beforePrefix))
	})
	type pair struct{ gate, bare *vegeta.Metrics }
	pairs := map[int][]pair{}
	cpu := map[int][2][]float64{}
	for p := range s.latRounds {
		order := slices.Clone(lat)
		if p%2 == 1 { // the twins swap places too
			slices.Reverse(order)
		}
		for _, i := range order {
			t, rate := tgts[i], rows[i].rate
			b, ok := idx[t.baseline]
			if !ok || rate == 0 {
				continue
			}
			halves := []target{tgts[b], t}
			if p%2 == 1 {
				halves = []target{t, tgts[b]}
			}
			var pr pair
			c := cpu[i]
			for _, x := range halves {
				m, perReq, err := openRound(st, x, s, rate)
				if err != nil {
					return err
				}
				if x.name == t.name {
					pr.gate, c[1] = m, append(c[1], perReq)
				} else {
					pr.bare, c[0] = m, append(c[0], perReq)
				}
			}
			pairs[i], cpu[i] = append(pairs[i], pr), c
		}
	}
	for _, i := range lat {
		ps := pairs[i]
		if len(ps) == 0 {
			continue
		}
		var p50, p99, bp50, bp99, sv, bsv []float64
		for _, pr := range ps {
			p50, p99 = append(p50, float64(pr.gate.Latencies.P50)), append(p99, float64(pr.gate.Latencies.P99))
			bp50, bp99 = append(bp50, float64(pr.bare.Latencies.P50)), append(bp99, float64(pr.bare.Latencies.P99))
			sv, bsv = append(sv, pr.gate.Throughput), append(bsv, pr.bare.Throughput)
		}
		c := cpu[i]
		e := &eqResult{bare: median(c[0]), gate: median(c[1]), addedPairs: roundValues(c[1], c[0], diff),
			p50: time.Duration(median(p50)), p99: time.Duration(median(p99)),
			bareP50: time.Duration(median(bp50)), bareP99: time.Duration(median(bp99)),
			served: median(sv), bareServed: median(bsv)}
		e.added = median(e.addedPairs)
		rows[i].eq = e
	}
	return nil
}

// printEqualRate prints the equal-rate CPU table and the latencies of the
// same rounds.
func printEqualRate(rows []row, pairs int) {
	var lat []row
	for _, r := range rows {
		if r.eq != nil {
			lat = append(lat, r)
		}
	}
	if len(lat) == 0 {
		return
	}
	fmt.Println()
	fmt.Printf("%-54s %7s %8s %8s %8s   %s\n", fmt.Sprintf("CPU µs/request at equal rate (median of %d pairs)", pairs), "rate", "bare", "gate", "added", "added per pair")
	for _, r := range lat {
		var ps []string
		for _, x := range r.eq.addedPairs {
			ps = append(ps, us(x))
		}
		fmt.Printf("%-54s %7d %8.1f %8.1f %8s   %s\n", r.t.name, r.rate, r.eq.bare, r.eq.gate, us(r.eq.added), strings.Join(ps, " "))
	}
	fmt.Println("(open loop at half the target's saturated rate, its bare site at the same rate right before or")
	fmt.Println(" after it: both pay the same wake-ups per request, so added is the gate's own work. The saturated")
	fmt.Println(" added also holds the extra system-call time of serving fewer requests per second)")
	printBeforeEqual(lat)

	fmt.Println()
	fmt.Printf("%-54s %7s %9s %8s %8s %8s %8s %8s %8s\n", "latency in the same rounds (median of pairs)", "rate", "served", "p50 ms", "p99 ms", "bare p50", "bare p99", "Δp50", "Δp99")
	for _, r := range lat {
		e := r.eq
		fmt.Printf("%-54s %7d %9.0f %8s %8s %8s %8s %8s %8s\n", r.t.name, r.rate, e.served, ms(e.p50), ms(e.p99),
			ms(e.bareP50), ms(e.bareP99), ms(e.p50-e.bareP50), ms(e.p99-e.bareP99))
		if e.served < 0.95*float64(r.rate) || e.bareServed < 0.95*float64(r.rate) {
			fmt.Printf("  note: served %.0f (bare %.0f) of %d req/s: the machine did not keep up, so these latencies measure queueing\n",
				e.served, e.bareServed, r.rate)
		}
	}
}

// printBeforeEqual sets each target's equal-rate added next to the
// BENCH_BEFORE build's, both at the same rate.
func printBeforeEqual(lat []row) {
	before := map[string]*eqResult{}
	for _, r := range lat {
		if r.t.proc == procCaddyBefore {
			before[strings.TrimPrefix(r.t.name, beforePrefix)] = r.eq
		}
	}
	if len(before) == 0 {
		return
	}
	fmt.Println()
	fmt.Printf("%-54s %12s %12s %10s   %s\n", "before and after at equal rate", "added before", "added after", "change", "after−before per pair: median [p25, p75]")
	for _, r := range lat {
		b, ok := before[r.t.name]
		if r.t.proc != procCaddy || !ok {
			continue
		}
		d := make([]float64, min(len(r.eq.addedPairs), len(b.addedPairs)))
		for i := range d {
			d[i] = r.eq.addedPairs[i] - b.addedPairs[i] // NaN stays NaN
		}
		lo, hi := quartiles(d)
		fmt.Printf("%-54s %12s %12s %9.0f%%   %s [%s, %s]\n", r.t.name, us(b.added), us(r.eq.added),
			100*(r.eq.added-b.added)/math.Abs(b.added), us(median(d)), us(lo), us(hi))
	}
}
