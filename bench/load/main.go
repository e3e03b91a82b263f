// Command load is `make bench-load`: one Caddy process (bin/caddy) with a
// bare reverse_proxy site and tenant_gate sites, each on its own loopback
// port, in front of the same tiny upstream, driven with vegeta's library in
// alternating rounds. It prints, per target, the saturated throughput
// (closed loop, BENCH_WORKERS connections) with its ratio to bare, the CPU
// time of the serving process per request (utime+stime from /proc/PID/stat
// around each round) and what the gate adds over bare in the same round,
// and p50/p99 at a fixed open-loop rate (half the target's own saturated
// rate) next to bare's at that same rate. Peers found on PATH (oauth2-proxy,
// HAProxy) run on the same request; an older build (BENCH_BEFORE) can serve
// the same sites in a second Caddy process, for a before/after in one run.
// A chart of CPU per request and throughput goes to BENCH_CHART.
//
// Every gate site runs the full feature set: the shipped route rules, the
// audit trail to a file, metrics, and the identity assertion.
//
// Knobs (environment) are listed in docs/performance.md.
//
// This is a benchmark, not a test: it asserts nothing. The machine is shared,
// so compare ratios and differences within one run, never absolute numbers
// across runs.
package main

import (
	"fmt"
	"math"
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

// uniqueRate is more unique-token requests per second than 2 cores serve:
// the default size of the unique-token pool is this times the seconds the
// misses target runs.
const uniqueRate = 4000

// benchPath is a shipped rule with a path parameter and a roles requirement.
const benchPath = "/api/v1/ensemble/e-1/performance"

type settings struct {
	caddy, before                           string
	rounds, latRounds, workers, uniqueCount int
	sat, lat, profileFor                    time.Duration
	only                                    []string
	profile, profileTarget                  string
	chart                                   string
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func loadSettings() settings {
	s := settings{
		caddy:         envOr("BENCH_CADDY", "bin/caddy"),
		before:        os.Getenv("BENCH_BEFORE"),
		rounds:        max(1, envInt("BENCH_ROUNDS", 10)),
		latRounds:     max(1, envInt("BENCH_LAT_ROUNDS", 8)),
		workers:       max(1, envInt("BENCH_WORKERS", 16)),
		uniqueCount:   envInt("BENCH_UNIQUE_TOKENS", 0),
		sat:           time.Duration(max(1, envInt("BENCH_SAT_SECONDS", 1))) * time.Second,
		lat:           time.Duration(envInt("BENCH_LAT_SECONDS", 2)) * time.Second,
		profileFor:    time.Duration(max(1, envInt("BENCH_PROFILE_SECONDS", 10))) * time.Second,
		profile:       os.Getenv("BENCH_PROFILE"),
		profileTarget: envOr("BENCH_PROFILE_TARGET", "gate RS256 cached, EdDSA assertion"),
		chart:         envOr("BENCH_CHART", ".data/bench-load.svg"),
	}
	if v := os.Getenv("BENCH_TARGETS"); v != "" {
		s.only = strings.Split(v, ",")
	}
	if s.uniqueCount == 0 {
		// Enough for the misses target at uniqueRate req/s through the
		// warm-up, every round and the open loop, in each Caddy process.
		secs := 1 + s.rounds*int(s.sat.Seconds()) + s.latRounds*int(s.lat.Seconds())
		s.uniqueCount = max(60000, uniqueRate*secs)
		if s.before != "" {
			s.uniqueCount *= 2
		}
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

// selected keeps bare, every peer, and the gate targets BENCH_TARGETS names
// (every non-optional one by default).
func selected(all []target, only []string) []target {
	var out []target
	for _, t := range all {
		keep := !t.optional && len(only) == 0
		for _, o := range only {
			keep = keep || strings.Contains(strings.ToLower(t.name), strings.ToLower(strings.TrimSpace(o)))
		}
		if keep || t.bare || t.peer {
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
	p := findPeers()
	tgts := selected(append(targets(keys), peerTargets(keys, p)...), s.only)
	if s.before != "" {
		tgts = withBefore(tgts)
	}
	st, err := startStack(dir, s, keys, tgts, p)
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

	fmt.Printf("bench-load: %d targets, %d rounds of %s saturated (%d workers), then %d pairs of %s open loop (bare, gate) per gate target; GOMAXPROCS of this machine is shared with Caddy and the upstream\n",
		len(tgts), s.rounds, s.sat, s.workers, s.latRounds, s.lat)
	if p.oauth2Proxy == "" && p.haproxy == "" && os.Getenv("BENCH_PEERS") != "off" {
		fmt.Println("  note: no peer on PATH (oauth2-proxy, haproxy); see docs/performance.md")
	}
	for _, t := range tgts { // warm-up: connections, caches and pools
		attack(st, t, s.workers, 0, time.Second)
	}
	res := results{sat: map[string][]float64{}, cpu: map[string][]float64{},
		baseSat: map[string][]float64{}, baseCPU: map[string][]float64{}}
	byName := map[string]target{}
	for _, t := range tgts {
		byName[t.name] = t
	}
	for round := range s.rounds {
		order := slices.Clone(tgts)
		// Rotate the order each round, so no target always runs first.
		order = append(order[round%len(order):], order[:round%len(order)]...)
		for _, t := range order {
			if b, ok := byName[t.baseline]; ok {
				// Its baseline right before it: the pair whose difference
				// is "added", seconds apart, so load that comes and goes
				// on the machine weighs on both alike.
				sat, cpu, err := measure(st, b, s, round)
				if err != nil {
					return err
				}
				res.baseSat[t.name] = append(res.baseSat[t.name], sat)
				res.baseCPU[t.name] = append(res.baseCPU[t.name], cpu)
			}
			sat, cpu, err := measure(st, t, s, round)
			if err != nil {
				return err
			}
			res.sat[t.name] = append(res.sat[t.name], sat)
			res.cpu[t.name] = append(res.cpu[t.name], cpu)
		}
	}
	rows := res.rows(tgts)
	if err := equalRate(st, s, tgts, rows); err != nil {
		return err
	}
	if keys.unique.dry.Load() {
		fmt.Println("  note: the unique-token pool ran dry; raise BENCH_UNIQUE_TOKENS")
	}
	printReport(rows, res, s.latRounds)
	if s.chart != "" {
		if err := writeChart(s.chart, rows, began); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		fmt.Printf("bench-load: chart in %s\n", s.chart)
	}
	if s.profile != "" {
		if err := profileTarget(st, tgts, s); err != nil {
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

// measure runs one saturated round of t: its throughput and the CPU time
// of its serving process per request served. A round that served nothing
// (the unique pool ran dry) has no CPU per request: NaN, left out of the
// medians.
func measure(st *stack, t target, s settings, round int) (sat, cpu float64, err error) {
	pid := st.pid(t)
	c0, _ := cpuTime(pid)
	r := attack(st, t, s.workers, 0, s.sat)
	c1, err := cpuTime(pid)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: CPU time: %w", t.name, err)
	}
	if r.Success < 0.999 {
		fmt.Printf("  round %d %-45s %.0f req/s, success %.3f %v %v\n", round+1, t.name, r.Throughput, r.Success, r.StatusCodes, firstErrors(r))
	}
	return r.Throughput, perRequest(c1-c0, served(r)), nil
}

// served is the requests answered without a transport error or a
// failure status: what a round's CPU time is divided by.
func served(m *vegeta.Metrics) uint64 {
	return uint64(math.Round(float64(m.Requests) * m.Success))
}

func firstErrors(m *vegeta.Metrics) []string {
	if len(m.Errors) > 3 {
		return m.Errors[:3]
	}
	return m.Errors
}

// median of xs, NaN values left out; NaN when nothing is left.
func median(xs []float64) float64 {
	s := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	return s[len(s)/2]
}
