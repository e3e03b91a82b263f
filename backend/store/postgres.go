package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPostgresRole is the runtime role the PostgreSQL store queries as
// unless PostgresOptions.Role names another.
const DefaultPostgresRole = "tenantgate_app"

// PostgresOptions tunes OpenPostgres. The zero value is usable.
type PostgresOptions struct {
	// MaxConns caps the connection pool. Default: pgx's default
	// (the larger of 4 and the number of CPUs), or pool_max_conns in the URL.
	MaxConns int32
	// StatementTimeout cancels any statement running longer (PostgreSQL's
	// statement_timeout, set on every connection). Default: 0, the
	// server's setting.
	StatementTimeout time.Duration
	// MigrateURL is the owner's URL: the role that owns the tables and runs
	// the migrations. OpenPostgres migrates with it (under an advisory
	// lock) and grants the runtime role, the user of the serving URL, what
	// the store needs. Empty: nothing is migrated; the schema must already
	// be (by a start with MigrateURL).
	//
	// MigrateURL equal to the serving URL is the one-machine mode: the
	// pool logs in as the owner and runs every connection under SET ROLE
	// Role. Row-level security still binds every query, but a session that
	// can SET ROLE can also RESET it, so SQL injection could leave the
	// runtime role; Warning says so, and a replica should use two URLs.
	MigrateURL string
	// Role is the runtime role of the one-machine mode (MigrateURL equal to
	// the serving URL): created NOLOGIN if missing, granted to the owner.
	// Otherwise the runtime role is the serving URL's user and Role is not
	// used. Default: DefaultPostgresRole.
	Role string
}

// Postgres is the Store on PostgreSQL (pgx, pgxpool). Every method runs in
// one transaction that first sets app.tenant_id from its TenantID, and every
// query also names the tenant: row-level security on every table (see
// migrations/postgres) is a second wall under the API, so a query that
// forgot its tenant sees no rows.
type Postgres struct {
	flows
	pool    *pgxpool.Pool
	role    string
	warning string
}

// Warning is a message for the operator's log about how the store was
// opened ("" when there is nothing to say): the one-machine mode.
func (p *Postgres) Warning() string { return p.warning }

var _ Store = (*Postgres)(nil)

// roleName is what OpenPostgres accepts as a role: an unquoted PostgreSQL
// identifier, so it can never need quoting tricks and reads the same in psql.
var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// IsPostgresURL reports whether db names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// OpenPostgres opens the pool on url, whose user is the runtime role the
// queries run as, after migrating the schema with o.MigrateURL (see
// PostgresOptions), and refuses a runtime role that row-level security
// would not bind: a superuser, BYPASSRLS, a table owner, or a member of a
// role that is any of these (it could SET ROLE to it).
func OpenPostgres(ctx context.Context, url string, o PostgresOptions) (*Postgres, error) {
	if o.Role == "" {
		o.Role = DefaultPostgresRole
	}
	if !roleName.MatchString(o.Role) {
		return nil, fmt.Errorf("store: runtime role %q: use 1 to 63 lower-case letters, digits or _, not starting with a digit", o.Role)
	}
	if o.MaxConns < 0 {
		return nil, fmt.Errorf("store: pool size %d: must be positive", o.MaxConns)
	}
	if o.StatementTimeout < 0 {
		return nil, fmt.Errorf("store: statement timeout %s: must not be negative", o.StatementTimeout)
	}
	cfg, err := parsePoolConfig(url, o)
	if err != nil {
		return nil, err
	}
	oneMachine := o.MigrateURL == url
	runtimeRole := cfg.ConnConfig.User
	if oneMachine {
		runtimeRole = o.Role
	}
	p := &Postgres{role: runtimeRole}
	p.flows = flows{run: p.flow}
	if o.MigrateURL != "" {
		mcfg, err := pgx.ParseConfig(o.MigrateURL)
		if err != nil {
			return nil, fmt.Errorf("store: migration URL: %w", err)
		}
		mcfg.RuntimeParams["application_name"] = "tenantgate-backend-migrate"
		// No statement timeout: the migration connection waits for other
		// replicas' migrations and runs its own, which may take longer
		// than a request's statement may.
		if err := migrateAndGrant(ctx, mcfg, runtimeRole, oneMachine); err != nil {
			return nil, err
		}
	}
	if oneMachine {
		set := "SET ROLE " + pgx.Identifier{o.Role}.Sanitize()
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, set)
			return err
		}
		p.warning = fmt.Sprintf("one-machine mode: the pool logs in as the owner %s and switches to %s with SET ROLE, which SQL injection could undo; "+
			"give --db the runtime role's URL and --db-migrate-url the owner's (docs/postgres.md)", cfg.ConnConfig.User, o.Role)
	}
	if p.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("store: postgres pool: %w", err)
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		p.pool.Close()
		return nil, oneLine{fmt.Errorf("store: connect to postgres: %w", err)}
	}
	err = checkRuntimeRole(ctx, conn, runtimeRole)
	if err == nil && o.MigrateURL == "" {
		err = checkMigrated(ctx, conn.Conn(), postgresMigrations)
	}
	conn.Release()
	if err != nil {
		p.pool.Close()
		return nil, err
	}
	return p, nil
}

