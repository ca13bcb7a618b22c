-- bench/wrk.sh's request: one tools/call (WRK_BODY), every reply checked for a status of 200 and a
-- marker every valid reply carries (WRK_EXPECT); done() prints one JSON line for the run.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
local expect = os.getenv("WRK_EXPECT")

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() bad = 0; bytes = 0 end
function response(status, _, body)
  bytes = #body
  if status ~= 200 or not string.find(body, expect, 1, true) then bad = bad + 1 end
end

function done(summary, latency)
  local b, size = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); size = math.max(size, t:get("bytes")) end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"reply_bytes":%d,"bad":%d,"errors":%d}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, size, b, e.connect + e.read + e.write + e.status + e.timeout))
end
