-- Shared by the wrk scripts: wrk's threads number themselves in setup(), and
-- each thread keeps its share of a token file (every `threads`-th line).
-- Loaded with require "bench.tokenfile" (wrk runs from the repository root).
local M = {}
local count = 0

function M.setup(thread)
  thread:set("id", count)
  count = count + 1
end

-- The lines of `path` that belong to this thread (`id`, set by setup).
function M.share(path, threads)
  local mine, i = {}, 0
  for line in io.lines(path) do
    if i % threads == id then mine[#mine + 1] = line end
    i = i + 1
  end
  return mine
end

return M
