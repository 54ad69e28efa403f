-- Coalesced reservation batches are decided in the service against the rows as they were
-- last seen, then written by one statement that checks the rows have not moved. This raises
-- a serialization failure (retryable, nothing written) when they have.
CREATE FUNCTION assert_batch_matches(matches boolean) RETURNS boolean
    LANGUAGE plpgsql
    AS $$ BEGIN
        IF NOT matches THEN
            RAISE EXCEPTION 'reservation batch no longer matches the rows it was decided on'
                USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN true;
    END $$;
