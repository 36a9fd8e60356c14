#!/bin/bash
# Runs annolive's benchmarks end to end and writes bench/RESULTS.md and
# bench/fanout.svg. It measures the machine's limits (redis-benchmark and the
# raw broadcast server) and the fan-out workload against annolive and its
# peers with the shared Node driver. It runs annolive with its C load
# generator: fan-out, many rooms, a big room, idle connections and scale-out
# over 1 to 3 instances. Last, it profiles annolive under fan-out with perf.
# It starts its own redis-server and servers on free loopback ports and stops
# them when it ends, also on error.
#
# Usage: bench/run.sh [--quick] [--reps N] [--out DIR]
#   --quick   small rooms and short steps, one run each (minutes, not tens)
#   --reps N  runs of each measurement; medians are reported (default 3)
#   --out DIR keep the raw JSON and logs in DIR (default: a new temp dir)
# Environment: ANNOLIVE_BUILD_DIR (default build/) is where it builds;
# ANNOLIVE_COMMIT names the measured commit when REPO is not a git checkout.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
BUILD_DIR="${ANNOLIVE_BUILD_DIR:-$REPO/build}"
QUICK=0
REPS=3
OUT=""
PIDS=()

log() { printf 'bench: [%4d s] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) QUICK=1; REPS=1 ;;
    --reps) REPS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps needs a positive number"

# ---- set-up ----

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

install_tools() {
    local missing=() pkg
    bash "$REPO/scripts/setup.sh" >&2
    for pkg in redis-tools linux-perf; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >&2 || log "could not install ${missing[*]}; going on without"
    fi
    local stamp="$BENCH/peers/node_modules/.package-lock.json"
    if [[ ! -f "$stamp" || "$BENCH/peers/package-lock.json" -nt "$stamp" ]]; then
        log "npm ci in bench/peers"
        (cd "$BENCH/peers" && npm ci --no-audit --no-fund >&2)
    fi
}

build() {
    log "building into $BUILD_DIR"
    ANNOLIVE_BUILD_DIR="$BUILD_DIR" bash "$REPO/scripts/build.sh" >&2
    ANNOLIVE="$BUILD_DIR/annolive"
    LOADGEN="$BUILD_DIR/annolive-loadgen"
    ECHO="$BUILD_DIR/annolive-echo"
}

# ---- processes ----

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1",
        () => { console.log(s.address().port); s.close(); });'
}

# Waits up to 30 s until FILE contains a line starting with "ready".
wait_ready_line() {
    local file="$1" i
    for ((i = 0; i < 300; i++)); do
        grep -q '^ready' "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    die "no ready line in $file"
}

wait_http() {
    local port="$1" i
    for ((i = 0; i < 300; i++)); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "annolive on port $port did not become ready"
}

start_redis() {
    REDIS_PORT="$(free_port)"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --maxclients 20000 >"$OUT/logs/redis.log" 2>&1 </dev/null &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "redis-server did not start"
}

# Starts N servers of a kind; sets URLS (comma-separated) and SPIDS.
# Usage: start_servers KIND N LOGNAME
start_servers() {
    local kind="$1" n="$2" name="$3" i port logf urls=() pids=()
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    for ((i = 1; i <= n; i++)); do
        port="$(free_port)"
        logf="$OUT/logs/$name-$i.log"
        case "$kind" in
        annolive)
            "$ANNOLIVE" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT" \
                --no-auth --instance "bench-$i" --rate-ops 1000000 --rate-burst 1000000 \
                --max-conns-per-ip 100000 --log-level warn >"$logf" 2>&1 </dev/null &
            ;;
        echo)
            "$ECHO" --listen "127.0.0.1:$port" >"$logf" 2>&1 </dev/null &
            ;;
        *)
            node "$BENCH/peers/$kind.mjs" --port "$port" --redis-port "$REDIS_PORT" \
                >"$logf" 2>&1 </dev/null &
            ;;
        esac
        pids+=($!)
        PIDS+=($!)
        urls+=("ws://127.0.0.1:$port")
        if [[ "$kind" == annolive ]]; then wait_http "$port"; else wait_ready_line "$logf"; fi
    done
    URLS="$(IFS=,; echo "${urls[*]}")"
    SPIDS="$(IFS=,; echo "${pids[*]}")"
}