// parsePoolConfig is the serving pool's configuration.
func parsePoolConfig(url string, o PostgresOptions) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password in its message.
		return nil, fmt.Errorf("store: postgres URL: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "tenantgate-backend"
	return cfg, nil
}

// migrateAndGrant migrates as the owner on one connection of its own and
// grants the runtime role what the store needs; in the one-machine mode it
// also creates the role (NOLOGIN) and lets the owner SET ROLE to it.
func migrateAndGrant(ctx context.Context, cc *pgx.ConnConfig, role string, oneMachine bool) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return oneLine{fmt.Errorf("store: connect to postgres with the migration URL: %w", err)}
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("store: connect to postgres with the migration URL: %w", err)
	}
	if owner == role {
		return fmt.Errorf("store: the migration URL logs in as %s, the runtime role: it must be the owner's, another role", role)
	}
	// A session lock on this connection: another replica blocks here until
	// this one has migrated, then finds nothing left to do.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("store: take the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	}()
	if err := migratePostgres(ctx, conn, postgresMigrations); err != nil {
		return err
	}
	return grantRuntimeRole(ctx, conn, role, oneMachine)
}

// tenantTables are the tables that hold tenant rows: each has row-level
// security forced, and the runtime role may read and write them.
var tenantTables = []string{"ensembles", "agents", "predictions", "contributions", "accounts", "spot_balances", "perp_positions", "orders", "idempotency_keys"}

