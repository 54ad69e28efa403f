-- The feed's order: each log row records the transaction that wrote it, and the feed delivers
-- rows in (writer_xid, sequence) order, only those whose writer is older than every
-- transaction still running (see the feed in the service). Rows logged before this migration
-- were delivered in sequence order and take writer 0, so they keep that order and come first.
-- The constant default adds the column without rewriting the table; the writer's own xid is
-- the default from then on.
ALTER TABLE inventory_transactions ADD COLUMN writer_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE inventory_transactions
    ALTER COLUMN writer_xid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX inventory_transactions_feed_idx
    ON inventory_transactions (writer_xid, sequence);
