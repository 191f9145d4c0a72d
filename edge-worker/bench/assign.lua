-- wrk script for scripts/bench-edge.sh, the same for every worker it compares: /v1/assign for a
-- new unit on every request (nothing can be cached per unit), with attributes that vary so that
-- every targeting outcome happens (country, age; platform is carried but not targeted).
--   wrk ... -s assign.lua URL                      GET, exposures logged (our default)
--   wrk ... -s assign.lua URL -- expose=false       GET, assignment only
--   wrk ... -s assign.lua URL -- post expose=false  POST {"unit_id","attributes",...}, as SDKs send it
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end

local extra = ""
local post = false
local noexpose = false
function init(args)
  for _, a in ipairs(args) do
    if a == "post" then post = true else extra = extra .. "&" .. a end
    if a == "expose=false" then noexpose = true end
  end
end

local countries = { "US", "CA", "GB", "DE", "FR", "JP", "BR", "MX", "IN" }
local platforms = { "ios", "android", "web" }
local n = 0

request = function()
  n = n + 1
  if post then
    local body = '{"unit_id":"u' .. tostring(tag) .. "-" .. n .. '","attributes":{"country":"' ..
      countries[n % #countries + 1] .. '","age":' .. tostring(16 + (n * 7) % 50) ..
      ',"platform":"' .. platforms[n % #platforms + 1] .. '"}' .. (noexpose and ',"expose":false' or "") .. "}"
    return wrk.format("POST", "/v1/assign", { ["content-type"] = "application/json" }, body)
  end
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
