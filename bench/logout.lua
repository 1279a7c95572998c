-- wrk script: each request POSTs to the path given as the third script
-- argument (default /auth/logout) with the next unused token from the file
-- given as the first (a distinct revocation per request); the second is the
-- number of wrk threads, which split the file between them.
local tokenfile = require "bench.tokenfile"
setup = tokenfile.setup

function init(args)
  target = args[3] or "/auth/logout"
  tokens, next_index = tokenfile.share(args[1], tonumber(args[2])), 0
end

function request()
  next_index = next_index + 1
  local token = tokens[next_index] or "exhausted"
  return wrk.format("POST", target, { ["Authorization"] = "Bearer " .. token })
end
