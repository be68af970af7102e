#!/usr/bin/env bash
# A distributed eventshop on this machine, Procfile-style: 2 instances of every service
# (each `eventshop serve` process runs one service) and 2 gateways on ports 8081 and 8082,
# on the local PostgreSQL and NATS JetStream. Ctrl-C stops them all (SIGTERM, so each
# drains), and the script waits for them.
#
#   deploy/local-cluster.sh [DATABASE]        # default database: eventshop_cluster
#
# Environment (all optional):
#   EVENTSHOP_BIN            the binary [default: the newer of target/{release,debug}/eventshop]
#   POSTGRES_URL             the server [default: postgres://postgres@127.0.0.1:5432]
#   NATS_URL                 [default: nats://127.0.0.1:4222]
#   EVENTSHOP_NAMESPACE      the shop's namespace on NATS [default: the database's name]
#   EVENTSHOP_JWT_SECRET     shared by both gateways [default: generated for this run]
#   EVENTSHOP_ADMIN_EMAIL / EVENTSHOP_ADMIN_PASSWORD  the first administrator
#                            [default: admin@example.com / change-me-please]
set -euo pipefail

database="${1:-eventshop_cluster}"
postgres="${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
nats="${NATS_URL:-nats://127.0.0.1:4222}"
namespace="${EVENTSHOP_NAMESPACE:-$database}"
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -n "${EVENTSHOP_BIN:-}" ]]; then
    bin="$EVENTSHOP_BIN"
else
    # The newer of the release and debug builds.
    bin="$(ls -t "$root/target/release/eventshop" "$root/target/debug/eventshop" 2>/dev/null | head -n 1)"
fi
[[ -x "$bin" ]] || { echo "no eventshop binary at $bin: run cargo build --release -p eventshop" >&2; exit 1; }
[[ "$database" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "database name must be lowercase letters, digits, _" >&2; exit 1; }

export EVENTSHOP_JWT_SECRET="${EVENTSHOP_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export EVENTSHOP_ADMIN_EMAIL="${EVENTSHOP_ADMIN_EMAIL:-admin@example.com}"
export EVENTSHOP_ADMIN_PASSWORD="${EVENTSHOP_ADMIN_PASSWORD:-change-me-please}"
export EVENTSHOP_LOG="${EVENTSHOP_LOG:-info}"

# The database, created if missing (each service makes its own schema in it).
if ! psql "$postgres/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    echo "creating database $database"
    psql "$postgres/postgres" -qc "CREATE DATABASE $database"
fi
store="$postgres/$database"

logs="${TMPDIR:-/tmp}/eventshop-cluster-$database"
mkdir -p "$logs"
pids=()

# name, then the command; its output goes to $logs/name.log, prefixed lines to the terminal.
start() {
    local name="$1"
    shift
    "$@" > >(sed -u "s/^/[$name] /" | tee -a "$logs/$name.log") 2>&1 &
    pids+=("$!")
}

stop() {
    trap - INT TERM
    echo "stopping ${#pids[@]} processes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    echo "stopped; logs in $logs"
}
trap stop INT TERM

services=(identity catalog inventory payments orders cart shipping reviews notifications recommendations)
for instance in 1 2; do
    for service in "${services[@]}"; do
        # 2 connections per instance: 2 × 10 services × 2 = 40 of PostgreSQL's default 100.
        start "$service-$instance" "$bin" serve "$service" --store "$store" --bus "$nats" \
            --namespace "$namespace" --postgres-connections 2
    done
done
for port in 8081 8082; do
    start "gateway-$port" "$bin" gateway --bus "$nats" --namespace "$namespace" --listen "127.0.0.1:$port"
done

echo "eventshop cluster: 20 service instances, gateways http://127.0.0.1:8081 and http://127.0.0.1:8082"
echo "namespace $namespace, database $store; logs in $logs; Ctrl-C stops everything"
wait "${pids[@]}"
