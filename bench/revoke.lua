-- wrk script: RFC 7009 under load. Each request POSTs the next unused token
-- from the file given as the first script argument to /auth/revoke as a form
-- (a distinct revocation per request); the second is the number of wrk
-- threads, which split the file between them.
local tokenfile = require "bench.tokenfile"
setup = tokenfile.setup

function init(args)
  tokens, next_index = tokenfile.share(args[1], tonumber(args[2])), 0
end

function request()
  next_index = next_index + 1
  local token = tokens[next_index] or "exhausted"
  return wrk.format("POST", "/auth/revoke", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "token=" .. token)
end
