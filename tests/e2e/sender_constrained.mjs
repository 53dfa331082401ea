// End-to-end check of sender-constrained tokens and asymmetric client authentication with a
// certified third-party relying party (openid-client v6; jose v6 verifies what comes back):
//   1. DPoP (RFC 9449) with client_credentials: token_type DPoP, cnf.jkt is the proof key's
//      thumbprint;
//   2. DPoP in the code flow of a public client (PKCE, dpop_jkt), the scripted browser signing in;
//      userinfo with the DPoP scheme and a proof, and the same token as a Bearer token refused;
//   3. mutual TLS (RFC 8705): tls_client_auth at the mTLS endpoint aliases from discovery,
//      cnf.x5t#S256 is the certificate's thumbprint;
//   4. private_key_jwt (RFC 7523), and a hand-made assertion that works once only;
//   5. introspection (RFC 7662) by the API of a reference token, revocation (RFC 7009) by its
//      client, introspection again.
// Each part runs on its own: a failure in one does not hide the others.
//
// Run (normally by a Rust integration test, tests/it/e2e.rs), from the node's directory:
//   ISSUER=https://localhost:PORT/acme API_AUDIENCE=https://api.acme.test API_SECRET=acme-api-secret \
//   SCOPE=api.read M2M_CLIENT_ID=acme-m2m M2M_CLIENT_SECRET=acme-m2m-secret \
//   SPA_CLIENT_ID=acme-spa SPA_REDIRECT_URI=http://127.0.0.1:9000/spa/callback \
//   SPA_SCOPE='openid profile api.read' LOGIN_USERNAME=alice LOGIN_PASSWORD=alice-password \
//   MTLS_CLIENT_ID=acme-mtls MTLS_CERT_FILE=certs/demo-client.pem MTLS_KEY_FILE=certs/demo-client-key.pem \
//   JWT_CLIENT_ID=acme-jwt JWT_KEY_FILE=certs/acme-jwt-key.pem \
//   REF_CLIENT_ID=acme-ref REF_CLIENT_SECRET=acme-ref-secret NODE_EXTRA_CA_CERTS=certs/ca.pem \
//   node tests/e2e/sender_constrained.mjs
//
// TLS verification stays on: the dev CA is trusted through NODE_EXTRA_CA_CERTS, never bypassed;
// the mTLS requests present the client certificate on top of that.

import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import * as client from 'openid-client';
import * as jose from 'jose';
import {
  check, describeError, env, expectOAuthError, need, notOk, oauthErrorOf, ok, requireTlsVerification, run,
  section,
} from './lib/report.mjs';
import { ScriptedBrowser, describeResponse, formById, isRedirectTo } from './lib/scripted_browser.mjs';

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Verifies an access token against the issuer's jwks_uri (RFC 9068: typ at+jwt, iss). */
async function verifiedAccessToken(label, token, { issuer, jwks, audience }) {
  try {
    const { payload } = await jose.jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt' });
    ok(`${label}: the access token verifies against jwks_uri (at+jwt, iss${audience ? ', aud' : ''})`);
    return payload;
  } catch (err) {
    notOk(`${label}: the access token verifies against jwks_uri`, describeError(err));
    return undefined;
  }
}

function isDPoP(tokens) {
  // openid-client lowercases token_type.
  return tokens.token_type?.toLowerCase() === 'dpop';
}

/**
 * A fetch that presents a client certificate, for openid-client's `customFetch` (mutual TLS,
 * RFC 8705). openid-client documents an undici Agent for this; Node's own https module does the
 * same without another package. The server certificate is still verified (NODE_EXTRA_CA_CERTS
 * feeds the default trust store). Every URL it is asked for is recorded in `urls`.
 */
