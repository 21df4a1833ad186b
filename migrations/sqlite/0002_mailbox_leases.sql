-- Which instance polls a mailbox, until when (see migrations/postgres). With
-- SQLite one instance runs normally; the lease still keeps a second process on
-- the same file from polling the same mailbox.
CREATE TABLE mailbox_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    acquired_at TEXT NOT NULL
);
