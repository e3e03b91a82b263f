package revocation

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantgate/tenantgate/module/ratelimit/redistest"
)

// countingObserver records what a store reports.
type countingObserver struct {
	mu     sync.Mutex
	errors map[string]int
	prop   []time.Duration
}

func (o *countingObserver) StoreError(op string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.errors == nil {
		o.errors = map[string]int{}
	}
	o.errors[op]++
}

func (o *countingObserver) Propagated(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prop = append(o.prop, d)
}

func (o *countingObserver) errs() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.errors {
		n += v
	}
	return n
}

func (o *countingObserver) propagated() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.prop)
}

func open(t *testing.T, url, prefix string, obs Observer) *Store {
	t.Helper()
	s, err := Open(StoreConfig{URL: url, KeyPrefix: prefix, Reconcile: 200 * time.Millisecond, Timeout: 300 * time.Millisecond,
		LoadTimeout: time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func revokedSub(s *Store, sub string) bool {
	_, r := s.Revoked(&Token{Issuer: "https://idp", Subject: sub, IssuedAt: time.Now().Add(-time.Minute)})
	return r
}

func TestLocalStore(t *testing.T) {
	s := open(t, "", "", nil)
	if s.Shared() {
		t.Fatal("shared without a URL")
	}
	e, shared, err := s.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("u1")}, time.Now()))
	if err != nil || shared || e.Expires.IsZero() {
		t.Fatalf("%+v %v %v", e, shared, err)
	}
	if !revokedSub(s, "u1") || len(s.Set().List()) != 1 {
		t.Fatal("not revoked")
	}
	if _, _, err := s.Revoke(context.Background(), Entry{Kind: KindSub}); err == nil {
		t.Fatal("an invalid entry was stored")
	}
	if s.Set().Len() != 1 {
		t.Fatal(s.Set().Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesABadURL(t *testing.T) {
	_, err := Open(StoreConfig{URL: "http://user:hunter2@x"})
	if err == nil {
		t.Fatal("accepted")
	}
	if got := err.Error(); strings.Contains(got, "hunter2") {
		t.Fatalf("password in error: %s", got)
	}
}

// restart runs a new redis-server on the port of a stopped one.
func restart(t *testing.T, old *redistest.Server) *redistest.Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(old.Addr)
	dir := t.TempDir()
	// #nosec G204 -- redis-server from PATH with arguments the test makes
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, "redis-server restarted", func() bool { return redistest.Answers(old.URL) })
	return &redistest.Server{URL: old.URL, Addr: old.Addr}
}

func TestSharedStorePropagatesAndLoads(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	obsA, obsB := &countingObserver{}, &countingObserver{}
	a := open(t, url, prefix, obsA)
	b := open(t, url, prefix, obsB)

	_, shared, err := a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("u1")}, time.Now()))
	if err != nil || !shared {
		t.Fatalf("shared %v err %v", shared, err)
	}
	if !revokedSub(a, "u1") {
		t.Fatal("not applied where it was made")
	}
	eventually(t, "the revocation at b", func() bool { return revokedSub(b, "u1") })
	eventually(t, "b's propagation observation", func() bool { return obsB.propagated() == 1 })

	// A replica started later loads the live entries before Open returns.
	_, _, _ = b.Revoke(context.Background(), mustEntry(t, Request{Tenant: ptr("acme")}, time.Now()))
	c := open(t, url, prefix, nil)
	if !revokedSub(c, "u1") || c.Set().Len() != 2 {
		t.Fatalf("late replica holds %d entries", c.Set().Len())
	}
	if obsA.errs()+obsB.errs() != 0 {
		t.Fatalf("errors: %v %v", obsA.errors, obsB.errors)
	}

	// Another prefix is another fleet.
	other := open(t, url, redistest.Prefix(t, url), nil)
	if other.Set().Len() != 0 {
		t.Fatal("prefixes leak")
	}
}

