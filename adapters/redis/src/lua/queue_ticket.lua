-- ticket: ARGV[5] ticket id. Reply {went_idle, ticket|nil}.
local id = ARGV[5]
local f = look(id)
if not f then
  return {0, false}
end
return {went_idle(), reply(id, f)}
