-- bench/scale's token requests: client_credentials with HTTP Basic (BENCH_BASIC: base64 of
-- client_id:secret); every answer must be a 200.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=api.read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
