-- wrk script: POST the JSON bodies of a file (one a line) in rotation, count every response
-- that is not a 200, and print one machine-parseable WRK_RESULT line (and WRK_FIRST_BAD):
--   wrk -t2 -c16 -d60s -s benchmarks/wrk/post_bodies.lua URL -- bodies.jsonl

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s post_bodies.lua <url> -- <bodies.jsonl>")
  end
  -- The -H headers (a bearer token for an authenticated API) plus the body's type.
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Content-Type"] = "application/json"
  prepared = {}
  for line in io.lines(path) do
    if #line > 0 then
      prepared[#prepared + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  if #prepared == 0 then
    error("no bodies in " .. path)
  end
  -- Threads start far apart in the rotation so they do not ask for the same applicant together.
  position = (thread_id * 499) % #prepared
  responses = 0
  non200 = 0
  first_bad_status = 0
  first_bad_body = ""
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad_status == 0 then
      first_bad_status = status
      first_bad_body = string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total_responses, total_non200 = 0, 0
  local bad_status, bad_body = 0, ""
  for _, thread in ipairs(threads) do
    total_responses = total_responses + thread:get("responses")
    total_non200 = total_non200 + thread:get("non200")
    if bad_status == 0 and thread:get("first_bad_status") ~= 0 then
      bad_status = thread:get("first_bad_status")
      bad_body = thread:get("first_bad_body")
    end
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_s": %.3f, "rps": %.2f, "mean_ms": %.3f, '
      .. '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "responses": %d, '
      .. '"non200": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"timeouts": %d, "status_errors": %d, "first_bad_status": %d}\n',
    summary.requests, seconds, summary.requests / seconds, latency.mean / 1000,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, total_responses, total_non200,
    e.connect, e.read, e.write, e.timeout, e.status, bad_status
  ))
  if bad_status ~= 0 then
    io.write(string.format("WRK_FIRST_BAD status=%d body=%q\n", bad_status, bad_body))
  end
end
