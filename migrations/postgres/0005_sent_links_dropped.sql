-- Sign-in and invitation mail used to be queued with its finished link (the
-- token in clear) in the outbox row's context, kept after sending. Since
-- then the outbox mints the token when it sends and stores only its hash
-- (src/outbox.rs): drop the links of rows already sent or dead-lettered.
-- Rows still waiting keep theirs and are sent as they are.
UPDATE outbox SET context = (context::jsonb #- '{event,link}')::text
WHERE template IN ('sign_in', 'invite')
  AND status IN ('sent', 'dead')
  AND jsonb_typeof(context::jsonb #> '{event,link}') = 'string';
