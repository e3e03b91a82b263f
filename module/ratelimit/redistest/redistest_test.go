package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestOwnServerStartsAndStops(t *testing.T) {
	s := StartServer(t)
	if !Answers(s.URL) {
		t.Fatal("own redis-server does not answer")
	}
	s.Stop()
	s.Stop() // idempotent
	if Answers(s.URL) {
		t.Fatal("own redis-server still answers after Stop")
	}
}

func TestPrefixIsDeleted(t *testing.T) {
	url := Redis(t)
	var prefix string
	t.Run("uses", func(t *testing.T) {
		prefix = Prefix(t, url)
		c := client(t, url)
		for _, k := range []string{prefix + "a", "rate:" + prefix + "b"} {
			if err := c.Set(context.Background(), k, "1", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	c := client(t, url)
	n, err := c.Exists(context.Background(), prefix+"a", "rate:"+prefix+"b").Result()
	if err != nil || n != 0 {
		t.Fatalf("%d keys of the prefix left (%v)", n, err)
	}
}

func TestSlowProxyDelays(t *testing.T) {
	url := Redis(t)
	slow := SlowProxy(t, url, 200*time.Millisecond)
	c := client(t, slow)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING through a 200ms proxy answered within 50ms")
	}
	if !Answers(slow) {
		t.Fatal("the proxy does not forward at all")
	}
}

func TestClosedURLDoesNotAnswer(t *testing.T) {
	if Answers(ClosedURL(t)) || Answers("http://nope") {
		t.Fatal("answers")
	}
	if URL() == "" {
		t.Fatal("no URL")
	}
}

func client(t *testing.T, url string) *redis.Client {
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
