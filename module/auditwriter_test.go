package tenantgate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/logging" // the file output
)

// memOut is an output that records each write it gets.
type memOut struct {
	mu     sync.Mutex
	writes []string
	closed bool
}

func (m *memOut) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, string(p))
	return len(p), nil
}

func (m *memOut) Close() error { m.mu.Lock(); m.closed = true; m.mu.Unlock(); return nil }

func (m *memOut) all() (string, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.writes, ""), len(m.writes)
}

func TestLineBufferBatchesInOrder(t *testing.T) {
	out := &memOut{}
	b := newLineBuffer(out, time.Hour, 1<<20)
	var want strings.Builder
	for i := 0; i < 100; i++ {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if _, n := out.all(); n != 0 {
		t.Fatalf("%d writes before any flush", n)
	}
	flushAuditBuffers() // what a graceful stop does
	got, n := out.all()
	if got != want.String() || n != 1 {
		t.Fatalf("%d writes, %q", n, got)
	}
	_ = b.Close()
	if _, err := b.Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := out.all(); !strings.HasSuffix(got, "late\n") || !out.closed {
		t.Fatal("a write after Close was lost")
	}
}

func TestLineBufferFlushesOnSizeAndTime(t *testing.T) {
	out := &memOut{}
	b := newLineBuffer(out, time.Hour, 64)
	_, _ = b.Write(bytes.Repeat([]byte("x"), 70))
	if _, n := out.all(); n != 1 {
		t.Fatalf("a full buffer was not flushed (%d writes)", n)
	}
	_ = b.Close()

	out = &memOut{}
	b = newLineBuffer(out, 5*time.Millisecond, 1<<20)
	defer b.Close()
	_, _ = b.Write([]byte("soon\n"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := out.all(); got == "soon\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flush interval never flushed")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBufferedWriterModule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	bw := new(BufferedWriter)
	d := caddyfile.NewTestDispenser(fmt.Sprintf("tenantgate_buffered {\n flush_interval 20ms\n buffer_size 64KiB\n output file %s\n}", path))
	if err := bw.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if time.Duration(bw.FlushInterval) != 20*time.Millisecond || bw.BufferSize != 64<<10 {
		t.Fatalf("parsed %+v", bw)
	}
	var cfg map[string]any
	if err := json.Unmarshal(bw.WriterRaw, &cfg); err != nil || cfg["output"] != "file" || cfg["filename"] != path {
		t.Fatalf("inner writer %s", bw.WriterRaw)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := bw.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if bw.WriterKey() != "tenantgate_buffered:file:"+path || !strings.Contains(bw.String(), path) {
		t.Fatalf("key %q, name %q", bw.WriterKey(), bw.String())
	}
	w, err := bw.OpenWriter()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("{\"a\":1}\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "{\"a\":1}\n" {
		t.Fatalf("file holds %q", raw)
	}

	for _, c := range []struct{ src, want string }{
		{"tenantgate_buffered {\n flush_interval 0s\n output stderr\n}", "flush_interval"},
		{"tenantgate_buffered {\n buffer_size lots\n output stdout\n}", "buffer_size"},
		{"tenantgate_buffered {\n}", "needs an output"},
		{"tenantgate_buffered {\n colour red\n}", "unrecognized"},
		{"tenantgate_buffered extra", "wrong argument count"},
		{"tenantgate_buffered {\n output nosuchwriter\n}", "nosuchwriter"},
	} {
		err := new(BufferedWriter).UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
	if err := new(BufferedWriter).Provision(ctx); err == nil {
		t.Error("a buffered writer without an output was provisioned")
	}
}
