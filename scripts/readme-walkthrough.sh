#!/usr/bin/env bash
# The README's "Trying it", run as a newcomer runs it: in a fresh copy of the
# repository (its tracked files, nothing under var/), with `serve` running, the
# README's shell block executed line by line, then its outcome checked: the
# ticket listed, the ingest log, and the outbox files the README names.
#
# One line is not run verbatim: `alias tg='cargo run --release -q --'` becomes a
# function calling the binary `cargo test` has already built (a release build
# would compile everything again). Everything else is the README's text.
#
#   scripts/readme-walkthrough.sh        # after cargo test (scripts/test.sh calls it)
#   TICKETGATE_BIN=path/to/ticketgate scripts/readme-walkthrough.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

fail() { printf 'readme-walkthrough: %s\n' "$*" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bin="${TICKETGATE_BIN:-$target/debug/ticketgate}"
[ -x "$bin" ] || fail "no binary at $bin: run cargo test (or cargo build) first"

# The first ```sh block after "## Trying it".
block="$(awk '
    /^## Trying it/ { section = 1; next }
    section && /^## / { exit }
    section && !inside && /^```sh/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
' README.md)"
[ -n "$block" ] || fail "README.md has no shell block under \"## Trying it\""
alias_line="alias tg='cargo run --release -q --'"
grep -qxF "$alias_line" <<<"$block" || fail "the block no longer starts with: $alias_line"
script="$(sed "s|^alias tg='cargo run --release -q --'\$|tg() { \"\$TG_BIN\" \"\$@\"; }|" <<<"$block")"

work="$(mktemp -d)"
serve_pid=""
cleanup() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A fresh copy: the tracked files as they are in this checkout.
copy="$work/ticketgate"
mkdir -p "$copy"
git ls-files -z | tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -xf - -C "$copy"
cd "$copy"
[ ! -e var ] || fail "the copy already has var/"

# The README's first terminal: serve on the shipped config. The admin port
# is moved (another serve on this machine may hold 8025); the portal stays on
# its shipped port when it is free, as the README promises, and is checked.
export TG_BIN="$bin"
portal_port=8080
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
    portal_port=0
    echo "readme-walkthrough: 127.0.0.1:8080 is taken; the portal listens elsewhere" >&2
fi
TICKETGATE__ADMIN__LISTEN=127.0.0.1:0 TICKETGATE__WEB__LISTEN=127.0.0.1:$portal_port RUST_LOG=info "$bin" serve >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 600); do
    grep -q "watching Maildir" "$work/serve.err" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.err" >&2; fail "serve exited"; }
    sleep 0.1
done
grep -q "watching Maildir" "$work/serve.err" || { cat "$work/serve.err" >&2; fail "serve did not start"; }

# The second terminal: the README's block, each command echoed as it runs.
printf '%s\n' "$script" >"$work/trying-it.sh"
if ! bash -euo pipefail -x "$work/trying-it.sh" >"$work/out" 2>"$work/err"; then
    cat "$work/err" "$work/out" >&2
    fail "the README's block failed"
fi
out="$(cat "$work/out")"

# What the README says it shows.
grep -Eq '^#1 +New +- +- +alice@customer\.test +customer-site-a +.* Login page returns 500 after upgrade$' <<<"$out" \
    || { printf '%s\n' "$out" >&2; fail "tg ticket list did not show ticket #1 from Alice"; }
grep -q '"subject": "Login page returns 500 after upgrade"' <<<"$out" \
    || fail "tg ticket show 1 --json did not show the ticket"
grep -Eq '^1 +.* ticket_created +- +#1 +alice@customer\.test' <<<"$out" \
    || { printf '%s\n' "$out" >&2; fail "tg messages list did not show the delivery"; }

# The outbox files: Alice's and Sam's invitations, Alice's acknowledgement,
# the notice to support.notify (team@example.test in the shipped config).
# Sending is asynchronous; give the worker a few polls.
recipients() {
    for f in var/outbox/*.eml; do
        [ -e "$f" ] || continue
        tr -d '\r' <"$f" | sed -n 's/^To: .*<\(.*\)>.*$/\1/p; s/^To: \([^<]*@[^ >]*\)$/\1/p' | head -n 1
    done | sort | tr '\n' ' '
}
want="alice@customer.test alice@customer.test sam@example.test team@example.test "
for _ in $(seq 100); do
    [ "$(recipients)" = "$want" ] && break
    sleep 0.1
done
[ "$(recipients)" = "$want" ] || { ls -l var/outbox >&2; fail "outbox holds mail to: $(recipients)(expected: $want)"; }
grep -l "^Subject: \[Support #1\] Login page returns 500 after upgrade" var/outbox/*.eml >/dev/null \
    || fail "no acknowledgement for ticket #1 in var/outbox"

link="$(grep -Eo 'http://127\.0\.0\.1:8080/login/tg_[0-9a-f]{64}' <<<"$out" | tail -n 1)"
[ -n "$link" ] || { printf '%s\n' "$out" >&2; fail "tg user link printed no sign-in link"; }
if [ "$portal_port" = 8080 ]; then
    page="$(curl -fsS "$link")" || fail "the portal did not answer at $link"
    grep -q 'id="sign-in"' <<<"$page" || fail "the sign-in link did not show its button"
    curl -fsS -o /dev/null -w '%{http_code}' -X POST "$link" | grep -qx 303 \
        || fail "the sign-in button did not sign in"
fi

kill -TERM "$serve_pid"
code=0
wait "$serve_pid" || code=$?
serve_pid=""
[ "$code" = 0 ] || { cat "$work/serve.err" >&2; fail "serve exited with $code after SIGTERM"; }
echo "readme-walkthrough: the README's \"Trying it\" ran as written: ticket #1 listed, 4 outbox files, portal sign-in link ($([ "$portal_port" = 8080 ] && echo "opened and used" || echo "printed; 8080 was taken"))"
