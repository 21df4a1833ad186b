-- The web portal (issue 21): comments written there, one-time sign-in and
-- invite links, and server-side sessions.

-- comments.source accepts 'web'. SQLite cannot alter a CHECK, and rebuilding
-- the table (create, copy, drop, rename) would drop `comments` under the
-- attachments and ingest log rows that reference it: with foreign keys on
-- (they cannot be switched off inside a migration's transaction) the drop
-- deletes them or fails. So the column is moved instead, as 0006 moved the
-- body: renamed aside, added again with the wider CHECK, copied, dropped. The
-- table, its ids, indexes, triggers and the references to it stay as they
-- were. The body is moved once more in the same pass so it stays the LAST
-- column (0006: a large body is written in place with incremental blob I/O).
-- The DEFAULTs only let ADD COLUMN fill existing rows before the copy; every
-- insert names both columns.
ALTER TABLE comments RENAME COLUMN source TO source_before_0007;
ALTER TABLE comments RENAME COLUMN body TO body_before_0007;
ALTER TABLE comments ADD COLUMN source TEXT NOT NULL DEFAULT 'system'
    CHECK (source IN ('email', 'api', 'system', 'web'));
ALTER TABLE comments ADD COLUMN body TEXT NOT NULL DEFAULT '';
UPDATE comments SET source = source_before_0007, body = body_before_0007;
ALTER TABLE comments DROP COLUMN source_before_0007;
ALTER TABLE comments DROP COLUMN body_before_0007;

-- One-time links that sign a user in or accept an invitation. Only the
-- SHA-256 (hex) of the token is stored: the token is mailed once and carries
-- 256 random bits, so a fast hash is enough. A link is taken by one UPDATE
-- that sets used_at only while it is unused and unexpired (single use).
CREATE TABLE web_links (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('sign_in', 'invite')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
) WITHOUT ROWID;
-- Purging deletes by expiry.
CREATE INDEX web_links_expires ON web_links(expires_at);

-- Portal sessions, by the SHA-256 (hex) of the cookie's token. `csrf` is the
-- session's CSRF token, random, stored as is: forms carry it and it is
-- compared with what is stored here.
CREATE TABLE web_sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    -- Moved at most once a minute: a page view is a read, not a disk sync.
    last_seen_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
