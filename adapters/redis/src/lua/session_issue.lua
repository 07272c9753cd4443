-- issue: KEYS[1] token hash, KEYS[2] family hash; ARGV[1] family id, ARGV[2] user id,
-- ARGV[3] expires_at (ms), ARGV[4] shortest TTL (ms). Reply 1, or -1 when the jti exists.
-- The TTL is the token's remaining life by the server's clock, never below ARGV[4]: an
-- expires_at already past by that clock (a skewed or fake caller clock) must not delete the
-- token before `rotate` can judge it against the caller's own `now`.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local t = redis.call('TIME')
local server_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3]) - server_now
local floor = tonumber(ARGV[4])
if ttl < floor then
  ttl = floor
end
redis.call('HSET', KEYS[1], 'family', ARGV[1], 'user', ARGV[2], 'exp', ARGV[3], 'state', 'unspent')
redis.call('PEXPIRE', KEYS[1], ttl)
-- The family outlives every one of its tokens, so a revocation is remembered as long as any
-- token of the family could still be presented.
redis.call('HSETNX', KEYS[2], 'revoked', '0')
local cur = redis.call('PTTL', KEYS[2])
if cur == -1 or (cur >= 0 and cur < ttl) then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
