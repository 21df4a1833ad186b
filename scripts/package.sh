#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed on first use):
#   scripts/package.sh            release build -> target/debian/ticketgate_<version>-1_<arch>.deb
#   scripts/package.sh --debug    packages the debug build already made by the tests (CI)
# The packaged config is config/ticketgate.toml with its paths moved to
# /var/lib/ticketgate (state) and /etc/ticketgate (rules, template overrides).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> installing cargo-deb" >&2
    cargo install --locked cargo-deb@3.8.0 >&2
fi

mkdir -p target/package
sed -e 's|"sqlite://var/|"sqlite:///var/lib/ticketgate/|' \
    -e 's|^path = "var/|path = "/var/lib/ticketgate/|' \
    -e 's|^dir = "var/|dir = "/var/lib/ticketgate/|' \
    -e 's|^reply_secret_file = "var/|reply_secret_file = "/var/lib/ticketgate/|' \
    -e 's|^\[outbox\]$|[outbox]\n# Files here override the built-in templates of the same name.\ntemplates = "/etc/ticketgate/templates"|' \
    config/ticketgate.toml > target/package/ticketgate.toml
printf '\n[rules]\n# The shipped rules; edit them here (ticketgate rules check).\nfile = "/etc/ticketgate/rules.toml"\n' >> target/package/ticketgate.toml
if grep -n '"var/' target/package/ticketgate.toml; then
    echo "a relative state path is left in the packaged config" >&2
    exit 1
fi

if [ "${1:-}" = "--debug" ]; then
    cargo build --locked --bin ticketgate >&2
    # cargo-deb warns that a dev profile is meant for tests only: it is.
    cargo deb --no-build --profile dev --fast >&2
else
    cargo deb --locked >&2
fi
ls -t target/debian/ticketgate_*.deb | head -n 1
