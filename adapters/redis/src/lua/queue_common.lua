-- Shared prelude of every queue script. All keys of one scope share the `{scope}` hash tag, so a
-- script touches a single Cluster slot; ticket hashes are reached through `tprefix .. id`, which
-- carries the same tag.
--
-- KEYS[1] meta      HASH  seq (last sequence number), used (USED count), listed (1 while the
--                         scope is, or is about to be, in the global active set), phase (the
--                         line's phase once set: OPEN, SOLD_OUT, CLOSED or PREQUEUE:<ms>)
-- KEYS[2] queued    ZSET  ticket id -> sequence number: QUEUED tickets only, so ZRANK is a position
-- KEYS[3] admitted  ZSET  ticket id -> expires_at (ms): READY and USED tickets, oldest expiry first
-- KEYS[4] live      HASH  user id -> ticket id of the user's live ticket in this scope
-- KEYS[5] recent    ZSET  ticket id -> admitted_at (ms), trimmed to the stats window
-- (meta also keeps ew and ew_at: the admissions as an exponentially decaying count, and when it
-- was last brought forward; see decayed below)
-- ARGV[1] ticket key prefix, ARGV[2] now (ms), ARGV[3] live TTL (ms), ARGV[4] retention (ms) of a
-- finished ticket; op-specific arguments follow.
--
-- Numbers that end up in replies or hashes are passed in as decimal strings and stored as such, so
-- no timestamp ever goes through Lua's float formatting.

local meta, queued, admitted, live, recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tprefix = ARGV[1]
local now_s = ARGV[2]
local now = tonumber(now_s)
local live_ttl = tonumber(ARGV[3])
local retention = tonumber(ARGV[4])

local function tkey(id)
  return tprefix .. id
end

-- The admissions as an exponentially decaying count with time constant `tau` ms, as of now: at a
-- steady rate r it tends to r * tau, so it over tau is the exponentially weighted mean rate.
local function decayed(tau)
  local v = redis.call('HMGET', meta, 'ew', 'ew_at')
  local ew = tonumber(v[1] or '0') or 0
  local at = tonumber(v[2] or now_s) or now
  if tau <= 0 or now <= at then
    return ew
  end
  return ew * math.exp((at - now) / tau)
end

local function count_admissions(k, tau)
  redis.call('HSET', meta, 'ew', tostring(decayed(tau) + k), 'ew_at', now_s)
end

-- decayed(tau) in thousandths, as an integer for the reply.
local function decayed_milli(tau)
  return math.floor(decayed(tau) * 1000 + 0.5)
end

-- Renews a TTL to `ms` once less than half of it is left (or none is set), never shortening it:
-- keys stay alive for at least ms/2 after any activity, and hot paths such as status polling
-- rarely write (each PEXPIRE is replicated).
local function extend(key, ms)
  local cur = redis.call('PTTL', key)
  if cur == -1 or (cur >= 0 and cur * 2 < ms) then
    redis.call('PEXPIRE', key, ms)
  end
end

local function touch(ms)
  extend(meta, ms)
  extend(queued, ms)
  extend(admitted, ms)
  extend(live, ms)
  extend(recent, ms)
end

-- {user, state, seq, created, admitted_at|false, expires|false}, or nil when the hash is gone.
local function read(id)
  local f = redis.call('HMGET', tkey(id), 'user', 'state', 'seq', 'created', 'admitted', 'expires')
  if not f[1] or not f[2] then
    return nil
  end
  return f
end

local function reply(id, f)
  return {id, f[1], f[2], f[3], f[4], f[5] or '', f[6] or ''}
end

local function is_admitted(state)
  return state == 'READY' or state == 'USED'
end

local function is_live(state)
  return state == 'QUEUED' or state == 'READY' or state == 'USED'
end

-- Takes a live ticket out of its line and gives it a final state; the hash is kept for
-- `retention` so that its owner can still read what happened.
local function finish(id, f, state)
  local st = f[2]
  if st == 'QUEUED' then
    redis.call('ZREM', queued, id)
  elseif is_admitted(st) then
    redis.call('ZREM', admitted, id)
    if st == 'USED' and redis.call('HINCRBY', meta, 'used', -1) < 0 then
      redis.call('HSET', meta, 'used', 0)
    end
  else
    return f
  end
  local k = tkey(id)
  redis.call('HSET', k, 'state', state)
  redis.call('HDEL', k, 'expires')
  redis.call('PEXPIRE', k, retention)
  if redis.call('HGET', live, f[1]) == id then
    redis.call('HDEL', live, f[1])
  end
  f[2] = state
  f[6] = false
  return f
end

-- Lazy expiry: an admission at or past its expires_at is EXPIRED the moment anyone looks at it.
local function refresh(id, f)
  if is_admitted(f[2]) and (not f[6] or tonumber(f[6]) <= now) then
    return finish(id, f, 'EXPIRED')
  end
  return f
end

-- Expires admissions from the front of the expiry-ordered set: O(k log n) for k expired.
local function expire_front()
  local ids = redis.call('ZRANGEBYSCORE', admitted, '-inf', now_s)
  for _, id in ipairs(ids) do
    local f = read(id)
    if f then
      finish(id, f, 'EXPIRED')
    else
      redis.call('ZREM', admitted, id)
    end
  end
end

-- The line's phase: OPEN unless set otherwise.
local function phase()
  return redis.call('HGET', meta, 'phase') or 'OPEN'
end

local function busy()
  return redis.call('ZCARD', queued) > 0 or redis.call('ZCARD', admitted) > 0
end

-- 1 when this call saw the scope become idle while listed: the caller then takes it out of the
-- global active set (which lives in another slot, so it cannot be done here).
local function went_idle()
  if redis.call('HGET', meta, 'listed') == '1' and not busy() then
    redis.call('HDEL', meta, 'listed')
    return 1
  end
  return 0
end

-- A reader's look at ticket `id`: its fields as of now (an overdue admission EXPIRED), its TTL
-- renewed while it is live; nil when unknown.
local function look(id)
  local f = read(id)
  if not f then
    return nil
  end
  f = refresh(id, f)
  if is_live(f[2]) then
    extend(tkey(id), live_ttl)
  end
  return f
end