stop_servers() {
    local pid keep=()
    for pid in ${SPIDS//,/ }; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        [[ ",$SPIDS," == *",$pid,"* ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# ---- measurements ----

COCO="$REPO/../shared/data/coco_instances_val2014_100.json"

# Machine limits: Redis for a small compare-and-set script of the apply's
# shape, pipelined and not, and a bare PUBLISH.
redis_limits() {
    local rep="$1" n=100000 payload
    ((QUICK)) && n=30000
    payload="$(head -c 150 /dev/zero | tr '\0' 'x')"
    redis-cli -p "$REDIS_PORT" FUNCTION LOAD REPLACE "#!lua name=albench
redis.register_function('al_bench', function(keys, args)
  redis.call('HGET', keys[1], args[1])
  redis.call('HSET', keys[1], args[1], args[2])
  local seq = redis.call('INCR', keys[2])
  redis.call('XADD', keys[3], 'MAXLEN', '~', 1000, seq .. '-0', 'e', args[2])
  redis.call('PUBLISH', keys[4], seq .. ' ' .. args[2])
  return seq
end)" >/dev/null
    {
        printf '{"fcall_c50": %s, ' "$(rb -c 50 -n "$n" FCALL al_bench 4 \
            'al:{b}:objs' 'al:{b}:seq' 'al:{b}:log' 'al:{b}' 'o:__rand_int__' "$payload")"
        redis-cli -p "$REDIS_PORT" del 'al:{b}:seq' 'al:{b}:log' >/dev/null
        printf '"fcall_c50_p16": %s, ' "$(rb -c 50 -P 16 -n "$n" FCALL al_bench 4 \
            'al:{b}:objs' 'al:{b}:seq' 'al:{b}:log' 'al:{b}' 'o:__rand_int__' "$payload")"
        printf '"publish_c50": %s}\n' "$(rb -c 50 -n "$n" PUBLISH 'al:{b}' "$payload")"
    } >"$OUT/raw/redis-$rep.json"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
}

# Prints the requests per second of one redis-benchmark command.
rb() {
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -r 100000 --csv "$@" 2>/dev/null |
        awk -F'"' 'NR == 2 { print $4 }'
}

driver() {
    node "$BENCH/driver/driver.mjs" "$@" >>"$OUT/logs/driver.log" 2>&1 ||
        log "driver failed: $*"
}

loadgen() {
    "$LOADGEN" --coco "$COCO" "$@" >>"$OUT/logs/loadgen.log" 2>&1 ||
        log "loadgen exited with $?: $*"
}

# The fan-out workload of the peer comparison, through the Node driver.
fanout_driver() {
    local kind="$1" rep="$2" n=2
    [[ "$kind" == echo ]] && n=1
    start_servers "$kind" "$n" "fanout-$kind"
    log "fan-out, Node driver, $kind (run $rep)"
    driver --adapter "$kind" --urls "$URLS" --pids "$SPIDS" --redis-pid "$REDIS_PID" \
        "${FANOUT_ARGS[@]}" --json "$OUT/raw/fanout-$kind-$rep.json"
    stop_servers
}

idle_driver() {
    local kind="$1" rep="$2"
    start_servers "$kind" 1 "idle-$kind"
    log "idle connections, Node driver, $kind (run $rep)"
    driver --adapter "$kind" --urls "$URLS" --pids "$SPIDS" --idle "$IDLE" --clients 10 \
        --json "$OUT/raw/idle-$kind-$rep.json"
    stop_servers
}

# annolive with the C load generator. Usage: lg NAME INSTANCES ARGS...
lg() {
    local name="$1" n="$2"
    shift 2
    start_servers annolive "$n" "$name"
    log "$name: annolive-loadgen $*"
    loadgen --url "$URLS" --pids "$SPIDS" "$@" --json "$OUT/raw/$name.json"
    stop_servers
}

lg_echo() {
    local rep="$1"
    start_servers echo 1 "echo-lg"
    log "raw broadcast server, annolive-loadgen (run $rep)"
    loadgen --echo --url "$URLS" --pids "$SPIDS" "${LG_MAX[@]}" --mix move=100 \
        --json "$OUT/raw/lg-echo-$rep.json"
    stop_servers
}

# Prints one perf report of a perf.data file as plain lines.
# Usage: perf_table FILE REPORT-ARGS...
perf_table() {
    local data="$1"
    shift
    perf report -i "$data" --stdio -g none "$@" 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed 's/[[:space:]]\+-[[:space:]]\+-[[:space:]]*$//' || true
}

# Profiles both annolive instances with perf under a C load generator run.
# Usage: profile NAME LOADGEN-ARGS...; writes $OUT/perf-NAME-{dso,top,children}.txt.
profile() {
    local name="$1" data="$OUT/perf-$1.data"
    shift
    command -v perf >/dev/null 2>&1 || { log "perf not found: no profile"; return 0; }
    start_servers annolive 2 "profile-$name"
    log "profiling annolive under $name"
    perf record -F 299 --call-graph dwarf,8192 -o "$data" -p "$SPIDS" \
        -- sleep "$PROFILE_SECONDS" >"$OUT/logs/perf-record-$name.log" 2>&1 &
    local perf_pid=$!
    PIDS+=("$perf_pid")
    loadgen --url "$URLS" --pids "$SPIDS" "$@" --duration "$((PROFILE_SECONDS - 3))" \
        --json "$OUT/raw/profile-$name.json"
    wait "$perf_pid" || true
    perf_table "$data" --no-children --sort dso --percent-limit 0.5 >"$OUT/perf-$name-dso.txt"
    perf_table "$data" --no-children --sort dso,symbol --percent-limit 0.7 |
        head -30 >"$OUT/perf-$name-top.txt"
    perf_table "$data" --children --sort dso,symbol --percent-limit 2 |
        grep -v -e '\[k\]' -e '\[unknown\]' -e ' 0x[0-9a-f]\{8,\}' |
        head -30 >"$OUT/perf-$name-children.txt"
    rm -f "$data"
    stop_servers
}

# Samples, every few seconds, the load average and the processes outside this
# benchmark that use 10 % of a core or more, into $OUT/logs/load.log.
sample_load() {
    local ours="$BENCH|$BUILD_DIR|127.0.0.1:$REDIS_PORT|-p $REDIS_PORT|perf (record|report)|addr2line|top -b"
    while true; do
        top -b -c -n 2 -d 3 -w 400 2>/dev/null | awk '/^top -/ { f++ } f == 2' |
            awk -v ours="$ours" -v now="$(date +%s)" '
                NR == 1 { sub(/.*load average: /, ""); split($0, l, ", "); load = l[1] }
                NR > 7 && $9 + 0 >= 10 && $0 !~ ours {
                    cmd = ""
                    for (i = 12; i <= NF && i < 16; i++) cmd = cmd (i > 12 ? " " : "") $i
                    others = others sprintf("%s%.0f%% %s", others ? "; " : "", $9, substr(cmd, 1, 90))
                }
                END { print now "\t" load "\t" others }'
        sleep 2
    done >>"$OUT/logs/load.log" 2>/dev/null
}

machine_info() {
    local others
    others="$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 > 5 { print $2 " " $1 "%" }' |
        head -8 | paste -sd ';' -)"
    node -e '
const os = require("os"); const fs = require("fs");
const [out, ...rest] = process.argv.slice(1);
const cpu = os.cpus()[0].model;
const info = {
  date: new Date().toISOString(), nproc: os.cpus().length, cpu,
  ram_gib: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
  loadavg_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  busy_processes_at_start: rest[0], kernel: os.release(), node: process.version,
  redis: rest[1], lws: rest[2], libuv: rest[3], hiredis: rest[4], gcc: rest[5],
  annolive_commit: rest[6], quick: rest[7] === "1", reps: Number(rest[8]),
};
fs.writeFileSync(out, JSON.stringify(info, null, 2) + "\n");' "$OUT/machine.json" "$others" \
        "$(redis-server --version | awk '{print $3}' | sed 's/v=//')" \
        "$(pkg-config --modversion libwebsockets | sed 's/-$//')" "$(pkg-config --modversion libuv)" \
        "$(pkg-config --modversion hiredis)" "$(gcc -dumpfullversion)" \
        "${ANNOLIVE_COMMIT:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
            git -C "$REPO" diff --quiet HEAD -- server protocol 2>/dev/null || echo '+local changes')}" \
        "$QUICK" "$REPS"
}

