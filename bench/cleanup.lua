-- bench/cleanup's steady load: client_credentials with HTTP Basic (BENCH_BASIC: base64 of
-- client_id:secret) at a fixed rate per connection (BENCH_DELAY_MS between a connection's
-- requests). Every answer must be a 200; done() prints the counts.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=api.read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "20")

function delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT requests=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
end
