package main

import (
	"fmt"
	"os"
)

// target is one row of the benchmark: a Caddy site (its own port on
// loopback) and the tokens sent to it. Every target gets the same request
// (method, path, headers and a token of the same size), so only what the
// site does differs.
//
// To add a target, append to targets(): give it a name, the body of its
// tenant_gate block (empty for no gate), extra site directives (e.g. a
// tenant_rate_limit block) and a token source.
type target struct {
	name string
	// gate is the tenant_gate block's body without the issuer and rules,
	// which every gate shares; "" means no tenant_gate at all.
	gate string
	// extra holds site directives placed after tenant_gate, before reverse_proxy.
	extra string
	// tokens hands out the bearer token of each request.
	tokens tokenSource
	// bare marks the baseline the others are compared with.
	bare bool
	// optional targets run only when BENCH_TARGETS names them.
	optional bool
	// proofs, when set, sends the tokens as Authorization: DPoP with a
	// fresh proof per request.
	proofs *dpopSource
}

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
	return []target{
		{name: "bare reverse_proxy", bare: true, tokens: k.cycling},
		{name: "gate RS256 cached, EdDSA assertion", gate: ed25519Assertion, tokens: k.cycling},
		{name: "gate RS256 cached, HS256 assertion", gate: hs256Assertion, tokens: k.cycling},
		{name: "gate EdDSA unique (misses), EdDSA assertion", gate: ed25519Assertion, tokens: k.unique},
		{name: "gate RS256 cache off, EdDSA assertion", gate: ed25519Assertion + "\n\t\ttoken_cache off", tokens: k.cycling, optional: true},
		{name: "gate RS256 cached, EdDSA, rate limit memory", gate: ed25519Assertion, extra: memoryLimit, tokens: k.cycling, optional: true},
		{name: "gate RS256 cached, EdDSA, rate limit redis", gate: ed25519Assertion, extra: redisLimit, tokens: k.cycling, optional: true},
		{name: "gate RS256 cached + DPoP ES256 proof, EdDSA", gate: ed25519Assertion + "\n\t\tdpop_algorithms ES256", tokens: k.dpop, proofs: k.dpop, optional: true},
	}
}
