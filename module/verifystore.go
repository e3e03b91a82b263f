package tenantgate

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/verify"
)

// verifyStores holds the process's one verify.Store while any config uses
// it, as reverseproxy/hosts.go holds upstream hosts.
var verifyStores = caddy.NewUsagePool()

const verifyStoreKey = "tenant_gate.verify"

// acquireStore returns the process's store, made on first use; every call
// must be paired with a Delete of verifyStoreKey (Cleanup).
func acquireStore() *verify.Store {
	st, _, _ := verifyStores.LoadOrNew(verifyStoreKey, func() (caddy.Destructor, error) { return verify.NewStore(), nil })
	return st.(*verify.Store)
}

// storeStats are the sizes of the process's caches (zero while no config
// holds the store), for the gauges.
func storeStats() verify.Stats {
	var st verify.Stats
	verifyStores.Range(func(_, v any) bool {
		st = v.(*verify.Store).Stats()
		return false
	})
	return st
}

var _ caddy.Destructor = (*verify.Store)(nil)
