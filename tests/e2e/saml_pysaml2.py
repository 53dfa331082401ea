"""End-to-end SAML 2.0 with a service provider nobody here wrote: pysaml2 (Saml2Client; xmlsec1
checks and makes the XML signatures and opens encrypted assertions) as two SPs registered in the
test's acme tenant:
  PLAIN   assertions in the clear, logout messages by HTTP-Redirect;
  SEALED  assertions encrypted to a key of its own, logout messages by HTTP-POST.
Both sign their requests (the tenant has their signing certificates) and want signed assertions.
pysaml2 reads the IdP from the metadata the tenant serves (fetched by pysaml2, trusting the dev CA).

  1. PLAIN, HTTP-Redirect (signed query): alice signs in through the login page; pysaml2 accepts
     the Response: persistent opaque NameID, mail and displayName (urn:oid names), the
     AuthnContextClassRef;
  2. SEALED, HTTP-POST (signed inside) with RequestedAuthnContext PasswordProtectedTransport
     (exact): the SSO session, no page; pysaml2 decrypts the assertion with its key;
  3. SP-initiated single logout: PLAIN's signed LogoutRequest (Redirect); the IdP sends SEALED a
     signed LogoutRequest (POST) which pysaml2 answers with a signed LogoutResponse; then the IdP
     answers PLAIN with a signed LogoutResponse which pysaml2 verifies; a new AuthnRequest
     needs the login page again;
  4. IdP-initiated single logout: alice signs in again, then ends her session at the end-session
     endpoint; PLAIN is sent a signed LogoutRequest (Redirect), pysaml2 answers it, the IdP shows
     the signed-out page;
  5. bob signs in through the upstream provider globex (OIDC upstream, SAML downstream);
  6. IdP-initiated sign-in from the application portal (PLAIN opted in): an unsolicited
     Response with the registered RelayState, which pysaml2 takes only with allow_unsolicited.

The browser is `requests` without automatic redirects. Nothing listens at the SPs' URLs: what
the browser is sent there (the form the IdP posts, the Location it redirects to) is handed to
pysaml2.

Run (normally by tests/it/e2e.rs, which passes every input by environment variable; see there).
Prints one "ok - ..." / "not ok - ..." line per check and ends with "# all N checks passed".
"""

import base64
import html.parser
import os
import secrets
import sys
import traceback
import zlib
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.saml import NAMEID_FORMAT_PERSISTENT, AuthnContextClassRef
from saml2.samlp import RequestedAuthnContext
from saml2.sigver import verify_redirect_signature
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY_NAME = "urn:oid:2.16.840.1.113730.3.1.241"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"

# --------------------------------------------------------------------------------------------
# Reporting


class Stop(Exception):
    """A check that later ones depend on failed."""


COUNTS = {"ok": 0, "not ok": 0}


def check(label, cond, detail=""):
    if cond:
        COUNTS["ok"] += 1
        print(f"ok - {label}", flush=True)
    else:
        COUNTS["not ok"] += 1
        print(f"not ok - {label}: {detail}", flush=True)
    return cond


def need(label, cond, detail=""):
    if not check(label, cond, detail):
        raise Stop(label)


def section(title, fn):
    print(f"# {title}", flush=True)
    try:
        fn()
    except Stop:
        pass
    except Exception as e:  # a crash is a failed check, and the next section still runs
        check(f"{title}: no exception", False, "".join(traceback.format_exception(e))[-3000:])


def env(name):
    value = os.environ.get(name)
    if not value:
        print(f"not ok - the environment variable {name} is set")
        sys.exit(1)
    return value


# --------------------------------------------------------------------------------------------
# The browser


