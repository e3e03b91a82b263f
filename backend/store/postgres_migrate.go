package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// migrationLockKey is the pg_advisory_lock key held while migrating
// ("tgmigr" in ASCII): replicas that start together queue on it.
const migrationLockKey int64 = 0x74676d696772

// migratePostgres applies the migrations that schema_migrations does not
// list, in order, each in its own transaction. The caller holds the
// migration lock.
func migratePostgres(ctx context.Context, conn *pgx.Conn, fsys fs.FS) error {
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	return applyAll(fsys, "postgres", func(version int, name, body string) error {
		return applyPostgresMigration(ctx, conn, version, name, body)
	})
}

func applyPostgresMigration(ctx context.Context, conn *pgx.Conn, version int, name, body string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: migration %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var applied bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&applied); err != nil {
		return fmt.Errorf("store: migration %s: %w", name, err)
	}
	if applied {
		return nil
	}
	// Simple protocol: a migration file holds several statements.
	if _, err := tx.Exec(ctx, body, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("store: apply migration %s: %w", name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		version, name, time.Now().UTC().UnixNano()); err != nil {
		return fmt.Errorf("store: record migration %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit migration %s: %w", name, err)
	}
	return nil
}

// checkMigrated is what a start as the runtime role does instead of
// migrating (it may not create tables): it refuses a schema that lacks a
// migration this binary has, naming the fix.
func checkMigrated(ctx context.Context, conn *pgx.Conn, fsys fs.FS) error {
	list, err := listMigrations(fsys, "postgres")
	if err != nil {
		return err
	}
	var latest int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&latest); err != nil {
		return fmt.Errorf("store: read schema_migrations as the runtime role (start once with --db-migrate-url, the owner's URL, to migrate): %w", err)
	}
	if want := list[len(list)-1].version; latest < want {
		return fmt.Errorf("store: the schema is at migration %d, this backend needs %d: start it once with --db-migrate-url, the owner's URL, to migrate", latest, want)
	}
	return nil
}
