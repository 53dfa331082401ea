// End-to-end SAML 2.0 single sign-on with a service provider nobody here wrote: node-saml
// (@node-saml/node-saml, the SAML core of passport-saml; xml-crypto verifies the signatures), as
// the demo SP https://sp.acme.test registered in the tenant. The SP is configured from the IdP
// metadata the tenant serves (its signing certificate), asks for signed assertions and persistent
// NameIDs, and signs no requests (the demo SP registered no certificate).
//   1. HTTP-Redirect: alice signs in through the real login page; node-saml accepts the signed
//      Response posted to its ACS and reads a pairwise NameID, her mail and displayName from it;
//      the Response answers node-saml's own request (InResponseTo, checked against its cache);
//   2. HTTP-POST (node-saml's form, with skipRequestCompression: the binding does not deflate),
//      with the same browser: the POST carries no cookie (a browser sends no SameSite=Lax cookie
//      on a cross-site POST), the IdP resumes with a GET that does, and the SSO session signs
//      alice in again without any page (same NameID, same SessionIndex);
//   3. a Response whose mail was changed after signing is refused by node-saml;
//   4. bob signs in through the upstream provider globex (the link on the login page): his mail,
//      and globex as the AuthenticatingAuthority;
//   5. the AuthnRequest of 1 sent again: a Requester error Response without an assertion, which
//      node-saml reports as an error;
//   6. IdP-initiated (SAML profiles §4.1.5): alice opens the application portal (/apps) in the
//      same browser, presses the SP's button (a form with the portal's CSRF token), and the SSO
//      session posts an unsolicited Response (no InResponseTo) to the SP's default ACS with the
//      SP's registered RelayState; node-saml takes it where it accepts unsolicited Responses
//      (validateInResponseTo "never") and refuses it where it insists on its own requests; a
//      launch without the portal's token gets an error page and no Response.
//
// The "browser" is scripted (lib/scripted_browser.mjs). Nothing listens at the ACS: the fields of
// the auto-submitting form on the IdP's last page are handed to node-saml.
//
// Run (normally by tests/it/e2e.rs):
//   ISSUER=https://localhost:PORT/acme SP_ENTITY_ID=https://sp.acme.test \
//   ACS_URL=http://127.0.0.1:9000/saml/acs LOGIN_USERNAME=alice LOGIN_PASSWORD=alice-password \
//   EXPECTED_NAME='Alice Liddell' EXPECTED_EMAIL=alice@acme.test UPSTREAM_ID=globex \
//   UPSTREAM_USERNAME=bob UPSTREAM_PASSWORD=bob-password UPSTREAM_EMAIL=bob@globex.test \
//   DEFAULT_RELAY_STATE=/welcome NODE_EXTRA_CA_CERTS=certs/ca.pem node tests/e2e/saml_sso.mjs

import { randomBytes } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { SAML, SamlStatusError } from '@node-saml/node-saml';
// node-saml's own XML parsing (xmldom and xpath), for the metadata and for looking into messages.
import nodeSamlXml from '@node-saml/node-saml/lib/xml.js';
import {
  check, describeError, env, need, notOk, ok, requireTlsVerification, run, section,
} from './lib/report.mjs';
import {
  ScriptedBrowser, describeResponse, elements, followRedirects, formById, forms,
} from './lib/scripted_browser.mjs';

const { parseDomFromString, xpath } = nodeSamlXml;

const MD = 'urn:oasis:names:tc:SAML:2.0:metadata';
const DS = 'http://www.w3.org/2000/09/xmldsig#';
const SAML_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const SAMLP = 'urn:oasis:names:tc:SAML:2.0:protocol';
const HTTP_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const HTTP_POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
const REQUESTER = 'urn:oasis:names:tc:SAML:2.0:status:Requester';
const MAIL = 'urn:oid:0.9.2342.19200300.100.1.3';
const DISPLAY_NAME = 'urn:oid:2.16.840.1.113730.3.1.241';