class Page(html.parser.HTMLParser):
    """Forms (id, action, method, hidden fields) and links of a served page."""

    def __init__(self, url, text):
        super().__init__(convert_charrefs=True)
        self.url = url
        self.forms = []
        self.links = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({
                "id": a.get("id"),
                "action": urljoin(self.url, a.get("action") or ""),
                "method": (a.get("method") or "get").lower(),
                "hidden": {},
            })
        elif tag == "input" and self.forms and a.get("type") == "hidden" and a.get("name"):
            self.forms[-1]["hidden"][a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.links.append(urljoin(self.url, a["href"]))


class Browser:
    """requests without automatic redirects: each hop is looked at."""

    def __init__(self, ca_file):
        self.session = requests.Session()
        self.session.verify = ca_file
        self.ca_file = ca_file

    def get(self, url):
        return self.session.get(url, allow_redirects=False, timeout=30)

    def post(self, url, fields, cookies=True):
        if cookies:
            return self.session.post(url, data=fields, allow_redirects=False, timeout=30)
        # A cross-site POST (from an SP's page): a browser sends no SameSite=Lax cookie with it.
        return requests.post(url, data=fields, allow_redirects=False, timeout=30, verify=self.ca_file)

    def follow(self, r, while_=lambda location: True, limit=10):
        for _ in range(limit):
            if r.status_code not in (301, 302, 303) or not while_(location(r)):
                return r
            r = self.get(location(r))
        return r


def location(r):
    loc = r.headers.get("Location")
    return urljoin(r.url, loc) if loc else ""


def describe(r):
    return f"{r.request.method} {r.url} -> {r.status_code} {location(r)} {r.text[:400]!r}"


def query(url):
    """The query of `url` as one value per name (as pysaml2 takes it)."""
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def inflate(b64):
    return zlib.decompress(base64.b64decode(b64), -15).decode("utf-8")


# --------------------------------------------------------------------------------------------


def sp_client(entity_id, acs, slo, slo_binding, key_file, cert_file, issuer, ca_file, xmlsec1,
              encryption=None, allow_unsolicited=False):
    config = {
        "entityid": entity_id,
        "xmlsec_binary": xmlsec1,
        "key_file": key_file,
        "cert_file": cert_file,
        # pysaml2 fetches the metadata itself, over TLS checked against the dev CA.
        "metadata": {"remote": [{"url": f"{issuer}/saml/metadata"}]},
        "ca_certs": ca_file,
        "service": {
            "sp": {
                "endpoints": {
                    "assertion_consumer_service": [(acs, BINDING_HTTP_POST)],
                    "single_logout_service": [(slo, slo_binding)],
                },
                "authn_requests_signed": True,
                "logout_requests_signed": True,
                "logout_responses_signed": True,
                "want_assertions_signed": True,
                # The IdP signs the assertion, not the Response around it (SAML profiles
                # §4.1.3.5 asks for a signed assertion; signing the Response is optional, and
                # registered per SP with sign_response). pysaml2 wants both by default.
                "want_response_signed": False,
                "allow_unsolicited": allow_unsolicited,
                "name_id_format": NAMEID_FORMAT_PERSISTENT,
                "signing_algorithm": SIG_RSA_SHA256,
                "digest_algorithm": DIGEST_SHA256,
            },
        },
    }
    if encryption:
        config["encryption_keypairs"] = [{"key_file": encryption[0], "cert_file": encryption[1]}]
    conf = SPConfig()
    conf.load(config)
    return Saml2Client(config=conf)


def main():
    issuer = env("ISSUER")
    ca_file = env("CA_FILE")
    xmlsec1 = env("XMLSEC1")
    alice = (env("LOGIN_USERNAME"), env("LOGIN_PASSWORD"))
    expected_name = env("EXPECTED_NAME")
    expected_email = env("EXPECTED_EMAIL")
    upstream_id = env("UPSTREAM_ID")
    bob = (env("UPSTREAM_USERNAME"), env("UPSTREAM_PASSWORD"))
    upstream_email = env("UPSTREAM_EMAIL")
    plain_acs, plain_slo = env("SP_ACS_URL"), env("SP_SLO_URL")
    sealed_acs, sealed_slo = env("SEALED_ACS_URL"), env("SEALED_SLO_URL")
    sso_url, slo_url = f"{issuer}/saml/sso", f"{issuer}/saml/slo"
    origin = f"{urlparse(issuer).scheme}://{urlparse(issuer).netloc}"

    plain = sp_client(env("SP_ENTITY_ID"), plain_acs, plain_slo, BINDING_HTTP_REDIRECT,
                      env("SP_KEY_FILE"), env("SP_CERT_FILE"), issuer, ca_file, xmlsec1)
    sealed = sp_client(env("SEALED_ENTITY_ID"), sealed_acs, sealed_slo, BINDING_HTTP_POST,
                       env("SEALED_KEY_FILE"), env("SEALED_CERT_FILE"), issuer, ca_file, xmlsec1,
                       encryption=(env("SEALED_ENC_KEY_FILE"), env("SEALED_ENC_CERT_FILE")))

    # 0. What pysaml2 made of the metadata.
    md = plain.metadata
    need(f"pysaml2 loaded the IdP {issuer} from its metadata", issuer in md.identity_providers(),
         str(md.identity_providers()))
    check(f"metadata: SingleSignOnService by Redirect and POST at {sso_url}",
          [e["location"] for e in md.single_sign_on_service(issuer, BINDING_HTTP_REDIRECT)] == [sso_url]
          and [e["location"] for e in md.single_sign_on_service(issuer, BINDING_HTTP_POST)] == [sso_url],
          str(md.single_sign_on_service(issuer)))
    slo_services = md.single_logout_service(issuer, None, "idpsso")
    check(f"metadata: SingleLogoutService by Redirect and POST at {slo_url}",
          {b: [e["location"] for e in v] for b, v in slo_services.items()}
          == {BINDING_HTTP_REDIRECT: [slo_url], BINDING_HTTP_POST: [slo_url]}, str(slo_services))
    idp_certs = [c for _, c in md.certs(issuer, "idpsso", "signing")]
    need("metadata: one signing certificate", len(idp_certs) == 1, str(idp_certs))

    def redirect_signed_by_idp(url):
        """pysaml2's own check of a Redirect-binding signature (SAML bindings §3.4.4.1) with the
        IdP's certificate from the metadata. Its parse_logout_request_response checks XML
        signatures only, and an SP's handle_logout_request checks a Redirect signature only
        when configured as an IdP that wants signed AuthnRequests: so the test calls it."""
        q = query(url)
        return verify_redirect_signature(q, plain.sec.sec_backend, idp_certs[0])

    def acs_form(label, r, acs, relay_state):
        page = Page(r.url, r.text)
        form = next((f for f in page.forms if "SAMLResponse" in f["hidden"]), None)
        need(f"{label}: the IdP answers with a page whose form posts SAMLResponse to {acs}",
             r.status_code == 200 and form is not None and form["method"] == "post"
             and form["action"] == acs, describe(r))
        check(f"{label}: the RelayState comes back unchanged",
              form["hidden"].get("RelayState") == relay_state,
              f"{form['hidden'].get('RelayState')!r} vs {relay_state!r}")
        return form["hidden"]

    def sign_in(label, browser, r, user, base):
        need(f"{label}: redirected (303) to the login page at {base}",
             r.status_code == 303 and location(r).startswith(f"{base}/account/login?interaction="),
             describe(r))
        page = browser.get(location(r))
        login = next((f for f in Page(page.url, page.text).forms if f["id"] == "login-form"), None)
        need(f"{label}: the login page has form#login-form", page.status_code == 200 and login is not None,
             describe(page))
        return browser.post(login["action"], {**login["hidden"], "username": user[0], "password": user[1]})

    to_idp = lambda loc: loc.startswith(f"{origin}/")  # noqa: E731

    def authenticate(client, binding, relay_state, **kwargs):
        """pysaml2's AuthnRequest, signed: (request id, URL) by Redirect, (id, form) by POST."""
        req_id, info = client.prepare_for_authenticate(
            entityid=issuer, relay_state=relay_state, binding=binding, sign=True,
            sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, nameid_format=NAMEID_FORMAT_PERSISTENT,
            **kwargs)
        if binding == BINDING_HTTP_REDIRECT:
            return req_id, dict(info["headers"])["Location"]
        form = Page(sso_url, info["data"]).forms[0]
        return req_id, form

    def accepted(label, client, fields, req_id):
        try:
            resp = client.parse_authn_request_response(
                fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"})
        except Exception as e:
            need(f"{label}: pysaml2 parse_authn_request_response accepts the Response", False,
                 "".join(traceback.format_exception(e))[-2000:])
        need(f"{label}: pysaml2 parse_authn_request_response accepts the Response (signed assertion, "
             "audience, recipient, times, InResponseTo)", resp is not None, "None")
        return resp

    def attributes_by_name(resp):
        return {a.name: (a.name_format, [v.text for v in a.attribute_value])
                for s in resp.assertion.attribute_statement for a in s.attribute}

    browser = Browser(ca_file)
    state = {}

    # 1. PLAIN by HTTP-Redirect: alice signs in through the login page.
    def part1():
        relay = secrets.token_urlsafe(12)
        req_id, url = authenticate(plain, BINDING_HTTP_REDIRECT, relay)
        q = query(url)
        check("pysaml2's AuthnRequest goes to the SSO URL with a query signature (RSA-SHA256)",
              url.startswith(f"{sso_url}?") and q.get("SigAlg") == SIG_RSA_SHA256 and "Signature" in q
              and q.get("RelayState") == relay, url[:300])
        r = sign_in("alice", browser, browser.get(url), alice, issuer)
        r = browser.follow(r, to_idp)
        fields = acs_form("alice", r, plain_acs, relay)
        resp = accepted("alice", plain, fields, req_id)
        name_id = resp.name_id
        check("alice: the NameID is persistent and opaque (no username, no mail in it)",
              name_id.format == NAMEID_FORMAT_PERSISTENT and len(name_id.text) >= 16
              and alice[0] not in name_id.text.lower() and "@" not in name_id.text, str(name_id))
        check(f"alice: the Response answers pysaml2's request ({req_id})", resp.in_response_to == req_id,
              resp.in_response_to)
        check("alice: the assertion is not encrypted (PLAIN registered no encryption)",
              not resp.response.encrypted_assertion, "encrypted")
        check(f"alice: ava mail is {expected_email}, displayName is {expected_name!r}",
              resp.ava.get("mail") == [expected_email] and resp.ava.get("displayName") == [expected_name],
              str(resp.ava))
        uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
        check("alice: the attributes are named by their urn:oid (NameFormat uri)",
              attributes_by_name(resp) == {MAIL: (uri, [expected_email]), DISPLAY_NAME: (uri, [expected_name])},
              str(attributes_by_name(resp)))
        info = resp.authn_info()
        check("alice: AuthnContextClassRef PasswordProtectedTransport",
              [i[0] for i in info] == [PASSWORD_PROTECTED], str(info))
        session = resp.session_info()
        need("alice: a SessionIndex", bool(session.get("session_index")), str(session))
        check("alice: pysaml2 holds her as signed in", plain.is_logged_in(name_id), "not in its cache")
        state["name_id"], state["session_index"] = name_id, session["session_index"]
        # The same Response with her mail changed after signing: pysaml2 checks the signature.
        raw = base64.b64decode(fields["SAMLResponse"]).decode("utf-8")
        forged = raw.replace(f">{expected_email}<", ">mallory@acme.test<")
        need("the mail value is changed in the XML", forged != raw, "mail not found")
        try:
            plain.parse_authn_request_response(
                base64.b64encode(forged.encode()).decode(), BINDING_HTTP_POST,
                outstanding={req_id: "/"})
            check("pysaml2 refuses the Response whose mail was changed", False, "accepted")
        except Exception as e:
            check("pysaml2 refuses the Response whose mail was changed (signature)",
                  "sign" in f"{type(e).__name__} {e}".lower(), f"{type(e).__name__}: {e}")
        # An unsigned AuthnRequest of PLAIN (whose certificate the tenant has): refused.
        unsigned_id, unsigned = plain.prepare_for_authenticate(
            entityid=issuer, relay_state=relay, binding=BINDING_HTTP_REDIRECT, sign=False)
        r = browser.get(dict(unsigned["headers"])["Location"])
        # The IdP answers at the registered ACS with a Requester status and no assertion
        # (SAML core §3.2.2.2), which pysaml2 reports as an error.
        refusal = acs_form("unsigned", r, plain_acs, relay)
        raw = base64.b64decode(refusal["SAMLResponse"]).decode("utf-8")
        check("unsigned: the Response has status Requester and no assertion",
              "status:Requester" in raw and "Assertion" not in raw, raw[:600])
        try:
            plain.parse_authn_request_response(refusal["SAMLResponse"], BINDING_HTTP_POST,
                                               outstanding={unsigned_id: "/"})
            check("unsigned: pysaml2 reports the Requester status as an error", False, "accepted")
        except Exception as e:
            check("unsigned: pysaml2 reports the Requester status as an error",
                  "Status" in type(e).__name__ or "Requester" in str(e), f"{type(e).__name__}: {e}")

    section("1. PLAIN, HTTP-Redirect: alice signs in through the login page", part1)

    # 2. SEALED by HTTP-POST, asking for PasswordProtectedTransport: an encrypted assertion.
    def part2():
        need("alice signed in at 1 (what this part builds on)", "name_id" in state)
        relay = secrets.token_urlsafe(12)
        requested = RequestedAuthnContext(
            authn_context_class_ref=[AuthnContextClassRef(text=PASSWORD_PROTECTED)], comparison="exact")
        req_id, form = authenticate(sealed, BINDING_HTTP_POST, relay, requested_authn_context=requested)
        xml = base64.b64decode(form["hidden"]["SAMLRequest"]).decode("utf-8")
        check("pysaml2's POST form: a signed AuthnRequest (inside) with RequestedAuthnContext exact",
              form["action"] == sso_url and "Signature" in xml and "RequestedAuthnContext" in xml
              and 'Comparison="exact"' in xml, xml[:600])
        # Cross-site POST: no cookie; the IdP resumes with a GET that carries it.
        r = browser.post(form["action"], form["hidden"], cookies=False)
        need(f"the POST (without cookies) redirects (303) to {sso_url}?resume=",
             r.status_code == 303 and location(r).startswith(f"{sso_url}?resume="), describe(r))
        r = browser.get(location(r))
        check("the resumed GET goes straight to the ACS form: the SSO session, no login page",
              r.status_code == 200 and 'id="login-form"' not in r.text, describe(r))
        fields = acs_form("sealed", r, sealed_acs, relay)
        raw = base64.b64decode(fields["SAMLResponse"]).decode("utf-8")
        check("sealed: the Response carries an EncryptedAssertion and no assertion in the clear",
              "EncryptedAssertion" in raw and ":Assertion " not in raw and expected_email not in raw, raw[:600])
        resp = accepted("sealed", sealed, fields, req_id)
        check("sealed: pysaml2 decrypted it with its key: her mail and name",
              resp.ava.get("mail") == [expected_email] and resp.ava.get("displayName") == [expected_name],
              str(resp.ava))
        check("sealed: AuthnContextClassRef PasswordProtectedTransport, as asked (exact)",
              [i[0] for i in resp.authn_info()] == [PASSWORD_PROTECTED], str(resp.authn_info()))
        check("sealed: a persistent NameID of its own (pairwise: not PLAIN's)",
              resp.name_id.format == NAMEID_FORMAT_PERSISTENT and resp.name_id.text != state["name_id"].text,
              f"{resp.name_id} vs {state['name_id']}")
        check("sealed: the same SSO session (SessionIndex) as PLAIN's",
              resp.session_info()["session_index"] == state["session_index"],
              f"{resp.session_info()['session_index']} vs {state['session_index']}")
        state["sealed_name_id"] = resp.name_id

    section("2. SEALED, HTTP-POST with RequestedAuthnContext: an encrypted assertion", part2)

    # 3. SP-initiated single logout at PLAIN; SEALED is told on the way.
    def part3():
        need("alice is signed in at both SPs (what this part builds on)", "sealed_name_id" in state)
        out = plain.global_logout(state["name_id"], sign=True, sign_alg=SIG_RSA_SHA256,
                                  digest_alg=DIGEST_SHA256)
        need("pysaml2 global_logout: one LogoutRequest to the IdP by Redirect",
             list(out) == [issuer] and out[issuer][0] == BINDING_HTTP_REDIRECT, str(out))
        url = dict(out[issuer][1]["headers"])["Location"]
        q = query(url)
        request_xml = inflate(q["SAMLRequest"])
        check("PLAIN's LogoutRequest: signed (query), naming her NameID and SessionIndex",
              url.startswith(f"{slo_url}?") and "Signature" in q and state["name_id"].text in request_xml
              and state["session_index"] in request_xml, request_xml[:600])
        r = browser.get(url)
        # The IdP sends SEALED (slo_binding post) its LogoutRequest through the browser.
        page = Page(r.url, r.text)
        form = next((f for f in page.forms if "SAMLRequest" in f["hidden"]), None)
        need(f"the IdP's page posts a LogoutRequest to SEALED at {sealed_slo}",
             r.status_code == 200 and form is not None and form["action"] == sealed_slo, describe(r))
        xml = base64.b64decode(form["hidden"]["SAMLRequest"]).decode("utf-8")
        parsed = sealed.parse_logout_request(form["hidden"]["SAMLRequest"], BINDING_HTTP_POST)
        check("SEALED: pysaml2 parses the IdP's LogoutRequest, signed inside and verified",
              parsed is not None and parsed.message.signature is not None
              and parsed.message.issuer.text == issuer, xml[:600])
        tampered = xml.replace(state["sealed_name_id"].text, "someone-else")
        try:
            sealed.parse_logout_request(base64.b64encode(tampered.encode()).decode(), BINDING_HTTP_POST)
            check("SEALED: pysaml2 refuses the LogoutRequest with another NameID put in", False, "accepted")
        except Exception as e:
            check("SEALED: pysaml2 refuses the LogoutRequest with another NameID put in (signature)",
                  "sign" in f"{type(e).__name__} {e}".lower(), f"{type(e).__name__}: {e}")
        check("SEALED: it names her as SEALED knows her, with the session's SessionIndex",
              parsed.message.name_id.text == state["sealed_name_id"].text
              and [s.text for s in parsed.message.session_index] == [state["session_index"]], xml[:800])
        answer = sealed.handle_logout_request(
            form["hidden"]["SAMLRequest"], state["sealed_name_id"], BINDING_HTTP_POST, sign=True,
            sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, relay_state=form["hidden"].get("RelayState"))
        check("SEALED: pysaml2 signed her out locally", not sealed.is_logged_in(state["sealed_name_id"]),
              "still in its cache")
        back = Page(sealed_slo, answer["data"]).forms[0]
        response_xml = base64.b64decode(back["hidden"]["SAMLResponse"]).decode("utf-8")
        check(f"SEALED: its LogoutResponse (Success, signed) is posted to {slo_url}",
              back["action"] == slo_url and SUCCESS in response_xml and "Signature" in response_xml,
              response_xml[:600])
        # From SEALED's page: a cross-site POST, without cookies.
        r = browser.post(back["action"], back["hidden"], cookies=False)
        need(f"the IdP then answers PLAIN by Redirect at {plain_slo}",
             r.status_code == 303 and location(r).startswith(f"{plain_slo}?SAMLResponse="), describe(r))
        to_plain = location(r)
        check("PLAIN: pysaml2 verifies the query signature of the LogoutResponse with the IdP's "
              "certificate", redirect_signed_by_idp(to_plain), to_plain[:300])
        forged = to_plain.replace("Signature=", "Signature=AAAA", 1)
        try:
            forged_ok = redirect_signed_by_idp(forged)
        except Exception:
            forged_ok = False
        check("PLAIN: a changed signature does not verify", not forged_ok, "verified")
        q = query(to_plain)
        resp = plain.parse_logout_request_response(q["SAMLResponse"], BINDING_HTTP_REDIRECT)
        need("PLAIN: pysaml2 parse_logout_request_response accepts it", resp is not None, "None")
        check("PLAIN: Success, in response to its request, from the IdP",
              resp.response.status.status_code.value == SUCCESS and resp.issuer() == issuer
              and resp.in_response_to in plain.state, str(resp.response)[:600])
        done = plain.handle_logout_response(resp)
        check("PLAIN: pysaml2 is done (no other IdP) and signed her out locally",
              done[1] == "200 Ok" and not plain.is_logged_in(state["name_id"]), str(done))
        relay = secrets.token_urlsafe(12)
        _, url = authenticate(plain, BINDING_HTTP_REDIRECT, relay)
        r = browser.get(url)
        check("a new AuthnRequest of PLAIN is sent to the login page",
              r.status_code == 303 and location(r).startswith(f"{issuer}/account/login?interaction="),
              describe(r))
        state["signed_out"] = True

    section("3. SP-initiated single logout at PLAIN; SEALED is told by POST", part3)

    # 4. Signed in again, then signed out at the IdP: PLAIN is told by Redirect.
    def part4():
        relay = secrets.token_urlsafe(12)
        req_id, url = authenticate(plain, BINDING_HTTP_REDIRECT, relay)
        r = sign_in("alice again", browser, browser.get(url), alice, issuer)
        r = browser.follow(r, to_idp)
        resp = accepted("alice again", plain, acs_form("alice again", r, plain_acs, relay), req_id)
        name_id = resp.name_id
        check("alice again: the same persistent NameID as in 1",
              "name_id" not in state or name_id.text == state["name_id"].text, str(name_id))
        r = browser.get(f"{issuer}/connect/endsession")
        confirm = next((f for f in Page(r.url, r.text).forms if "logout_id" in f["hidden"]), None)
        need("the end-session endpoint asks to confirm (logout_id and csrf)",
             r.status_code == 200 and confirm is not None and "csrf" in confirm["hidden"], describe(r))
        r = browser.post(f"{issuer}/account/logout", confirm["hidden"])
        need(f"confirmed: the browser is sent to PLAIN's SLO URL {plain_slo} with a LogoutRequest",
             r.status_code == 303 and location(r).startswith(f"{plain_slo}?SAMLRequest="), describe(r))
        to_plain = location(r)
        check("PLAIN: pysaml2 verifies the query signature of the LogoutRequest with the IdP's "
              "certificate", redirect_signed_by_idp(to_plain), to_plain[:300])
        q = query(to_plain)
        request_xml = inflate(q["SAMLRequest"])
        check("PLAIN: the LogoutRequest names her NameID", name_id.text in request_xml, request_xml[:600])
        answer = plain.handle_logout_request(
            q["SAMLRequest"], name_id, BINDING_HTTP_REDIRECT, sign=True, sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256, relay_state=q.get("RelayState"), sigalg=q.get("SigAlg"),
            signature=q.get("Signature"))
        check("PLAIN: pysaml2 signed her out locally", not plain.is_logged_in(name_id), "still in its cache")
        back = dict(answer["headers"])["Location"]
        bq = query(back)
        response_xml = inflate(bq["SAMLResponse"])
        check(f"PLAIN: its LogoutResponse (Success, query signature) goes to {slo_url} by Redirect",
              back.startswith(f"{slo_url}?") and "Signature" in bq and SUCCESS in response_xml
              and bq.get("RelayState") == q.get("RelayState"), back[:300])
        r = browser.get(back)
        check("the IdP shows the signed-out page", r.status_code == 200 and "signed out" in r.text.lower(),
              describe(r))
        _, url = authenticate(plain, BINDING_HTTP_REDIRECT, secrets.token_urlsafe(12))
        r = browser.get(url)
        check("a new AuthnRequest of PLAIN is sent to the login page",
              r.status_code == 303 and location(r).startswith(f"{issuer}/account/login?interaction="),
              describe(r))

    section("4. IdP-initiated single logout: PLAIN is told by Redirect", part4)

    # 5. bob through the upstream provider.
    def part5():
        bobs = Browser(ca_file)
        relay = secrets.token_urlsafe(12)
        req_id, url = authenticate(plain, BINDING_HTTP_REDIRECT, relay)
        r = bobs.get(url)
        need("bob: redirected (303) to the login page",
             r.status_code == 303 and location(r).startswith(f"{issuer}/account/login?interaction="), describe(r))
        page = bobs.get(location(r))
        start = f"{issuer}/federation/{upstream_id}/start?interaction="
        link = next((l for l in Page(page.url, page.text).links if l.startswith(start)), None)
        need(f"bob: the login page links to {start}...", link is not None, describe(page))
        r = bobs.follow(bobs.get(link), lambda loc: "/account/login" not in loc)
        upstream_base = urlparse(location(r)).path.split("/account/login")[0] if r.status_code == 303 else ""
        need("bob: redirected to the upstream provider's login page",
             r.status_code == 303 and upstream_base and not upstream_base.endswith(urlparse(issuer).path),
             describe(r))
        r = sign_in("bob", bobs, r, bob, f"{origin}{upstream_base}")
        r = bobs.follow(r, to_idp)
        fields = acs_form("bob", r, plain_acs, relay)
        resp = accepted("bob", plain, fields, req_id)
        check(f"bob: mail is {upstream_email}", resp.ava.get("mail") == [upstream_email], str(resp.ava))
        check("bob: a persistent NameID of his own",
              resp.name_id.format == NAMEID_FORMAT_PERSISTENT and bob[0] not in resp.name_id.text
              and ("name_id" not in state or resp.name_id.text != state["name_id"].text), str(resp.name_id))
        authorities = [a for i in resp.authn_info() for a in i[1]]
        check(f"bob: the AuthnContext names {upstream_id} as the AuthenticatingAuthority",
              authorities == [upstream_id], str(resp.authn_info()))

    section(f"5. bob through {upstream_id}", part5)

    # 6. IdP-initiated (SAML profiles §4.1.5) from the application portal: an unsolicited
    # Response, which only an SP configured to take them accepts.
    def part6():
        unsolicited = sp_client(env("SP_ENTITY_ID"), plain_acs, plain_slo, BINDING_HTTP_REDIRECT,
                                env("SP_KEY_FILE"), env("SP_CERT_FILE"), issuer, ca_file, xmlsec1,
                                allow_unsolicited=True)
        b = Browser(ca_file)
        r = sign_in("portal", b, b.get(f"{issuer}/apps"), alice, issuer)
        r = b.follow(r, to_idp)
        page = Page(r.url, r.text)
        button = next((f for f in page.forms if f["hidden"].get("sp") == env("SP_ENTITY_ID")), None)
        need(f"portal: after signing in, {issuer}/apps lists PLAIN as a form with a CSRF token",
             r.status_code == 200 and button is not None and button["method"] == "post"
             and button["action"] == f"{issuer}/apps/launch" and len(button["hidden"].get("csrf", "")) > 20,
             describe(r))
        r = b.post(button["action"], button["hidden"])
        fields = acs_form("IdP-initiated", r, plain_acs, env("DEFAULT_RELAY_STATE"))
        xml = base64.b64decode(fields["SAMLResponse"]).decode("utf-8")
        check("IdP-initiated: the Response answers no request (no InResponseTo)", "InResponseTo" not in xml,
              xml[:400])
        try:
            resp = unsolicited.parse_authn_request_response(fields["SAMLResponse"], BINDING_HTTP_POST,
                                                            outstanding={})
        except Exception as e:
            resp = None
            check("IdP-initiated: pysaml2 (allow_unsolicited) accepts it", False,
                  "".join(traceback.format_exception(e))[-2000:])
        if resp is not None:
            check(f"IdP-initiated: pysaml2 (allow_unsolicited) accepts it; mail is {expected_email}",
                  resp.ava.get("mail") == [expected_email], str(resp.ava))
        try:
            strict = plain.parse_authn_request_response(fields["SAMLResponse"], BINDING_HTTP_POST,
                                                        outstanding={})
            check("IdP-initiated: PLAIN without allow_unsolicited refuses it", strict is None, "accepted")
        except Exception as e:
            check(f"IdP-initiated: PLAIN without allow_unsolicited refuses it ({type(e).__name__})", True)

    section("6. IdP-initiated from the application portal", part6)

    if COUNTS["not ok"]:
        print(f"# {COUNTS['not ok']} of {COUNTS['ok'] + COUNTS['not ok']} checks failed")
        sys.exit(1)
    print(f"# all {COUNTS['ok']} checks passed")


if __name__ == "__main__":
    main()
