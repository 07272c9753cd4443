-- The monitoring timeline charts orders and payments per event line: each counter row now
-- names the event it counts (the nil UUID for what was counted before this migration), and the
-- site-wide figures are the sums over events. Still one row per (counter, event, backend), so a
-- transaction adds only to its own rows, and as many upserts per change as before; a payment's
-- event is found through its order (one primary-key lookup).
ALTER TABLE shop_counters
    ADD COLUMN event_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE shop_counters DROP CONSTRAINT shop_counters_pkey;
-- The event first: one event's counters are read together.
ALTER TABLE shop_counters ADD PRIMARY KEY (event_id, name, backend);

CREATE FUNCTION shop_counter_add(counter text, event uuid, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO shop_counters (name, event_id, backend, value)
    VALUES (counter, event, pg_backend_pid(), delta)
    ON CONFLICT (event_id, name, backend) DO UPDATE SET value = shop_counters.value + EXCLUDED.value
$$;

CREATE OR REPLACE FUNCTION orders_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM shop_counter_add('orders_total', NEW.event_id, 1);
        PERFORM shop_counter_add('orders_' || NEW.status::text, NEW.event_id, 1);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            PERFORM shop_counter_add('orders_' || OLD.status::text, OLD.event_id, -1);
            PERFORM shop_counter_add('orders_' || NEW.status::text, NEW.event_id, 1);
        END IF;
    ELSE
        PERFORM shop_counter_add('orders_total', OLD.event_id, -1);
        PERFORM shop_counter_add('orders_' || OLD.status::text, OLD.event_id, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION payments_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event uuid;
BEGIN
    SELECT o.event_id INTO event FROM orders o
    WHERE o.id = CASE WHEN TG_OP = 'DELETE' THEN OLD.order_id ELSE NEW.order_id END;
    event := coalesce(event, '00000000-0000-0000-0000-000000000000');
    IF TG_OP = 'INSERT' THEN
        PERFORM shop_counter_add('payments_' || NEW.status::text, event, 1);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            PERFORM shop_counter_add('payments_' || OLD.status::text, event, -1);
            PERFORM shop_counter_add('payments_' || NEW.status::text, event, 1);
        END IF;
    ELSE
        PERFORM shop_counter_add('payments_' || OLD.status::text, event, -1);
    END IF;
    RETURN NULL;
END
$$;

DROP FUNCTION shop_counter_add(text, bigint);
