-- The stock schema: catalog, inventory rows, reservations, the append-only transaction log,
-- and idempotency records. Invariants live here as constraints, not only in code.

CREATE TABLE products (
    product_id        uuid PRIMARY KEY,
    sku               text NOT NULL,
    name              text NOT NULL,
    category          text NOT NULL DEFAULT '',
    unit_of_measure   text NOT NULL,
    reorder_point     bigint NOT NULL DEFAULT 0,
    reorder_quantity  bigint NOT NULL DEFAULT 0,
    lead_time_days    integer NOT NULL DEFAULT 0,
    unit_cost_micros  bigint NOT NULL DEFAULT 0,
    create_time       timestamptz NOT NULL DEFAULT now(),
    update_time       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_sku_length CHECK (length(sku) BETWEEN 1 AND 128),
    CONSTRAINT products_name_length CHECK (length(name) BETWEEN 1 AND 512),
    CONSTRAINT products_category_length CHECK (length(category) <= 512),
    CONSTRAINT products_unit_of_measure_length CHECK (length(unit_of_measure) BETWEEN 1 AND 128),
    CONSTRAINT products_reorder_point_non_negative CHECK (reorder_point >= 0),
    CONSTRAINT products_reorder_quantity_non_negative CHECK (reorder_quantity >= 0),
    CONSTRAINT products_lead_time_non_negative CHECK (lead_time_days >= 0),
    CONSTRAINT products_unit_cost_non_negative CHECK (unit_cost_micros >= 0)
);
CREATE INDEX products_category_idx ON products (category, product_id);

CREATE TABLE warehouses (
    warehouse_id    uuid PRIMARY KEY,
    name            text NOT NULL,
    address         text NOT NULL DEFAULT '',
    warehouse_type  text NOT NULL,
    latitude        double precision NOT NULL,
    longitude       double precision NOT NULL,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT warehouses_name_length CHECK (length(name) BETWEEN 1 AND 512),
    CONSTRAINT warehouses_address_length CHECK (length(address) <= 512),
    CONSTRAINT warehouses_type_known CHECK (warehouse_type IN ('FULFILLMENT', 'DISTRIBUTION', 'RETAIL')),
    CONSTRAINT warehouses_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT warehouses_longitude_range CHECK (longitude BETWEEN -180 AND 180)
);

-- One row per (product, warehouse): the projection of the log. Keyed by product first so
-- the table can be distributed by product_id.
CREATE TABLE inventory (
    product_id          uuid NOT NULL REFERENCES products (product_id),
    warehouse_id        uuid NOT NULL REFERENCES warehouses (warehouse_id),
    inventory_id        uuid NOT NULL DEFAULT gen_random_uuid(),
    quantity_on_hand    bigint NOT NULL DEFAULT 0,
    quantity_reserved   bigint NOT NULL DEFAULT 0,
    quantity_available  bigint GENERATED ALWAYS AS (quantity_on_hand - quantity_reserved) STORED,
    last_updated        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, warehouse_id),
    CONSTRAINT inventory_inventory_id_key UNIQUE (inventory_id),
    CONSTRAINT inventory_on_hand_non_negative CHECK (quantity_on_hand >= 0),
    CONSTRAINT inventory_reserved_non_negative CHECK (quantity_reserved >= 0),
    CONSTRAINT inventory_reserved_within_on_hand CHECK (quantity_reserved <= quantity_on_hand)
);
CREATE INDEX inventory_warehouse_idx ON inventory (warehouse_id, product_id);

-- Sequence numbers for the log. Taking one first forces the transaction to have an xid, so a
-- feed reader that sees a gap knows the writer holding it is among the in-progress
-- transactions of its snapshot (see the feed in the service).
CREATE SEQUENCE inventory_transactions_sequence AS bigint;
CREATE FUNCTION next_transaction_sequence() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN pg_current_xact_id() IS NOT NULL
                      THEN nextval('inventory_transactions_sequence') END $$;

