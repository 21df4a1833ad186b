-- The ticket lists look each filter up in an index instead of reading every
-- ticket (src/store/list.rs); the id (or update time) after the filter's
-- column hands the tickets out in the order lists page in.
CREATE INDEX tickets_status_id ON tickets(status, id);
CREATE INDEX tickets_priority ON tickets(priority, id);
CREATE INDEX tickets_updated ON tickets(updated_at, id);
DROP INDEX tickets_requester;
CREATE INDEX tickets_requester ON tickets(requester_id, id);
-- An organization's tickets read from the index alone.
DROP INDEX ticket_orgs_org;
CREATE INDEX ticket_orgs_org ON ticket_orgs(org_id, ticket_id);
-- Sent notifications past `[outbox] keep_sent`, which `serve` deletes.
CREATE INDEX outbox_sent ON outbox(status, sent_at) WHERE status = 'sent';
