// End-to-end OpenID Connect CIBA with openid-client's backchannel functions as the clients and
// headless Chromium as the user. The tenant announces each request at its webhook: a listener
// here receives the signed notification (verified with jose against the tenant's JWK Set) and
// opens its approval link in Chromium, where the user approves on the approvals page.
//   1. poll mode (acme-pos): openid-client polls until alice, signing in on the way, approves;
//   2. ping mode (acme-callcenter): the client's notification endpoint, a real HTTP listener
//      here at the registered http://127.0.0.1:9000/ciba-notify, receives the auth_req_id with
//      the client's notification token; the client then redeems it once.
//
// Run (normally by tests/it/e2e.rs, which starts the server with [ciba] webhook_url):
//   ISSUER=https://localhost:PORT/acme SERVER_CERT_PEM="$(cat server.pem)" CHROMIUM=/usr/bin/chromium \
//   WEBHOOK_PORT=PORT2 POLL_CLIENT_ID=acme-pos POLL_CLIENT_SECRET=acme-pos-secret \
//   PING_CLIENT_ID=acme-callcenter PING_CLIENT_SECRET=acme-callcenter-secret \
//   PING_ENDPOINT=http://127.0.0.1:9000/ciba-notify SCOPE='openid profile api.read' \
//   USERNAME=alice PASSWORD=alice-password NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/ciba.mjs

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import * as jose from 'jose';
import * as client from 'openid-client';
import {
  check, describeError, env, need, notOk, ok, requireTlsVerification, run,
} from './lib/report.mjs';
import { STEP_TIMEOUT_MS, launchChromium, watchForProblems } from './lib/chromium.mjs';

const CIBA_GRANT = 'urn:openid:params:grant-type:ciba';

