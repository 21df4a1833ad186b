-- Running a desk (docs/contract.md, "Desk"): an owner, why a ticket was
-- closed, where a merged ticket went, and the two SLA clocks.
--
-- The resolution clock is `resolve_spent` seconds of business time used in
-- earlier running spells plus the spell running since `resolve_since`; both
-- NULL means the clock was never touched and runs from `created_at` while
-- the ticket is open and not blocked (every row made before this migration,
-- and every new ticket until its first change). Due times are kept so the
-- queue can sort and filter by them with an index.
ALTER TABLE tickets ADD COLUMN owner_id BIGINT REFERENCES users(id);
ALTER TABLE tickets ADD COLUMN close_reason TEXT;
ALTER TABLE tickets ADD COLUMN merged_into BIGINT REFERENCES tickets(id);
ALTER TABLE tickets ADD COLUMN response_due TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN responded_at TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN resolve_due TIMESTAMPTZ;
ALTER TABLE tickets ADD COLUMN resolve_spent BIGINT;
ALTER TABLE tickets ADD COLUMN resolve_since TIMESTAMPTZ;
-- The next instant the scheduler has something to do for this ticket (a
-- clock's warning or breach); NULL when nothing is pending.
ALTER TABLE tickets ADD COLUMN next_alarm_at TIMESTAMPTZ;

CREATE INDEX tickets_owner ON tickets(owner_id, status);
CREATE INDEX tickets_alarm ON tickets(next_alarm_at) WHERE next_alarm_at IS NOT NULL;

-- Alarms the scheduler has sent (a clock's warning or breach, an idle
-- rule's firing): one row per ticket, kind and due time, so that of several
-- instances exactly one sends each (the insert that takes the key is the
-- claim), and a due time moved by a priority change, or a new idle spell,
-- is a new alarm.
CREATE TABLE ticket_alarms (
    ticket_id   BIGINT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticket_id, kind, due_at)
);

-- followers.source accepts 'owner' (the owner follows the ticket).
ALTER TABLE followers
    DROP CONSTRAINT followers_source_check,
    ADD CONSTRAINT followers_source_check
        CHECK (source IN ('creator', 'follow', 'share', 'mention', 'cc', 'owner'));
