#!/usr/bin/env bash
# The whole test suite, from a fresh clone on Debian: installs what the tests
# need, then runs formatting, lints and every test. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

# The Rust toolchain comes from rustup; Debian's cargo is too old for this crate.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust 1.95 or newer with rustup" >&2; exit 1; }

# C compiler for the bundled SQLite and ring.
if ! command -v cc >/dev/null 2>&1; then
    log "installing build-essential"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -yq build-essential
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -yq build-essential
    fi
fi

start=$(date +%s)
# Real Dovecot and Postfix on loopback (installed on first use; needs root).
log "starting the mail stack"
eval "$(scripts/mailstack.sh start)"

# PostgreSQL (15 on CI machines, trust auth) for the store contract suite and
# the multi-instance test. Those tests fail, never skip, when it is down.
export TICKETGATE_TEST_POSTGRES_URL="${TICKETGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
log "checking PostgreSQL"
if ! pg_isready -q -d "$TICKETGATE_TEST_POSTGRES_URL"; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    log "starting PostgreSQL $version"
    if [ "$(id -u)" = 0 ]; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    else
        sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    for _ in $(seq 30); do
        pg_isready -q -d "$TICKETGATE_TEST_POSTGRES_URL" && break
        sleep 1
    done
    pg_isready -d "$TICKETGATE_TEST_POSTGRES_URL" || { echo "PostgreSQL is not reachable" >&2; exit 1; }
fi

# Debian's Chromium and its WebDriver for the portal's browser test
# (tests/http/web.rs); with TICKETGATE_TEST_BROWSER set, a missing one fails it.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/opentype/ipafont-gothic ]; then
    log "installing chromium, chromium-driver and a Japanese font for its pages"
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -yq chromium chromium-driver fonts-ipafont-gothic
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -yq chromium chromium-driver fonts-ipafont-gothic
    fi
fi
export TICKETGATE_TEST_BROWSER=1

# axe-core, injected into the portal's pages by the accessibility check
# (tests/http/web.rs), from the npm registry; pinned.
axe="target/npm/node_modules/axe-core/axe.min.js"
if [ ! -f "$axe" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        log "installing npm"
        if [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -yq npm
        else
            sudo DEBIAN_FRONTEND=noninteractive apt-get install -yq npm
        fi
    fi
    log "installing axe-core"
    npm install --prefix target/npm --no-save --no-audit --no-fund axe-core@4.14.1 >&2
fi
export TICKETGATE_TEST_AXE="$PWD/$axe"

# An independent OpenAPI 3.x validator for the admin API's document (tests/http/api.rs).
if ! python3 -m openapi_spec_validator --help >/dev/null 2>&1; then
    log "installing openapi-spec-validator"
    python3 -m pip install --quiet 'openapi-spec-validator>=0.7,<1' \
        || python3 -m pip install --quiet --break-system-packages 'openapi-spec-validator>=0.7,<1'
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

log "cargo test"
cargo test --locked --lib --bins --tests

log "doc tests"
cargo test --locked --doc

# The README's "Trying it" block, run as written in a fresh copy with the
# binary the tests just built.
log "README walkthrough"
scripts/readme-walkthrough.sh

# The Debian package, installed and checked as an operator would (needs root:
# CI runs as root; elsewhere it is skipped with a line saying so).
if [ "$(id -u)" = 0 ]; then
    log "Debian package"
    scripts/package-test.sh
else
    log "Debian package: skipped (dpkg -i needs root; run scripts/package-test.sh as root)"
fi

log "all green in $(( $(date +%s) - start ))s"
