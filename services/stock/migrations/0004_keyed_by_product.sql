-- Every key of the per-product tables (inventory, the log, reservations) starts with
-- product_id, so they can be distributed by product on Citus, where a unique key must include
-- the distribution column. The same keys serve a single server.
--
-- What the keys no longer say across products: ids (inventory_id, txn_id, reservation_id)
-- are random or time-ordered UUIDs drawn by the service, and sequence numbers come from one
-- sequence, so neither repeats; an order line is one product, so its reservations per
-- warehouse stay unique within that product.

ALTER TABLE inventory DROP CONSTRAINT inventory_inventory_id_key;
ALTER TABLE inventory
    ADD CONSTRAINT inventory_inventory_id_key UNIQUE (product_id, inventory_id);

ALTER TABLE inventory_transactions DROP CONSTRAINT inventory_transactions_pkey;
ALTER TABLE inventory_transactions
    ADD CONSTRAINT inventory_transactions_pkey PRIMARY KEY (product_id, sequence);
ALTER TABLE inventory_transactions DROP CONSTRAINT inventory_transactions_txn_id_key;
ALTER TABLE inventory_transactions
    ADD CONSTRAINT inventory_transactions_txn_id_key UNIQUE (product_id, txn_id);
-- The feed and ListTransactions read across products in sequence order.
CREATE INDEX inventory_transactions_sequence_idx ON inventory_transactions (sequence);

ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_pkey PRIMARY KEY (product_id, reservation_id);
ALTER TABLE reservations DROP CONSTRAINT reservations_order_line_key;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_order_line_key
        UNIQUE (product_id, order_id, order_line_id, warehouse_id);
-- Release and ship find an order's reservations by order, across products.
CREATE INDEX reservations_order_idx ON reservations (order_id, order_line_id, warehouse_id);
