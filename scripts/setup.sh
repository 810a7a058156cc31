# Installs what building and testing the template needs, when it is missing.
# Sourced by scripts/run and scripts/test; each check is quick when the tool
# is already there, so running it every time costs almost nothing.
#
# What it may install, and how:
#   - the wasm32-unknown-unknown target        rustup target add
#   - wasm-bindgen-cli (the version in Cargo.lock)  cargo install
#   - cargo-leptos 0.3.10                       cargo install (about 15 minutes, once)
#   - Chromium (tests only)                     apt-get install chromium
#   - Playwright (tests only)                   npm ci in end2end/
# Nothing is downloaded from anywhere but crates.io, npm and Debian.

set -euo pipefail

# The repository root, whatever the caller's working directory.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# cargo-leptos 0.3.11 and later need a newer compiler than rust-version.
CARGO_LEPTOS_VERSION=0.3.10

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
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
    command -v cargo >/dev/null ||
        die "cargo is not installed. Install Rust with rustup (https://rustup.rs), then try again."
    # Tools installed by `cargo install` land here.
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
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

ensure_node() {
    if command -v npm >/dev/null; then
        info "Node.js $(node --version), npm $(npm --version)"
        return
    fi
    step "Installing Node.js and npm (apt-get)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
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
    ensure_chromium
    ensure_node
    ensure_playwright
}
