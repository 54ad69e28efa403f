-- An inventory row, once there, stays: the log and the reservations name it, and the
-- ledger replays it. Refusing its removal here is what lets the two foreign keys below go.
--
-- They cost a trigger query for every log row and reservation written (two per reserved
-- line, about a tenth of a coalesced batch's execution and more for small batches), and
-- what they guarded is kept without them:
-- - a row cannot be removed (this trigger), so a row a log row or reservation names stays;
-- - every statement path that writes a log row or a reservation first locks or updates its
--   inventory row in the same transaction and writes nothing if the row is missing (the
--   coalesced batch asserts it updated every row it names, or fails whole).
CREATE FUNCTION refuse_inventory_removal() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN
        RAISE EXCEPTION 'inventory rows are never removed: % refused', TG_OP;
    END $$;
-- Where the table is already distributed on Citus, a trigger on it needs this (see the Citus
-- layout: the trigger only raises an error and reads no other table). Elsewhere a no-op.
SET LOCAL citus.enable_unsafe_triggers = on;
CREATE TRIGGER inventory_rows_stay
    BEFORE DELETE OR TRUNCATE ON inventory
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_inventory_removal();

ALTER TABLE inventory_transactions DROP CONSTRAINT inventory_transactions_row_fk;
ALTER TABLE reservations DROP CONSTRAINT reservations_row_fk;
