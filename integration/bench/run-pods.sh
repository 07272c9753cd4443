#!/usr/bin/env bash
# The real-backend rows of BENCHMARKS.md: the pod binaries (release build) against the local
# PostgreSQL (127.0.0.1:5432, trust), Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672,
# guest/guest). Each section gets a fresh database (created here, dropped at the end), its own
# Redis key prefix (deleted at the end) and its own queue names; wrk uses 64 connections, 2
# threads, on the same 2 cores. Loopback only; every load is bounded in count and time.
#
# Usage: integration/bench/run-pods.sh [SECTION…]   (default: all sections)
#   status    GET /queue/status and POST /queue/enqueue on real Redis; with BASE_BIN=<dir of an
#             older release build> the same wrk runs alternate between that build and this one
#   events    GET /events and GET /events/:id on flash-api (PostgreSQL); with BASE_BIN the
#             runs alternate between that build's api and this one's
#   orders    POST /orders over HTTP on real PostgreSQL, admitted buyers, one hot event
#   payments  payments end to end over RabbitMQ, processor latency 0
#   legacy    payments with the legacy 1–4 s latency on one pay process (PAY_CONCURRENCY 32, 256)
#   rehearse  flash-rehearse against the pods, database audit included
#   login     POST /auth/login on the gateway (bcrypt cost 10, 64 accounts on PostgreSQL, 64
#             connections) with the gateway pinned to 1 core, then 2 (taskset), and GET
#             /queue/status while 64 more login connections run; with BASE_BIN, that build too
#   race      2,000 buyers for 100 tickets: the other 1,900 told SOLD_OUT in line (issue 12)
#   million   1,000,000 queued tickets: enqueue and status rates, Redis used_memory
#   sockets   10,000 Socket.IO connections held open on one gateway; READY push after promotion
# Every section also prints the RSS of each pod (idle after start, peak = VmHWM at the end).
# Build first: cargo build --release -p flash-pods -p flash-bench -p flash-rehearse
# Env: DUR (wrk duration, 10s), CARGO_TARGET_DIR, BIN (the pod binaries; default
# $CARGO_TARGET_DIR/release), DRIVE (flash-bench-drive; default from BIN), BASE_BIN, CORES (login:
# the core counts to pin the gateway to, default "1 2"), PERF (status: profiles of the gateway).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release}"
BASE_BIN="${BASE_BIN:-}"
# The load driver, by default from BIN; set it to compare two server builds with one driver.
DRIVE="${DRIVE:-$BIN/flash-bench-drive}"
DUR="${DUR:-10s}"
PGURL=postgres://postgres@127.0.0.1:5432
OUT="integration/artifacts/pods-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pids=()
DBS=()
PREFIXES=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for d in "${DBS[@]}"; do psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null || true; done
    DBS=()
    for p in "${PREFIXES[@]}"; do
        redis-cli --scan --pattern "${p}*" | xargs -r -n 1000 redis-cli unlink >/dev/null || true
    done
    PREFIXES=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$SUMMARY"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
