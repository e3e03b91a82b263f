#!/usr/bin/env bash
# make run: dev keys, the backend with two demo tenants, and the gate in
# front of it. Ctrl-C (or `make stop` from another shell) stops both.
#
# It prints "tenantgate is up" only once the gate, the backend and Caddy's
# admin endpoint answer, and (on Linux) only once every listener on their
# ports belongs to the processes it started: Caddy binds with SO_REUSEPORT,
# so a second Caddy on a port a first one holds would start "fine" and
# share its traffic. A port already taken stops it before anything starts.
#
# Environment (the defaults are `make run`'s):
#   TENANTGATE_CONFIG          Caddyfile            (caddyfile/Caddyfile)
#   TENANTGATE_LISTEN          gate address, :PORT  (:8080; the dev site binds 127.0.0.1)
#   TENANTGATE_ADMIN           Caddy admin address  (127.0.0.1:2019)
#   TENANTGATE_BACKEND_LISTEN  backend address      (127.0.0.1:9001)
#   TENANTGATE_KEYS            dev keys             (.dev)
#   TENANTGATE_DATA            database, audit log, logs, pid files (.data)
#   TENANTGATE_SCHEME          http or https        (http; https for production.local)
#   TENANTGATE_START_TIMEOUT   seconds to wait for "up" (60)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ports.sh
. scripts/ports.sh

export TENANTGATE_CONFIG=${TENANTGATE_CONFIG:-caddyfile/Caddyfile}
export TENANTGATE_LISTEN=${TENANTGATE_LISTEN:-:8080}
export TENANTGATE_ADMIN=${TENANTGATE_ADMIN:-127.0.0.1:2019}
export TENANTGATE_BACKEND_LISTEN=${TENANTGATE_BACKEND_LISTEN:-127.0.0.1:9001}
export TENANTGATE_UPSTREAM=$TENANTGATE_BACKEND_LISTEN
export TENANTGATE_KEYS=${TENANTGATE_KEYS:-.dev}
export TENANTGATE_DATA=${TENANTGATE_DATA:-.data}
export TENANTGATE_AUDIT_LOG=${TENANTGATE_AUDIT_LOG:-$TENANTGATE_DATA/audit.log}
SCHEME=${TENANTGATE_SCHEME:-http}
TIMEOUT=${TENANTGATE_START_TIMEOUT:-60}

gate_port=$(port_of "$TENANTGATE_LISTEN")
admin_port=$(port_of "$TENANTGATE_ADMIN")
backend_port=$(port_of "$TENANTGATE_BACKEND_LISTEN")
GATE_URL="$SCHEME://localhost:$gate_port"
ADMIN_URL="http://127.0.0.1:$admin_port"
BACKEND_URL="http://127.0.0.1:$backend_port"
RUN_DIR="$TENANTGATE_DATA/run"
# Caddy keeps its state (the local CA of production.local.Caddyfile) here.
CADDY_CA="$TENANTGATE_DATA/xdg/caddy/pki/authorities/local/root.crt"

fail() { printf 'make run: %s\n' "$*" >&2; exit 1; }

# A previous run still holding its ports is the likeliest first stumble.
if [ -f "$RUN_DIR/run.pid" ] && kill -0 "$(cat "$RUN_DIR/run.pid")" 2>/dev/null; then
	fail "a previous \`make run\` (pid $(cat "$RUN_DIR/run.pid"), data in $TENANTGATE_DATA) is still running; stop it with \`make stop\`"
fi
taken=0
for spec in "gate:$gate_port:TENANTGATE_LISTEN=:PORT" "admin:$admin_port:TENANTGATE_ADMIN=127.0.0.1:PORT" \
	"backend:$backend_port:TENANTGATE_BACKEND_LISTEN=127.0.0.1:PORT"; do
	IFS=: read -r what port hint <<<"$spec"
	if port_in_use "$port"; then
		printf 'make run: port %s (%s) is already in use%s; stop what holds it (`make stop` if it is an earlier `make run`) or choose another port with %s\n' \
			"$port" "$what" "$(port_holder "$port")" "$hint" >&2
		taken=1
	fi
