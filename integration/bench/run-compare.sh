#!/usr/bin/env bash
# Before/after in one run, embedded default (`flash up`, in-memory adapters): GET /queue/status,
# GET /events and POST /queue/enqueue (a new buyer per request) of an older release build
# (BASE_BIN) and of this one, alternated with the axum hello-world reference: hello, base, new,
# hello, base, new. Each status target is a READY ticket (its body carries a signed gate token),
# as in run-http.sh. Every rate limit is lifted (one loopback client plays every buyer); a build
# that does not know a limit's variable ignores it. Loopback only; bounded by DUR.
#
# Usage: BASE_BIN=<dir with an older flash> integration/bench/run-compare.sh
# Env: DUR (10s), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release}"
: "${BASE_BIN:?BASE_BIN must name the directory of the build to compare with}"
DUR="${DUR:-10s}"
OUT="integration/artifacts/compare-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
json() { python3 -c "import sys,json; d=json.load(sys.stdin); print($1)"; }
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

run() {
    local name=$1; shift
    wrk -t2 -c64 -d"$DUR" --latency "$@" > "$OUT/$name.txt" 2>&1
    printf '%-12s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n' "$name" \
        "$(awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt")" \
        "$(awk '$1=="50%" {print $2}' "$OUT/$name.txt")" \
        "$(awk '$1=="99%" {print $2}' "$OUT/$name.txt")" \
        "$(awk '/Non-2xx/ {print $5}' "$OUT/$name.txt" | grep . || echo 0)" | tee -a "$SUMMARY"
}

UNLIMITED=()
for v in LOGIN_RATE_LIMIT_PER_USER LOGIN_RATE_LIMIT_PER_IP REGISTER_RATE_LIMIT_PER_IP \
    ENQUEUE_RATE_LIMIT_PER_USER ENQUEUE_RATE_LIMIT_PER_IP ORDER_RATE_LIMIT_PER_USER \
    ORDER_RATE_LIMIT_PER_IP PAYMENT_RATE_LIMIT_PER_USER PAYMENT_RATE_LIMIT_PER_IP; do
    UNLIMITED+=("$v=1000000000/min")
done
UNLIMITED=(env "${UNLIMITED[@]}")

echo "load before: $(cat /proc/loadavg)" | tee "$SUMMARY"
"$BIN/flash-bench-hello" 18090 > "$OUT/hello.log" 2>&1 & pids+=($!)
declare -A URL=([base]=http://127.0.0.1:18081 [new]=http://127.0.0.1:18080)
declare -A TICKET
for who in base new; do
    b="$BIN"; [ "$who" = base ] && b="$BASE_BIN"
    PORT=${URL[$who]##*:} DEMO_USERS=10 DEMO_EVENT_QTY=1000 LOG_LEVEL=warn BCRYPT_COST=4 \
        JWT_ACCESS_SECRET=bench-access-secret JWT_REFRESH_SECRET=bench-refresh-secret \
        "${UNLIMITED[@]}" "$b/flash" > "$OUT/flash-$who.log" 2>&1 & pids+=($!)
done
wait_up http://127.0.0.1:18090/
for who in base new; do
    F=${URL[$who]}
    wait_up "$F/live"
    EVENT=$(curl -s "$F/events" | json 'd[0]["id"]')
    TOKEN=$(curl -s -X POST "$F/auth/login" -H 'Content-Type: application/json' \
        -d '{"userId":"test0001","password":"testtest"}' | json 'd["accessToken"]')
    TICKET[$who]=$(curl -s -X POST "$F/queue/enqueue" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"eventId\":\"$EVENT\"}" | json 'd["ticketId"]')
    sleep 0.5
    echo "$who status body: $(curl -s "$F/queue/status?ticketId=${TICKET[$who]}" | head -c 120)…" >> "$SUMMARY"
done
for round in 1 2; do
    run "hello-$round" http://127.0.0.1:18090/
    for who in base new; do
        run "status-$who-$round" "${URL[$who]}/queue/status?ticketId=${TICKET[$who]}"
    done
done
for who in base new; do run "events-$who" "${URL[$who]}/events"; done
"$BIN/flash-bench-tokens" bench-access-secret 400000 > "$OUT/tokens.txt"
for who in base new; do
    EVENT=$(curl -s "${URL[$who]}/events" | json 'd[0]["id"]')
    TOKENS="$OUT/tokens.txt" EVENT="$EVENT" WRK_THREADS=2 \
        run "enqueue-$who" -s integration/bench/wrk/enqueue.lua "${URL[$who]}/queue/enqueue"
done
echo "load after: $(cat /proc/loadavg)" | tee -a "$SUMMARY"
python3 - "$OUT" <<'PY' | tee -a "$SUMMARY"
import sys, re
out = sys.argv[1]
def rps(n):
    return float(re.search(r'Requests/sec:\s+(\S+)', open(f"{out}/{n}.txt").read()).group(1))
for r in (1, 2):
    h, b, n = rps(f"hello-{r}"), rps(f"status-base-{r}"), rps(f"status-new-{r}")
    print(f"round {r}: status/hello base {b/h:.2f}, new {n/h:.2f}; new/base {n/b:.2f}")
print(f"events new/base {rps('events-new')/rps('events-base'):.2f}")
print(f"enqueue new/base {rps('enqueue-new')/rps('enqueue-base'):.2f}")
PY
echo "raw outputs: $OUT"