function fetchWithClientCertificate({ cert, key }) {
  const agent = new https.Agent({ cert, key });
  const urls = [];
  const fetchImpl = (url, { method = 'GET', headers = {}, body, signal } = {}) => new Promise((resolve, reject) => {
    urls.push(String(url));
    // openid-client's token, introspection and revocation requests carry URLSearchParams.
    const payload = body === undefined || body === null ? undefined : Buffer.from(String(body));
    const requestHeaders = headers instanceof Headers ? Object.fromEntries(headers) : { ...headers };
    if (payload !== undefined) requestHeaders['content-length'] = String(payload.length);
    const request = https.request(url, { method, headers: requestHeaders, agent, signal }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const responseHeaders = new Headers();
        for (let i = 0; i + 1 < response.rawHeaders.length; i += 2) {
          responseHeaders.append(response.rawHeaders[i], response.rawHeaders[i + 1]);
        }
        const noBody = [204, 205, 304].includes(response.statusCode);
        resolve(new Response(noBody ? null : Buffer.concat(chunks), {
          status: response.statusCode,
          statusText: response.statusMessage,
          headers: responseHeaders,
        }));
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
  return { fetch: fetchImpl, urls, close: () => agent.destroy() };
}

// ---------------------------------------------------------------------------------------------
// The checks

/** 1. DPoP with client_credentials (RFC 9449 §5, §6.1). */
async function dpopClientCredentials(ctx) {
  const { issuer, jwks, api, scope } = ctx;
  const config = await client.discovery(new URL(issuer), env('M2M_CLIENT_ID'), env('M2M_CLIENT_SECRET'),
    client.ClientSecretBasic(env('M2M_CLIENT_SECRET')));
  const md = config.serverMetadata();
  check('discovery: dpop_signing_alg_values_supported includes ES256 (RFC 9449 §5.1)',
    md.dpop_signing_alg_values_supported?.includes('ES256'),
    `got ${JSON.stringify(md.dpop_signing_alg_values_supported)}`);

  const keyPair = await client.randomDPoPKeyPair('ES256');
  const DPoP = client.getDPoPHandle(config, keyPair);
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  let tokens;
  try {
    tokens = await client.clientCredentialsGrant(config, { scope }, { DPoP });
  } catch (err) {
    need('DPoP client_credentials: the grant with a proof succeeds', false, describeError(err));
  }
  ok('DPoP client_credentials: the grant with a proof succeeds');
  check('DPoP client_credentials: token_type is DPoP', isDPoP(tokens), `got ${JSON.stringify(tokens.token_type)}`);
  const claims = await verifiedAccessToken('DPoP client_credentials', tokens.access_token,
    { issuer, jwks, audience: api.id });
  if (claims) {
    check('DPoP client_credentials: cnf.jkt is the JWK thumbprint of the proof key (RFC 9449 §6.1)',
      claims.cnf?.jkt === jkt, `cnf ${JSON.stringify(claims.cnf)}, thumbprint ${jkt}`);
  }

  // RFC 9449 §6.2: introspection tells the resource server what the token is bound to.
  try {
    const info = await client.tokenIntrospection(api.config, tokens.access_token);
    check('DPoP client_credentials: introspection says token_type DPoP and cnf.jkt (RFC 9449 §6.2)',
      info.active === true && info.token_type === 'DPoP' && info.cnf?.jkt === jkt, JSON.stringify(info));
  } catch (err) {
    notOk('DPoP client_credentials: introspection of the DPoP token succeeds', describeError(err));
  }
}

/** 2. DPoP in the code flow of a public client (RFC 9449 §10 dpop_jkt, §7 userinfo). */
async function dpopCodeFlow(ctx) {
  const { issuer, jwks } = ctx;
  const redirectUri = env('SPA_REDIRECT_URI');
  // enableNonRepudiationChecks: without it openid-client 6 does not verify id token signatures.
  const config = await client.discovery(new URL(issuer), env('SPA_CLIENT_ID'), undefined, client.None(),
    { execute: [client.enableNonRepudiationChecks] });
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const DPoP = client.getDPoPHandle(config, keyPair);
  const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey));
  // dpop_jkt comes from openid-client's DPoP handle; jose computes it independently.
  const dpopJkt = await DPoP.calculateThumbprint();
  check('DPoP code flow: the DPoP handle\'s thumbprint (dpop_jkt) is the RFC 7638 thumbprint of its key',
    dpopJkt === jkt, `handle ${dpopJkt}, jose ${jkt}`);

  const browser = new ScriptedBrowser();
  const first = await authorize(config, browser, redirectUri, dpopJkt, { signIn: true });
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, first.callback, first.checks, undefined, { DPoP });
  } catch (err) {
    need('DPoP code flow: authorizationCodeGrant with a proof by the dpop_jkt key succeeds', false, describeError(err));
  }
  ok('DPoP code flow: authorizationCodeGrant with a proof by the dpop_jkt key succeeds (id token validated)');
  check('DPoP code flow: token_type is DPoP', isDPoP(tokens), `got ${JSON.stringify(tokens.token_type)}`);
  const claims = await verifiedAccessToken('DPoP code flow', tokens.access_token, { issuer, jwks });
  if (claims) {
    check('DPoP code flow: cnf.jkt of the access token is dpop_jkt', claims.cnf?.jkt === jkt,
      `cnf ${JSON.stringify(claims.cnf)}, thumbprint ${jkt}`);
  }
  const sub = tokens.claims()?.sub;

  try {
    const info = await client.fetchUserInfo(config, tokens.access_token, sub, { DPoP });
    check(`DPoP code flow: fetchUserInfo with the DPoP scheme and a proof (ath) returns ${sub}`,
      info.sub === sub, JSON.stringify(info));
  } catch (err) {
    notOk('DPoP code flow: fetchUserInfo with the DPoP scheme and a proof succeeds', describeError(err));
  }

  // RFC 9449 §7.1: a DPoP-bound token presented as a Bearer token is refused, with a DPoP challenge.
  const userinfoEndpoint = config.serverMetadata().userinfo_endpoint;
  const bearer = await fetch(userinfoEndpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  const challenge = bearer.headers.get('www-authenticate') ?? '';
  check('DPoP code flow: the same token as a Bearer token at userinfo gets 401 with WWW-Authenticate: DPoP',
    bearer.status === 401 && /^DPoP\b/i.test(challenge),
    `status ${bearer.status}, WWW-Authenticate ${JSON.stringify(challenge)}, body ${JSON.stringify(await bearer.text())}`);

  // RFC 9449 §10: a code bound to a key by dpop_jkt is not redeemed without a proof by that key
  // (the RFC names no error code, so any OAuth error will do). The session from the first
  // sign-in brings the browser straight back with a code.
  const second = await authorize(config, browser, redirectUri, dpopJkt, { signIn: false });
  try {
    const unbound = await client.authorizationCodeGrant(config, second.callback, second.checks);
    notOk('DPoP code flow: a code bound by dpop_jkt is refused without a DPoP proof',
      `a ${JSON.stringify(unbound.token_type)} token was issued`);
  } catch (err) {
    const { error, via } = await oauthErrorOf(err);
    check(`DPoP code flow: a code bound by dpop_jkt is refused without a DPoP proof (${error}, ${via})`,
      error !== undefined, describeError(err));
  }
}

