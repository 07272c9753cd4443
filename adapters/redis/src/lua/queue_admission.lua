-- admission: ARGV[5] user id. Reply {went_idle, ticket|nil}: the user's unexpired READY/USED ticket.
local user = ARGV[5]
local id = redis.call('HGET', live, user)
if not id then
  return {0, false}
end
local f = read(id)
if not f then
  redis.call('HDEL', live, user)
  return {0, false}
end
f = refresh(id, f)
if is_admitted(f[2]) then
  return {0, reply(id, f)}
end
return {went_idle(), false}
