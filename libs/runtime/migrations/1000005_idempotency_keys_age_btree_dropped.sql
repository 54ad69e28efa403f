-- Replaced by the BRIN index of the migration before.
DROP INDEX IF EXISTS idempotency_keys_create_time_idx;
