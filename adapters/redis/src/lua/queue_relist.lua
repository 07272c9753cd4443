-- relist: after the caller removed an idle scope from the active set, tells whether it became
-- busy meanwhile (then the caller adds it back). Reply 1 when busy.
if busy() then
  redis.call('HSET', meta, 'listed', '1')
  extend(meta, live_ttl)
  return 1
end
return 0
