package verify

import "time"

// What the verifier reports of its keys: outcomes to the Observer, and
// the key and tenant counts the gate exposes as gauges.

func (v *Verifier) observe(issuer string, ok bool, keys int, at time.Time) {
	if v.cfg.Observer != nil {
		v.cfg.Observer.JWKSRefresh(issuer, ok, keys, at)
	}
}

func (v *Verifier) observeTemplate(issuer string, tenants, keys int) {
	if o, ok := v.cfg.Observer.(TemplateObserver); ok {
		o.IssuerTenants(issuer, tenants, keys)
	}
}

func (v *Verifier) inUse(issuer string, keys int, lastSuccess time.Time) {
	if v.cfg.Observer != nil {
		v.cfg.Observer.JWKSInUse(issuer, keys, lastSuccess)
	}
}

// KeyStatus reports per issuer how many usable keys are loaded (0: none yet).
func (v *Verifier) KeyStatus() map[string]int {
	out := make(map[string]int, len(v.issuers))
	for name, is := range v.issuers {
		if ks := is.src.keys(); ks != nil {
			out[name] = len(ks.all)
		} else {
			out[name] = 0
		}
	}
	for _, t := range v.templates {
		out[t.cfg.Issuer] = t.keyCount()
	}
	return out
}

// TenantStatus reports per multi-tenant issuer how many tenants' key sets
// are held.
func (v *Verifier) TenantStatus() map[string]int {
	out := make(map[string]int, len(v.templates))
	for _, t := range v.templates {
		out[t.cfg.Issuer] = t.heldTenants()
	}
	return out
}
