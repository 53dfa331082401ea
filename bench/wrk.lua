-- wrk script for bench/run.
--   BENCH_MODE=token      POST client_credentials (HTTP Basic acme-m2m:acme-m2m-secret, scope api.read)
--   BENCH_MODE=discovery  GET (the URL given to wrk)
--   BENCH_MODE=introspect POST token=$BENCH_TOKEN as the API https://api.acme.test (HTTP Basic)
--   BENCH_MODE=dpop       the token request, with a fresh DPoP proof (RFC 9449) per request: the
--                         next line of a file of pre-signed proofs (examples/dpop_proofs.rs), read
--                         as it goes: $BENCH_DPOP_PROOFS_WARMUP when BENCH_PHASE=warmup, else
--                         $BENCH_DPOP_PROOFS. Each file is read from its start, so the warm-up and
--                         the measured run need one each (the server refuses a jti it has seen).
--   BENCH_MODE=token_lua  the token request through the same request()/response() hooks as dpop,
--                         without a proof: the load generator's share of the cost of the dpop mode
--   BENCH_MODE=device_poll a device polling the token endpoint (RFC 8628 §3.4, public client
--                         acme-tv) for one of the pending authorizations whose device codes are the
--                         lines of $BENCH_DEVICE_CODES, in turn; the answer must be
--                         authorization_pending
--   BENCH_MODE=token_exchange RFC 8693 token exchange by the workload client acme-ci (no secret):
--                         its CI platform's JWT, $BENCH_SUBJECT_TOKEN, as the subject token of
--                         every request (an exchange does not use it up); the answer must be a
--                         200 with an issued_token_type
--   BENCH_MODE=saml_sso   SAML single sign-on with a live session (the SSO session cookie
--                         $BENCH_COOKIE): GET <the URL given to wrk>?SAMLRequest=… by the
--                         HTTP-Redirect binding (SAML bindings §3.4), a fresh unsigned AuthnRequest
--                         of the demo SP https://sp.acme.test per request (its own ID, IssueInstant
--                         now, Destination $BENCH_SAML_DESTINATION); the answer must be a 200 form
--                         posting a SAMLResponse with status Success and a signed assertion, in
--                         response to a request of this run not answered before. BENCH_PHASE=check
--                         (one connection) also writes the first answer's body and the path of
--                         the request it answers to $BENCH_SAML_CHECK.body and .path (bench/run
--                         checks them).
--   BENCH_MODE=register   RFC 7591 registration (open policy) of a client_credentials client:
--                         POST the JSON metadata; the answer must be a 201 with a client_secret;
--                         each new client's "client_id client_secret" is appended to
--                         $BENCH_REGISTERED.<thread> when that is set
--   BENCH_MODE=fresh_token the token request (client_credentials, scope api.read) of the clients
--                         whose HTTP Basic values are the lines of $BENCH_CLIENTS, in turn: the
--                         first request of each is its first ever (the client is not cached yet)
-- done() prints one machine-readable line:
--   BENCH_RESULT requests=N duration_us=N rps=F p50_ms=F p99_ms=F connect=N read=N write=N status=N timeout=N
-- `status` is wrk's own count of responses with an HTTP status >= 400 (its "Non-2xx or 3xx
-- responses" line); the others are socket errors and timeouts. Counting is left to wrk itself: a Lua
-- response() hook would make wrk hand every response to Lua and cost the load generator CPU that it
-- shares with the server on a 2-core machine. bench/run checks each endpoint's exact 200 with curl
-- before loading it.
-- The dpop and token_lua modes cannot leave it to wrk (each request differs, and each answer must
-- be a token of the right type), so they define request() and response(); introspect cannot
-- either (an introspection answer is a 200 even for a dead or unknown token: only its body says
-- `"active":true`), so it defines response(); token_exchange defines response() too, so that
-- any answer but a 200 carrying a token counts (wrk's own count misses 2xx and 3xx answers).
-- These modes append
--   ok=N failures=N exhausted=N
-- ok: 200 answers whose body has "token_type":"DPoP" (dpop), "token_type":"Bearer" (token_lua)
-- or "active":true (introspect), 200 answers with "issued_token_type":"…access_token"
-- (token_exchange), 200 forms posting a signed Success Response to an open request (saml_sso);
-- failures: every other answer, a 200 {"active":false} and a SAML error Response included;
-- exhausted: requests sent after the proof file ran out (a proof file too short for the rate;
-- such requests carry no usable proof and fail).

local mode = os.getenv("BENCH_MODE") or "discovery"

-- request() and response() hooks:
local hooked = mode == "dpop" or mode == "token_lua" or mode == "device_poll" or mode == "fresh_token"
-- every answer checked by response():
local checked = hooked or mode == "introspect" or mode == "token_exchange" or mode == "saml_sso"
  or mode == "register"

if mode == "device_poll" then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
elseif mode == "token" or hooked then
  wrk.method = "POST"
  wrk.body = "grant_type=client_credentials&scope=api.read"
  wrk.headers["Authorization"] = "Basic YWNtZS1tMm06YWNtZS1tMm0tc2VjcmV0" -- acme-m2m:acme-m2m-secret
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
elseif mode == "discovery" then
  wrk.method = "GET"
elseif mode == "register" then
  wrk.method = "POST"
  wrk.body = '{"client_name":"bench","grant_types":["client_credentials"],"response_types":[],'
    .. '"token_endpoint_auth_method":"client_secret_basic","scope":"api.read"}'
  wrk.headers["Content-Type"] = "application/json"
elseif mode == "token_exchange" then
  local jwt = os.getenv("BENCH_SUBJECT_TOKEN") or ""
  if jwt == "" then error("BENCH_SUBJECT_TOKEN is not set") end
  wrk.method = "POST"
  wrk.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=acme-ci"
    .. "&subject_token=" .. jwt
    .. "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
elseif mode == "saml_sso" then
  wrk.method = "GET"
  wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE") or ""
  if wrk.headers["Cookie"] == "" then error("BENCH_COOKIE is not set") end
elseif mode == "introspect" then
  -- The API https://api.acme.test (demo secret acme-api-secret) asks about a reference token.
  wrk.method = "POST"
  wrk.body = "token=" .. (os.getenv("BENCH_TOKEN") or "")
  wrk.headers["Authorization"] = "Basic aHR0cHMlM0ElMkYlMkZhcGkuYWNtZS50ZXN0OmFjbWUtYXBpLXNlY3JldA=="
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
else
  error("BENCH_MODE must be token, discovery, introspect, dpop, token_lua, device_poll, token_exchange, saml_sso, register or fresh_token, got "
    .. mode)
end
wrk.headers["Accept"] = mode == "saml_sso" and "text/html" or "application/json"

-- saml_sso: one fresh AuthnRequest per request (request()), each answer checked (saml_answered).
local saml_answered
if mode == "saml_sso" then
  local bit = require("bit")
  local destination = os.getenv("BENCH_SAML_DESTINATION") or ""
  if destination == "" then error("BENCH_SAML_DESTINATION is not set") end
  local SP = "https://sp.acme.test"
  local ACS = "http://127.0.0.1:9000/saml/acs"
  local phase = os.getenv("BENCH_PHASE") or "measure"
  local check_file = phase == "check" and os.getenv("BENCH_SAML_CHECK") or nil
  local sso_path = wrk.path

  local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local enc, dec = {}, {}
  for i = 0, 63 do
    enc[i] = B64:sub(i + 1, i + 1)
    dec[B64:byte(i + 1)] = i
  end
  local band, rshift = bit.band, bit.rshift

  local function base64(s)
    local out, n, len = {}, 0, #s
    for i = 1, len - 2, 3 do
      local a, b, c = s:byte(i, i + 2)
      local v = a * 65536 + b * 256 + c
      n = n + 1
      out[n] = enc[rshift(v, 18)] .. enc[band(rshift(v, 12), 63)] .. enc[band(rshift(v, 6), 63)] .. enc[band(v, 63)]
    end
    local rest = len % 3
    if rest == 1 then
      local a = s:byte(len)
      out[n + 1] = enc[rshift(a, 2)] .. enc[band(a, 3) * 16] .. "=="
    elseif rest == 2 then
      local a, b = s:byte(len - 1, len)
      local v = a * 256 + b
      out[n + 1] = enc[rshift(v, 10)] .. enc[band(rshift(v, 4), 63)] .. enc[band(v, 15) * 4] .. "="
    end
    return table.concat(out)
  end

  -- nil unless s is base64 (with its padding).
  local function unbase64(s)
    local out, n, len = {}, 0, #s
    if len % 4 ~= 0 then return nil end
    for i = 1, len, 4 do
      local a, b, c, d = s:byte(i, i + 3)
      local va, vb, vc, vd = dec[a], dec[b], dec[c], dec[d]
      if not va or not vb then return nil end
      local v = va * 262144 + vb * 4096 + (vc or 0) * 64 + (vd or 0)
      n = n + 1
      if vd and vc then
        out[n] = string.char(rshift(v, 16), band(rshift(v, 8), 255), band(v, 255))
      elseif vc and d == 61 and i + 3 == len then
        out[n] = string.char(rshift(v, 16), band(rshift(v, 8), 255))
      elseif c == 61 and d == 61 and i + 3 == len then
        out[n] = string.char(rshift(v, 16))
      else
        return nil
      end
    end
    return table.concat(out)
  end

  -- RFC 1951 §3.2.4: raw DEFLATE of stored (uncompressed) blocks: BFINAL/BTYPE=00 in one byte,
  -- then LEN and its complement NLEN (16 bits, little-endian), then LEN bytes.
  local function stored_deflate(s)
    local out, pos, len = {}, 1, #s
    repeat
      local chunk = s:sub(pos, pos + 65534)
      local n = #chunk
      pos = pos + n
      local nlen = band(bit.bnot(n), 0xffff)
      out[#out + 1] = string.char(pos > len and 1 or 0, band(n, 255), rshift(n, 8), band(nlen, 255), rshift(nlen, 8))
      out[#out + 1] = chunk
    until pos > len
    return table.concat(out)
  end

  local PERCENT = { ["+"] = "%2B", ["/"] = "%2F", ["="] = "%3D" }
  local function query_value(s)
    return (s:gsub("[+/=]", PERCENT))
  end

  -- SAML core §1.3.3: UTC, whole seconds (os.date once a second).
  local last_t, instant = -1, nil
  local function issue_instant()
    local t = os.time()
    if t ~= last_t then
      last_t, instant = t, os.date("!%Y-%m-%dT%H:%M:%SZ", t)
    end
    return instant
  end

  -- Unique IDs (xs:ID, SAML core §1.3.4): the phase, the second the script started, wrk's
  -- thread and a counter. The server refuses an ID it has seen (the warm-up's included).
  local prefix, counter = nil, 0
  local open = {} -- IDs sent and not yet answered
  -- check: the path of the request last made. wrk makes a request again when its first write
  -- must be retried (TLS), without sending the first one; on one connection, the last one made
  -- is the one answered.
  local last_path, first_body

  function request()
    if not prefix then
      prefix = string.format("_bench%s%x_%d_", phase:sub(1, 1), os.time(), slot or 0)
    end
    counter = counter + 1
    local id = prefix .. counter
    open[id] = true
    local xml = '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
      .. 'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="' .. id .. '" Version="2.0" '
      .. 'IssueInstant="' .. issue_instant() .. '" Destination="' .. destination .. '" '
      .. 'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
      .. 'AssertionConsumerServiceURL="' .. ACS .. '"><saml:Issuer>' .. SP .. '</saml:Issuer>'
      .. '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" '
      .. 'AllowCreate="true"/></samlp:AuthnRequest>'
    local path = sso_path .. "?SAMLRequest=" .. query_value(base64(stored_deflate(xml))) .. "&RelayState=bench"
    if check_file then last_path = path end
    return wrk.format(nil, path)
  end

  -- A 200 form posting (SAML bindings §3.5.4) a Response with status Success and a signed
  -- assertion, in response to an open request of this run (then no longer open).
  saml_answered = function(status, body)
    if check_file and not first_body then
      first_body = body or ""
      local f = assert(io.open(check_file .. ".path", "w"))
      f:write(last_path or "", "\n")
      f:close()
      f = assert(io.open(check_file .. ".body", "w"))
      f:write(first_body)
      f:close()
    end
    if status ~= 200 or not body then return false end
    local v = body:match('name="SAMLResponse" value="([^"]*)"')
    if not v then return false end
    -- The page's HTML escaping of base64 (minijinja writes "/" as "&#x2f;").
    v = v:gsub("&#[xX](%x+);", function(h) return string.char(tonumber(h, 16)) end)
    local xml = unbase64(v)
    if not xml then return false end
    local answers = xml:match('<samlp:Response [^>]*InResponseTo="([^"]+)"')
    if not answers or not open[answers] then return false end
    open[answers] = nil
    return xml:find('<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>', 1, true) ~= nil
      and xml:find("<saml:Assertion ", 1, true) ~= nil
      and xml:find("<ds:SignatureValue>[A-Za-z0-9+/=\r\n]+</ds:SignatureValue>") ~= nil
  end
end

if checked then
  -- Globals, so that done() can read them from each thread (thread:get).
  ok = 0
  failures = 0
  exhausted = 0
  local want = ({
    dpop = '"token_type":"DPoP"',
    token_lua = '"token_type":"Bearer"',
    fresh_token = '"token_type":"Bearer"',
    register = '"client_secret":"',
    introspect = '"active":true',
    device_poll = '"error":"authorization_pending"',
    token_exchange = '"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"',
  })[mode]
  -- RFC 8628 §3.5: "authorization_pending" is a 400 like every token endpoint error.
  local want_status = (mode == "device_poll" and 400) or (mode == "register" and 201) or 200
  local registered = nil
  if mode == "register" and (os.getenv("BENCH_REGISTERED") or "") ~= "" then
    registered = true
  end

  function response(status, _, resp_body)
    if registered and status == 201 and resp_body then
      if registered == true then
        registered = assert(io.open(os.getenv("BENCH_REGISTERED") .. "." .. (slot or 0), "a"))
      end
      local id = resp_body:match('"client_id":"([^"]+)"')
      local secret = resp_body:match('"client_secret":"([^"]+)"')
      if id and secret then registered:write(id, " ", secret, "\n") end
    end
    if mode == "saml_sso" then
      if saml_answered(status, resp_body) then ok = ok + 1 else failures = failures + 1 end
      return
    end
    if status == want_status and resp_body and resp_body:find(want, 1, true) then
      ok = ok + 1
    else
      failures = failures + 1
    end
  end

  local threads = {}
  function setup(thread)
    thread:set("slot", #threads)
    table.insert(threads, thread)
  end

  function extra()
    local o, f, x = 0, 0, 0
    for _, t in ipairs(threads) do
      o = o + t:get("ok")
      f = f + t:get("failures")
      x = x + t:get("exhausted")
    end
    return string.format(" ok=%d failures=%d exhausted=%d", o, f, x)
  end
end

if hooked then
  local proofs -- this thread's proof file
  -- With several wrk threads (BENCH_THREADS), thread k of n takes lines k, k + n, k + 2n, ...
  -- so that no two threads send the same proof.
  local skip, stride = 0, 1
  local body = wrk.body
  local headers = {
    ["Authorization"] = wrk.headers["Authorization"],
    ["Content-Type"] = wrk.headers["Content-Type"],
    ["Accept"] = "application/json",
  }

  local codes, next_code = nil, 0
  local clients, next_client = nil, 0
  function init(args)
    if mode == "fresh_token" then
      local path = os.getenv("BENCH_CLIENTS")
      if not path or path == "" then error("BENCH_CLIENTS is not set") end
      clients = {}
      for line in io.lines(path) do
        if line ~= "" then table.insert(clients, line) end
      end
      if #clients == 0 then error("no clients in " .. path) end
      -- Threads take their own share: thread k starts at its k-th part of the list.
      next_client = math.floor((slot or 0) * #clients / (tonumber(os.getenv("BENCH_THREADS") or "") or 1))
      return
    end
    if mode == "device_poll" then
      local path = os.getenv("BENCH_DEVICE_CODES")
      if not path or path == "" then error("BENCH_DEVICE_CODES is not set") end
      codes = {}
      for line in io.lines(path) do
        if line ~= "" then table.insert(codes, line) end
      end
      if #codes == 0 then error("no device codes in " .. path) end
      -- Threads start at different codes.
      next_code = (slot or 0) * 97
      return
    end
    if mode ~= "dpop" then return end
    local var = os.getenv("BENCH_PHASE") == "warmup" and "BENCH_DPOP_PROOFS_WARMUP" or "BENCH_DPOP_PROOFS"
    local path = os.getenv(var)
    if not path or path == "" then error(var .. " is not set") end
    proofs = assert(io.open(path, "r"))
    skip = slot or 0
    stride = tonumber(os.getenv("BENCH_THREADS") or "") or 1
  end

  local function next_proof()
    for _ = 1, skip do proofs:read("*l") end
    skip = stride - 1
    return proofs:read("*l")
  end

  function request()
    if clients then
      next_client = next_client % #clients + 1
      headers["Authorization"] = "Basic " .. clients[next_client]
      return wrk.format("POST", wrk.path, headers, body)
    end
    if codes then
      next_code = next_code % #codes + 1
      return wrk.format("POST", wrk.path, headers,
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=acme-tv&device_code="
          .. codes[next_code])
    end
    if proofs then
      local proof = next_proof()
      if not proof then
        exhausted = exhausted + 1
        proof = "exhausted"
      end
      headers["DPoP"] = proof
    end
    return wrk.format("POST", wrk.path, headers, body)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f connect=%d read=%d write=%d status=%d timeout=%d%s\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout, checked and extra() or ""))
end
