package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MinChainKeyBytes is the shortest audit_chain_key accepted: HMAC-SHA256
// gains nothing from more, and a shorter key could be guessed.
const MinChainKeyBytes = 32

// Reasons a chain ends, written in the closing record's chain_end.
const (
	ChainEndShutdown     = "shutdown"     // the process stopped gracefully
	ChainEndReconfigured = "reconfigured" // a reload left the key (or its logger) unused
)

// Chain links the records of one process into a keyed hash chain: each
// record carries chain (an id per process and key), seq (1, 2, …) and mac,
// the HMAC-SHA256 of the previous mac and the record's own fields. Editing,
// deleting, reordering or inserting a record breaks the chain for anyone
// holding the key. One Chain is shared by every tenant_gate block and
// config of the process that use the same key (see the module glue), so
// seq continues across reloads.
type Chain struct {
	mu    sync.Mutex
	id    string
	seq   uint64
	prev  string
	mac   hash.Hash
	canon canonEncoder
	sum   []byte
	// last is the logger the latest record went to: the closing record goes
	// there too.
	last *zap.Logger
}

// NewChain starts a chain with a fresh random id.
func NewChain(key []byte) (*Chain, error) {
	if len(key) < MinChainKeyBytes {
		return nil, fmt.Errorf("audit chain key: %d bytes, want at least %d", len(key), MinChainKeyBytes)
	}
	c := &Chain{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
	c.restart()
	return c, nil
}

// KeyFingerprint names a key without revealing it (the first 8 bytes of
// its SHA-256, in hex): it tells chains of different keys apart.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

func (c *Chain) restart() {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	c.id = base64.RawURLEncoding.EncodeToString(b[:])
	c.seq, c.prev = 0, ""
}

// ID is the chain's current id.
func (c *Chain) ID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Write logs rec on l at INFO as the chain's next record. The lock is held
// across the write so records reach the log in seq order.
func (c *Chain) Write(l *zap.Logger, msg string, rec zapcore.ObjectMarshaler) {
	ce := l.Check(zapcore.InfoLevel, msg)
	if ce == nil {
		return // the audit logger is off: no record, no seq spent
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.canon.reset(c.prev)
	_ = rec.MarshalLogObject(&c.canon)
	mac := c.link()
	c.last = l
	ce.Write(zap.Inline(rec), zap.String("chain", c.id), zap.Uint64("seq", c.seq), zap.String("mac", mac))
}

// link adds chain and seq to the canonical form, computes the mac and
// makes it the previous one. Called with mu held.
func (c *Chain) link() string {
	c.canon.AddString("chain", c.id)
	c.canon.AddUint64("seq", c.seq)
	c.mac.Reset()
	c.mac.Write(c.canon.buf)
	c.sum = c.mac.Sum(c.sum[:0])
	c.prev = base64.RawURLEncoding.EncodeToString(c.sum)
	return c.prev
}

// Close writes the closing record (chain_end = why) after the last record,
// so a log cut off after it can be told from one whose writer stopped
// cleanly. A chain that wrote nothing writes nothing. A later Write starts a
// new chain (new id, seq 1).
func (c *Chain) Close(why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq == 0 || c.last == nil {
		c.restart()
		return
	}
	ce := c.last.Check(zapcore.InfoLevel, "chain end")
	if ce != nil {
		c.seq++
		c.canon.reset(c.prev)
		c.canon.AddString("chain_end", why)
		mac := c.link()
		ce.Write(zap.String("chain_end", why), zap.String("chain", c.id), zap.Uint64("seq", c.seq), zap.String("mac", mac))
	}
	c.restart()
}