/** The elements `localName` in namespace `ns` anywhere under `node`. */
function select(node, ns, localName) {
  return xpath.selectElements(node, `.//*[local-name(.)='${localName}' and namespace-uri(.)='${ns}']`);
}

function text(element) {
  return element?.textContent?.trim();
}

/** What the tenant's IdP metadata says: entity id, signing certificate, SSO endpoints by binding. */
async function idpMetadata(url) {
  const response = await fetch(url);
  need(`the IdP metadata is served at ${url}`, response.status === 200, `status ${response.status}`);
  const doc = await parseDomFromString(await response.text());
  const entity = doc.documentElement;
  const idp = select(entity, MD, 'IDPSSODescriptor')[0];
  need('the metadata is an EntityDescriptor with an IDPSSODescriptor',
    entity.localName === 'EntityDescriptor' && entity.namespaceURI === MD && idp !== undefined,
    `root ${entity.namespaceURI} ${entity.localName}`);
  const signing = select(idp, MD, 'KeyDescriptor').filter((k) => !k.getAttribute('use') || k.getAttribute('use') === 'signing');
  const certificates = signing.flatMap((k) => select(k, DS, 'X509Certificate')).map((c) => text(c).replace(/\s+/g, ''));
  const sso = Object.fromEntries(select(idp, MD, 'SingleSignOnService')
    .map((s) => [s.getAttribute('Binding'), s.getAttribute('Location')]));
  return { entityId: entity.getAttribute('entityID'), certificates, sso };
}

/** The AuthnRequest inside an HTTP-Redirect URL (deflated, base64): its ID and the XML. */
async function redirectedRequest(url) {
  const xml = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest'), 'base64')).toString('utf8');
  const doc = await parseDomFromString(xml);
  return { id: doc.documentElement.getAttribute('ID'), xml };
}

/** The Response posted to the ACS: the form fields and the XML. */
async function postedResponse(form) {
  const xml = Buffer.from(form.hidden.SAMLResponse, 'base64').toString('utf8');
  return { fields: { SAMLResponse: form.hidden.SAMLResponse, RelayState: form.hidden.RelayState }, xml,
    doc: await parseDomFromString(xml) };
}

function attribute(profile, name) {
  const value = profile?.attributes?.[name] ?? profile?.[name];
  return Array.isArray(value) && value.length === 1 ? value[0] : value;
}

