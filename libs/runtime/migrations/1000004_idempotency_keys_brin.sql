-- Every idempotent request writes a key, so each index on the table is paid on every write;
-- the purge is the only reader by age. Keys arrive in create_time order, so a BRIN index
-- (one summary per range of pages) finds the old ones as well as the b-tree did, at a small
-- part of the cost per insert.
DROP INDEX IF EXISTS idempotency_keys_create_time_idx;
CREATE INDEX idempotency_keys_create_time_brin ON idempotency_keys USING brin (create_time);
