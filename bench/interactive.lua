-- wrk script for bench/run: interactive sign-in, several requests per unit of work.
--   BENCH_MODE=sso    single-sign-on round trips with an existing session cookie (BENCH_COOKIE):
--                     GET /acme/connect/authorize (acme-web, remembered consent) → 303 with a code
--                     → POST /acme/connect/token (authorization_code + PKCE); one unit = one token
--   BENCH_MODE=login  password logins at acme-spa: GET authorize → GET the login page
--                     (CSRF token, browser-binding cookie) → POST the form → 303 with a code;
--                     one unit = one successful login. The users are bench-01 … bench-NN
--                     (BENCH_LOGIN_USERS, password bench-password, added by bench/run), taken in
--                     turn: one user may have only a few password checks in flight at once
--                     (each takes a failure slot until it succeeds, src/users/throttle.rs), as
--                     many people signing in at once do; with BENCH_LOGIN_USERS unset, alice.
-- wrk's Lua state is per thread, shared by that thread's connections, so work items travel in
-- FIFO queues: any connection may take the next step of any flow (a code is not tied to the
-- connection that received it).
-- done() prints: BENCH_RESULT units=N requests=N duration_us=N units_per_s=F failures=N
--                connect=N read=N write=N status=N timeout=N

local mode = os.getenv("BENCH_MODE") or "sso"
local cookie = os.getenv("BENCH_COOKIE") or ""
local VERIFIER = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
-- base64url(SHA-256(VERIFIER)), computed by bench/run and passed in.
local CHALLENGE = os.getenv("BENCH_CHALLENGE") or ""

units = 0
failures = 0

local function queue()
  return { first = 1, last = 0, items = {} }
end
local function push(q, v)
  q.last = q.last + 1
  q.items[q.last] = v
end
local function pop(q)
  if q.first > q.last then return nil end
  local v = q.items[q.first]
  q.items[q.first] = nil
  q.first = q.first + 1
  return v
end

local function header(headers, name)
  return headers[name] or headers[name:lower()] or headers[name:gsub("^%l", string.upper)]
end

local function path_of(url)
  return (url:gsub("^https?://[^/]+", ""))
end

local codes = queue()       -- sso: codes waiting for redemption
local to_page = queue()     -- login: {path, bind} of login pages to fetch
local to_post = queue()     -- login: {interaction, csrf, bind} forms to submit
local binds = {}            -- login: interaction id → binding cookie

local SSO_AUTHORIZE = "/acme/connect/authorize?client_id=acme-web&response_type=code"
  .. "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&scope=openid%20profile%20api.read"
  .. "&state=bench&nonce=bench&code_challenge=" .. CHALLENGE .. "&code_challenge_method=S256"
local LOGIN_AUTHORIZE = "/acme/connect/authorize?client_id=acme-spa&response_type=code"
  .. "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fspa%2Fcallback&scope=openid"
  .. "&code_challenge=" .. CHALLENGE .. "&code_challenge_method=S256"
local FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local LOGIN_USERS = tonumber(os.getenv("BENCH_LOGIN_USERS") or "0") or 0
local next_user = 0
local function credentials()
  if LOGIN_USERS < 1 then return "username=alice&password=alice-password" end
  next_user = next_user % LOGIN_USERS + 1
  return string.format("username=bench-%02d&password=bench-password", next_user)
end

function request()
  if mode == "sso" then
    local code = pop(codes)
    if code then
      return wrk.format("POST", "/acme/connect/token", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Authorization"] = "Basic YWNtZS13ZWI6YWNtZS13ZWItc2VjcmV0", -- acme-web:acme-web-secret
      }, "grant_type=authorization_code&code=" .. code
        .. "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9000%2Fcallback&code_verifier=" .. VERIFIER)
    end
    return wrk.format("GET", SSO_AUTHORIZE, { ["Cookie"] = cookie })
  end
  local form = pop(to_post)
  if form then
    return wrk.format("POST", "/acme/account/login", {
      ["Content-Type"] = FORM["Content-Type"],
      ["Cookie"] = "portcullis.bind=" .. form.bind,
    }, "interaction=" .. form.interaction .. "&csrf=" .. form.csrf .. "&" .. credentials())
  end
  local page = pop(to_page)
  if page then
    return wrk.format("GET", page.path, { ["Cookie"] = "portcullis.bind=" .. page.bind })
  end
  return wrk.format("GET", LOGIN_AUTHORIZE)
end

function response(status, headers, body)
  if mode == "sso" then
    if status == 303 then
      local code = (header(headers, "Location") or ""):match("[?&]code=([^&]+)")
      if code then push(codes, code) else failures = failures + 1 end
    elseif status == 200 and body:find('"access_token"', 1, true) then
      units = units + 1
    else
      failures = failures + 1
    end
    return
  end
  if status == 303 then
    local location = header(headers, "Location") or ""
    if location:find("code=", 1, true) then
      units = units + 1
      return
    end
    local id = location:match("account/login%?interaction=([%w_-]+)")
    local bind = (header(headers, "Set-Cookie") or ""):match("portcullis%.bind=([%w_-]+)")
    if id and bind then
      binds[id] = bind
      push(to_page, { path = path_of(location), bind = bind })
      return
    end
  elseif status == 200 then
    local id = body:match('name="interaction" value="([%w_-]+)"')
    local csrf = body:match('name="csrf" value="([%w_-]+)"')
    if id and csrf and binds[id] then
      push(to_post, { interaction = id, csrf = csrf, bind = binds[id] })
      binds[id] = nil
      return
    end
  end
  failures = failures + 1
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local u, f = 0, 0
  for _, t in ipairs(threads) do
    u = u + t:get("units")
    f = f + t:get("failures")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT units=%d requests=%d duration_us=%d units_per_s=%.1f failures=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    u, summary.requests, summary.duration, u / (summary.duration / 1e6), f,
    e.connect, e.read, e.write, e.status, e.timeout))
end
