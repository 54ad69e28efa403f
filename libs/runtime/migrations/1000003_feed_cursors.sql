-- Platform migration: where each consumer of stock's transaction feed stands. The consumer
-- moves its cursor in the same transaction as what it derives from the events, so a restart
-- resumes exactly after the last event it counted.
CREATE TABLE feed_cursors (
    feed           text PRIMARY KEY,
    last_sequence  bigint NOT NULL DEFAULT 0,
    update_time    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feed_cursors_feed_length CHECK (length(feed) BETWEEN 1 AND 128),
    CONSTRAINT feed_cursors_sequence_non_negative CHECK (last_sequence >= 0)
);
