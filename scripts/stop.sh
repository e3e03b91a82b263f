#!/usr/bin/env bash
# make stop: stops a `make run` (or `make run-prod-local`) left running in
# the background or in another shell, from the pid files it wrote under
# $TENANTGATE_DATA/run (default .data/run; .dev/prod-local/run for
# run-prod-local). A pid is signalled only while its command line is still
# the run script, bin/caddy or bin/backend, so a stale file never kills an
# unrelated process that reused the pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIRS=${TENANTGATE_DATA:-.data .dev/prod-local}

# ours PID NAME: PID is alive and still runs NAME.
ours() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/cmdline" ] || return 0
	tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

stopped=0
for data in $DATA_DIRS; do
	run_dir="$data/run"
	[ -d "$run_dir" ] || continue
	# Read every pid file first: stopping the run script makes it remove them.
	pids=() names=()
	for pair in run:scripts/run.sh gate:bin/caddy backend:bin/backend; do
		name=${pair%%:*} cmd=${pair#*:}
		f="$run_dir/$name.pid"
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if ours "$pid" "$cmd"; then
			pids+=("$pid")
			names+=("$name")
		fi
	done
	for i in "${!pids[@]}"; do
		kill -TERM "${pids[$i]}" 2>/dev/null && echo "make stop: sent SIGTERM to the ${names[$i]} (pid ${pids[$i]}, $data)"
	done
	for _ in $(seq 1 100); do
		alive=0
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			echo "make stop: pid $pid did not stop within 10 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	rm -f "$run_dir/run.pid" "$run_dir/gate.pid" "$run_dir/backend.pid"
	[ "${#pids[@]}" = 0 ] || stopped=1
done
[ "$stopped" = 1 ] && echo "make stop: stopped" || echo "make stop: no \`make run\` is running (no live pid files under: $DATA_DIRS)"
