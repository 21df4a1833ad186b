#!/usr/bin/env bash
# Two builds of the `ticketgate` binary timed against each other, whole
# processes, in alternating runs (A B A B ...) so that a machine whose speed
# drifts slows both alike: the ingest of one mailbox into SQLite and into
# PostgreSQL, and a signed-in portal ticket page served to 4 clients.
#
#   scripts/bench-ab.sh compare BIN_A BIN_B [RUNS]   the table (default 5 runs each)
#   scripts/bench-ab.sh corpus FILE [N]              write an mbox of N messages (10,000)
#   scripts/bench-ab.sh ingest BIN sqlite|postgres MBOX   one fresh ingest; prints seconds
#   scripts/bench-ab.sh portal BIN PORT DIR          start `serve` in DIR with one busy
#                                                    ticket and a session; prints its pid
#
# The mbox: half new tickets from two organizations' customers, half replies
# threaded onto them by In-Reply-To, about 3 KB each, so each run does what a
# real intake does (registration by domain, threading, notifications queued).
# PostgreSQL: TICKETGATE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# each run gets a fresh database. The portal figure needs `ab` (apache2-utils).
# Both builds read the config/ of TICKETGATE_BENCH_CONFIG (default this
# repository's): give the older build's when it cannot read the newer keys.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pg_base="${TICKETGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
config="${TICKETGATE_BENCH_CONFIG:-$root/config}"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

# A fresh home: the shipped config, two organizations, one staff member.
home() {
    local bin="$1" dir="$2" db="$3"
    rm -rf "$dir"
    mkdir -p "$dir"
    mkdir -p "$dir/config"
    cp -r "$config"/. "$dir/config/"
    (
        cd "$dir"
        export TICKETGATE__DATABASE__URL="$db"
        "$bin" org add "Customer Site A" --domain customer-a.test >/dev/null 2>&1
        "$bin" org add "Customer Site B" --domain customer-b.test >/dev/null 2>&1
        "$bin" user add sam@example.test --name "Sam Staff" --role staff >/dev/null 2>&1
    )
}

corpus() {
    local file="$1" n="${2:-10000}"
    python3 - "$file" "$n" <<'PY'
import sys, random
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = ("the export job fails after the upgrade and the logs show a timeout when "
         "the scheduler restarts our nightly batch on the second node please advise").split()
def body():
    lines = []
    for _ in range(40):
        lines.append(" ".join(rng.choice(words) for _ in range(11)))
    return "\n".join(lines) + "\n"
sent = []
with open(out, "w") as f:
    for i in range(n):
        site = "a" if i % 2 else "b"
        who = f"user{i % 37}@customer-{site}.test"
        mid = f"<bench.{i}@customer-{site}.test>"
        f.write(f"From {who} Mon Dec  7 10:00:00 2026\n")
        f.write(f"From: Customer {i % 37} <{who}>\nTo: support@example.test\n")
        f.write(f"Date: Mon, 7 Dec 2026 10:{i % 60:02d}:00 +0000\nMessage-ID: {mid}\n")
        if i % 2 and sent:
            parent_mid, subject = rng.choice(sent)
            f.write(f"Subject: Re: {subject}\nIn-Reply-To: {parent_mid}\nReferences: {parent_mid}\n")
        else:
            subject = f"Export job {i} fails after upgrade"
            f.write(f"Subject: {subject}\n")
            sent.append((mid, subject))
        f.write("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
        # mboxrd: a body line starting with "From " is quoted.
        f.write(body().replace("\nFrom ", "\n>From "))
        f.write("\n")
PY
}

fresh_pg() {
    local name="$1"
    psql -q -d "$pg_base" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null 2>&1
    # Loopback without TLS, as the ingest benchmark (benches/ingest.rs) runs.
    echo "${pg_base%/*}/$name?sslmode=disable"
}

ingest() {
    local bin="$1" store="$2" mbox="$3" dir db t0 t1
    dir="$(mktemp -d)"
    case $store in
    sqlite) db="sqlite://$dir/ticketgate.db" ;;
    postgres) db="$(fresh_pg "tg_bench_ab_$$")" ;;
    *) usage ;;
    esac
    home "$bin" "$dir" "$db"
    t0=$(date +%s.%N)
    (cd "$dir" && TICKETGATE__DATABASE__URL="$db" "$bin" ingest "$mbox" >/dev/null 2>&1)
    t1=$(date +%s.%N)
    rm -rf "$dir"
    [ "$store" = postgres ] && psql -q -d "$pg_base" -c "DROP DATABASE tg_bench_ab_$$ WITH (FORCE)" >/dev/null
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}

