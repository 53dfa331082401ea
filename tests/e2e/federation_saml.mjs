// End-to-end federation with a real upstream SAML 2.0 identity provider nobody here wrote:
// saml-idp@1.2.1 (samlp, xml-crypto) in a child process. The script adds it to the tenant through
// the admin API (its metadata by URL, the SP key and certificate as values); then openid-client, as the tenant's
// web client, asks Portcullis to sign in with it (acr_values=idp:<id>). Portcullis sends a signed
// AuthnRequest (HTTP-Redirect), the scripted browser fills in saml-idp's own user form and posts
// its signed Response to Portcullis's ACS (HTTP-POST), allows on Portcullis's consent page, and the
// tokens Portcullis issues must say so (idp, amr) and carry the asserted email and name.
//
// Run (normally by tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme ADMIN_CLIENT_ID=acme-admin ADMIN_CLIENT_SECRET=acme-admin-secret \
//   CLIENT_ID=acme-web CLIENT_SECRET=acme-web-secret REDIRECT_URI=http://127.0.0.1:9000/callback \
//   SCOPE='openid profile email' PROVIDER_ID=corp-saml \
//   IDP_KEY_FILE=/tmp/idp-key.pem IDP_CERT_FILE=/tmp/idp.pem SP_KEY_FILE=/tmp/sp-key.pem SP_CERT_FILE=/tmp/sp.pem \
//   UPSTREAM_EMAIL=erin@saml.example UPSTREAM_NAME='Erin Example' \
//   UPSTREAM_TLS_CERT=certs/server.pem UPSTREAM_TLS_KEY=certs/server-key.pem \
//   NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/federation_saml.mjs
// (the four PEM files: any RSA-2048 keys with self-signed certificates; the script sends the SP's to the admin API.)

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  addProvider, authorizationRequest, backAtPortcullis, redeemAndCheck, relyingParty, toUpstream, withUpstream,
} from './lib/federation.mjs';
import {
  check, env, need, requireTlsVerification, run,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, forms,
} from './lib/scripted_browser.mjs';
import { startUpstream } from './lib/upstream.mjs';

const HTTP_POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const EMAIL_ADDRESS = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

function base64Json(value) {
  try {
    return JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const providerId = env('PROVIDER_ID');
  const redirectUri = env('REDIRECT_URI');
  const email = env('UPSTREAM_EMAIL');
  const name = env('UPSTREAM_NAME');
  const entityId = `${issuer}/federation/${providerId}`;
  const acs = `${entityId}/acs`;

  // 1. The IdP, told Portcullis's entity id and ACS (it reads no SP metadata).
  const idp = await startUpstream(process.execPath,
    fileURLToPath(new URL('./lib/saml_idp_upstream.mjs', import.meta.url)), {
      IDP_ENTITY_ID: 'urn:portcullis-e2e:saml-idp',
      IDP_KEY_FILE: env('IDP_KEY_FILE'),
      IDP_CERT_FILE: env('IDP_CERT_FILE'),
      ACS_URL: acs,
      AUDIENCE: entityId,
    });
  console.log(`# saml-idp at ${idp.base} (Node ${idp.version})`);
  await withUpstream(idp, async () => {
    // 2. Portcullis learns of it at runtime, from its metadata URL.
    await addProvider(issuer, env('ADMIN_CLIENT_ID'), env('ADMIN_CLIENT_SECRET'), {
      id: providerId,
      kind: 'saml',
      display_name: 'saml-idp',
      saml: {
        metadata_url: idp.metadata,
        // The admin API takes values, never paths: the SP's key and certificate themselves.
        sp_signing_key: readFileSync(env('SP_KEY_FILE'), 'utf8'),
        sp_certificate: readFileSync(env('SP_CERT_FILE'), 'utf8'),
      },
    });
    const spMetadata = await (await fetch(`${entityId}/metadata`)).text();
    check(`Portcullis's SP metadata names entity ${entityId} and the HTTP-POST ACS ${acs}`,
      spMetadata.includes(`entityID="${entityId}"`) && spMetadata.includes(`Location="${acs}"`)
        && spMetadata.includes(HTTP_POST),
      spMetadata.slice(0, 400));

    // 3. The relying party asks Portcullis to sign in with the IdP: a signed AuthnRequest.
    const config = await relyingParty(issuer, env('CLIENT_ID'), env('CLIENT_SECRET'));
    const request = await authorizationRequest(config, redirectUri, env('SCOPE'), { acr_values: `idp:${providerId}` });
    const browser = new ScriptedBrowser();
    const up = await toUpstream(browser, issuer, providerId, request.url, `${idp.sso}?`);
    const q = up.searchParams;
    check('the AuthnRequest goes by HTTP-Redirect with a RelayState and a signature (SigAlg, Signature)',
      q.get('SAMLRequest') && q.get('RelayState') && q.get('SigAlg') && q.get('Signature'), up.href);

    // 4. saml-idp's own page: it parsed the AuthnRequest; the user form is filled in and sent.
    let r = await browser.get(up);
    const form = forms(r).find((f) => f.action === `${idp.base}/signin`);
    need('saml-idp shows its user form (posting to /signin)', r.status === 200 && form?.method === 'post',
      describeResponse(r));
    const authnRequest = base64Json(form.hidden._authnRequest ?? '');
    check('saml-idp read Portcullis\'s AuthnRequest: its ID, Issuer (the SP entity id) and RelayState',
      authnRequest?.id && authnRequest.issuer === entityId && authnRequest.relayState === q.get('RelayState')
        && (authnRequest.acsUrl === undefined || authnRequest.acsUrl === acs),
      JSON.stringify(authnRequest));
    const fields = Object.fromEntries(form.inputs.filter((i) => i.name).map((i) => [i.name, i.value ?? '']));
    const [firstName, ...rest] = name.split(' ');
    r = await browser.post(form.action, {
      ...fields,
      userName: email,
      nameIdFormat: EMAIL_ADDRESS,
      email,
      displayName: name,
      firstName,
      lastName: rest.join(' '),
    });
    const post = forms(r).find((f) => f.hidden.SAMLResponse);
    need(`saml-idp answers with a form posting a SAMLResponse to the ACS ${acs}`,
      r.status === 200 && post?.method === 'post' && post.action === acs, describeResponse(r));
    const responseXml = Buffer.from(post.hidden.SAMLResponse, 'base64').toString('utf8');
    check('the SAMLResponse answers the AuthnRequest (InResponseTo) and is signed, with the RelayState beside it',
      responseXml.includes(`InResponseTo="${authnRequest?.id}"`) && /<(\w+:)?Signature\b/.test(responseXml)
        && post.hidden.RelayState === q.get('RelayState'),
      responseXml.slice(0, 400));

    // 5. The POST to the ACS carries no cookie: a browser sends none of Portcullis's SameSite=Lax
    //    cookies on this cross-site POST. Portcullis verifies, then continues in its own origin.
    r = await browser.request(post.action, { form: post.hidden, cookie: '' });
    need('the ACS accepts saml-idp\'s Response and redirects (303) to finish the sign-in',
      r.status === 303 && r.location?.startsWith(`${entityId}/complete?`), describeResponse(r));
    const callback = await backAtPortcullis(browser, r, issuer, redirectUri);
    check('the relying party\'s state comes back', callback.searchParams.get('state') === request.state, callback.href);
    await redeemAndCheck(config, request, callback, { providerId, email, name });
  });
}

run(main);
