-- Platform migration: a feed consumer's position is the feed's cursor, an opaque token (the
-- feed is not in sequence order). Empty for a consumer that has stored only a sequence from
-- the feed before cursors: it resumes after that sequence, and stores a cursor from then on.
ALTER TABLE feed_cursors ADD COLUMN position text NOT NULL DEFAULT '';
ALTER TABLE feed_cursors
    ADD CONSTRAINT feed_cursors_position_length CHECK (length(position) <= 128);