func TestSharedStoreKeepsTheLaterBefore(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	a := open(t, url, prefix, nil)
	now := time.Now()
	_, _, _ = a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("u1")}, now))
	_, _, _ = a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("u1"), Before: ptr(now.Add(-time.Hour).Format(time.RFC3339))}, now))
	late := open(t, url, prefix, nil)
	l := late.Set().List()
	if len(l) != 1 || !l[0].Before.Equal(now.UTC()) {
		t.Fatalf("%+v", l)
	}
}

func TestReconcileCatchesUpMissedMessages(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	b := open(t, url, prefix, nil)
	// Written straight to Redis without a publish: only reconcile sees it.
	e := mustEntry(t, Request{JTI: ptr("silent")}, time.Now())
	raw, _ := encodeEntry(e)
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	seq := c.Incr(ctx, prefix+keySeq).Val()
	c.HSet(ctx, prefix+keyEntries, e.ID, raw)
	c.ZAdd(ctx, prefix+keyOrder, redis.Z{Score: float64(seq), Member: e.ID})
	// And a malformed one, which is ignored and counted.
	c.HSet(ctx, prefix+keyEntries, "junk", `{"kind":"all"}`)
	c.ZAdd(ctx, prefix+keyOrder, redis.Z{Score: float64(c.Incr(ctx, prefix+keySeq).Val()), Member: "junk"})
	eventually(t, "reconcile", func() bool {
		_, r := b.Revoked(&Token{ID: "silent"})
		return r
	})
	if b.Set().Len() != 1 {
		t.Fatal(b.Set().Len())
	}
}

func TestRedisDown(t *testing.T) {
	srv := redistest.StartServer(t)
	prefix := "tenantgate-test:down:"
	obsA, obsB := &countingObserver{}, &countingObserver{}
	a := open(t, srv.URL, prefix, obsA)
	b := open(t, srv.URL, prefix, obsB)
	_, shared, _ := a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("before-outage")}, time.Now()))
	if !shared {
		t.Fatal("not shared while Redis was up")
	}
	eventually(t, "propagation", func() bool { return revokedSub(b, "before-outage") })

	srv.Stop()
	start := time.Now()
	e, shared, err := a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("during-outage")}, time.Now()))
	if err != nil || shared {
		t.Fatalf("shared %v err %v", shared, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a revocation waited %s on a dead store", took)
	}
	if !revokedSub(a, "during-outage") || !revokedSub(a, "before-outage") || !revokedSub(b, "before-outage") {
		t.Fatal("known or local revocations stopped applying")
	}
	if revokedSub(b, "during-outage") {
		t.Fatal("b cannot know it yet")
	}
	eventually(t, "errors counted", func() bool { return obsA.errs() >= 2 && obsB.errs() >= 1 })
	_ = e

	// A dead store never slows the check.
	checkStart := time.Now()
	for range 1000 {
		revokedSub(b, "x")
	}
	if time.Since(checkStart) > time.Second {
		t.Fatal("checks slowed by the dead store")
	}
}

func TestRedisComesBackAndPendingIsShared(t *testing.T) {
	// A Redis of our own that we stop and restart on the same port.
	srv := redistest.StartServer(t)
	prefix := "tenantgate-test:back:"
	a := open(t, srv.URL, prefix, nil)
	srv.Stop()
	_, shared, _ := a.Revoke(context.Background(), mustEntry(t, Request{Sub: ptr("made-while-down")}, time.Now()))
	if shared {
		t.Fatal("shared with Redis down")
	}
	srv2 := restart(t, srv)
	eventually(t, "the pending write", func() bool {
		opts, _ := redis.ParseURL(srv2.URL)
		c := redis.NewClient(opts)
		defer c.Close()
		return c.HLen(context.Background(), prefix+keyEntries).Val() == 1
	})
	late := open(t, srv2.URL, prefix, nil)
	if !revokedSub(late, "made-while-down") {
		t.Fatal("a replica started after the outage does not see it")
	}
}

