#!/bin/bash
# Installs what annolive needs to build, run and test on Debian: gcc and
# clang, the C libraries, redis-server, the labelme examples used by the
# integration tests, chromium for the browser test, Node.js when no `node`
# is on PATH, and client-js's npm packages. The sanitize and fuzz stages of
# scripts/test.sh build with clang and its sanitizer and libFuzzer runtimes.
# Safe to run again: a machine that has everything does no apt work.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
    build-essential cmake pkg-config
    # clang recommends its runtimes (AddressSanitizer, UBSan, libFuzzer)
    # but does not depend on them, and recommends are not installed.
    clang libclang-rt-14-dev
    libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libmsgpack-dev
    libhiredis-dev libjansson-dev libssl-dev libcmocka-dev
    redis-server labelme-examples curl
    # tests/integration/topology.test.mjs runs HAProxy with deploy/haproxy.cfg
    # and reads docker-compose.yml with Python's YAML parser.
    haproxy python3-yaml
    # The browser test of the demo page drives Debian's chromium.
    chromium
)

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]]
}

# Runs a command as root, through sudo when this shell is not root.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root: run scripts/setup.sh as root or install sudo"
    fi
}

install_debian_packages() {
    local missing=() pkg
    command -v dpkg-query >/dev/null 2>&1 ||
        die "dpkg-query not found: this script supports Debian and its derivatives only"

    for pkg in "${PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done

    # Node.js may come from another source whose nodejs package conflicts
    # with Debian's npm, so Debian's nodejs and npm are installed only when
    # there is no node at all.
    if ! command -v node >/dev/null 2>&1; then
        missing+=(nodejs npm)
    fi

    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all Debian packages are installed"
        return
    fi

    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

check_node() {
    local major
    command -v node >/dev/null 2>&1 || die "node not found after installing nodejs"
    command -v npm >/dev/null 2>&1 ||
        die "npm not found but node $(node --version) is: install npm for that Node.js"
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [[ "$major" -lt 18 ]]; then
        die "node $(node --version) is too old: the tests need Node.js 18 or newer"
    fi
}

# Installs client-js's packages unless node_modules is newer than the
# package files. npm records the installed tree in node_modules/.package-lock.json.
install_client_packages() {
    local dir="$REPO/client-js" stamp="$REPO/client-js/node_modules/.package-lock.json"
    if [[ ! -f "$dir/package.json" ]]; then
        log "client-js/package.json not found: skipping npm install"
        return
    fi
    if [[ -f "$stamp" && "$stamp" -nt "$dir/package.json" &&
          ( ! -f "$dir/package-lock.json" || "$stamp" -nt "$dir/package-lock.json" ) ]]; then
        log "client-js packages are up to date"
        return
    fi
    if [[ -f "$dir/package-lock.json" ]]; then
        log "running npm ci in client-js"
        (cd "$dir" && npm ci --no-audit --no-fund)
    else
        log "running npm install in client-js (no package-lock.json)"
        (cd "$dir" && npm install --no-audit --no-fund)
    fi
}

install_debian_packages
check_node
install_client_packages
log "done"
