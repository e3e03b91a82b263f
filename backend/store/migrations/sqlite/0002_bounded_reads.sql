-- One row per agent signal of a prediction, so performance and rankings are
-- SQL aggregates over a window instead of decoding every contributions JSON.
CREATE TABLE contributions (
    tenant_id     TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    signal        REAL NOT NULL,
    PRIMARY KEY (tenant_id, prediction_id, agent_id),
    FOREIGN KEY (tenant_id, prediction_id) REFERENCES predictions (tenant_id, prediction_id)
);
INSERT INTO contributions (tenant_id, prediction_id, agent_id, signal)
    SELECT p.tenant_id, p.prediction_id, json_extract(j.value, '$.agent_id'), json_extract(j.value, '$.signal')
    FROM predictions p, json_each(p.contributions) j;

-- The window: an ensemble's newest predictions that have an outcome.
CREATE INDEX predictions_scored ON predictions (tenant_id, ensemble_id, created_at, prediction_id)
    WHERE realized_return IS NOT NULL;

-- Expiry by age; tenant_id leads it like every index.
CREATE INDEX idempotency_by_created ON idempotency_keys (tenant_id, created_at);
