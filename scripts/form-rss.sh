#!/usr/bin/env bash
# Peak and kept memory of `ticketgate serve` while a signed-in customer posts
# hostile forms to the portal: 48 MB of empty url-encoded fields, and a 47 MB
# multipart form of one-byte files (README "Security", "Portal forms"). Each
# shape runs against a fresh `serve` on loopback; prints the answer, its
# time, and VmHWM (peak RSS) and VmRSS (kept) after it.
#
#   cargo build --release --bin ticketgate && scripts/form-rss.sh
#   scripts/form-rss.sh path/to/another/ticketgate     # to compare builds
set -euo pipefail

BIN=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/ticketgate}")
PORT=${PORT:-18080}
URL=http://127.0.0.1:$PORT
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The two bodies, built once.
python3 - "$work" <<'EOF'
import sys
work = sys.argv[1]
with open(f"{work}/fields.txt", "wb") as f:
    f.write(b"body=x" + b"&a=" * (16 * 1024 * 1024))          # 48 MB, 16 M empty fields
part = (b"--B0undary\r\nContent-Disposition: form-data; name=\"attachments\"; "
        b"filename=\"f\"\r\nContent-Type: text/plain\r\n\r\nx\r\n")
with open(f"{work}/files.txt", "wb") as f:
    f.write(b"@CSRF@")
    f.write(part * (47 * 1024 * 1024 // len(part)))           # 47 MB of one-byte files
    f.write(b"--B0undary--\r\n")
EOF

rss() { awk '/^VmHWM|^VmRSS/ { printf "%s %d MB  ", $1, $2 / 1024 }' "/proc/$pid/status"; }

# One fresh server with alice signed in and one ticket; sets cookie, csrf.
start() {
  local dir=$work/run
  rm -rf "$dir"; mkdir -p "$dir/config"; cd "$dir"
  cat > config/ticketgate.toml <<EOF
[support]
name = "Example Support"
address = "support@example.test"
domain = "example.test"
notify = "team@example.test"
tag = "Support"
reply_secret = "rss-secret"
[[mailbox]]
name = "inbox"
kind = "maildir"
path = "var/maildir"
[admin]
listen = ""
[web]
listen = "127.0.0.1:$PORT"
base_url = "$URL"
EOF
  "$BIN" org add "Customer Site A" --domain customer.test >/dev/null
  "$BIN" user add --no-invite alice@customer.test --name "Alice Anders" --org customer-site-a >/dev/null
  local link; link=$("$BIN" user link alice@customer.test)
  "$BIN" serve 2>serve.log & pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "$URL/" && break; sleep 0.1; done
  cookie=$(curl -s -D - -o /dev/null -X POST -H "Origin: $URL" "$URL/login/${link##*/login/}" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
  csrf=$(curl -s -H "Cookie: $cookie" "$URL/tickets" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')
  curl -s -o /dev/null -H "Cookie: $cookie" --data-urlencode "csrf=$csrf" \
    --data-urlencode subject=RSS --data-urlencode body=x "$URL/tickets"
  echo "  idle:             $(rss)"
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo "$BIN"
echo "48 MB url-encoded, 16,777,216 empty fields:"
start
{ printf 'csrf=%s&' "$csrf"; cat "$work/fields.txt"; } > "$work/run/body"
res=$(curl -s -o /dev/null -w '%{http_code} in %{time_total}s' --max-time 300 -H "Cookie: $cookie" \
  -H 'Content-Type: application/x-www-form-urlencoded' --data-binary @"$work/run/body" "$URL/tickets/1/comments" || true)
echo "  answer $res; after: $(rss)"
stop

echo "47 MB multipart, one-byte files:"
start
{ printf -- '--B0undary\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n%s\r\n' "$csrf"
  tail -c +7 "$work/files.txt"; } > "$work/run/body"
res=$(curl -s -o /dev/null -w '%{http_code} in %{time_total}s' --max-time 300 -H "Cookie: $cookie" \
  -H 'Content-Type: multipart/form-data; boundary=B0undary' --data-binary @"$work/run/body" "$URL/tickets/1/comments" || true)
echo "  answer $res; after: $(rss)"
files=$("$BIN" ticket show 1 --json | python3 -c 'import json,sys; t=json.load(sys.stdin); print(sum(len(c["attachments"]) for c in t["comments"]))')
echo "  attachments stored on the ticket: $files"
stop
