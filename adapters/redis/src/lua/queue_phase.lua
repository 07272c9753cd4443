-- phase: ARGV[5] the line's new phase (OPEN, SOLD_OUT or CLOSED). O(1); QUEUED tickets keep
-- their places. Reply 1 when the phase changed, 0 when it already was that.
local next_phase = ARGV[5]
if phase() == next_phase then
  return 0
end
if next_phase == 'OPEN' then
  redis.call('HDEL', meta, 'phase')
else
  redis.call('HSET', meta, 'phase', next_phase)
end
extend(meta, live_ttl)
return 1
