-- Sign-in and invitation mail used to be queued with its finished link (the
-- token in clear) in the outbox row's context, kept after sending. Since
-- then the outbox mints the token when it sends and stores only its hash
-- (src/outbox.rs): drop the links of rows already sent or dead-lettered.
-- Rows still waiting keep theirs and are sent as they are.
UPDATE outbox SET context = json_remove(context, '$.event.link')
WHERE template IN ('sign_in', 'invite')
  AND status IN ('sent', 'dead')
  AND json_valid(context)
  AND json_type(context, '$.event.link') = 'text';
