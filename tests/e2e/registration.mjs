// End-to-end check of clients that register themselves, with a certified third-party relying
// party (openid-client v6):
//
// 1. Dynamic client registration (RFC 7591) with an initial access token through openid-client's
//    `dynamicClientRegistration`; the registered client signs alice in through the real pages
//    (PKCE, consent), its id token is verified, it refreshes; RFC 7592: its registration is read
//    with the registration access token, the initial token is refused a second time, and once
//    the registration is deleted its refresh token no longer works.
// 2. A client ID metadata document, as Model Context Protocol clients use: this script serves
//    its own document over HTTPS (the development certificate, `localhost`), uses the document's
//    URL as its client_id with openid-client (`None()` authentication, PKCE), sees its host on
//    the consent page, and gets verified tokens; a document that names another URL is refused.
//
// Run (normally by a Rust integration test, tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme INITIAL_ACCESS_TOKEN=… REDIRECT_URI=http://127.0.0.1:9000/callback \
//   LOGIN_USERNAME=alice LOGIN_PASSWORD=alice-password UPSTREAM_TLS_CERT=certs/server.pem \
//   UPSTREAM_TLS_KEY=certs/server-key.pem NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/registration.mjs

import fs from 'node:fs';
import https from 'node:https';
import * as client from 'openid-client';
import {
  check, describeError, env, expectOAuthError, need, ok, requireTlsVerification, run, section,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, formById, isRedirectTo,
} from './lib/scripted_browser.mjs';

const verifying = { execute: [client.enableNonRepudiationChecks] };

