-- wrk script: POST a distinct chat body per request (so no cache can answer), report JSON at the end.
-- Usage: wrk -t1 -cN -dDs -s post.lua URL -- PREFIX
local counter = 0
local prefix = "bench"
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer sk-bench" }

function init(args)
  if args[1] ~= nil then
    prefix = args[1]
  end
end

function request()
  counter = counter + 1
  local body = '{"model":"bench-model","messages":[{"role":"user","content":"Question: ' .. prefix
    .. ' request ' .. counter .. ' of the proxy benchmark. What is 2 + ' .. counter
    .. '? Answer:"}],"max_tokens":16,"temperature":0}'
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
