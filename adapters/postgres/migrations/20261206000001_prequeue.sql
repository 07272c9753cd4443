-- SPEC §4, the sale lifecycle: an event may open a pre-queue before it starts; joins between
-- prequeue_starts_at and starts_at go into a lottery drawn at starts_at. NULL: no pre-queue.
-- queue_mode 'event': bought only with an admission of the event's own line (a pre-queue needs
-- it, or the lottery could be skipped through the site-wide line); 'global': legacy.
ALTER TABLE events ADD COLUMN prequeue_starts_at timestamptz;
ALTER TABLE events ADD COLUMN queue_mode text NOT NULL DEFAULT 'global'
    CHECK (queue_mode IN ('global', 'event'));
ALTER TABLE events ADD CONSTRAINT events_prequeue_before_start
    CHECK (prequeue_starts_at IS NULL OR (prequeue_starts_at < starts_at AND queue_mode = 'event'));

-- The view gains the column at its end (CREATE OR REPLACE VIEW may only append).
CREATE OR REPLACE VIEW events_with_stock AS
SELECT e.id, e.name, e.starts_at, e.ends_at, e.total_qty,
       coalesce(s.sold_qty, 0) AS sold_qty, coalesce(s.held_qty, 0) AS held_qty,
       e.max_per_user, e.price, e.status, e.created_at, e.updated_at, e.prequeue_starts_at,
       e.queue_mode
FROM events e
CROSS JOIN LATERAL (
    SELECT sum(sold_qty)::integer AS sold_qty, sum(held_qty)::integer AS held_qty
    FROM event_stock WHERE event_id = e.id) s;
