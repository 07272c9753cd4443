#!/usr/bin/env bash
# The Lambda rows of BENCHMARKS.md: binary sizes of the four functions and their start-up under
# `cargo lambda watch` (the Lambda runtime emulator), on the local PostgreSQL and Redis and a
# moto SQS endpoint.
#
# For each function, cold start = spawning the release binary until its first invocation is
# answered through the emulator (process start, configuration, wiring, runtime API poll, one
# request); `init` is the part the function reports itself (environment read to ready).
# Sizes: the x86_64 release binaries (target/release) and, when built, the arm64 deployment
# artifacts (target/lambda/<function>/bootstrap from `cargo lambda build --release --arm64`).
#
# Usage: integration/bench/run-lambda.sh        (RUNS=5 cold starts per function by default)
# Build first: cargo build --release -p flash-lambda -p flash-pods
#              cargo lambda build --release --arm64 -p flash-lambda   (optional, for the arm64 sizes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release}"
LAMBDA_DIR="${LAMBDA_DIR:-${CARGO_TARGET_DIR:-target}/lambda}"
RUNS="${RUNS:-5}"
PORT="${PORT:-9311}"
MOTO_PORT="${MOTO_PORT:-5311}"
DB="flash_bench_lambda_$$"
PREFIX="benchlambda$$:"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
    redis-cli -h 127.0.0.1 --scan --pattern "${PREFIX}*" | xargs -r redis-cli -h 127.0.0.1 DEL >/dev/null || true
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "## sizes"
printf '| function | x86_64 release | arm64 bootstrap (cargo lambda build --release --arm64) |\n|---|---|---|\n'
for f in flash-lambda-http flash-lambda-pay flash-lambda-results flash-lambda-sweeper; do
    x86=$(stat -c %s "$BIN/$f")
    arm="not built"
    [[ -f "$LAMBDA_DIR/$f/bootstrap" ]] && arm="$(awk -v b="$(stat -c %s "$LAMBDA_DIR/$f/bootstrap")" 'BEGIN {printf "%.1f MiB", b/1048576}')"
    printf '| %s | %s | %s |\n' "$f" "$(awk -v b="$x86" 'BEGIN {printf "%.1f MiB", b/1048576}')" "$arm"
done
for f in flash-gateway flash-api flash-pay; do
    [[ -f "$BIN/$f" ]] && printf '| (pod) %s | %s | — |\n' "$f" "$(awk -v b="$(stat -c %s "$BIN/$f")" 'BEGIN {printf "%.1f MiB", b/1048576}')"
done

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" "$BIN/flash-migrate" >/dev/null

moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
pids+=($!)
cargo-lambda lambda watch --only-lambda-apis --disable-cors -A 127.0.0.1 -P "$PORT" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break
    sleep 0.1
done

export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379 \
    REDIS_KEY_PREFIX="$PREFIX" SQS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" SQS_CREATE_QUEUES=true \
    JWT_ACCESS_SECRET=bench-access JWT_REFRESH_SECRET=bench-refresh RUST_LOG=warn \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 AWS_LAMBDA_FUNCTION_VERSION=1

# One cold start of function $1 answering event $2 (a file): prints "init_ms total_ms rss_kib".
cold_start() {
    local f=$1 event=$2 out start end init rss pid
    out=$(mktemp)
    start=$(date +%s%N)
    AWS_LAMBDA_FUNCTION_NAME=$f AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$PORT/.rt/$f" "$BIN/$f" >"$out" 2>/dev/null &
    pid=$!
    curl -sf -o /dev/null -m 30 -X POST --data-binary "@$event" \
        "http://127.0.0.1:$PORT/2015-03-31/functions/$f/invocations"
    end=$(date +%s%N)
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    init=$(sed -n "s/^$f ready: init \([0-9.]*\) ms$/\1/p" "$out")
    rm -f "$out"
    echo "$init $(( (end - start) / 1000000 )) $rss"
}

tmp=$(mktemp -d)
# The HTTP function gets an HTTP API v2 event for GET /events (one PostgreSQL query).
cp hosts/lambda/tests/fixtures/apigw_v2.json "$tmp/http.json"
echo '{"Records": []}' >"$tmp/sqs.json"
echo '{"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}' >"$tmp/schedule.json"

echo
echo "## cold starts under cargo lambda watch ($RUNS each; release x86_64; median [min–max])"
printf '| function | first event | init (reported) | spawn → first answer | peak RSS |\n|---|---|---|---|---|\n'
for spec in "flash-lambda-http:http.json:GET /events (API Gateway v2)" \
            "flash-lambda-pay:sqs.json:empty SQS batch" \
            "flash-lambda-results:sqs.json:empty SQS batch" \
            "flash-lambda-sweeper:schedule.json:scheduled sweep"; do
    IFS=: read -r f event what <<<"$spec"
    inits=(); totals=(); rsss=()
    for _ in $(seq "$RUNS"); do
        read -r i t r < <(cold_start "$f" "$tmp/$event")
        inits+=("$i"); totals+=("$t"); rsss+=("$r")
    done
    med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%s [%s–%s]", a[int((NR+1)/2)], a[1], a[NR]}'; }
    printf '| %s | %s | %s ms | %s ms | %s KiB |\n' "$f" "$what" "$(med "${inits[@]}")" "$(med "${totals[@]}")" "$(med "${rsss[@]}")"
done
rm -rf "$tmp"
