// End-to-end SAML 2.0 encrypted assertions and single logout with node-saml
// (@node-saml/node-saml; xml-crypto checks signatures, xml-encryption decrypts), as an SP that
// the test registers in tenant acme with its signing and encryption certificate and a single
// logout service (HTTP-Redirect):
//   1. alice signs in by an AuthnRequest node-saml signs (RSA-SHA256, query signature); the
//      assertion comes encrypted to node-saml's key (AES-256-GCM, RSA-OAEP) and node-saml opens it;
//   2. an AuthnRequest signed with RSA-SHA1 is refused (a Requester error Response, no assertion):
//      the SP is not registered with allow_sha1;
//   3. SP-initiated logout: node-saml's signed LogoutRequest; the IdP answers with a signed
//      LogoutResponse that node-saml validates (signature, status, InResponseTo from its cache);
//      the session is over (the next AuthnRequest gets the login page);
//   4. IdP-initiated logout: alice signs in again and ends her session at the end-session endpoint;
//      the IdP sends node-saml a signed LogoutRequest naming her NameID and SessionIndex; node-saml
//      validates it and answers with a signed LogoutResponse, after which the IdP shows the
//      signed-out page.
//
// The "browser" is scripted (lib/scripted_browser.mjs); nothing listens at the SP's URLs: the
// messages the IdP sends there are handed to node-saml.
//
// Run (normally by tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme SP_ENTITY_ID=https://slo.acme.test \
//   ACS_URL=http://127.0.0.1:9002/saml/acs SLO_URL=http://127.0.0.1:9002/saml/slo \
//   SP_KEY_FILE=... SP_CERT_FILE=... LOGIN_USERNAME=alice LOGIN_PASSWORD=alice-password \
//   EXPECTED_EMAIL=alice@acme.test NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/saml_slo.mjs

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { SAML, SamlStatusError } from '@node-saml/node-saml';
import nodeSamlXml from '@node-saml/node-saml/lib/xml.js';
import {
  check, describeError, env, need, notOk, requireTlsVerification, run, section,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, followRedirects, formById, forms,
} from './lib/scripted_browser.mjs';

const { parseDomFromString, xpath } = nodeSamlXml;

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const SAML_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const SAMLP = 'urn:oasis:names:tc:SAML:2.0:protocol';
const HTTP_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
const REQUESTER = 'urn:oasis:names:tc:SAML:2.0:status:Requester';
const MAIL = 'urn:oid:0.9.2342.19200300.100.1.3';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';

function select(node, ns, localName) {
  return xpath.selectElements(node, `.//*[local-name(.)='${localName}' and namespace-uri(.)='${ns}']`);
}

function text(element) {
  return element?.textContent?.trim();
}

async function idpMetadata(url) {
  const response = await fetch(url);
  need(`the IdP metadata is served at ${url}`, response.status === 200, `status ${response.status}`);
  const doc = await parseDomFromString(await response.text());
  const idp = select(doc.documentElement, MD, 'IDPSSODescriptor')[0];
  const certificates = select(idp, MD, 'KeyDescriptor')
    .flatMap((k) => select(k, DS, 'X509Certificate')).map((c) => text(c).replace(/\s+/g, ''));
  const slo = Object.fromEntries(select(idp, MD, 'SingleLogoutService')
    .map((s) => [s.getAttribute('Binding'), s.getAttribute('Location')]));
  return { entityId: doc.documentElement.getAttribute('entityID'), certificates, slo };
}

