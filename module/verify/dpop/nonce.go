package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
)

// Server-provided nonces (RFC 9449 §8, §9).
//
// A gate that requires them answers a DPoP request whose proof has no
// nonce, or one it did not hand out recently, with 401 use_dpop_nonce and
// a DPoP-Nonce header; the client retries with that nonce in its proof.
//
// Nonces here are not stored anywhere: a nonce is the HMAC-SHA256, under a
// secret, of the index of a time window (Unix time / window length). It is
// accepted during its own window and the next, so it lives between one and
// two windows. Any holder of the secret derives the same nonce for the same
// window: replicas that share the secret (the gate keeps it in the shared
// store) accept each other's nonces without a lookup. Without the secret a
// nonce cannot be predicted (§8: "Nonce values MUST be unpredictable").

// NonceSource hands out and checks server-provided nonces. The Checker
// consults it between the signature (and every other check of the proof)
// and the replay claim, so a refused nonce spends no replay-cache entry.
type NonceSource interface {
	// Nonce is the nonce to hand a client at now (a DPoP-Nonce value).
	Nonce(now time.Time) string
	// Accepts reports whether nonce is one the source handed out recently
	// enough to accept at now. It compares in constant time.
	Accepts(nonce string, now time.Time) bool
}

// Bounds of the nonce window.
const (
	DefaultNonceWindow = 5 * time.Minute
	MinNonceWindow     = time.Second
	MaxNonceWindow     = 24 * time.Hour
	// NonceSecretBytes is the length of a generated secret.
	NonceSecretBytes = 32
	// nonceMACLabel separates these MACs from any other use of the secret.
	nonceMACLabel = "tenantgate dpop nonce v1\x00"
)

// NonceSecret holds the secret nonces are derived from. One NonceSecret
// serves every config of a process (a reload keeps the nonces clients
// hold); Set replaces it, for instance with the secret the replicas share.
type NonceSecret struct {
	key atomic.Pointer[[]byte]
}

// NewNonceSecret returns a holder of a fresh random secret.
func NewNonceSecret() *NonceSecret {
	s := &NonceSecret{}
	s.Set(RandomNonceSecret())
	return s
}

// RandomNonceSecret is NonceSecretBytes from crypto/rand.
func RandomNonceSecret() []byte {
	b := make([]byte, NonceSecretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("dpop: no randomness for the nonce secret: %v", err)) // crypto/rand never fails on supported platforms
	}
	return b
}

// Set replaces the secret; nonces derived from the old one stop being
// accepted. A key of another length than before is allowed (HMAC keys).
func (s *NonceSecret) Set(key []byte) {
	k := append([]byte(nil), key...)
	s.key.Store(&k)
}

// Get is the current secret; callers must not change it.
func (s *NonceSecret) Get() []byte { return *s.key.Load() }

// Nonces is the NonceSource of one window length over a NonceSecret.
type Nonces struct {
	secret *NonceSecret
	window time.Duration
	// cur caches the nonces of the latest window seen, so a request costs
	// two constant-time compares, not two HMACs.
	cur atomic.Pointer[windowNonces]
}

// windowNonces are the accepted nonces at window index idx, derived from
// the secret at key (compared by identity: Set makes a new one).
type windowNonces struct {
	key        *[]byte
	idx        int64
	this, prev string
}

// NewNonces derives nonces from secret in windows of window (outside
// MinNonceWindow..MaxNonceWindow, DefaultNonceWindow).
func NewNonces(secret *NonceSecret, window time.Duration) *Nonces {
	if window < MinNonceWindow || window > MaxNonceWindow {
		window = DefaultNonceWindow
	}
	return &Nonces{secret: secret, window: window}
}

// Window is the length of one nonce window.
func (n *Nonces) Window() time.Duration { return n.window }

func (n *Nonces) index(now time.Time) int64 { return now.UnixNano() / int64(n.window) }

// at returns the nonces of now's window, deriving them on the first call
// in a window or after the secret changed.
func (n *Nonces) at(now time.Time) *windowNonces {
	idx, key := n.index(now), n.secret.key.Load()
	if w := n.cur.Load(); w != nil && w.idx == idx && w.key == key {
		return w
	}
	w := &windowNonces{key: key, idx: idx, this: n.derive(*key, idx), prev: n.derive(*key, idx-1)}
	n.cur.Store(w)
	return w
}

// derive is base64url(HMAC-SHA256(key, label || window || idx)), the two
// numbers as signed varints (self-delimiting, so the message is
// unambiguous): the window length is part of it, so a window of another
// length never yields the same nonce.
func (n *Nonces) derive(key []byte, idx int64) string {
	msg := make([]byte, 0, len(nonceMACLabel)+2*binary.MaxVarintLen64)
	msg = append(msg, nonceMACLabel...)
	msg = binary.AppendVarint(msg, int64(n.window))
	msg = binary.AppendVarint(msg, idx)
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Nonce implements NonceSource: the nonce of now's window.
func (n *Nonces) Nonce(now time.Time) string { return n.at(now).this }

// Accepts implements NonceSource: the nonce of now's window or of the one
// before. Both compares always run, in constant time.
func (n *Nonces) Accepts(nonce string, now time.Time) bool {
	w := n.at(now)
	return equalConstantTime(nonce, w.this)|equalConstantTime(nonce, w.prev) == 1
}

// equalConstantTime is subtle.ConstantTimeCompare on strings (1 when
// equal): its time depends on the lengths only, and it converts nothing to
// []byte, which for a 43-byte nonce would be an allocation per request.
func equalConstantTime(a, b string) int {
	if len(a) != len(b) {
		return 0
	}
	var diff byte
	for i := 0; i < len(a); i++ {
		diff |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(diff, 0)
}

// RotatesSoon reports whether now is in the last fifth of its window: a
// client holding the previous window's nonce loses it at the window's end,
// so successful responses then carry Nonce(now), which stays good for the
// whole next window (RFC 9449 §8.2).
func (n *Nonces) RotatesSoon(now time.Time) bool {
	w := int64(n.window)
	return now.UnixNano()%w >= w-w/5
}