/**
 * An authorization request of the public client with PKCE and dpop_jkt, through the scripted
 * browser (signing in when `signIn`); the callback URL and the checks for openid-client.
 */
async function authorize(config, browser, redirectUri, dpopJkt, { signIn }) {
  const checks = {
    pkceCodeVerifier: client.randomPKCECodeVerifier(),
    expectedState: client.randomState(),
    expectedNonce: client.randomNonce(),
    idTokenExpected: true,
  };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: env('SPA_SCOPE'),
    state: checks.expectedState,
    nonce: checks.expectedNonce,
    code_challenge: await client.calculatePKCECodeChallenge(checks.pkceCodeVerifier),
    code_challenge_method: 'S256',
    dpop_jkt: dpopJkt,
  });
  const issuer = config.serverMetadata().issuer;
  let r = await browser.get(url);
  if (signIn) {
    need('DPoP code flow: authorize with dpop_jkt redirects (303) to the login page',
      r.status === 303 && r.location?.startsWith(`${issuer}/account/login?`), describeResponse(r));
    r = await browser.get(r.location);
    const login = formById(r, 'login-form');
    need('DPoP code flow: the login page has form#login-form', r.status === 200 && login?.method === 'post',
      describeResponse(r));
    r = await browser.post(login.action,
      { ...login.hidden, username: env('LOGIN_USERNAME'), password: env('LOGIN_PASSWORD') });
    need('DPoP code flow: the login redirects (303) straight to the client (no consent for this client)',
      isRedirectTo(r, redirectUri), describeResponse(r));
  } else {
    need('DPoP code flow: authorize with the session redirects (303) straight to the client',
      isRedirectTo(r, redirectUri), describeResponse(r));
  }
  return { callback: new URL(r.location), checks };
}

