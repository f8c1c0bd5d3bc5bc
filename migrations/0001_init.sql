-- Orders, payments, shipments and the event log.
-- Every write the workers make is idempotent; the constraints below are what
-- make a repeated or racing write harmless rather than application checks.

-- The order state machine. `rank` only ever grows along a transition, so a late
-- retry (an attempt that timed out but committed) can never move an order back.
-- The three terminal states share the top rank: none can replace another.
CREATE TABLE order_states (
    state    TEXT PRIMARY KEY,
    rank     INT  NOT NULL,
    terminal BOOLEAN NOT NULL
);
INSERT INTO order_states (state, rank, terminal) VALUES
    ('RECEIVED', 10, FALSE),
    ('VALIDATED', 20, FALSE),
    ('AWAITING_APPROVAL', 30, FALSE),
    ('PAYMENT_CHARGED', 40, FALSE),
    ('SHIPPING', 50, FALSE),
    ('COMPLETED', 100, TRUE),
    ('CANCELLED', 100, TRUE),
    ('FAILED', 100, TRUE);

CREATE TABLE orders (
    id           TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    state        TEXT NOT NULL REFERENCES order_states (state),
    payment_id   TEXT NOT NULL,
    address_json JSONB NOT NULL,
    items_json   JSONB NOT NULL,
    reason       TEXT,
    -- Attempts and errors of the finished workflow, so status can still be
    -- answered from here once the workflow history is gone.
    summary_json JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_state_idx ON orders (state);

CREATE TABLE payments (
    payment_id TEXT PRIMARY KEY,
    -- UNIQUE: one charge per order, whatever payment_id a retry carries.
    order_id   TEXT NOT NULL UNIQUE REFERENCES orders (id),
    status     TEXT NOT NULL CHECK (status IN ('charged', 'refunded')),
    amount     INT  NOT NULL CHECK (amount >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per shipping run (child workflow); preparing the same run twice is a no-op.
CREATE TABLE shipments (
    order_id        TEXT NOT NULL REFERENCES orders (id),
    attempt         INT  NOT NULL CHECK (attempt >= 1),
    status          TEXT NOT NULL CHECK (status IN ('prepared', 'dispatched')),
    address_json    JSONB NOT NULL,
    tracking_number TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, attempt)
);

CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    order_id        TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload_json    JSONB NOT NULL DEFAULT '{}'::jsonb,
    ts              TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Retries of the same write carry the same key; the second insert is dropped.
    idempotency_key TEXT NOT NULL UNIQUE
);
CREATE INDEX events_order_idx ON events (order_id, id);
