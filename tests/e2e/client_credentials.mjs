// End-to-end check of the OAuth 2 client credentials grant, driven by third-party certified
// relying-party libraries (openid-client v6 for discovery and the token request, jose v6 for the
// access-token signature and claims). Nothing here shares code with the server.
//
// Run (normally by a Rust integration test):
//   ISSUER=https://localhost:PORT/acme CLIENT_ID=acme-m2m CLIENT_SECRET=acme-m2m-secret \
//   AUDIENCE=https://api.acme.test SCOPE=api.read NODE_EXTRA_CA_CERTS=certs/ca.pem \
//   node tests/e2e/client_credentials.mjs
//
// TLS verification stays on: the dev CA is trusted through NODE_EXTRA_CA_CERTS, never bypassed.
// Prints one "ok - ..." / "not ok - ..." line per check; exits 0 only if every check passed.

import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

const FORBIDDEN_SCOPE = 'api.admin';

let failures = 0;
let checks = 0;

function ok(name) {
  checks += 1;
  console.log(`ok - ${name}`);
}

function notOk(name, reason) {
  checks += 1;
  failures += 1;
  console.log(`not ok - ${name}: ${reason}`);
}

function check(name, condition, reason) {
  if (condition) ok(name);
  else notOk(name, reason);
  return condition;
}

