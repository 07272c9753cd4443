#!/usr/bin/env bash
# Issue 11's fuzz run: builds release `flash` and `flash-fuzz`, starts `flash up` (in-memory
# adapters) on a free loopback port with every per-address and per-user limit lifted (one
# client plays every caller), fuzzes it with REQUESTS requests while sampling its RSS, and
# prints the summary. With PODS=1 it also starts the gateway, api and pay pods on the local
# PostgreSQL, Redis and RabbitMQ (a fresh database, Redis prefix and queue names) and fuzzes
# them the same way. Exits non-zero when any run fails.
#
# With MODE=flood it runs the flood instead (flash-flood: NAMES distinct login names, one in a
# hundred 60,000 characters long, and KEYS distinct idempotency keys from one attacker address
# while a buyer from another buys), with the DEFAULT limits an attacker meets, checking the
# server's RSS and (pods) Redis used_memory against RSS_BUDGET_MIB / REDIS_BUDGET_MIB.
#
# Usage: integration/fuzz/run.sh
# Env: MODE (fuzz), REQUESTS (100000), CONCURRENCY (32), SEED (1), RSS_BUDGET_MIB (256), PODS (0),
#      NAMES (1000000), KEYS (1000000), REDIS_BUDGET_MIB (64),
#      CARGO_TARGET_DIR, PG (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

REQUESTS="${REQUESTS:-100000}"
CONCURRENCY="${CONCURRENCY:-32}"
SEED="${SEED:-1}"
RSS_BUDGET_MIB="${RSS_BUDGET_MIB:-256}"
PODS="${PODS:-0}"
MODE="${MODE:-fuzz}"
NAMES="${NAMES:-1000000}"
KEYS="${KEYS:-1000000}"
REDIS_BUDGET_MIB="${REDIS_BUDGET_MIB:-64}"
PG="${PG:-postgres://postgres@127.0.0.1:5432}"
BIN="${CARGO_TARGET_DIR:-target}/release"
OUT="integration/artifacts/fuzz-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

packages=(-p flash -p flash-fuzz)
[ "$PODS" = 1 ] && packages+=(-p flash-pods)
[ "$MODE" = flood ] && packages=(-p flash -p flash-fuzz)
[ "$MODE" = flood ] && [ "$PODS" = 1 ] && packages+=(-p flash-pods)
nice cargo build --release "${packages[@]}"

pids=()
database=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$database" ]; then
        psql -h 127.0.0.1 -U postgres -d postgres -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
    fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

LIMITS=()
# The flood meets the limits an attacker meets; the fuzz lifts them (one client plays all).
[ "$MODE" = flood ] || for v in LOGIN_RATE_LIMIT_PER_USER LOGIN_RATE_LIMIT_PER_IP REGISTER_RATE_LIMIT_PER_IP \
    ENQUEUE_RATE_LIMIT_PER_USER ENQUEUE_RATE_LIMIT_PER_IP ORDER_RATE_LIMIT_PER_USER \
    ORDER_RATE_LIMIT_PER_IP PAYMENT_RATE_LIMIT_PER_USER PAYMENT_RATE_LIMIT_PER_IP; do
    LIMITS+=("$v=1000000000/min")
done
ACCESS="fuzz-access-$RANDOM$RANDOM"
ADMIN="fuzz-admin-$RANDOM$RANDOM"
COMMON=(env "${LIMITS[@]}" JWT_ACCESS_SECRET="$ACCESS" JWT_REFRESH_SECRET="fuzz-refresh-$RANDOM"
    ADMIN_REGISTER_SECRET="$ADMIN" BCRYPT_COST=4 LOG_LEVEL=warn RUST_LOG=warn)
status=0

PORT=$(free_port)
PORT=$PORT HOST=127.0.0.1 DEMO_USERS=10 "${COMMON[@]}" "$BIN/flash" > "$OUT/flash.log" 2>&1 &
FLASH_PID=$!
pids+=("$FLASH_PID")
wait_up "http://127.0.0.1:$PORT/live"
echo "== flash up (pid $FLASH_PID, port $PORT): $REQUESTS requests, concurrency $CONCURRENCY"
if [ "$MODE" = flood ]; then
    "$BIN/flash-flood" --base "http://127.0.0.1:$PORT" --names "$NAMES" --keys "$KEYS" \
        --concurrency "$CONCURRENCY" --pid "$FLASH_PID" --rss-budget-mib "$RSS_BUDGET_MIB" \
        | tee "$OUT/flash-up.txt" || status=1