// grantRuntimeRole grants role what the store needs and nothing more. In
// the one-machine mode it creates role if missing and lets the connecting
// owner SET ROLE to it; otherwise the role must exist (it logs in).
func grantRuntimeRole(ctx context.Context, conn *pgx.Conn, role string, oneMachine bool) error {
	ident := pgx.Identifier{role}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("store: look up role %s: %w", role, err)
	}
	if !exists && !oneMachine {
		return fmt.Errorf("store: the runtime role %s does not exist; create it as docs/postgres.md shows (CREATE ROLE %s LOGIN PASSWORD '...')", role, role)
	}
	if !exists {
		_, err := conn.Exec(ctx, `CREATE ROLE `+ident+` NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`)
		var pgErr *pgconn.PgError
		// Roles are cluster-wide: a replica of another database may have
		// created it a moment ago.
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42710") {
			return fmt.Errorf("store: create role %s (or create it yourself, see docs/postgres.md): %w", role, err)
		}
	}
	stmts := []string{
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + strings.Join(tenantTables, ", ") + ` TO ` + ident,
		`GRANT SELECT ON schema_migrations TO ` + ident,
		`GRANT EXECUTE ON FUNCTION sweep_idempotency_keys(BIGINT, INTEGER) TO ` + ident,
		`GRANT INSERT ON spent_assertions TO ` + ident,
		`GRANT EXECUTE ON FUNCTION spend_assertion(TEXT, BIGINT, TEXT) TO ` + ident,
		`GRANT EXECUTE ON FUNCTION sweep_spent_assertions(INTEGER) TO ` + ident,
	}
	if oneMachine {
		var member bool
		if err := conn.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'MEMBER')`, role).Scan(&member); err != nil {
			return fmt.Errorf("store: check membership in %s: %w", role, err)
		}
		if !member {
			stmts = append(stmts, `GRANT `+ident+` TO CURRENT_USER`)
		}
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("store: prepare role %s: %s: %w", role, s, err)
		}
	}
	return nil
}

// checkRuntimeRole refuses a pool whose queries would not be bound by
// row-level security, and says which: a superuser, a role with BYPASSRLS,
// a role that owns a table (FORCE binds owners too, but an owner can turn
// it off), or a member of any such role (it could SET ROLE to it).
func checkRuntimeRole(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, role string) error {
	var user, via string
	var super, bypass bool
	var owned int
	err := q.QueryRow(ctx, `SELECT r.rolname, r.rolsuper, r.rolbypassrls,
		(SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p')),
		coalesce((SELECT string_agg(o.rolname, ', ' ORDER BY o.rolname) FROM pg_roles o
			WHERE o.oid <> r.oid AND pg_has_role(r.oid, o.oid, 'MEMBER')
			AND (o.rolsuper OR o.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = o.oid AND c.relkind IN ('r', 'p')))), '')
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &super, &bypass, &owned, &via)
	if err != nil {
		return fmt.Errorf("store: check runtime role %s: %w", role, err)
	}
	switch {
	case user != role:
		return fmt.Errorf("store: queries run as %s, not the runtime role %s", user, role)
	case super:
		return fmt.Errorf("store: runtime role %s is a superuser, which row-level security does not bind; --db must log in as a plain role (docs/postgres.md)", user)
	case bypass:
		return fmt.Errorf("store: runtime role %s has BYPASSRLS; ALTER ROLE %s NOBYPASSRLS", user, user)
	case owned > 0:
		return fmt.Errorf("store: runtime role %s owns %d tables: --db logs in as the owner; give --db the runtime role's URL and --db-migrate-url the owner's (docs/postgres.md)", user, owned)
	case via != "":
		return fmt.Errorf("store: runtime role %s can SET ROLE to %s, which row-level security does not bind (superuser, BYPASSRLS or a table owner); REVOKE that membership", user, via)
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// setTenant scopes the transaction it runs in to one tenant: the `true`
// makes the setting local, so a pooled connection never carries one tenant
// into the next transaction.
const setTenant = `SELECT set_config('app.tenant_id', $1, true)`

// inTenant runs fn in one transaction scoped to t. BEGIN and setTenant
// travel in one round trip (pgx's Batch.BeginTx).
func (p *Postgres) inTenant(ctx context.Context, t TenantID, mode pgx.TxAccessMode, op string, fn func(pgx.Tx) error) error {
	if err := t.check(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{AccessMode: mode})
	b.Queue(setTenant, t.id)
	sp := queueSpend(ctx, b, false)
	br := p.pool.SendBatch(ctx, b)
	tx := br.Tx()
	if tx != nil {
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	}
	if err := br.Close(); err != nil {
		if err = replayed(err); errors.Is(err, ErrReplayed) {
			return err
		}
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: %s: commit: %w", op, err)
	}
	if sp != nil {
		sp.done.Store(true)
	}
	return nil
}

// oneTrip sends setTenant and the statements queue adds as one batch: one
// round trip and one implicit transaction (any failure rolls back all of
// it). read consumes the results of queue's statements in order. It serves
// the calls that need no decision between their statements.
func (p *Postgres) oneTrip(ctx context.Context, t TenantID, op string, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	return p.trip(ctx, t, op, false, queue, read)
}

// readTrip is oneTrip for a call that only reads: the assertion it spends
// is its only write (see queueSpend).
func (p *Postgres) readTrip(ctx context.Context, t TenantID, op string, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	return p.trip(ctx, t, op, true, queue, read)
}

func (p *Postgres) trip(ctx context.Context, t TenantID, op string, readOnly bool, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	if err := t.check(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(setTenant, t.id)
	sp := queueSpend(ctx, b, readOnly)
	queue(b)
	br := p.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	for i := 0; err == nil && sp != nil && i < spendStatements(readOnly); i++ {
		_, err = br.Exec()
		err = replayed(err)
	}
	if err == nil {
		err = read(br)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: %s: %w", op, cerr)
	}
	if err == nil && sp != nil {
		sp.done.Store(true)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
		err = fmt.Errorf("store: %s: %w", op, err)
	}
	return err
}

func (p *Postgres) write(ctx context.Context, t TenantID, op string, fn func(pgx.Tx) error) error {
	return p.inTenant(ctx, t, pgx.ReadWrite, op, fn)
}

// oneLine is an error whose message fits on one line: pgx puts each
// address it tried on a line of its own, and the backend reports a failed
// start as one "backend: --db: ..." line.
type oneLine struct{ err error }

func (e oneLine) Error() string {
	return strings.Join(strings.Fields(e.err.Error()), " ")
}

func (e oneLine) Unwrap() error { return e.err }

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)
