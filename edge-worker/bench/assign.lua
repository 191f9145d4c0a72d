-- wrk script for scripts/bench-edge.sh: GET /v1/assign for a new unit on every request (so the
-- worker cannot answer from anything cached per unit), with attributes that exercise targeting.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/v1/assign?unit_id=bench-" .. tostring(tag) .. "-" .. n ..
    "&country=US&platform=ios&age=30&app_version=2.3.1&email=a%40example.com")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("errors: non-2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
