-- wrk script: GET the path given as the third script argument (default
-- /protected) with the tokens of the file given as the first, in rotation
-- (each thread cycles through its share; the second argument is the
-- number of wrk threads). For a cache keyed by token, every token is seen
-- again only after all the others.
local tokenfile = require "bench.tokenfile"
setup = tokenfile.setup

function init(args)
  target = args[3] or "/protected"
  tokens, next_index = tokenfile.share(args[1], tonumber(args[2])), 0
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("GET", target, { ["Authorization"] = "Bearer " .. tokens[next_index] })
end
