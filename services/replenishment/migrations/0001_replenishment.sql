-- The replenishment schema: suppliers, what they offer, purchase orders from draft to receipt,
-- their receipts, and the outbox that delivers approved orders. Invariants live here as
-- constraints: one open PO per (product, warehouse), statuses and quantities that agree,
-- X12 control numbers that are never reused.

CREATE TABLE suppliers (
    supplier_id             uuid PRIMARY KEY,
    name                    text NOT NULL,
    channel                 text NOT NULL,
    edi_qualifier           text NOT NULL DEFAULT '',
    edi_id                  text NOT NULL DEFAULT '',
    api_endpoint            text NOT NULL DEFAULT '',
    default_lead_time_days  integer NOT NULL,
    create_time             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT suppliers_name_length CHECK (length(name) BETWEEN 1 AND 256),
    CONSTRAINT suppliers_channel_known CHECK (channel IN ('EDI', 'API')),
    -- ISA07/ISA08: a 2-character qualifier and an id of at most 15.
    CONSTRAINT suppliers_edi_partner CHECK (
        channel <> 'EDI' OR (length(edi_qualifier) = 2 AND length(edi_id) BETWEEN 1 AND 15)),
    CONSTRAINT suppliers_api_endpoint CHECK (
        channel <> 'API' OR (api_endpoint ~ '^https?://' AND length(api_endpoint) <= 2048)),
    CONSTRAINT suppliers_lead_time_range CHECK (default_lead_time_days BETWEEN 0 AND 365)
);

CREATE TABLE supplier_offers (
    supplier_id             uuid NOT NULL REFERENCES suppliers (supplier_id),
    product_id              uuid NOT NULL,
    unit_cost_micros        bigint NOT NULL,
    minimum_order_quantity  bigint NOT NULL,
    pack_multiple           bigint NOT NULL,
    -- 0: the supplier's default.
    lead_time_days          integer NOT NULL,
    supplier_part_number    text NOT NULL DEFAULT '',
    update_time             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (supplier_id, product_id),
    CONSTRAINT supplier_offers_unit_cost_range CHECK (unit_cost_micros BETWEEN 0 AND 1000000000000),
    CONSTRAINT supplier_offers_minimum_range
        CHECK (minimum_order_quantity BETWEEN 1 AND 1000000000000),
    CONSTRAINT supplier_offers_pack_range CHECK (pack_multiple BETWEEN 1 AND 1000000000000),
    CONSTRAINT supplier_offers_lead_time_range CHECK (lead_time_days BETWEEN 0 AND 365),
    CONSTRAINT supplier_offers_part_number_length CHECK (length(supplier_part_number) <= 48)
);
-- The best offer for a product: lowest cost first.
CREATE INDEX supplier_offers_product_idx
    ON supplier_offers (product_id, unit_cost_micros, lead_time_days, supplier_id);

CREATE SEQUENCE purchase_order_numbers AS bigint MINVALUE 1;
-- ISA13 is 9 digits: the sequence ends rather than wrapping to a number already used.
CREATE SEQUENCE x12_control_numbers AS bigint MINVALUE 1 MAXVALUE 999999999 NO CYCLE;

