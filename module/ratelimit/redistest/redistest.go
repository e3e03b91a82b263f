// Package redistest gives tests a real Redis: the one at
// TENANTGATE_TEST_REDIS (default redis://127.0.0.1:6379), else a
// redis-server of their own on a free loopback port, with a key prefix of
// their own that is deleted afterwards. Without either, tests skip with a
// loud message, or fail when TENANTGATE_REQUIRE_SERVICES=1 (CI).
//
// It never stops or reconfigures a Redis it did not start.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is where this project's machines run Redis.
const DefaultURL = "redis://127.0.0.1:6379"

// TB is the part of testing.TB (and of Ginkgo's GinkgoT()) used here.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

var _ TB = (testing.TB)(nil)

// URL is the shared Redis the tests use.
func URL() string {
	if u := os.Getenv("TENANTGATE_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultURL
}

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool { return os.Getenv("TENANTGATE_REQUIRE_SERVICES") == "1" }

// Answers reports whether a Redis at rawURL answers PING within a second.
func Answers(rawURL string) bool {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return false
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

var (
	sharedOnce sync.Once
	sharedOK   bool
)

// Redis returns the URL of a Redis the test may use: the shared one when it
// answers, else one started for this test. It skips (or fails, when
// required) when there is neither.
func Redis(t TB) string {
	t.Helper()
	sharedOnce.Do(func() { sharedOK = Answers(URL()) })
	if sharedOK {
		return URL()
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		return Start(t)
	}
	Missing(t, fmt.Sprintf("no Redis answers at %s (TENANTGATE_TEST_REDIS) and no redis-server binary is on PATH", URL()))
	return ""
}

// Missing skips the test loudly, or fails it when services are required.
func Missing(t TB, why string) {
	t.Helper()
	msg := "!!! REDIS NOT AVAILABLE: " + why + ": this Redis test is SKIPPED (TENANTGATE_REQUIRE_SERVICES=1 makes it fail)"
	if Required() {
		t.Fatalf("%s", msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skipf("%s", msg)
}

// Prefix returns a key prefix no other test uses; every key under it (and
// under redis_rate's "rate:" in front of it) is deleted when the test ends.
func Prefix(t TB, redisURL string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "tenantgate-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { DeletePrefix(redisURL, prefix) })
	return prefix
}

// DeletePrefix deletes the keys of a prefix (as redis_rate stores them).
func DeletePrefix(redisURL, prefix string) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	}
}

// Server is a redis-server started by a test.
type Server struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
}

// Start runs a redis-server of the test's own on a free loopback port
// (no persistence) and stops it when the test ends.
func Start(t TB) string {
	t.Helper()
	return StartServer(t).URL
}

// StartServer is Start, returning the server so the test can stop it early.
func StartServer(t TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "no redis-server binary on PATH")
		return nil
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	// #nosec G204 -- redis-server from PATH with arguments this function makes
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s := &Server{URL: "redis://" + addr, Addr: addr, cmd: cmd}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for !Answers(s.URL) {
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("redis-server on %s did not answer (log in %s)", addr, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Stop ends the server (idempotent).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// FreeAddr is a loopback address nothing listens on (right now).
func FreeAddr(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ClosedURL is a Redis URL on a loopback port where nothing listens.
func ClosedURL(t TB) string {
	t.Helper()
	return "redis://" + FreeAddr(t)
}

// SlowProxy forwards TCP to the Redis of redisURL, holding every chunk
// from Redis back by delay: a Redis that answers, slowly. It returns the
// proxy's Redis URL (same path, user and query) and stops with the test.
func SlowProxy(t TB, redisURL string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatalf("redis URL: %v", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), strconv.Itoa(6379))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(server, client); _ = server.Close() }()
			go func() { defer wg.Done(); copyDelayed(client, server, delay); _ = client.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	u.Host = l.Addr().String()
	return u.String()
}

func copyDelayed(dst io.Writer, src io.Reader, delay time.Duration) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(delay)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
