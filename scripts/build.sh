#!/bin/bash
# Configures and builds annolive and its unit tests into build/. Extra
# arguments go to the cmake configure step, for example -DANNOLIVE_WERROR=ON.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ANNOLIVE_BUILD_DIR:-$REPO/build}"

command -v cmake >/dev/null 2>&1 || {
    echo "build: error: cmake not found: run scripts/setup.sh first" >&2
    exit 1
}

cmake -S "$REPO" -B "$BUILD_DIR" "$@"
cmake --build "$BUILD_DIR" -j2