done
[ "$taken" = 0 ] || exit 1
[ "$gate_port" != "$admin_port" ] && [ "$gate_port" != "$backend_port" ] && [ "$admin_port" != "$backend_port" ] ||
	fail "the gate ($gate_port), admin ($admin_port) and backend ($backend_port) ports must differ"

mkdir -p "$TENANTGATE_DATA" "$RUN_DIR"
XDG_HOME="$(cd "$TENANTGATE_DATA" && pwd)/xdg"
bin/tgdev keys --dir "$TENANTGATE_KEYS"

GATE_LOG="$TENANTGATE_DATA/gate.log" BACKEND_LOG="$TENANTGATE_DATA/backend.log"
: >"$GATE_LOG"
: >"$BACKEND_LOG"
bin/backend --listen "$TENANTGATE_BACKEND_LISTEN" --db "$TENANTGATE_DATA/backend.db" \
	--assertion-key "$TENANTGATE_KEYS/assertion.pub.pem" --seed-demo >>"$BACKEND_LOG" 2>&1 &
backend=$!
XDG_DATA_HOME="$XDG_HOME" XDG_CONFIG_HOME="$XDG_HOME" \
	bin/caddy run --config "$TENANTGATE_CONFIG" --adapter caddyfile >>"$GATE_LOG" 2>&1 &
gate=$!
echo $$ >"$RUN_DIR/run.pid"
echo "$gate" >"$RUN_DIR/gate.pid"
echo "$backend" >"$RUN_DIR/backend.pid"
cleanup() {
	kill "$gate" "$backend" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -f "$RUN_DIR/run.pid" "$RUN_DIR/gate.pid" "$RUN_DIR/backend.pid"
}
trap cleanup EXIT
# Ctrl-C and `make stop` are the normal way out.
trap 'exit 0' INT TERM

# died NAME PID LOG: the process is gone; say why, from its log.
died() {
	printf 'make run: the %s exited before it was up; last lines of %s:\n' "$1" "$3" >&2
	tail -n 15 "$3" | sed 's/^/  /' >&2
	grep -q 'address already in use' "$3" && printf 'make run: a port was taken after the check above; stop what holds it and retry\n' >&2
	exit 1
}

curl_gate=(curl -fsS -o /dev/null --max-time 2)
[ "$SCHEME" = https ] && curl_gate+=(--cacert "$CADDY_CA")
deadline=$((SECONDS + TIMEOUT))
while :; do
	kill -0 "$backend" 2>/dev/null || died backend "$backend" "$BACKEND_LOG"
	kill -0 "$gate" 2>/dev/null || died gate "$gate" "$GATE_LOG"
	if curl -fsS -o /dev/null --max-time 2 "$BACKEND_URL/healthz" 2>/dev/null &&
		curl -fsS -o /dev/null --max-time 2 "$ADMIN_URL/config/" 2>/dev/null &&
		{ [ "$SCHEME" != https ] || [ -s "$CADDY_CA" ]; } &&
		"${curl_gate[@]}" "$GATE_URL/healthz" 2>/dev/null; then
		owner_ok=1
		for pair in "$gate_port:$gate" "$admin_port:$gate" "$backend_port:$backend"; do
			listeners_owned_by "${pair%%:*}" "${pair##*:}" || owner_ok=0
		done
		[ "$owner_ok" = 1 ] && break
		fail "something other than the processes this run started answers on port $gate_port, $admin_port or $backend_port; stop it (\`make stop\`) and retry"
	fi
	[ "$SECONDS" -lt "$deadline" ] || {
		printf 'make run: not up after %ss; last lines of %s and %s:\n' "$TIMEOUT" "$GATE_LOG" "$BACKEND_LOG" >&2
		tail -n 10 "$GATE_LOG" "$BACKEND_LOG" | sed 's/^/  /' >&2
		exit 1
	}
	sleep 0.2
