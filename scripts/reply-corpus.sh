#!/usr/bin/env bash
# Measures reply extraction on a corpus laid out like Discourse's
# email_reply_trimmer test data (emails/<name>.txt + trimmed/<name>.txt) and
# prints a table: emails, non-forward matches, mismatched names, forwards.
# With --fixtures, on the project's golden files instead (fixtures/reply:
# <name>.txt|.html + <name>.expected.json, a <name>.from for the sender).
#
#   scripts/reply-corpus.sh DIR [--diff]
#   scripts/reply-corpus.sh --fixtures fixtures/reply [--diff]
#
# CARGO_TARGET_DIR is honoured, so it can run beside other builds.
set -euo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: $0 [--fixtures] DIR [--diff]" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example reply_corpus -- "$@"
