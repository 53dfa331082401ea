// What the federation end-to-end scripts share: the relying party (openid-client) at Portcullis,
// registering an upstream through the admin API, the sign-in up to the upstream and back through
// Portcullis's consent page, and the checks on the tokens Portcullis then issues.

import * as client from 'openid-client';
import {
  check, describeError, failureCount, need, notOk, ok,
} from './report.mjs';
import {
  describeResponse, followRedirects, formById, isRedirectTo,
} from './scripted_browser.mjs';

/** The relying party: openid-client configured for `clientId` at `issuer` (discovery). */
export async function relyingParty(issuer, clientId, clientSecret) {
  // enableNonRepudiationChecks: without it openid-client 6 does not verify id token signatures.
  const config = await client.discovery(new URL(issuer), clientId, clientSecret,
    client.ClientSecretBasic(clientSecret), { execute: [client.enableNonRepudiationChecks] });
  need('discovery: issuer is the tenant issuer', config.serverMetadata().issuer === issuer,
    `got ${JSON.stringify(config.serverMetadata().issuer)}`);
  return config;
}

/** Adds `spec` through the admin API with a client_credentials token of the admin client. */
export async function addProvider(issuer, adminId, adminSecret, spec) {
  const admin = await client.discovery(new URL(issuer), adminId, adminSecret,
    client.ClientSecretBasic(adminSecret));
  let token;
  try {
    token = await client.clientCredentialsGrant(admin, { scope: 'portcullis.admin' });
  } catch (err) {
    need(`${adminId} gets an admin token (client_credentials, scope portcullis.admin)`, false, describeError(err));
  }
  const response = await fetch(`${issuer}/admin/providers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' },
    body: JSON.stringify(spec),
  });
  const body = await response.text();
  need(`the admin API adds the ${spec.kind} provider ${spec.id} (201)`, response.status === 201,
    `status ${response.status}: ${body}`);
}

/** An authorization request of `config` with PKCE S256, state, nonce and `extra` parameters. */
export async function authorizationRequest(config, redirectUri, scope, extra) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  return {
    url, codeVerifier, state, nonce,
  };
}

/**
 * From the authorization request to the upstream: Portcullis's federation start hop, then the
 * redirect to the upstream. Returns the upstream URL.
 */
export async function toUpstream(browser, issuer, providerId, authorizationUrl, upstreamPrefix) {
  let r = await browser.get(authorizationUrl);
  need(`authorize with the hint for ${providerId} redirects (303) to Portcullis's federation start for it`,
    r.status === 303 && r.location?.startsWith(`${issuer}/federation/${providerId}/start?`), describeResponse(r));
  r = await browser.get(r.location);
  need(`the federation start redirects the browser to the upstream (${upstreamPrefix})`,
    [302, 303].includes(r.status) && r.location?.startsWith(upstreamPrefix), describeResponse(r));
  return new URL(r.location);
}

/**
 * Back at Portcullis after the upstream: follows its redirects, allows on its consent page when
 * it shows one, and returns the redirect to the relying party.
 */
export async function backAtPortcullis(browser, response, issuer, redirectUri) {
  let r = await followRedirects(browser, response,
    (location) => location.startsWith(`${issuer}/`) && !location.startsWith(`${issuer}/account/consent`));
  if (r.location?.startsWith(`${issuer}/account/consent?`)) {
    r = await browser.get(r.location);
    const consent = formById(r, 'consent-form');
    need('Portcullis shows its consent page for the brokered user', r.status === 200 && consent !== undefined,
      describeResponse(r));
    r = await browser.post(consent.action, { ...consent.hidden, decision: 'allow' });
  }
  need('Portcullis redirects (303) to the relying party', isRedirectTo(r, redirectUri), describeResponse(r));
  const callback = new URL(r.location);
  check('the redirect to the relying party carries the code, its state and iss (RFC 9207)',
    callback.searchParams.get('code') && callback.searchParams.get('iss') === issuer, callback.href);
  return callback;
}

/**
 * The code grant at Portcullis (openid-client checks the id token), then the claims that say the
 * user signed in through `providerId`, and UserInfo with the upstream's email and name.
 */
export async function redeemAndCheck(config, request, callback, { providerId, email, name }) {
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: request.codeVerifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    need('authorizationCodeGrant validates the response and the id token', false, describeError(err));
  }
  ok('authorizationCodeGrant validates the response and Portcullis\'s id token (signature, iss, aud, nonce)');
  const claims = tokens.claims();
  check(`id token: idp is "${providerId}"`, claims.idp === providerId, `got ${JSON.stringify(claims.idp)}`);
  check('id token: amr starts with "external"', Array.isArray(claims.amr) && claims.amr[0] === 'external',
    `got ${JSON.stringify(claims.amr)}`);
  console.log(`# id token: sub ${JSON.stringify(claims.sub)}, amr ${JSON.stringify(claims.amr)}`);
  try {
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    check(`userinfo has the upstream's email ${email} and name "${name}"`,
      info.email === email && info.name === name, JSON.stringify(info));
  } catch (err) {
    notOk('userinfo returns the claims of the brokered user', describeError(err));
  }
}

/** Runs `body` with a started upstream, stopping it afterwards; its log goes to stderr on failure. */
export async function withUpstream(upstream, body) {
  try {
    await body();
  } finally {
    await upstream.stop();
    if (failureCount() > 0) console.error(`--- upstream log ---\n${upstream.log()}`);
  }
}
