-- What the order protocol needs of the database (docs/protocol.md).

-- Address changes are stored in the order the workflow accepted them: each carries its
-- sequence number, and a change never replaces a later one (orderflow/store.py,
-- `update_address`), whichever commits first.
ALTER TABLE orders ADD COLUMN address_seq INT NOT NULL DEFAULT 0;

-- An order whose workflow Temporal ended without its final write (terminated by an
-- operator, timed out, deleted): closed by the reconciler (workers/reconciler.py).
INSERT INTO order_states (state, rank, terminal) VALUES ('TERMINATED', 100, TRUE);

-- Rows from before migration 0003 have no run. A finished one can belong to no run
-- now: fenced with a run id no workflow has. An unfinished one is claimed by the
-- first run that writes it (`_claim`).
UPDATE orders o SET run_id = 'before-0003'
  FROM order_states s
 WHERE s.state = o.state AND s.terminal AND o.run_id IS NULL;
