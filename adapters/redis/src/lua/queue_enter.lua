-- enter: ARGV[5] ticket id, ARGV[6] user id, ARGV[7] new expires_at, ARGV[8] TTL (ms) that keeps
-- the ticket readable until then. READY -> USED for its own user only. Reply {went_idle, ticket|nil}.
local id, user, expires_s, span = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local f = read(id)
if not f then
  return {0, false}
end
f = refresh(id, f)
if f[2] == 'READY' and f[1] == user then
  local k = tkey(id)
  redis.call('ZADD', admitted, expires_s, id)
  redis.call('HSET', k, 'state', 'USED', 'expires', expires_s)
  redis.call('HINCRBY', meta, 'used', 1)
  extend(k, span)
  touch(span)
  f[2], f[6] = 'USED', expires_s
end
return {went_idle(), reply(id, f)}
