-- Only accepted deliveries reserve a dedup key (issue 18): a stranger who
-- sends a Message-ID first is rejected or quarantined, and the owner's mail
-- with that Message-ID must still be processed. Refused rows stay (for
-- replay) but are no longer unique per key; `ignored` (automatic mail)
-- reserves nothing either, since its re-processing changes nothing.
-- Lookups repeat this predicate word for word so SQLite uses the index.
DROP INDEX ingest_log_dedup;
CREATE UNIQUE INDEX ingest_log_dedup ON ingest_log(dedup_key)
    WHERE outcome IN ('ticket_created', 'comment_added', 'command_only');
