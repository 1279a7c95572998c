-- wrk script: refresh rotation under load. Each thread keeps a pool of
-- refresh tokens (the file given as the first script argument, split between
-- the threads); a request takes one, its answer gives back the rotated one.
-- With at least as many sessions as connections the pool never runs dry.
local tokenfile = require "bench.tokenfile"
setup = tokenfile.setup

function init(args)
  pool = tokenfile.share(args[1], tonumber(args[2]))
end

function request()
  local token = table.remove(pool) or "exhausted"
  return wrk.format("POST", "/auth/refresh", { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
