-- hit: KEYS[1] window hash; ARGV[1] now (ms), ARGV[2] end of a window opened now (ms),
-- ARGV[3] window length (ms). Reply {hits in the window, window end}.
-- The window end is kept in the hash (the caller's clock decides when it is over, as with every
-- port); the key's own TTL makes Redis forget it on its own once the window has passed.
local ends = redis.call('HGET', KEYS[1], 'end')
if not ends or tonumber(ends) <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'n', 1, 'end', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {1, ARGV[2]}
end
return {redis.call('HINCRBY', KEYS[1], 'n', 1), ends}
