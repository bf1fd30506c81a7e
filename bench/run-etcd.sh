#!/usr/bin/env bash
# Start or stop a throwaway single-node etcd on loopback for registry-bench.
#
#   bench/run-etcd.sh          start; prints the PID on stdout once healthy
#   bench/run-etcd.sh stop     kill it and remove its data dir
#
# Environment: ETCD_BIN (default /usr/bin/etcd, else etcd on PATH),
# ETCD_CLIENT_PORT (2379), ETCD_PEER_PORT (2380), ETCD_DATA_PARENT (dir in
# which the temp data dir is made; default /var/tmp: keep it on the same kind
# of disk as the registry's data dir, fsync cost is the point of a PUT test),
# ETCD_STATE (file recording PID and data dir; default /tmp/registry-bench-etcd.state).
set -euo pipefail

client_port=${ETCD_CLIENT_PORT:-2379}
peer_port=${ETCD_PEER_PORT:-2380}
state=${ETCD_STATE:-/tmp/registry-bench-etcd.state}
client_url="http://127.0.0.1:${client_port}"
peer_url="http://127.0.0.1:${peer_port}"

stop() {
    if [[ ! -f $state ]]; then
        echo "run-etcd: no state file $state; nothing to stop" >&2
        return 0
    fi
    local pid dir
    read -r pid dir <"$state"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    # Only ever remove a directory this script made.
    [[ $dir == */registry-bench-etcd.* ]] && rm -rf -- "$dir"
    rm -f -- "$state"
    echo "run-etcd: stopped $pid" >&2
}

start() {
    local bin=${ETCD_BIN:-}
    if [[ -z $bin ]]; then
        if [[ -x /usr/bin/etcd ]]; then bin=/usr/bin/etcd; else bin=$(command -v etcd || true); fi
    fi
    if [[ -z $bin || ! -x $bin ]]; then
        echo "run-etcd: etcd not found; on Debian: apt-get update && apt-get install -y etcd-server" >&2
        exit 1
    fi
    if [[ -f $state ]]; then
        local pid
        read -r pid _ <"$state"
        if kill -0 "$pid" 2>/dev/null; then
            echo "run-etcd: already running as $pid (state $state); '$0 stop' first" >&2
            exit 1
        fi
        rm -f -- "$state"
    fi

    local dir
    dir=$(mktemp -d "${ETCD_DATA_PARENT:-/var/tmp}/registry-bench-etcd.XXXXXX")
    # setsid: the server must outlive this script and not get its terminal's signals.
    setsid "$bin" \
        --name bench \
        --data-dir "$dir/data" \
        --listen-client-urls "$client_url" \
        --advertise-client-urls "$client_url" \
        --listen-peer-urls "$peer_url" \
        --initial-advertise-peer-urls "$peer_url" \
        --initial-cluster "bench=$peer_url" \
        --initial-cluster-state new \
        >"$dir/etcd.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid $dir" >"$state"

    # Wait on the condition (health endpoint says true), bounded to 30 s.
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run-etcd: etcd exited during start-up; log:" >&2
            tail -20 "$dir/etcd.log" >&2
            rm -f -- "$state"
            exit 1
        fi
        if curl -fsS --max-time 1 "$client_url/health" 2>/dev/null | grep -q '"health":"true"'; then
            echo "run-etcd: etcd $("$bin" --version | head -1 | awk '{print $3}') healthy at $client_url, data $dir" >&2
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    echo "run-etcd: etcd did not become healthy within 30 s; log: $dir/etcd.log" >&2
    stop
    exit 1
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
