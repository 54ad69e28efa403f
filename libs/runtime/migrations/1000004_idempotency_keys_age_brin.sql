-- Every idempotent request writes a key, so each index on the table is paid on every write;
-- the purge is the only reader by age. Keys arrive in create_time order, so a BRIN index
-- (one summary per range of pages) finds the old ones as well as the b-tree did, at a small
-- part of the cost per insert. The b-tree goes in the next migration: one statement per
-- migration, as Citus passes a migration's whole text on to its nodes as one command, and
-- refuses several there when the table is already in its metadata.
CREATE INDEX idempotency_keys_create_time_brin ON idempotency_keys USING brin (create_time);
