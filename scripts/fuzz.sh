#!/bin/bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs each one
# for ANNOLIVE_FUZZ_SECONDS seconds (default 60) over a copy of its seed
# corpus, tests/fuzz/corpus/TARGET/, in a temporary directory. A crash, a
# timeout or a memory limit hit fails the run; the input that caused it and
# the fuzzer's output are kept in .run/fuzz-crashes/TARGET/. Arguments name
# the targets to run (default: all of them).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ANNOLIVE_FUZZ_BUILD_DIR:-$REPO/build-fuzz}"
CRASH_DIR="$REPO/.run/fuzz-crashes"
SECONDS_PER_TARGET="${ANNOLIVE_FUZZ_SECONDS:-60}"
TARGETS=(fuzz_msg_json fuzz_msg_msgpack fuzz_unpack fuzz_coco)

log() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] ||
    die "ANNOLIVE_FUZZ_SECONDS must be a positive number of seconds, not '$SECONDS_PER_TARGET'"
CLANG="$(command -v clang || true)"
[[ -n "$CLANG" ]] || die "clang not found: run scripts/setup.sh first"
if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/annolive-fuzz-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log "building ${TARGETS[*]} into $BUILD_DIR with $CLANG"
cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_C_COMPILER="$CLANG" \
    -DANNOLIVE_FUZZ=ON -DANNOLIVE_TESTS=OFF -DANNOLIVE_WERROR=ON
cmake --build "$BUILD_DIR" -j2 --target "${TARGETS[@]}"

# Runs one target and returns its exit code. Its output goes to
# WORK/TARGET.log, and the lines with the coverage reached are printed.
run_target() {
    local target="$1" corpus="$WORK/$1/corpus" artifacts="$WORK/$1/artifacts"
    local seeds="$REPO/tests/fuzz/corpus/$1" rc=0
    [[ -d "$seeds" ]] || die "no seed corpus for $target: $seeds"
    mkdir -p "$corpus" "$artifacts"
    cp "$seeds"/* "$corpus"/
    log "running $target for ${SECONDS_PER_TARGET}s over $(ls "$corpus" | wc -l) seed inputs"
    "$BUILD_DIR/$target" -max_total_time="$SECONDS_PER_TARGET" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$corpus" >"$WORK/$target.log" 2>&1 || rc=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' \
        "$WORK/$target.log" || true
    return "$rc"
}

failed=()
for target in "${TARGETS[@]}"; do
    rc=0
    run_target "$target" || rc=$?
    if [[ $rc -eq 0 ]]; then
        log "$target: no crash"
        continue
    fi
    failed+=("$target")
    rm -rf "${CRASH_DIR:?}/$target"
    mkdir -p "$CRASH_DIR/$target"
    cp "$WORK/$target/artifacts"/* "$CRASH_DIR/$target"/ 2>/dev/null || true
    cp "$WORK/$target.log" "$CRASH_DIR/$target/fuzzer.log"
    tail -n 60 "$WORK/$target.log"
    log "FAILED: $target exited with code $rc; its input and output are in $CRASH_DIR/$target"
    for input in "$CRASH_DIR/$target"/*; do
        [[ "$input" == */fuzzer.log ]] && continue
        log "reproduce with: $BUILD_DIR/$target $input"
    done
done

if [[ ${#failed[@]} -gt 0 ]]; then
    die "${#failed[@]} of ${#TARGETS[@]} targets failed: ${failed[*]}"
fi
log "no crash in ${TARGETS[*]} (${SECONDS_PER_TARGET}s each)"
