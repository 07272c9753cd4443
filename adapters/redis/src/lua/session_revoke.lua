-- revoke (logout): KEYS[1] family hash. Marks a remembered family revoked, keeping its TTL (it
-- already covers the family's longest-lived token); a family nobody remembers needs nothing.
-- Reply 1 when the family was marked, else 0.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return 1
end
return 0
