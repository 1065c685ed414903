-- wrk script: GET a random user's recommendations (MODE=recommend, default) or similar users
-- (MODE=similar), k=10, over users u0..u<USERS-1>.
--   MODE=similar USERS=100000 wrk -t1 -c16 -d20s --latency -s bench/wrk_random_user.lua http://127.0.0.1:8080
local users = tonumber(os.getenv("USERS") or "100000")
local mode = os.getenv("MODE") or "recommend"
local token = os.getenv("TOKEN")

function init(args)
  -- A different sequence per wrk thread.
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local u = math.random(0, users - 1)
  local path
  if mode == "similar" then
    path = "/v1/users/u" .. u .. "/similar?k=10"
  else
    path = "/v1/users/u" .. u .. "/recommendations?k=10"
  end
  local headers = nil
  if token then headers = { ["Authorization"] = "Bearer " .. token } end
  return wrk.format("GET", path, headers)
end

-- No response() hook: it would make wrk parse every body in Lua. Non-2xx answers are
-- counted by wrk itself (summary.errors.status) and printed below.
function done(summary, latency, requests)
  io.write(string.format("non-2xx or socket errors: %d\n",
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
  io.write(string.format("p50 %.3f ms  p99 %.3f ms  requests/s %.0f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
