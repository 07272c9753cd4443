-- status: ARGV[5] ticket id, ARGV[6] stats window cut-off. Everything GET /queue/status needs in
-- one round trip: the ticket (as `ticket`), the scope's counters (as `stats`) and, for a QUEUED
-- ticket, its rank (as `position`).
-- Reply {went_idle, ticket|nil, queued, admitted, used, recent, rank|-1, phase, decayed admissions
-- in thousandths}.
local id = ARGV[5]
local f = look(id)
if not f then
  return {0, false}
end
expire_front()
redis.call('ZREMRANGEBYSCORE', recent, '-inf', ARGV[6])
local used = tonumber(redis.call('HGET', meta, 'used') or '0') or 0
local rank = -1
if f[2] == 'QUEUED' then
  -- Only QUEUED tickets are in the set, so the rank counts exactly the QUEUED ones ahead.
  rank = redis.call('ZRANK', queued, id) or -1
end
return {
  went_idle(),
  reply(id, f),
  redis.call('ZCARD', queued),
  redis.call('ZCARD', admitted),
  used,
  redis.call('ZCARD', recent),
  rank,
  phase(),
  decayed_milli(now - tonumber(ARGV[6])),
}
