package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/backend/ensemble"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

// connectAs opens a plain connection to db as user (the URL's user
// replaced), outside the store.
func connectAs(t *testing.T, db *pgtest.DB, user string) *pgx.Conn {
	t.Helper()
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		u.User = url.User(user)
	}
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func urlAs(t *testing.T, db *pgtest.DB, user string) string {
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	return u.String()
}

// populate writes rows of acme and globex into every tenant table through
// the store.
func populate(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"acme", "globex"} {
		tenant := MustTenantID(name)
		create(t, s, tenant, newEnsemble("ens_"+name, t0, "a", "b"))
		predict(t, s, tenant, "ens_"+name, "prd_"+name, t0, ensemble.Buy, 0.01, map[string]float64{"a": 0.5, "b": -0.5})
		if _, err := s.SeedAccount(ctx, tenant, hedging.DemoAccounts()[name], t0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.ExecuteOnce(ctx, tenant, "key-"+name, "h", t0, past, sellBTC, okRender); err != nil {
			t.Fatal(err)
		}
	}
}

// tenantColumnTables lists every table of the schema with a tenant_id column.
func tenantColumnTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT table_name FROM information_schema.columns
		WHERE column_name = 'tenant_id' AND table_schema = current_schema() ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func countRows(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// The second wall: connected as the runtime role, a session that names no
// tenant reads zero rows from every table with a tenant_id column although
// rows exist, and writes none; with app.tenant_id set, it sees exactly that
// tenant's rows. The log lines are the evidence the closing note quotes.
func TestPostgresRowLevelSecurity(t *testing.T) {
	p, db := openPostgres(t)
	populate(t, p)
	ctx := context.Background()
	admin := connectAs(t, db, "")
	tables := tenantColumnTables(t, admin)
	if want := append([]string(nil), tenantTables...); len(tables) != len(want) {
		sort.Strings(want)
		t.Fatalf("tables with tenant_id = %v, want %v", tables, want)
	}
	// The runtime role may log in only for this test.
	adminExec(t, db, `ALTER ROLE `+db.Role+` LOGIN`)
	rt := connectAs(t, db, db.Role)
	var user string
	var super, bypass bool
	if err := rt.QueryRow(ctx, `SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super, &bypass); err != nil {
		t.Fatal(err)
	}
	t.Logf("RLS: connected as %s (superuser=%v, bypassrls=%v), app.tenant_id unset", user, super, bypass)
	if user != db.Role || super || bypass {
		t.Fatalf("runtime role %s: superuser=%v bypassrls=%v", user, super, bypass)
	}
	for _, tbl := range tables {
		var rls, force bool
		if err := admin.QueryRow(ctx, `SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass`, tbl).Scan(&rls, &force); err != nil {
			t.Fatal(err)
		}
		total := countRows(t, admin, `SELECT count(*) FROM `+tbl)
		acmeRows := countRows(t, admin, `SELECT count(*) FROM `+tbl+` WHERE tenant_id = 'acme'`)
		unset := countRows(t, rt, `SELECT count(*) FROM `+tbl)
		t.Logf("RLS: %-16s rls=%v force=%v rows=%d (acme %d)  runtime role, no tenant: %d rows", tbl, rls, force, total, acmeRows, unset)
		if !rls || !force {
			t.Errorf("%s: row level security enabled=%v forced=%v", tbl, rls, force)
		}
		if total == 0 || acmeRows == 0 || acmeRows == total {
			t.Errorf("%s: %d rows, %d of acme: the test needs rows of both tenants", tbl, total, acmeRows)
		}
		if unset != 0 {
			t.Errorf("%s: the runtime role without a tenant reads %d rows", tbl, unset)
		}
		// Writes without a tenant touch nothing, and a new row is refused.
		if tag, err := rt.Exec(ctx, `UPDATE `+tbl+` SET tenant_id = tenant_id`); err != nil || tag.RowsAffected() != 0 {
			t.Errorf("%s: update without tenant: %v rows, %v", tbl, tag.RowsAffected(), err)
		}
		if tag, err := rt.Exec(ctx, `DELETE FROM `+tbl); err != nil || tag.RowsAffected() != 0 {
			t.Errorf("%s: delete without tenant: %v rows, %v", tbl, tag.RowsAffected(), err)
		}
	}
	if _, err := rt.Exec(ctx, `INSERT INTO accounts (tenant_id, cash_usd, created_at) VALUES ('acme2', 1, 0)`); err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert without tenant: %v", err)
	}

	// With the tenant set for one transaction: that tenant's rows, no others.
	tx, err := rt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', 'acme', true)`); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		seen := countRows(t, tx, `SELECT count(*) FROM `+tbl)
		others := countRows(t, tx, `SELECT count(*) FROM `+tbl+` WHERE tenant_id <> 'acme'`)
		want := countRows(t, admin, `SELECT count(*) FROM `+tbl+` WHERE tenant_id = 'acme'`)
		t.Logf("RLS: %-16s app.tenant_id=acme: %d rows (acme has %d), other tenants' rows: %d", tbl, seen, want, others)
		if seen != want || others != 0 {
			t.Errorf("%s with app.tenant_id=acme: %d rows (want %d), %d of other tenants", tbl, seen, want, others)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO accounts (tenant_id, cash_usd, created_at) VALUES ('globex2', 1, 0)`); err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("acme's transaction writes a globex2 row: %v", err)
	}
	_ = tx.Rollback(ctx)
	// The setting ended with the transaction.
	if n := countRows(t, rt, `SELECT count(*) FROM ensembles`); n != 0 {
		t.Errorf("after the transaction, %d ensembles visible", n)
	}
	// The runtime role owns nothing and cannot change the policy or the schema.
	for _, ddl := range []string{`ALTER TABLE ensembles DISABLE ROW LEVEL SECURITY`, `DROP POLICY tenant_isolation ON accounts`, `CREATE TABLE sneaky (x int)`, `DELETE FROM schema_migrations`} {
		if _, err := rt.Exec(ctx, ddl); err == nil {
			t.Errorf("the runtime role may %s", ddl)
		}
	}
}

// The store's own pool runs as the runtime role, and a pooled connection
// carries no tenant from one call into the next.
func TestPostgresPoolRunsAsRuntimeRole(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	p, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role, MaxConns: 1, StatementTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	populate(t, p)
	var user, tenant, timeout string
	if err := p.pool.QueryRow(ctx, `SELECT current_user, coalesce(current_setting('app.tenant_id', true), ''), current_setting('statement_timeout')`).Scan(&user, &tenant, &timeout); err != nil {
		t.Fatal(err)
	}
	if user != db.Role || tenant != "" || timeout != "300ms" {
		t.Errorf("pooled connection: user %s, app.tenant_id %q, statement_timeout %s", user, tenant, timeout)
	}
	if n := countRows(t, p.pool, `SELECT count(*) FROM ensembles`); n != 0 {
		t.Errorf("a pool query without a tenant sees %d ensembles", n)
	}
	if _, err := p.pool.Exec(ctx, `SELECT pg_sleep(2)`); pgCode(err) != "57014" {
		t.Errorf("statement over the timeout: %v, want SQLSTATE 57014", err)
	}
	if h := p.Health(ctx); h.Pool == nil || h.Pool.MaxConns != 1 {
		t.Errorf("health pool = %+v", h.Pool)
	}
}

// Replicas starting together on an empty database: each migration is
// applied once, and every replica serves.
func TestPostgresConcurrentStartMigratesOnce(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	const replicas = 4
	stores := make([]*Postgres, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stores[i], errs[i] = OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role, MaxConns: 2})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer func(p *Postgres) { _ = p.Close() }(stores[i])
	}
	create(t, stores[0], acme, newEnsemble("ens_1", t0, "a"))
	if _, err := stores[replicas-1].Ensemble(ctx, acme, "ens_1"); err != nil {
		t.Errorf("another replica does not see the write: %v", err)
	}
	admin := connectAs(t, db, "")
	want, _ := listMigrations(postgresMigrations, "postgres")
	if n := countRows(t, admin, `SELECT count(*) FROM schema_migrations`); n != len(want) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(want))
	}
	// Reopening applies nothing again.
	p, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role})
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if n := countRows(t, admin, `SELECT count(*) FROM schema_migrations`); n != len(want) {
		t.Errorf("after a restart schema_migrations has %d rows", n)
	}
}

// tenant_id leads every table, primary key and index; spent_assertions
// holds no tenant rows (a jti is unique across tenants) and is left out.
func TestPostgresSchemaIsTenantScoped(t *testing.T) {
	_, db := openPostgres(t)
	admin := connectAs(t, db, "")
	ctx := context.Background()
	rows, err := admin.Query(ctx, `SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
		WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname NOT IN ('schema_migrations', 'spent_assertions') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var tbl, first string
		if err := rows.Scan(&tbl, &first); err != nil {
			t.Fatal(err)
		}
		n++
		if first != "tenant_id" {
			t.Errorf("table %s starts with %s", tbl, first)
		}
	}
	rows.Close()
	if n != len(tenantTables) {
		t.Errorf("%d tenant tables, want %d", n, len(tenantTables))
	}
	rows, err = admin.Query(ctx, `SELECT i.indexrelid::regclass::text, t.relname, a.attname FROM pg_index i
		JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
		WHERE n.nspname = current_schema() AND t.relname NOT IN ('schema_migrations', 'spent_assertions')`)
	if err != nil {
		t.Fatal(err)
	}
	indexes := 0
	for rows.Next() {
		var idx, tbl, col string
		if err := rows.Scan(&idx, &tbl, &col); err != nil {
			t.Fatal(err)
		}
		indexes++
		if col != "tenant_id" {
			t.Errorf("index %s on %s starts with %s", idx, tbl, col)
		}
	}
	rows.Close()
	if indexes < len(tenantTables) {
		t.Errorf("%d indexes for %d tables", indexes, len(tenantTables))
	}
}

func TestPostgresMigrate(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	conn := connectAs(t, db, "")
	fsys := fstest.MapFS{
		"migrations/postgres/0010_late.sql":  {Data: []byte(`CREATE TABLE late (tenant_id TEXT NOT NULL); CREATE TABLE late2 (tenant_id TEXT NOT NULL)`)},
		"migrations/postgres/0002_extra.sql": {Data: []byte(`CREATE TABLE extra (tenant_id TEXT NOT NULL)`)},
		"migrations/postgres/README.md":      {Data: []byte(`not a migration`)},
	}
	if err := migratePostgres(ctx, conn, fsys); err != nil {
		t.Fatal(err)
	}
	rows, _ := conn.Query(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(names, ",") != "0002_extra.sql,0010_late.sql" {
		t.Errorf("applied %v, %v", names, err)
	}
	if err := migratePostgres(ctx, conn, fsys); err != nil || countRows(t, conn, `SELECT count(*) FROM schema_migrations`) != 2 {
		t.Errorf("second run: %v", err)
	}
	bad := fstest.MapFS{
		"migrations/postgres/0020_half.sql": {Data: []byte(`CREATE TABLE half (tenant_id TEXT); INSERT INTO nowhere VALUES (1);`)},
		"migrations/postgres/0021_next.sql": {Data: []byte(`CREATE TABLE next (tenant_id TEXT)`)},
	}
	if err := migratePostgres(ctx, conn, bad); err == nil || !strings.Contains(err.Error(), "0020_half.sql") || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("failing migration: %v", err)
	}
	if n := countRows(t, conn, `SELECT count(*) FROM pg_class WHERE relname IN ('half', 'next')`); n != 0 {
		t.Errorf("failed migration left %d tables", n)
	}
	for want, fsys := range map[string]fstest.MapFS{
		"must start with a positive number": {"migrations/postgres/init.sql": {Data: []byte(`SELECT 1`)}},
		"same version 30":                   {"migrations/postgres/0030_a.sql": {Data: []byte(`SELECT 1`)}, "migrations/postgres/30_b.sql": {Data: []byte(`SELECT 1`)}},
		"read migration 0040_dir.sql":       {"migrations/postgres/0040_dir.sql/inner": {Data: []byte(`SELECT 1`)}},
	} {
		if err := migratePostgres(ctx, conn, fsys); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error %q, got %v", want, err)
		}
		if err := checkMigrated(ctx, conn, fsys); err == nil || (want != "read migration 0040_dir.sql" && !strings.Contains(err.Error(), want)) {
			t.Errorf("checkMigrated: want error %q, got %v", want, err)
		}
	}
	if n := countRows(t, conn, `SELECT count(*) FROM schema_migrations`); n != 2 {
		t.Errorf("refused sets recorded migrations: %d rows", n)
	}
	// Somebody else's table in the way: the first migration fails and says which.
	db2 := pgtest.New(t)
	adminExec(t, db2, `CREATE TABLE ensembles (x int)`)
	if _, err := OpenPostgres(ctx, db2.URL, PostgresOptions{MigrateURL: db2.URL, Role: db2.Role}); err == nil || !strings.Contains(err.Error(), "0001_init.sql") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("foreign schema: %v", err)
	}
}

