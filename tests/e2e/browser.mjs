// End-to-end check of the sign-in pages in a real browser: headless Chromium (Debian's package)
// driven by playwright-core. Carol signs in at a public client through the login page and the
// TOTP page; alice, in a fresh browser context, signs in at a confidential client and sees the
// consent page. Each code that reaches the client is redeemed with openid-client. Then, in a third
// context, alice signs in to the demo SAML SP (an AuthnRequest made by node-saml), opens the
// application portal (/apps) with the SSO session and starts the SP from there (IdP-initiated:
// an unsolicited Response, posted by the page to the SP's ACS with the default RelayState).
// Screenshots of the pages go to SCREENSHOTS_DIR (phone size; the login page at desktop size too;
// the SAML sign-in page and the portal at desktop size, the portal at phone size too).
//
// Run (normally by a Rust integration test, tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme SERVER_CERT_PEM="$(cat server.pem)" CHROMIUM=/usr/bin/chromium \
//   SCREENSHOTS_DIR=/tmp/shots NODE_EXTRA_CA_CERTS=certs/ca.pem \
//   TOTP_CLIENT_ID=acme-spa TOTP_REDIRECT_URI=http://127.0.0.1:9000/spa/callback \
//   TOTP_USERNAME=carol TOTP_PASSWORD=carol-password TOTP_SECRET=CPVGE6YPNPBBTGYVKT2AOU537SU3URFN \
//   CONSENT_CLIENT_ID=acme-web CONSENT_CLIENT_SECRET=acme-web-secret \
//   CONSENT_REDIRECT_URI=http://127.0.0.1:9000/callback CONSENT_USERNAME=alice \
//   CONSENT_PASSWORD=alice-password SAML_SP_ENTITY_ID=https://sp.acme.test \
//   SAML_ACS_URL=http://127.0.0.1:9000/saml/acs SAML_SP_NAME='Acme Wiki (SAML)' \
//   SAML_DEFAULT_RELAY_STATE=/welcome node tests/e2e/browser.mjs
//
// TLS verification stays on: Chromium pins the server's key (lib/chromium.mjs); Node trusts the
// dev CA through NODE_EXTRA_CA_CERTS.

import { createHmac } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as client from 'openid-client';
import { SAML } from '@node-saml/node-saml';
import {
  check, describeError, env, need, notOk, ok, requireTlsVerification, run,
} from './lib/report.mjs';
import { STEP_TIMEOUT_MS, launchChromium, watchForProblems } from './lib/chromium.mjs';

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

// RFC 4648 §6
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(ch)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

// RFC 6238 (TOTP, 30 s steps from the Unix epoch) over RFC 4226 §5.3 (HOTP dynamic truncation).
function totp(key, unixSeconds, digits = 6, step = 30) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / step)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

/** Nothing listens at the client's redirect URI: the browser gets a stand-in page there.
 * Not page.route: Playwright never routes the hops of a redirect (its documented limit, see
 * microsoft/playwright#33882), and the server reaches the client by a 303. Chromium's own Fetch
 * domain pauses redirected requests too, so the stand-in is served through a CDP session. */
