package verify

import (
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/dpop"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// Store is the state of token verification that belongs to the process,
// not to one config: the remote key sets (keyed by issuer and key URL), the
// DPoP replay set, and the caches whose sizes the gauges show. Verifiers of
// successive configs share one Store, so `caddy reload` keeps the last good
// keys and the proofs of the last minute. The gate holds it through
// caddy.UsagePool; a test makes its own with NewStore. Revocation sets
// (issue 23) belong here too.
type Store struct {
	feeds  *keysource.Feeds
	replay *dpop.MemoryReplay

	mu     sync.Mutex
	caches map[Sizer]struct{} // verified-token caches of live verifiers
	tmpls  map[Sizer]struct{} // multi-tenant issuers of live verifiers
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
func NewStore() *Store {
	return &Store{
		feeds:  keysource.NewFeeds(),
		replay: dpop.NewMemoryReplay(time.Now),
		caches: map[Sizer]struct{}{},
		tmpls:  map[Sizer]struct{}{},
	}
}

// Destruct stops every key refresher and waits for it. It implements
// caddy.Destructor (the gate's UsagePool calls it when the last config
// using the store is gone). Idempotent.
func (s *Store) Destruct() error {
	s.feeds.Close()
	return nil
}

// Stats reads the size of every cache the store knows.
func (s *Store) Stats() Stats {
	st := Stats{ReplayCacheEntries: s.replay.Len(), KeySets: s.feeds.Len()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.caches {
		st.TokenCacheEntries += c.Len()
	}
	for t := range s.tmpls {
		st.HeldTenants += t.Len()
	}
	return st
}

// track adds a live verifier's caches to Stats; the returned func removes
// them (Close).
func (s *Store) track(cache Sizer, tmpls []Sizer) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cache != nil {
		s.caches[cache] = struct{}{}
	}
	for _, t := range tmpls {
		s.tmpls[t] = struct{}{}
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.caches, cache)
		for _, t := range tmpls {
			delete(s.tmpls, t)
		}
	}
}
