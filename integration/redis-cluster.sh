#!/usr/bin/env bash
# A local Redis Cluster for the tests: 3 masters + 3 replicas of the Debian redis-server on
# loopback ports BASE..BASE+5 (default 7000..7005), no persistence, each node's files under
# DIR/<port> (default /tmp/flash-redis-cluster).
#
#   integration/redis-cluster.sh [start]   start it, or reuse the running healthy cluster
#   integration/redis-cluster.sh status    exit 0 when every node reports cluster_state:ok
#   integration/redis-cluster.sh stop      shut the six nodes down (and forget the cluster)
#
# `start` is idempotent: nodes already answering are kept, a node that died is started again on
# its own nodes.conf (it rejoins, as a replica if it was failed over), and the cluster is only
# created when no node knows of one yet. It returns once every node reports cluster_state:ok and
# agrees on six nodes, and prints the URL of the configuration endpoint (REDIS_CLUSTER_URL).
set -euo pipefail

BASE="${REDIS_CLUSTER_BASE_PORT:-7000}"
DIR="${REDIS_CLUSTER_DIR:-/tmp/flash-redis-cluster}"
HOST=127.0.0.1
# Generous: a loaded CI machine may take a while to elect, gossip and settle six nodes.
DEADLINE_S="${REDIS_CLUSTER_DEADLINE_S:-120}"
PORTS=()
for i in 0 1 2 3 4 5; do PORTS+=($((BASE + i))); done

log() { printf 'redis-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    die "redis-server and redis-cli are needed (apt-get install redis-server)"
fi

cli() { local port=$1; shift; redis-cli -h "$HOST" -p "$port" "$@"; }
pong() { [[ "$(cli "$1" ping 2>/dev/null)" == PONG ]]; }
info_field() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# "masters replicas" that `cluster nodes` on $1 sees connected and not failing, e.g. "3 3".
roles() {
    cli "$1" cluster nodes 2>/dev/null | tr -d '\r' | awk '
        $3 ~ /fail|handshake|noaddr/ || $8 != "connected" { bad = 1 }
        $3 ~ /master/ { m++ } $3 ~ /slave/ { r++ }
        END { if (bad) print "bad"; else printf "%d %d\n", m, r }'
}

# Every node: cluster_state:ok, 3 masters serving all 16384 slots, and the same 6 nodes (3
# masters, 3 replicas) connected and not failing, as that node sees them.
healthy() {
    local port
    for port in "${PORTS[@]}"; do
        [[ "$(info_field "$port" cluster_state)" == ok ]] || return 1
        [[ "$(info_field "$port" cluster_known_nodes)" == 6 ]] || return 1
        [[ "$(info_field "$port" cluster_size)" == 3 ]] || return 1
        [[ "$(info_field "$port" cluster_slots_ok)" == 16384 ]] || return 1
        [[ "$(roles "$port")" == "3 3" ]] || return 1
    done
}

# Polls `"$@"` until it succeeds, up to DEADLINE_S seconds.
wait_until() {
    local what=$1; shift
    local start=$SECONDS
    until "$@"; do
        ((SECONDS - start < DEADLINE_S)) || die "$what: not within ${DEADLINE_S}s"
        sleep 0.2
    done
}

start_node() {
    local port=$1 dir="$DIR/$1"
    mkdir -p "$dir"
    redis-server --port "$port" --bind "$HOST" --protected-mode no \
        --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
        --cluster-node-timeout 2000 --cluster-require-full-coverage no \
        --save "" --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
}

all_pong() {
    local port
    for port in "${PORTS[@]}"; do pong "$port" || return 1; done
}

url() { printf 'redis://%s:%s\n' "$HOST" "$BASE"; }

# A dead master stops only its own slots (as ElastiCache does), not the whole cluster; set at
# every start so that a reused cluster gets it too.
partial_coverage() {
    local port
    for port in "${PORTS[@]}"; do
        cli "$port" config set cluster-require-full-coverage no >/dev/null
    done
}

start() {
    if healthy; then
        partial_coverage
        log "reusing the healthy cluster on $HOST:${PORTS[0]}..${PORTS[5]}"
        url
        return 0
    fi
    local port
    for port in "${PORTS[@]}"; do
        if ! pong "$port"; then
            log "starting node $port"
            start_node "$port"
        fi
    done
    wait_until "every node answering PING" all_pong
    # A cluster exists once any node has slots; a node that restarted on its nodes.conf rejoins.
    local formed=0
    for port in "${PORTS[@]}"; do
        if [[ "$(info_field "$port" cluster_slots_assigned)" != 0 ]]; then formed=1; fi
    done
    if ((formed == 0)); then
        log "creating the cluster (3 masters, 3 replicas)"
        local nodes=()
        for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
    fi
    partial_coverage
    wait_until "cluster_state:ok on every node" healthy
    log "cluster ready on $HOST:${PORTS[0]}..${PORTS[5]}"
    url
}

stop() {
    local port
    for port in "${PORTS[@]}"; do
        if pong "$port"; then cli "$port" shutdown nosave >/dev/null 2>&1 || true; fi
    done
    rm -rf "$DIR"
    log "stopped"
}

case "${1:-start}" in
    start) start ;;
    status) healthy ;;
    stop) stop ;;
    *) die "usage: $0 [start|status|stop]" ;;
esac
