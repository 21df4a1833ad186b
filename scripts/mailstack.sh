#!/usr/bin/env bash
# A real mail stack on loopback for the integration tests and benchmarks:
# Dovecot (IMAP, IMAPS, LMTP) and Postfix (SMTP, delivering to Dovecot over
# LMTP), each run directly with its own configuration under one state directory.
#
#   scripts/mailstack.sh start             install what is missing, write config, start, print exports
#   scripts/mailstack.sh stop              stop both daemons
#   scripts/mailstack.sh status            exit 0 when both run, 1 otherwise
#   scripts/mailstack.sh env               print the export lines only
#   scripts/mailstack.sh add-user ADDR...  add mailboxes at the test domains (no restart)
#   scripts/mailstack.sh restart-dovecot   stop and start Dovecot only
#   scripts/mailstack.sh stop-postfix      stop Postfix only (outage tests; `start` brings it back)
#   scripts/mailstack.sh flush             retry Postfix's deferred mail now (postqueue -f)
#
# Mail to any address at pipe.example.test is piped (pipe(8), as the mail user)
# into $TICKETGATE_MAILSTACK_DIR/pipe-target, e.g. "ticketgate ingest -".
#
# Typical use:  eval "$(scripts/mailstack.sh start)"
#
# Only the export lines go to stdout; progress and errors go to stderr.
# Everything binds to 127.0.0.1 only; Postfix relays nowhere and does no DNS.
#
# Environment (all optional):
#   TICKETGATE_MAILSTACK_DIR  state: config, certificates, logs, queue, mail
#                             (default /var/tmp/ticketgate-mailstack)
#   TICKETGATE_IMAP_PORT      IMAP, plaintext with STARTTLS (default 10143)
#   TICKETGATE_IMAPS_PORT     IMAP over implicit TLS (default 10993)
#   TICKETGATE_SMTP_PORT      SMTP (default 10025)
#
# Logs: $DIR/dovecot.log, $DIR/postfix.log (and *.out for daemon start output).
set -euo pipefail

DIR=${TICKETGATE_MAILSTACK_DIR:-/var/tmp/ticketgate-mailstack}
IMAP_PORT=${TICKETGATE_IMAP_PORT:-10143}
IMAPS_PORT=${TICKETGATE_IMAPS_PORT:-10993}
SMTP_PORT=${TICKETGATE_SMTP_PORT:-10025}
PASSWORD=test-password
HOST=127.0.0.1

DOMAINS=(example.test customer.test other.test)
PIPE_DOMAIN=pipe.example.test # piped into the gateway instead of a mailbox
INITIAL_USERS=(
    support@example.test team@example.test sam@example.test dave@example.test
    alice@customer.test bob@customer.test carol@other.test
)
PACKAGES=(dovecot-imapd dovecot-lmtpd postfix openssl ca-certificates)
MAIL_USER=tgvmail # owns all mail storage; uid/gid >= 500 (Dovecot's first_valid_uid)

TLS_DIR=$DIR/tls
CA_CERT=$TLS_DIR/ca.pem
USERS_FILE=$DIR/users.txt
MAIL_DIR=$DIR/mail
DC_DIR=$DIR/dovecot
DC_CONF=$DC_DIR/dovecot.conf
DC_BASE=$DC_DIR/run # Dovecot base_dir: sockets, master.pid
DC_PASSWD=$DC_DIR/passwd
LMTP_SOCKET=$DC_BASE/lmtp
PF_DIR=$DIR/postfix
PF_ETC=$PF_DIR/etc # Postfix config_directory: main.cf, master.cf, maps
PF_QUEUE=$PF_DIR/queue
PF_DATA=$PF_DIR/data
PF_VMAILBOX=$PF_ETC/vmailbox

