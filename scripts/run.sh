#!/bin/bash
# Installs, builds and starts a local annolive setup: one redis-server (unless
# REDIS_URL is set) and two annolive instances named a and b, all on free
# loopback ports. Prints where to connect, then waits. Ctrl-C or SIGTERM stops
# everything this script started.
#
# Environment:
#   REDIS_URL        use this Redis (redis://HOST:PORT[/DB]) instead of starting one
#   ANNOLIVE_LOG_LEVEL  log level passed to both instances (default: info)
#   SKIP_SETUP=1     do not run scripts/setup.sh
#   SKIP_BUILD=1     do not run scripts/build.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$REPO/.run"
BIN="$REPO/build/annolive"
READY_TIMEOUT_S=15
STOP_TIMEOUT_S=10

PIDS=()
NAMES=()

log() { printf 'run: %s\n' "$*"; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

# Prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    node -e '
        const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# Stops every process this script started, newest first, so the instances
# stop before Redis: SIGTERM, then SIGKILL for a process that is still
# running after STOP_TIMEOUT_S seconds.
cleanup() {
    local i pid deadline
    trap - EXIT INT TERM
    [[ ${#PIDS[@]} -eq 0 ]] && return
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[$i]}"
        log "stopping ${NAMES[$i]} (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT_S))
        while kill -0 "$pid" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${NAMES[$i]} (pid $pid) did not stop in ${STOP_TIMEOUT_S}s: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    log "stopped"
}

on_signal() {
    echo
    cleanup
    exit 0
}

trap cleanup EXIT
trap on_signal INT TERM

# Waits until `redis-cli -p PORT ping` prints PONG.
wait_for_redis() {
    local port="$1" pid="$2" deadline=$((SECONDS + READY_TIMEOUT_S))
    while [[ $SECONDS -lt $deadline ]]; do
        kill -0 "$pid" 2>/dev/null ||
            die "redis-server exited at start; its log: $RUN_DIR/redis.log"
        if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
            return
        fi
        sleep 0.1
    done
    die "redis-server on 127.0.0.1:$port did not reply to PING within ${READY_TIMEOUT_S}s; its log: $RUN_DIR/redis.log"
}

# Waits until GET /healthz returns 200.
wait_for_instance() {
    local name="$1" port="$2" pid="$3" logfile="$4"
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    while [[ $SECONDS -lt $deadline ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "annolive instance $name exited at start; its log: $logfile"
        fi
        if curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
            return
        fi
        sleep 0.1
    done
    die "annolive instance $name did not return 200 for /healthz on 127.0.0.1:$port within ${READY_TIMEOUT_S}s; its log: $logfile"
}

start_redis() {
    local port
    command -v redis-server >/dev/null 2>&1 ||
        die "redis-server not found: run scripts/setup.sh or set REDIS_URL"
    port="$(free_port)"
    mkdir -p "$RUN_DIR/redis"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$RUN_DIR/redis" \
        --appendonly yes --save '' --daemonize no --protected-mode yes \
        --logfile "$RUN_DIR/redis.log" </dev/null &
    PIDS+=("$!")
    NAMES+=("redis-server")
    wait_for_redis "$port" "$!"
    REDIS_URL="redis://127.0.0.1:$port"
    log "redis-server on 127.0.0.1:$port, data in $RUN_DIR/redis, log in $RUN_DIR/redis.log"
}

# Starts one instance; sets PORT_<name> to its port.
start_instance() {
    local name="$1" port logfile args
    port="$(free_port)"
    logfile="$RUN_DIR/annolive-$name.log"
    # A local development run: no tokens, loopback only. Set
    # ANNOLIVE_AUTH_SECRET_FILE to check HS256 tokens instead.
    args=(--listen "127.0.0.1:$port" --redis "$REDIS_URL" --instance "$name"
          --log-level "${ANNOLIVE_LOG_LEVEL:-info}")
    if [[ -z "${ANNOLIVE_AUTH_SECRET_FILE:-}${ANNOLIVE_AUTH_SECRET:-}" ]]; then
        args+=(--no-auth)
    fi
    if [[ -d "$REPO/client-js/demo" ]]; then
        args+=(--static "$REPO/client-js/demo")
        # The demo's image is a link to a labelme-examples photo, made here.
        node "$REPO/client-js/demo/link-image.mjs" >/dev/null ||
            log "the demo page has no image: labelme-examples is missing"
    fi
    "$BIN" "${args[@]}" </dev/null >"$logfile" 2>&1 &
    PIDS+=("$!")
    NAMES+=("annolive-$name")
    wait_for_instance "$name" "$port" "$!" "$logfile"
    printf -v "PORT_$name" '%s' "$port"
    log "annolive instance $name on 127.0.0.1:$port, log in $logfile"
}

print_usage_hints() {
    local cli="node $REPO/client-js/bin/annolive.js"
    local coco=/usr/share/doc/labelme-examples/examples/instance_segmentation/data_dataset_coco/annotations.json
    cat <<INFO

annolive is running.
  instance a: ws://127.0.0.1:$PORT_a/v1/ws   http://127.0.0.1:$PORT_a/healthz
  instance b: ws://127.0.0.1:$PORT_b/v1/ws   http://127.0.0.1:$PORT_b/healthz
  redis:      $REDIS_URL

Try it, each command in its own terminal:
  $cli watch --url ws://127.0.0.1:$PORT_b --room demo
  $cli import --url ws://127.0.0.1:$PORT_a --room demo $coco
  $cli export --url ws://127.0.0.1:$PORT_b --room demo --format coco
  curl http://127.0.0.1:$PORT_a/v1/rooms/demo/snapshot

The demo page, in two browser windows (one per instance):
  http://127.0.0.1:$PORT_a/?room=demo&name=Ana   http://127.0.0.1:$PORT_b/?room=demo&name=Bo

Press Ctrl-C to stop.
INFO
}

main() {
    local status
    if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
        bash "$REPO/scripts/setup.sh"
    fi
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        # A warning must not stop a local run; scripts/test.sh turns -Werror on.
        bash "$REPO/scripts/build.sh" -DANNOLIVE_WERROR=OFF
    fi
    [[ -x "$BIN" ]] || die "$BIN not found: run scripts/build.sh"
    command -v curl >/dev/null 2>&1 || die "curl not found: run scripts/setup.sh"
    mkdir -p "$RUN_DIR"

    if [[ -n "${REDIS_URL:-}" ]]; then
        log "using Redis at $REDIS_URL"
    else
        start_redis
    fi
    start_instance a
    start_instance b
    print_usage_hints

    # Returns when any started process exits or a signal arrives.
    status=0
    wait -n "${PIDS[@]}" || status=$?
    log "a process exited unexpectedly (status $status); logs are in $RUN_DIR"
    exit 1
}

main "$@"
