package limiter

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

func newRedis(t *testing.T, url, prefix string, timeout time.Duration) *Redis {
	t.Helper()
	r, err := NewRedis(url, timeout, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Two stores on one Redis are two gate replicas: they share every tenant's
// counters, and tenants stay apart.
func TestRedisSharedAcrossStores(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	s := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "10/m", Burst: 4})
	p := s.Policies[0]
	a, b := newRedis(t, url, prefix, time.Second), newRedis(t, url, prefix, time.Second)
	ctx := context.Background()
	allowed := 0
	for i := 0; i < 10; i++ {
		store := a
		if i%2 == 1 {
			store = b
		}
		res, err := store.Allow(ctx, "acme", p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			allowed++
		} else if res.RetryAfter <= 0 || res.RetryAfter > 6*time.Second || res.Remaining != 0 {
			t.Fatalf("denied result %+v", res)
		}
	}
	if allowed != 4 {
		t.Fatalf("%d of 10 allowed across two stores, want the burst of 4", allowed)
	}
	res, err := b.Allow(ctx, "globex", p)
	if err != nil || !res.Allowed || res.Remaining != 3 {
		t.Fatalf("globex: %+v, %v", res, err)
	}
	if !strings.HasPrefix(a.KeyFor("acme", p), prefix) {
		t.Fatalf("key %q outside the prefix", a.KeyFor("acme", p))
	}
}

func TestRedisDownFailsFast(t *testing.T) {
	s := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "10/s"})
	r := newRedis(t, redistest.ClosedURL(t), "x:", 50*time.Millisecond)
	start := time.Now()
	_, err := r.Allow(context.Background(), "acme", s.Policies[0])
	if err == nil {
		t.Fatal("no error from a Redis that is not there")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a refused connection took %s", took)
	}
}

// A Redis slower than the timeout: the answer is an error, not a stall.
func TestRedisSlowTimesOut(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	slow := redistest.SlowProxy(t, url, 300*time.Millisecond)
	s := mustSet(t, Limit{Methods: []string{"*"}, Pattern: "/**", Rate: "10/s"})
	r := newRedis(t, slow, prefix, 50*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Allow(ctx, "acme", s.Policies[0])
	if err == nil {
		t.Fatal("a Redis 300ms slow answered within 50ms")
	}
	// The error must be the deadline, not any failure: a refused or broken
	// connection would pass "err != nil" without testing the timeout.
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("error %v (%T): want the deadline or a network timeout", err, err)
	}
	// Redis itself answers without the slow proxy in between: the error was
	// the slowness, not a Redis that is not there.
	fast := newRedis(t, url, prefix, time.Second)
	if res, err := fast.Allow(context.Background(), "acme", s.Policies[0]); err != nil || !res.Allowed {
		t.Fatalf("direct store after the timeout: %+v, %v", res, err)
	}
}

func TestParseStoreURL(t *testing.T) {
	for _, good := range []string{"redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example.com:6380", "unix:///run/redis.sock"} {
		if _, err := ParseStoreURL(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/x", "redis://:s3cret@host:6379/zz", "not a url", "redis://h:6379?bogus=1"} {
		_, err := ParseStoreURL(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error repeats the password: %v", err)
		}
		if !strings.Contains(err.Error(), "want redis://") {
			t.Errorf("error does not say what to write: %v", err)
		}
	}
	if _, err := NewRedis("http://x", time.Second, ""); err == nil {
		t.Error("NewRedis accepted http://")
	}
}