log() { printf 'mailstack: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in IMAP_PORT IMAPS_PORT SMTP_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} > 0 && ${!v} < 65536)) || die "bad port $v=${!v}"
done
[[ $DIR == /* ]] || die "TICKETGATE_MAILSTACK_DIR must be an absolute path (got $DIR)"
# Unix socket paths are limited to 107 bytes; Dovecot's deepest is under base_dir.
((${#DC_BASE} < 80)) || die "TICKETGATE_MAILSTACK_DIR is too long for unix socket paths: $DIR"

print_env() {
    printf 'export %s=%q\n' \
        TICKETGATE_TEST_IMAP_HOST "$HOST" \
        TICKETGATE_TEST_IMAP_PORT "$IMAP_PORT" \
        TICKETGATE_TEST_IMAPS_PORT "$IMAPS_PORT" \
        TICKETGATE_TEST_SMTP_PORT "$SMTP_PORT" \
        TICKETGATE_TEST_CA "$CA_CERT" \
        TICKETGATE_TEST_MAIL_PASSWORD "$PASSWORD" \
        TICKETGATE_MAILSTACK_DIR "$DIR"
}

# ---------------------------------------------------------------- helpers --

# Serialise the commands that change state (tests may call `start` in parallel).
# Daemons are started with fd 9 closed so they do not inherit the lock.
take_lock() {
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    exec 9>"$DIR/.lock"
    flock -w 300 9 || die "could not lock $DIR/.lock"
}

# write_file DEST MODE < content: replace DEST only when the content differs.
# Returns 0 when the file was (re)written, 1 when it was already up to date.
write_file() {
    local dest=$1 mode=$2 tmp
    tmp=$(mktemp "$dest.XXXXXX")
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
    return 0
}

# alive PID: the process exists and is not a zombie (PID 1 here may reap late).
alive() {
    local stat
    [[ -r /proc/$1/stat ]] || return 1
    read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# pid_from FILE NAME: print the pid in FILE when that process is alive and is NAME.
pid_from() {
    local file=$1 name=$2 pid comm
    [[ -r $file ]] || return 1
    read -r pid <"$file" 2>/dev/null || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
    [[ $comm == "$name" ]] || return 1
    printf '%s\n' "$pid"
}
dovecot_pid() { pid_from "$DC_BASE/master.pid" dovecot; }
postfix_pid() { pid_from "$PF_QUEUE/pid/master.pid" master; }

# probe PORT EXPECT [SAY]: connect, read the greeting, check its prefix, say goodbye.
probe() {
    local port=$1 expect=$2 say=${3:-} line=
    { exec 8<>"/dev/tcp/$HOST/$port"; } 2>/dev/null || return 1
    if IFS= read -r -t 2 line <&8 && [[ $line == "$expect"* ]]; then
        [[ -n $say ]] && printf '%s\r\n' "$say" >&8 2>/dev/null
        exec 8>&-
        return 0
    fi
    exec 8>&-
    return 1
}
# connects PORT: the port accepts TCP connections (for the implicit-TLS port).
connects() {
    { exec 8<>"/dev/tcp/$HOST/$1"; } 2>/dev/null || return 1
    exec 8>&-
}
imap_up() { probe "$IMAP_PORT" '* OK' 'a LOGOUT' && connects "$IMAPS_PORT" && [[ -S $LMTP_SOCKET ]]; }
smtp_up() { probe "$SMTP_PORT" '220 ' 'QUIT'; }

# wait_for WHAT LOGFILE CHECK...: poll CHECK for up to 30 s.
wait_for() {
    local what=$1 logfile=$2 i
    shift 2
    for ((i = 0; i < 300; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    [[ -f $logfile ]] && tail -n 30 "$logfile" >&2
    die "$what did not come up within 30 s (see $logfile)"
}

# stop_pid NAME PID: SIGTERM the master, wait up to 10 s (then SIGKILL), then
# end the children it leaves behind: Dovecot's imap sessions outlive their
# master, and a restart should drop them as a real server restart would.
stop_pid() {
    local name=$1 pid=$2 kids k i
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        log "$name (pid $pid) did not stop in 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do alive "$k" && kill -TERM "$k" 2>/dev/null; done
    for ((i = 0; i < 100; i++)); do
        local left=
        for k in $kids; do alive "$k" && left=1; done
        [[ -z $left ]] && break
        sleep 0.05
    done
    for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null; done
    log "$name stopped"
}

# ------------------------------------------------------------------ setup --

ensure_packages() {
    local missing=() p status
    for p in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [[ $status == installed ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    # Keep the packages' own services from starting (they would bind to all
    # interfaces with the system configuration); we run our own instances.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -yq --no-install-recommends "${missing[@]}"
    } </dev/null >&2 || rc=$?
    [[ -n $made_policy ]] && rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed"
}

ensure_mail_user() {
    if ! getent group "$MAIL_USER" >/dev/null; then
        groupadd --system -K SYS_GID_MIN=500 -K SYS_GID_MAX=999 "$MAIL_USER"
    fi
    if ! getent passwd "$MAIL_USER" >/dev/null; then
        useradd --system -K SYS_UID_MIN=500 -K SYS_UID_MAX=999 --gid "$MAIL_USER" \
            --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "ticketgate test mail storage" "$MAIL_USER"
    fi
    local uid gid
    uid=$(id -u "$MAIL_USER")
    gid=$(getent group "$MAIL_USER" | cut -d: -f3)
    ((uid >= 500 && gid >= 500)) || die "user $MAIL_USER has uid $uid gid $gid; Dovecot needs >= 500"
}

ensure_dirs() {
    mkdir -p "$TLS_DIR" "$MAIL_DIR" "$DC_DIR" "$DC_BASE" "$DC_DIR/state" "$PF_ETC" "$PF_QUEUE" "$PF_DATA"
    chmod 755 "$DIR" "$DC_DIR" "$PF_DIR" "$PF_ETC" "$TLS_DIR"
    # Postfix: the queue directory belongs to root; post-install creates its
    # subdirectories with the right owners on `postfix start`.
    chown root:root "$PF_QUEUE" "$PF_ETC"
    chmod 755 "$PF_QUEUE"
    chown postfix:postfix "$PF_DATA"
    chmod 700 "$PF_DATA"
    chown "$MAIL_USER:$MAIL_USER" "$MAIL_DIR"
    chmod 750 "$MAIL_DIR"
    touch "$DIR/dovecot.log" "$DIR/postfix.log"
}

# A small CA and a leaf it signs (rustls rejects a self-signed server cert).
# Made once and kept across runs.
ensure_certs() {
    [[ -s $CA_CERT && -s $TLS_DIR/ca.key && -s $TLS_DIR/server.pem && -s $TLS_DIR/server.key ]] && return 0
    log "creating test CA and server certificate in $TLS_DIR"
    local tmp
    tmp=$(mktemp -d /tmp/mailstack-tls.XXXXXX)
    cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    (
        cd "$tmp"
        openssl req -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.csr \
            -subj "/O=ticketgate tests/CN=ticketgate mailstack test CA" 2>/dev/null
        openssl x509 -req -in ca.csr -signkey ca.key -days 3650 -sha256 \
            -extfile ca.ext -out ca.pem 2>/dev/null
        openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/O=ticketgate tests/CN=localhost" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 3650 -sha256 -extfile server.ext -out server.pem 2>/dev/null
        openssl verify -CAfile ca.pem server.pem >/dev/null
    ) || die "certificate generation failed"
    install -m 600 "$tmp/ca.key" "$TLS_DIR/ca.key"
    install -m 600 "$tmp/server.key" "$TLS_DIR/server.key"
    install -m 644 "$tmp/server.pem" "$TLS_DIR/server.pem"
    install -m 644 "$tmp/ca.pem" "$CA_CERT" # last: its presence marks a complete set
    rm -rf "$tmp"
}

DOVECOT_CHANGED=
POSTFIX_CHANGED=

write_dovecot_conf() {
    write_file "$DC_CONF" 644 <<EOF || return 0
# Generated by scripts/mailstack.sh; edits are overwritten.
instance_name = ticketgate-mailstack
base_dir = $DC_BASE
state_dir = $DC_DIR/state
protocols = imap lmtp
listen = $HOST
log_path = $DIR/dovecot.log
info_log_path = $DIR/dovecot.log
debug_log_path = $DIR/dovecot.log

ssl = yes
ssl_cert = <$TLS_DIR/server.pem
ssl_key = <$TLS_DIR/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
login_trusted_networks = 127.0.0.0/8

auth_mechanisms = plain login
auth_username_format = %Lu
auth_failure_delay = 0
auth_cache_size = 0
# Answer failed logins at once: the first passdb only adds "nodelay" and moves
# on (noauthenticate), so the flag survives the failure of the real one.
passdb {
  driver = static
  args = noauthenticate nodelay=yes
  result_success = continue
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC_PASSWD
}
# allow_all_users: LMTP delivers without a passdb lookup. Postfix already refuses
# unknown recipients at RCPT; Dovecot re-reads its passwd-file at most once a
# second, so a mailbox added a moment ago would otherwise bounce in LMTP.
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$MAIL_DIR/%d/%n allow_all_users=yes
}

first_valid_uid = 500
first_valid_gid = 500
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 1000
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
postmaster_address = postmaster@example.test

default_process_limit = 1000
default_client_limit = 4000
default_vsz_limit = 1G

namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Sent {
    special_use = \\Sent
  }
}

service imap-login {
  inet_listener imap {
    address = $HOST
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = $HOST
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  client_limit = 8000
}
service anvil {
  client_limit = 8000
  # No per-IP login penalty (it grows to 15 s after repeated failures).
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
EOF
    DOVECOT_CHANGED=1
}

write_postfix_conf() {
    write_file "$PF_ETC/main.cf" 644 <<EOF && POSTFIX_CHANGED=1
# Generated by scripts/mailstack.sh; edits are overwritten.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-ticketgate
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR

myhostname = mail.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
# MTA pipe intake: mail to any address at $PIPE_DOMAIN goes through pipe(8) into
# $DIR/pipe-ingest, which runs $DIR/pipe-target (a test writes it, typically
# "exec ticketgate --config FILE ingest -"); exit 75 makes Postfix retry later.
relay_domains = $PIPE_DOMAIN
transport_maps = texthash:$PF_ETC/transport
ticketgate_destination_recipient_limit = 1
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = no
recipient_delimiter = +

# Nothing ever leaves this machine and no DNS is ever asked.
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
default_transport = error:the test mail stack relays nowhere
relay_transport = error:the test mail stack relays nowhere
local_transport = error:no local delivery in the test mail stack

virtual_mailbox_domains = ${DOMAINS[*]}
virtual_mailbox_maps = hash:$PF_VMAILBOX
virtual_transport = lmtp:unix:$LMTP_SOCKET

# Recipients: only listed mailboxes at the test domains, refused at RCPT.
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination, reject_unlisted_recipient
smtpd_reject_unlisted_recipient = yes
unknown_virtual_mailbox_reject_code = 550

message_size_limit = 104857600
mailbox_size_limit = 0
virtual_mailbox_limit = 0
smtpd_recipient_limit = 10000
# Fan-out: deliver big recipient lists over several parallel LMTP sessions.
lmtp_destination_recipient_limit = 50
lmtp_destination_concurrency_limit = 20
lmtp_initial_destination_concurrency = 20
in_flow_delay = 0
default_process_limit = 200
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_banner = \$myhostname ESMTP
EOF
    # No chroot anywhere; SMTP only on loopback; no outbound smtp/local/virtual.
    write_file "$PF_ETC/master.cf" 644 <<EOF && POSTFIX_CHANGED=1
# Generated by scripts/mailstack.sh; edits are overwritten.
# service  type  private unpriv chroot wakeup maxproc command
$HOST:$SMTP_PORT inet n - n - - smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
proxywrite unix  -       -      n      -      1       proxymap
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
lmtp       unix  -       -      n      -      -       lmtp
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
ticketgate unix  -       n      n      -      -       pipe
  flags=R user=$MAIL_USER argv=$DIR/pipe-ingest
EOF
    write_file "$PF_ETC/transport" 644 <<EOF && POSTFIX_CHANGED=1
$PIPE_DOMAIN ticketgate:
EOF
    # pipe(8) refuses to run commands as root: it runs as $MAIL_USER.
    write_file "$DIR/pipe-ingest" 755 <<EOF || true
#!/bin/sh
# Run by Postfix's pipe(8) for mail to $PIPE_DOMAIN: hands the message to
# $DIR/pipe-target on stdin. No target yet: temporary failure (EX_TEMPFAIL).
[ -x "$DIR/pipe-target" ] || exit 75
exec "$DIR/pipe-target"
EOF
    return 0
}

# The canonical list of mailboxes is $USERS_FILE (one address a line, sorted).
# From it: Dovecot's passwd-file (re-read on change) and Postfix's
# virtual_mailbox_maps (hash: map, swapped in atomically; Postfix daemons notice
# the new file and restart themselves).
write_user_maps() {
    awk -v pw="$PASSWORD" 'NF { print $1 ":{PLAIN}" pw "::::::" }' "$USERS_FILE" |
        write_file "$DC_PASSWD" 644 || true
    local tmp
    tmp=$(mktemp "$PF_VMAILBOX.new.XXXXXX")
    awk 'NF { print $1 " OK" }' "$USERS_FILE" >"$tmp"
    if [[ -f $PF_VMAILBOX.db && -f $PF_VMAILBOX ]] && cmp -s "$tmp" "$PF_VMAILBOX"; then
        rm -f "$tmp"
        return 0
    fi
    chmod 644 "$tmp"
    postmap -c "$PF_ETC" "hash:$tmp" || {
        rm -f "$tmp" "$tmp.db"
        die "postmap failed"
    }
    mv -f "$tmp.db" "$PF_VMAILBOX.db"
    mv -f "$tmp" "$PF_VMAILBOX"
}

# merge_users ADDR...: add addresses to $USERS_FILE (kept sorted and unique).
merge_users() {
    local tmp
    tmp=$(mktemp "$USERS_FILE.XXXXXX")
    { [[ -f $USERS_FILE ]] && cat "$USERS_FILE"; printf '%s\n' "$@"; } | LC_ALL=C sort -u >"$tmp"
    if [[ -f $USERS_FILE ]] && cmp -s "$tmp" "$USERS_FILE"; then
        rm -f "$tmp"
    else
        chmod 644 "$tmp"
        mv -f "$tmp" "$USERS_FILE"
    fi
}

setup() {
    ensure_packages
    ensure_mail_user
    ensure_dirs
    ensure_certs
    write_dovecot_conf
    write_postfix_conf
    merge_users "${INITIAL_USERS[@]}"
    write_user_maps
}

# ----------------------------------------------------------------- daemons --

# reload_changed: running daemons whose configuration was rewritten re-read it.
reload_changed() {
    if [[ -n $DOVECOT_CHANGED ]] && dovecot_pid >/dev/null; then
        log "dovecot config changed; reloading"
        dovecot -c "$DC_CONF" reload </dev/null >>"$DIR/dovecot.out" 2>&1 9>&- ||
            die "dovecot reload failed (see $DIR/dovecot.out)"
    fi
    if [[ -n $POSTFIX_CHANGED ]] && postfix_pid >/dev/null; then
        log "postfix config changed; reloading"
        postfix -c "$PF_ETC" reload </dev/null >>"$DIR/postfix.out" 2>&1 9>&- ||
            die "postfix reload failed (see $DIR/postfix.out)"
    fi
    DOVECOT_CHANGED= POSTFIX_CHANGED=
}

start_dovecot() {
    dovecot_pid >/dev/null && return 0
    log "starting dovecot"
    # Room for default_client_limit connections (Dovecot warns otherwise).
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # Own stdout/stderr and no inherited lock fd: Dovecot keeps the stderr it
    # started with, so a caller reading our output would otherwise never see EOF.
    dovecot -c "$DC_CONF" </dev/null >>"$DIR/dovecot.out" 2>&1 9>&- || {
        tail -n 20 "$DIR/dovecot.out" "$DIR/dovecot.log" >&2
        die "dovecot failed to start"
    }
}

start_postfix() {
    postfix_pid >/dev/null && return 0
    log "starting postfix"
    postfix -c "$PF_ETC" start </dev/null >>"$DIR/postfix.out" 2>&1 9>&- || {
        tail -n 20 "$DIR/postfix.out" "$DIR/postfix.log" >&2
        die "postfix failed to start"
    }
}

stop_dovecot() {
    local pid
    if pid=$(dovecot_pid); then stop_pid dovecot "$pid"; fi
}
stop_postfix() {
    local pid
    if pid=$(postfix_pid); then stop_pid postfix "$pid"; fi
}

# ---------------------------------------------------------------- commands --

need_root() {
    ((EUID == 0)) && return 0
    command -v sudo >/dev/null 2>&1 || die "'$1' needs root"
    exec sudo --preserve-env=TICKETGATE_MAILSTACK_DIR,TICKETGATE_IMAP_PORT,TICKETGATE_IMAPS_PORT,TICKETGATE_SMTP_PORT \
        "$0" "$@"
}

cmd_start() {
    take_lock
    setup
    reload_changed
    start_dovecot
    start_postfix
    wait_for "dovecot (IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, LMTP)" "$DIR/dovecot.log" imap_up
    wait_for "postfix (SMTP $SMTP_PORT)" "$DIR/postfix.log" smtp_up
    print_env
}

cmd_stop() {
    take_lock
    stop_postfix
    stop_dovecot
}

cmd_status() {
    local pid rc=0
    if pid=$(dovecot_pid); then
        echo "dovecot: running (pid $pid; IMAP $HOST:$IMAP_PORT, IMAPS $HOST:$IMAPS_PORT)"
    else
        echo "dovecot: not running"
        rc=1
    fi
    if pid=$(postfix_pid); then
        echo "postfix: running (pid $pid; SMTP $HOST:$SMTP_PORT)"
    else
        echo "postfix: not running"
        rc=1
    fi
    return $rc
}

cmd_add_user() {
    (($# > 0)) || die "usage: $0 add-user ADDR..."
    local a lower domains_re addrs=()
    domains_re=$(IFS='|'; echo "${DOMAINS[*]//./\\.}")
    for a in "$@"; do
        lower=${a,,}
        [[ $lower =~ ^[a-z0-9][a-z0-9._-]*@($domains_re)$ ]] ||
            die "not a mailbox at a test domain (${DOMAINS[*]}): '$a' (local part: letters, digits, . _ -; no +)"
        addrs+=("$lower")
    done
    take_lock
    setup
    reload_changed
    local before
    before=$(cksum <"$DC_PASSWD" 2>/dev/null || true)
    merge_users "${addrs[@]}"
    write_user_maps
    # Dovecot re-reads its passwd-file at most once a second: wait that out so
    # the new mailboxes can log in as soon as this returns.
    [[ $(cksum <"$DC_PASSWD") == "$before" ]] || sleep 1.1
    log "$# address(es) registered; $(wc -l <"$USERS_FILE") mailboxes in total"
}

cmd_restart_dovecot() {
    take_lock
    setup
    DOVECOT_CHANGED= # it restarts anyway
    reload_changed
    stop_dovecot
    start_dovecot
    wait_for "dovecot (IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, LMTP)" "$DIR/dovecot.log" imap_up
}

cmd_flush() {
    postqueue -c "$PF_ETC" -f
}

cmd_stop_postfix() {
    take_lock
    stop_postfix
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit "${1:-2}"
}

cmd=${1:-}
(($# > 0)) && shift
case $cmd in
start) need_root start "$@" && cmd_start ;;
stop) need_root stop "$@" && cmd_stop ;;
status) cmd_status ;;
env) print_env ;;
add-user) need_root add-user "$@" && cmd_add_user "$@" ;;
restart-dovecot) need_root restart-dovecot "$@" && cmd_restart_dovecot ;;
stop-postfix) need_root stop-postfix "$@" && cmd_stop_postfix ;;
flush) need_root flush "$@" && cmd_flush ;;
-h | --help | help) usage 0 ;;
*) usage ;;
esac