CREATE TABLE purchase_orders (
    po_id                 uuid PRIMARY KEY,
    po_number             bigint NOT NULL DEFAULT nextval('purchase_order_numbers'),
    supplier_id           uuid NOT NULL REFERENCES suppliers (supplier_id),
    product_id            uuid NOT NULL,
    warehouse_id          uuid NOT NULL,
    ordered_qty           bigint NOT NULL,
    received_qty          bigint NOT NULL DEFAULT 0,
    status                text NOT NULL,
    unit_cost_micros      bigint NOT NULL,
    lead_time_days        integer NOT NULL,
    expected_delivery     timestamptz NOT NULL,
    -- The supplier's part number as the offer said when the PO was drafted (850 VP).
    supplier_part_number  text NOT NULL DEFAULT '',
    created_by            text NOT NULL,
    create_time           timestamptz NOT NULL DEFAULT now(),
    decided_by            text NOT NULL DEFAULT '',
    decide_time           timestamptz,
    decision_note         text NOT NULL DEFAULT '',
    -- Cancellation keeps its own record: a PO approved and then cancelled shows both.
    cancelled_by          text NOT NULL DEFAULT '',
    cancel_time           timestamptz,
    cancel_reason         text NOT NULL DEFAULT '',
    control_number        bigint,
    send_time             timestamptz,
    update_time           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT purchase_orders_po_number_key UNIQUE (po_number),
    CONSTRAINT purchase_orders_control_number_key UNIQUE (control_number),
    CONSTRAINT purchase_orders_status_known CHECK (status IN
        ('DRAFT', 'PENDING_APPROVAL', 'APPROVED', 'SENT', 'PARTIAL', 'COMPLETE', 'REJECTED',
         'CANCELLED')),
    CONSTRAINT purchase_orders_ordered_range CHECK (ordered_qty BETWEEN 1 AND 1000000000000),
    CONSTRAINT purchase_orders_received_non_negative CHECK (received_qty >= 0),
    CONSTRAINT purchase_orders_unit_cost_range
        CHECK (unit_cost_micros BETWEEN 0 AND 1000000000000),
    CONSTRAINT purchase_orders_lead_time_range CHECK (lead_time_days BETWEEN 0 AND 365),
    -- Goods arrive only against a sent PO; PARTIAL is some, COMPLETE at least all.
    CONSTRAINT purchase_orders_received_matches_status CHECK (
        CASE status
            WHEN 'PARTIAL'  THEN received_qty > 0 AND received_qty < ordered_qty
            WHEN 'COMPLETE' THEN received_qty >= ordered_qty
            ELSE received_qty = 0
        END),
    CONSTRAINT purchase_orders_control_number_range
        CHECK (control_number BETWEEN 1 AND 999999999),
    -- Approved (and anything after it) has its control number; sent has its send time.
    CONSTRAINT purchase_orders_approved_has_control_number CHECK (
        status NOT IN ('APPROVED', 'SENT', 'PARTIAL', 'COMPLETE') OR control_number IS NOT NULL),
    CONSTRAINT purchase_orders_sent_has_send_time CHECK (
        (status IN ('SENT', 'PARTIAL', 'COMPLETE')) = (send_time IS NOT NULL)),
    CONSTRAINT purchase_orders_decided CHECK (
        status IN ('DRAFT', 'PENDING_APPROVAL', 'CANCELLED') OR decide_time IS NOT NULL),
    CONSTRAINT purchase_orders_cancelled CHECK ((status = 'CANCELLED') = (cancel_time IS NOT NULL)),
    CONSTRAINT purchase_orders_text_lengths CHECK (
        length(created_by) BETWEEN 1 AND 128 AND length(decided_by) <= 128
        AND length(decision_note) <= 512 AND length(supplier_part_number) <= 48
        AND length(cancelled_by) <= 128 AND length(cancel_reason) <= 512)
);
-- At most one open PO per (product, warehouse), whatever drafts it and however many replicas.
CREATE UNIQUE INDEX purchase_orders_one_open
    ON purchase_orders (product_id, warehouse_id)
    WHERE status IN ('DRAFT', 'PENDING_APPROVAL', 'APPROVED', 'SENT', 'PARTIAL');
CREATE INDEX purchase_orders_status_idx ON purchase_orders (status, po_number);
CREATE INDEX purchase_orders_supplier_idx ON purchase_orders (supplier_id, po_number);
CREATE INDEX purchase_orders_product_idx ON purchase_orders (product_id, po_number);
CREATE INDEX purchase_orders_warehouse_idx ON purchase_orders (warehouse_id, po_number);

CREATE TABLE po_receipts (
    receipt_id            text PRIMARY KEY,
    po_id                 uuid NOT NULL REFERENCES purchase_orders (po_id),
    quantity              bigint NOT NULL,
    lot                   text NOT NULL DEFAULT '',
    stock_transaction_id  uuid NOT NULL,
    actor                 text NOT NULL DEFAULT '',
    create_time           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT po_receipts_quantity_positive CHECK (quantity > 0),
    CONSTRAINT po_receipts_text_lengths CHECK (
        length(receipt_id) BETWEEN 1 AND 128 AND length(lot) <= 128 AND length(actor) <= 128)
);
CREATE INDEX po_receipts_po_idx ON po_receipts (po_id, create_time);

-- Transactional outbox: an approved PO is queued in the transaction that approves it and
-- leaves when its supplier has it (the PO becomes SENT in the same transaction).
CREATE TABLE po_outbox (
    po_id              uuid PRIMARY KEY REFERENCES purchase_orders (po_id),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_time  timestamptz NOT NULL DEFAULT now(),
    last_error         text NOT NULL DEFAULT '',
    create_time        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX po_outbox_due_idx ON po_outbox (next_attempt_time);
