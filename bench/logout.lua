-- wrk script: each request POSTs to the path given as the third script
-- argument (default /auth/logout) with the next unused token from the file
-- given as the first (a distinct revocation per request); the second is the
-- number of wrk threads, which split the file between them.
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end

function init(args)
  local path, threads = args[1], tonumber(args[2])
  target = args[3] or "/auth/logout"
  tokens, next_index = {}, 0
  local i = 0
  for line in io.lines(path) do
    if i % threads == id then tokens[#tokens + 1] = line end
    i = i + 1
  end
end

function request()
  next_index = next_index + 1
  local token = tokens[next_index] or "exhausted"
  return wrk.format("POST", target, { ["Authorization"] = "Bearer " .. token })
end