/** 3. Mutual TLS: tls_client_auth at the mTLS endpoint aliases (RFC 8705 §2.1, §3.1, §5). */
async function mutualTls(ctx) {
  const { issuer, jwks, api, scope } = ctx;
  const certPem = readFileSync(env('MTLS_CERT_FILE'), 'utf8');
  const keyPem = readFileSync(env('MTLS_KEY_FILE'), 'utf8');
  const clientId = env('MTLS_CLIENT_ID');
  const config = await client.discovery(new URL(issuer), clientId, { use_mtls_endpoint_aliases: true },
    client.TlsClientAuth());
  const aliases = config.serverMetadata().mtls_endpoint_aliases;
  need('discovery: mtls_endpoint_aliases.token_endpoint is an https URL (RFC 8705 §5)',
    typeof aliases?.token_endpoint === 'string' && aliases.token_endpoint.startsWith('https://'),
    `got ${JSON.stringify(aliases)}`);
  check('discovery: the mTLS token endpoint is another listener than the token endpoint',
    new URL(aliases.token_endpoint).origin !== new URL(config.serverMetadata().token_endpoint).origin,
    `${aliases.token_endpoint} vs ${config.serverMetadata().token_endpoint}`);

  const mtls = fetchWithClientCertificate({ cert: certPem, key: keyPem });
  config[client.customFetch] = mtls.fetch;
  try {
    let tokens;
    try {
      tokens = await client.clientCredentialsGrant(config, { scope });
    } catch (err) {
      need('mTLS: clientCredentialsGrant with tls_client_auth and the demo certificate succeeds', false, describeError(err));
    }
    ok('mTLS: clientCredentialsGrant with tls_client_auth and the demo certificate succeeds');
    check('mTLS: openid-client sent the token request to mtls_endpoint_aliases.token_endpoint',
      mtls.urls.length > 0 && mtls.urls.every((u) => u === aliases.token_endpoint), JSON.stringify(mtls.urls));
    check('mTLS: token_type is Bearer (the certificate binding is in cnf)',
      tokens.token_type?.toLowerCase() === 'bearer', `got ${JSON.stringify(tokens.token_type)}`);
    const claims = await verifiedAccessToken('mTLS', tokens.access_token, { issuer, jwks, audience: api.id });
    const der = new X509Certificate(certPem).raw;
    const x5t = createHash('sha256').update(der).digest('base64url');
    if (claims) {
      check('mTLS: cnf.x5t#S256 is the SHA-256 of the certificate\'s DER (RFC 8705 §3.1)',
        claims.cnf?.['x5t#S256'] === x5t, `cnf ${JSON.stringify(claims.cnf)}, certificate ${x5t}`);
      check(`mTLS: client_id claim is ${clientId}`, claims.client_id === clientId, JSON.stringify(claims.client_id));
    }
  } finally {
    mtls.close();
  }

  // Without a certificate the same request at the same endpoint authenticates nobody.
  const bare = await client.discovery(new URL(issuer), clientId, { use_mtls_endpoint_aliases: true },
    client.TlsClientAuth());
  await expectOAuthError('mTLS: without a client certificate the mTLS token endpoint says invalid_client',
    'invalid_client', client.clientCredentialsGrant(bare, { scope }));
}