// Started as the runtime role itself (a LOGIN role the DBA made), the
// store migrates nothing: it needs a schema an owner migrated.
func TestPostgresStartAsRuntimeRole(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	adminExec(t, db, `CREATE ROLE `+db.Role+` LOGIN`)
	if _, err := OpenPostgres(ctx, urlAs(t, db, db.Role), PostgresOptions{Role: db.Role}); err == nil || !strings.Contains(err.Error(), "owner's URL") {
		t.Errorf("runtime role on an empty database: %v", err)
	}
	owner, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role})
	if err != nil {
		t.Fatal(err)
	}
	_ = owner.Close()
	list, _ := listMigrations(postgresMigrations, "postgres")
	latest := list[len(list)-1].version
	adminExec(t, db, `UPDATE schema_migrations SET version = -version WHERE version = $1`, latest)
	if _, err := OpenPostgres(ctx, urlAs(t, db, db.Role), PostgresOptions{Role: db.Role}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema is at migration %d, this backend needs %d", latest-1, latest)) {
		t.Errorf("runtime role on an old schema: %v", err)
	}
	adminExec(t, db, `UPDATE schema_migrations SET version = -version WHERE version < 0`)
	p, err := OpenPostgres(ctx, urlAs(t, db, db.Role), PostgresOptions{Role: db.Role})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	populate(t, p)
	if e, err := p.Ensemble(ctx, globex, "ens_globex"); err != nil || len(e.Agents) != 2 {
		t.Errorf("as the runtime role: %+v %v", e, err)
	}
}

