-- wrk script for scripts/bench-edge.sh, the same for every worker it compares: GET /v1/assign for
-- a new unit on every request (nothing can be cached per unit), with attributes that vary so that
-- every targeting outcome happens (country, age; platform is carried but not targeted).
--   wrk ... -s assign.lua URL                 exposures logged (our default)
--   wrk ... -s assign.lua URL -- expose=false  assignment only
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

local extra = ""
function init(args)
  if args[1] then extra = "&" .. args[1] end
end

local countries = { "US", "CA", "GB", "DE", "FR", "JP", "BR", "MX", "IN" }
local platforms = { "ios", "android", "web" }
local n = 0

request = function()
  n = n + 1
  return wrk.format("GET", "/v1/assign?unit_id=u" .. tostring(tag) .. "-" .. n ..
    "&country=" .. countries[n % #countries + 1] ..
    "&age=" .. tostring(16 + (n * 7) % 50) ..
    "&platform=" .. platforms[n % #platforms + 1] .. extra)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("errors: non-2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
