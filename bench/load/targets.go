package main

import (
	"fmt"
	"os"
	"strings"
)

// Processes a target can be served by.
const (
	procCaddy       = "caddy"        // bin/caddy (BENCH_CADDY)
	procCaddyBefore = "caddy-before" // BENCH_BEFORE: an older build, same sites
	procOAuth2Proxy = "oauth2-proxy" // peer, when on PATH
	procHAProxy     = "haproxy"      // peer, when on PATH
)

// beforePrefix names the targets served by the BENCH_BEFORE binary.
const beforePrefix = "before: "

// target is one row of the benchmark: a site (its own port on loopback, in
// the process proc) and the tokens sent to it. Every target gets the same
// request (method, path, headers and a token of the same size), so only what
// the site does differs.
//
// To add a gate target, append to targets(): give it a name, the body of its
// tenant_gate block (empty for no gate), extra site directives (e.g. a
// tenant_rate_limit block) and a token source.
type target struct {
	name string
	// proc is the process serving the target (procCaddy unless a peer or
	// the BENCH_BEFORE build).
	proc string
	// gate is the tenant_gate block's body without the issuer and rules,
	// which every gate shares; "" means no tenant_gate at all.
	gate string
	// extra holds site directives placed after tenant_gate, before reverse_proxy.
	extra string
	// proxyOpts is the body of the reverse_proxy block ("" for none).
	proxyOpts string
	// floor marks the site with no gate that carries the gate's headers:
	// the gate targets' own work is read over it.
	floor bool
	// tokens hands out the bearer token of each request.
	tokens tokenSource
	// bare marks the baseline the others are compared with.
	bare bool
	// baseline is the target whose CPU per request, in the same round,
	// this one's "added" column subtracts ("" for none: bare, oauth2-proxy).
	baseline string
	// optional targets run only when BENCH_TARGETS names them.
	optional bool
	// peer marks another product (oauth2-proxy, HAProxy), not tenantgate.
	peer bool
	// proofs, when set, sends the tokens as Authorization: DPoP with a
	// fresh proof per request.
	proofs *dpopSource
}

// bareName is the baseline target of the Caddy process.
const bareName = "bare reverse_proxy"

// targets is the benchmark's table. The bare site gets a cached RS256
// token too, so every request has the same size on the wire.
func targets(k *benchKeys) []target {
	ed25519Assertion := fmt.Sprintf("assertion_key %s", k.assertionKeyPath)
	hs256Assertion := "assertion_alg HS256\n\t\tassertion_secret {env.TG_BENCH_ASSERTION_SECRET}"
	// The limits never refuse (the rate is far above what 2 cores serve):
	// these targets measure what counting costs, per store.
	memoryLimit := "tenant_rate_limit {\n\t\tlimit * /** 1000000/s burst 1000000\n\t}"
	redisURL := os.Getenv("TENANTGATE_TEST_REDIS")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379"
	}
	redisLimit := fmt.Sprintf("tenant_rate_limit {\n\t\tstore %s\n\t\tkey_prefix tgbench:\n\t\tlimit * /** 1000000/s burst 1000000\n\t}", redisURL)
	gate := func(t target) target {
		t.proc, t.baseline = procCaddy, bareName
		return t
	}
	return []target{
		{name: bareName, proc: procCaddy, bare: true, tokens: k.cycling},
		// Not a gate: bare reverse_proxy made to carry what the gate adds on
		// the wire (its five request headers, an assertion-sized value, the
		// response's X-Request-ID, no Authorization), so the report can tell
		// the cost of the contract's headers from the gate's own work.
		gate(target{name: "bare + the gate's headers (no gate)", proxyOpts: gateHeadersOnly, floor: true, tokens: k.cycling}),
		gate(target{name: "gate RS256 cached, EdDSA assertion", gate: ed25519Assertion, tokens: k.cycling}),
		gate(target{name: "gate RS256 cached, HS256 assertion", gate: hs256Assertion, tokens: k.cycling}),
		gate(target{name: "gate EdDSA unique (misses), EdDSA assertion", gate: ed25519Assertion, tokens: k.unique}),
		gate(target{name: "gate RS256 cache off, EdDSA assertion", gate: ed25519Assertion + "\n\t\ttoken_cache off", tokens: k.cycling, optional: true}),
		gate(target{name: "gate RS256 cached, EdDSA, rate limit memory", gate: ed25519Assertion, extra: memoryLimit, tokens: k.cycling, optional: true}),
		gate(target{name: "gate RS256 cached, EdDSA, rate limit redis", gate: ed25519Assertion, extra: redisLimit, tokens: k.cycling, optional: true}),
		gate(target{name: "gate RS256 cached + DPoP ES256 proof, EdDSA", gate: ed25519Assertion + "\n\t\tdpop_algorithms ES256", tokens: k.dpop, proofs: k.dpop, optional: true}),
	}
}

// peerTargets are the other products found on PATH, run on the same
// request with the same cycling RS256 tokens.
func peerTargets(k *benchKeys, p peers) []target {
	var out []target
	if p.oauth2Proxy != "" {
		out = append(out, target{name: "oauth2-proxy (JWT bearer)", proc: procOAuth2Proxy, peer: true, tokens: k.cycling})
	}
	if p.haproxy != "" {
		out = append(out,
			target{name: "haproxy bare", proc: procHAProxy, peer: true, tokens: k.cycling},
			target{name: "haproxy jwt_verify RS256", proc: procHAProxy, peer: true, baseline: "haproxy bare", tokens: k.cycling})
	}
	return out
}

// withBefore adds, for the Caddy targets of tgts, the same sites served by
// the BENCH_BEFORE build, named "before: …" and compared with its own bare.
func withBefore(tgts []target) []target {
	out := tgts
	for _, t := range tgts {
		if t.proc != procCaddy {
			continue
		}
		b := t
		b.name, b.proc, b.bare = beforePrefix+t.name, procCaddyBefore, false
		if t.bare {
			b.baseline = ""
		} else {
			b.baseline = beforePrefix + t.baseline
		}
		out = append(out, b)
	}
	return out
}

// gateHeadersOnly is the body of a reverse_proxy block giving a bare site
// the headers an allowed request leaves the gate with, set by
// reverse_proxy itself (no extra handler): the values have the sizes of the
// bench's real ones (an HS256 assertion of the bench's claims is about 380
// bytes); the request id is Caddy's, as the gate's is.
var gateHeadersOnly = "header_up -Authorization\n" +
	"\t\theader_up X-Tenant-ID acme\n" +
	"\t\theader_up X-User-ID user-0123456789abcdef\n" +
	"\t\theader_up X-User-Roles ensemble:read,hedging:read\n" +
	"\t\theader_up X-Tenant-Assertion " + strings.Repeat("A", 380) + "\n" +
	"\t\theader_up X-Request-ID {http.request.uuid}\n" +
	"\t\theader_down X-Request-ID {http.request.uuid}"