// OpenPostgres refuses a runtime role that row-level security would not
// bind, and bad options, each with a message that says what to fix.
func TestPostgresRefuses(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	var adminUser string
	if err := connectAs(t, db, "").QueryRow(ctx, `SELECT current_user`).Scan(&adminUser); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		url  string
		opts PostgresOptions
		want string
	}{
		"bad role name":     {db.URL, PostgresOptions{Role: "Robert'); DROP TABLE students;--"}, "lower-case letters"},
		"negative pool":     {db.URL, PostgresOptions{Role: db.Role, MaxConns: -1}, "pool size -1"},
		"negative timeout":  {db.URL, PostgresOptions{Role: db.Role, StatementTimeout: -time.Second}, "statement timeout -1s"},
		"bad URL":           {"postgres://%zz", PostgresOptions{Role: db.Role}, "postgres URL"},
		"no server":         {"postgres://postgres@127.0.0.1:1/x?connect_timeout=2", PostgresOptions{Role: db.Role}, "connect to postgres"},
		"superuser as role": {db.URL, PostgresOptions{Role: adminUser}, "superuser"},
	} {
		if _, err := OpenPostgres(ctx, tc.url, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	// The connect error keeps its cause for errors.As, on one line.
	_, err := OpenPostgres(ctx, "postgres://postgres@127.0.0.1:1/x?connect_timeout=2", PostgresOptions{Role: db.Role})
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) || strings.Contains(err.Error(), "\n") {
		t.Errorf("connect error: %q", err)
	}
	adminExec(t, db, `CREATE ROLE `+db.Role+` BYPASSRLS`)
	if _, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role}); err == nil || !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Errorf("BYPASSRLS role: %v", err)
	}
	adminExec(t, db, `ALTER ROLE `+db.Role+` NOBYPASSRLS`)
	adminExec(t, db, `CREATE TABLE owned_by_runtime (x int)`)
	adminExec(t, db, `ALTER TABLE owned_by_runtime OWNER TO `+db.Role)
	if _, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role}); err == nil || !strings.Contains(err.Error(), "owns 1 tables") {
		t.Errorf("role owning a table: %v", err)
	}
	adminExec(t, db, `DROP TABLE owned_by_runtime`)
	p, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role})
	if err != nil {
		t.Fatalf("after the fixes: %v", err)
	}
	_ = p.Close()
}

