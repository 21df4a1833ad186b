-- People's data (docs/contract.md, "People's data"): erasure by redaction,
-- and retention of raw mail and closed tickets.
--
-- A user whose data was erased keeps their row (tickets, counts and history
-- still point at it) under a pseudonym; `erased_at` says when, so an
-- erased row is told from a deactivated one.
ALTER TABLE users ADD COLUMN erased_at TEXT;
-- Comments whose text and attachments were removed with their author's
-- data. A table of its own: a column added to `comments` would come after
-- the body, and reading it would walk a long body's overflow pages.
CREATE TABLE comment_redactions (
    comment_id  INTEGER PRIMARY KEY REFERENCES comments(id) ON DELETE CASCADE,
    redacted_at TEXT NOT NULL
);
-- The raw message was removed (retention or erasure). `raw_sha256` then
-- names the empty blob, so the log row keeps its foreign key and its
-- deduplication key while the bytes are gone.
ALTER TABLE ingest_log ADD COLUMN raw_removed_at TEXT;

-- Deleting a closed ticket, its log rows and unreferenced blobs looks up
-- every row that points at them (foreign keys, and the checks before a blob
-- goes): without these, each deletion would read a whole table. The rare
-- references are partial indexes, which cost nothing while they are NULL.
CREATE INDEX ingest_log_ticket ON ingest_log(ticket_id);
CREATE INDEX ingest_log_raw ON ingest_log(raw_sha256);
CREATE INDEX ingest_log_duplicate_of ON ingest_log(duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX ingest_log_replay_of ON ingest_log(replay_of) WHERE replay_of IS NOT NULL;
CREATE INDEX comments_ingest ON comments(ingest_id);
CREATE INDEX attachments_blob ON attachments(blob_sha256);
CREATE INDEX outbox_ticket ON outbox(ticket_id);
CREATE INDEX outbox_comment ON outbox(comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX tickets_merged ON tickets(merged_into) WHERE merged_into IS NOT NULL;

-- What deleting closed tickets leaves for reports: how many were closed,
-- by month closed (`YYYY-MM`), organization slug ('' for none) and state.
CREATE TABLE retention_counts (
    month       TEXT NOT NULL,
    org         TEXT NOT NULL,
    state       TEXT NOT NULL,
    tickets     INTEGER NOT NULL,
    PRIMARY KEY (month, org, state)
);

-- One row per day retention ran: claimed before it runs, so one instance
-- of several does it.
CREATE TABLE retention_runs (
    day         TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    raw_messages    INTEGER,
    closed_tickets  INTEGER
);

-- The empty blob that log rows name once their raw message is removed
-- (`store::people::EMPTY_BLOB`, the SHA-256 of no bytes).
INSERT OR IGNORE INTO blobs (sha256, size, data)
    VALUES ('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 0, X'');
