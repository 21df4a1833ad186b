-- Admin API: per-staff tokens, and replay of quarantined or rejected messages.

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    -- SHA-256 (hex) of the token. The token itself is shown once and never stored:
    -- it carries 256 random bits, so a fast hash is enough (no password stretching).
    token_sha256  TEXT NOT NULL UNIQUE,
    label         TEXT,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id, id);

-- A replayed delivery stays in the log, marked superseded; the replay is a new
-- row pointing at it. The dedup key stays unique among live, non-duplicate rows.
ALTER TABLE ingest_log ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ingest_log ADD COLUMN replay_of INTEGER REFERENCES ingest_log(id);
DROP INDEX ingest_log_dedup;
CREATE UNIQUE INDEX ingest_log_dedup ON ingest_log(dedup_key) WHERE outcome <> 'duplicate' AND superseded = 0;
