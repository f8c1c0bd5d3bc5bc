-- Admission control measures how fast the stack finishes orders: how many ended in
-- the last few seconds (functions/admission.py, orderflow/store.py
-- `admission_counts`), read up to four times a second by every API process.
-- This index keeps that a range scan over the newest ends however many finished orders
-- are stored; a terminal order's updated_at is when it ended (it is never written again).
CREATE INDEX orders_ended_at_idx ON orders (updated_at)
    WHERE state IN ('COMPLETED', 'CANCELLED', 'FAILED');
