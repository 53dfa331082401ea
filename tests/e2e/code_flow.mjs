// End-to-end check of the authorization code flow with a certified third-party relying party
// (openid-client v6) against the real sign-in pages: discovery, PKCE S256, login and consent
// forms, the code grant with id-token validation, userinfo, refresh-token rotation, PAR with an
// existing session, RP-initiated logout, prompt=none afterwards, and tenant isolation.
//
// openid-client 6 verifies id token signatures only after `enableNonRepudiationChecks(config)`
// (otherwise it relies on TLS to the token endpoint); every configuration here enables it, and
// step 7b shows it at work: an id token altered on its way (through openid-client's
// `customFetch`) is refused for its signature, and accepted by a configuration without it.
//
// The "browser" is scripted (lib/scripted_browser.mjs): Node's fetch with `redirect: 'manual'`
// (each hop is looked at), a small cookie jar that honours Path and Secure, and forms read from the
// served HTML. Nothing listens at the redirect URI: the Location that points there is handed to
// openid-client.
//
// Run (normally by a Rust integration test, tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme CLIENT_ID=acme-web CLIENT_SECRET=acme-web-secret \
//   REDIRECT_URI=http://127.0.0.1:9000/callback POST_LOGOUT_REDIRECT_URI=http://127.0.0.1:9000/ \
//   SCOPE='openid profile email offline_access api.read' LOGIN_USERNAME=alice \
//   LOGIN_PASSWORD=alice-password EXPECTED_NAME='Alice Liddell' EXPECTED_EMAIL=alice@acme.test \
//   OTHER_ISSUER=https://localhost:PORT/twin OTHER_CLIENT_ID=acme-web \
//   OTHER_CLIENT_SECRET=acme-web-secret NODE_EXTRA_CA_CERTS=certs/ca.pem \
//   node tests/e2e/code_flow.mjs
//
// TLS verification stays on: the dev CA is trusted through NODE_EXTRA_CA_CERTS, never bypassed.

import * as client from 'openid-client';
import {
  check, describeError, env, expectOAuthError, need, notOk, ok, requireTlsVerification, run,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, formById, isRedirectTo,
} from './lib/scripted_browser.mjs';

// ---------------------------------------------------------------------------------------------
// The browser's cookies

function cookieIsTenantScoped(cookie, path) {
  return cookie !== undefined && cookie.path === path && cookie.secure && cookie.httpOnly
    && cookie.sameSite?.toLowerCase() === 'lax';
}

// ---------------------------------------------------------------------------------------------
// The relying party

/**
 * A `customFetch` that alters the id token of token endpoint responses after the server signed
 * it: the claims say the user signed in with a second factor (amr, acr), the signature stays.
 * Everything else about the token stays valid (iss, aud, exp, nonce), so only the signature
 * check can refuse it.
 */
function forgingIdTokens(tokenEndpoint) {
  return async (url, options) => {
    const response = await fetch(url, options);
    if (String(url) !== tokenEndpoint || !response.ok) return response;
    const body = await response.json();
    if (typeof body.id_token === 'string') {
      const [header, payload, signature] = body.id_token.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      claims.amr = ['pwd', 'otp', 'mfa'];
      claims.acr = 'urn:portcullis:acr:mfa';
      const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
      body.id_token = `${header}.${forged}.${signature}`;
    }
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    return new Response(JSON.stringify(body), { status: response.status, headers });
  };
}

