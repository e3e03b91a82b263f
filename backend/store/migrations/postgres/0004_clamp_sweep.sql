-- The runtime role may call sweep_idempotency_keys, so the function must not
-- trust its argument: it never deletes a record younger than 24 hours
-- (86400 s, the shortest retention the store promises), whatever
-- older_than says, nor more than 10000 rows a call. Otherwise one call
-- with a future older_than would delete every tenant's records, and a
-- retried request would then execute twice.
CREATE OR REPLACE FUNCTION sweep_idempotency_keys(older_than BIGINT, max_rows INTEGER) RETURNS INTEGER
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    deleted INTEGER;
    cutoff BIGINT := LEAST(older_than,
        (extract(epoch FROM clock_timestamp()) * 1e9)::bigint - 86400::bigint * 1000000000);
BEGIN
    PERFORM set_config('app.sweep', 'on', true);
    DELETE FROM idempotency_keys WHERE (tenant_id, idempotency_key) IN (
        SELECT tenant_id, idempotency_key FROM idempotency_keys WHERE created_at < cutoff
        LIMIT GREATEST(0, LEAST(max_rows, 10000)));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('app.sweep', '', true);
    RETURN deleted;
END
$$;
REVOKE ALL ON FUNCTION sweep_idempotency_keys(BIGINT, INTEGER) FROM PUBLIC;