else
    "$BIN/flash-fuzz" --base "http://127.0.0.1:$PORT" --requests "$REQUESTS" \
        --concurrency "$CONCURRENCY" --seed "$SEED" --pid "$FLASH_PID" \
        --rss-budget-mib "$RSS_BUDGET_MIB" --admin-secret "$ADMIN" --jwt-access-secret "$ACCESS" \
        --examples 50 | tee "$OUT/flash-up.txt" || status=1
fi

if [ "$PODS" = 1 ]; then
    id=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:10])')
    database="flash_fuzz_$id"
    psql -h 127.0.0.1 -U postgres -d postgres -q -c "CREATE DATABASE $database"
    PODENV=("${COMMON[@]}" DATABASE_URL="$PG/$database" REDIS_URL=redis://127.0.0.1:6379
        REDIS_KEY_PREFIX="fz$id:" RABBITMQ_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
        PAYMENT_REQUEST_QUEUE="req_$id" PAYMENT_RESULT_QUEUE="res_$id" HOST=127.0.0.1
        PAY_HEALTH_PORT=0 QUEUE_PROMOTION_INTERVAL_MS=100)
    "${PODENV[@]}" "$BIN/flash-migrate" > "$OUT/migrate.log" 2>&1
    GW_PORT=$(free_port); API_PORT=$(free_port)
    "${PODENV[@]}" PORT="$GW_PORT" "$BIN/flash-gateway" > "$OUT/gateway.log" 2>&1 &
    GW_PID=$!
    pids+=("$GW_PID")
    "${PODENV[@]}" PORT="$API_PORT" "$BIN/flash-api" > "$OUT/api.log" 2>&1 &
    API_PID=$!
    pids+=("$API_PID")
    "${PODENV[@]}" PORT=0 "$BIN/flash-pay" > "$OUT/pay.log" 2>&1 & pids+=($!)
    wait_up "http://127.0.0.1:$GW_PORT/live"
    wait_up "http://127.0.0.1:$API_PORT/live"
    if [ "$MODE" = flood ]; then
        GW="http://127.0.0.1:$GW_PORT"
        # An ONSALE event for the flood, made by an admin (the pods have no demo data).
        curl -sf -X POST "$GW/auth/register/admin" -H 'Content-Type: application/json' \
            -d "{\"userId\":\"floodadmin\",\"password\":\"testtest\",\"adminSecret\":\"$ADMIN\"}" > /dev/null
        ADMIN_TOKEN=$(curl -sf -X POST "$GW/auth/login" -H 'Content-Type: application/json' \
            -d '{"userId":"floodadmin","password":"testtest"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["accessToken"])')
        EVENT=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/events" -H "Authorization: Bearer $ADMIN_TOKEN" \
            -H 'Content-Type: application/json' \
            -d '{"name":"Flood","starts_at":"2026-01-01T10:00:00.000Z","ends_at":"2030-01-01T10:00:00.000Z","total_qty":1000,"max_per_user":4,"price":1000}' \
            | python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])')
        curl -sf -X PATCH "http://127.0.0.1:$API_PORT/events/$EVENT" -H "Authorization: Bearer $ADMIN_TOKEN" \
            -H 'Content-Type: application/json' -d '{"status":"ONSALE"}' > /dev/null
        echo "== pods flood (gateway :$GW_PORT pid $GW_PID): $NAMES names, $KEYS keys"
        "$BIN/flash-flood" --base "$GW" --api "http://127.0.0.1:$API_PORT" --forwarded \
            --attacker flooder01 --buyer floodbuyer01 --event "$EVENT" \
            --names "$NAMES" --keys "$KEYS" --concurrency "$CONCURRENCY" --pid "$GW_PID" \
            --rss-budget-mib "$RSS_BUDGET_MIB" --redis-url redis://127.0.0.1:6379 \
            --redis-budget-mib "$REDIS_BUDGET_MIB" | tee "$OUT/pods.txt" || status=1
        echo "outputs: $OUT"
        exit "$status"
    fi
    echo "== pods (gateway :$GW_PORT, api :$API_PORT pid $API_PID): $REQUESTS requests"
    "$BIN/flash-fuzz" --base "http://127.0.0.1:$GW_PORT" --api "http://127.0.0.1:$API_PORT" \
        --requests "$REQUESTS" --concurrency "$CONCURRENCY" --seed "$SEED" --pid "$API_PID" \
        --rss-budget-mib "$RSS_BUDGET_MIB" --admin-secret "$ADMIN" \
        --jwt-access-secret "$ACCESS" --users fuzza01 fuzzb01 fuzzbuyer01 \
        --examples 50 | tee "$OUT/pods.txt" || status=1
fi
echo "outputs: $OUT"
exit "$status"
