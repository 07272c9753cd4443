-- promote: ARGV[5] capacity, ARGV[6] expires_at of new admissions, ARGV[7] TTL (ms) that keeps
-- them readable until then, ARGV[8] stats window cut-off (admissions at or before it are dropped),
-- ARGV[9], ARGV[10] a caller's earlier reading: the admitted count, and when ('': none); the
-- admitted tickets count as at least that count plus every admission after it (spent or not).
-- Expires stale admissions, then, while the line is OPEN, admits from the front of the line while
-- slots are free; the whole step runs inside one script, so racing promoters serialise on it and
-- never overshoot.
-- Reply {idle, {ticket, ...}}.
local capacity = tonumber(ARGV[5])
if phase() ~= 'OPEN' then
  capacity = 0
end
local expires_s = ARGV[6]
local span = tonumber(ARGV[7])
expire_front()
local n = redis.call('ZCARD', admitted)
if ARGV[10] ~= '' then
  n = math.max(n, tonumber(ARGV[9]) + redis.call('ZCOUNT', recent, '(' .. ARGV[10], '+inf'))
end
local out = {}
while n < capacity do
  local head = redis.call('ZPOPMIN', queued, 1)
  if #head == 0 then
    break
  end
  local id = head[1]
  local f = read(id)
  -- A hash that expired under a forgotten ticket is skipped, not admitted.
  if f and f[2] == 'QUEUED' then
    local k = tkey(id)
    redis.call('HSET', k, 'state', 'READY', 'admitted', now_s, 'expires', expires_s)
    extend(k, span)
    redis.call('ZADD', admitted, expires_s, id)
    redis.call('ZADD', recent, now_s, id)
    n = n + 1
    f[2], f[5], f[6] = 'READY', now_s, expires_s
    out[#out + 1] = reply(id, f)
  end
end
redis.call('ZREMRANGEBYSCORE', recent, '-inf', ARGV[8])
if #out > 0 then
  count_admissions(#out, now - tonumber(ARGV[8]))
  touch(span)
end
local idle = 0
if not busy() then
  redis.call('HDEL', meta, 'listed')
  idle = 1
end
return {idle, out}
