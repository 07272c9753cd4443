#!/usr/bin/env bash
# The HTTP rows of BENCHMARKS.md, measured in one run on the embedded default (`flash up`,
# release build) with wrk, 64 connections, 2 threads:
#   GET /queue/status vs the axum hello-world route (alternated, each pair a ratio),
#   GET /events, POST /queue/enqueue (a new buyer per request), POST /auth/login (cost 10),
#   GET /queue/status while logins run, RSS idle and peak, CPU used during the login storm.
# Loopback only; every wrk run is bounded by DUR. Raw outputs go to integration/artifacts/.
#
# Usage: integration/bench/run-http.sh   (after `cargo build --release -p flash -p flash-bench`)
# Env: DUR (default 10s), CARGO_TARGET_DIR, FLASH_PORT (18080), HELLO_PORT (18090).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN="${CARGO_TARGET_DIR:-target}/release"
DUR="${DUR:-10s}"
CONN=64
THREADS=2
FLASH_PORT="${FLASH_PORT:-18080}"
HELLO_PORT="${HELLO_PORT:-18090}"
OUT="integration/artifacts/http-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
F="http://127.0.0.1:$FLASH_PORT"
H="http://127.0.0.1:$HELLO_PORT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

json() { python3 -c "import sys,json; d=json.load(sys.stdin); print($1)"; }
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One wrk run: name, then wrk arguments; keeps the full output and prints the key lines.
run() {
    local name=$1; shift
    wrk -t"$THREADS" -c"$CONN" -d"$DUR" --latency "$@" > "$OUT/$name.txt" 2>&1
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt")
    p50=$(awk '$1=="50%" {print $2}' "$OUT/$name.txt")
    p99=$(awk '$1=="99%" {print $2}' "$OUT/$name.txt")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$OUT/$name.txt")
    printf '%-28s %12s req/s  p50 %8s  p99 %8s  non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}" | tee -a "$OUT/summary.txt"
}

{
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME")"
    lscpu | head -n 15
    echo "load before: $(cat /proc/loadavg)"
} > "$OUT/machine.txt"

"$BIN/flash-bench-hello" "$HELLO_PORT" > "$OUT/hello.log" 2>&1 & pids+=($!)
HELLO_PID=$!
PORT=$FLASH_PORT DEMO_USERS=1000 DEMO_EVENT_QTY=1000000 LOG_LEVEL=warn \
    JWT_ACCESS_SECRET=bench-access-secret JWT_REFRESH_SECRET=bench-refresh-secret \
    LOGIN_RATE_LIMIT_PER_USER=1000000000/min LOGIN_RATE_LIMIT_PER_IP=1000000000/min \
    ENQUEUE_RATE_LIMIT_PER_USER=1000000000/min ENQUEUE_RATE_LIMIT_PER_IP=1000000000/min \
    REGISTER_RATE_LIMIT_PER_IP=1000000000/min ORDER_RATE_LIMIT_PER_USER=1000000000/min \
    ORDER_RATE_LIMIT_PER_IP=1000000000/min PAYMENT_RATE_LIMIT_PER_USER=1000000000/min \
    PAYMENT_RATE_LIMIT_PER_IP=1000000000/min \
    "$BIN/flash" > "$OUT/flash.log" 2>&1 & pids+=($!)
FLASH_PID=$!
wait_up "$H/"; wait_up "$F/live"
sleep 1
echo "flash RSS idle: $(( $(rss_kib $FLASH_PID) / 1024 )) MiB ($(rss_kib $FLASH_PID) KiB)" | tee "$OUT/summary.txt"

EVENT=$(curl -s "$F/events" | json 'd[0]["id"]')
TOKEN=$(curl -s -X POST "$F/auth/login" -H 'Content-Type: application/json' \
    -d '{"userId":"test0001","password":"testtest"}' | json 'd["accessToken"]')
TICKET=$(curl -s -X POST "$F/queue/enqueue" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "{\"eventId\":\"$EVENT\"}" | json 'd["ticketId"]')
curl -s "$F/queue/status?ticketId=$TICKET" > "$OUT/status-body.json"
echo "status body: $(cat "$OUT/status-body.json" | head -c 200)" >> "$OUT/summary.txt"

# Same run, alternated: hello, status, hello, status.
run hello-1 "$H/"
run status-1 "$F/queue/status?ticketId=$TICKET"
run hello-2 "$H/"
run status-2 "$F/queue/status?ticketId=$TICKET"
run events "$F/events"

"$BIN/flash-bench-tokens" bench-access-secret 400000 > "$OUT/tokens.txt"
TOKENS="$OUT/tokens.txt" EVENT="$EVENT" WRK_THREADS=$THREADS run enqueue -s integration/bench/wrk/enqueue.lua "$F/queue/enqueue"
echo "tickets created: $(curl -s "$F/queue/status?ticketId=$TICKET" | json 'd.get("queueSize")') queued" | tee -a "$OUT/summary.txt"

t0=$(cpu_ticks $FLASH_PID); s0=$(date +%s.%N)
USERS=1000 WRK_THREADS=$THREADS run login -s integration/bench/wrk/login.lua "$F/auth/login"
t1=$(cpu_ticks $FLASH_PID); s1=$(date +%s.%N)
echo "login CPU: $(python3 -c "print(f'{($t1-$t0)/$(getconf CLK_TCK)/($s1-$s0):.2f} cores')")" | tee -a "$OUT/summary.txt"

# Status while logins run: both wrk at once.
USERS=1000 WRK_THREADS=1 wrk -t1 -c"$CONN" -d"$DUR" --latency -s integration/bench/wrk/login.lua "$F/auth/login" > "$OUT/login-during.txt" 2>&1 &
LOGIN_WRK=$!
THREADS=1 run status-during-logins "$F/queue/status?ticketId=$TICKET"
wait "$LOGIN_WRK" || true
echo "logins meanwhile: $(awk '/Requests\/sec/ {print $2}' "$OUT/login-during.txt") req/s, p99 $(awk '$1=="99%" {print $2}' "$OUT/login-during.txt")" | tee -a "$OUT/summary.txt"

echo "flash RSS now: $(( $(rss_kib $FLASH_PID) / 1024 )) MiB, peak (VmHWM): $(( $(hwm_kib $FLASH_PID) / 1024 )) MiB" | tee -a "$OUT/summary.txt"
echo "hello RSS peak: $(( $(hwm_kib $HELLO_PID) / 1024 )) MiB" | tee -a "$OUT/summary.txt"
echo "load after: $(cat /proc/loadavg)" >> "$OUT/machine.txt"
rm -f "$OUT/tokens.txt"
echo "raw outputs: $OUT"
