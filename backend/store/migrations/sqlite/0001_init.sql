-- Every table carries tenant_id and every key and index starts with it, so
-- each query is a range scan inside one tenant and a future PostgreSQL store
-- can add row-level security and distribute by tenant without a redesign.

CREATE TABLE ensembles (
    tenant_id   TEXT    NOT NULL,
    ensemble_id TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    threshold   REAL    NOT NULL,
    min_agents  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL, -- unix nanoseconds, UTC
    PRIMARY KEY (tenant_id, ensemble_id)
);
CREATE INDEX ensembles_by_created ON ensembles (tenant_id, created_at, ensemble_id);

CREATE TABLE agents (
    tenant_id   TEXT    NOT NULL,
    ensemble_id TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    agent_type  TEXT    NOT NULL,
    weight      REAL    NOT NULL CHECK (weight >= 0),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, ensemble_id, agent_id),
    FOREIGN KEY (tenant_id, ensemble_id) REFERENCES ensembles (tenant_id, ensemble_id)
);

CREATE TABLE predictions (
    tenant_id       TEXT    NOT NULL,
    prediction_id   TEXT    NOT NULL,
    ensemble_id     TEXT    NOT NULL,
    symbol          TEXT    NOT NULL,
    signal          REAL    NOT NULL,
    action          TEXT    NOT NULL,
    confidence      REAL    NOT NULL,
    contributions   TEXT    NOT NULL, -- JSON array of ensemble.Contribution
    created_at      INTEGER NOT NULL,
    realized_return REAL,
    outcome_at      INTEGER,
    PRIMARY KEY (tenant_id, prediction_id),
    FOREIGN KEY (tenant_id, ensemble_id) REFERENCES ensembles (tenant_id, ensemble_id)
);
CREATE INDEX predictions_by_ensemble ON predictions (tenant_id, ensemble_id, created_at);

CREATE TABLE accounts (
    tenant_id     TEXT    NOT NULL PRIMARY KEY,
    cash_usd      REAL    NOT NULL,
    fees_paid_usd REAL    NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE spot_balances (
    tenant_id TEXT NOT NULL,
    asset     TEXT NOT NULL,
    quantity  REAL NOT NULL,
    PRIMARY KEY (tenant_id, asset)
);

CREATE TABLE perp_positions (
    tenant_id TEXT NOT NULL,
    asset     TEXT NOT NULL,
    quantity  REAL NOT NULL CHECK (quantity <= 0), -- hedges only: short or flat
    PRIMARY KEY (tenant_id, asset)
);

CREATE TABLE orders (
    tenant_id    TEXT    NOT NULL,
    order_id     TEXT    NOT NULL,
    execution_id TEXT    NOT NULL,
    kind         TEXT    NOT NULL, -- execute | close
    asset        TEXT    NOT NULL,
    side         TEXT    NOT NULL,
    quantity     REAL    NOT NULL,
    price        REAL    NOT NULL,
    notional_usd REAL    NOT NULL,
    fee_usd      REAL    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX orders_by_execution ON orders (tenant_id, execution_id);

-- One row per (tenant, Idempotency-Key): the first request claims it inside
-- the same transaction that trades, so a retry either waits for that
-- transaction and reads the stored response or finds it already there.
CREATE TABLE idempotency_keys (
    tenant_id       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    content_type    TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
