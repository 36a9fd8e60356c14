#!/bin/bash
# Builds annolive and its unit tests with clang, AddressSanitizer and UBSan
# into build-asan/, runs the unit tests there, then runs the integration
# tests against build-asan/annolive. Any sanitizer report fails the run: it
# makes the process abort, and the integration harness also looks for
# reports in every server log. Extra arguments go to node --test in place of
# the integration test files, for example tests/integration/merge.test.mjs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ANNOLIVE_ASAN_BUILD_DIR:-$REPO/build-asan}"

log() { printf 'sanitize: %s\n' "$*"; }
die() { printf 'sanitize: error: %s\n' "$*" >&2; exit 1; }

CLANG="$(command -v clang || true)"
[[ -n "$CLANG" ]] || die "clang not found: run scripts/setup.sh first"

# halt_on_error and abort_on_error end the process with SIGABRT at the first
# report, leak reports at exit included, so a server that a test stops
# exits with a signal instead of code 0.
# The quarantine keeps freed memory out of use for a while so that a late
# use of it is caught. At its default of 256 MiB it alone exceeds the 64 MiB
# of growth that the slow-client test allows the server, so it is smaller.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:quarantine_size_mb=16"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
# valgrind cannot run a program built with AddressSanitizer.
unset ANNOLIVE_TEST_VALGRIND

log "building into $BUILD_DIR with $CLANG"
cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_C_COMPILER="$CLANG" \
    -DANNOLIVE_SANITIZE=ON -DANNOLIVE_WERROR=ON
cmake --build "$BUILD_DIR" -j2

log "unit tests"
ctest --test-dir "$BUILD_DIR" --output-on-failure

node_flags=()
# --test-concurrency exists from Node.js 20.10 on, as in scripts/test.sh.
if node -e 'const [a, b] = process.versions.node.split(".").map(Number);
            process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)'; then
    node_flags+=(--test-concurrency=1)
fi
if [[ $# -gt 0 ]]; then
    files=("$@")
else
    files=("$REPO"/tests/integration/*.test.mjs)
fi
log "integration tests with ANNOLIVE_BIN=$BUILD_DIR/annolive"
ANNOLIVE_BIN="$BUILD_DIR/annolive" \
    node --test --test-reporter=spec "${node_flags[@]}" "${files[@]}"
