-- Platform migration: secrets of this deployment, made once by the database and shared by
-- every replica. page_token signs page tokens (HMAC-SHA256) so clients cannot forge them.
-- gen_random_uuid() draws from the server's strong random source; two give 244 random bits.
CREATE TABLE service_keys (
    name         text PRIMARY KEY,
    secret       bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_keys_secret_length CHECK (length(secret) >= 32)
);
INSERT INTO service_keys (name, secret)
VALUES ('page_token', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
