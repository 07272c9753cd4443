-- POST /orders for admitted buyers of one event, each buyer once.
-- env: ADMITTED = file of `access-token<TAB>gate-token<TAB>ticket-id` lines (flash-bench-drive
--      admit); EVENT = event id; WRK_THREADS = wrk's -t. Thread k sends lines k, k+T, k+2T, …;
--      past the end it sends its last line again (an idempotent replay: same key, same body).
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  buyers = {}
  for line in io.lines(os.getenv("ADMITTED")) do
    local access, gate = line:match("^([^\t]+)\t([^\t]+)")
    buyers[#buyers + 1] = { access, gate, "bench-" .. #buyers }
  end
  step = tonumber(os.getenv("WRK_THREADS") or "1")
  i = id + 1
  body = '{"event_id":"' .. os.getenv("EVENT") .. '","qty":1}'
end

function request()
  local b = buyers[i]
  if i + step <= #buyers then
    i = i + step
  end
  return wrk.format("POST", "/orders", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. b[1],
    ["X-Gate-Token"] = b[2],
    ["Idempotency-Key"] = b[3],
  }, body)
end
