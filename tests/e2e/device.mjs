// End-to-end device authorization grant (RFC 8628) with openid-client's device functions as the
// device and headless Chromium as the user's phone. Twice: alice enters the code from
// verification_uri_complete (prefilled, still confirmed) and signs in with her password; bob types
// the code at verification_uri and signs in through the upstream provider globex (another tenant
// of the same server, OIDC). Each time the consent page must say that a device is asking, the
// last page must send the user back to the device, and the tokens openid-client polls for must be
// the user's (id token validated by openid-client).
//
// Run (normally by tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme SERVER_CERT_PEM="$(cat server.pem)" CHROMIUM=/usr/bin/chromium \
//   DEVICE_CLIENT_ID=acme-tv SCOPE='openid profile api.read offline_access' \
//   LOCAL_USERNAME=alice LOCAL_PASSWORD=alice-password \
//   UPSTREAM_BUTTON='Globex Corporation' UPSTREAM_USERNAME=bob UPSTREAM_PASSWORD=bob-password \
//   NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/device.mjs

import * as client from 'openid-client';
import {
  check, describeError, env, need, notOk, ok, requireTlsVerification, run,
} from './lib/report.mjs';
import { STEP_TIMEOUT_MS, launchChromium, watchForProblems } from './lib/chromium.mjs';

async function signIn(page, username, password) {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}

/** The consent page of a device sign-in: it must say a device is asking; then allow. */
async function allowOnConsent(label, page, issuer) {
  await page.waitForURL((u) => u.href.startsWith(`${issuer}/account/consent?interaction=`));
  const text = await page.locator('main').innerText();
  check(`${label}: the consent page names the device client and says that a device is asking`,
    await page.locator('#device-notice').isVisible() && /Acme TV/.test(text) && /Read your Acme data/.test(text),
    JSON.stringify(text));
  check(`${label}: a device's consent cannot be remembered`, await page.locator('#remember').count() === 0,
    'a remember box is shown');
  await page.locator('#allow').click();
  await page.locator('#device-approved').waitFor();
  ok(`${label}: the last page says to return to the device`);
}

/** Polls with openid-client until the user has decided; checks the tokens are `username`'s. */
async function tokensFor(label, config, issuer, polling, username) {
  try {
    const tokens = await polling;
    const claims = tokens.claims();
    check(`${label}: openid-client polls the token endpoint and validates the id token of ${username}`,
      claims?.iss === issuer && typeof claims?.sub === 'string',
      JSON.stringify(claims));
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    check(`${label}: userinfo with the device's access token names ${username}`,
      info.preferred_username === username, JSON.stringify(info));
    check(`${label}: a refresh token comes with offline_access`, typeof tokens.refresh_token === 'string',
      Object.keys(tokens).join(', '));
    return tokens;
  } catch (err) {
    notOk(`${label}: openid-client polls the token endpoint and validates the id token of ${username}`,
      describeError(err));
    return undefined;
  }
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const scope = env('SCOPE');
  const alice = { username: env('LOCAL_USERNAME'), password: env('LOCAL_PASSWORD') };
  const bob = { username: env('UPSTREAM_USERNAME'), password: env('UPSTREAM_PASSWORD') };
  const upstreamButton = env('UPSTREAM_BUTTON');
  // enableNonRepudiationChecks: without it openid-client 6 does not verify id token signatures.
  const config = await client.discovery(new URL(issuer), env('DEVICE_CLIENT_ID'), undefined, client.None(),
    { execute: [client.enableNonRepudiationChecks] });
  need('discovery advertises the device authorization endpoint',
    config.serverMetadata().device_authorization_endpoint === `${issuer}/connect/deviceauthorization`,
    JSON.stringify(config.serverMetadata().device_authorization_endpoint));

  const browser = await launchChromium(env('CHROMIUM'), env('SERVER_CERT_PEM'));
  const problems = [];
  try {
    // 1. alice: the link from verification_uri_complete, her password, consent.
    const first = await client.initiateDeviceAuthorization(config, { scope });
    check('alice: the user code is XXXX-XXXX of the RFC 8628 §6.1 consonants',
      /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/.test(first.user_code), first.user_code);
    const firstPolling = client.pollDeviceAuthorizationGrant(config, first);
    const aliceContext = await browser.newContext();
    const page = await aliceContext.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(page, problems);
    await page.goto(first.verification_uri_complete);
    check('alice: the code from verification_uri_complete is filled in, waiting for her to confirm',
      await page.locator('#user_code').inputValue() === first.user_code, page.url());
    await page.locator('#continue').click();
    await page.waitForURL((u) => u.href.startsWith(`${issuer}/account/login?interaction=`));
    await signIn(page, alice.username, alice.password);
    await allowOnConsent('alice', page, issuer);
    await tokensFor('alice', config, issuer, firstPolling, alice.username);
    await aliceContext.close();

    // 2. bob: types the code at verification_uri, signs in at the upstream provider.
    const second = await client.initiateDeviceAuthorization(config, { scope });
    const secondPolling = client.pollDeviceAuthorizationGrant(config, second);
    const bobContext = await browser.newContext();
    const bobPage = await bobContext.newPage();
    bobPage.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(bobPage, problems);
    await bobPage.goto(second.verification_uri);
    await bobPage.locator('#user_code').fill(second.user_code.replace('-', '').toLowerCase());
    await bobPage.locator('#continue').click();
    await bobPage.waitForURL((u) => u.href.startsWith(`${issuer}/account/login?interaction=`));
    await bobPage.getByRole('link', { name: upstreamButton }).click();
    // The upstream's own login page (another origin path: the globex tenant).
    await bobPage.waitForURL((u) => !u.href.startsWith(issuer) && u.pathname.endsWith('/account/login'));
    ok('bob: the login page sends him to the upstream provider');
    await signIn(bobPage, bob.username, bob.password);
    await allowOnConsent('bob', bobPage, issuer);
    const tokens = await tokensFor('bob', config, issuer, secondPolling, bob.username);
    if (tokens) {
      const claims = tokens.claims();
      check('bob: the id token says he came through the upstream provider',
        claims.idp !== 'local' && typeof claims.idp === 'string', JSON.stringify(claims));
    }
    await bobContext.close();
  } finally {
    check('no console errors (CSP violations included), page errors or failed requests on the way',
      problems.length === 0, problems.join(' | '));
    await browser.close();
  }
}

run(main);
