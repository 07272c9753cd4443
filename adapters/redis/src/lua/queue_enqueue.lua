-- enqueue: ARGV[5] ticket id, ARGV[6] user id, ARGV[7] the line score of a pre-queue lottery ticket
-- (in [-1, 0), so ahead of every arrival, whose score is its sequence number >= 1), or '';
-- ARGV[8] with it, the pre-queue phase (PREQUEUE:<ms>) a line never given a phase enters. A line
-- given another phase has left its pre-queue: the ticket is an arrival after all.
-- Reply {1, ticket, listed} when created, {0, ticket, listed} for the user's live ticket, {-1}
-- when the id exists; listed is 1 when this call set the line's listed flag (HSET counts a new
-- field; the flag is only ever deleted), so the caller must add the line to the active set now.
local id, user = ARGV[5], ARGV[6]
local cur = redis.call('HGET', live, user)
if cur then
  local f = read(cur)
  if f then
    f = refresh(cur, f)
    if is_live(f[2]) then
      extend(tkey(cur), live_ttl)
      local listed = redis.call('HSET', meta, 'listed', '1')
      touch(live_ttl)
      return {0, reply(cur, f), listed}
    end
  else
    redis.call('HDEL', live, user)
  end
end
local k = tkey(id)
if redis.call('EXISTS', k) == 1 then
  return {-1}
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('HSET', k, 'user', user, 'state', 'QUEUED', 'seq', seq, 'created', now_s)
redis.call('PEXPIRE', k, live_ttl)
local score = seq
if ARGV[7] ~= nil and ARGV[7] ~= '' then
  local current = redis.call('HGET', meta, 'phase')
  if not current then
    current = ARGV[8]
    redis.call('HSET', meta, 'phase', current)
  end
  if string.sub(current, 1, 9) == 'PREQUEUE:' then
    score = ARGV[7]
  end
end
redis.call('ZADD', queued, score, id)
redis.call('HSET', live, user, id)
local listed = redis.call('HSET', meta, 'listed', '1')
touch(live_ttl)
return {1, {id, user, 'QUEUED', seq, now_s, '', ''}, listed}
