package keysource

import "github.com/tenantgate/tenantgate/module/verify/jose"

// maxRemovedKids bounds the kids a feed remembers as removed: past it the
// oldest are forgotten (a token naming one then costs a refetch again, as
// an unknown kid does).
const maxRemovedKids = 256

// removedKids are the kids the IdP published and later dropped, oldest
// first, for as long as they stay dropped: a token naming one is answered
// unknown_key at once, with no refetch, however many fetches ago the key
// left. A kid published again leaves the set. Callers hold the feed's mu.
type removedKids struct {
	m     map[string]struct{}
	order []string // insertion order; may hold kids already deleted from m
}

func (r *removedKids) has(kid string) bool {
	_, ok := r.m[kid]
	return ok
}

func (r *removedKids) len() int { return len(r.m) }

// update records the kids old had and next lacks, and forgets the kids
// next has.
func (r *removedKids) update(old, next *jose.KeySet) {
	if r.m == nil {
		r.m = map[string]struct{}{}
	}
	for kid := range next.ByKid {
		delete(r.m, kid)
	}
	if old != nil {
		for kid := range old.ByKid {
			if next.ByKid[kid] == nil && !r.has(kid) {
				r.m[kid] = struct{}{}
				r.order = append(r.order, kid)
			}
		}
	}
	// Drop deleted kids from the order, then the oldest past the bound.
	kept := r.order[:0]
	for _, kid := range r.order {
		if r.has(kid) {
			kept = append(kept, kid)
		}
	}
	for len(kept) > maxRemovedKids {
		delete(r.m, kept[0])
		kept = kept[1:]
	}
	r.order = kept
}
