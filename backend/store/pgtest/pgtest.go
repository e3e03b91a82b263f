// Package pgtest gives a test a PostgreSQL database of its own, created on
// the server that TENANTGATE_TEST_POSTGRES names and dropped (with its
// runtime role) when the test ends. It never stops, reconfigures or
// otherwise touches anything else on that server: other sessions share it.
//
// When the server does not answer, the test is skipped with a loud message
// and the skip is appended to the file TENANTGATE_POSTGRES_SKIPS names (so
// scripts/test.sh can say so in its summary); with
// TENANTGATE_REQUIRE_SERVICES=1 (CI) the test fails instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	EnvURL     = "TENANTGATE_TEST_POSTGRES"    // admin URL of the server; default DefaultURL
	EnvRequire = "TENANTGATE_REQUIRE_SERVICES" // "1": an unreachable server fails the test
	EnvSkipLog = "TENANTGATE_POSTGRES_SKIPS"   // file that collects one line per skip
)

// DefaultURL is where this project's machines run PostgreSQL.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres"

// T is the part of testing.TB (and of Ginkgo's GinkgoT()) that New uses.
type T interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// DB is a database made for one test.
type DB struct {
	URL   string // the test database, as the server's admin user
	Name  string // tenantgate_test_<random>
	Role  string // a unique runtime role name for the store: <Name>_app
	admin string
	extra []string // more roles of this test, dropped after the database
}

// ExtraRole returns a unique role name, <Name>_<suffix>, that the test may
// create; it is dropped (if it exists) after the database.
func (db *DB) ExtraRole(suffix string) string {
	name := db.Name + "_" + suffix
	db.extra = append(db.extra, name)
	return name
}

// AdminURL returns the URL the database was created through.
func AdminURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// New creates a database and names a runtime role for t, both dropped at
// t's cleanup. It returns nil only after t.Skipf or t.Fatalf (which stop a
// real test).
func New(t T) *DB {
	t.Helper()
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(t, admin, err)
		return nil
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "tenantgate_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
		return nil
	}
	db := &DB{Name: name, Role: name + "_app", admin: admin}
	t.Cleanup(func() { db.drop(t) })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %s must be a postgres:// URL: %v", EnvURL, err)
		return nil
	}
	u.Path = "/" + name
	db.URL = u.String()
	return db
}

// drop removes the database (closing any connection a killed process left)
// and the runtime role.
func (db *DB) drop(t T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		t.Logf("pgtest: could not drop database %s and role %s: %v", db.Name, db.Role, err)
		return
	}
	defer func() { _ = conn.Close(context.Background()) }()
	stmts := []string{`DROP DATABASE IF EXISTS ` + db.Name + ` WITH (FORCE)`, `DROP ROLE IF EXISTS ` + db.Role}
	for _, r := range db.extra {
		stmts = append(stmts, `DROP ROLE IF EXISTS `+r)
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Logf("pgtest: %s: %v", q, err)
		}
	}
}

// RuntimeURL creates the runtime role db.Role as a plain LOGIN role (no
// superuser, no BYPASSRLS, owning nothing) unless it exists, and returns
// the test database's URL with that user: what --db is in production,
// with db.URL (the admin) as the owner's --db-migrate-url.
func (db *DB) RuntimeURL(t T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
		return ""
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, db.Role).Scan(&exists); err != nil {
		t.Fatalf("pgtest: look up %s: %v", db.Role, err)
		return ""
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE ROLE `+db.Role+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`); err != nil {
			t.Fatalf("pgtest: create role %s: %v", db.Role, err)
			return ""
		}
	}
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
		return ""
	}
	u.User = url.User(db.Role)
	return u.String()
}

// Exists reports whether the database and the role are (still) on the server.
func (db *DB) Exists(ctx context.Context) (database, role bool, err error) {
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		return false, false, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1), EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)`,
		db.Name, db.Role).Scan(&database, &role)
	return database, role, err
}

func unavailable(t T, admin string, cause error) {
	// pgx puts each address it tried on a line of its own.
	err := strings.Join(strings.Fields(cause.Error()), " ")
	where := admin
	if u, perr := url.Parse(admin); perr == nil {
		where = u.Redacted()
	}
	msg := fmt.Sprintf("!!! POSTGRESQL UNAVAILABLE at %s (%s): %s needs it; start PostgreSQL or point %s at one", where, err, t.Name(), EnvURL)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s (%s=1, so this fails instead of skipping)", msg, EnvRequire)
		return
	}
	if path := os.Getenv(EnvSkipLog); path != "" {
		// #nosec G304 G703 -- the path comes from the test runner's environment (scripts/test.sh).
		if f, ferr := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); ferr == nil {
			_, _ = fmt.Fprintf(f, "postgres: skipped %s (%s)\n", t.Name(), err)
			_ = f.Close()
		}
	}
	t.Skipf("%s (skipped; %s=1 makes this a failure)", msg, EnvRequire)
}
