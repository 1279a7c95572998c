-- wrk script: each request logs out with the next unused token from the file
-- given as the first script argument (a distinct revocation per request).
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end

function init(args)
  local path, threads = args[1], tonumber(args[2])
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
  return wrk.format("POST", "/auth/logout", { ["Authorization"] = "Bearer " .. token })
end
