-- A user staff deactivated keeps their row (their tickets, comments and
-- history name them) but may no longer sign in, and their mail is taken as
-- a stranger's. Mail never sets this back.
ALTER TABLE users ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;
-- Quarantined or rejected mail staff discarded: kept for the record, no
-- longer waiting for a decision.
ALTER TABLE ingest_log ADD COLUMN discarded_at TIMESTAMPTZ;
