#!/usr/bin/env bash
# Benchmarks (not tests): each prints a table row set with its setup.
#   scripts/bench.sh            all benchmarks
#   scripts/bench.sh fanout     notification fan-out into Postfix
#   scripts/bench.sh imap       IMAP drain of 10,000 messages; IDLE latency p50/p99
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/mailstack.sh start)"
which=${1:-all}
if [[ $which == all || $which == fanout ]]; then
    cargo bench --locked --bench fanout 2>/dev/null
fi
if [[ $which == all || $which == imap ]]; then
    cargo bench --locked --bench imap 2>/dev/null
fi
