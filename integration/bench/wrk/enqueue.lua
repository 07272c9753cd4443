-- POST /queue/enqueue, a different buyer on every request.
-- env: TOKENS = file of access tokens, one per line (flash-bench-tokens); EVENT = event id;
--      WRK_THREADS = wrk's -t. Thread k sends tokens k, k+T, k+2T, … and wraps around
--      (a wrapped request is an idempotent repeat: fewer new tickets than requests).
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  tokens = {}
  for line in io.lines(os.getenv("TOKENS")) do
    tokens[#tokens + 1] = line
  end
  step = tonumber(os.getenv("WRK_THREADS") or "1")
  i = id + 1
  wrapped = 0
  body = '{"eventId":"' .. os.getenv("EVENT") .. '"}'
end

function request()
  local t = tokens[i]
  i = i + step
  if i > #tokens then
    i = id + 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", "/queue/enqueue",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t }, body)
end
