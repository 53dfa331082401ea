-- wrk script for bench/run.
--   BENCH_MODE=token      POST client_credentials (HTTP Basic acme-m2m:acme-m2m-secret, scope api.read)
--   BENCH_MODE=discovery  GET (the URL given to wrk)
--   BENCH_MODE=introspect POST token=$BENCH_TOKEN as the API https://api.acme.test (HTTP Basic)
-- done() prints one machine-readable line:
--   BENCH_RESULT requests=N duration_us=N rps=F p50_ms=F p99_ms=F connect=N read=N write=N status=N timeout=N
-- `status` is wrk's own count of responses with an HTTP status >= 400 (its "Non-2xx or 3xx
-- responses" line); the others are socket errors and timeouts. Counting is left to wrk itself: a Lua
-- response() hook would make wrk hand every response to Lua and cost the load generator CPU that it
-- shares with the server on a 2-core machine. bench/run checks each endpoint's exact 200 with curl
-- before loading it.

local mode = os.getenv("BENCH_MODE") or "discovery"

if mode == "token" then
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials&scope=api.read"
  wrk.headers["Authorization"] = "Basic YWNtZS1tMm06YWNtZS1tMm0tc2VjcmV0" -- acme-m2m:acme-m2m-secret
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
elseif mode == "discovery" then
  wrk.method = "GET"
elseif mode == "introspect" then
  -- The API https://api.acme.test (demo secret acme-api-secret) asks about a reference token.
  wrk.method = "POST"
  wrk.body = "token=" .. (os.getenv("BENCH_TOKEN") or "")
  wrk.headers["Authorization"] = "Basic aHR0cHMlM0ElMkYlMkZhcGkuYWNtZS50ZXN0OmFjbWUtYXBpLXNlY3JldA=="
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
else
  error("BENCH_MODE must be token, discovery or introspect, got " .. mode)
end
wrk.headers["Accept"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
