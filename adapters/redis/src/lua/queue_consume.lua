-- consume: ARGV[5] ticket id. READY/USED -> ORDERED; a no-op otherwise. Reply {went_idle, changed}.
local id = ARGV[5]
local f = read(id)
if not f then
  return {0, 0}
end
f = refresh(id, f)
if not is_admitted(f[2]) then
  return {went_idle(), 0}
end
finish(id, f, 'ORDERED')
return {went_idle(), 1}
