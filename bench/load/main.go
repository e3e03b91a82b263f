// Command load is `make bench-load`: one Caddy process (bin/caddy) with a
// bare reverse_proxy site and tenant_gate sites, each on its own loopback
// port, in front of the same tiny upstream, driven with vegeta's library in
// alternating rounds. It prints, per target, the saturated throughput
// (closed loop, BENCH_WORKERS connections) with its ratio to bare, and
// p50/p99 at a fixed open-loop rate (half the target's own saturated rate)
// next to bare's at that same rate.
//
// Every gate site runs the full feature set: the shipped route rules, the
// audit trail to a file, metrics, and the identity assertion.
//
// Knobs (environment): BENCH_CADDY (bin/caddy), BENCH_ROUNDS (10),
// BENCH_SAT_SECONDS (1), BENCH_LAT_SECONDS (5), BENCH_WORKERS (16),
// BENCH_TARGETS (comma-separated substrings of target names; default: every
// non-optional target; `BENCH_TARGETS=cached` adds the DPoP one), BENCH_UNIQUE_TOKENS (60000), BENCH_PROFILE (write a
// CPU profile of the cached RS256 target to this file), BENCH_PROFILE_SECONDS (10).
//
// This is a benchmark, not a test: it asserts nothing. The machine is shared,
// so compare ratios within one run, never absolute numbers across runs.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// openLoopMaxWorkers bounds the concurrency of an open-loop attack.
const openLoopMaxWorkers = 256

// benchPath is a shipped rule with a path parameter and a roles requirement.
const benchPath = "/api/v1/ensemble/e-1/performance"

type settings struct {
	caddy                        string
	rounds, workers, uniqueCount int
	sat, lat, profileFor         time.Duration
	only                         []string
	profile                      string
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func loadSettings() settings {
	s := settings{
		caddy:       os.Getenv("BENCH_CADDY"),
		rounds:      envInt("BENCH_ROUNDS", 10),
		workers:     envInt("BENCH_WORKERS", 16),
		uniqueCount: envInt("BENCH_UNIQUE_TOKENS", 60000),
		sat:         time.Duration(envInt("BENCH_SAT_SECONDS", 1)) * time.Second,
		lat:         time.Duration(envInt("BENCH_LAT_SECONDS", 5)) * time.Second,
		profileFor:  time.Duration(envInt("BENCH_PROFILE_SECONDS", 10)) * time.Second,
		profile:     os.Getenv("BENCH_PROFILE"),
	}
	if s.caddy == "" {
		s.caddy = "bin/caddy"
	}
	if v := os.Getenv("BENCH_TARGETS"); v != "" {
		s.only = strings.Split(v, ",")
	}
	return s
}

func main() {
	if addr := os.Getenv(upstreamEnv); addr != "" {
		if err := serveUpstream(addr); err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(loadSettings()); err != nil {
		fmt.Fprintln(os.Stderr, "bench-load:", err)
		os.Exit(1)
	}
}

func selected(all []target, only []string) []target {
	var out []target
	for _, t := range all {
		keep := !t.optional && len(only) == 0
		for _, o := range only {
			keep = keep || strings.Contains(strings.ToLower(t.name), strings.ToLower(strings.TrimSpace(o)))
		}
		if keep || t.bare {
			out = append(out, t)
		}
	}
	return out
}

func run(s settings) error {
	dir, err := os.MkdirTemp("", "tenantgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	began := time.Now()
	fmt.Printf("bench-load: minting %d unique EdDSA tokens and %d RS256 tokens…\n", s.uniqueCount, cyclingTokens)
	keys, err := makeKeys(dir, s.uniqueCount)
	if err != nil {
		return err
	}
	tgts := selected(targets(keys), s.only)
	st, err := startStack(dir, s.caddy, keys, tgts)
	if st != nil {
		defer st.stop()
	}
	if err != nil {
		return err
	}
	// Stop the child processes on ^C too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		st.stop()
		os.Exit(130)
	}()

	fmt.Printf("bench-load: %d targets, %d rounds of %s saturated (%d workers), then %s open-loop per gate target; GOMAXPROCS of this machine is shared with Caddy and the upstream\n",
		len(tgts), s.rounds, s.sat, s.workers, s.lat)
	for _, t := range tgts { // warm-up: connections, JIT-free but caches and pools
		attack(st, t, s.workers, 0, time.Second)
	}
	sat := map[string][]float64{}
	for round := range s.rounds {
		order := slices.Clone(tgts)
		// Rotate the order each round, so no target always runs first.
		order = append(order[round%len(order):], order[:round%len(order)]...)
		for _, t := range order {
			r := attack(st, t, s.workers, 0, s.sat)
			sat[t.name] = append(sat[t.name], r.Throughput)
			if r.Success < 0.999 {
				fmt.Printf("  round %d %-45s %.0f req/s, success %.3f %v %v\n", round+1, t.name, r.Throughput, r.Success, r.StatusCodes, firstErrors(r))
			}
		}
	}
	bare := tgts[0]
	bareSat := median(sat[bare.name])
	rows := []row{{name: bare.name, sat: bareSat, ratio: 1, rounds: sat[bare.name]}}
	for _, t := range tgts[1:] {
		// The ratio is the median of each round's own ratio: a round
		// compares the target with bare measured seconds apart, so load
		// from elsewhere on the machine cancels out better than in a ratio
		// of medians.
		var ratios []float64
		for i, x := range sat[t.name] {
			ratios = append(ratios, x/sat[bare.name][i])
		}
		rw := row{name: t.name, sat: median(sat[t.name]), ratio: median(ratios), rounds: sat[t.name]}
		rw.rate = int(rw.sat / 2)
		if rw.rate > 0 {
			// bare first, then the gate, at the same rate.
			b := attack(st, bare, s.workers, rw.rate, s.lat)
			g := attack(st, t, s.workers, rw.rate, s.lat)
			rw.bareP50, rw.bareP99 = b.Latencies.P50, b.Latencies.P99
			rw.p50, rw.p99 = g.Latencies.P50, g.Latencies.P99
			rw.served, rw.bareServed = g.Throughput, b.Throughput
		}
		rows = append(rows, rw)
	}
	if keys.unique.dry.Load() {
		fmt.Println("  note: the unique-token pool ran dry; raise BENCH_UNIQUE_TOKENS")
	}
	printReport(rows, bareSat)
	if s.profile != "" {
		if err := profileCached(st, tgts, s); err != nil {
			return err
		}
	}
	fmt.Printf("bench-load: done in %s\n", time.Since(began).Round(time.Second))
	return nil
}

// attack runs one target: closed loop with workers connections when rate is
// 0, else open loop at rate req/s.
func attack(st *stack, t target, workers, rate int, d time.Duration) *vegeta.Metrics {
	url := "http://" + st.siteAddr[t.name] + benchPath
	tr := func(tgt *vegeta.Target) error {
		tok, ok := t.tokens.next()
		if !ok {
			return vegeta.ErrNoTargets
		}
		tgt.Method, tgt.URL = http.MethodGet, url
		tgt.Header = http.Header{"Authorization": {"Bearer " + tok}}
		if t.proofs != nil {
			p, err := t.proofs.proof(url, tok)
			if err != nil {
				return err
			}
			tgt.Header = http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {p}}
		}
		return nil
	}
	// Each attack has its own connections, closed after it: idle
	// connections left by one target must not weigh on the next.
	conns := workers
	pace := vegeta.Rate{Freq: rate, Per: time.Second}
	maxWorkers := uint64(workers) // closed loop
	if rate > 0 {
		// Open loop: a request never waits for a free worker, up to a
		// bound that keeps a stalled server from drowning in connections.
		maxWorkers, conns = openLoopMaxWorkers, openLoopMaxWorkers
	}
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	atk := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: transport, Timeout: 10 * time.Second}),
		vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(maxWorkers))
	var m vegeta.Metrics
	for res := range atk.Attack(tr, pace, d, t.name) {
		m.Add(res)
	}
	m.Close()
	return &m
}

