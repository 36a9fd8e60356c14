#!/bin/bash
# Runs every test of annolive, stage by stage, and stops at the first stage
# that fails: setup, build (warnings are errors), C unit tests (ctest),
# client-js tests (npm test), integration tests (node --test), sanitize and
# fuzz. The sanitize stage runs the unit and integration tests again with
# AddressSanitizer and UBSan (scripts/sanitize.sh). The fuzz stage runs the
# libFuzzer targets for ANNOLIVE_FUZZ_SECONDS seconds each (scripts/fuzz.sh).
# Each stage has a time limit. Prints a summary with the number of tests that
# passed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_DIR="$REPO/.run/test-logs"

STAGE_NAMES=()
STAGE_RESULTS=()
TESTS_PASSED=0
TESTS_FAILED=0
STAGE_PID=""

log() { printf 'test: %s\n' "$*"; }

on_signal() {
    if [[ -n "$STAGE_PID" ]]; then
        # timeout(1) passes the signal on to its whole process group.
        kill -TERM "$STAGE_PID" 2>/dev/null || true
    fi
    log "interrupted"
    exit 130
}
trap on_signal INT TERM

# Adds the test counts that a stage's log reports to the totals. Reads the
# closing lines of ctest and of node's test runner (TAP and spec reporters).
# The log of the sanitize stage contains both.
count_tests() {
    local file="$1" line n total word
    line="$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$file" | tail -n 1 || true)"
    if [[ -n "$line" ]]; then
        read -r n _ _ _ _ total <<<"$line"
        TESTS_FAILED=$((TESTS_FAILED + n))
        TESTS_PASSED=$((TESTS_PASSED + total - n))
    fi
    n="$(grep -Eo '^(# |ℹ )pass [0-9]+' "$file" | tail -n 1 | grep -Eo '[0-9]+' || true)"
    TESTS_PASSED=$((TESTS_PASSED + ${n:-0}))
    for word in fail cancelled; do
        n="$(grep -Eo "^(# |ℹ )$word [0-9]+" "$file" | tail -n 1 | grep -Eo '[0-9]+' || true)"
        TESTS_FAILED=$((TESTS_FAILED + ${n:-0}))
    done
}

# Runs one stage under timeout(1) with output to the terminal and to
# LOG_DIR/NAME.log. Usage: run_stage NAME SECONDS COMMAND...
run_stage() {
    local name="$1" seconds="$2" logfile fifo tee_pid rc start elapsed i
    shift 2
    logfile="$LOG_DIR/$name.log"
    fifo="$LOG_DIR/$name.fifo"
    rm -f "$fifo"
    mkfifo "$fifo"

    log "stage $name: $* (time limit ${seconds}s)"
    start=$SECONDS
    tee "$logfile" <"$fifo" &
    tee_pid=$!
    timeout -k 15 "$seconds" "$@" >"$fifo" 2>&1 </dev/null &
    STAGE_PID=$!
    rc=0
    wait "$STAGE_PID" || rc=$?
    STAGE_PID=""

    # A process the stage left running can keep the pipe open: give tee a
    # few seconds, then stop it.
    for ((i = 0; i < 50; i++)); do
        kill -0 "$tee_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$tee_pid" 2>/dev/null || true
    wait "$tee_pid" 2>/dev/null || true
    rm -f "$fifo"

    elapsed=$((SECONDS - start))
    count_tests "$logfile"
    STAGE_NAMES+=("$name")
    if [[ $rc -eq 0 ]]; then
        STAGE_RESULTS+=("passed in ${elapsed}s")
        return 0
    fi
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        STAGE_RESULTS+=("timed out after ${seconds}s")
        log "FAILED: stage $name timed out after ${seconds}s; its output is in $logfile"
    else
        STAGE_RESULTS+=("failed with exit code $rc after ${elapsed}s")
        log "FAILED: stage $name failed with exit code $rc; its output is in $logfile"
    fi
    return 1
}

print_summary() {
    local i name
    echo
    echo "test summary:"
    for i in "${!STAGE_NAMES[@]}"; do
        printf '  %-12s %s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}"
    done
    for name in "$@"; do
        printf '  %-12s not run\n' "$name"
    done
    echo "tests: $TESTS_PASSED passed, $TESTS_FAILED failed"
}

# Prints the names of the stages after the one that failed.
remaining_stages() {
    local all=(setup build unit client integration sanitize fuzz) seen=0 s
    for s in "${all[@]}"; do
        [[ $seen -eq 1 ]] && echo "$s"
        [[ "$s" == "$1" ]] && seen=1
    done
}

stage() {
    local name="$1" rest
    if ! run_stage "$@"; then
        mapfile -t rest < <(remaining_stages "$name")
        print_summary "${rest[@]}"
        exit 1
    fi
}

main() {
    local node_flags=() integration_files fuzz_seconds fuzz_targets
    fuzz_seconds="${ANNOLIVE_FUZZ_SECONDS:-60}"
    if [[ ! "$fuzz_seconds" =~ ^[1-9][0-9]*$ ]]; then
        log "error: ANNOLIVE_FUZZ_SECONDS must be a positive number of seconds, not '$fuzz_seconds'"
        exit 2
    fi
    mkdir -p "$LOG_DIR"

    stage setup 1200 bash "$REPO/scripts/setup.sh"
    stage build 1200 bash "$REPO/scripts/build.sh" -DANNOLIVE_WERROR=ON
    stage unit 300 ctest --test-dir "$REPO/build" --output-on-failure
    stage client 600 npm --prefix "$REPO/client-js" test

    # --test-concurrency exists from Node.js 20.10 on; older runners run the
    # files one at a time on a two-core machine anyway.
    if node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)'; then
        node_flags+=(--test-concurrency=1)
    fi
    integration_files=("$REPO"/tests/integration/*.test.mjs)
    stage integration 1500 node --test --test-reporter=spec "${node_flags[@]}" \
        "${integration_files[@]}"

    # A clang build with the sanitizers, its unit tests, and the integration
    # tests against its server.
    stage sanitize 1800 bash "$REPO/scripts/sanitize.sh"
    # Each target runs for fuzz_seconds, plus time for the build and for the
    # input that is running when the time is up.
    fuzz_targets=("$REPO"/tests/fuzz/fuzz_*.c)
    stage fuzz $((${#fuzz_targets[@]} * fuzz_seconds + 900)) bash "$REPO/scripts/fuzz.sh"

    print_summary
}

main "$@"
