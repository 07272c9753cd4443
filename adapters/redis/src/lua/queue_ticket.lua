-- ticket: ARGV[5] ticket id. Reply {went_idle, ticket|nil}.
local id = ARGV[5]
local f = read(id)
if not f then
  return {0, false}
end
f = refresh(id, f)
if is_live(f[2]) then
  extend(tkey(id), live_ttl)
end
return {went_idle(), reply(id, f)}
