#!/usr/bin/env bash
# Benchmarks (not tests): one markdown table, each row with its setup, then a
# line describing the machine.
#   scripts/bench.sh            all benchmarks (one table)
#   scripts/bench.sh parse      InboundMail::parse and mail-parser alone, msg/s and MB/s
#   scripts/bench.sh python     Python email (stdlib) parse-only baseline, same messages
#   scripts/bench.sh ingest     full ingest of 10,000 messages into SQLite and PostgreSQL
#   scripts/bench.sh attachment one 25 MB attachment into SQLite: seconds, peak RSS
#   scripts/bench.sh pipe       MTA pipe latency (Postfix -> ticketgate ingest -) p50/p99
#   scripts/bench.sh fanout     notification fan-out into Postfix; Postfix alone (smtp-source); into smtp-sink
#   scripts/bench.sh imap       IMAP drain of 10,000 messages; IDLE latency p50/p99
#   scripts/bench.sh hostile    hostile 10 MB and 1 MB messages through `ticketgate ingest`: seconds, peak RSS
#   scripts/bench.sh reply      reply extraction of hostile 1 MB bodies (text and HTML, with a sender): seconds
#
# `all` adds the ratio "full ingest into SQLite / Python parse-only" (target >= 3x).
# The mail stack (scripts/mailstack.sh) is started only for pipe, fanout and imap.
# Compiler output and each benchmark's stderr go to target/bench.log.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
case $which in
all | parse | python | ingest | attachment | pipe | fanout | imap | hostile | reply) ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
    ;;
esac
log=target/bench.log
mkdir -p target
: >"$log"
failed=0

# Build every benchmark once up front so no compile output interleaves with the table.
if ! cargo bench --locked --no-run >>"$log" 2>&1; then
    echo "bench.sh: build failed, see $log" >&2
    exit 1
fi

want() { [[ $which == all || $which == "$1" ]]; }

mailstack_started=
need_mailstack() {
    [[ -n $mailstack_started ]] && return 0
    eval "$(scripts/mailstack.sh start 2>>"$log")"
    mailstack_started=1
}

# bench NAME ARGS...: the rows of one benchmark, without its own table header;
# a failure becomes a row saying so, and the script goes on with the others.
bench() {
    local name=$1 out
    shift
    if out=$("$@" 2>>"$log"); then
        grep '^| ' <<<"$out" | grep -v -e '^| benchmark |' -e '^|---' || true
    else
        echo "| $name | \`$*\` | FAILED (see $log) | |"
        failed=1
    fi
}

# result_rate ROW: the first number of the result column (msg/s).
result_rate() { awk -F'|' '{ print $4 }' <<<"$1" | grep -oE '[0-9]+(\.[0-9]+)?' | head -n1 || true; }

echo "| benchmark | setup | result | peak RSS |"
echo "|---|---|---|---|"

if want parse; then
    bench parse cargo bench --locked --bench parse
fi

python_row=
if want python; then
    corpus=$(mktemp -d)
    trap 'rm -rf "$corpus"' EXIT
    if cargo bench --locked --bench corpus -- "$corpus" >>"$log" 2>&1; then
        python_row=$(bench "parse, Python email" python3 scripts/bench_python_baseline.py "$corpus")
        echo "$python_row"
        [[ $python_row != *FAILED* ]] || failed=1 # set in a subshell above
    else
        echo "| parse, Python email | writing the corpus | FAILED (see $log) | |"
        failed=1
    fi
    rm -rf "$corpus"
fi

sqlite_row=
if want ingest; then
    sqlite_row=$(bench "full ingest, sqlite" cargo bench --locked --bench ingest -- sqlite)
    echo "$sqlite_row"
    [[ $sqlite_row != *FAILED* ]] || failed=1
    bench "full ingest, postgres" cargo bench --locked --bench ingest -- postgres
fi

# Only when both medians were measured in this invocation.
sqlite_rate=$(result_rate "$sqlite_row")
python_rate=$(result_rate "$python_row")
if [[ -n $sqlite_rate && -n $python_rate && $sqlite_row != *FAILED* && $python_row != *FAILED* ]]; then
    ratio=$(awk -v a="$sqlite_rate" -v b="$python_rate" 'BEGIN { printf "%.1f", a / b }')
    echo "| ratio: full ingest into SQLite / Python parse-only | medians of the two rows above ($sqlite_rate / $python_rate msg/s); target >= 3x | ${ratio}x | - |"
fi

if want attachment; then
    bench "25 MB attachment" cargo bench --locked --bench attachment
fi

if want pipe; then
    need_mailstack
    bench "MTA pipe latency" cargo bench --locked --bench pipe
fi

if want fanout; then
    need_mailstack
    bench "notification fan-out" cargo bench --locked --bench fanout
fi

if want imap; then
    need_mailstack
    bench "IMAP drain / IDLE latency" cargo bench --locked --bench imap
fi

if want hostile; then
    bench "hostile input" cargo bench --locked --bench hostile
fi

if want reply; then
    bench "reply extraction" cargo bench --locked --bench reply
fi

# The machine the figures come from.
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ram=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
src=$(df --output=source . | tail -n1)
fstype=$(df --output=fstype . | tail -n1)
disk="$src ($fstype)"
if [[ $src == /dev/* ]]; then
    dev=$(lsblk -no PKNAME "$src" 2>/dev/null | head -n1)
    dev=${dev:-$(basename "$src")}
    if [[ -r /sys/block/$dev/queue/rotational ]]; then
        rota=$(cat "/sys/block/$dev/queue/rotational")
        disk+=", kernel reports rotational=$rota"
        [[ $dev == vd* ]] && disk+=" (virtio block device: the host's disk type is not visible)"
    fi
fi
echo
echo "Machine: $(nproc) CPUs ($cpu), $ram RAM, kernel $(uname -r), disk $disk, $(rustc --version)."
exit $failed
