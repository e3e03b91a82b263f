#!/usr/bin/env bash
# make run: dev keys, the backend with two demo tenants, and the gate in
# front of it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .data
bin/tgdev keys --dir .dev

GATE=${TENANTGATE_LISTEN:-:8080}
GATE_URL="http://localhost:${GATE##*:}"
bin/backend --listen 127.0.0.1:9001 --db .data/backend.db \
	--assertion-key .dev/assertion.pub.pem --seed-demo &
backend=$!
bin/caddy run --config caddyfile/Caddyfile --adapter caddyfile &
gate=$!
trap 'kill $gate $backend 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
	curl -fsS "$GATE_URL/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done

READ=$(bin/tgdev token --dir .dev --tenant acme --user alice --roles "ensemble:read ensemble:write hedging:read hedging:trade")
ADMIN=$(bin/tgdev token --dir .dev --tenant acme --user root --roles "hedging:read hedging:trade hedging:admin")
cat <<MSG

tenantgate is up: gate $GATE_URL -> backend 127.0.0.1:9001
Audit trail: .data/audit.log    Metrics: http://localhost:2019/metrics

Try it (a dev token for tenant acme, valid 1h; make another with
  make token TENANT=globex USER=bob ROLES="ensemble:read"):

  export TOKEN=$READ
  curl -s $GATE_URL/api/v1/whoami -H "Authorization: Bearer \$TOKEN"

Ensemble walkthrough:
  curl -s $GATE_URL/api/v1/ensemble/create -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"name":"momentum","method":"weighted_average","agents":[{"agent_id":"a1","agent_type":"technical","initial_weight":1},{"agent_id":"a2","agent_type":"sentiment","initial_weight":1}]}'
  E=<ensemble_id from the answer>
  curl -s $GATE_URL/api/v1/ensemble/\$E/register-agent -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"agent_id":"a3","agent_type":"fundamental","initial_weight":0.5}'
  curl -s $GATE_URL/api/v1/ensemble/\$E/predict -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"symbol":"BTC-USD","signals":[{"agent_id":"a1","signal":0.6,"confidence":0.9},{"agent_id":"a2","signal":0.2,"confidence":0.5},{"agent_id":"a3","signal":-0.1,"confidence":0.4}]}'
  P=<prediction_id from the answer>
  curl -s $GATE_URL/api/v1/ensemble/\$E/outcomes -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d "{\"prediction_id\":\"\$P\",\"realized_return\":0.012}"
  curl -s $GATE_URL/api/v1/ensemble/\$E/optimize-weights -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"lookback":50}'
  curl -s $GATE_URL/api/v1/ensemble/\$E/performance -H "Authorization: Bearer \$TOKEN"

Hedging walkthrough:
  curl -s $GATE_URL/api/v1/hedging/analysis -H "Authorization: Bearer \$TOKEN"
  curl -s -X POST $GATE_URL/api/v1/hedging/execute -H "Authorization: Bearer \$TOKEN" -H "Idempotency-Key: demo-1"
  export ADMIN=$ADMIN
  curl -s -X POST $GATE_URL/api/v1/hedging/close -H "Authorization: Bearer \$ADMIN"

Denied, as it should be:
  curl -si $GATE_URL/api/v1/hedging/execute -X POST        # 401 missing_token
  curl -si $GATE_URL/api/v1/hedging/close -X POST -H "Authorization: Bearer \$TOKEN"   # 403 missing_role

Ctrl-C stops both.
MSG
wait $gate
