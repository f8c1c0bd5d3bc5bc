-- Tell listeners when an order is stored or its state moves, so that a status request
-- that waits (GET /orders/{id}/status?wait=S) is answered the moment it changes
-- instead of clients polling. The payload is '<order id> <state>' (an id has no
-- spaces), so a waiter re-reads only for a change it waits for. NOTIFY is
-- transactional: listeners hear of a change only once it has committed.
CREATE FUNCTION notify_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_changed', NEW.id || ' ' || NEW.state);
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_notify_insert
    AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION notify_order_changed();

CREATE TRIGGER orders_notify_state
    AFTER UPDATE OF state ON orders
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION notify_order_changed();