# One ticket with 40 comments and 10 followers, and a session for its
# requester whose cookie is `tg_session=benchtoken` (stored, as the portal
# stores every session, by its SHA-256).
portal() {
    local bin="$1" port="$2" dir="$3" mail
    home "$bin" "$dir" "sqlite://$dir/ticketgate.db"
    mail="$dir/seed.mbox"
    python3 - "$mail" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(41):
        f.write(f"From a@x Mon Dec  7 10:00:00 2026\nFrom: Customer <user{i % 11}@customer-a.test>\n")
        f.write(f"To: support@example.test\nMessage-ID: <seed.{i}@customer-a.test>\n")
        f.write("Date: Mon, 7 Dec 2026 10:00:00 +0000\n")
        if i:
            f.write("Subject: Re: Export job fails\nIn-Reply-To: <seed.0@customer-a.test>\n")
        else:
            f.write("Subject: Export job fails\n")
        f.write("\n" + f"Comment {i}: the nightly export still times out on node two.\n" * 8 + "\n")
PY
    (
        cd "$dir"
        export TICKETGATE__DATABASE__URL="sqlite://$dir/ticketgate.db"
        "$bin" ingest "$mail" >/dev/null 2>&1
        python3 - "$dir/ticketgate.db" <<'PY'
import sqlite3, hashlib, sys
db = sqlite3.connect(sys.argv[1])
uid = db.execute("SELECT requester_id FROM tickets WHERE id = 1").fetchone()[0]
h = hashlib.sha256(b"benchtoken").hexdigest()
db.execute("INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at, last_seen_at) "
           "VALUES (?, ?, 'benchcsrf', '2026-01-01T00:00:00.000000Z', '2099-01-01T00:00:00.000000Z', '2099-01-01T00:00:00.000000Z')",
           (h, uid))
db.commit()
PY
        TICKETGATE__WEB__LISTEN="127.0.0.1:$port" \
            TICKETGATE__ADMIN__LISTEN="127.0.0.1:$((port + 100))" TICKETGATE__WEB__BASE_URL="http://127.0.0.1:$port" \
            nohup "$bin" serve >"$dir/serve.out" 2>"$dir/serve.err" &
        echo $! >"$dir/pid"
    )
    for _ in $(seq 100); do
        curl -sf -o /dev/null -H 'Cookie: tg_session=benchtoken' "http://127.0.0.1:$port/tickets/1" && break
        sleep 0.1
    done
    curl -sf -o /dev/null -H 'Cookie: tg_session=benchtoken' "http://127.0.0.1:$port/tickets/1" \
        || { echo "portal on $port did not serve the ticket page (see $dir/serve.err)" >&2; exit 1; }
    cat "$dir/pid"
}

# Pages per second for 4,000 requests of the ticket page, 4 at a time.
pages_per_second() {
    ab -q -k -n 4000 -c 4 -H 'Cookie: tg_session=benchtoken' "http://127.0.0.1:$1/tickets/1" 2>/dev/null \
        | awk '/^Requests per second/ {print $4}'
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

compare() {
    local a="$1" b="$2" runs="${3:-5}" mbox
    a="$(realpath "$a")" b="$(realpath "$b")"
    work="$(mktemp -d)"
    trap 'for p in "$work"/*/pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; rm -rf "$work"' EXIT
    mbox="$work/corpus.mbox"
    corpus "$mbox" 10000
    echo "| benchmark | A: $(basename "$(dirname "$a")") | B: $(basename "$(dirname "$b")") | A/B (median of pairs) |"
    echo "|---|---|---|---|"
    local store i ta tb
    for store in sqlite postgres; do
        : >"$work/a" && : >"$work/b" && : >"$work/r"
        ingest "$a" "$store" "$mbox" >/dev/null # warm-up, not counted
        for i in $(seq "$runs"); do
            ta=$(ingest "$a" "$store" "$mbox")
            tb=$(ingest "$b" "$store" "$mbox")
            echo "$ta" >>"$work/a" && echo "$tb" >>"$work/b"
            python3 -c "print($ta / $tb)" >>"$work/r"
        done
        printf '| ingest 10,000 messages, %s (s, median of %d) | %s | %s | %.2f |\n' "$store" "$runs" \
            "$(median <"$work/a")" "$(median <"$work/b")" "$(median <"$work/r")"
    done
    portal "$a" 18181 "$work/pa" >/dev/null
    portal "$b" 18182 "$work/pb" >/dev/null
    : >"$work/a" && : >"$work/b" && : >"$work/r"
    pages_per_second 18181 >/dev/null && pages_per_second 18182 >/dev/null
    for i in $(seq "$runs"); do
        ta=$(pages_per_second 18181)
        tb=$(pages_per_second 18182)
        echo "$ta" >>"$work/a" && echo "$tb" >>"$work/b"
        python3 -c "print($ta / $tb)" >>"$work/r"
    done
    printf '| portal ticket page, 40 comments, 4 clients (pages/s, median of %d) | %s | %s | %.2f |\n' "$runs" \
        "$(median <"$work/a")" "$(median <"$work/b")" "$(median <"$work/r")"
    echo
    echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%F)"
}

case ${1:-} in
compare) [ $# -ge 3 ] || usage; compare "$2" "$3" "${4:-5}" ;;
corpus) [ $# -ge 2 ] || usage; corpus "$2" "${3:-10000}" ;;
ingest) [ $# -eq 4 ] || usage; ingest "$(realpath "$2")" "$3" "$(realpath "$4")" ;;
portal) [ $# -eq 4 ] || usage; portal "$(realpath "$2")" "$3" "$4" ;;
*) usage ;;
esac