/** An HTTP listener on 127.0.0.1:`port` that queues what it receives on `path`. */
async function listener(port, path) {
  const received = [];
  const waiting = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      res.writeHead(new URL(req.url, 'http://x').pathname === path ? 204 : 404).end();
      const item = { path: new URL(req.url, 'http://x').pathname, authorization: req.headers.authorization, body };
      const w = waiting.shift();
      if (w) w(item); else received.push(item);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    next(what) {
      const item = received.shift();
      if (item) return Promise.resolve(item);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within 15 s`)), 15_000);
        waiting.push((i) => { clearTimeout(timer); resolve(i); });
      });
    },
    close: () => new Promise((resolve) => { server.close(resolve); }),
  };
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const scope = env('SCOPE');
  const user = { username: env('USERNAME'), password: env('PASSWORD') };
  const webhookUrl = `http://127.0.0.1:${env('WEBHOOK_PORT')}/webhook`;
  const pingEndpoint = new URL(env('PING_ENDPOINT'));
  const options = { execute: [client.enableNonRepudiationChecks] };
  const pos = await client.discovery(new URL(issuer), env('POLL_CLIENT_ID'), env('POLL_CLIENT_SECRET'),
    client.ClientSecretBasic(env('POLL_CLIENT_SECRET')), options);
  const md = pos.serverMetadata();
  need('discovery advertises CIBA with poll and ping',
    md.backchannel_authentication_endpoint === `${issuer}/connect/ciba`
      && JSON.stringify(md.backchannel_token_delivery_modes_supported) === '["poll","ping"]',
    JSON.stringify({ e: md.backchannel_authentication_endpoint, m: md.backchannel_token_delivery_modes_supported }));
  const callcenter = await client.discovery(new URL(issuer), env('PING_CLIENT_ID'), env('PING_CLIENT_SECRET'),
    client.ClientSecretBasic(env('PING_CLIENT_SECRET')), options);
  const jwks = jose.createRemoteJWKSet(new URL(md.jwks_uri));

  const webhook = await listener(Number(env('WEBHOOK_PORT')), '/webhook');
  const pings = await listener(Number(pingEndpoint.port), pingEndpoint.pathname);
  const browser = await launchChromium(env('CHROMIUM'), env('SERVER_CERT_PEM'));
  const problems = [];
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(page, problems);

    /** The next webhook notification: verified, for this client; its approval link. */
    async function notified(label, clientId, bindingMessage) {
      const note = await webhook.next('webhook notification');
      try {
        const { payload } = await jose.jwtVerify(note.body, jwks, { issuer, audience: webhookUrl });
        check(`${label}: the webhook notification is signed by the tenant and names ${user.username}, the client and the binding message`,
          payload.username === user.username && payload.client_id === clientId
            && payload.binding_message === bindingMessage && typeof payload.approval_uri === 'string',
          JSON.stringify(payload));
        return payload.approval_uri;
      } catch (err) {
        notOk(`${label}: the webhook notification verifies against the tenant's JWK Set`, describeError(err));
        throw err;
      }
    }

    /** Opens the approval link and approves; signs in first when the page asks. */
    async function approve(label, link, bindingMessage) {
      await page.goto(link);
      const text = await page.locator('main').innerText();
      check(`${label}: the approvals page shows the binding message`, text.includes(bindingMessage), JSON.stringify(text));
      await page.locator('button[value="approve"]').click();
      await page.waitForURL((u) => u.pathname.endsWith('/account/login') || u.pathname.endsWith('/approvals'));
      if (page.url().includes('/account/login')) {
        ok(`${label}: approving asks ${user.username} to sign in`);
        await page.locator('#username').fill(user.username);
        await page.locator('#password').fill(user.password);
        await page.locator('#login-form button[type="submit"]').click();
      }
      await page.locator('#device-approved').waitFor();
      ok(`${label}: the page says the request is approved`);
    }

    // 1. Poll mode.
    const till = 'Till 4: 12.50 EUR';
    const first = await client.initiateBackchannelAuthentication(pos,
      { scope, login_hint: user.username, binding_message: till });
    check('poll: the request is answered with auth_req_id, expires_in and interval',
      typeof first.auth_req_id === 'string' && first.expires_in > 0 && first.interval === 5, JSON.stringify(first));
    const polling = client.pollBackchannelAuthenticationGrant(pos, first);
    await approve('poll', await notified('poll', env('POLL_CLIENT_ID'), till), till);
    try {
      const tokens = await polling;
      const claims = tokens.claims();
      check(`poll: openid-client polls and validates an id token of ${user.username} with auth_time and amr`,
        claims.sub === user.username && typeof claims.auth_time === 'number' && Array.isArray(claims.amr),
        JSON.stringify(claims));
    } catch (err) {
      notOk('poll: openid-client polls and validates the id token', describeError(err));
    }

    // 2. Ping mode (the browser still has the session: approving needs no second sign-in).
    const call = 'Call 7731';
    const token = randomBytes(24).toString('base64url');
    const second = await client.initiateBackchannelAuthentication(callcenter,
      { scope, login_hint: user.username, binding_message: call, client_notification_token: token });
    await approve('ping', await notified('ping', env('PING_CLIENT_ID'), call), call);
    const ping = await pings.next('ping');
    let body;
    try { body = JSON.parse(ping.body); } catch { body = undefined; }
    check('ping: the notification endpoint receives the auth_req_id with the client notification token as Bearer',
      ping.authorization === `Bearer ${token}` && body?.auth_req_id === second.auth_req_id,
      JSON.stringify({ authorization: ping.authorization, body: ping.body }));
    try {
      const tokens = await client.genericGrantRequest(callcenter, CIBA_GRANT, { auth_req_id: second.auth_req_id });
      check(`ping: the client redeems the auth_req_id for ${user.username}'s tokens`,
        tokens.claims()?.sub === user.username && typeof tokens.access_token === 'string',
        JSON.stringify(tokens.claims()));
    } catch (err) {
      notOk('ping: the client redeems the auth_req_id', describeError(err));
    }
    try {
      await client.genericGrantRequest(callcenter, CIBA_GRANT, { auth_req_id: second.auth_req_id });
      notOk('ping: a second redemption is refused', 'it succeeded');
    } catch (err) {
      check('ping: a second redemption is refused (invalid_grant)', err?.error === 'invalid_grant', describeError(err));
    }
  } finally {
    check('no console errors (CSP violations included), page errors or failed requests on the way',
      problems.length === 0, problems.join(' | '));
    await browser.close();
    await webhook.close();
    await pings.close();
  }
}

run(main);
