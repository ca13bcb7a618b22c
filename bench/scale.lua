-- bench/scale.sh's HTTP pass: one-hit searches, SCALE_CONNECTIONS at a time, for a random entity
-- of the SCALE_SIZE that bench-stdio loaded (its observation "tag t<i>x" is the only match), each
-- reply checked for a status of 200 and exactly one entity; done() prints one JSON line.
local size = tonumber(os.getenv("SCALE_SIZE"))
local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
  ["MCP-Protocol-Version"] = "2025-11-25",
}

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("seed", os.time() + #threads)
end
function init() bad = 0; math.randomseed(seed) end

function request()
  local body = string.format(
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_nodes","arguments":{"query":"t%06dx"}}}',
    math.random(0, size - 1))
  return wrk.format("POST", nil, headers, body)
end

-- The structured content is compact JSON: `,"entityType":"` appears once an entity there, and
-- never in the text, where every quote is escaped.
function response(status, _, body)
  local _, entities = string.gsub(body, ',"entityType":"', "")
  if status ~= 200 or entities ~= 1 then bad = bad + 1 end
end

function done(summary, latency)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    '{"connections":%d,"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"bad":%d,"errors":%d}\n',
    tonumber(os.getenv("SCALE_CONNECTIONS")), summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, b, e.connect + e.read + e.write + e.status + e.timeout))
end
