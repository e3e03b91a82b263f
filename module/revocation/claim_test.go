package revocation

import (
	"context"
	"errors"
	"testing"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// TestGetOrSet: the first value stored wins at every replica, a lost key is
// stored again, and a store without Redis or with Redis down says so.
func TestGetOrSet(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	a, b := open(t, url, prefix, nil), open(t, url, prefix, nil)
	ctx := context.Background()
	if v, err := a.GetOrSet(ctx, "secret", "from-a"); v != "from-a" || err != nil {
		t.Fatalf("first writer: %q %v", v, err)
	}
	if v, err := b.GetOrSet(ctx, "secret", "from-b"); v != "from-a" || err != nil {
		t.Fatalf("second replica got %q %v, want the first writer's value", v, err)
	}
	if err := a.shared.client.Del(ctx, prefix+"secret").Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetOrSet(ctx, "secret", "from-b"); v != "from-b" || err != nil {
		t.Fatalf("after the key was lost: %q %v", v, err)
	}
	if _, err := open(t, "", "", nil).GetOrSet(ctx, "k", "v"); !errors.Is(err, ErrNotShared) {
		t.Fatal(err)
	}
	if _, err := open(t, redistest.ClosedURL(t), "p:", nil).GetOrSet(ctx, "k", "v"); err == nil {
		t.Fatal("no error from a closed port")
	}
}
