-- phase: ARGV[5] the line's new phase (OPEN, SOLD_OUT, CLOSED or PREQUEUE:<starts_at ms>). O(1);
-- QUEUED tickets keep their places. OPEN is stored too, so that an enqueue can tell a line that
-- left its pre-queue from one never given a phase (both read as OPEN). Reply 1 when the phase
-- changed, 0 when it already read that.
local next_phase = ARGV[5]
local before = phase()
redis.call('HSET', meta, 'phase', next_phase)
extend(meta, live_ttl)
if before == next_phase then
  return 0
end
return 1
