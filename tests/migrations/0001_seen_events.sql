-- What the test consumer derives from stock's feed: every event it counted, duplicates
-- included (no key), so a double count shows.
CREATE TABLE seen_events (
    sequence  bigint NOT NULL,
    txn_id    text NOT NULL
);
