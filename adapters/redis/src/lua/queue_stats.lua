-- stats: ARGV[5] stats window cut-off. Reply {went_idle, queued, admitted, used, recent, phase,
-- decayed admissions in thousandths}.
expire_front()
redis.call('ZREMRANGEBYSCORE', recent, '-inf', ARGV[5])
local used = tonumber(redis.call('HGET', meta, 'used') or '0') or 0
return {
  went_idle(),
  redis.call('ZCARD', queued),
  redis.call('ZCARD', admitted),
  used,
  redis.call('ZCARD', recent),
  phase(),
  decayed_milli(now - tonumber(ARGV[5])),
}