CREATE TABLE inventory_transactions (
    sequence        bigint PRIMARY KEY DEFAULT next_transaction_sequence(),
    txn_id          uuid NOT NULL,
    product_id      uuid NOT NULL,
    warehouse_id    uuid NOT NULL,
    txn_type        text NOT NULL,
    quantity        bigint NOT NULL,
    on_hand_delta   bigint NOT NULL,
    reserved_delta  bigint NOT NULL,
    on_hand_after   bigint NOT NULL,
    reserved_after  bigint NOT NULL,
    reference_id    text NOT NULL DEFAULT '',
    reason          text NOT NULL DEFAULT '',
    actor           text NOT NULL DEFAULT '',
    request_id      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_transactions_txn_id_key UNIQUE (txn_id),
    CONSTRAINT inventory_transactions_row_fk FOREIGN KEY (product_id, warehouse_id)
        REFERENCES inventory (product_id, warehouse_id),
    CONSTRAINT inventory_transactions_quantity_positive CHECK (quantity > 0),
    CONSTRAINT inventory_transactions_after_valid
        CHECK (on_hand_after >= 0 AND reserved_after >= 0 AND reserved_after <= on_hand_after),
    CONSTRAINT inventory_transactions_delta_matches_type CHECK (
        CASE txn_type
            WHEN 'RECEIVE'  THEN on_hand_delta = quantity  AND reserved_delta = 0
            WHEN 'RESERVE'  THEN on_hand_delta = 0         AND reserved_delta = quantity
            WHEN 'RELEASE'  THEN on_hand_delta = 0         AND reserved_delta = -quantity
            WHEN 'SHIP'     THEN on_hand_delta = -quantity AND reserved_delta = -quantity
            WHEN 'ADJUST'   THEN abs(on_hand_delta) = quantity AND reserved_delta = 0
            WHEN 'TRANSFER' THEN abs(on_hand_delta) = quantity AND reserved_delta = 0
            ELSE false
        END),
    CONSTRAINT inventory_transactions_reference_length CHECK (length(reference_id) <= 128),
    CONSTRAINT inventory_transactions_reason_length CHECK (length(reason) <= 512),
    CONSTRAINT inventory_transactions_actor_length CHECK (length(actor) <= 128)
);
CREATE INDEX inventory_transactions_row_idx
    ON inventory_transactions (product_id, warehouse_id, sequence);
CREATE INDEX inventory_transactions_warehouse_idx
    ON inventory_transactions (warehouse_id, sequence);
CREATE INDEX inventory_transactions_reference_idx
    ON inventory_transactions (reference_id, sequence) WHERE reference_id <> '';
CREATE INDEX inventory_transactions_created_at_idx
    ON inventory_transactions USING brin (created_at);

CREATE FUNCTION refuse_log_rewrite() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        RAISE EXCEPTION 'inventory_transactions is append-only: % refused', TG_OP;
    END $$;
CREATE TRIGGER inventory_transactions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON inventory_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_rewrite();

CREATE TABLE reservations (
    reservation_id      uuid PRIMARY KEY,
    order_id            text NOT NULL,
    order_line_id       text NOT NULL,
    product_id          uuid NOT NULL,
    warehouse_id        uuid NOT NULL,
    status              text NOT NULL,
    quantity_requested  bigint NOT NULL,
    quantity_held       bigint NOT NULL,
    quantity_shipped    bigint NOT NULL DEFAULT 0,
    quantity_released   bigint NOT NULL DEFAULT 0,
    expire_time         timestamptz,
    create_time         timestamptz NOT NULL DEFAULT now(),
    update_time         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reservations_order_line_key UNIQUE (order_id, order_line_id, warehouse_id),
    CONSTRAINT reservations_row_fk FOREIGN KEY (product_id, warehouse_id)
        REFERENCES inventory (product_id, warehouse_id),
    CONSTRAINT reservations_order_id_length CHECK (length(order_id) BETWEEN 1 AND 128),
    CONSTRAINT reservations_order_line_id_length CHECK (length(order_line_id) BETWEEN 1 AND 128),
    CONSTRAINT reservations_status_known
        CHECK (status IN ('ACTIVE', 'SHIPPED', 'RELEASED', 'EXPIRED')),
    CONSTRAINT reservations_quantities_valid CHECK (
        quantity_requested > 0 AND quantity_held >= 0
        AND quantity_shipped >= 0 AND quantity_released >= 0
        AND quantity_held + quantity_shipped + quantity_released = quantity_requested),
    CONSTRAINT reservations_active_iff_held CHECK ((status = 'ACTIVE') = (quantity_held > 0))
);
CREATE INDEX reservations_row_idx ON reservations (product_id, warehouse_id) WHERE status = 'ACTIVE';
CREATE INDEX reservations_expiry_idx ON reservations (expire_time)
    WHERE status = 'ACTIVE' AND expire_time IS NOT NULL;

-- AIP-155: the first response to each request_id, replayed on retries.
CREATE TABLE idempotency_keys (
    request_id           text PRIMARY KEY,
    method               text NOT NULL,
    request_fingerprint  bytea NOT NULL,
    response             bytea NOT NULL DEFAULT '',
    create_time          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_request_id_length CHECK (length(request_id) BETWEEN 1 AND 128)
);
CREATE INDEX idempotency_keys_create_time_idx ON idempotency_keys (create_time);
