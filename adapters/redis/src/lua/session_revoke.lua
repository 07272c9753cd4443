-- revoke: KEYS[1] token hash. Reply 1 when the token was unspent (now revoked), else 0.
if redis.call('HGET', KEYS[1], 'state') == 'unspent' then
  redis.call('HSET', KEYS[1], 'state', 'revoked')
  return 1
end
return 0
