-- Count tasks, their lines (one per product, also the adjustment), every submission, and
-- what stock's feed tells us: positions, daily movement and the cursor (in the shared
-- feed_cursors table). The database refuses impossible states, not only the code.

CREATE TABLE count_tasks (
    task_id uuid PRIMARY KEY,
    warehouse_id uuid NOT NULL,
    location text NOT NULL DEFAULT '' CHECK (length(location) <= 128),
    blind boolean NOT NULL,
    status text NOT NULL CHECK (status IN ('OPEN', 'COMPLETED', 'CANCELLED')),
    created_by text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 128),
    create_time timestamptz NOT NULL DEFAULT now(),
    completed_by text CHECK (length(completed_by) <= 128),
    complete_time timestamptz,
    cancelled_by text CHECK (length(cancelled_by) <= 128),
    cancel_reason text CHECK (length(cancel_reason) <= 512),
    cancel_time timestamptz,
    CONSTRAINT count_tasks_completed CHECK ((status = 'COMPLETED') = (complete_time IS NOT NULL)),
    CONSTRAINT count_tasks_cancelled CHECK ((status = 'CANCELLED') = (cancel_time IS NOT NULL))
);
CREATE INDEX count_tasks_warehouse_idx ON count_tasks (warehouse_id, task_id);

CREATE TABLE count_lines (
    line_id uuid PRIMARY KEY,
    task_id uuid NOT NULL REFERENCES count_tasks,
    product_id uuid NOT NULL,
    warehouse_id uuid NOT NULL,
    location text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('UNCOUNTED', 'COUNTED', 'RECOUNT_REQUIRED', 'MATCHED',
        'PENDING_APPROVAL', 'APPROVED', 'APPLIED', 'REJECTED', 'BLOCKED')),
    expected_quantity bigint NOT NULL CHECK (expected_quantity >= 0),
    counted_quantity bigint CHECK (counted_quantity >= 0),
    -- The first and the last submission since the last recount: the shelf was counted
    -- between them.
    first_count_time timestamptz,
    count_time timestamptz,
    counted_by text,
    -- On hand at count_time, and on hand when evaluated (the ADJUST's expected_on_hand).
    system_quantity bigint CHECK (system_quantity >= 0),
    on_hand_at_evaluation bigint CHECK (on_hand_at_evaluation >= 0),
    variance bigint,
    variance_value_micros bigint,
    variance_percent double precision,
    unit_cost_micros bigint NOT NULL DEFAULT 0 CHECK (unit_cost_micros >= 0),
    abc_class text CHECK (abc_class IN ('A', 'B', 'C')),
    exceeded text[] NOT NULL DEFAULT '{}',
    decided_by text CHECK (length(decided_by) <= 128),
    decide_time timestamptz,
    decision_comment text CHECK (length(decision_comment) <= 512),
    stock_txn_id uuid,
    stock_sequence bigint,
    apply_time timestamptz,
    blocked_reason text,
    UNIQUE (task_id, product_id),
    CONSTRAINT count_lines_counted CHECK (
        (status = 'UNCOUNTED') = (counted_quantity IS NULL)
        AND (counted_quantity IS NULL) = (count_time IS NULL)
        AND first_count_time <= count_time),
    CONSTRAINT count_lines_evaluated CHECK (
        status IN ('UNCOUNTED', 'COUNTED', 'RECOUNT_REQUIRED')
        OR (system_quantity IS NOT NULL AND variance = counted_quantity - system_quantity)),
    CONSTRAINT count_lines_matched CHECK ((status = 'MATCHED') <= (variance = 0)),
    CONSTRAINT count_lines_adjusting CHECK (
        status NOT IN ('PENDING_APPROVAL', 'APPROVED', 'APPLIED', 'REJECTED', 'BLOCKED')
        OR variance <> 0),
    CONSTRAINT count_lines_decided CHECK (
        status NOT IN ('APPROVED', 'APPLIED', 'REJECTED') OR decided_by IS NOT NULL),
    CONSTRAINT count_lines_applied CHECK ((status = 'APPLIED') = (stock_txn_id IS NOT NULL))
);
CREATE INDEX count_lines_status_idx ON count_lines (status, line_id)
    WHERE status IN ('PENDING_APPROVAL', 'APPROVED', 'BLOCKED');
CREATE INDEX count_lines_pair_idx ON count_lines (product_id, warehouse_id, count_time);
CREATE INDEX count_lines_evaluated_idx ON count_lines (warehouse_id, count_time)
    WHERE system_quantity IS NOT NULL;

-- Who counted what and when; a recount starts the sum again.
CREATE TABLE count_submissions (
    line_id uuid NOT NULL REFERENCES count_lines,
    submission int NOT NULL,
    quantity bigint NOT NULL CHECK (quantity >= 0),
    recount boolean NOT NULL,
    count_time timestamptz NOT NULL,
    counted_by text NOT NULL CHECK (length(counted_by) BETWEEN 1 AND 128),
    request_id text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (line_id, submission)
);

-- From stock's feed: on hand per pair (what is stocked where) ...
CREATE TABLE stock_positions (
    product_id uuid NOT NULL,
    warehouse_id uuid NOT NULL,
    on_hand bigint NOT NULL CHECK (on_hand >= 0),
    sequence bigint NOT NULL,
    PRIMARY KEY (product_id, warehouse_id)
);

-- ... and what moved each day: shipped units (ABC, shrinkage) and adjustments.
CREATE TABLE movement_daily (
    product_id uuid NOT NULL,
    warehouse_id uuid NOT NULL,
    day date NOT NULL,
    shipped bigint NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    adjusted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, warehouse_id, day)
);
CREATE INDEX movement_daily_day_idx ON movement_daily (day);

-- Unit costs from stock's catalog, refreshed whenever a count or report needs them.
CREATE TABLE product_costs (
    product_id uuid PRIMARY KEY,
    unit_cost_micros bigint NOT NULL CHECK (unit_cost_micros >= 0),
    refresh_time timestamptz NOT NULL DEFAULT now()
);
