#!/usr/bin/env bash
# The JSON two builds give for the same history, side by side: run before and
# after a change that should not alter the wire format (the ticket JSON of the
# API and the CLI, `/api/openapi.json`, the ingest log, `ticket show`).
#
#   scripts/wire-compare.sh OLD_BINARY NEW_BINARY
#   WIRE_KEEP=1 scripts/wire-compare.sh ...   # keep the outputs to read
#   WIRE_CONFIG=DIR scripts/wire-compare.sh ... # both read DIR (default config/):
#                                               # the old build's, when it cannot read newer keys
#
# Each binary gets a fresh copy of config/ on loopback, the same users, every
# mail under fixtures/mail/ ingested in name order, then the same admin API
# calls (status, priority, release, a comment with a mention, a share); the
# outputs are written with times, generated ids and tokens masked, and the
# script prints `diff -u` of the two trees (exit 1 when they differ). Then
# the new binary reads the database the old one wrote (migrating it, as an
# upgrade does) and must show every ticket exactly as the old one did.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY" >&2; exit 2; }
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "${WIRE_KEEP:-}" ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Times, generated Message-IDs, reply tokens and API tokens differ run to run.
mask() {
    sed -E \
        -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?/TIME/g' \
        -e 's/tg\.[0-9a-f]{32}@/tg.ID@/g' \
        -e 's/tg_[A-Za-z0-9_-]+/tg_TOKEN/g' \
        -e 's/"duration_ms": ?[0-9]+/"duration_ms":N/g'
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {
    local bin="$1" out="$2" dir
    dir="$work/$(basename "$out")-home"
    mkdir -p "$dir" "$out"
    mkdir -p "$dir/config"
    cp -r "${WIRE_CONFIG:-$root/config}"/. "$dir/config/"
    cd "$dir"
    local tg=("$bin")
    "${tg[@]}" org add "Customer Site A" --domain customer.test >/dev/null
    "${tg[@]}" user add alice@customer.test --name "Alice Anders" --org "Customer Site A" >/dev/null
    "${tg[@]}" user add bob@customer.test --name "Bob Builder" --org "Customer Site A" >/dev/null
    "${tg[@]}" user add sam@example.test --name "Sam Staff" --role staff >/dev/null
    find "$root/fixtures/mail" -name '*.eml' | LC_ALL=C sort >"$dir/mails"
    xargs -a "$dir/mails" "${tg[@]}" ingest --json 2>/dev/null | mask >"$out/ingest.jsonl" || true
    local token port
    token="$("${tg[@]}" token create --user sam@example.test --label compare)"
    port="$(free_port)"
    TICKETGATE__ADMIN__LISTEN="127.0.0.1:$port" TICKETGATE__WEB__LISTEN= TICKETGATE__MAILBOX__INBOX__PATH="$dir/none" \
        "${tg[@]}" serve >"$dir/serve.out" 2>"$dir/serve.err" &
    pids+=($!)
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    api() {
        local method="$1" path="$2" body="${3:-}"
        curl -s -X "$method" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            ${body:+--data "$body"} "http://127.0.0.1:$port$path" | mask
        echo
    }
    {
        api PATCH /api/tickets/1 '{"status":"in_progress","priority":"P2"}'
        api POST /api/tickets/1/release '{"version":"v4.2.1"}'
        api POST /api/tickets/1/comments '{"body":"Looking at it with @bob@customer.test today."}'
        api PUT /api/tickets/1/followers/bob@customer.test
        api PATCH /api/tickets/1 '{"status":"closed"}'
    } >"$out/api-calls.jsonl"
    api GET /api/tickets/1 >"$out/api-ticket-1.json"
    api GET /api/tickets >"$out/api-tickets.json"
    api GET /api/openapi.json >"$out/openapi.json"
    "${tg[@]}" ticket show 1 --json | mask >"$out/cli-ticket-1.json"
    "${tg[@]}" ticket show 1 | mask >"$out/cli-ticket-1.txt"
    "${tg[@]}" ticket list --json | mask >"$out/cli-tickets.json"
    "${tg[@]}" messages list --json | mask >"$out/cli-messages.json"
    cd "$root"
}

old_bin="$(realpath "$1")" new_bin="$(realpath "$2")"
run "$old_bin" "$work/old"
run "$new_bin" "$work/new"
for f in "$work"/old/*; do
    printf '%-20s %s bytes\n' "$(basename "$f")" "$(wc -c <"$f")"
done
status=0
diff -ru "$work/old" "$work/new" || status=1

# An upgrade: the old binary's database, read by the new one.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()
cd "$work/old-home"
ids="$("$old_bin" ticket list --json | python3 -c 'import json,sys; print(" ".join(str(t["id"]) for t in json.load(sys.stdin)))')"
mkdir -p "$work/upgrade/old" "$work/upgrade/new"
for id in $ids; do "$old_bin" ticket show "$id" --json | mask >"$work/upgrade/old/$id.json"; done
"$new_bin" migrate >/dev/null
for id in $ids; do "$new_bin" ticket show "$id" --json | mask >"$work/upgrade/new/$id.json"; done
if diff -ru "$work/upgrade/old" "$work/upgrade/new"; then
    echo "upgrade: the $(echo $ids | wc -w) tickets of the old database read back unchanged"
else
    status=1
fi
exit $status