/** Signs `username` in through the pages for `config`; returns openid-client's tokens. */
async function signIn(config, { issuer, redirectUri, scope, username, password, onConsent }) {
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
  });
  const browser = new ScriptedBrowser();
  let r = await browser.get(url);
  need('authorize redirects to the login page',
    r.status === 303 && r.location?.startsWith(`${issuer}/account/login?interaction=`), describeResponse(r));
  r = await browser.get(r.location);
  const login = formById(r, 'login-form');
  need('the login page has its form', login?.hidden?.csrf, describeResponse(r));
  r = await browser.post(login.action, { ...login.hidden, username, password });
  need('the login leads to the consent page (a registered client always asks)',
    r.status === 303 && r.location?.startsWith(`${issuer}/account/consent?interaction=`), describeResponse(r));
  r = await browser.get(r.location);
  const consent = formById(r, 'consent-form');
  need('the consent page has its form', consent?.hidden?.csrf, describeResponse(r));
  onConsent?.(r.html);
  r = await browser.post(consent.action, { ...consent.hidden, decision: 'allow' });
  need('allowing redirects to the redirect URI', isRedirectTo(r, redirectUri), describeResponse(r));
  try {
    return await client.authorizationCodeGrant(config, new URL(r.location), {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
  } catch (err) {
    need('authorizationCodeGrant validates the response and the id token', false, describeError(err));
  }
  return undefined;
}

async function registration({ issuer, redirectUri, username, password }) {
  const iat = env('INITIAL_ACCESS_TOKEN');
  const metadata = {
    client_name: 'openid-client e2e',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'openid profile offline_access',
  };
  let config;
  try {
    config = await client.dynamicClientRegistration(new URL(issuer), metadata, undefined, {
      ...verifying,
      initialAccessToken: iat,
    });
  } catch (err) {
    need('dynamicClientRegistration registers a client with the initial access token', false, describeError(err));
  }
  ok('dynamicClientRegistration registers a client with the initial access token');
  const md = config.clientMetadata();
  check('the registration answers client_id, client_secret, registration_access_token and registration_client_uri',
    typeof md.client_id === 'string' && typeof md.client_secret === 'string'
      && typeof md.registration_access_token === 'string'
      && md.registration_client_uri === `${issuer}/connect/register/${md.client_id}`,
    JSON.stringify({ ...md, client_secret: '…', registration_access_token: '…' }));
  check('client_secret_expires_at is 0 (the secret does not expire)', md.client_secret_expires_at === 0,
    `got ${JSON.stringify(md.client_secret_expires_at)}`);

  const tokens = await signIn(config, {
    issuer, redirectUri, scope: metadata.scope, username, password,
  });
  ok('the registered client signs alice in; openid-client verifies its id token (signature, iss, aud, nonce)');
  check('the id token is for the registered client', tokens.claims().aud === md.client_id
    || (Array.isArray(tokens.claims().aud) && tokens.claims().aud.includes(md.client_id)),
  JSON.stringify(tokens.claims().aud));
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  ok('the registered client refreshes its tokens');

  // RFC 7592 §2.1: read with the registration access token.
  const auth = (t) => ({ headers: { authorization: `Bearer ${t}` } });
  let r = await fetch(md.registration_client_uri, auth(md.registration_access_token));
  const read = await r.json();
  check('RFC 7592: the registration reads back with its token, without the secret',
    r.status === 200 && read.client_id === md.client_id && read.client_name === metadata.client_name
      && read.client_secret === undefined,
    `status ${r.status} ${JSON.stringify(read)}`);
  r = await fetch(md.registration_client_uri, auth(iat));
  check('RFC 7592: the initial access token does not read it (401)', r.status === 401, `status ${r.status}`);

  // The initial access token was good for one registration.
  try {
    await client.dynamicClientRegistration(new URL(issuer), metadata, undefined, { initialAccessToken: iat });
    check('a used initial access token registers no second client', false, 'it registered one');
  } catch (err) {
    check('a used initial access token registers no second client (401)',
      err?.status === 401 || err?.response?.status === 401 || /401|invalid_token/.test(describeError(err)),
      describeError(err));
  }

  // RFC 7592 §2.3: deleted, its tokens stop at once.
  r = await fetch(md.registration_client_uri, { method: 'DELETE', ...auth(md.registration_access_token) });
  check('RFC 7592: the client deletes its registration (204)', r.status === 204, `status ${r.status}`);
  await expectOAuthError('after deletion, its refresh token is refused (invalid_client)', 'invalid_client',
    client.refreshTokenGrant(config, refreshed.refresh_token));
}

/** Serves `documents` (path → JSON) over HTTPS on 127.0.0.1 with the development certificate. */
async function serveDocuments(documents) {
  const server = https.createServer({
    cert: fs.readFileSync(env('UPSTREAM_TLS_CERT')),
    key: fs.readFileSync(env('UPSTREAM_TLS_KEY')),
  }, (req, res) => {
    const doc = documents.get(req.url);
    if (!doc) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
    res.end(JSON.stringify(doc));
  });
  await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  return server;
}

async function metadataDocument({ issuer, redirectUri, username, password }) {
  const documents = new Map();
  const server = await serveDocuments(documents);
  try {
    const base = `https://localhost:${server.address().port}`;
    const clientId = `${base}/mcp/client.json`;
    const scope = 'openid profile offline_access';
    documents.set('/mcp/client.json', {
      client_id: clientId,
      client_name: 'Example MCP tool',
      client_uri: base,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope,
    });
    documents.set('/mcp/liar.json', { ...documents.get('/mcp/client.json') });

    const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), verifying);
    check('discovery says client ID metadata documents are supported',
      config.serverMetadata().client_id_metadata_document_supported === true,
      JSON.stringify(config.serverMetadata().client_id_metadata_document_supported));
    let consentPage = '';
    const tokens = await signIn(config, {
      issuer,
      redirectUri,
      scope,
      username,
      password,
      onConsent: (html) => { consentPage = html; },
    });
    ok('a client named by its metadata document signs alice in with PKCE; openid-client verifies the id token');
    check('the consent page shows the document\'s host prominently',
      consentPage.includes('id="client-host"') && consentPage.includes('<strong>localhost</strong>'),
      consentPage.replace(/\s+/g, ' ').slice(0, 400));
    check('the id token\'s audience is the document URL', tokens.claims().aud === clientId
      || (Array.isArray(tokens.claims().aud) && tokens.claims().aud.includes(clientId)),
    JSON.stringify(tokens.claims().aud));
    await client.refreshTokenGrant(config, tokens.refresh_token);
    ok('the document client refreshes its tokens (a public client: no secret)');

    // A document that names another URL than its own is no client.
    const liar = await client.discovery(new URL(issuer), `${base}/mcp/liar.json`, undefined, client.None());
    const url = client.buildAuthorizationUrl(liar, {
      redirect_uri: redirectUri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const r = await new ScriptedBrowser().get(url);
    check('a document whose client_id is another URL gets an error page, no redirect', r.status === 400
      && r.location === undefined, describeResponse(r));
  } finally {
    server.close();
  }
}

async function main() {
  requireTlsVerification();
  const settings = {
    issuer: env('ISSUER'),
    redirectUri: env('REDIRECT_URI'),
    username: env('LOGIN_USERNAME'),
    password: env('LOGIN_PASSWORD'),
  };
  await section('dynamic client registration (RFC 7591, RFC 7592)', () => registration(settings));
  await section('a client ID metadata document', () => metadataDocument(settings));
}

run(main);