async function standInClient(context, page, redirectUri) {
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (event) => {
    cdp.send('Fetch.fulfillRequest', {
      requestId: event.requestId,
      responseCode: 200,
      responseHeaders: [{ name: 'content-type', value: 'text/html; charset=utf-8' }],
      body: Buffer.from('<!doctype html><title>client</title><p>Back at the client.</p>').toString('base64'),
    }).catch(() => {
      // the page went away first
    });
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${new URL(redirectUri).origin}/*` }] });
}

/** Nothing listens at the SP's ACS either: a stand-in page there, and what was posted to it
 * (method, URL and form fields) pushed to `received`. */
async function standInSp(context, page, acsUrl, received) {
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (event) => {
    const { request } = event;
    const body = request.postData
      ?? (request.postDataEntries ?? []).map((e) => Buffer.from(e.bytes ?? '', 'base64').toString('utf8')).join('');
    received.push({ method: request.method, url: request.url, form: Object.fromEntries(new URLSearchParams(body ?? '')) });
    cdp.send('Fetch.fulfillRequest', {
      requestId: event.requestId,
      responseCode: 200,
      responseHeaders: [{ name: 'content-type', value: 'text/html; charset=utf-8' }],
      body: Buffer.from('<!doctype html><title>SP</title><p>Back at the service provider.</p>').toString('base64'),
    }).catch(() => {
      // the page went away first
    });
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${new URL(acsUrl).origin}/*` }] });
}

/** The last Response posted to the ACS: its form fields and XML. */
function lastPosted(received, acsUrl) {
  const post = [...received].reverse().find((r) => r.method === 'POST' && r.url === acsUrl);
  if (!post?.form.SAMLResponse) return undefined;
  return { form: post.form, xml: Buffer.from(post.form.SAMLResponse, 'base64').toString('utf8') };
}

async function screenshot(page, dir, name, viewport) {
  const before = page.viewportSize();
  if (viewport) await page.setViewportSize(viewport);
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: true });
  if (viewport) await page.setViewportSize(before);
  console.log(`# screenshot ${path}`);
}

async function authorizationRequest(config, redirectUri, scope) {
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
  return { url, codeVerifier, state, nonce };
}

/** Checks the redirect the browser landed on and redeems its code; returns the id-token claims. */
async function redeem(label, config, issuer, landedAt, request) {
  const params = landedAt.searchParams;
  check(`${label}: the browser lands on the redirect URI with code, state and iss`,
    params.get('code') && params.get('state') === request.state && params.get('iss') === issuer, landedAt.href);
  try {
    const tokens = await client.authorizationCodeGrant(config, landedAt, {
      pkceCodeVerifier: request.codeVerifier,
      expectedState: request.state,
      expectedNonce: request.nonce,
      idTokenExpected: true,
    });
    ok(`${label}: openid-client redeems the code and validates the id token`);
    return tokens.claims();
  } catch (err) {
    notOk(`${label}: openid-client redeems the code and validates the id token`, describeError(err));
    return undefined;
  }
}

async function sessionCookieIsTenantScoped(label, context, issuer) {
  const path = new URL(issuer).pathname;
  const session = (await context.cookies(issuer)).find((c) => c.name === 'portcullis.session');
  check(`${label}: the browser holds portcullis.session (Path=${path}, Secure, HttpOnly, SameSite=Lax)`,
    session?.path === path && session.secure && session.httpOnly && session.sameSite === 'Lax',
    JSON.stringify(session));
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const executablePath = env('CHROMIUM');
  const shots = env('SCREENSHOTS_DIR');
  const totpClient = { id: env('TOTP_CLIENT_ID'), redirectUri: env('TOTP_REDIRECT_URI') };
  const carol = { username: env('TOTP_USERNAME'), password: env('TOTP_PASSWORD'), secret: env('TOTP_SECRET') };
  const consentClient = {
    id: env('CONSENT_CLIENT_ID'), secret: env('CONSENT_CLIENT_SECRET'), redirectUri: env('CONSENT_REDIRECT_URI'),
  };
  const alice = { username: env('CONSENT_USERNAME'), password: env('CONSENT_PASSWORD') };
  const samlSp = {
    entityId: env('SAML_SP_ENTITY_ID'), acs: env('SAML_ACS_URL'), name: env('SAML_SP_NAME'),
    relayState: env('SAML_DEFAULT_RELAY_STATE'),
  };
  await mkdir(shots, { recursive: true });

  // RFC 6238 Appendix B, SHA-1, T = 59 s: 94287082 (8 digits).
  need('the TOTP generator matches the RFC 6238 test vector',
    totp(Buffer.from('12345678901234567890'), 59, 8) === '94287082', totp(Buffer.from('12345678901234567890'), 59, 8));

  // enableNonRepudiationChecks: without it openid-client 6 does not verify id token signatures.
  const spa = await client.discovery(new URL(issuer), totpClient.id, undefined, client.None(),
    { execute: [client.enableNonRepudiationChecks] });
  const web = await client.discovery(new URL(issuer), consentClient.id, consentClient.secret,
    client.ClientSecretBasic(consentClient.secret), { execute: [client.enableNonRepudiationChecks] });

  const browser = await launchChromium(executablePath, env('SERVER_CERT_PEM'));
  const problems = [];
  try {
    // 1. Carol: password, then her TOTP code, then straight back to the public client.
    const carolContext = await browser.newContext({ viewport: PHONE });
    const page = await carolContext.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(page, problems);
    await standInClient(carolContext, page, totpClient.redirectUri);
    const spaRequest = await authorizationRequest(spa, totpClient.redirectUri, 'openid profile');
    await page.goto(spaRequest.url.href);
    need('carol: authorize takes the browser to the login page over TLS with the pinned key',
      page.url().startsWith(`${issuer}/account/login?interaction=`), page.url());
    check('carol: the login page shows the sign-in form with labelled fields',
      await page.locator('#login-form').isVisible() && await page.getByLabel('Username').count() === 1
        && await page.getByLabel('Password').count() === 1,
      await page.locator('main').innerText());
    await screenshot(page, shots, 'login-phone.png');
    await page.locator('#username').fill(carol.username);
    await page.locator('#password').fill(carol.password);
    await page.locator('#login-form button[type="submit"]').click();
    await page.locator('#code').waitFor();
    need('carol: the TOTP page follows the password', await page.locator('#totp-form').isVisible(), page.url());
    await screenshot(page, shots, 'totp-phone.png');
    await page.locator('#code').fill(totp(base32Decode(carol.secret), Date.now() / 1000));
    await page.locator('#totp-form button[type="submit"]').click();
    await page.waitForURL((u) => u.href.startsWith(`${totpClient.redirectUri}?`));
    ok('carol: after the TOTP code the browser goes straight to the client (no consent for this client)');
    const carolClaims = await redeem('carol', spa, issuer, new URL(page.url()), spaRequest);
    if (carolClaims) {
      check(`carol: id token sub is ${carol.username} and amr is ["pwd","otp","mfa"]`,
        carolClaims.sub === carol.username && JSON.stringify(carolClaims.amr) === '["pwd","otp","mfa"]',
        `sub ${JSON.stringify(carolClaims.sub)} amr ${JSON.stringify(carolClaims.amr)}`);
    }
    await sessionCookieIsTenantScoped('carol', carolContext, issuer);
    await carolContext.close();

    // 2. Alice, in a fresh context: login, then the consent page of the confidential client.
    const aliceContext = await browser.newContext({ viewport: PHONE });
    const alicePage = await aliceContext.newPage();
    alicePage.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(alicePage, problems);
    await standInClient(aliceContext, alicePage, consentClient.redirectUri);
    const webRequest = await authorizationRequest(web, consentClient.redirectUri, 'openid profile email api.read');
    await alicePage.goto(webRequest.url.href);
    need('alice: a fresh context has no session: the login page is shown',
      alicePage.url().startsWith(`${issuer}/account/login?interaction=`), alicePage.url());
    await screenshot(alicePage, shots, 'login-desktop.png', DESKTOP);
    await alicePage.locator('#username').fill(alice.username);
    await alicePage.locator('#password').fill(alice.password);
    await alicePage.locator('#login-form button[type="submit"]').click();
    await alicePage.waitForURL((u) => u.href.startsWith(`${issuer}/account/consent?interaction=`));
    const buttons = ['#allow', '#deny', '#remember'];
    const visible = await Promise.all(buttons.map((s) => alicePage.locator(s).isVisible()));
    check('alice: the consent page shows Allow, Deny and Remember my decision',
      visible.every(Boolean), buttons.filter((_, i) => !visible[i]).join(', ') || 'all visible');
    const consentText = await alicePage.locator('main').innerText();
    check('alice: the consent page names the client and what it asks for',
      /Acme Web/.test(consentText) && /email/i.test(consentText) && /Read your Acme data/.test(consentText),
      JSON.stringify(consentText));
    await screenshot(alicePage, shots, 'consent-phone.png');
    await alicePage.locator('#allow').click();
    await alicePage.waitForURL((u) => u.href.startsWith(`${consentClient.redirectUri}?`));
    ok('alice: allowing takes the browser to the client');
    const aliceClaims = await redeem('alice', web, issuer, new URL(alicePage.url()), webRequest);
    if (aliceClaims) {
      check(`alice: id token sub is ${alice.username} and amr is ["pwd"]`,
        aliceClaims.sub === alice.username && JSON.stringify(aliceClaims.amr) === '["pwd"]',
        `sub ${JSON.stringify(aliceClaims.sub)} amr ${JSON.stringify(aliceClaims.amr)}`);
    }
    await sessionCookieIsTenantScoped('alice', aliceContext, issuer);
    await aliceContext.close();

    // 3. Alice at the SAML SP, then the application portal, then the SP from the portal.
    const samlContext = await browser.newContext({ viewport: DESKTOP });
    const samlPage = await samlContext.newPage();
    samlPage.setDefaultTimeout(STEP_TIMEOUT_MS);
    watchForProblems(samlPage, problems);
    const received = [];
    await standInSp(samlContext, samlPage, samlSp.acs, received);
    // The SP's AuthnRequest (HTTP-Redirect, unsigned: the demo SP registered no certificate),
    // made by node-saml; its response validation is tests/e2e/saml_sso.mjs's business.
    const sp = new SAML({
      entryPoint: `${issuer}/saml/sso`, issuer: samlSp.entityId, callbackUrl: samlSp.acs, idpCert: 'unused',
      wantAssertionsSigned: true, identifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    });
    await samlPage.goto(await sp.getAuthorizeUrlAsync('saml-demo', undefined, {}));
    need('saml: the AuthnRequest takes the browser to the login page',
      samlPage.url().startsWith(`${issuer}/account/login?interaction=`), samlPage.url());
    check(`saml: the login page names the SP (${samlSp.name})`,
      (await samlPage.locator('main').innerText()).includes(samlSp.name), await samlPage.locator('main').innerText());
    await screenshot(samlPage, shots, 'saml-sign-in.png');
    await samlPage.locator('#username').fill(alice.username);
    await samlPage.locator('#password').fill(alice.password);
    await samlPage.locator('#login-form button[type="submit"]').click();
    await samlPage.waitForURL(samlSp.acs);
    const spInitiated = lastPosted(received, samlSp.acs);
    check('saml: the page posts a Response with an assertion, answering the request (InResponseTo), to the ACS',
      spInitiated?.xml.includes('InResponseTo="') && spInitiated.xml.includes('Assertion')
        && spInitiated.form.RelayState === 'saml-demo',
      JSON.stringify(received.map((r) => `${r.method} ${r.url}`)));

    await samlPage.goto(`${issuer}/apps`);
    need('portal: with the SSO session, /apps shows the applications (no login page)',
      samlPage.url() === `${issuer}/apps` && await samlPage.locator('#apps').isVisible(), samlPage.url());
    const portalText = await samlPage.locator('main').innerText();
    check(`portal: it lists ${samlSp.name} and greets the user`,
      portalText.includes(samlSp.name) && /Signed in as/.test(portalText), JSON.stringify(portalText));
    await screenshot(samlPage, shots, 'portal.png');
    await screenshot(samlPage, shots, 'portal-phone.png', PHONE);
    await samlPage.setViewportSize(PHONE);
    const wide = await samlPage.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    check('portal: nothing overflows sideways at phone width', !wide, 'horizontal scrolling');
    await samlPage.setViewportSize(DESKTOP);
    const before = received.length;
    await samlPage.locator(`button[data-kind="saml"]:has-text("${samlSp.name}")`).click();
    await samlPage.waitForURL(samlSp.acs);
    const unsolicited = received.length > before ? lastPosted(received, samlSp.acs) : undefined;
    check('portal: the SP\'s button posts an unsolicited Response (no InResponseTo) with the default RelayState',
      unsolicited !== undefined && !unsolicited.xml.includes('InResponseTo') && unsolicited.xml.includes('Assertion')
        && unsolicited.form.RelayState === samlSp.relayState,
      unsolicited ? unsolicited.xml.slice(0, 300) : 'nothing posted');
    await samlContext.close();
  } finally {
    check('no console errors (CSP violations included), page errors or failed requests on the way',
      problems.length === 0, problems.join(' | '));
    await browser.close();
  }
}

run(main);