/** The SAML message in a Redirect-binding URL: the query as node-saml takes it, and the XML. */
function redirected(url, param) {
  const query = Object.fromEntries(url.searchParams.entries());
  const xml = inflateRawSync(Buffer.from(query[param], 'base64')).toString('utf8');
  return { query, originalQuery: url.search.slice(1), xml };
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const spEntityId = env('SP_ENTITY_ID');
  const acs = env('ACS_URL');
  const sloUrl = env('SLO_URL');
  const key = readFileSync(env('SP_KEY_FILE'), 'utf8');
  const alice = { username: env('LOGIN_USERNAME'), password: env('LOGIN_PASSWORD') };
  const expectedEmail = env('EXPECTED_EMAIL');
  const origin = new URL(issuer).origin;
  const idpSlo = `${issuer}/saml/slo`;

  const md = await idpMetadata(`${issuer}/saml/metadata`);
  check(`metadata: SingleLogoutService HTTP-Redirect at ${idpSlo}`, md.slo[HTTP_REDIRECT] === idpSlo,
    JSON.stringify(md.slo));
  const options = {
    entryPoint: `${issuer}/saml/sso`,
    logoutUrl: idpSlo,
    logoutCallbackUrl: sloUrl,
    issuer: spEntityId,
    callbackUrl: acs,
    idpCert: md.certificates[0],
    idpIssuer: md.entityId,
    audience: spEntityId,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    identifierFormat: PERSISTENT,
    privateKey: key,
    decryptionPvk: key,
    signatureAlgorithm: 'sha256',
    validateInResponseTo: 'always',
  };
  const sp = new SAML(options);
  const browser = new ScriptedBrowser();
  const toIdp = (location) => location.startsWith(`${origin}/`);

  async function signIn(label, b, url) {
    let r = await b.get(url);
    need(`${label}: redirected (303) to the login page`,
      r.status === 303 && r.location?.startsWith(`${issuer}/account/login?interaction=`), describeResponse(r));
    const page = await b.get(r.location);
    const login = formById(page, 'login-form');
    need(`${label}: the login page has form#login-form`, login !== undefined, describeResponse(page));
    r = await b.post(login.action, { ...login.hidden, username: alice.username, password: alice.password });
    return followRedirects(b, r, toIdp);
  }

  function acsForm(label, r) {
    const form = forms(r).find((f) => f.hidden.SAMLResponse !== undefined);
    need(`${label}: the IdP posts a SAMLResponse to ${acs}`, r.status === 200 && form?.action === acs,
      describeResponse(r));
    return form;
  }

  /** Signs alice in (login page), returns node-saml's profile and the Response XML. */
  async function aliceSignsIn(label) {
    const url = new URL(await sp.getAuthorizeUrlAsync(randomBytes(8).toString('base64url'), undefined, {}));
    check(`${label}: node-saml signs its AuthnRequest (SigAlg RSA-SHA256, Signature)`,
      url.searchParams.get('SigAlg') === RSA_SHA256 && url.searchParams.has('Signature'), url.href.slice(0, 200));
    const form = acsForm(label, await signIn(label, browser, url));
    const xml = Buffer.from(form.hidden.SAMLResponse, 'base64').toString('utf8');
    try {
      const { profile } = await sp.validatePostResponseAsync({ SAMLResponse: form.hidden.SAMLResponse,
        RelayState: form.hidden.RelayState });
      need(`${label}: node-saml accepts the Response`, profile !== undefined, 'no profile');
      return { profile, xml };
    } catch (err) {
      need(`${label}: node-saml accepts the Response`, false, describeError(err));
    }
    return undefined;
  }

  let first;
  await section('1. an encrypted assertion', async () => {
    first = await aliceSignsIn('alice');
    const doc = await parseDomFromString(first.xml);
    check('the Response carries an EncryptedAssertion and no plain Assertion',
      select(doc, SAML_NS, 'EncryptedAssertion').length === 1 && select(doc, SAML_NS, 'Assertion').length === 0,
      first.xml.slice(0, 400));
    check('it is AES-256-GCM content under an RSA-OAEP key',
      first.xml.includes('http://www.w3.org/2009/xmlenc11#aes256-gcm')
        && first.xml.includes('http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p'), first.xml.slice(0, 600));
    check(`node-saml decrypted it: mail is ${expectedEmail}`, first.profile.attributes?.[MAIL] === expectedEmail,
      JSON.stringify(first.profile.attributes));
    check('a persistent NameID and a SessionIndex', first.profile.nameIDFormat === PERSISTENT
      && typeof first.profile.sessionIndex === 'string', JSON.stringify(first.profile));
  });

  await section('2. an AuthnRequest signed with SHA-1', async () => {
    const sha1 = new SAML({ ...options, signatureAlgorithm: 'sha1', validateInResponseTo: 'never' });
    const url = new URL(await sha1.getAuthorizeUrlAsync('', undefined, {}));
    const r = await browser.get(url);
    const form = acsForm('SHA-1', r);
    const xml = Buffer.from(form.hidden.SAMLResponse, 'base64').toString('utf8');
    const doc = await parseDomFromString(xml);
    const codes = select(doc, SAMLP, 'StatusCode').map((c) => c.getAttribute('Value'));
    check('SHA-1: a Requester error Response without an assertion', codes[0] === REQUESTER
      && select(doc, SAML_NS, 'Assertion').length === 0 && select(doc, SAML_NS, 'EncryptedAssertion').length === 0,
      xml.slice(0, 500));
    try {
      await sha1.validatePostResponseAsync({ SAMLResponse: form.hidden.SAMLResponse });
      notOk('SHA-1: node-saml reports the refusal', 'accepted');
    } catch (err) {
      check('SHA-1: node-saml reports the refusal (SamlStatusError)', err instanceof SamlStatusError,
        describeError(err));
    }
  });

  await section('3. SP-initiated logout', async () => {
    need('alice signed in at step 1', first !== undefined, 'step 1 did not finish');
    const relayState = randomBytes(8).toString('base64url');
    const url = new URL(await sp.getLogoutUrlAsync(first.profile, relayState, {}));
    check(`getLogoutUrlAsync: a signed LogoutRequest to ${idpSlo}`,
      url.href.startsWith(`${idpSlo}?`) && url.searchParams.has('Signature'), url.href.slice(0, 200));
    const r = await browser.get(url);
    need(`the IdP answers with a redirect (303) to ${sloUrl}`, r.status === 303 && r.location?.startsWith(`${sloUrl}?`),
      describeResponse(r));
    const back = redirected(new URL(r.location), 'SAMLResponse');
    check('the LogoutResponse is signed (Signature, SigAlg RSA-SHA256) and keeps the RelayState',
      back.query.SigAlg === RSA_SHA256 && back.query.Signature && back.query.RelayState === relayState,
      JSON.stringify({ SigAlg: back.query.SigAlg, RelayState: back.query.RelayState }));
    try {
      const { loggedOut } = await sp.validateRedirectAsync(back.query, back.originalQuery);
      check('node-saml validateRedirectAsync accepts the LogoutResponse (signature, Success, InResponseTo)',
        loggedOut === true, `loggedOut ${loggedOut}`);
    } catch (err) {
      notOk('node-saml validateRedirectAsync accepts the LogoutResponse', describeError(err));
    }
    const again = await browser.get(new URL(await sp.getAuthorizeUrlAsync('', undefined, {})));
    check('the session is over: the next AuthnRequest gets the login page',
      again.status === 303 && again.location?.includes('/account/login?interaction='), describeResponse(again));
  });

  await section('4. IdP-initiated logout', async () => {
    const signedIn = await aliceSignsIn('alice again');
    let r = await browser.get(`${issuer}/connect/endsession`);
    const confirm = forms(r).find((f) => f.hidden.logout_id !== undefined);
    need('the end-session endpoint asks to confirm', r.status === 200 && confirm !== undefined, describeResponse(r));
    r = await browser.post(confirm.action, confirm.hidden);
    need(`the IdP redirects (303) to the SP's single logout service ${sloUrl}`,
      r.status === 303 && r.location?.startsWith(`${sloUrl}?SAMLRequest=`), describeResponse(r));
    const request = redirected(new URL(r.location), 'SAMLRequest');
    const doc = await parseDomFromString(request.xml);
    check('the LogoutRequest names her NameID and SessionIndex, and is signed',
      text(select(doc, SAML_NS, 'NameID')[0]) === signedIn.profile.nameID
        && text(select(doc, SAMLP, 'SessionIndex')[0]) === signedIn.profile.sessionIndex
        && request.query.Signature !== undefined, request.xml.slice(0, 600));
    let profile;
    try {
      ({ profile } = await sp.validateRedirectAsync(request.query, request.originalQuery));
      check('node-saml validateRedirectAsync accepts the LogoutRequest (signature, issuer, times)',
        profile?.nameID === signedIn.profile.nameID, JSON.stringify(profile));
    } catch (err) {
      need('node-saml validateRedirectAsync accepts the LogoutRequest', false, describeError(err));
    }
    const answer = new URL(await sp.getLogoutResponseUrlAsync(profile, request.query.RelayState, {}, true));
    check(`node-saml answers with a signed LogoutResponse to ${idpSlo}`,
      answer.href.startsWith(`${idpSlo}?`) && answer.searchParams.has('Signature'), answer.href.slice(0, 200));
    r = await browser.get(answer);
    check('the IdP takes the answer and shows the signed-out page',
      r.status === 200 && /signed out/i.test(r.html), describeResponse(r));
  });
}

run(main);
