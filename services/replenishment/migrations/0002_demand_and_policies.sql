-- What the reorder scan decides from: stock's available per (product, warehouse) and daily
-- demand (both derived from stock's transaction feed, the cursor moving in the same
-- transaction), and the reorder policy of each pair.

-- Available per (product, warehouse), as of the last transaction of the pair the feed applied
-- (NULL: a policy was set before the feed saw the pair), beside a copy of the pair's reorder
-- point (NULL: no policy yet) written by every policy change, so the scan finds the pairs
-- below their point through one index instead of joining every pair with its policy. Both
-- writers upsert the row, so whichever comes second waits for the first on the key and
-- neither loses the other's column.
CREATE TABLE stock_positions (
    product_id          uuid NOT NULL,
    warehouse_id        uuid NOT NULL,
    quantity_available  bigint,
    last_sequence       bigint NOT NULL,
    reorder_point       bigint,
    PRIMARY KEY (product_id, warehouse_id)
);
-- Not partial: PostgreSQL keeps statistics of an index expression only for a full index, and
-- without them it cannot tell that few pairs are below their point.
CREATE INDEX stock_positions_below_point_idx
    ON stock_positions ((quantity_available - reorder_point));
CREATE INDEX stock_positions_without_policy_idx
    ON stock_positions (product_id, warehouse_id) WHERE reorder_point IS NULL;

-- Units shipped per (product, warehouse) and day (UTC).
CREATE TABLE demand_daily (
    product_id    uuid NOT NULL,
    warehouse_id  uuid NOT NULL,
    day           date NOT NULL,
    quantity      bigint NOT NULL,
    PRIMARY KEY (product_id, warehouse_id, day),
    CONSTRAINT demand_daily_quantity_non_negative CHECK (quantity >= 0)
);

CREATE TABLE reorder_policies (
    product_id              uuid NOT NULL,
    warehouse_id            uuid NOT NULL,
    -- FIXED: a purchasing team's numbers; COMPUTED: from demand, lead time and costs.
    source                  text NOT NULL,
    reorder_point           bigint NOT NULL,
    reorder_quantity        bigint NOT NULL,
    service_level           double precision NOT NULL,
    -- The numbers behind a computed policy, as of computed_time.
    method                  text NOT NULL DEFAULT '',
    average_daily_demand    double precision NOT NULL DEFAULT 0,
    demand_std_dev          double precision NOT NULL DEFAULT 0,
    history_days            integer NOT NULL DEFAULT 0,
    lead_time_days          double precision NOT NULL DEFAULT 0,
    lead_time_std_dev       double precision NOT NULL DEFAULT 0,
    safety_stock            bigint NOT NULL DEFAULT 0,
    eoq                     double precision NOT NULL DEFAULT 0,
    textbook_reorder_point  bigint NOT NULL DEFAULT 0,
    computed_time           timestamptz,
    updated_by              text NOT NULL DEFAULT '',
    update_time             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, warehouse_id),
    CONSTRAINT reorder_policies_source_known CHECK (source IN ('FIXED', 'COMPUTED')),
    CONSTRAINT reorder_policies_method_known
        CHECK (method IN ('', 'BOOTSTRAP', 'PRODUCT_DEFAULTS')),
    CONSTRAINT reorder_policies_point_range CHECK (reorder_point BETWEEN 0 AND 1000000000000),
    CONSTRAINT reorder_policies_quantity_range
        CHECK (reorder_quantity BETWEEN 1 AND 1000000000000),
    CONSTRAINT reorder_policies_service_level_range CHECK (service_level > 0 AND service_level < 1),
    CONSTRAINT reorder_policies_updated_by_length CHECK (length(updated_by) <= 128)
);

