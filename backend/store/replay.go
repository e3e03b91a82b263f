package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrReplayed: the assertion (its jti) was already spent by another request.
var ErrReplayed = errors.New("store: assertion already used")

// ErrLedgerFull: the in-memory set of spent assertions is at its bound even
// after dropping expired ones; the request is refused rather than admitted
// unchecked.
var ErrLedgerFull = errors.New("store: too many assertions in flight to remember another")

// MaxJTILength bounds a remembered jti (the gate's request ids are 30
// characters); a longer one is refused before it reaches the store.
const MaxJTILength = 128

// Spend is one accepted assertion that its request must spend exactly once:
// its jti is remembered until Until. A PostgreSQL store records it in the
// first transaction the request runs (WithSpend), so the check and the
// request's writes commit or roll back together; otherwise the API spends it
// with SpendAssertion before answering.
type Spend struct {
	JTI   string
	Until time.Time
	done  atomic.Bool
	once  sync.Once
	token string
}

// spender is a random value of this request, stored with its spend so a
// later check tells the request's own spend from another's.
func (s *Spend) spender() string {
	s.once.Do(func() { s.token = NewID("sp") })
	return s.token
}

// Done reports whether the spend has been recorded.
func (s *Spend) Done() bool { return s.done.Load() }

type spendKey struct{}

// WithSpend returns ctx carrying sp, for the store to record in the
// request's own transaction.
func WithSpend(ctx context.Context, sp *Spend) context.Context {
	return context.WithValue(ctx, spendKey{}, sp)
}

// pendingSpend returns the context's spend that is not yet recorded, or nil.
func pendingSpend(ctx context.Context) *Spend {
	sp, _ := ctx.Value(spendKey{}).(*Spend)
	if sp == nil || sp.Done() {
		return nil
	}
	return sp
}

// SpendsInTransaction is implemented by a store that records a context's
// Spend inside the request's own transactions (PostgreSQL); the API then
// spends it separately only for a request that ran none.
type SpendsInTransaction interface {
	spendsInTransaction()
}

// DefaultLedgerSize bounds the in-memory set: assertions live at most 60 s,
// so a million entries cover well over 10,000 requests a second.
const DefaultLedgerSize = 1 << 20

// MemoryLedger is a bounded set of spent jtis for one process (the SQLite
// store's: one machine, one process).
type MemoryLedger struct {
	mu        sync.Mutex
	spent     map[string]int64 // jti -> unix nanos until which it is kept
	max       int
	nextSweep int64
	now       func() time.Time
}

// NewMemoryLedger returns a ledger holding at most max live entries
// (DefaultLedgerSize when max <= 0).
func NewMemoryLedger(max int) *MemoryLedger {
	if max <= 0 {
		max = DefaultLedgerSize
	}
	return &MemoryLedger{spent: map[string]int64{}, max: max, now: time.Now}
}

// ledgerSweepEvery is how often Spend drops expired entries even when the
// set is not full, so memory follows the traffic of the last minute or two.
const ledgerSweepEvery = 10 * time.Second

// Spend records sp.JTI, or fails with ErrReplayed when it is already there.
func (l *MemoryLedger) Spend(sp *Spend) error {
	now := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	if until, ok := l.spent[sp.JTI]; ok && until >= now {
		return ErrReplayed
	}
	if len(l.spent) >= l.max || now >= l.nextSweep {
		for jti, until := range l.spent {
			if until < now {
				delete(l.spent, jti)
			}
		}
		l.nextSweep = now + int64(ledgerSweepEvery)
		if len(l.spent) >= l.max {
			return ErrLedgerFull
		}
	}
	l.spent[sp.JTI] = sp.Until.UnixNano()
	sp.done.Store(true)
	return nil
}

// Len returns how many entries the ledger holds.
func (l *MemoryLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.spent)
}

// SpendAssertion remembers sp in the process's ledger.
func (s *SQLite) SpendAssertion(_ context.Context, sp *Spend) error {
	return s.ledger.Spend(sp)
}