/** 4. private_key_jwt (RFC 7523 §2.2, §3); an assertion is good for one request only. */
async function privateKeyJwt(ctx) {
  const { issuer, jwks, api, scope } = ctx;
  const clientId = env('JWT_CLIENT_ID');
  const privateKey = await jose.importPKCS8(readFileSync(env('JWT_KEY_FILE'), 'utf8'), 'ES256');
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.PrivateKeyJwt(privateKey));
  const md = config.serverMetadata();
  check('discovery: token_endpoint_auth_methods_supported includes private_key_jwt',
    md.token_endpoint_auth_methods_supported?.includes('private_key_jwt'),
    JSON.stringify(md.token_endpoint_auth_methods_supported));
  try {
    const tokens = await client.clientCredentialsGrant(config, { scope });
    ok('private_key_jwt: clientCredentialsGrant with PrivateKeyJwt succeeds');
    const claims = await verifiedAccessToken('private_key_jwt', tokens.access_token, { issuer, jwks, audience: api.id });
    if (claims) {
      check(`private_key_jwt: client_id ${clientId} and scope ${scope}`,
        claims.client_id === clientId && claims.scope === scope, JSON.stringify(claims));
    }
  } catch (err) {
    notOk('private_key_jwt: clientCredentialsGrant with PrivateKeyJwt succeeds', describeError(err));
  }

  // openid-client makes a fresh assertion per request; replay one made by hand.
  const assertion = await new jose.SignJWT({ jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(issuer)
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(privateKey);
  const post = () => fetch(md.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope,
      client_assertion_type: CLIENT_ASSERTION_TYPE,
      client_assertion: assertion,
    }),
  });
  const first = await post();
  const firstBody = await first.text();
  check('private_key_jwt: a hand-made assertion (jose SignJWT) is accepted once (200)', first.status === 200,
    `status ${first.status}, body ${firstBody}`);
  const second = await post();
  const secondBody = await second.text();
  let error;
  try {
    error = JSON.parse(secondBody).error;
  } catch {
    // reported below
  }
  check('private_key_jwt: the same assertion again is 401 invalid_client (RFC 7523 §3 jti)',
    second.status === 401 && error === 'invalid_client', `status ${second.status}, body ${secondBody}`);
}

/** 5. Introspection by the API (RFC 7662) and revocation by the client (RFC 7009). */
async function introspectionAndRevocation(ctx) {
  const { issuer, api, scope } = ctx;
  const clientId = env('REF_CLIENT_ID');
  const secret = env('REF_CLIENT_SECRET');
  const config = await client.discovery(new URL(issuer), clientId, secret, client.ClientSecretBasic(secret));
  let tokens;
  try {
    tokens = await client.clientCredentialsGrant(config, { scope });
  } catch (err) {
    need(`reference token: ${clientId} gets a token`, false, describeError(err));
  }
  const token = tokens.access_token;
  check(`reference token: ${clientId} gets an opaque handle, not a JWT`,
    typeof token === 'string' && token.length > 0 && !token.includes('.'), JSON.stringify(token));

  let info;
  try {
    info = await client.tokenIntrospection(api.config, token);
  } catch (err) {
    need(`introspection: the API ${api.id} introspects with client_secret_basic`, false, describeError(err));
  }
  const aud = [info.aud].flat();
  check(`introspection: active, client_id ${clientId}, scope ${scope}, aud ${api.id}`,
    info.active === true && info.client_id === clientId && info.scope === scope && aud.includes(api.id),
    JSON.stringify(info));

  try {
    await client.tokenRevocation(config, token);
    ok(`revocation: ${clientId} revokes its token (tokenRevocation)`);
  } catch (err) {
    notOk(`revocation: ${clientId} revokes its token (tokenRevocation)`, describeError(err));
  }
  try {
    info = await client.tokenIntrospection(api.config, token);
    check('introspection after revocation: active false', info.active === false, JSON.stringify(info));
  } catch (err) {
    notOk('introspection after revocation succeeds', describeError(err));
  }
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const apiId = env('API_AUDIENCE');
  const apiSecret = env('API_SECRET');
  // The API is a client configuration whose client_id is the API's name; openid-client
  // form-encodes it in the Basic credentials (RFC 6749 §2.3.1).
  const apiConfig = await client.discovery(new URL(issuer), apiId, apiSecret, client.ClientSecretBasic(apiSecret));
  need('discovery: the issuer is the tenant issuer', apiConfig.serverMetadata().issuer === issuer,
    JSON.stringify(apiConfig.serverMetadata().issuer));
  const ctx = {
    issuer,
    scope: env('SCOPE'),
    jwks: jose.createRemoteJWKSet(new URL(apiConfig.serverMetadata().jwks_uri)),
    api: { id: apiId, config: apiConfig },
  };
  const parts = [
    ['1. DPoP with client_credentials', dpopClientCredentials],
    ['2. DPoP in the code flow of a public client', dpopCodeFlow],
    ['3. mutual TLS: tls_client_auth at the mTLS endpoint aliases', mutualTls],
    ['4. private_key_jwt', privateKeyJwt],
    ['5. introspection and revocation of a reference token', introspectionAndRevocation],
  ];
  for (const [title, part] of parts) {
    const started = performance.now();
    await section(title, () => part(ctx));
    console.log(`# ${title}: ${Math.round(performance.now() - started)} ms`);
  }
}

run(main);
