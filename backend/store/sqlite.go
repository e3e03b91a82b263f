package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/sqlite/*.sql
var migrations embed.FS

// SQLite is the embedded Store. Writes go through a pool of one connection,
// so write transactions queue in process instead of failing with SQLITE_BUSY;
// reads use their own pool and run concurrently thanks to WAL.
type SQLite struct {
	flows
	w      *sql.DB
	r      *sql.DB
	ledger *MemoryLedger // spent assertions: per process, as SQLite is one machine's
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path, with WAL,
// synchronous=FULL (an acknowledged write survives a crash or SIGKILL),
// busy_timeout and foreign keys, and applies pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate") // take the write lock at BEGIN, not on first write
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, migrations); err != nil {
		_ = w.Close()
		return nil, err
	}
	q.Set("_txlock", "deferred")
	r, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s := &SQLite{w: w, r: r, ledger: NewMemoryLedger(0)}
	s.flows = flows{run: s.flow}
	return s, nil
}

// Close closes both pools.
func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// --- ensembles ---