function authorizationParameters(redirectUri, scope, extra = {}) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  return {
    codeVerifier,
    state,
    nonce,
    async parameters() {
      return {
        redirect_uri: redirectUri,
        scope,
        state,
        nonce,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        ...extra,
      };
    },
  };
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const clientId = env('CLIENT_ID');
  const clientSecret = env('CLIENT_SECRET');
  const redirectUri = env('REDIRECT_URI');
  const postLogoutRedirectUri = env('POST_LOGOUT_REDIRECT_URI');
  const scope = env('SCOPE');
  const username = env('LOGIN_USERNAME');
  const password = env('LOGIN_PASSWORD');
  const expectedName = env('EXPECTED_NAME');
  const expectedEmail = env('EXPECTED_EMAIL');
  const otherIssuer = env('OTHER_ISSUER');
  const otherClientId = env('OTHER_CLIENT_ID');
  const otherClientSecret = env('OTHER_CLIENT_SECRET');
  const cookiePath = new URL(issuer).pathname.replace(/\/$/, '') || '/';
  const startedAt = Math.floor(Date.now() / 1000);

  // 1. Discovery.
  const verifying = { execute: [client.enableNonRepudiationChecks] };
  const config = await client.discovery(new URL(issuer), clientId, clientSecret,
    client.ClientSecretBasic(clientSecret), verifying);
  const md = config.serverMetadata();
  need('discovery: issuer is the tenant issuer', md.issuer === issuer, `got ${JSON.stringify(md.issuer)}`);
  for (const endpoint of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'end_session_endpoint',
    'pushed_authorization_request_endpoint', 'jwks_uri']) {
    check(`discovery: ${endpoint} is an https URL under the issuer`,
      typeof md[endpoint] === 'string' && md[endpoint].startsWith(`${issuer}/`), `got ${JSON.stringify(md[endpoint])}`);
  }
  check('discovery: authorization_response_iss_parameter_supported is true (RFC 9207)',
    md.authorization_response_iss_parameter_supported === true,
    `got ${JSON.stringify(md.authorization_response_iss_parameter_supported)}`);
  check('discovery: code_challenge_methods_supported includes S256',
    Array.isArray(md.code_challenge_methods_supported) && md.code_challenge_methods_supported.includes('S256'),
    `got ${JSON.stringify(md.code_challenge_methods_supported)}`);

  // 2. The authorization request: PKCE S256, state and nonce.
  const first = authorizationParameters(redirectUri, scope);
  const authorizationUrl = client.buildAuthorizationUrl(config, await first.parameters());
  const q = authorizationUrl.searchParams;
  check('buildAuthorizationUrl targets the authorization_endpoint with PKCE S256, state and nonce',
    authorizationUrl.href.startsWith(`${md.authorization_endpoint}?`) && q.get('code_challenge_method') === 'S256'
      && q.get('code_challenge') === await client.calculatePKCECodeChallenge(first.codeVerifier)
      && q.get('state') === first.state && q.get('nonce') === first.nonce && q.get('client_id') === clientId,
    authorizationUrl.href);

  // 3. The browser signs in through the real pages.
  const browser = new ScriptedBrowser();
  let r = await browser.get(authorizationUrl);
  need('authorize redirects (303) to the login page',
    r.status === 303 && r.location?.startsWith(`${issuer}/account/login?interaction=`), describeResponse(r));
  check(`authorize sets the browser-binding cookie portcullis.bind (Path=${cookiePath}, Secure, HttpOnly, SameSite=Lax)`,
    cookieIsTenantScoped(browser.jar.find('portcullis.bind'), cookiePath), JSON.stringify(r.setCookies));

  const loginUrl = r.location;
  r = await browser.get(loginUrl);
  need('the login page is served', r.status === 200, describeResponse(r));
  const login = formById(r, 'login-form');
  need('the login page has form#login-form posting to account/login with interaction and csrf',
    login?.method === 'post' && login.action === `${issuer}/account/login` && login.hidden.interaction
      && login.hidden.csrf,
    JSON.stringify(login));
  check('the login form has the inputs #username and #password',
    login.inputs.some((i) => i.id === 'username' && i.name === 'username')
      && login.inputs.some((i) => i.id === 'password' && i.name === 'password' && i.type === 'password'),
    JSON.stringify(login.inputs));

  r = await browser.post(login.action, { ...login.hidden, username, password });
  need('the login POST redirects (303) to the consent page',
    r.status === 303 && r.location?.startsWith(`${issuer}/account/consent?interaction=`), describeResponse(r));
  check(`the login sets the session cookie portcullis.session (Path=${cookiePath}, Secure, HttpOnly, SameSite=Lax)`,
    cookieIsTenantScoped(browser.jar.find('portcullis.session'), cookiePath), JSON.stringify(r.setCookies));

  r = await browser.get(r.location);
  need('the consent page is served', r.status === 200, describeResponse(r));
  const consent = formById(r, 'consent-form');
  need('the consent page has a form posting interaction and csrf',
    consent?.method === 'post' && consent.hidden.interaction && consent.hidden.csrf, JSON.stringify(consent));
  check('the consent form has the remember checkbox and the allow and deny buttons',
    consent.inputs.some((i) => i.id === 'remember' && i.type === 'checkbox' && i.name === 'remember')
      && consent.buttons.some((b) => b.id === 'allow' && b.name === 'decision' && b.value === 'allow')
      && consent.buttons.some((b) => b.id === 'deny' && b.name === 'decision' && b.value === 'deny'),
    JSON.stringify({ inputs: consent.inputs, buttons: consent.buttons }));

  r = await browser.post(consent.action, { ...consent.hidden, remember: 'on', decision: 'allow' });
  need('allowing redirects (303) to the redirect URI', isRedirectTo(r, redirectUri), describeResponse(r));
  const callback = new URL(r.location);
  check('the redirect carries code, state and iss (RFC 9207)',
    callback.searchParams.get('code') && callback.searchParams.get('state') === first.state
      && callback.searchParams.get('iss') === issuer,
    callback.href);

  // 4. The code grant; openid-client checks iss, state, PKCE and the id token (signature, iss,
  //    aud, nonce, exp).
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: first.codeVerifier,
      expectedState: first.state,
      expectedNonce: first.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    need('authorizationCodeGrant validates the response and the id token', false, describeError(err));
  }
  ok('authorizationCodeGrant validates the response and the id token (signature, iss, aud, nonce, iss parameter)');
  const claims = tokens.claims();
  const now = Math.floor(Date.now() / 1000);
  check(`id token: sub is ${username}`, claims.sub === username, `got ${JSON.stringify(claims.sub)}`);
  check('id token: sid is present', typeof claims.sid === 'string' && claims.sid.length > 0,
    `got ${JSON.stringify(claims.sid)}`);
  check('id token: auth_time is the time of this sign-in',
    Number.isInteger(claims.auth_time) && claims.auth_time >= startedAt - 5 && claims.auth_time <= now + 5,
    `got ${JSON.stringify(claims.auth_time)}, sign-in between ${startedAt} and ${now}`);
  check('id token: amr is ["pwd"]', JSON.stringify(claims.amr) === '["pwd"]', `got ${JSON.stringify(claims.amr)}`);
  check('the token response has a Bearer access token and a refresh token (offline_access)',
    tokens.token_type?.toLowerCase() === 'bearer' && typeof tokens.access_token === 'string'
      && typeof tokens.refresh_token === 'string',
    `token_type ${JSON.stringify(tokens.token_type)}, refresh_token ${typeof tokens.refresh_token}`);

  // 5. UserInfo for the expected subject.
  try {
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    check(`userinfo returns ${expectedEmail} and "${expectedName}" for ${claims.sub}`,
      info.sub === claims.sub && info.email === expectedEmail && info.name === expectedName, JSON.stringify(info));
  } catch (err) {
    notOk('userinfo returns the claims of the subject', describeError(err));
  }

  // 6. Refresh-token rotation; the rotated-out token is refused afterwards.
  const oldRefresh = tokens.refresh_token;
  let refreshed;
  try {
    refreshed = await client.refreshTokenGrant(config, oldRefresh);
    ok('refreshTokenGrant succeeds');
  } catch (err) {
    notOk('refreshTokenGrant succeeds', describeError(err));
  }
  if (refreshed) {
    check('the refresh token is rotated (the new one differs)',
      typeof refreshed.refresh_token === 'string' && refreshed.refresh_token !== oldRefresh,
      `got ${refreshed.refresh_token === oldRefresh ? 'the same token' : typeof refreshed.refresh_token}`);
    check('the refreshed access token is new', refreshed.access_token !== tokens.access_token, 'same access token');
    if (refreshed.id_token) {
      check(`a refreshed id token keeps sub ${claims.sub} (OIDC Core §12.2)`,
        refreshed.claims()?.sub === claims.sub, JSON.stringify(refreshed.claims()));
    }
    await expectOAuthError('the rotated-out refresh token is then refused with invalid_grant', 'invalid_grant',
      client.refreshTokenGrant(config, oldRefresh));
  }

  // 7. PAR (RFC 9126) with the existing session: no page at all, straight back with a code.
  const pushed = authorizationParameters(redirectUri, scope);
  let parUrl;
  try {
    parUrl = await client.buildAuthorizationUrlWithPAR(config, await pushed.parameters());
  } catch (err) {
    need('buildAuthorizationUrlWithPAR pushes the request', false, describeError(err));
  }
  check('the PAR authorization URL carries only client_id and a request_uri (RFC 9126 §4)',
    parUrl.searchParams.get('client_id') === clientId
      && parUrl.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:')
      && [...parUrl.searchParams.keys()].length === 2,
    parUrl.href);
  r = await browser.get(parUrl);
  need('the pushed request completes with the session and remembered consent, without any page',
    isRedirectTo(r, redirectUri), describeResponse(r));
  let parTokens;
  try {
    parTokens = await client.authorizationCodeGrant(config, new URL(r.location), {
      pkceCodeVerifier: pushed.codeVerifier,
      expectedState: pushed.state,
      expectedNonce: pushed.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    need('the code from the pushed request is redeemed', false, describeError(err));
  }
  const parClaims = parTokens.claims();
  check('the code from the pushed request is for the same user and SSO session (same sub and sid)',
    parClaims.sub === claims.sub && parClaims.sid === claims.sid,
    `sub ${JSON.stringify(parClaims.sub)} sid ${JSON.stringify(parClaims.sid)} vs ${JSON.stringify(claims.sid)}`);

  // 7b. A forged id token (claims altered after signing) is refused for its signature. The
  //     session and the remembered consent give a code at once, twice.
  const forgedFetch = forgingIdTokens(md.token_endpoint);
  async function silentCode(label) {
    const p = authorizationParameters(redirectUri, scope);
    const res = await browser.get(client.buildAuthorizationUrl(config, await p.parameters()));
    need(`${label}: the session gives a code without any page`, isRedirectTo(res, redirectUri),
      describeResponse(res));
    return { callback: new URL(res.location), checks: {
      pkceCodeVerifier: p.codeVerifier, expectedState: p.state, expectedNonce: p.nonce, idTokenExpected: true,
    } };
  }
  // Without enableNonRepudiationChecks the forgery goes through: what the check is for.
  const unchecked = await client.discovery(new URL(issuer), clientId, clientSecret,
    client.ClientSecretBasic(clientSecret));
  unchecked[client.customFetch] = forgedFetch;
  let first7b = await silentCode('forged id token, unverified configuration');
  try {
    const t = await client.authorizationCodeGrant(unchecked, first7b.callback, first7b.checks);
    check('without enableNonRepudiationChecks, openid-client accepts the altered id token (amr forged to mfa)',
      JSON.stringify(t.claims().amr) === '["pwd","otp","mfa"]', JSON.stringify(t.claims()));
  } catch (err) {
    notOk('without enableNonRepudiationChecks, openid-client accepts the altered id token', describeError(err));
  }
  const checked = await client.discovery(new URL(issuer), clientId, clientSecret,
    client.ClientSecretBasic(clientSecret), verifying);
  checked[client.customFetch] = forgedFetch;
  first7b = await silentCode('forged id token, verifying configuration');
  try {
    const t = await client.authorizationCodeGrant(checked, first7b.callback, first7b.checks);
    notOk('with enableNonRepudiationChecks, openid-client refuses the altered id token',
      `accepted: ${JSON.stringify(t.claims())}`);
  } catch (err) {
    check('with enableNonRepudiationChecks, openid-client refuses the altered id token for its signature',
      /signature/i.test(`${err.message} ${err.cause?.message ?? ''}`), describeError(err));
  }

  // 8. Isolation: another tenant's client knows nothing of this session.
  const other = await client.discovery(new URL(otherIssuer), otherClientId, otherClientSecret,
    client.ClientSecretBasic(otherClientSecret), verifying);
  const silentOther = authorizationParameters(redirectUri, 'openid', { prompt: 'none' });
  const silentOtherUrl = client.buildAuthorizationUrl(other, await silentOther.parameters());
  check(`the jar holds the ${cookiePath} session and sends none of it to the other tenant (Path)`,
    browser.jar.find('portcullis.session') !== undefined && browser.jar.header(silentOtherUrl) === '',
    `Cookie for the other tenant: ${JSON.stringify(browser.jar.header(silentOtherUrl))}`);
  const tenantCookies = browser.jar.header(authorizationUrl);
  need(`the jar sends the session cookie to ${cookiePath}`, tenantCookies.includes('portcullis.session='),
    JSON.stringify(tenantCookies));
  for (const [label, cookie] of [['from the jar', undefined], [`even with the ${cookiePath} cookies sent anyway`, tenantCookies]]) {
    r = await browser.get(silentOtherUrl, { cookie });
    if (!isRedirectTo(r, redirectUri)) {
      notOk(`prompt=none at the other tenant, ${label}, redirects to the client`, describeResponse(r));
      continue;
    }
    await expectOAuthError(`prompt=none at the other tenant, ${label}, is login_required`, 'login_required',
      client.authorizationCodeGrant(other, new URL(r.location), {
        pkceCodeVerifier: silentOther.codeVerifier,
        expectedState: silentOther.state,
      }));
  }

  // 9. RP-initiated logout with a hint: signed out at once and sent straight back to
  //    post_logout_redirect_uri with the state (RP-Initiated Logout 1.0 §3; no front-channel
  //    client to notify, so no page on the way).
  const logoutState = client.randomState();
  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: parTokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: logoutState,
  });
  check('buildEndSessionUrl targets the end_session_endpoint',
    endSessionUrl.href.startsWith(`${md.end_session_endpoint}?`), endSessionUrl.href);
  r = await browser.get(endSessionUrl);
  let backUrl;
  try {
    backUrl = new URL(r.location);
  } catch {
    // reported below
  }
  check('end session with a valid hint redirects (303) back to post_logout_redirect_uri with the state',
    r.status === 303 && backUrl !== undefined
      && `${backUrl.origin}${backUrl.pathname}` === postLogoutRedirectUri
      && backUrl.searchParams.get('state') === logoutState,
    describeResponse(r));
  console.log(`# the session cookie after logout: ${browser.jar.find('portcullis.session') ? 'still in the jar' : 'cleared'}`);

  // 10. The session is gone: prompt=none is login_required.
  const silent = authorizationParameters(redirectUri, 'openid', { prompt: 'none' });
  r = await browser.get(client.buildAuthorizationUrl(config, await silent.parameters()));
  need('prompt=none after logout redirects to the client', isRedirectTo(r, redirectUri), describeResponse(r));
  await expectOAuthError('prompt=none after logout is login_required', 'login_required',
    client.authorizationCodeGrant(config, new URL(r.location), {
      pkceCodeVerifier: silent.codeVerifier,
      expectedState: silent.state,
    }));
}

run(main);
