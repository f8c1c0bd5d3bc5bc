-- The workflow run that created each order. An order id can be started again once
-- Temporal has forgotten the first run (after the namespace's retention); that new
-- run must not charge, refund, ship or close the old order. Every write the workers
-- make checks this column (orderflow/store.py, `_claim`).
--
-- Rows written before this migration have no run: they stay writable by any run,
-- as before, and are protected only by the API refusing ids the database knows.
ALTER TABLE orders ADD COLUMN run_id TEXT;
