-- hit: KEYS[i] window hashes, counted in order; ARGV[1] now (ms), then for each key i
-- ARGV[3i-1] end of a window opened now (ms), ARGV[3i] window length (ms), ARGV[3i+1] limit.
-- A key's window opens at its first hit and ends when the caller's clock says (as with every
-- port); the key's own TTL makes Redis forget it once the window has passed. The first key over
-- its limit stops the count. Reply {0} when every key allowed its hit, {i, window end} when key
-- i refused.
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local a = 3 * i - 1
  local ends = redis.call('HGET', key, 'end')
  local hits
  if not ends or tonumber(ends) <= now then
    redis.call('HSET', key, 'n', 1, 'end', ARGV[a])
    redis.call('PEXPIRE', key, ARGV[a + 1])
    hits, ends = 1, ARGV[a]
  else
    hits = redis.call('HINCRBY', key, 'n', 1)
  end
  if hits > tonumber(ARGV[a + 2]) then
    return {i, ends}
  end
end
return {0}