# ---- the scenario set ----

configure() {
    if ((QUICK)); then
        FANOUT_ARGS=(--rooms 4 --clients 20 --writers 5 --rates 5,20,40 --step-seconds 2)
        LG_FANOUT=(--rooms 4 --clients 20 --writers 5 --rate 10 --duration 3)
        LG_MAX=(--rooms 4 --clients 20 --writers 5 --rate 100 --duration 3)
        LG_MANY=(--rooms 200 --clients 3 --writers 3 --rate 2 --duration 3)
        BIG_OBJECTS=1000
        IDLE=1000
        SCALE=(1)
        PROFILE_SECONDS=6
    else
        FANOUT_ARGS=(--rooms 20 --clients 50 --writers 5 --rates 1,2,5,7,10,15,20,40 --step-seconds 3)
        LG_FANOUT=(--rooms 20 --clients 50 --writers 5 --rate 10 --duration 5)
        LG_MAX=(--rooms 20 --clients 50 --writers 5 --rate 100 --duration 5)
        LG_MANY=(--rooms 2000 --clients 3 --writers 3 --rate 2 --duration 5)
        BIG_OBJECTS=5000
        IDLE=10000
        SCALE=(1 3)
        PROFILE_SECONDS=10
    fi
}

main() {
    local rep kind n start=$SECONDS
    install_tools
    build
    configure
    [[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/annolive-bench-XXXXXX)"
    mkdir -p "$OUT/raw" "$OUT/logs"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    log "results in $OUT"
    machine_info
    start_redis
    sample_load &
    PIDS+=($!)

    for ((rep = 1; rep <= REPS; rep++)); do
        redis_limits "$rep"
        lg_echo "$rep"
        for kind in annolive socketio hocuspocus sharedb; do
            fanout_driver "$kind" "$rep"
        done
        lg "lg-fanout-$rep" 2 "${LG_FANOUT[@]}"
        # Two instances at this load are also the middle point of scale-out.
        lg "lg-max-$rep" 2 "${LG_MAX[@]}"
        lg "lg-many-$rep" 2 "${LG_MANY[@]}"
        lg "lg-bigroom-$rep" 2 --mode bigroom --objects "$BIG_OBJECTS" --joiners 6
        for n in "${SCALE[@]}"; do
            lg "lg-scale$n-$rep" "$n" "${LG_MAX[@]}"
        done
        lg "lg-idle-$rep" 1 --mode idle --rooms "$((IDLE / 10))" --clients 10
        log "run $rep of $REPS done after $((SECONDS - start)) s"
    done
    # Idle memory of the peers is steady from run to run: measured once. The
    # raw broadcast server shows what libwebsockets itself costs.
    for kind in annolive socketio hocuspocus sharedb echo; do
        idle_driver "$kind" 1
    done
    profile fanout "${LG_MAX[@]}"
    profile many "${LG_MANY[@]}"

    node "$BENCH/report.mjs" "$OUT" "$BENCH/RESULTS.md" "$BENCH/fanout.svg"
    log "wrote bench/RESULTS.md and bench/fanout.svg in $((SECONDS - start)) s"
}

main
