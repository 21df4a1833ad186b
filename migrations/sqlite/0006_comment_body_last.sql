-- The comment body becomes the last column of its row. SQLite then keeps a
-- zeroblob() in that place unexpanded, so a large body is reserved and
-- written in place (incremental blob I/O) instead of being held in memory
-- twice more while the row is built (issue 18: at most 4x a 10 MB message).
-- Column order is storage only: every query names its columns.
ALTER TABLE comments RENAME COLUMN body TO body_before_0006;
ALTER TABLE comments ADD COLUMN body TEXT NOT NULL DEFAULT '';
UPDATE comments SET body = body_before_0006;
ALTER TABLE comments DROP COLUMN body_before_0006;