function fatal(message) {
  console.log(`not ok - ${message}`);
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function env(name) {
  const value = process.env[name];
  if (value === undefined || value === '') fatal(`environment variable ${name} is not set`);
  return value;
}

function describeError(err) {
  if (err === null || typeof err !== 'object') return String(err);
  const parts = [`${err.name ?? 'Error'}: ${err.message}`];
  if (err.code) parts.push(`code=${err.code}`);
  if (err.status) parts.push(`status=${err.status}`);
  if (err.error) parts.push(`error=${err.error}`);
  if (err.error_description) parts.push(`error_description=${err.error_description}`);
  if (err.cause && !(err.cause instanceof Error)) {
    try {
      parts.push(`cause=${JSON.stringify(err.cause)}`);
    } catch {
      // not serialisable; the message is enough
    }
  } else if (err.cause instanceof Error) {
    parts.push(`cause=${err.cause.name}: ${err.cause.message}`);
  }
  return parts.join(' ');
}

// The OAuth `error` code carried by a failed token request. openid-client throws a
// ResponseBodyError (with `.error`) for a JSON error body; when the response also carries a
// WWW-Authenticate header (RFC 6749 §5.2 requires one on a 401 after HTTP Basic), it throws a
// WWWAuthenticateChallengeError first, whose body is still unread: take the code from the
// challenge's `error` parameter, else from the JSON body.
async function oauthErrorOf(err) {
  if (err instanceof client.ResponseBodyError) {
    return { error: err.error, via: `ResponseBodyError status=${err.status}` };
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const fromChallenge = err.cause?.find((c) => c?.parameters?.error)?.parameters?.error;
    if (fromChallenge) {
      return { error: fromChallenge, via: `WWW-Authenticate challenge status=${err.status}` };
    }
    try {
      const body = await err.response.json();
      return { error: body?.error, via: `WWW-Authenticate challenge + JSON body status=${err.status}` };
    } catch (bodyErr) {
      return { error: undefined, via: `WWW-Authenticate challenge, unreadable body: ${bodyErr.message}` };
    }
  }
  return { error: undefined, via: describeError(err) };
}

async function expectOAuthError(name, expected, promise) {
  let response;
  try {
    response = await promise;
  } catch (err) {
    const { error, via } = await oauthErrorOf(err);
    if (error === expected) ok(`${name} (${via})`);
    else notOk(name, `expected error "${expected}", got "${error}" (${via})`);
    return;
  }
  notOk(name, `expected error "${expected}" but a token was issued (token_type=${response?.token_type})`);
}

async function discover(label, issuer, clientId, clientSecret, clientAuthentication) {
  const config = await client.discovery(new URL(issuer), clientId, clientSecret, clientAuthentication);
  const md = config.serverMetadata();
  check(`${label}: discovery issuer is ${issuer}`, md.issuer === issuer, `got issuer ${JSON.stringify(md.issuer)}`);
  let tokenEndpoint;
  try {
    tokenEndpoint = new URL(md.token_endpoint);
  } catch {
    // reported below
  }
  check(
    `${label}: discovery token_endpoint is an https URL`,
    tokenEndpoint?.protocol === 'https:',
    `got token_endpoint ${JSON.stringify(md.token_endpoint)}`,
  );
  let jwksUri;
  try {
    jwksUri = new URL(md.jwks_uri);
  } catch {
    // reported below
  }
  check(
    `${label}: discovery jwks_uri is an https URL`,
    jwksUri?.protocol === 'https:',
    `got jwks_uri ${JSON.stringify(md.jwks_uri)}`,
  );
  return config;
}

function authMethodAdvertised(config, method) {
  const md = config.serverMetadata();
  // RFC 8414 §2: when omitted, the default is client_secret_basic.
  const supported = md.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  check(
    `token_endpoint_auth_methods_supported includes ${method}`,
    Array.isArray(supported) && supported.includes(method),
    `got ${JSON.stringify(md.token_endpoint_auth_methods_supported)}`,
  );
}

// Verifies one token response and its access token on its own (fresh remote JWKS each time).
// Returns the verified payload, or undefined when the signature check failed.
async function verifyTokenResponse(label, tokens, ctx) {
  const { issuer, audience, clientId, scope, jwksUri } = ctx;

  check(
    `${label}: token_type is Bearer`,
    typeof tokens.token_type === 'string' && tokens.token_type.toLowerCase() === 'bearer',
    `got token_type ${JSON.stringify(tokens.token_type)}`,
  );
  check(
    `${label}: expires_in > 0`,
    typeof tokens.expires_in === 'number' && Number.isFinite(tokens.expires_in) && tokens.expires_in > 0,
    `got expires_in ${JSON.stringify(tokens.expires_in)}`,
  );
  if (tokens.scope !== undefined) {
    check(`${label}: response scope is ${scope}`, tokens.scope === scope, `got scope ${JSON.stringify(tokens.scope)}`);
  }
  if (!check(`${label}: access_token present`, typeof tokens.access_token === 'string' && tokens.access_token.length > 0,
    `got ${JSON.stringify(tokens.access_token)}`)) {
    return undefined;
  }

  const jwks = createRemoteJWKSet(new URL(jwksUri));
  let verified;
  try {
    verified = await jwtVerify(tokens.access_token, jwks, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
  } catch (err) {
    let header = '';
    try {
      header = ` header=${JSON.stringify(decodeProtectedHeader(tokens.access_token))}`;
    } catch {
      // not a JWT at all
    }
    notOk(`${label}: access token verifies (ES256, at+jwt, iss, aud) against jwks_uri`, `${describeError(err)}${header}`);
    return undefined;
  }
  ok(`${label}: access token verifies (ES256, at+jwt, iss, aud) against jwks_uri`);

  const { payload, protectedHeader } = verified;
  check(`${label}: header kid present`, typeof protectedHeader.kid === 'string' && protectedHeader.kid.length > 0,
    `got kid ${JSON.stringify(protectedHeader.kid)}`);
  check(`${label}: client_id claim is ${clientId}`, payload.client_id === clientId,
    `got client_id ${JSON.stringify(payload.client_id)}`);
  check(`${label}: sub claim is ${clientId}`, payload.sub === clientId, `got sub ${JSON.stringify(payload.sub)}`);
  check(`${label}: scope claim is ${scope}`, payload.scope === scope, `got scope ${JSON.stringify(payload.scope)}`);
  check(`${label}: jti claim present`, typeof payload.jti === 'string' && payload.jti.length > 0,
    `got jti ${JSON.stringify(payload.jti)}`);
  check(
    `${label}: exp > iat`,
    Number.isInteger(payload.exp) && Number.isInteger(payload.iat) && payload.exp > payload.iat,
    `got iat ${JSON.stringify(payload.iat)} exp ${JSON.stringify(payload.exp)}`,
  );
  if (typeof tokens.expires_in === 'number' && Number.isInteger(payload.exp)) {
    const remaining = payload.exp - Math.floor(Date.now() / 1000);
    check(
      `${label}: exp agrees with expires_in (within 60 s)`,
      Math.abs(remaining - tokens.expires_in) <= 60,
      `exp - now = ${remaining}, expires_in = ${tokens.expires_in}`,
    );
  }
  return payload;
}

async function main() {
  const issuer = env('ISSUER');
  const clientId = env('CLIENT_ID');
  const clientSecret = env('CLIENT_SECRET');
  const audience = env('AUDIENCE');
  const scope = env('SCOPE');

  if (process.env.NODE_TLS_REJECT_UNAUTHORIZED === '0') {
    fatal('NODE_TLS_REJECT_UNAUTHORIZED=0 disables TLS verification; trust the dev CA with NODE_EXTRA_CA_CERTS instead');
  }
  if (!process.env.NODE_EXTRA_CA_CERTS) {
    console.log('# NODE_EXTRA_CA_CERTS is not set: the server certificate must chain to a system CA');
  }

  // 1. Discovery, once per client authentication method.
  const postConfig = await discover('client_secret_post', issuer, clientId, clientSecret);
  const basicConfig = await discover('client_secret_basic', issuer, clientId, clientSecret,
    client.ClientSecretBasic(clientSecret));
  authMethodAdvertised(postConfig, 'client_secret_post');
  authMethodAdvertised(basicConfig, 'client_secret_basic');

  const ctx = { issuer, audience, clientId, scope, jwksUri: postConfig.serverMetadata().jwks_uri };

  // 2 + 3. A token with each method, each verified on its own.
  const payloads = [];
  for (const [label, config] of [['client_secret_post', postConfig], ['client_secret_basic', basicConfig]]) {
    let tokens;
    try {
      tokens = await client.clientCredentialsGrant(config, { scope });
    } catch (err) {
      const { error, via } = await oauthErrorOf(err);
      notOk(`${label}: client_credentials grant succeeds`, error ? `OAuth error "${error}" (${via})` : via);
      continue;
    }
    ok(`${label}: client_credentials grant succeeds`);
    const payload = await verifyTokenResponse(label, tokens, ctx);
    if (payload) payloads.push(payload);
  }
  if (payloads.length === 2) {
    check('the two access tokens have distinct jti', payloads[0].jti !== payloads[1].jti,
      `both have jti ${JSON.stringify(payloads[0].jti)}`);
  }

  // 4. Negative checks.
  const wrongSecret = `${clientSecret}-wrong`;
  const wrongPost = await client.discovery(new URL(issuer), clientId, wrongSecret);
  await expectOAuthError('client_secret_post with a wrong secret fails with invalid_client', 'invalid_client',
    client.clientCredentialsGrant(wrongPost, { scope }));
  const wrongBasic = await client.discovery(new URL(issuer), clientId, wrongSecret, client.ClientSecretBasic(wrongSecret));
  await expectOAuthError('client_secret_basic with a wrong secret fails with invalid_client', 'invalid_client',
    client.clientCredentialsGrant(wrongBasic, { scope }));
  await expectOAuthError(`scope ${FORBIDDEN_SCOPE} (not allowed for the client) fails with invalid_scope`, 'invalid_scope',
    client.clientCredentialsGrant(postConfig, { scope: FORBIDDEN_SCOPE }));

  // 5. Verdict.
  if (failures > 0) {
    console.error(`FAIL: ${failures} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(`# all ${checks} checks passed`);
  process.exit(0);
}

main().catch((err) => {
  fatal(`unexpected exception: ${describeError(err)}`);
});
