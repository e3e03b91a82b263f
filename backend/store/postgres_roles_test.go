package store

import (
	"context"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/backend/store/pgtest"
)

// The serving pool logs in as the runtime role itself; the owner's URL
// only migrates. A runtime URL that RLS would not bind is refused, naming
// why.
func TestPostgresRuntimeLogin(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	owner := db.ExtraRole("owner")
	adminExec(t, db, `CREATE ROLE `+owner+` LOGIN CREATEROLE`) // CREATEROLE: the one-machine mode creates its role
	adminExec(t, db, `ALTER DATABASE `+db.Name+` OWNER TO `+owner)
	ownerURL := urlAs(t, db, owner)
	runtimeURL := db.RuntimeURL(t)

	// Two URLs: migrated by the owner, served by the runtime role, no warning.
	p, err := OpenPostgres(ctx, runtimeURL, PostgresOptions{MigrateURL: ownerURL})
	if err != nil {
		t.Fatal(err)
	}
	var session, current string
	if err := p.pool.QueryRow(ctx, `SELECT session_user, current_user`).Scan(&session, &current); err != nil || session != db.Role || current != db.Role {
		t.Errorf("pool logs in as %s/%s (%v), want %s", session, current, err, db.Role)
	}
	if p.Warning() != "" {
		t.Errorf("warning %q", p.Warning())
	}
	if _, err := p.pool.Exec(ctx, `SET ROLE `+owner); err == nil {
		t.Error("the runtime role could SET ROLE to the owner")
	}
	_ = p.Close()

	for name, tc := range map[string]struct {
		url, migrate, setup, want string
	}{
		"the owner's URL as --db":                  {ownerURL, "", "", "owns"},
		"the owner's URL for both, as db":          {ownerURL, ownerURL + "?application_name=x", "", "must be the owner's, another role"},
		"a runtime role that may become the owner": {runtimeURL, "", `GRANT ` + owner + ` TO ` + db.Role, "can SET ROLE to " + owner},
		"a runtime role with BYPASSRLS":            {runtimeURL, "", `ALTER ROLE ` + db.Role + ` BYPASSRLS`, "BYPASSRLS"},
		"the runtime role as the migration URL":    {runtimeURL, runtimeURL + "?application_name=x", "", "must be the owner's"},
		"a runtime role that does not exist":       {urlAs(t, db, db.ExtraRole("ghost")), ownerURL, "", "does not exist"},
	} {
		if tc.setup != "" {
			adminExec(t, db, tc.setup)
		}
		_, err := OpenPostgres(ctx, tc.url, PostgresOptions{MigrateURL: tc.migrate})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		adminExec(t, db, `REVOKE `+owner+` FROM `+db.Role)
		adminExec(t, db, `ALTER ROLE `+db.Role+` NOBYPASSRLS`)
	}

	// One URL that is the owner's for both: the one-machine mode, with a
	// warning; queries still run as a role RLS binds.
	one, err := OpenPostgres(ctx, ownerURL, PostgresOptions{MigrateURL: ownerURL, Role: db.ExtraRole("local")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = one.Close() }()
	if w := one.Warning(); !strings.Contains(w, "one-machine mode") || !strings.Contains(w, "--db-migrate-url") {
		t.Errorf("warning %q", w)
	}
}
