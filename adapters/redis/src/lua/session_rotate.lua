-- rotate: KEYS[1] token hash; ARGV[1] now (ms), ARGV[2] family key prefix.
-- Reply {0} unknown/expired, {1, family, user, exp} rotated, {2, family} reused (family revoked).
local f = redis.call('HMGET', KEYS[1], 'family', 'user', 'exp', 'state')
if not f[1] or not f[2] or not f[3] or not f[4] then
  return {0}
end
if tonumber(f[3]) <= tonumber(ARGV[1]) then
  return {0}
end
local fam = ARGV[2] .. f[1]
if f[4] == 'unspent' and redis.call('HGET', fam, 'revoked') ~= '1' then
  redis.call('HSET', KEYS[1], 'state', 'spent')
  return {1, f[1], f[2], f[3]}
end
-- A spent or revoked token presented again leaked: the whole family dies.
redis.call('HSET', fam, 'revoked', '1')
local left = redis.call('PTTL', KEYS[1])
local cur = redis.call('PTTL', fam)
if left > 0 and (cur == -1 or (cur >= 0 and cur < left)) then
  redis.call('PEXPIRE', fam, left)
end
redis.call('HSET', KEYS[1], 'state', 'revoked')
return {2, f[1]}
