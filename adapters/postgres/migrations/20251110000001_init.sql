-- Flash Tickets schema, version 1.
--
-- Table, column and enum names follow the legacy schema (`.db/001_init_schema.sql` and the
-- payments migration) so that dashboards, ad-hoc SQL and runbooks keep working. What SPEC adds:
-- held stock, hold expiry, per-user idempotency records, a per-(user, event) quantity row for the
-- per-user limit, the transactional outbox, refresh tokens, REFUND_REQUIRED payments, and the
-- constraints the legacy schema lacked. Every instant the application decides (`now` of a
-- request) is written by the application; `DEFAULT now()` only covers rows written by hand.

CREATE TYPE user_role AS ENUM ('USER', 'ADMIN');
CREATE TYPE event_status AS ENUM ('DRAFT', 'ONSALE', 'CLOSED');
CREATE TYPE order_status AS ENUM ('HOLD', 'PAID', 'CANCELLED', 'EXPIRED', 'FAIL');
CREATE TYPE payments_status_enum AS ENUM ('REQ', 'OK', 'FAIL', 'REFUND_REQUIRED');

CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The login name (legacy `userId`).
    user_id       text        NOT NULL,
    password_hash text        NOT NULL,
    role          user_role   NOT NULL DEFAULT 'USER',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_user_id_key UNIQUE (user_id)
);

CREATE TABLE events (
    id           uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text         NOT NULL,
    starts_at    timestamptz  NOT NULL,
    ends_at      timestamptz  NOT NULL,
    -- Equal to the sum of the event's event_stock.total_qty (checked by the adapter's audit).
    total_qty    integer      NOT NULL,
    max_per_user integer      NOT NULL,
    -- bigint, unlike legacy: the API accepts any non-negative integer price, and an order's
    -- amount is qty × price.
    price        bigint       NOT NULL,
    status       event_status NOT NULL DEFAULT 'DRAFT',
    created_at   timestamptz  NOT NULL DEFAULT now(),
    updated_at   timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT events_values_non_negative
        CHECK (total_qty >= 0 AND max_per_user >= 0 AND price >= 0)
);

-- The stock of an event, split across a few rows (shards). Every HOLD, payment and expiry
-- changes one shard row in the transaction that commits it, and a row lock is held until the
-- commit has been flushed; with one row per event every order of a hot event would wait for
-- the previous order's WAL flush (a convoy of about one order per flush). Each order takes its
-- whole quantity from one shard (orders.stock_shard) and gives it back there. What legacy kept in
-- events.sold_qty / held_qty is the sum over the shards: see the events_with_stock view.
CREATE TABLE event_stock (
    event_id  uuid     NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    shard     smallint NOT NULL CHECK (shard >= 0),
    total_qty integer  NOT NULL,
    -- PAID tickets.
    sold_qty  integer  NOT NULL DEFAULT 0,
    -- HOLD and FAIL tickets: reserved when the order is placed, released when it expires.
    held_qty  integer  NOT NULL DEFAULT 0,
    -- A copy of events.status = 'ONSALE', written with every shard locked, so that taking stock
    -- and closing the sale are ordered by the shard row lock.
    on_sale   boolean  NOT NULL,
    PRIMARY KEY (event_id, shard),
    CONSTRAINT event_stock_non_negative CHECK (total_qty >= 0 AND sold_qty >= 0 AND held_qty >= 0),
    -- SPEC §8.1 per shard, hence for the event: enforced by the database as a last line of
    -- defence.
    CONSTRAINT event_stock_never_oversold CHECK (sold_qty + held_qty <= total_qty)
);

-- Events with the legacy stock columns, for reads (and ad-hoc SQL written against legacy).
CREATE VIEW events_with_stock AS
SELECT e.id, e.name, e.starts_at, e.ends_at, e.total_qty,
       coalesce(s.sold_qty, 0) AS sold_qty, coalesce(s.held_qty, 0) AS held_qty,
       e.max_per_user, e.price, e.status, e.created_at, e.updated_at
FROM events e
CROSS JOIN LATERAL (
    SELECT sum(sold_qty)::integer AS sold_qty, sum(held_qty)::integer AS held_qty
    FROM event_stock WHERE event_id = e.id) s;

CREATE INDEX idx_events_starts_at ON events (starts_at, created_at, id);
CREATE INDEX idx_events_created_at ON events (created_at DESC, id);

CREATE TABLE orders (
    -- No foreign key to users: the account store is a separate port and may live elsewhere.
    id                uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid         NOT NULL,
    -- RESTRICT, unlike legacy CASCADE: financial records are never deleted with their event.
    event_id          uuid         NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    qty               integer      NOT NULL CHECK (qty > 0),
    status            order_status NOT NULL,
    amount            bigint       NOT NULL CHECK (amount >= 0),
    -- The Idempotency-Key the order was placed with (informational; uniqueness is per user, in
    -- idempotency_keys, not global as in legacy).
    idem_key          text,
    -- When an unpaid HOLD/FAIL order gives its stock back.
    hold_expires_at   timestamptz  NOT NULL,
    -- True exactly while the order has a REQ payment. Kept on the order row so that the expiry
    -- sweeper's predicate reads one row, which `FOR UPDATE SKIP LOCKED` re-checks after a
    -- concurrent payment opening commits.
    payment_in_flight boolean      NOT NULL DEFAULT false,
    -- The event_stock shard the order's quantity was taken from. NULL only inside the
    -- transaction placing the order (the shard is chosen last), which nothing else sees.
    stock_shard       smallint,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    updated_at        timestamptz  NOT NULL DEFAULT now()
);

