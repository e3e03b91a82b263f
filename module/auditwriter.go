package tenantgate

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

func init() {
	caddy.RegisterModule(BufferedWriter{})
}

// Defaults of the buffered log writer: a crash loses at most the records
// of the last flush interval (and never more than the buffer holds).
const (
	DefaultFlushInterval = 10 * time.Millisecond
	DefaultBufferBytes   = 256 << 10
)

// BufferedWriter is a log output (caddy.logging.writers.tenantgate_buffered)
// that collects log lines in memory and hands them to the output it wraps
// (file, net, …) in one write every flush_interval, or sooner when
// buffer_size is reached: one write(2) per batch instead of one per
// record. Lines are kept whole and in order. It flushes when the writer
// is closed and, on a graceful stop, when tenant_gate cleans up (after its
// closing chain record); a reload keeps the same writer (Caddy shares
// writers by key), so nothing is lost across it. A crash loses at most the
// lines of the last flush_interval.
type BufferedWriter struct {
	// The output written to, e.g. {"output": "file", "filename": "/var/log/audit.log"}.
	WriterRaw json.RawMessage `json:"writer,omitempty" caddy:"namespace=caddy.logging.writers inline_key=output"`
	// Longest time a line waits in memory. Default: 10ms
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// Bytes buffered before a flush is forced. Default: 256KiB
	BufferSize int `json:"buffer_size,omitempty"`

	inner caddy.WriterOpener
}

// CaddyModule returns the Caddy module information.
func (BufferedWriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.writers.tenantgate_buffered",
		New: func() caddy.Module { return new(BufferedWriter) },
	}
}

// Provision loads the wrapped output and fills defaults.
func (bw *BufferedWriter) Provision(ctx caddy.Context) error {
	if bw.WriterRaw == nil {
		return fmt.Errorf("tenantgate_buffered: an output to write to is required (e.g. output file /var/log/audit.log)")
	}
	mod, err := ctx.LoadModule(bw, "WriterRaw")
	if err != nil {
		return fmt.Errorf("tenantgate_buffered: loading its output: %w", err)
	}
	bw.inner = mod.(caddy.WriterOpener)
	if bw.FlushInterval <= 0 {
		bw.FlushInterval = caddy.Duration(DefaultFlushInterval)
	}
	if bw.BufferSize <= 0 {
		bw.BufferSize = DefaultBufferBytes
	}
	return nil
}

func (bw *BufferedWriter) String() string {
	return fmt.Sprintf("buffered (%s) %s", time.Duration(bw.FlushInterval), bw.inner)
}

// WriterKey is the wrapped output's key: a reload, even one that changes
// flush_interval, keeps writing through the same buffer, so lines cannot
// overtake each other between an old and a new buffer.
func (bw *BufferedWriter) WriterKey() string { return "tenantgate_buffered:" + bw.inner.WriterKey() }

// OpenWriter opens the wrapped output and the buffer in front of it.
func (bw *BufferedWriter) OpenWriter() (io.WriteCloser, error) {
	w, err := bw.inner.OpenWriter()
	if err != nil {
		return nil, err
	}
	return newLineBuffer(w, time.Duration(bw.FlushInterval), bw.BufferSize), nil
}

// UnmarshalCaddyfile reads:
//
//	output tenantgate_buffered {
//	    flush_interval <duration>
//	    buffer_size <size>
//	    output <writer> <args...> { ... }
//	}
func (bw *BufferedWriter) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the writer's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "flush_interval":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("flush_interval %q: want a positive duration", s)
			}
			bw.FlushInterval = caddy.Duration(dur)
		case "buffer_size":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > 1<<30 {
				return d.Errf("buffer_size %q: want a size such as 256KiB", s)
			}
			bw.BufferSize = int(n) // #nosec G115 -- bounded above
		case "output":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			var wo caddy.WriterOpener
			switch name {
			case "stdout":
				wo = caddy.StdoutWriter{}
			case "stderr":
				wo = caddy.StderrWriter{}
			default:
				unm, err := caddyfile.UnmarshalModule(d, "caddy.logging.writers."+name)
				if err != nil {
					return err
				}
				var ok bool
				if wo, ok = unm.(caddy.WriterOpener); !ok {
					return d.Errf("module %s is not a log output", name)
				}
			}
			bw.WriterRaw = caddyconfig.JSONModuleObject(wo, "output", name, nil)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	if bw.WriterRaw == nil {
		return d.Err("tenantgate_buffered needs an output, e.g. output file /var/log/audit.log")
	}
	return nil
}

// lineBuffer batches writes. Write appends under mu; a flush swaps the
// buffer out under mu and writes it under flushMu, so appends do not wait
// for the disk and batches reach the output in order.
type lineBuffer struct {
	out      io.WriteCloser
	interval time.Duration
	limit    int

	mu      sync.Mutex
	buf     []byte
	spare   []byte
	timer   *time.Timer
	pending bool // the timer is armed
	closed  bool

	flushMu sync.Mutex
}

// liveBuffers are the open buffers of the process, flushed together when
// the process stops (Caddy does not close log writers on exit).
var liveBuffers sync.Map // *lineBuffer -> struct{}

func newLineBuffer(out io.WriteCloser, interval time.Duration, limit int) *lineBuffer {
	b := &lineBuffer{out: out, interval: interval, limit: limit, buf: make([]byte, 0, limit)}
	b.timer = time.AfterFunc(time.Hour, func() { _ = b.Flush() })
	b.timer.Stop()
	liveBuffers.Store(b, struct{}{})
	return b
}

// Write copies p (zap reuses it) into the buffer.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.writeThrough(p)
	}
	b.buf = append(b.buf, p...)
	full := len(b.buf) >= b.limit
	if !full && !b.pending {
		b.pending = true
		b.timer.Reset(b.interval)
	}
	b.mu.Unlock()
	if full {
		return len(p), b.Flush()
	}
	return len(p), nil
}

// writeThrough writes after Close, in order after what was flushed.
func (b *lineBuffer) writeThrough(p []byte) (int, error) {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	return b.out.Write(p)
}

// Flush writes what is buffered.
func (b *lineBuffer) Flush() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	data := b.buf
	b.buf = b.spare[:0]
	b.pending = false
	b.mu.Unlock()
	var err error
	if len(data) > 0 {
		_, err = b.out.Write(data)
	}
	b.mu.Lock()
	if cap(data) <= 4*b.limit {
		b.spare = data[:0]
	} else {
		b.spare = nil // one huge line: do not keep its buffer
	}
	b.mu.Unlock()
	return err
}

// Close flushes and closes the output; later writes go straight through.
func (b *lineBuffer) Close() error {
	b.timer.Stop()
	err := b.Flush()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	liveBuffers.Delete(b)
	if cerr := b.out.Close(); err == nil {
		err = cerr
	}
	return err
}

// flushAuditBuffers flushes every open buffer (a graceful stop).
func flushAuditBuffers() {
	liveBuffers.Range(func(k, _ any) bool {
		_ = k.(*lineBuffer).Flush()
		return true
	})
}

// Interface guards
var (
	_ caddy.Provisioner     = (*BufferedWriter)(nil)
	_ caddy.WriterOpener    = (*BufferedWriter)(nil)
	_ caddyfile.Unmarshaler = (*BufferedWriter)(nil)
)
