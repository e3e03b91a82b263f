package tenantgate

import (
	"errors"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
)

// processState is what the process keeps across configs, in one value:
// the verify store (key feeds, the DPoP replay set, the caches the gauges
// read), the revocation store and, with shared_store, the Redis client
// behind it (revocation sync, DPoP replay claims), and the DPoP nonce
// secret. Every tenant_gate of every loaded config that names the same
// shared_store (URL and prefix; "" for none) holds the same one through
// processStates, as reverseproxy/hosts.go holds upstream hosts: a reload
// keeps it, since the new config takes its reference before the old one
// lets go, and the last Delete calls Destruct, which stops all its
// background work. Tests get their own through their own prefix, or make
// the parts directly (verify.NewStore, revocation.Open).
type processState struct {
	*revocation.Store               // revocations; the shared Redis client
	verify            *verify.Store // key feeds, DPoP replay set, cache gauges
	nonces            nonceState    // DPoP nonce secret (dpop_nonce.go)
}

var processStates = caddy.NewUsagePool()

// acquireProcessState returns the state of key, opening its revocation
// store (and loading the shared entries) the first time. Every successful
// call must be paired with a Delete of key (releaseProcessState).
func acquireProcessState(key string, open func() (*revocation.Store, error)) (*processState, error) {
	v, _, err := processStates.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := open()
		if err != nil {
			return nil, err
		}
		return &processState{Store: st, verify: verify.NewStore()}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*processState), nil
}

// Destruct implements caddy.Destructor: the nonce secret's sync, the
// revocation store's loops and Redis client, then the key refreshers.
func (p *processState) Destruct() error {
	p.nonces.stop()
	return errors.Join(p.Close(), p.verify.Destruct())
}

// liveStates are the states of the loaded configs.
func liveStates() []*processState {
	var out []*processState
	processStates.Range(func(_, v any) bool {
		out = append(out, v.(*processState))
		return true
	})
	return out
}

// storeStats are the sizes of the process's caches (zero while no config
// holds a state), for the gauges: summed over the live states, of which
// there is one unless configs name different shared stores.
func storeStats() verify.Stats {
	var st verify.Stats
	for _, p := range liveStates() {
		s := p.verify.Stats()
		st.TokenCacheEntries += s.TokenCacheEntries
		st.ReplayCacheEntries += s.ReplayCacheEntries
		st.HeldTenants += s.HeldTenants
		st.KeySets += s.KeySets
	}
	return st
}

var _ caddy.Destructor = (*processState)(nil)