CREATE INDEX idx_orders_event_status ON orders (event_id, status);
CREATE INDEX idx_orders_user_event ON orders (user_id, event_id);
CREATE INDEX idx_orders_user_created ON orders (user_id, created_at DESC, id DESC);
-- Exactly the orders `expire_holds` may take, in deadline order.
CREATE INDEX idx_orders_expirable ON orders (hold_expires_at, id)
    WHERE status IN ('HOLD', 'FAIL') AND NOT payment_in_flight;

-- The per-user limit: HOLD + FAIL + PAID quantity of one user for one event. An order placement
-- raises it with a conditional upsert, so concurrent orders of one user serialize on this row
-- (and only on it) and the limit holds under any concurrency.
CREATE TABLE order_quotas (
    user_id       uuid    NOT NULL,
    event_id      uuid    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    committed_qty integer NOT NULL CHECK (committed_qty >= 0),
    PRIMARY KEY (user_id, event_id)
);

-- Per-user idempotency records of `POST /orders`, kept until expires_at (24 h).
CREATE TABLE idempotency_keys (
    user_id     uuid        NOT NULL,
    key         text        NOT NULL,
    -- Digest of the request body: a replay with another one is refused.
    fingerprint text        NOT NULL,
    -- The outcome: the order created, or the refusal. Both are NULL only inside the
    -- transaction that is deciding it, which other transactions never see.
    order_id    uuid        REFERENCES orders (id) ON DELETE CASCADE,
    rejection   text        CHECK (rejection IN ('EventNotFound', 'NotOnSale', 'SoldOut', 'OverUserLimit')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_keys_one_outcome CHECK (order_id IS NULL OR rejection IS NULL)
);

CREATE INDEX idx_idempotency_keys_expires_at ON idempotency_keys (expires_at);

CREATE TABLE payments (
    id         uuid                 PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id   uuid                 NOT NULL,
    status     payments_status_enum NOT NULL,
    method     varchar(64)          NOT NULL,
    amount     bigint               NOT NULL CHECK (amount >= 0),
    -- `requestId` of the bus message that asked the processor for this payment.
    request_id uuid                 NOT NULL,
    created_at timestamptz          NOT NULL DEFAULT now(),
    updated_at timestamptz          NOT NULL DEFAULT now(),
    -- RESTRICT, unlike legacy CASCADE: payments are financial records.
    CONSTRAINT "FK_payments_order" FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE RESTRICT
);

CREATE INDEX idx_payments_order_id ON payments (order_id, status);
-- SPEC §7: at most one REQ payment per order, enforced by the database.
CREATE UNIQUE INDEX idx_payments_one_req_per_order ON payments (order_id) WHERE status = 'REQ';
-- The payment-timeout sweeper's scan, oldest first.
CREATE INDEX idx_payments_req_created ON payments (created_at, id) WHERE status = 'REQ';

-- The transactional outbox: written in the transaction that opens a payment, published by a
-- relay that leases rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox (
    id             uuid        PRIMARY KEY,
    -- Write order, so relays publish oldest first.
    seq            bigint      GENERATED ALWAYS AS IDENTITY,
    queue          text        NOT NULL,
    message_id     text        NOT NULL,
    correlation_id text        NOT NULL,
    -- `json`, not `jsonb`: the body is published byte for byte as it was written.
    payload        json        NOT NULL,
    created_at     timestamptz NOT NULL,
    sent_at        timestamptz,
    lease_until    timestamptz,
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);

-- What relays claim and what `backlog` counts: only the unsent rows, so both stay cheap however
-- many messages were sent.
CREATE INDEX idx_outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX idx_outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Refresh tokens: rotation spends a token once; presenting a spent or revoked one revokes its
-- whole family. No foreign key to users, for the same reason as orders.
CREATE TABLE refresh_token_families (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE refresh_tokens (
    jti        uuid        PRIMARY KEY,
    family_id  uuid        NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX idx_refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Counters for /metrics, maintained by triggers so that every path that changes an order or a
-- payment (including SQL run by an operator) keeps them right. Each backend adds to its own rows
-- (`backend` = pg_backend_pid()), so concurrent transactions never wait on a shared counter row;
-- reading sums a few rows per counter. Rows of ended backends are folded into backend 0 by the
-- adapter's purge.
CREATE TABLE shop_counters (
    name    text    NOT NULL,
    backend integer NOT NULL,
    value   bigint  NOT NULL,
    PRIMARY KEY (name, backend)
);

CREATE FUNCTION shop_counter_add(counter text, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO shop_counters (name, backend, value) VALUES (counter, pg_backend_pid(), delta)
    ON CONFLICT (name, backend) DO UPDATE SET value = shop_counters.value + EXCLUDED.value
$$;

CREATE FUNCTION orders_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM shop_counter_add('orders_total', 1);
        PERFORM shop_counter_add('orders_' || NEW.status::text, 1);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            PERFORM shop_counter_add('orders_' || OLD.status::text, -1);
            PERFORM shop_counter_add('orders_' || NEW.status::text, 1);
        END IF;
    ELSE
        PERFORM shop_counter_add('orders_total', -1);
        PERFORM shop_counter_add('orders_' || OLD.status::text, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER orders_count_changes AFTER INSERT OR UPDATE OF status OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_count_changes();

CREATE FUNCTION payments_count_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM shop_counter_add('payments_' || NEW.status::text, 1);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            PERFORM shop_counter_add('payments_' || OLD.status::text, -1);
            PERFORM shop_counter_add('payments_' || NEW.status::text, 1);
        END IF;
    ELSE
        PERFORM shop_counter_add('payments_' || OLD.status::text, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_count_changes AFTER INSERT OR UPDATE OF status OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_count_changes();