func firstErrors(m *vegeta.Metrics) []string {
	if len(m.Errors) > 3 {
		return m.Errors[:3]
	}
	return m.Errors
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[len(s)/2]
}

type row struct {
	name               string
	sat, ratio         float64
	rounds             []float64
	rate               int
	p50, p99           time.Duration
	bareP50, bareP99   time.Duration
	served, bareServed float64
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func printReport(rows []row, bareSat float64) {
	fmt.Println()
	fmt.Printf("%-46s %10s %6s   %s\n", "saturated (closed loop, median of rounds)", "req/s", "×bare", "req/s per round")
	for _, r := range rows {
		var rs []string
		for _, x := range r.rounds {
			rs = append(rs, fmt.Sprintf("%.0f", x))
		}
		fmt.Printf("%-46s %10.0f %6.2f   %s\n", r.name, r.sat, r.ratio, strings.Join(rs, " "))
	}
	fmt.Printf("(×bare is the median of the per-round ratios; bare's median is %.0f req/s)\n", bareSat)
	fmt.Println()
	fmt.Printf("%-46s %7s %9s %8s %8s %8s %8s %8s %8s\n", "open loop at half the target's saturated rate", "rate", "served", "p50 ms", "p99 ms", "bare p50", "bare p99", "Δp50", "Δp99")
	for _, r := range rows[1:] {
		fmt.Printf("%-46s %7d %9.0f %8s %8s %8s %8s %8s %8s\n", r.name, r.rate, r.served, ms(r.p50), ms(r.p99),
			ms(r.bareP50), ms(r.bareP99), ms(r.p50-r.bareP50), ms(r.p99-r.bareP99))
		if r.served < 0.95*float64(r.rate) || r.bareServed < 0.95*float64(r.rate) {
			fmt.Printf("  note: served %.0f (bare %.0f) of %d req/s: the machine did not keep up, so these latencies measure queueing\n",
				r.served, r.bareServed, r.rate)
		}
	}
	fmt.Println()
}

// profileCached takes a CPU profile of Caddy while the cached RS256 target
// runs saturated (Caddy's admin endpoint serves /debug/pprof/).
func profileCached(st *stack, tgts []target, s settings) error {
	var t *target
	for i := range tgts {
		if strings.Contains(tgts[i].name, "RS256 cached, EdDSA") {
			t = &tgts[i]
		}
	}
	if t == nil {
		return fmt.Errorf("BENCH_PROFILE: the cached RS256 target is not selected")
	}
	done := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", st.adminAddr, int(s.profileFor.Seconds()))
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
	attack(st, *t, s.workers, 0, s.profileFor+time.Second)
	if err := <-done; err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	fmt.Printf("bench-load: CPU profile of %q in %s (go tool pprof -top %s %s)\n", t.name, s.profile, s.caddy, s.profile)
	return nil
}
