package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/store"
)

// defaultPostgresOptions are the PostgreSQL flags' defaults: a pool of 10
// connections per replica, statements cancelled after 10 s (well inside the
// 30 s write timeout, so a stuck query answers 500 rather than hanging).
var defaultPostgresOptions = store.PostgresOptions{MaxConns: 10, StatementTimeout: 10 * time.Second, Role: store.DefaultPostgresRole}

// addPostgresFlags defines the flags that tune a postgres:// --db; with a
// SQLite file they are ignored.
func addPostgresFlags(fs *flag.FlagSet, o *store.PostgresOptions) {
	*o = defaultPostgresOptions
	fs.Func("db-pool-size", "PostgreSQL only: most connections the pool opens (default 10)", func(v string) error {
		n, err := parsePositive(v)
		o.MaxConns = n
		return err
	})
	fs.DurationVar(&o.StatementTimeout, "db-statement-timeout", o.StatementTimeout, "PostgreSQL only: statement_timeout of every connection (0: the server's)")
	fs.StringVar(&o.MigrateURL, "db-migrate-url", "", "PostgreSQL only: the owner's URL, which runs the migrations and grants --db's user (the runtime role) what it needs; the same URL as --db is the one-machine mode (warned)")
	fs.StringVar(&o.Role, "db-role", o.Role, "PostgreSQL only, one-machine mode (--db-migrate-url equal to --db): the role queries run as after SET ROLE (created if missing)")
}

func parsePositive(v string) (int32, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a whole number of connections above 0, got %q", v)
	}
	return int32(n), nil
}

// openStore opens the store --db names: a postgres:// or postgresql:// URL
// selects PostgreSQL, anything else is a SQLite file.
func openStore(ctx context.Context, o options) (store.Store, error) {
	if store.IsPostgresURL(o.db) {
		return store.OpenPostgres(ctx, o.db, o.pg)
	}
	return store.OpenSQLite(ctx, o.db)
}

// warnStore logs what the store has to say about how it was opened (the
// PostgreSQL one-machine mode).
func warnStore(st store.Store, log *zap.Logger) {
	if w, ok := st.(interface{ Warning() string }); ok && w.Warning() != "" {
		log.Warn(w.Warning())
	}
}

// describeDB is --db for the log: a URL without its password.
func describeDB(db string) string {
	if !store.IsPostgresURL(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}
