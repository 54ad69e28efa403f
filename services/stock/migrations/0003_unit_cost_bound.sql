-- A unit cost is at most a million currency units (10^12 micros), as the API validates.
-- NOT VALID: rows written before the bound existed are left as they are (summaries sum in
-- numeric and saturate, so they read fine); every new or changed row is checked.
ALTER TABLE products
    ADD CONSTRAINT products_unit_cost_bounded CHECK (unit_cost_micros <= 1000000000000) NOT VALID;
