-- PostgreSQL schema of the backend store: the SQLite schema's shape with
-- PostgreSQL types. tenant_id leads every table, primary key and index, and
-- foreign keys stay inside one tenant ((tenant_id, ensemble_id)), so every
-- table can be distributed by tenant with Citus without a redesign:
--   SELECT create_distributed_table('ensembles', 'tenant_id');  -- and so on
-- for agents, predictions, accounts, spot_balances, perp_positions, orders
-- and idempotency_keys, colocated with ensembles (nothing here runs Citus).
-- Times are BIGINT unix nanoseconds (UTC), as in SQLite, so both stores
-- return the same instants to the nanosecond.

CREATE TABLE ensembles (
    tenant_id   TEXT             NOT NULL,
    ensemble_id TEXT             NOT NULL,
    name        TEXT             NOT NULL,
    method      TEXT             NOT NULL,
    threshold   DOUBLE PRECISION NOT NULL,
    min_agents  INTEGER          NOT NULL,
    created_at  BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, ensemble_id)
);
CREATE INDEX ensembles_by_created ON ensembles (tenant_id, created_at, ensemble_id);

CREATE TABLE agents (
    tenant_id   TEXT             NOT NULL,
    ensemble_id TEXT             NOT NULL,
    agent_id    TEXT             NOT NULL,
    agent_type  TEXT             NOT NULL,
    weight      DOUBLE PRECISION NOT NULL CHECK (weight >= 0),
    created_at  BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, ensemble_id, agent_id),
    FOREIGN KEY (tenant_id, ensemble_id) REFERENCES ensembles (tenant_id, ensemble_id)
);

CREATE TABLE predictions (
    tenant_id       TEXT             NOT NULL,
    prediction_id   TEXT             NOT NULL,
    ensemble_id     TEXT             NOT NULL,
    symbol          TEXT             NOT NULL,
    signal          DOUBLE PRECISION NOT NULL,
    action          TEXT             NOT NULL,
    confidence      DOUBLE PRECISION NOT NULL,
    contributions   JSONB            NOT NULL, -- array of ensemble.Contribution
    created_at      BIGINT           NOT NULL,
    realized_return DOUBLE PRECISION,
    outcome_at      BIGINT,
    PRIMARY KEY (tenant_id, prediction_id),
    FOREIGN KEY (tenant_id, ensemble_id) REFERENCES ensembles (tenant_id, ensemble_id)
);
CREATE INDEX predictions_by_ensemble ON predictions (tenant_id, ensemble_id, created_at);

CREATE TABLE accounts (
    tenant_id     TEXT             NOT NULL PRIMARY KEY,
    cash_usd      DOUBLE PRECISION NOT NULL,
    fees_paid_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at    BIGINT           NOT NULL
);

CREATE TABLE spot_balances (
    tenant_id TEXT             NOT NULL,
    asset     TEXT             NOT NULL,
    quantity  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, asset)
);

CREATE TABLE perp_positions (
    tenant_id TEXT             NOT NULL,
    asset     TEXT             NOT NULL,
    quantity  DOUBLE PRECISION NOT NULL CHECK (quantity <= 0), -- hedges only: short or flat
    PRIMARY KEY (tenant_id, asset)
);

CREATE TABLE orders (
    tenant_id    TEXT             NOT NULL,
    order_id     TEXT             NOT NULL,
    execution_id TEXT             NOT NULL,
    kind         TEXT             NOT NULL, -- execute | close
    asset        TEXT             NOT NULL,
    side         TEXT             NOT NULL,
    quantity     DOUBLE PRECISION NOT NULL,
    price        DOUBLE PRECISION NOT NULL,
    notional_usd DOUBLE PRECISION NOT NULL,
    fee_usd      DOUBLE PRECISION NOT NULL,
    created_at   BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX orders_by_execution ON orders (tenant_id, execution_id);

-- The primary key is the unique constraint that makes ExecuteOnce race-free:
-- the first transaction's INSERT claims (tenant, key); a concurrent one's
-- INSERT ... ON CONFLICT DO NOTHING waits for it, then finds the row.
CREATE TABLE idempotency_keys (
    tenant_id       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    content_type    TEXT    NOT NULL,
    body            BYTEA   NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- Row-level security, the second wall: on every tenant table, forced (so it
-- binds the owner too), one policy for every command that admits only the
-- rows of the tenant the transaction named with
-- set_config('app.tenant_id', $1, true). Unset, current_setting(..., true)
-- is NULL or '' and matches no row: a query that forgot its tenant sees
-- nothing and can write nothing.
DO $$
DECLARE
    tbl TEXT;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['ensembles', 'agents', 'predictions', 'accounts', 'spot_balances',
                               'perp_positions', 'orders', 'idempotency_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tbl);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = current_setting(''app.tenant_id'', true))
            WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', tbl);
    END LOOP;
END
$$;
