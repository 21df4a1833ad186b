#!/usr/bin/env bash
# The Debian package as an operator meets it: builds it (scripts/package.sh,
# --debug by default: CI packages the build the tests already made), installs
# it with dpkg, checks the files, the user and the unit (systemd-analyze
# verify), then runs `ticketgate check` as the ticketgate user against the
# test Dovecot and Postfix, and purges the package again. Needs root and the
# environment of `scripts/mailstack.sh start`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }
fail() { echo "package test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
: "${TICKETGATE_TEST_SMTP_PORT:?run scripts/mailstack.sh start first}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    log "installing systemd (for systemd-analyze verify)"
    DEBIAN_FRONTEND=noninteractive apt-get install -yq systemd >/dev/null
fi

log "building the package"
deb="$(scripts/package.sh "${1:---debug}")"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p' >&2

work="$(mktemp -d)"
trap 'dpkg --purge ticketgate >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
log "installing $deb"
dpkg -i "$deb" >&2

log "files, user and permissions"
[ -x /usr/bin/ticketgate ] || fail "no /usr/bin/ticketgate"
getent passwd ticketgate >/dev/null || fail "no ticketgate user"
[ "$(stat -c '%U:%G %a' /etc/ticketgate/ticketgate.toml)" = "root:ticketgate 640" ] \
    || fail "/etc/ticketgate/ticketgate.toml is $(stat -c '%U:%G %a' /etc/ticketgate/ticketgate.toml), not root:ticketgate 640"
[ "$(stat -c '%U %a' /var/lib/ticketgate)" = "ticketgate 750" ] || fail "/var/lib/ticketgate is not ticketgate's, 750"
dpkg-query -W -f='${Conffiles}\n' ticketgate | grep -q /etc/ticketgate/ticketgate.toml \
    || fail "the config is not a conffile"
unit="$(dpkg -L ticketgate | grep '/ticketgate.service$')" || fail "no systemd unit in the package"

log "systemd-analyze verify $unit"
out="$(systemd-analyze verify "$unit" 2>&1)" || { printf '%s\n' "$out" >&2; fail "the unit does not verify"; }
if printf '%s\n' "$out" | grep -i 'ticketgate'; then
    fail "systemd-analyze has remarks on the unit"
fi

log "ticketgate check as the ticketgate user, on the installed config"
# From the service's working directory: without --config it reads /etc/ticketgate.
out="$(cd /var/lib/ticketgate && runuser -u ticketgate -- /usr/bin/ticketgate check)" \
    || { printf '%s\n' "$out" >&2; fail "check fails on the installed default"; }
printf '%s\n' "$out" >&2
printf '%s\n' "$out" | grep -q "rules.*(/etc/ticketgate/rules.toml)" || fail "check did not read /etc/ticketgate"
printf '%s\n' "$out" | grep -q "/var/lib/ticketgate/ticketgate.db" || fail "the database is not under /var/lib/ticketgate"

log "ticketgate check as the ticketgate user, against the test Dovecot and Postfix"
inbox="package-$(date +%s)-$$@example.test"
scripts/mailstack.sh add-user "$inbox" >/dev/null
cp "$TICKETGATE_TEST_CA" "$work/ca.pem"
cp /etc/ticketgate/ticketgate.toml "$work/check.toml"
cat >>"$work/check.toml" <<TOML

[[mailbox]]
name = "support"
kind = "imap"
host = "$TICKETGATE_TEST_IMAP_HOST"
port = $TICKETGATE_TEST_IMAPS_PORT
tls = "tls"
ca_file = "$work/ca.pem"
username = "$inbox"
password = "$TICKETGATE_TEST_MAIL_PASSWORD"
TOML
chmod 755 "$work"
chmod 644 "$work/ca.pem" "$work/check.toml"
relay=(env TICKETGATE__SMTP__KIND=smtp TICKETGATE__SMTP__HOST=127.0.0.1
    "TICKETGATE__SMTP__PORT=$TICKETGATE_TEST_SMTP_PORT" TICKETGATE__SMTP__TLS=none)
cd /var/lib/ticketgate
runuser -u ticketgate -- "${relay[@]}" /usr/bin/ticketgate --config "$work/check.toml" migrate >&2
out="$(runuser -u ticketgate -- "${relay[@]}" /usr/bin/ticketgate --config "$work/check.toml" check)" \
    || { printf '%s\n' "$out" >&2; fail "check fails against the test servers"; }
printf '%s\n' "$out" >&2
for line in "ok    database" "mailbox support: logged in to" "ok    smtp: 127.0.0.1:$TICKETGATE_TEST_SMTP_PORT answered EHLO"; do
    printf '%s\n' "$out" | grep -q "$line" || fail "check did not report: $line"
done
sed 's/password = .*/password = "wrong"/' "$work/check.toml" >"$work/wrong.toml"
chmod 644 "$work/wrong.toml"
if out="$(runuser -u ticketgate -- /usr/bin/ticketgate --config "$work/wrong.toml" check)"; then
    fail "check passed with a wrong IMAP password"
fi
printf '%s\n' "$out" | grep -q "FAIL  mailbox support: login refused" || fail "no login failure reported: $out"

log "package test passed"
