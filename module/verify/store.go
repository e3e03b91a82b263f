package verify

import (
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// Store is the state of token verification that belongs to the process,
// not to one config: the remote key sets (keyed by issuer and key URL) and
// their one refresh scheduler, the held tenants of every multi-tenant
// issuer with their LRU bound and new-tenant budget (keyed like the key
// sets, {tenant} unreplaced), the DPoP replay set, and the caches whose
// sizes the gauges show. Verifiers of successive configs share one Store,
// so `caddy reload` keeps the last good keys, the held tenants and the
// proofs of the last minute. The gate holds it inside its process state
// (module/processstate.go: one caddy.UsagePool value per shared store,
// beside the revocation store and the DPoP nonce secret); a test makes its
// own with NewStore.
type Store struct {
	feeds  *keysource.Feeds
	replay *dpop.MemoryReplay

	mu     sync.Mutex
	caches map[Sizer]struct{} // verified-token caches of live verifiers
}

// Sizer is what every bounded cache reports for its gauge: how many
// entries it holds now (an estimate while entries come and go).
type Sizer interface{ Len() int }

// Stats are the sizes of the process's caches, for the gauges.
type Stats struct {
	TokenCacheEntries  int // tenantgate_token_cache_entries
	ReplayCacheEntries int // tenantgate_dpop_replay_cache_entries
	HeldTenants        int // tenants' key sets held, over every multi-tenant issuer
	KeySets            int // remote key sets held, idle ones included
}

// NewStore returns an empty store. Destruct stops its background work.
func NewStore() *Store { return newStoreWith(keysource.DefaultLimits) }

// newStoreWith is a store whose multi-tenant issuers spend the new-tenant
// budget l; tests that hold thousands of tenants lift it.
func newStoreWith(l keysource.Limits) *Store {
	return &Store{
		feeds:  keysource.NewFeedsWith(l),
		replay: dpop.NewMemoryReplay(time.Now),
		caches: map[Sizer]struct{}{},
	}
}

// Destruct stops the key refresh scheduler and every fetch, and waits. It implements
// caddy.Destructor (the gate's UsagePool calls it when the last config
// using the store is gone). Idempotent.
func (s *Store) Destruct() error {
	s.feeds.Close()
	return nil
}

// Stats reads the size of every cache the store knows.
func (s *Store) Stats() Stats {
	st := Stats{ReplayCacheEntries: s.replay.Len(), KeySets: s.feeds.Len(), HeldTenants: s.feeds.HeldTenants()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.caches {
		st.TokenCacheEntries += c.Len()
	}
	return st
}

// track adds a live verifier's token cache to Stats; the returned func
// removes it (Close).
func (s *Store) track(cache Sizer) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caches[cache] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.caches, cache)
	}
}
