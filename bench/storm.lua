-- wrk script: failed logins. The first script argument picks the storm:
--   one   the same username again and again: throttled once it has used up
--         login_max_failures, so almost every answer is a cheap 429
--   many  a new username every request: never throttled, so every one is
--         hashed or, when the hashing queue is full, shed with a 503
-- done() prints how the service answered.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

function init(args)
  mode, sent = args[1] or "one", 0
  c401, c429, c503, other = 0, 0, 0, 0
end

function request()
  sent = sent + 1
  local name = "stormvictim"
  if mode == "many" then name = string.format("storm%d-%d", id, sent) end
  return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" },
    '{"username":"' .. name .. '","password":"not the password"}')
end

function response(status)
  if status == 401 then c401 = c401 + 1
  elseif status == 429 then c429 = c429 + 1
  elseif status == 503 then c503 = c503 + 1
  else other = other + 1 end
end

function done()
  local t = { 0, 0, 0, 0 }
  for _, thread in ipairs(threads) do
    t[1] = t[1] + thread:get("c401")
    t[2] = t[2] + thread:get("c429")
    t[3] = t[3] + thread:get("c503")
    t[4] = t[4] + thread:get("other")
  end
  io.write(string.format("answers: 401=%d 429=%d 503=%d other=%d\n", t[1], t[2], t[3], t[4]))
end
