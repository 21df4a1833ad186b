-- The ticket lists look each filter up in an index instead of walking every
-- ticket (src/store/list.rs). A rowid table's index ends with the rowid, so
-- each of these also hands its tickets out in id order, as lists page.
-- By status, in id order (the status/updated index serves the update order).
CREATE INDEX tickets_status_id ON tickets(status, id);
CREATE INDEX tickets_priority ON tickets(priority);
-- The unfiltered list by last update, newest first.
CREATE INDEX tickets_updated ON tickets(updated_at);
-- An organization's tickets read from the index alone.
DROP INDEX ticket_orgs_org;
CREATE INDEX ticket_orgs_org ON ticket_orgs(org_id, ticket_id);
-- Sent notifications past `[outbox] keep_sent`, which `serve` deletes.
CREATE INDEX outbox_sent ON outbox(status, sent_at) WHERE status = 'sent';
