-- What the test handler derives from the feed: one row per event it counted.
CREATE TABLE counted (
    sequence  bigint NOT NULL,
    quantity  bigint NOT NULL
);
