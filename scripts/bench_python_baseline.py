#!/usr/bin/env python3
"""Parse-only baseline in Python's standard library, for the ratio in
scripts/bench.sh: each message of DIR (written by `cargo bench --bench corpus
-- DIR`) through email.message_from_bytes(policy=default), then the body that
a ticket would keep (get_body plain/html, get_content). Nothing is stored.
Messages are read into memory first, so only parsing is timed. 5 runs, median.

Prints one markdown row: | benchmark | setup | result | peak RSS |
"""
import email
import email.policy
import os
import platform
import resource
import statistics
import sys
import time

RUNS = 5


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: bench_python_baseline.py DIR", file=sys.stderr)
        return 2
    folder = sys.argv[1]
    names = sorted(n for n in os.listdir(folder) if n.endswith(".eml"))
    messages = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            messages.append(f.read())
    total_mb = sum(map(len, messages)) / 1e6
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for raw in messages:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            body = msg.get_body(preferencelist=("plain", "html"))
            if body is not None:
                body.get_content()
        rates.append(len(messages) / (time.perf_counter() - start))
    median = statistics.median(rates)
    # ru_maxrss is in KiB on Linux.
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = ", ".join(f"{r:.0f}" for r in rates)
    print(
        f"| parse, Python email (baseline) | {len(messages)} messages (~3 KB, half replies) "
        f"in memory, CPython {platform.python_version()}, message_from_bytes(policy=default) "
        f"+ get_body(plain, html).get_content(); {RUNS} runs, median "
        f"| {median:.0f} msg/s, {median * total_mb / len(messages):.0f} MB/s (runs: {runs}) "
        f"| {rss_mb:.0f} MB |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
