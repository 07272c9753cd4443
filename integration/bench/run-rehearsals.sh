#!/usr/bin/env bash
# The end-to-end rows of BENCHMARKS.md: each starts a fresh `flash up` (release build) with the
# row's settings, runs `flash-rehearse` against it, and keeps the report and the server's RSS.
# Loopback only; every rehearsal stops at its --deadline.
#
# Usage: integration/bench/run-rehearsals.sh [ROW...]
#   rows: sale10k admission pay-legacy pay-legacy-256 pay-zero (default: all)
# (after `cargo build --release -p flash -p flash-rehearse`). Env: CARGO_TARGET_DIR, PORT (18180).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN="${CARGO_TARGET_DIR:-target}/release"
PORT="${PORT:-18180}"
OUT="integration/artifacts/rehearsals-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
URL="http://127.0.0.1:$PORT"
ulimit -n 20000 2>/dev/null || true

wait_up() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# rehearse NAME "SERVER ENV…" REHEARSE-ARGS…
rehearse() {
    local name=$1 server_env=$2; shift 2
    mkdir -p "$OUT/$name"
    # shellcheck disable=SC2086 # the server environment is a list of NAME=value words
    # One client address (loopback) plays every buyer: the per-address limits are lifted.
    env PORT="$PORT" LOG_LEVEL=warn LOGIN_RATE_LIMIT_PER_IP=1000000000/min \
        REGISTER_RATE_LIMIT_PER_IP=1000000000/min ENQUEUE_RATE_LIMIT_PER_IP=1000000000/min \
        ORDER_RATE_LIMIT_PER_IP=1000000000/min PAYMENT_RATE_LIMIT_PER_IP=1000000000/min $server_env \
        "$BIN/flash" > "$OUT/$name/flash.log" 2>&1 &
    local pid=$!
    wait_up "$URL/live"
    local idle; idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    local code=0
    "$BIN/flash-rehearse" --url "$URL" --out "$OUT/$name" --no-progress "$@" \
        > "$OUT/$name/terminal.txt" 2>&1 || code=$?
    local peak; peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    {
        echo "== $name: exit $code; server RSS idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB"
        echo "server env: $server_env"
        echo "rehearse args: $*"
        head -n 8 "$OUT/$name/terminal.txt"
        grep -E '^(step|login|socket connect|enqueue|queue status|wait for|enter|order|pay|journey)' "$OUT/$name/terminal.txt" || true
        grep -E 'audit through|^\s+\[(PASS|FAIL)\]|^!' "$OUT/$name/terminal.txt" || true
    } | tee -a "$OUT/summary.txt"
}

rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=(sale10k admission pay-legacy pay-legacy-256 pay-zero)
for row in "${rows[@]}"; do
    case "$row" in
    sale10k)
        # 10,000 logged-in buyers, 1,000 tickets, capacity 200, processor latency 100–500 ms.
        rehearse sale10k "DEMO_USERS=10000 DEMO_EVENT_QTY=1000 QUEUE_READY_CAPACITY=200 PAYMENT_PROCESSING_MIN_MS=100 PAYMENT_PROCESSING_MAX_MS=500 BCRYPT_COST=4" \
            -n 10000 --login before --wait socket --payment-retries 5 --concurrency 512 --deadline 120s --settle 20s
        ;;
    admission)
        # Admission through the queue at capacity 50: stock never runs out, so every buyer is
        # admitted, orders and frees the slot.
        rehearse admission "DEMO_USERS=5000 DEMO_EVENT_QTY=1000000 QUEUE_READY_CAPACITY=50 PAYMENT_PROCESSING_MIN_MS=0 PAYMENT_PROCESSING_MAX_MS=0 PAYMENT_SUCCESS_RATE=1 BCRYPT_COST=4" \
            -n 5000 --login before --wait socket --socket-handshakes 256 --concurrency 512 --deadline 120s
        ;;
    pay-legacy)
        # Payments with the legacy 1–4 s processor latency, one process (default PAY_CONCURRENCY).
        rehearse pay-legacy "DEMO_USERS=1000 DEMO_EVENT_QTY=1000000 QUEUE_READY_CAPACITY=1000 PAYMENT_PROCESSING_MIN_MS=1000 PAYMENT_PROCESSING_MAX_MS=4000 PAYMENT_SUCCESS_RATE=1 BCRYPT_COST=4" \
            -n 1000 --login before --wait poll --poll-interval 100ms --order-poll-interval 500ms --concurrency 512 --deadline 180s --settle 30s
        ;;
    pay-legacy-256)
        # The same with 256 payments in flight in the one pay process (PAY_CONCURRENCY).
        rehearse pay-legacy-256 "DEMO_USERS=2000 DEMO_EVENT_QTY=1000000 QUEUE_READY_CAPACITY=2000 PAYMENT_PROCESSING_MIN_MS=1000 PAYMENT_PROCESSING_MAX_MS=4000 PAYMENT_SUCCESS_RATE=1 PAY_CONCURRENCY=256 BCRYPT_COST=4" \
            -n 2000 --login before --wait poll --poll-interval 100ms --order-poll-interval 500ms --concurrency 512 --deadline 180s --settle 30s
        ;;
    pay-zero)
        # Payments end to end with processor latency 0 (in-process bus, not RabbitMQ).
        rehearse pay-zero "DEMO_USERS=5000 DEMO_EVENT_QTY=1000000 QUEUE_READY_CAPACITY=5000 PAYMENT_PROCESSING_MIN_MS=0 PAYMENT_PROCESSING_MAX_MS=0 PAYMENT_SUCCESS_RATE=1 BCRYPT_COST=4" \
            -n 5000 --login before --wait poll --poll-interval 100ms --order-poll-interval 20ms --concurrency 512 --deadline 120s
        ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
    esac
done
echo "raw outputs: $OUT"
