-- The web portal (issue 21): comments written there, one-time sign-in and
-- invite links, and server-side sessions.

-- comments.source accepts 'web'. The wider CHECK holds for every existing row.
ALTER TABLE comments
    DROP CONSTRAINT comments_source_check,
    ADD CONSTRAINT comments_source_check CHECK (source IN ('email', 'api', 'system', 'web'));

-- One-time links that sign a user in or accept an invitation. Only the
-- SHA-256 (hex) of the token is stored: the token is mailed once and carries
-- 256 random bits, so a fast hash is enough. A link is taken by one UPDATE
-- that sets used_at only while it is unused and unexpired (single use: a
-- second taker waits on the row lock, then finds used_at set).
CREATE TABLE web_links (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('sign_in', 'invite')),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
-- Purging deletes by expiry.
CREATE INDEX web_links_expires ON web_links(expires_at);

-- Portal sessions, by the SHA-256 (hex) of the cookie's token. `csrf` is the
-- session's CSRF token, random, stored as is: forms carry it and it is
-- compared with what is stored here.
CREATE TABLE web_sessions (
    token_hash    TEXT COLLATE "C" PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    -- Moved at most once a minute: a page view is a read, not a write.
    last_seen_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
