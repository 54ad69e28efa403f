-- The allocation schema: warehouse operating profiles and the allocation of each order line.
-- Warehouse identity and coordinates belong to stock; only how a warehouse operates is here.

CREATE TABLE warehouse_profiles (
    warehouse_id    uuid PRIMARY KEY,
    -- Open order lines the warehouse can hold at once; NULL: no limit.
    capacity_lines  bigint,
    -- Order lines allocated to it and not yet shipped or cancelled; kept only while a
    -- capacity is set (recounted from allocation_lines when the profile changes).
    open_lines      bigint NOT NULL DEFAULT 0,
    paused          boolean NOT NULL DEFAULT false,
    update_time     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT warehouse_profiles_capacity_non_negative
        CHECK (capacity_lines IS NULL OR capacity_lines >= 0),
    CONSTRAINT warehouse_profiles_open_lines_non_negative CHECK (open_lines >= 0)
);

CREATE TABLE allocations (
    order_id               text PRIMARY KEY,
    status                 text NOT NULL,
    destination_latitude   double precision NOT NULL,
    destination_longitude  double precision NOT NULL,
    postal_code            text NOT NULL DEFAULT '',
    country                text NOT NULL DEFAULT '',
    -- The stock reservation request that holds this allocation's stock.
    reservation_request_id text NOT NULL,
    create_time            timestamptz NOT NULL DEFAULT now(),
    update_time            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT allocations_order_id_length CHECK (length(order_id) BETWEEN 1 AND 128),
    CONSTRAINT allocations_status_known
        CHECK (status IN ('ALLOCATED', 'PARTIALLY_SHIPPED', 'SHIPPED', 'CANCELLED')),
    CONSTRAINT allocations_latitude_range CHECK (destination_latitude BETWEEN -90 AND 90),
    CONSTRAINT allocations_longitude_range CHECK (destination_longitude BETWEEN -180 AND 180),
    CONSTRAINT allocations_postal_code_length CHECK (length(postal_code) <= 32),
    CONSTRAINT allocations_country_length CHECK (length(country) <= 64)
);
CREATE INDEX allocations_status_idx ON allocations (status, order_id);

-- order_line_id -> {warehouse_id, quantity}: one row per warehouse a line ships from.
CREATE TABLE allocation_lines (
    order_id          text NOT NULL REFERENCES allocations (order_id),
    order_line_id     text NOT NULL,
    warehouse_id      uuid NOT NULL,
    product_id        uuid NOT NULL,
    -- What the order asked for on this line (the same on every row of the line).
    line_quantity     bigint NOT NULL,
    quantity          bigint NOT NULL,
    quantity_shipped  bigint NOT NULL DEFAULT 0,
    distance_km       double precision,
    -- Why this warehouse, and why not the closer ones: the planner's explanation.
    reason            text NOT NULL DEFAULT '',
    passed_over       bytea NOT NULL DEFAULT '',
    PRIMARY KEY (order_id, order_line_id, warehouse_id),
    CONSTRAINT allocation_lines_line_id_length CHECK (length(order_line_id) BETWEEN 1 AND 128),
    CONSTRAINT allocation_lines_quantity_positive CHECK (quantity > 0),
    CONSTRAINT allocation_lines_within_line CHECK (quantity <= line_quantity),
    CONSTRAINT allocation_lines_shipped_within
        CHECK (quantity_shipped >= 0 AND quantity_shipped <= quantity)
);
CREATE INDEX allocation_lines_warehouse_idx ON allocation_lines (warehouse_id, order_id);

-- What an allocation with allow_partial could not serve.
CREATE TABLE allocation_shortfalls (
    order_id       text NOT NULL REFERENCES allocations (order_id),
    order_line_id  text NOT NULL,
    requested      bigint NOT NULL,
    allocated      bigint NOT NULL,
    PRIMARY KEY (order_id, order_line_id),
    CONSTRAINT allocation_shortfalls_quantities
        CHECK (requested > 0 AND allocated >= 0 AND allocated < requested)
);
