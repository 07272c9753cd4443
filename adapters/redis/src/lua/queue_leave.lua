-- leave: ARGV[5] ticket id, ARGV[6] user id. Any live state -> EXPIRED for its own user.
-- Reply {went_idle, ticket|nil} (nil when unknown or another user's).
local id, user = ARGV[5], ARGV[6]
local f = read(id)
if not f then
  return {0, false}
end
f = refresh(id, f)
if f[1] ~= user then
  return {went_idle(), false}
end
f = finish(id, f, 'EXPIRED')
return {went_idle(), reply(id, f)}