func TestClosedPortStartsEmptyAndCounts(t *testing.T) {
	obs := &countingObserver{}
	start := time.Now()
	s := open(t, redistest.ClosedURL(t), "p:", obs)
	if time.Since(start) > 3*time.Second {
		t.Fatal("Open waited too long on a closed port")
	}
	if obs.errs() == 0 {
		t.Fatal("the failed load was not counted")
	}
	if _, _, err := s.Revoke(context.Background(), mustEntry(t, Request{JTI: ptr("j")}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, r := s.Revoked(&Token{ID: "j"}); !r {
		t.Fatal("local revocation does not apply")
	}
}

func TestFullSetRefusesAndStoresNothingShared(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	s, err := Open(StoreConfig{URL: url, KeyPrefix: prefix, Set: Options{MaxEntries: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Revoke(context.Background(), mustEntry(t, Request{JTI: ptr("1")}, time.Now())); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Revoke(context.Background(), mustEntry(t, Request{JTI: ptr("2")}, time.Now()))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err %v", err)
	}
	late := open(t, url, prefix, nil)
	if late.Set().Len() != 1 {
		t.Fatal("the refused entry reached the shared store")
	}
}

func TestMalformedMessagesAndFullReplicasAreCounted(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	obs := &countingObserver{}
	b, err := Open(StoreConfig{URL: url, KeyPrefix: prefix, Set: Options{MaxEntries: 1}, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := open(t, url, prefix, nil)
	opts, _ := redis.ParseURL(url)
	c := redis.NewClient(opts)
	defer c.Close()
	// go-redis subscribes in the background: wait until b listens.
	eventually(t, "b subscribed", func() bool {
		n, _ := c.PubSubNumSub(context.Background(), prefix+keyChannel).Result()
		return n[prefix+keyChannel] >= 2
	})
	c.Publish(context.Background(), prefix+keyChannel, `not json`)
	c.Publish(context.Background(), prefix+keyChannel, `{"kind":"sub","sub":"x","id":"forged","before":"2026-01-01T00:00:00Z"}`)
	eventually(t, "decode errors", func() bool { return obs.errs() >= 2 })
	for _, j := range []string{"1", "2"} {
		if _, _, err := a.Revoke(context.Background(), mustEntry(t, Request{JTI: ptr(j)}, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the refused apply", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.errors["apply"] >= 1
	})
	if b.Set().Len() != 1 {
		t.Fatal(b.Set().Len())
	}
	if Redacted("redis://u:pw@h:1") != "redis://u:xxxxx@h:1" || Redacted("::") != "(unparsable URL)" {
		t.Fatal(Redacted("redis://u:pw@h:1"))
	}
	var nop nopObserver
	nop.StoreError("x")
	nop.Propagated(0)
}

func TestClaimOnce(t *testing.T) {
	url := redistest.Redis(t)
	prefix := redistest.Prefix(t, url)
	a, b := open(t, url, prefix, nil), open(t, url, prefix, nil)
	ctx := context.Background()
	if fresh, err := a.ClaimOnce(ctx, "dpop:p1", time.Minute); !fresh || err != nil {
		t.Fatalf("first claim: %v %v", fresh, err)
	}
	if fresh, err := b.ClaimOnce(ctx, "dpop:p1", time.Minute); fresh || err != nil {
		t.Fatalf("the claim at another replica: %v %v", fresh, err)
	}
	if _, err := open(t, "", "", nil).ClaimOnce(ctx, "k", time.Second); !errors.Is(err, ErrNotShared) {
		t.Fatal(err)
	}
	obs := &countingObserver{}
	down := open(t, redistest.ClosedURL(t), "p:", obs)
	before := obs.errs()
	if _, err := down.ClaimOnce(ctx, "k", 0); err == nil || obs.errs() != before+1 {
		t.Fatalf("err %v, errors %d", err, obs.errs())
	}
}
