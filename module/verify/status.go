package verify

// What the verifier reports of its keys, for the admin and tests.

// KeyStatus reports per issuer how many usable keys are loaded (0: none yet).
func (v *Verifier) KeyStatus() map[string]int {
	out := make(map[string]int, len(v.issuers))
	for name, is := range v.issuers {
		if ks := is.src.Keys(); ks != nil {
			out[name] = len(ks.All)
		} else {
			out[name] = 0
		}
	}
	for _, t := range v.templates {
		out[t.keys.Issuer()] = t.keys.KeyCount()
	}
	return out
}

// TenantStatus reports per multi-tenant issuer how many tenants' key sets
// are held.
func (v *Verifier) TenantStatus() map[string]int {
	out := make(map[string]int, len(v.templates))
	for _, t := range v.templates {
		out[t.keys.Issuer()] = t.keys.Len()
	}
	return out
}