func TestIsPostgresURL(t *testing.T) {
	for db, want := range map[string]bool{"postgres://h/db": true, "postgresql://h/db": true, ".data/backend.db": false, "postgres.db": false, "": false} {
		if got := IsPostgresURL(db); got != want {
			t.Errorf("IsPostgresURL(%q) = %v", db, got)
		}
	}
}

// A cancelled context fails a call with the store's prefix, not a panic.
func TestPostgresCancelled(t *testing.T) {
	p, _ := openPostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	nop := func(b hedging.Account) ([]hedging.Fill, hedging.Account, error) { return nil, b, nil }
	for name, call := range interfaceCalls(ctx, p, acme, nop) {
		if err := call(); err == nil || !strings.HasPrefix(err.Error(), "store: ") || !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
}

// The deployment the docs describe: the tables' owner is a plain role (with
// CREATEROLE), not a superuser. Forced RLS then binds the owner too, the
// backfill of migration 0002 still sees every tenant's rows, the store
// creates and grants the runtime role itself, and the cross-tenant sweep
// works through its SECURITY DEFINER function.
func TestPostgresNonSuperuserOwner(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	owner := db.ExtraRole("owner")
	adminExec(t, db, `CREATE ROLE `+owner+` LOGIN CREATEROLE`)
	adminExec(t, db, `ALTER DATABASE `+db.Name+` OWNER TO `+owner)
	ownerURL := urlAs(t, db, owner)
	oc := connectAs(t, db, owner)

	// A database at migration 1 with a prediction written before 0002.
	first, err := fs.ReadFile(postgresMigrations, "migrations/postgres/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := migratePostgres(ctx, oc, fstest.MapFS{"migrations/postgres/0001_init.sql": {Data: first}}); err != nil {
		t.Fatal(err)
	}
	tx, err := oc.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT set_config('app.tenant_id', 'acme', true)`,
		`INSERT INTO ensembles VALUES ('acme', 'ens_old', 'old', 'majority', 0.1, 1, 0)`,
		`INSERT INTO agents VALUES ('acme', 'ens_old', 'a', 't', 1, 0)`,
		`INSERT INTO predictions VALUES ('acme', 'p_old', 'ens_old', 'BTC', 0.5, 'buy', 1, '[{"agent_id":"a","signal":0.5,"confidence":1,"weight":1,"contribution":0.5}]', 0, 0.02, 0)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, oc, `SELECT count(*) FROM predictions`); n != 0 {
		t.Errorf("forced RLS: the owner without a tenant sees %d predictions", n)
	}

	p, err := OpenPostgres(ctx, db.RuntimeURL(t), PostgresOptions{MigrateURL: ownerURL})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	w, err := p.Performance(ctx, acme, "ens_old", 10)
	if err != nil || len(w.Agents) != 1 || w.Agents[0].Tally.Scored != 1 || w.Agents[0].Tally.Hits != 1 {
		t.Errorf("performance over the backfilled contribution: %+v %v", w, err)
	}
	var force bool
	if err := oc.QueryRow(ctx, `SELECT relforcerowsecurity FROM pg_class WHERE oid = 'predictions'::regclass`).Scan(&force); err != nil || !force {
		t.Errorf("predictions: FORCE after the backfill = %v (%v)", force, err)
	}
	populate(t, p)
	if n, err := p.SweepIdempotencyKeys(ctx, t0.Add(time.Hour), 10); err != nil || n != 2 {
		t.Errorf("sweep as the runtime role through the owner's function: %d %v, want 2", n, err)
	}
	if n := countRows(t, oc, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Errorf("the owner without a tenant sees %d idempotency keys", n)
	}
	// The runtime role cannot run the sweep's DELETE itself.
	if tag, err := p.pool.Exec(ctx, `DELETE FROM orders`); err != nil || tag.RowsAffected() != 0 {
		t.Errorf("runtime role deletes without a tenant: %d rows, %v", tag.RowsAffected(), err)
	}
}

// A replica that starts while another holds the migration lock waits for
// it, however short its statement timeout (that bounds requests, not the
// wait for a migration).
func TestPostgresStartWaitsForTheMigrationLock(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	holder := connectAs(t, db, "")
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	go func() {
		time.Sleep(time.Second)
		released.Store(true)
		_, _ = holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	}()
	p, err := OpenPostgres(ctx, db.URL, PostgresOptions{MigrateURL: db.URL, Role: db.Role, StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("start behind the lock: %v", err)
	}
	defer func() { _ = p.Close() }()
	if !released.Load() {
		t.Error("the start did not wait for the migration lock")
	}
}
