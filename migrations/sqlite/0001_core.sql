-- ticketgate core schema (SQLite). The PostgreSQL schema mirrors it table for
-- table; times are RFC 3339 text here and timestamptz there.

CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Mail domains whose senders are auto-registered as members of the org.
CREATE TABLE org_domains (
    domain      TEXT PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('customer', 'staff')),
    org_id      INTEGER REFERENCES orgs(id),
    locale      TEXT NOT NULL DEFAULT 'en',
    -- Set when delivery reports say mail to this address fails.
    bouncing    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
CREATE INDEX users_org ON users(org_id);

CREATE TABLE org_leads (
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL,
    priority        TEXT,
    requester_id    INTEGER NOT NULL REFERENCES users(id),
    org_id          INTEGER REFERENCES orgs(id),
    release         TEXT,
    -- Threading headers of notifications: the ticket's first and latest message.
    root_message_id TEXT,
    last_message_id TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX tickets_status ON tickets(status, updated_at);
CREATE INDEX tickets_requester ON tickets(requester_id);

CREATE TABLE ticket_orgs (
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    PRIMARY KEY (ticket_id, org_id)
);
CREATE INDEX ticket_orgs_org ON ticket_orgs(org_id);

CREATE TABLE followers (
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('creator', 'follow', 'share', 'mention', 'cc')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (ticket_id, user_id)
);
CREATE INDEX followers_user ON followers(user_id);

-- Content-addressed storage for raw messages and attachments (SHA-256, hex).
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    data        BLOB NOT NULL
);

-- The ingest log: one row per delivery, whatever became of it.
CREATE TABLE ingest_log (
    id              INTEGER PRIMARY KEY,
    -- Message-ID, or "sha256:<hex>" of the raw bytes when the message has none.
    dedup_key       TEXT NOT NULL,
    message_id      TEXT,
    origin          TEXT NOT NULL,
    raw_sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    size            INTEGER NOT NULL,
    sender          TEXT,
    subject         TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('ticket_created', 'comment_added', 'command_only',
                        'duplicate', 'ignored', 'rejected', 'quarantined')),
    reason          TEXT,
    thread_reason   TEXT,
    ticket_id       INTEGER REFERENCES tickets(id),
    comment_id      INTEGER,
    -- For a duplicate: the delivery it repeats.
    duplicate_of    INTEGER REFERENCES ingest_log(id),
    notify          INTEGER NOT NULL DEFAULT 1,
    received_at     TEXT NOT NULL
);
-- Re-delivery is a no-op: one non-duplicate row per key.
CREATE UNIQUE INDEX ingest_log_dedup ON ingest_log(dedup_key) WHERE outcome <> 'duplicate';
CREATE INDEX ingest_log_outcome ON ingest_log(outcome, id);

CREATE TABLE comments (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    author_id   INTEGER NOT NULL REFERENCES users(id),
    body        TEXT NOT NULL,
    signature   TEXT,
    -- What reply extraction removed, kept so nothing is lost.
    quoted      TEXT,
    internal    INTEGER NOT NULL DEFAULT 0,
    source      TEXT NOT NULL CHECK (source IN ('email', 'api', 'system')),
    message_id  TEXT,
    ingest_id   INTEGER REFERENCES ingest_log(id),
    created_at  TEXT NOT NULL
);
CREATE INDEX comments_ticket ON comments(ticket_id, id);

CREATE TABLE attachments (
    id            INTEGER PRIMARY KEY,
    comment_id    INTEGER NOT NULL REFERENCES comments(id) ON DELETE CASCADE,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    blob_sha256   TEXT NOT NULL REFERENCES blobs(sha256)
);
CREATE INDEX attachments_comment ON attachments(comment_id);

-- The audit trail of a ticket.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    actor_id    INTEGER REFERENCES users(id),
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX events_ticket ON events(ticket_id, id);

-- Every Message-ID the gateway received, sent, or saw referenced, and its ticket.
CREATE TABLE message_refs (
    message_id  TEXT PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('received', 'sent', 'referenced')),
    created_at  TEXT NOT NULL
);
CREATE INDEX message_refs_ticket ON message_refs(ticket_id);

-- Notifications, written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER REFERENCES tickets(id) ON DELETE CASCADE,
    template        TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    to_user_id      INTEGER REFERENCES users(id),
    -- The recipient's language when queued: templates/<locale>/ first.
    locale          TEXT NOT NULL DEFAULT 'en',
    reason          TEXT NOT NULL,
    -- The comment whose attachments ride along, if any.
    comment_id      INTEGER REFERENCES comments(id),
    -- Stable across retries, so a resend folds into the first copy.
    message_id      TEXT NOT NULL UNIQUE,
    in_reply_to     TEXT,
    refs            TEXT,
    subject         TEXT NOT NULL,
    -- What the template renders: a snapshot taken when the row was queued.
    context         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);

-- Rate limit of automatic answers (acknowledgements, refusal notices): the last
-- one per address, so two robots cannot keep each other busy.
CREATE TABLE auto_replies (
    address     TEXT PRIMARY KEY,
    last_at     TEXT NOT NULL
);

-- Where each source stopped (IMAP UIDVALIDITY/UID), committed with the messages.
CREATE TABLE source_cursors (
    source      TEXT PRIMARY KEY,
    validity    INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);
