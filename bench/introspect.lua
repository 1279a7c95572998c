-- wrk script: POST /oauth/introspect as a registered client (the third
-- script argument: its "Basic …" credentials), asking about the tokens of
-- the file given as the first, in rotation (the second is the number of
-- wrk threads).
local tokenfile = require "bench.tokenfile"
setup = tokenfile.setup

function init(args)
  basic = args[3]
  tokens, next_index = tokenfile.share(args[1], tonumber(args[2])), 0
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("POST", "/oauth/introspect", {
    ["Authorization"] = basic,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "token=" .. tokens[next_index])
end