async function main() {
  requireTlsVerification();
  const issuer = env('ISSUER');
  const spEntityId = env('SP_ENTITY_ID');
  const acs = env('ACS_URL');
  const alice = { username: env('LOGIN_USERNAME'), password: env('LOGIN_PASSWORD') };
  const expectedName = env('EXPECTED_NAME');
  const expectedEmail = env('EXPECTED_EMAIL');
  const upstreamId = env('UPSTREAM_ID');
  const bob = { username: env('UPSTREAM_USERNAME'), password: env('UPSTREAM_PASSWORD') };
  const upstreamEmail = env('UPSTREAM_EMAIL');
  const defaultRelayState = env('DEFAULT_RELAY_STATE');
  const origin = new URL(issuer).origin;
  const ssoUrl = `${issuer}/saml/sso`;

  // 0. The IdP metadata, as an SP administrator would take it.
  const md = await idpMetadata(`${issuer}/saml/metadata`);
  check(`metadata: entityID is ${issuer}`, md.entityId === issuer, `got ${JSON.stringify(md.entityId)}`);
  need('metadata: a signing KeyDescriptor with one X.509 certificate', md.certificates.length === 1,
    `got ${md.certificates.length}`);
  check(`metadata: SingleSignOnService HTTP-Redirect and HTTP-POST at ${ssoUrl}`,
    md.sso[HTTP_REDIRECT] === ssoUrl && md.sso[HTTP_POST] === ssoUrl, JSON.stringify(md.sso));

  const options = {
    entryPoint: ssoUrl,
    issuer: spEntityId,
    callbackUrl: acs,
    idpCert: md.certificates[0],
    idpIssuer: md.entityId,
    audience: spEntityId,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    identifierFormat: PERSISTENT,
  };
  // Remembers the IDs of its requests and takes only Responses that answer one, once.
  const sp = new SAML({ ...options, validateInResponseTo: 'always' });
  // node-saml deflates the SAMLRequest of its HTTP-POST form unless told not to; the binding
  // (SAML Bindings §3.5.4) sends the XML only base64-encoded, and the IdP takes no other.
  const spPost = new SAML({ ...options, validateInResponseTo: 'always', skipRequestCompression: true });
  // For messages that answer a request already answered: only the signature and the status count.
  const spWithoutCache = new SAML({ ...options, validateInResponseTo: 'never' });

  /** The IdP's auto-submitting form to the ACS on the page `r`, as a browser would post it. */
  function acsForm(label, r, relayState) {
    const form = forms(r).find((f) => f.hidden.SAMLResponse !== undefined);
    need(`${label}: the IdP answers with a page (200) whose form posts SAMLResponse and RelayState to ${acs}`,
      r.status === 200 && form?.method === 'post' && form.action === acs, describeResponse(r));
    check(`${label}: the RelayState comes back unchanged`, form.hidden.RelayState === relayState,
      `got ${JSON.stringify(form.hidden.RelayState)}, sent ${JSON.stringify(relayState)}`);
    return form;
  }

  async function accepted(label, validator, fields) {
    try {
      const { profile, loggedOut } = await validator.validatePostResponseAsync(fields);
      need(`${label}: node-saml validatePostResponseAsync accepts the Response (signed assertion, audience, times)`,
        profile && !loggedOut, JSON.stringify({ profile, loggedOut }));
      return profile;
    } catch (err) {
      need(`${label}: node-saml validatePostResponseAsync accepts the Response`, false, describeError(err));
    }
    return undefined;
  }

  /** From the login page `r` (served or redirected to), signs in with the form. */
  async function signIn(label, browser, r, user, base) {
    need(`${label}: redirected (303) to the login page at ${base}`,
      r.status === 303 && r.location?.startsWith(`${base}/account/login?interaction=`), describeResponse(r));
    const page = await browser.get(r.location);
    const login = formById(page, 'login-form');
    need(`${label}: the login page has form#login-form`, page.status === 200 && login?.method === 'post',
      describeResponse(page));
    return browser.post(login.action, { ...login.hidden, username: user.username, password: user.password });
  }

  const toIdp = (location) => location.startsWith(`${origin}/`) && !location.startsWith(acs);
  const browser = new ScriptedBrowser();
  let alicesRequestUrl;
  let alicesRequestId;
  let alicesProfile;
  let alicesResponse;

  // 1. SP-initiated over HTTP-Redirect; alice signs in through the login page.
  await section('1. HTTP-Redirect: alice signs in', async () => {
    const relayState = randomBytes(12).toString('base64url');
    alicesRequestUrl = new URL(await sp.getAuthorizeUrlAsync(relayState, undefined, {}));
    const request = await redirectedRequest(alicesRequestUrl);
    alicesRequestId = request.id;
    check('getAuthorizeUrlAsync: SAMLRequest (unsigned) and RelayState to the SSO URL of the metadata',
      alicesRequestUrl.href.startsWith(`${ssoUrl}?`) && alicesRequestUrl.searchParams.get('RelayState') === relayState
        && !alicesRequestUrl.searchParams.has('Signature') && request.xml.includes(`<saml:Issuer`)
        && request.xml.includes(spEntityId) && request.xml.includes(PERSISTENT),
      `${alicesRequestUrl.href.slice(0, 200)} ${request.xml.slice(0, 300)}`);

    let r = await browser.get(alicesRequestUrl);
    r = await signIn('alice', browser, r, alice, issuer);
    r = await followRedirects(browser, r, toIdp);
    const form = acsForm('alice', r, relayState);
    alicesResponse = await postedResponse(form);

    alicesProfile = await accepted('alice', sp, alicesResponse.fields);
    const p = alicesProfile;
    check(`alice: the issuer is ${issuer}`, p.issuer === issuer, `got ${JSON.stringify(p.issuer)}`);
    check('alice: the NameID is persistent and opaque (no username, no mail in it)',
      p.nameIDFormat === PERSISTENT && typeof p.nameID === 'string' && p.nameID.length >= 16
        && !p.nameID.toLowerCase().includes(alice.username) && !p.nameID.includes('@'),
      JSON.stringify({ nameID: p.nameID, format: p.nameIDFormat }));
    check(`alice: mail (${MAIL}) is ${expectedEmail}`, attribute(p, MAIL) === expectedEmail && p.mail === expectedEmail,
      JSON.stringify(p.attributes));
    check(`alice: displayName (${DISPLAY_NAME}) is "${expectedName}"`, attribute(p, DISPLAY_NAME) === expectedName,
      JSON.stringify(p.attributes));
    check('alice: the Response answers node-saml\'s request (InResponseTo, taken from its request cache)',
      p.inResponseTo === alicesRequestId && alicesResponse.doc.documentElement.getAttribute('InResponseTo') === alicesRequestId,
      `request ${alicesRequestId}, response ${p.inResponseTo}`);
    check('alice: the assertion is signed with RSA-SHA256 and exclusive C14N',
      select(alicesResponse.doc, DS, 'SignatureMethod')
        .some((m) => m.getAttribute('Algorithm') === 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256')
        && select(alicesResponse.doc, DS, 'CanonicalizationMethod')
          .some((m) => m.getAttribute('Algorithm') === 'http://www.w3.org/2001/10/xml-exc-c14n#'),
      alicesResponse.xml.slice(0, 300));
    try {
      await sp.validatePostResponseAsync(alicesResponse.fields);
      notOk('alice: node-saml takes the same Response only once', 'accepted again');
    } catch (err) {
      check('alice: node-saml takes the same Response only once (its request ID is used up)',
        /InResponseTo/.test(err.message), describeError(err));
    }
  });

  // 2. SP-initiated over HTTP-POST, same browser: the SSO session, no page.
  await section('2. HTTP-POST: the SSO session', async () => {
    need('alice signed in at step 1 (what this part builds on)', alicesProfile !== undefined, 'step 1 did not finish');
    const relayState = randomBytes(12).toString('base64url');
    const html = await spPost.getAuthorizeFormAsync(relayState, undefined, {});
    const form = forms({ url: acs, html })[0];
    need('getAuthorizeFormAsync: a form posting SAMLRequest and RelayState to the SSO URL',
      form?.method === 'post' && form.action === ssoUrl && form.hidden.SAMLRequest
        && form.hidden.RelayState === relayState,
      html.slice(0, 400));
    const requestXml = Buffer.from(form.hidden.SAMLRequest, 'base64').toString('utf8');
    need('the POSTed SAMLRequest is the base64 of the XML itself (not deflated)', requestXml.startsWith('<'),
      'not XML');
    const requestId = (await parseDomFromString(requestXml)).documentElement.getAttribute('ID');
    // Cross-site POST: no SameSite=Lax cookie comes along.
    let r = await browser.request(form.action, { form: form.hidden, cookie: '' });
    need(`the POST (without cookies) redirects (303) to ${ssoUrl}?resume=`,
      r.status === 303 && r.location?.startsWith(`${ssoUrl}?resume=`), describeResponse(r));
    r = await browser.get(r.location);
    check('the resumed GET (with the session cookie) goes straight to the ACS form, no login page',
      r.status === 200 && !r.html.includes('id="login-form"'), describeResponse(r));
    const response = await postedResponse(acsForm('HTTP-POST', r, relayState));
    const p = await accepted('HTTP-POST', spPost, response.fields);
    check('HTTP-POST: the same NameID as in 1', p.nameID === alicesProfile.nameID && p.nameIDFormat === PERSISTENT,
      `${p.nameID} vs ${alicesProfile.nameID}`);
    check('HTTP-POST: the same SSO session (SessionIndex) as in 1',
      typeof p.sessionIndex === 'string' && p.sessionIndex === alicesProfile.sessionIndex,
      `${p.sessionIndex} vs ${alicesProfile.sessionIndex}`);
    check('HTTP-POST: the Response answers this request (InResponseTo)', p.inResponseTo === requestId,
      `request ${requestId}, response ${p.inResponseTo}`);
  });

  // 3. A Response altered after signing.
  await section('3. a tampered Response', async () => {
    need('alice\'s Response of step 1 is at hand', alicesResponse !== undefined, 'step 1 did not finish');
    // Control: the untouched Response passes this validator (which ignores InResponseTo).
    await accepted('the untouched Response, without the request cache', spWithoutCache, alicesResponse.fields);
    const forged = alicesResponse.xml.replace(`>${expectedEmail}<`, '>mallory@acme.test<');
    need('the mail value is changed in the XML', forged !== alicesResponse.xml, 'mail not found in the XML');
    try {
      const { profile } = await spWithoutCache.validatePostResponseAsync({
        SAMLResponse: Buffer.from(forged, 'utf8').toString('base64'),
        RelayState: alicesResponse.fields.RelayState,
      });
      notOk('node-saml refuses the Response whose mail was changed', `accepted: ${JSON.stringify(profile?.attributes)}`);
    } catch (err) {
      check('node-saml refuses the Response whose mail was changed, for its signature',
        /signature/i.test(err.message), describeError(err));
    }
  });

  // 4. bob, through the upstream provider.
  await section(`4. bob through ${upstreamId}`, async () => {
    const bobs = new ScriptedBrowser();
    const relayState = randomBytes(12).toString('base64url');
    const url = new URL(await sp.getAuthorizeUrlAsync(relayState, undefined, {}));
    let r = await bobs.get(url);
    need('bob: redirected (303) to the login page',
      r.status === 303 && r.location?.startsWith(`${issuer}/account/login?interaction=`), describeResponse(r));
    const page = await bobs.get(r.location);
    const start = `${issuer}/federation/${upstreamId}/start?interaction=`;
    const link = elements(page.html, 'a').find((a) => a.href?.startsWith(start));
    need(`bob: the login page links to ${start}…`, link !== undefined, describeResponse(page));
    r = await bobs.get(new URL(link.href, page.url));
    r = await followRedirects(bobs, r, (l) => !l.includes('/account/login'));
    const upstreamBase = r.location ? new URL(r.location).pathname.split('/account/login')[0] : '';
    need('bob: redirected to the upstream provider\'s login page',
      r.status === 303 && !upstreamBase.endsWith(new URL(issuer).pathname), describeResponse(r));
    r = await signIn('bob', bobs, r, bob, `${origin}${upstreamBase}`);
    r = await followRedirects(bobs, r, toIdp);
    const response = await postedResponse(acsForm('bob', r, relayState));
    const p = await accepted('bob', sp, response.fields);
    check(`bob: mail is ${upstreamEmail}`, attribute(p, MAIL) === upstreamEmail, JSON.stringify(p.attributes));
    check('bob: a persistent NameID of his own', p.nameIDFormat === PERSISTENT && p.nameID !== alicesProfile?.nameID
      && !p.nameID.includes(bob.username), JSON.stringify({ nameID: p.nameID, format: p.nameIDFormat }));
    const authorities = select(response.doc, SAML_NS, 'AuthenticatingAuthority').map(text);
    check(`bob: the AuthnContext names ${upstreamId} as the AuthenticatingAuthority`,
      authorities.length === 1 && authorities[0] === upstreamId, JSON.stringify(authorities));
  });

  // 5. The AuthnRequest of 1 again, while the session lives.
  await section('5. a replayed AuthnRequest', async () => {
    need('alice\'s AuthnRequest of step 1 is at hand', alicesRequestUrl !== undefined, 'step 1 did not finish');
    const r = await browser.get(alicesRequestUrl);
    const response = await postedResponse(acsForm('replay', r, alicesRequestUrl.searchParams.get('RelayState')));
    const codes = select(response.doc, SAMLP, 'StatusCode').map((c) => c.getAttribute('Value'));
    check('replay: the Response has status Requester and no assertion',
      codes[0] === REQUESTER && select(response.doc, SAML_NS, 'Assertion').length === 0
        && response.doc.documentElement.getAttribute('InResponseTo') === alicesRequestId,
      response.xml.slice(0, 600));
    try {
      const { profile } = await spWithoutCache.validatePostResponseAsync(response.fields);
      notOk('replay: node-saml reports the Requester status as an error', `accepted: ${JSON.stringify(profile)}`);
    } catch (err) {
      check('replay: node-saml reports the Requester status as an error (SamlStatusError)',
        err instanceof SamlStatusError && /Requester/.test(err.message), describeError(err));
    }
    try {
      await sp.validatePostResponseAsync(response.fields);
      notOk('replay: with its request cache node-saml refuses it too', 'accepted');
    } catch (err) {
      ok(`replay: with its request cache node-saml refuses it too (${err.message})`);
    }
  });

  // 6. IdP-initiated from the application portal, with the SSO session of 1.
  await section('6. IdP-initiated from the portal', async () => {
    need('alice signed in at step 1 (what this part builds on)', alicesProfile !== undefined, 'step 1 did not finish');
    const portal = await browser.get(`${issuer}/apps`);
    const button = forms(portal).find((f) => f.hidden.sp === spEntityId);
    need(`portal: ${issuer}/apps lists the SP as a form posting its entity id and a CSRF token`,
      portal.status === 200 && button?.method === 'post' && button.action === `${issuer}/apps/launch`
        && button.hidden.csrf?.length > 20,
      describeResponse(portal));
    check('portal: the page works without JavaScript (no script element)', !/<script/i.test(portal.html),
      'a script element');
    // Without the portal's token: an error page, nothing for the SP.
    const forged = await browser.post(button.action, { sp: spEntityId });
    check('a launch without the portal\'s CSRF token: an error page (400) and no SAMLResponse',
      forged.status === 400 && !forged.html.includes('SAMLResponse'), describeResponse(forged));
    const r = await browser.post(button.action, button.hidden);
    const response = await postedResponse(acsForm('IdP-initiated', r, defaultRelayState));
    check('IdP-initiated: the Response answers no request (no InResponseTo anywhere)',
      !response.xml.includes('InResponseTo'), response.xml.slice(0, 400));
    const unsolicited = new SAML({ ...options, validateInResponseTo: 'never' });
    const p = await accepted('IdP-initiated', unsolicited, response.fields);
    check('IdP-initiated: the same NameID and SSO session as in 1',
      p.nameID === alicesProfile.nameID && p.sessionIndex === alicesProfile.sessionIndex,
      `${p.nameID} vs ${alicesProfile.nameID}`);
    check(`IdP-initiated: mail is ${expectedEmail}`, attribute(p, MAIL) === expectedEmail, JSON.stringify(p.attributes));
    try {
      const strict = new SAML({ ...options, validateInResponseTo: 'always' });
      await strict.validatePostResponseAsync(response.fields);
      notOk('IdP-initiated: an SP that takes only answers to its own requests refuses it', 'accepted');
    } catch (err) {
      check('IdP-initiated: an SP that takes only answers to its own requests refuses it (InResponseTo)',
        /InResponseTo/i.test(err.message), describeError(err));
    }
  });
}

run(main);
