-- One use per assertion: every accepted X-Tenant-Assertion's jti is kept
-- here until its expiry (plus leeway), so a second use, on any replica, is
-- refused. jti is the gate's request id, unique across tenants, so this is
-- the one table without tenant_id: it holds no tenant data, and the runtime
-- role may only INSERT into it (a plain INSERT: a second use is a unique
-- violation, which aborts the request's own transaction).
CREATE TABLE spent_assertions (
    jti      TEXT PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 128),
    until_ns BIGINT NOT NULL,
    spender  TEXT NOT NULL  -- a random value per request: tells its own spend from a replay
);
CREATE INDEX spent_assertions_by_until ON spent_assertions (until_ns);

-- A request that ran no transaction of its own (or whose transaction may
-- or may not have recorded its spend) spends through this function: true
-- when the jti is new or was spent by this same request (same spender),
-- false for a replay. The runtime role gets no SELECT on the table.
CREATE FUNCTION spend_assertion(p_jti TEXT, p_until BIGINT, p_spender TEXT) RETURNS BOOLEAN
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO spent_assertions (jti, until_ns, spender) VALUES (p_jti, p_until, p_spender)
        ON CONFLICT (jti) DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM spent_assertions WHERE jti = p_jti AND spender = p_spender);
END
$$;
REVOKE ALL ON FUNCTION spend_assertion(TEXT, BIGINT, TEXT) FROM PUBLIC;

-- Expired rows are swept by the owner's function; it takes no time from
-- the caller (the server's clock decides), so it can delete nothing live.
CREATE FUNCTION sweep_spent_assertions(max_rows INTEGER) RETURNS INTEGER
    LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    WITH gone AS (
        DELETE FROM spent_assertions WHERE jti IN (
            SELECT jti FROM spent_assertions
            WHERE until_ns < (extract(epoch FROM clock_timestamp()) * 1e9)::bigint
            LIMIT max_rows)
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
$$;
REVOKE ALL ON FUNCTION sweep_spent_assertions(INTEGER) FROM PUBLIC;
