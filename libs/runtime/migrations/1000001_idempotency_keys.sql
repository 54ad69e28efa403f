-- Platform migration, applied in every service's own schema after the service's migrations.
-- AIP-155: the first response to each request_id, stored in the same transaction as the
-- effects and replayed on retries. IF NOT EXISTS: the stock schema created the same table in
-- its first migration, before this was shared.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    request_id           text PRIMARY KEY,
    method               text NOT NULL,
    request_fingerprint  bytea NOT NULL,
    response             bytea NOT NULL DEFAULT '',
    create_time          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_request_id_length CHECK (length(request_id) BETWEEN 1 AND 128)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_create_time_idx ON idempotency_keys (create_time);
