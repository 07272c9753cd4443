-- Group commit for HOLDs (issue 14): a batch of reservations in one statement, one round trip
-- and one commit for all of them, each with its own verdict. The adapter gathers the
-- concurrent `place_hold` calls of a process and sends them here sorted by user, at most one
-- per user.
--
-- Per request, in order: claim the idempotency key (a live record: 'Replay'); the event on a
-- snapshot read once per event (less what earlier requests of this batch took); the per-user
-- limit on the quota row, then raised by the conditional upsert that confirms it; and last,
-- for all of them, the stock. A refused request leaves no key and no quantity behind: its claim
-- is deleted and its quota given back (a quota row it created stays, at 0), as if it had been
-- rolled back on its own.
--
-- Lock order, which keeps concurrent batches, single placements and the expiry sweep free of
-- deadlocks: the rows of users in ascending user order (for each user its key, then its quota
-- row), then stock rows. Stock rows are taken with SKIP LOCKED only, so a batch holding a
-- shard never waits for another; what finds no free shard with room is 'Raced' and undone,
-- and the adapter places it on its own (where waiting for a shard is safe). So is a request
-- that fits the event's stock but not what this batch left of it: only the stock the snapshot
-- shows refuses with 'SoldOut'.
--
-- Verdicts: 'Created' (with the event's name and the amount), 'Replay', 'Raced', or the
-- refusal: 'EventNotFound', 'NotOnSale', 'OverUserLimit', 'SoldOut'.
--
-- Per order it writes the key, the quota, its share of one stock row and the order: the key
-- points at its order from the start (the order is inserted at the end, hence the deferrable
-- foreign key, checked at commit), and the orders are counted once per statement (the
-- statement-level trigger below) rather than by two upserts per row.
ALTER TABLE idempotency_keys ALTER CONSTRAINT idempotency_keys_order_id_fkey
    DEFERRABLE INITIALLY IMMEDIATE;

CREATE FUNCTION place_holds(
    p_order uuid[], p_user uuid[], p_event uuid[], p_qty integer[], p_key text[],
    p_fingerprint text[], p_now timestamptz[], p_key_expires timestamptz[],
    p_hold_expires timestamptz[])
RETURNS TABLE (verdict text, event_name text, amount bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n         integer := coalesce(cardinality(p_order), 0);
    v         text[] := array_fill(NULL::text, ARRAY[n]);
    shard_of  smallint[] := array_fill(NULL::smallint, ARRAY[n]);
    names     text[] := array_fill(NULL::text, ARRAY[n]);
    amounts   bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    ev        record;
    ev_id     uuid;
    ev_found  boolean;
    -- The snapshot's available stock of ev_id, less what this batch took of it.
    left_qty  bigint;
    committed integer;
    e         uuid;
    cur       refcursor;
    st        record;
    room      bigint;
    taken     bigint;
    waiting   integer;
BEGIN
    FOR i IN 2..n LOOP
        IF p_user[i] <= p_user[i - 1] THEN
            RAISE EXCEPTION 'place_holds: one request per user, users ascending (the lock order)';
        END IF;
    END LOOP;
    -- For the rest of the caller's transaction: called on its own, that is this statement.
    SET CONSTRAINTS idempotency_keys_order_id_fkey DEFERRED;
    FOR i IN 1..n LOOP
        -- A live record of another transaction makes this wait for it; an expired one is
        -- taken over.
        INSERT INTO idempotency_keys (user_id, key, fingerprint, order_id, expires_at, created_at)
        VALUES (p_user[i], p_key[i], p_fingerprint[i], p_order[i], p_key_expires[i], p_now[i])
        ON CONFLICT (user_id, key) DO UPDATE
            SET fingerprint = EXCLUDED.fingerprint, order_id = EXCLUDED.order_id, rejection = NULL,
                expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at
            WHERE idempotency_keys.expires_at <= EXCLUDED.created_at;
        IF NOT FOUND THEN
            v[i] := 'Replay';
            CONTINUE;
        END IF;

        IF ev_id IS DISTINCT FROM p_event[i] THEN
            ev_id := p_event[i];
            SELECT s.name, s.price, s.max_per_user, s.status = 'ONSALE' AS on_sale,
                   s.total_qty - s.sold_qty - s.held_qty AS available
            INTO ev FROM events_with_stock s WHERE s.id = ev_id;
            ev_found := FOUND;
            IF ev_found THEN
                left_qty := ev.available - (
                    SELECT coalesce(sum(p_qty[j]), 0) FROM generate_series(1, i - 1) j
                    WHERE v[j] = 'Pending' AND p_event[j] = ev_id);
            END IF;
        END IF;

        -- The rule of check_hold (flash_core::domain), in its order.
        IF NOT ev_found THEN
            v[i] := 'EventNotFound';
        ELSIF NOT ev.on_sale THEN
            v[i] := 'NotOnSale';
        ELSE
            SELECT q.committed_qty INTO committed FROM order_quotas q
            WHERE q.user_id = p_user[i] AND q.event_id = ev_id;
            IF p_qty[i] > ev.max_per_user
               OR coalesce(committed, 0) + p_qty[i] > ev.max_per_user THEN
                v[i] := 'OverUserLimit';
            ELSIF p_qty[i] > ev.available THEN
                v[i] := 'SoldOut';
            ELSIF p_qty[i] > left_qty THEN
                v[i] := 'Raced';
            ELSE
                INSERT INTO order_quotas (user_id, event_id, committed_qty)
                VALUES (p_user[i], ev_id, p_qty[i])
                ON CONFLICT (user_id, event_id) DO UPDATE
                    SET committed_qty = order_quotas.committed_qty + EXCLUDED.committed_qty
                    WHERE order_quotas.committed_qty + EXCLUDED.committed_qty <= ev.max_per_user;
                IF FOUND THEN
                    v[i] := 'Pending';
                    left_qty := left_qty - p_qty[i];
                    names[i] := ev.name;
                    amounts[i] := ev.price * p_qty[i];
                ELSE
                    v[i] := 'OverUserLimit';
                END IF;
            END IF;
        END IF;
        IF v[i] <> 'Pending' THEN
            -- Refused, or raced before taking any quota.
            DELETE FROM idempotency_keys WHERE user_id = p_user[i] AND key = p_key[i];
        END IF;
    END LOOP;

    -- The stock, event by event: free shards with room in random order, one row locked per
    -- FETCH, each filled with the waiting requests that fit and written once.
    FOR e IN SELECT DISTINCT p_event[j] FROM generate_series(1, n) j
             WHERE v[j] = 'Pending' ORDER BY 1 LOOP
        OPEN cur FOR
            SELECT s.shard, s.total_qty - s.sold_qty - s.held_qty AS room FROM event_stock s
            WHERE s.event_id = e AND s.on_sale AND s.total_qty - s.sold_qty - s.held_qty > 0
            ORDER BY random() FOR UPDATE SKIP LOCKED;
        LOOP
            FETCH cur INTO st;
            EXIT WHEN NOT FOUND;
            room := st.room;
            taken := 0;
            waiting := 0;
            FOR j IN 1..n LOOP
                IF v[j] = 'Pending' AND p_event[j] = e THEN
                    IF p_qty[j] <= room THEN
                        v[j] := 'Created';
                        shard_of[j] := st.shard;
                        room := room - p_qty[j];
                        taken := taken + p_qty[j];
                    ELSE
                        waiting := waiting + 1;
                    END IF;
                END IF;
            END LOOP;
            IF taken > 0 THEN
                UPDATE event_stock SET held_qty = held_qty + taken
                WHERE event_id = e AND shard = st.shard;
            END IF;
            EXIT WHEN waiting = 0;
        END LOOP;
        CLOSE cur;
    END LOOP;

    FOR j IN 1..n LOOP
        IF v[j] = 'Pending' THEN
            v[j] := 'Raced';
            UPDATE order_quotas SET committed_qty = committed_qty - p_qty[j]
            WHERE user_id = p_user[j] AND event_id = p_event[j];
            DELETE FROM idempotency_keys WHERE user_id = p_user[j] AND key = p_key[j];
        END IF;
    END LOOP;

    INSERT INTO orders (id, user_id, event_id, qty, status, amount, idem_key, hold_expires_at,
                        stock_shard, created_at, updated_at)
    SELECT p_order[j], p_user[j], p_event[j], p_qty[j], 'HOLD'::order_status, amounts[j], p_key[j],
           p_hold_expires[j], shard_of[j], p_now[j], p_now[j]
    FROM generate_series(1, n) j WHERE v[j] = 'Created';

    RETURN QUERY SELECT v[j], names[j], amounts[j] FROM generate_series(1, n) j ORDER BY j;
END
$$;

-- Inserted orders are counted per statement: one upsert per counter and event for a whole
-- batch. Changes and deletions stay counted per row (a transition-table trigger takes one
-- event and no column list).
CREATE OR REPLACE FUNCTION orders_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            PERFORM shop_counter_add('orders_' || OLD.status::text, OLD.event_id, -1);
            PERFORM shop_counter_add('orders_' || NEW.status::text, NEW.event_id, 1);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM shop_counter_add('orders_total', OLD.event_id, -1);
        PERFORM shop_counter_add('orders_' || OLD.status::text, OLD.event_id, -1);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER orders_count_changes ON orders;
CREATE TRIGGER orders_count_changes AFTER UPDATE OF status OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_count_changes();

CREATE FUNCTION orders_count_inserts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shop_counters (name, event_id, backend, value)
    SELECT c.name, c.event_id, pg_backend_pid(), c.n FROM (
        SELECT 'orders_total' AS name, i.event_id, count(*) AS n FROM inserted i
        GROUP BY i.event_id
        UNION ALL
        SELECT 'orders_' || i.status::text, i.event_id, count(*) FROM inserted i
        GROUP BY i.event_id, i.status) c
    ON CONFLICT (event_id, name, backend) DO UPDATE
        SET value = shop_counters.value + EXCLUDED.value;
    RETURN NULL;
END
$$;

-- Replacing the trigger locks `orders` for a moment: migrate between sales, not during one.
CREATE TRIGGER orders_count_inserts AFTER INSERT ON orders
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION orders_count_inserts();
