#!/bin/sh
# Runs a Redis Cluster of three masters on 127.0.0.1 in the foreground, for the test suite:
# `cargo xtask services up redis-cluster` starts it, docker-compose.yml runs the same script.
#
#   redis-cluster.sh DATA_DIR FIRST_PORT [BIND_ADDRESS]
#
# Masters on FIRST_PORT..FIRST_PORT+2 (cluster bus on +10000), data under DATA_DIR/<port>
# (nothing persisted; a fresh cluster on every start). `cluster-require-full-coverage no`:
# when one master is down, only its slots fail. SIGTERM or SIGINT stops the three servers.
set -u
dir="$1"
first="$2"
bind="${3:-127.0.0.1}"
pids=""
stop() {
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait
    exit 0
}
trap stop TERM INT
nodes=""
for port in "$first" "$((first + 1))" "$((first + 2))"; do
    mkdir -p "$dir/$port"
    rm -f "$dir/$port/nodes.conf"
    redis-server --port "$port" --bind "$bind" --daemonize no \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 2000 --cluster-require-full-coverage no \
        --cluster-announce-ip 127.0.0.1 \
        --save "" --appendonly no --dir "$dir/$port" &
    pids="$pids $!"
    nodes="$nodes 127.0.0.1:$port"
done
for port in "$first" "$((first + 1))" "$((first + 2))"; do
    tries=0
    until redis-cli -p "$port" ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ]; then
            echo "redis-cluster: 127.0.0.1:$port did not answer PING within 20 s" >&2
            stop
        fi
        sleep 0.1
    done
done
# shellcheck disable=SC2086 # one argument per node
redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes || stop
echo "redis-cluster: created on$nodes"
wait
