-- Who has ever signed in to the portal. The acknowledgement of a new ticket
-- tells everyone else that the portal exists and how to get in. Kept apart
-- from web_sessions, whose rows expire and are purged.
CREATE TABLE portal_visitors (
    user_id          BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    first_signed_in  TIMESTAMPTZ NOT NULL
);
