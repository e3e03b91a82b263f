-- One row per agent signal of a prediction, so performance and rankings are
-- SQL aggregates over a window instead of decoding every contributions
-- JSON (the same as SQLite's 0002). Row-level security as on every table.
CREATE TABLE contributions (
    tenant_id     TEXT             NOT NULL,
    prediction_id TEXT             NOT NULL,
    agent_id      TEXT             NOT NULL,
    signal        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, prediction_id, agent_id),
    FOREIGN KEY (tenant_id, prediction_id) REFERENCES predictions (tenant_id, prediction_id)
);

-- The backfill reads every tenant's predictions: forced row-level security
-- would show the owner none, so it is lifted for this transaction only (a
-- failure rolls the ALTERs back with everything else).
ALTER TABLE predictions NO FORCE ROW LEVEL SECURITY;
INSERT INTO contributions (tenant_id, prediction_id, agent_id, signal)
    SELECT p.tenant_id, p.prediction_id, c->>'agent_id', (c->>'signal')::double precision
    FROM predictions p, jsonb_array_elements(p.contributions) c;
ALTER TABLE predictions FORCE ROW LEVEL SECURITY;

ALTER TABLE contributions ENABLE ROW LEVEL SECURITY;
ALTER TABLE contributions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contributions
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- The window: an ensemble's newest predictions that have an outcome.
CREATE INDEX predictions_scored ON predictions (tenant_id, ensemble_id, created_at, prediction_id)
    WHERE realized_return IS NOT NULL;

-- Expiry by age; tenant_id leads it like every index.
CREATE INDEX idempotency_by_created ON idempotency_keys (tenant_id, created_at);

-- The sweep is the one call that is not scoped to a tenant. The runtime
-- role may only EXECUTE this function (granted at start); it runs as the
-- owner, whose extra policy below admits rows only while the function has
-- set app.sweep, and it deletes nothing but expired records.
CREATE POLICY sweep_expired ON idempotency_keys TO CURRENT_USER
    USING (current_setting('app.sweep', true) = 'on');

CREATE FUNCTION sweep_idempotency_keys(older_than BIGINT, max_rows INTEGER) RETURNS INTEGER
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    deleted INTEGER;
BEGIN
    PERFORM set_config('app.sweep', 'on', true);
    DELETE FROM idempotency_keys WHERE (tenant_id, idempotency_key) IN (
        SELECT tenant_id, idempotency_key FROM idempotency_keys WHERE created_at < older_than LIMIT max_rows);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('app.sweep', '', true);
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION sweep_idempotency_keys(BIGINT, INTEGER) FROM PUBLIC;
