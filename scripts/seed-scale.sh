#!/usr/bin/env bash
# Seeds a migrated tenantgate PostgreSQL database for the scale figure:
# 100 tenants (t000..t099), each with 10 ensembles of 3 agents, an exchange
# account, and 10,000 predictions (1,000,000 in all, with 3,000,000
# contribution rows), 80 % of them with an outcome, and 1,000 Idempotency-Keys. Generated in SQL with
# generate_series: nothing is committed to the repository.
#
#   scripts/seed-scale.sh ADMIN_URL
#
# ADMIN_URL must bypass row-level security (a superuser, e.g. the machine's
# postgres user) and point at a database an owner has migrated, e.g.
#   bin/backend accounts show --db RUNTIME_URL --db-migrate-url OWNER_URL --tenant t000
# (the migration runs; the missing account then exits 1). Afterwards
# `go test -run TestScaleFigure -v ./backend/api` with TENANTGATE_SCALE_DB
# and TENANTGATE_SCALE_MIGRATE_DB measures predict and execute, and
# scripts/explain-scale.sh shows the plans.
set -euo pipefail
url=${1:?usage: scripts/seed-scale.sh ADMIN_URL}
tenants=${TENANTS:-100}
per=${PREDICTIONS_PER_TENANT:-10000}

psql "$url" -v ON_ERROR_STOP=1 -q <<SQL
\\timing on
BEGIN;
INSERT INTO ensembles (tenant_id, ensemble_id, name, method, threshold, min_agents, created_at)
SELECT format('t%s', lpad(t::text, 3, '0')), format('ens_%s', e), format('scale %s', e), 'confidence_weighted', 0.1, 1,
       1700000000000000000 + e
FROM generate_series(0, $tenants - 1) t, generate_series(0, 9) e;

INSERT INTO agents (tenant_id, ensemble_id, agent_id, agent_type, weight, created_at)
SELECT format('t%s', lpad(t::text, 3, '0')), format('ens_%s', e), format('a%s', a), 'scale', 1, 1700000000000000000 + a
FROM generate_series(0, $tenants - 1) t, generate_series(0, 9) e, generate_series(0, 2) a;

INSERT INTO accounts (tenant_id, cash_usd, fees_paid_usd, created_at)
SELECT format('t%s', lpad(t::text, 3, '0')), 1000000, 0, 1700000000000000000 FROM generate_series(0, $tenants - 1) t;
INSERT INTO spot_balances (tenant_id, asset, quantity)
SELECT format('t%s', lpad(t::text, 3, '0')), 'BTC', 10 FROM generate_series(0, $tenants - 1) t;

INSERT INTO predictions (tenant_id, prediction_id, ensemble_id, symbol, signal, action, confidence, contributions,
                         created_at, realized_return, outcome_at)
SELECT format('t%s', lpad(t::text, 3, '0')), format('p_%s', i), format('ens_%s', i % 10), 'BTC-USD',
       s.sig, CASE WHEN s.sig > 0.1 THEN 'buy' WHEN s.sig < -0.1 THEN 'sell' ELSE 'hold' END, 0.5,
       jsonb_build_array(
         jsonb_build_object('agent_id', 'a0', 'signal', s.sig, 'confidence', 0.5, 'weight', 1, 'contribution', s.sig / 3),
         jsonb_build_object('agent_id', 'a1', 'signal', -s.sig, 'confidence', 0.5, 'weight', 1, 'contribution', -s.sig / 3),
         jsonb_build_object('agent_id', 'a2', 'signal', s.sig / 2, 'confidence', 0.5, 'weight', 1, 'contribution', s.sig / 6)),
       1700000000000000000 + i::bigint * 1000000000,
       CASE WHEN i % 5 <> 0 THEN (random() - 0.5) / 10 END,
       CASE WHEN i % 5 <> 0 THEN 1700000000000000000 + i::bigint * 1000000000 + 60000000000 END
FROM generate_series(0, $tenants - 1) t, generate_series(0, $per - 1) i,
     LATERAL (SELECT (random() * 2 - 1)::double precision AS sig) s;

INSERT INTO contributions (tenant_id, prediction_id, agent_id, signal)
SELECT p.tenant_id, p.prediction_id, c->>'agent_id', (c->>'signal')::double precision
FROM predictions p, jsonb_array_elements(p.contributions) c;

-- 1,000 answered Idempotency-Keys a tenant (100,000 in all).
INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, status, content_type, body, created_at)
SELECT format('t%s', lpad(t::text, 3, '0')), format('seed-%s', k), 'h', 200, 'application/json', '\x7b7d'::bytea,
       (extract(epoch FROM now()) * 1e9)::bigint - k::bigint * 1000000000
FROM generate_series(0, $tenants - 1) t, generate_series(0, 999) k;
COMMIT;
ANALYZE;
SELECT count(*) AS predictions, count(DISTINCT tenant_id) AS tenants FROM predictions;
SQL