wait_up() { for _ in $(seq 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
sql() { psql -h 127.0.0.1 -U postgres -d "$DB" -tA -c "$1"; }

# A fresh world: database (migrated), Redis prefix, queue names, secrets. Sets ENVV.
world() {
    local id; id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
    DB="flash_bench_${1}_$id"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB"
    DBS+=("$DB")
    PREFIX="bench$id:"
    PREFIXES+=("$PREFIX")
    SECRET="bench-access-$id"
    ENVV=(
        DATABASE_URL="$PGURL/$DB" REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="$PREFIX"
        RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f
        PAYMENT_REQUEST_QUEUE="req_$id" PAYMENT_RESULT_QUEUE="res_$id"
        JWT_ACCESS_SECRET="$SECRET" JWT_REFRESH_SECRET="bench-refresh-$id"
        LOG_LEVEL=warn HOST=127.0.0.1
        ENQUEUE_RATE_LIMIT_PER_USER=1000000000/min LOGIN_RATE_LIMIT_PER_IP=1000000000/min
        LOGIN_RATE_LIMIT_PER_USER=1000000000/min
        REGISTER_RATE_LIMIT_PER_IP=1000000000/min ENQUEUE_RATE_LIMIT_PER_IP=1000000000/min
        ORDER_RATE_LIMIT_PER_USER=1000000000/min ORDER_RATE_LIMIT_PER_IP=1000000000/min
        PAYMENT_RATE_LIMIT_PER_USER=1000000000/min PAYMENT_RATE_LIMIT_PER_IP=1000000000/min
    )
    env "${ENVV[@]}" "$BIN/flash-migrate" > "$OUT/migrate-$1.log" 2>&1
}

# start NAME BINARY PORT [VAR=VALUE…]: starts a pod, waits for /live; sets PID_<NAME>.
start() {
    local name=$1 binary=$2 port=$3; shift 3
    env "${ENVV[@]}" PORT="$port" PAY_HEALTH_PORT="$port" "$@" "$binary" > "$OUT/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    wait_up "http://127.0.0.1:$port/live"
    sleep 1
    say "  $name ($binary): RSS idle $(rss_mib "$pid") MiB"
}

peaks() {
    local name pid
    for name in "$@"; do
        pid="PID_$name"
        say "  $name: RSS now $(rss_mib "${!pid}") MiB, peak (VmHWM) $(hwm_mib "${!pid}") MiB"
    done
}

stop_all() { cleanup; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# busy and total jiffies of the whole machine
machine_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

# run NAME wrk-arguments…: one wrk run, full output kept, key lines printed, then the CPU (in
# cores) that wrk and each process named in CPU (NAME=PID words) used meanwhile.
run() {
    local name=$1; shift
    local -A t0
    local w pid
    for w in ${CPU:-}; do t0[$w]=$(cpu_ticks "${w#*=}"); done
    local s0; s0=$(date +%s.%N)
    local m0; m0=$(machine_ticks)
    /usr/bin/time -f '%U %S' -o "$OUT/$name.time" wrk -t2 -c64 -d"$DUR" --latency "$@" > "$OUT/$name.txt" 2>&1
    local s1; s1=$(date +%s.%N)
    local m1; m1=$(machine_ticks)
    local busy; busy=$(echo "$m0 $m1" | awk -v n="$(nproc)" '{printf "%.2f", n * ($3 - $1) / ($4 - $2)}')
    local cpu="machine $busy of $(nproc), wrk $(awk -v s="$(echo "$s1 - $s0" | bc)" '{printf "%.2f", ($1 + $2) / s}' "$OUT/$name.time")"
    for w in ${CPU:-}; do
        pid=${w#*=}
        cpu+=", ${w%%=*} $(echo "scale=2; ($(cpu_ticks "$pid") - ${t0[$w]}) / $(getconf CLK_TCK) / ($s1 - $s0)" | bc)"
    done
    printf '  %-30s %10s req/s  p50 %8s  p99 %8s  non-2xx %s  cores: %s\n' "$name" \
        "$(awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt")" \
        "$(awk '$1=="50%" {print $2}' "$OUT/$name.txt")" \
        "$(awk '$1=="99%" {print $2}' "$OUT/$name.txt")" \
        "$(awk '/Non-2xx/ {print $5}' "$OUT/$name.txt" | grep . || echo 0)" "$cpu" | tee -a "$SUMMARY"
}

drive() { "$DRIVE" --secret "$SECRET" "$@"; }

GW=http://127.0.0.1:13000
API=http://127.0.0.1:14000

section_status() {
    say "== status and enqueue on real Redis (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world status
    start api "$BIN/flash-api" 14000 OUTBOX_RELAY=false
    start gateway "$BIN/flash-gateway" 13000 QUEUE_READY_CAPACITY=1
    local gws=("gateway=$GW")
    if [ -n "$BASE_BIN" ]; then
        start base_gateway "$BASE_BIN/flash-gateway" 13001 QUEUE_READY_CAPACITY=1
        gws+=("base=http://127.0.0.1:13001")
    fi
    EVENT=$(drive event --api "$API" --qty 1000000)
    drive fill --gateway "$GW" --event "$EVENT" -n 10 > /dev/null
    local token ticket
    token=$("$BIN/flash-bench-tokens" "$SECRET" 1)
    ticket=$(curl -s -X POST "$GW/queue/enqueue" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "{\"eventId\":\"$EVENT\"}" | python3 -c 'import sys,json; print(json.load(sys.stdin)["ticketId"])')
    say "  status body: $(curl -s "$GW/queue/status?ticketId=$ticket")"
    local g name url
    local redis_pid; redis_pid=$(pgrep -x redis-server | head -n 1)
    CPU="gateway=$PID_gateway redis=$redis_pid"
    [ -n "$BASE_BIN" ] && CPU+=" base=$PID_base_gateway"
    if [ -n "${PERF:-}" ]; then
        # A profile of this build's gateway under the status load (perf.data kept in $OUT).
        (sleep 2; perf record -F 499 -g -p "$PID_gateway" -o "$OUT/perf-status.data" -- sleep 5 \
            > "$OUT/perf.log" 2>&1) &
        local perf_pid=$!
        run status-gateway-perf "$GW/queue/status?ticketId=$ticket"
        wait "$perf_pid"
        perf report -i "$OUT/perf-status.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
            | grep -E '^ +[0-9]' | head -n 40 > "$OUT/perf-status.txt" || true
    fi
    for round in 1 2; do
        for g in "${gws[@]}"; do
            name=${g%%=*}; url=${g#*=}
            run "status-$name-$round" "$url/queue/status?ticketId=$ticket"
        done
    done
    for scope in __global__ "$EVENT"; do
        local label=event; [ "$scope" = __global__ ] && label=global
        for g in "${gws[@]}"; do
            name=${g%%=*}; url=${g#*=}
            "$BIN/flash-bench-tokens" "$SECRET" 250000 > "$OUT/tokens.txt"
            local perf_pid=
            if [ -n "${PERF:-}" ] && [ "$name" = gateway ] && [ "$label" = event ]; then
                # A profile of this build's gateway under the enqueue load.
                (sleep 2; perf record -F 499 -g -p "$PID_gateway" -o "$OUT/perf-enqueue.data" -- sleep 5 \
                    > "$OUT/perf-enqueue.log" 2>&1) &
                perf_pid=$!
            fi
            TOKENS="$OUT/tokens.txt" EVENT="$scope" WRK_THREADS=2 \
                run "enqueue-$label-$name" -s integration/bench/wrk/enqueue.lua "$url/queue/enqueue"
            if [ -n "$perf_pid" ]; then
                wait "$perf_pid"
                perf report -i "$OUT/perf-enqueue.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
                    | grep -E '^ +[0-9]' | head -n 40 > "$OUT/perf-enqueue.txt" || true
            fi
        done
    done
    rm -f "$OUT/tokens.txt"
    CPU=
    local p=(api gateway); [ -n "$BASE_BIN" ] && p+=(base_gateway)
    peaks "${p[@]}"
    stop_all
}

section_events() {
    say "== GET /events on flash-api and PostgreSQL (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world events
    start api "$BIN/flash-api" 14000 OUTBOX_RELAY=false
    local apis=("api=$API")
    if [ -n "$BASE_BIN" ]; then
        start base_api "$BASE_BIN/flash-api" 14001 OUTBOX_RELAY=false
        apis+=("base=http://127.0.0.1:14001")
    fi
    local event; event=$(drive event --api "$API" --qty 1000)
    local round a name url
    for round in 1 2; do
        for a in "${apis[@]}"; do
            name=${a%%=*}; url=${a#*=}
            CPU="$name=$([ "$name" = api ] && echo "$PID_api" || echo "$PID_base_api")"
            cpu_mark
            run "events-$name-$round" "$url/events"
            cpu_report
            cpu_mark
            run "event-$name-$round" "$url/events/$event"
            cpu_report
        done
    done
    CPU=
    local p=(api); [ -n "$BASE_BIN" ] && p+=(base_api)
    peaks "${p[@]}"
    stop_all
}

# POST /orders for each build (BASE_BIN first when set, then BIN), each on a fresh world. The
# line admits no more buyers than there are tickets left (SPEC §4), so the stock is at least the
# buyers by default. The database's commits per order come from pg_stat_database; when
# PostgreSQL preloads pg_stat_statements (see BENCHMARKS.md for the two settings), its top
# statements by time too.
section_orders() {
    local b
    for b in ${BASE_BIN:+"$BASE_BIN"} "$BIN"; do orders_run "$b"; done
}

orders_run() {
    local bin=$1 n=${ORDER_BUYERS:-60000} qty=${ORDER_STOCK:-60000} pgss=
    say "== POST /orders on real PostgreSQL ($bin), $n admitted buyers, one event of $qty tickets (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world orders
    start api "$bin/flash-api" 14000 ${ORDERS_API_ENV:-}
    start gateway "$bin/flash-gateway" 13000 QUEUE_READY_CAPACITY=1000000 \
        QUEUE_PROMOTION_INTERVAL_MS=100 QUEUE_GATE_TOKEN_TTL_MS=1800000
    EVENT=$(drive event --api "$API" --qty "$qty")
    drive --concurrency 128 admit --gateway "$GW" --event "$EVENT" -n "$n" > "$OUT/admitted.txt" 2> >(tee -a "$SUMMARY" >&2)
    if [ "$(sql "SHOW shared_preload_libraries")" = pg_stat_statements ]; then
        sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
        sql "SELECT pg_stat_statements_reset()" >/dev/null
        pgss=1
    fi
    sleep 1
    local commits0; commits0=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    CPU="api=$PID_api gateway=$PID_gateway redis=$(pgrep -x redis-server | head -n 1)"
    cpu_mark
    ADMITTED="$OUT/admitted.txt" EVENT="$EVENT" WRK_THREADS=2 \
        run orders -s integration/bench/wrk/orders.lua "$API/orders"
    cpu_report
    CPU=
    # Backends report their counts when idle, at most once a second.
    sleep 2
    local orders; orders=$(sql "SELECT count(*) FROM orders WHERE event_id = '$EVENT'")
    say "  orders: $(sql "SELECT count(*) || ' HOLD orders, first to last ' || round(extract(epoch FROM max(created_at) - min(created_at))::numeric, 2) || ' s = ' || round(count(*) / nullif(extract(epoch FROM max(created_at) - min(created_at)), 0)) || ' orders/s' FROM orders WHERE event_id = '$EVENT'")"
    say "  stock: $(sql "SELECT 'total ' || sum(total_qty) || ', held ' || sum(held_qty) || ', sold ' || sum(sold_qty) || ' over ' || count(*) || ' shards; Σ qty of HOLD orders ' || (SELECT coalesce(sum(qty), 0) FROM orders WHERE event_id = '$EVENT' AND status = 'HOLD') || ', users with more than one order ' || (SELECT count(*) FROM (SELECT user_id FROM orders WHERE event_id = '$EVENT' GROUP BY user_id HAVING count(*) > 1) x) FROM event_stock WHERE event_id = '$EVENT'")"
    say "  audit (SPEC §8.1): oversold shards $(sql "SELECT count(*) FROM event_stock WHERE sold_qty + held_qty > total_qty"), held − Σ qty of HOLD/FAIL orders = $(sql "SELECT (SELECT sum(held_qty) FROM event_stock WHERE event_id = '$EVENT') - (SELECT coalesce(sum(qty), 0) FROM orders WHERE event_id = '$EVENT' AND status IN ('HOLD', 'FAIL'))")"
    say "  commits: $(sql "SELECT (xact_commit - $commits0) || ' for $orders orders = ' || round((xact_commit - $commits0)::numeric / nullif($orders, 0), 2) || ' per order' FROM pg_stat_database WHERE datname = current_database()")"
    if [ -n "$pgss" ]; then
        say "  pg_stat_statements, top 8 by time (calls per order, ms per order, ms per call):"
        psql -h 127.0.0.1 -U postgres -d "$DB" -tA -F ' | ' -c "SELECT round(s.calls::numeric / $orders, 2), round((s.total_exec_time / $orders)::numeric, 3), round(s.mean_exec_time::numeric, 3), s.toplevel, left(regexp_replace(s.query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() ORDER BY s.total_exec_time DESC LIMIT 8" | sed 's/^/    /' | tee -a "$SUMMARY"
        say "  top-level statements per order: $(sql "SELECT round(sum(calls)::numeric / $orders, 2) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND s.toplevel"), the most called (calls per order, ms per call):"
        psql -h 127.0.0.1 -U postgres -d "$DB" -tA -F ' | ' -c "SELECT round(s.calls::numeric / $orders, 3), round(s.mean_exec_time::numeric, 3), left(regexp_replace(s.query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() AND s.toplevel ORDER BY s.calls DESC LIMIT 6" | sed 's/^/    /' | tee -a "$SUMMARY"
    fi
    peaks api gateway
    rm -f "$OUT/admitted.txt"
    stop_all
}

# settle_rate N: waits until N payments are settled, prints the rate from the database.
settle_rate() {
    local n=$1 deadline=$((SECONDS + ${2:-300}))
    while [ "$(sql "SELECT count(*) FROM payments WHERE status IN ('OK','FAIL','REFUND_REQUIRED')")" -lt "$n" ]; do
        [ $SECONDS -gt $deadline ] && { say "  settled only $(sql "SELECT count(*) FROM payments WHERE status <> 'REQ'") of $n"; break; }
        sleep 0.2
    done
    say "  settled: $(sql "SELECT count(*) || ' payments (' || count(*) FILTER (WHERE status = 'OK') || ' OK), first request to last result ' || round(extract(epoch FROM max(updated_at) - min(created_at))::numeric, 2) || ' s = ' || round(count(*) / nullif(extract(epoch FROM max(updated_at) - min(created_at)), 0)) || ' payments/s' FROM payments")"
    say "  orders: $(sql "SELECT string_agg(status || ' ' || c, ', ') FROM (SELECT status::text, count(*) c FROM orders GROUP BY 1 ORDER BY 1) x")"
}

# Every PostgreSQL process's CPU ticks (the server forks one per connection).
pg_ticks() { local t=0 p; for p in $(pgrep -x postgres); do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

# cpu_mark / cpu_report: CPU in cores between the two calls, of the machine, of each process
# named in CPU (NAME=PID words), of RabbitMQ and of all PostgreSQL processes.
cpu_mark() {
    CPU_T0=$(date +%s.%N); CPU_M0=$(machine_ticks); CPU_PG0=$(pg_ticks)
    CPU_RMQ=$(pgrep -f beam.smp | head -n 1); CPU_RMQ0=$(cpu_ticks "$CPU_RMQ")
    declare -gA CPU_P0=()
    local w; for w in ${CPU:-}; do CPU_P0[$w]=$(cpu_ticks "${w#*=}"); done
}
cpu_report() {
    local t1 m1 hz secs w out
    t1=$(date +%s.%N); m1=$(machine_ticks); hz=$(getconf CLK_TCK)
    secs=$(echo "$t1 - $CPU_T0" | bc)
    out="machine $(echo "$CPU_M0 $m1" | awk -v n="$(nproc)" '{printf "%.2f", n * ($3 - $1) / ($4 - $2)}') of $(nproc)"
    for w in ${CPU:-}; do
        out+=", ${w%%=*} $(echo "scale=2; ($(cpu_ticks "${w#*=}") - ${CPU_P0[$w]}) / $hz / $secs" | bc)"
    done
    out+=", postgres $(echo "scale=2; ($(pg_ticks) - $CPU_PG0) / $hz / $secs" | bc)"
    out+=", rabbitmq $(echo "scale=2; ($(cpu_ticks "$CPU_RMQ") - $CPU_RMQ0) / $hz / $secs" | bc)"
    say "  cores over ${secs%.*} s: $out"
}

# Payments for each build (BASE_BIN first when set, then BIN), each on a fresh world, with the
# database's commits per payment (pg_stat_database) while they are paid.
section_payments() {
    local b
    for b in ${BASE_BIN:+"$BASE_BIN"} "$BIN"; do payments_run "$b"; done
}

payments_run() {
    local bin=$1 n=${PAY_ORDERS:-20000}
    say "== payments over RabbitMQ ($bin), processor latency 0, $n orders (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world payments
    start api "$bin/flash-api" 14000 QUEUE_ENFORCE_ADMISSION=false
    start pay "$bin/flash-pay" 13100 PAYMENT_PROCESSING_MIN_MS=0 PAYMENT_PROCESSING_MAX_MS=0 PAYMENT_SUCCESS_RATE=1
    EVENT=$(drive event --api "$API" --qty 1000000)
    CPU="api=$PID_api pay=$PID_pay"
    local commits0; commits0=$(sql "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    cpu_mark
    drive --concurrency 256 pay --api "$API" --event "$EVENT" -n "$n" 2>&1 | tee -a "$SUMMARY"
    settle_rate "$n"
    cpu_report
    CPU=
    # Backends report their counts when idle, at most once a second.
    sleep 2
    say "  commits (orders placed and paid, relay, results): $(sql "SELECT (xact_commit - $commits0) || ' = ' || round((xact_commit - $commits0)::numeric / $n, 2) || ' per paid order' FROM pg_stat_database WHERE datname = current_database()")"
    peaks api pay
    stop_all
}

section_legacy() {
    local conc n
    for conc in 32 256; do
        n=$(( conc == 32 ? 640 : 2560 ))
        say "== payments, latency 1–4 s, one pay process, PAY_CONCURRENCY=$conc, $n orders (load $(cut -d' ' -f1-3 /proc/loadavg))"
        world legacy
        start api "$BIN/flash-api" 14000 QUEUE_ENFORCE_ADMISSION=false PAYMENT_TIMEOUT_MS=600000
        start pay "$BIN/flash-pay" 13100 PAYMENT_PROCESSING_MIN_MS=1000 PAYMENT_PROCESSING_MAX_MS=4000 \
            PAYMENT_SUCCESS_RATE=1 PAY_CONCURRENCY=$conc
        EVENT=$(drive event --api "$API" --qty 1000000)
        drive --concurrency 256 pay --api "$API" --event "$EVENT" -n "$n" 2>&1 | tee -a "$SUMMARY"
        settle_rate "$n" 600
        peaks api pay
        stop_all
    done
}

# SPEC §4 and issue 12's race: 2,000 buyers by socket for 100 tickets, one each, capacity 100, so
# that the 100 admitted buy everything and the other 1,900 must be told SOLD_OUT in line.
# POST /auth/login scales with the cores bcrypt gets: the gateway pinned (taskset) to each of
# CORES (default "1 2") in turn, so the row can be read for 8.
section_login() {
    say "== POST /auth/login on the gateway, bcrypt cost 10 (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world login
    start api "$BIN/flash-api" 14000 OUTBOX_RELAY=false
    local builds=("gateway=$BIN"); [ -n "$BASE_BIN" ] && builds+=("base=$BASE_BIN")
    local b name dir cores cpus port=13000 registered=
    for cores in ${CORES:-1 2}; do
        cpus=$(seq -s, 0 $((cores - 1)))
        for b in "${builds[@]}"; do
            name=${b%%=*}; dir=${b#*=}
            port=$((port + 1))
            start "$name" "$dir/flash-gateway" "$port" taskset -c "$cpus"
            local url="http://127.0.0.1:$port"
            if [ -z "$registered" ]; then
                # test0000 … test0063, password testtest (what login.lua sends).
                seq -f 'test%04g' 0 63 | xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' \
                    -X POST "$url/auth/register" -H 'Content-Type: application/json' \
                    -d '{"userId":"{}","password":"testtest"}' | sort | uniq -c | sed 's/^/  register: /' | tee -a "$SUMMARY"
                EVENT=$(drive event --api "$API" --qty 1000000)
                local token; token=$("$BIN/flash-bench-tokens" "$SECRET" 1)
                TICKET=$(curl -s -X POST "$url/queue/enqueue" -H "Authorization: Bearer $token" \
                    -H 'Content-Type: application/json' -d "{\"eventId\":\"$EVENT\"}" \
                    | python3 -c 'import sys,json; print(json.load(sys.stdin)["ticketId"])')
                registered=1
            fi
            local pid="PID_$name"
            CPU="$name=${!pid}"
            # wrk's own 2 s timeout would cut the queue of 64 logins short: 30 s.
            USERS=64 WRK_THREADS=2 run "login-$name-${cores}core" --timeout 30s \
                -s integration/bench/wrk/login.lua "$url/auth/login"
            # Status while 64 more connections log in (both wrk at once).
            USERS=64 WRK_THREADS=1 wrk -t1 -c64 -d"$DUR" --latency --timeout 30s -s integration/bench/wrk/login.lua \
                "$url/auth/login" > "$OUT/logins-during-$name-$cores.txt" 2>&1 &
            local login_wrk=$!
            run "status-during-logins-$name-${cores}core" "$url/queue/status?ticketId=$TICKET"
            wait "$login_wrk" || true
            say "  logins meanwhile: $(awk '/Requests\/sec/ {print $2}' "$OUT/logins-during-$name-$cores.txt") req/s, p99 $(awk '$1=="99%" {print $2}' "$OUT/logins-during-$name-$cores.txt")"
            CPU=
            peaks "$name"
            kill "${!pid}"; wait "${!pid}" 2>/dev/null || true
        done
    done
    stop_all
}

section_race() {
    local n=${RACE_BUYERS:-2000}
    say "== sold out closes the line: $n buyers by socket for 100 tickets, capacity 100 (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world race
    start api "$BIN/flash-api" 14000
    start gateway "$BIN/flash-gateway" 13000 QUEUE_READY_CAPACITY=100 QUEUE_PROMOTION_INTERVAL_MS=1000 BCRYPT_COST=4 \
        LOGIN_RATE_LIMIT_PER_USER=1000000000/min
    start pay "$BIN/flash-pay" 13100 PAYMENT_PROCESSING_MIN_MS=100 PAYMENT_PROCESSING_MAX_MS=500
    EVENT=$(drive event --api "$API" --qty 100 --max-per-user 1)
    "$BIN/flash-rehearse" --gateway-url "$GW" --api-url "$API" --database-url "$PGURL/$DB" \
        -n "$n" --register --login before --wait socket --event "$EVENT" --qty 1 --payment-retries 5 \
        --concurrency 512 --deadline 120s --settle 30s --no-progress --out "$OUT/race" \
        > "$OUT/race.txt" 2>&1 || true
    grep -E "PASSED|FAILED|^buyers|^outcomes|^admissions|sold out at|server RSS|^(enqueue|wait for|order|pay|journey) " "$OUT/race.txt" | tee -a "$SUMMARY"
    peaks api gateway pay
    stop_all
}

section_rehearse() {
    local n=${REHEARSE_BUYERS:-5000}
    say "== flash-rehearse against the pods: $n buyers, 1,000 tickets, capacity 200, latency 100–500 ms (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world rehearse
    start api "$BIN/flash-api" 14000
    start gateway "$BIN/flash-gateway" 13000 QUEUE_READY_CAPACITY=200 QUEUE_PROMOTION_INTERVAL_MS=200 BCRYPT_COST=4 \
        LOGIN_RATE_LIMIT_PER_USER=1000000000/min
    start pay "$BIN/flash-pay" 13100 PAYMENT_PROCESSING_MIN_MS=100 PAYMENT_PROCESSING_MAX_MS=500
    EVENT=$(drive event --api "$API" --qty 1000 --max-per-user 4)
    "$BIN/flash-rehearse" --gateway-url "$GW" --api-url "$API" --database-url "$PGURL/$DB" \
        -n "$n" --register --login before --wait socket --event "$EVENT" --payment-retries 5 \
        --concurrency 512 --deadline 120s --settle 30s --no-progress --out "$OUT/rehearsal" \
        > "$OUT/rehearse.txt" 2>&1 || true
    grep -E "PASSED|FAILED|^buyers|^outcomes|^admissions|sold out at|server RSS|^(enqueue|wait for|order|pay|journey) " "$OUT/rehearse.txt" | tee -a "$SUMMARY"
    peaks api gateway pay
    stop_all
}

section_million() {
    local n=${MILLION:-1000000}
    say "== $n queued tickets in Redis (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world million
    start api "$BIN/flash-api" 14000 OUTBOX_RELAY=false
    start gateway "$BIN/flash-gateway" 13000 QUEUE_READY_CAPACITY=50
    EVENT=$(drive event --api "$API" --qty 1000000)
    local before; before=$(redis-cli info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    "$BIN/flash-bench-tokens" "$SECRET" 250000 > "$OUT/tokens.txt"
    TOKENS="$OUT/tokens.txt" EVENT="$EVENT" WRK_THREADS=2 run enqueue-empty-queue -s integration/bench/wrk/enqueue.lua "$GW/queue/enqueue"
    drive --concurrency 128 fill --gateway "$GW" --event "$EVENT" -n "$n" 2>&1 | tee -a "$SUMMARY"
    local after; after=$(redis-cli info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    local queued; queued=$(redis-cli zcard "${PREFIX}q:{$EVENT}:queued")
    say "  queued tickets: $queued; Redis used_memory $((after / 1048576)) MiB ($after B; before the fill $((before / 1048576)) MiB, delta $(( (after - before) / 1048576 )) MiB = $(( (after - before) / n )) B per ticket)"
    local last; last=$(redis-cli zrange "${PREFIX}q:{$EVENT}:queued" -1 -1)
    # Where the bytes go: one ticket's own keys, its share of the per-queue structures, and the
    # enqueue rate-limit counters (one per buyer for the limit's window).
    local mu="redis-cli memory usage"
    say "  bytes: ticket hash $($mu "${PREFIX}q:{$EVENT}:t:$last"), index entry $($mu "${PREFIX}q:ticket:$last"), per ticket in the queued zset $(( $($mu "${PREFIX}q:{$EVENT}:queued" samples 0) / queued )), in the live hash $(( $($mu "${PREFIX}q:{$EVENT}:live" samples 0) / queued )); rate-limit counters $(redis-cli --scan --pattern "${PREFIX}rl:*" | wc -l) of $($mu "$(redis-cli --scan --pattern "${PREFIX}rl:*" | head -n 1)") B"
    say "  status of the last ticket: $(curl -s "$GW/queue/status?ticketId=$last" | head -c 300)"
    CPU="gateway=$PID_gateway redis=$(pgrep -x redis-server | head -n 1)"
    run status-at-1m "$GW/queue/status?ticketId=$last"
    "$BIN/flash-bench-tokens" "$SECRET" 250000 > "$OUT/tokens.txt"
    TOKENS="$OUT/tokens.txt" EVENT="$EVENT" WRK_THREADS=2 run enqueue-at-1m -s integration/bench/wrk/enqueue.lua "$GW/queue/enqueue"
    CPU=
    rm -f "$OUT/tokens.txt"
    peaks api gateway
    stop_all
}

section_sockets() {
    local n=${SOCKETS:-10000}
    say "== $n Socket.IO connections held open on one gateway, ${RELEASE:-$n} promoted at once (load $(cut -d' ' -f1-3 /proc/loadavg))"
    world sockets
    start api "$BIN/flash-api" 14000 OUTBOX_RELAY=false
    start gateway "$BIN/flash-gateway" 13000 ${GATEWAY_ENV:-} QUEUE_READY_CAPACITY="$n" QUEUE_PROMOTION_INTERVAL_MS=200 \
        QUEUE_GATE_TOKEN_TTL_MS=1800000
    EVENT=$(drive event --api "$API" --qty 1000000)
    # n buyers take every slot, so the socket owners wait QUEUED until these leave.
    drive --concurrency 128 admit --gateway "$GW" --event "$EVENT" -n "$n" > "$OUT/blockers.txt" 2> >(tee -a "$SUMMARY" >&2)
    # RELEASE of them leave at once (default: all), promoting as many socket owners.
    local release=${RELEASE:-$n}
    head -n "$release" "$OUT/blockers.txt" > "$OUT/release.txt"
    drive sockets --gateway "$GW" --event "$EVENT" -n "$n" --release "$OUT/release.txt" --expect "$release" --hold 10s \
        > "$OUT/sockets.txt" 2> "$OUT/sockets-err.txt" &
    local driver=$!
    pids+=("$driver")
    until grep -q '^joined' "$OUT/sockets.txt" 2>/dev/null; do
        kill -0 "$driver" 2>/dev/null || { cat "$OUT/sockets-err.txt"; break; }
        sleep 0.5
    done
    sleep 3
    say "  $(head -n 1 "$OUT/sockets.txt")"
    say "  gateway with the sockets open: RSS $(rss_mib "$PID_gateway") MiB, $(ls "/proc/$PID_gateway/fd" | wc -l) descriptors"
    wait "$driver" || true
    tail -n +2 "$OUT/sockets.txt" | tee -a "$SUMMARY"
    grep -c retrying "$OUT/sockets-err.txt" | sed 's/^/  handshake retries: /' | tee -a "$SUMMARY"
    curl -s "$GW/metrics" | grep '^queue_ready_push_seconds' > "$OUT/push.txt"
    python3 - "$OUT/push.txt" <<'PY' | tee -a "$SUMMARY"
import re, sys
b = {}
count = 0
for line in open(sys.argv[1]):
    m = re.match(r'queue_ready_push_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        b[m.group(1)] = float(m.group(2))
    elif line.startswith('queue_ready_push_seconds_count'):
        count = float(line.split()[1])
for le, c in b.items():
    if le != '+Inf' and count and c / count >= 0.99:
        print(f"  server READY push after promotion: {int(count)} pushes, p99 <= {float(le)*1000:.0f} ms (bucket), "
              f"<=50 ms {b.get('0.05',0)/count:.1%}, <=250 ms {b.get('0.25',0)/count:.1%}")
        break
else:
    print(f"  server READY push: {int(count)} pushes, p99 above every bucket: {b}")
PY
    peaks api gateway
    rm -f "$OUT/blockers.txt" "$OUT/release.txt"
    stop_all
}

{
    echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "redis $(redis-server --version | awk '{print $3}'), $(psql --version), rabbitmq $(rabbitmqctl version 2>/dev/null || echo '?')"
    echo "load before: $(cat /proc/loadavg)"
} > "$OUT/machine.txt"
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(status events orders payments legacy login race rehearse million sockets)
for s in "${sections[@]}"; do "section_$s"; done
echo "load after: $(cat /proc/loadavg)" >> "$OUT/machine.txt"
cat "$OUT/machine.txt"
echo "raw outputs: $OUT"