done

# HTTPS (production.local) needs Caddy's local CA; the printed curls say so.
CA_OPT=""
[ "$SCHEME" = https ] && CA_OPT=" --cacert $CADDY_CA"
READ=$(bin/tgdev token --dir "$TENANTGATE_KEYS" --tenant acme --user alice --roles "ensemble:read ensemble:write hedging:read hedging:trade")
ADMIN=$(bin/tgdev token --dir "$TENANTGATE_KEYS" --tenant acme --user root --roles "hedging:read hedging:trade hedging:admin")
cat <<MSG

tenantgate is up: gate $GATE_URL (pid $gate, config $TENANTGATE_CONFIG) -> backend $BACKEND_URL (pid $backend)
Audit trail: $TENANTGATE_AUDIT_LOG    Metrics: $ADMIN_URL/metrics
Logs: $GATE_LOG, $BACKEND_LOG

Try it (a dev token for tenant acme, valid 1h; make another with
  make token TENANT=globex USER=bob ROLES="ensemble:read" TTL=30m):

  export TOKEN=$READ
  curl -s$CA_OPT $GATE_URL/api/v1/whoami -H "Authorization: Bearer \$TOKEN"

Ensemble walkthrough:
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/create -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"name":"momentum","method":"weighted_average","agents":[{"agent_id":"a1","agent_type":"technical","initial_weight":1},{"agent_id":"a2","agent_type":"sentiment","initial_weight":1}]}'
  E=<ensemble_id from the answer>
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/\$E/register-agent -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"agent_id":"a3","agent_type":"fundamental","initial_weight":0.5}'
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/\$E/predict -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"symbol":"BTC-USD","signals":[{"agent_id":"a1","signal":0.6,"confidence":0.9},{"agent_id":"a2","signal":0.2,"confidence":0.5},{"agent_id":"a3","signal":-0.1,"confidence":0.4}]}'
  P=<prediction_id from the answer>
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/\$E/outcomes -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d "{\"prediction_id\":\"\$P\",\"realized_return\":0.012}"
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/\$E/optimize-weights -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"lookback":50}'
  curl -s$CA_OPT $GATE_URL/api/v1/ensemble/\$E/performance -H "Authorization: Bearer \$TOKEN"

Hedging walkthrough:
  curl -s$CA_OPT $GATE_URL/api/v1/hedging/analysis -H "Authorization: Bearer \$TOKEN"
  curl -s$CA_OPT -X POST $GATE_URL/api/v1/hedging/execute -H "Authorization: Bearer \$TOKEN" -H "Idempotency-Key: demo-1"
  export ADMIN=$ADMIN
  curl -s$CA_OPT -X POST $GATE_URL/api/v1/hedging/close -H "Authorization: Bearer \$ADMIN"

Denied, as it should be:
  curl -s$CA_OPT -i $GATE_URL/api/v1/hedging/execute -X POST        # 401 missing_token
  curl -s$CA_OPT -i $GATE_URL/api/v1/hedging/close -X POST -H "Authorization: Bearer \$TOKEN"   # 403 missing_role

Ctrl-C here, or \`make stop\` from another shell, stops both.
MSG
# Wait for either process: when one goes, the EXIT trap stops the other.
while kill -0 "$gate" 2>/dev/null && kill -0 "$backend" 2>/dev/null; do
	# (bash without wait -n, e.g. macOS bash 3.2, polls once a second)
	wait -n "$gate" "$backend" 2>/dev/null || sleep 1
done
kill -0 "$gate" 2>/dev/null || { echo "make run: the gate exited; see $GATE_LOG" >&2; exit 1; }
echo "make run: the backend exited; see $BACKEND_LOG" >&2
exit 1
