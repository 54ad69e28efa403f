-- Every key of the per-product tables (inventory, the log, reservations) includes product_id,
-- so they can be distributed by product on Citus, where a unique key must include the
-- distribution column. The same keys serve a single server, with as many indexes as before.
--
-- What the keys no longer say across products: ids (inventory_id, txn_id, reservation_id)
-- are random or time-ordered UUIDs drawn by the service, and sequence numbers come from one
-- sequence, so neither repeats; an order line is one product, so its reservations per
-- warehouse stay unique with the product.

ALTER TABLE inventory DROP CONSTRAINT inventory_inventory_id_key;
ALTER TABLE inventory
    ADD CONSTRAINT inventory_inventory_id_key UNIQUE (product_id, inventory_id);

-- The key replaces the index of a row's history; an index on the sequence alone replaces the
-- old key for the feed and ListTransactions, which read across products in sequence order.
ALTER TABLE inventory_transactions DROP CONSTRAINT inventory_transactions_pkey;
DROP INDEX inventory_transactions_row_idx;
ALTER TABLE inventory_transactions
    ADD CONSTRAINT inventory_transactions_pkey PRIMARY KEY (product_id, warehouse_id, sequence);
CREATE INDEX inventory_transactions_sequence_idx ON inventory_transactions (sequence);
ALTER TABLE inventory_transactions DROP CONSTRAINT inventory_transactions_txn_id_key;
ALTER TABLE inventory_transactions
    ADD CONSTRAINT inventory_transactions_txn_id_key UNIQUE (product_id, txn_id);

-- The order line's key leads with the order, so release and ship still find an order's
-- reservations by it.
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_pkey PRIMARY KEY (product_id, reservation_id);
ALTER TABLE reservations DROP CONSTRAINT reservations_order_line_key;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_order_line_key
        UNIQUE (order_id, order_line_id, warehouse_id, product_id);
