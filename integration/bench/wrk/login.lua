-- POST /auth/login as the demo accounts test0000 … test(USERS-1), password testtest, cycling.
-- env: USERS (default 1000), WRK_THREADS (wrk's -t).
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  users = tonumber(os.getenv("USERS") or "1000")
  step = tonumber(os.getenv("WRK_THREADS") or "1")
  n = id
end

function request()
  local body = string.format('{"userId":"test%04d","password":"testtest"}', n % users)
  n = n + step
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" }, body)
end
