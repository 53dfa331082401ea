//! Property-based robustness tests: every parser of outside input is fed
//! arbitrary and mutated input. None may panic or hang, every rejection is the protocol's own
//! error (an RFC error code, never `server_error`; a located configuration error), and a
//! mutated signed artifact is never accepted unless the mutation left its meaning unchanged.
//!
//! The end-to-end twin, arbitrary requests against a running server, is `tests/it/robustness.rs`.
//! Every test here is named `robust_*` (the module path matches too), so one filter runs them
//! all; `PROPTEST_CASES` raises the case count for a longer run (README, "The two commands").

use crate::error::{ErrorCode, OAuthError};
use proptest::prelude::*;
use proptest::sample::Index;
use std::sync::OnceLock;

/// The run's configuration: `default` cases, or `PROPTEST_CASES` when set (proptest's own
/// `Config::with_cases` would ignore the variable). Failing cases are kept in a
/// `.proptest-regressions` file next to the test's source and replayed first.
pub(crate) fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: std::env::var_os("PROPTEST_DISABLE_FAILURE_PERSISTENCE")
            .is_none()
            .then(|| -> Box<dyn proptest::test_runner::FailurePersistence> {
                Box::new(proptest::test_runner::FileFailurePersistence::WithSource(
                    "proptest-regressions",
                ))
            }),
        ..ProptestConfig::default()
    }
}

/// An error a caller may see: a client-side RFC code with a 4xx status, never `server_error`.
fn assert_protocol_error(e: &OAuthError) -> Result<(), TestCaseError> {
    prop_assert!(
        e.code != ErrorCode::ServerError && e.status.is_client_error(),
        "{} answered {}",
        e.code.as_str(),
        e.status
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// One edit of a byte string; positions are fractions of the current length.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
    Swap(Index, Index),
}

/// Edits whose inserted bytes come from `tokens` (the format's special characters) or anywhere.
pub(crate) fn edits(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<Edit>> {
    let inserted = prop_oneof![
        3 => prop::sample::select(tokens).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ];
    let edit = prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<Index>(), inserted).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1usize..256).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
    ];
    prop::collection::vec(edit, 1..4)
}

pub(crate) fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len();
        let pick = |i: &Index, n: usize| if n == 0 { 0 } else { i.index(n) };
        match e {
            Edit::Flip(i, x) if len > 0 => data[i.index(len)] ^= x,
            Edit::Insert(i, bytes) => {
                let p = pick(i, len + 1);
                data.splice(p..p, bytes.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let p = i.index(len);
                data.drain(p..(p + n).min(len));
            }
            Edit::Truncate(i) => data.truncate(pick(i, len)),
            Edit::Duplicate(i, n) if len > 0 => {
                let p = i.index(len);
                let end = (p + n).min(len);
                let copy = data[p..end].to_vec();
                data.splice(end..end, copy);
            }
            Edit::Swap(a, b) if len > 0 => data.swap(a.index(len), b.index(len)),
            _ => {}
        }
    }
    data
}

const TOML_TOKENS: &[&str] = &[
    "\"",
    "'",
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "\n",
    "#",
    "{",
    "}",
    ",",
    ".",
    "\\",
    "\\u0000",
    "\"\"\"",
    "1e400",
    "-9223372036854775809",
    "9223372036854775808",
    "nan",
    "inf",
    "true",
    "0x",
    "1979-05-27T07:32:00Z",
    "${public_base_url}",
    "../",
    "/etc/passwd",
    "\u{FFFD}",
    "\0",
    "x = 1\n",
    "[clients]\n",
    "[[clients]]\n",
];

const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    "&unknown;",
    "]]>",
    "<!--",
    "-->",
    "<![CDATA[",
    "\"",
    "'",
    "=",
    "/",
    " xmlns=\"\"",
    " xmlns:saml=\"urn:x\"",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE x>",
    "\0",
    "\u{FFFE}",
    "\u{202E}",
];

const JWT_TOKENS: &[&str] = &[
    ".", "=", "+", "/", "-", "_", "A", "e30", "eyJ", " ", "%2E", "\0",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "1e999",
    "-0",
    "18446744073709551616",
    "\u{FFFD}",
];

/// Text: anything, or something printable.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::string::string_regex(&format!("(?s).{{0,{max}}}")).expect("regex"),
        prop::string::string_regex(&format!("[ -~]{{0,{max}}}")).expect("regex"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Form bodies and query strings (RFC 6749 §3.1, §3.2)

/// The parameter names the endpoints read, and some they must not trust.
const PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "resource",
    "refresh_token",
    "token",
    "token_type_hint",
    "response_type",
    "response_mode",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "id_token_hint",
    "login_hint",
    "request",
    "request_uri",
    "dpop_jkt",
    "ui_locales",
    "acr_values",
    "idp_hint",
    "post_logout_redirect_uri",
    "_signed",
];

const VALUES: &[&str] = &[
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
    "code",
    "token",
    "openid",
    "openid profile offline_access",
    "api.read",
    "S256",
    "plain",
    "none",
    "login consent",
    "none login",
    "query",
    "fragment",
    "form_post",
    "-1",
    "9223372036854775808",
    "acme-m2m",
    "acme-web",
    "https://api.acme.test",
    "http://127.0.0.1:9000/callback",
    "urn:ietf:params:oauth:request_uri:x",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "eyJhbGciOiJub25lIn0.e30.",
    "a.b.c",
    "%",
    "%FF",
    "\u{FFFD}",
];

pub(crate) fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(PARAMS).prop_map(str::to_string),
        1 => text(12),
    ]
}

pub(crate) fn param_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(VALUES).prop_map(str::to_string),
        3 => text(64),
        1 => "[A-Za-z0-9._~-]{43,129}",
        1 => (1usize..9000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Form bodies: arbitrary bytes, or parameters encoded properly, raw, or with odd separators.
pub(crate) fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let pairs = || prop::collection::vec((param_name(), param_value()), 0..10);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => pairs().prop_map(|p| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &p {
                s.append_pair(k, v);
            }
            s.finish().into_bytes()
        }),
        1 => (pairs(), prop::sample::select(&["&", ";", "&&", "=", "\n"][..])).prop_map(|(p, sep)| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(sep)
                .into_bytes()
        }),
    ]
}

mod forms {
    use super::*;
    use crate::protocol::token::TokenRequest;
    use crate::validation::authorize::redirect_uri_matches;
    use crate::validation::form::Form;
    use crate::validation::scope;

    proptest! {
        #![proptest_config(config(512))]

        /// RFC 6749 §3.1: what parses has no empty, repeated (except `resource` and `audience`) or non-UTF-8
        /// parameter; what does not is `invalid_request`.
        #[test]
        fn robust_form_bodies_parse_clean_or_are_invalid_request(body in form_body()) {
            match Form::parse(&body) {
                Ok(form) => {
                    let pairs = form.pairs();
                    for (i, (k, v)) in pairs.iter().enumerate() {
                        prop_assert!(!v.is_empty());
                        prop_assert!(
                            !k.contains('\u{FFFD}') && !v.contains('\u{FFFD}'),
                            "a replacement character passed"
                        );
                        prop_assert!(
                            k == "resource" || k == "audience"
                                || pairs[..i].iter().all(|(seen, _)| seen != k),
                            "`{}` repeated", k
                        );
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
                    assert_protocol_error(&e)?;
                }
            }
        }

        /// What a client encodes properly comes back exactly.
        #[test]
        fn robust_well_formed_form_bodies_round_trip(
            pairs in prop::collection::btree_map("[^\u{FFFD}]{1,16}", "[^\u{FFFD}]{1,64}", 0..8)
        ) {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                s.append_pair(k, v);
            }
            let form = Form::parse(s.finish().as_bytes()).unwrap();
            let expected: Vec<(String, String)> = pairs.into_iter().collect();
            prop_assert_eq!(form.pairs(), &expected[..]);
        }

        /// The token request's grant: a known one, or `invalid_request` / `unsupported_grant_type`.
        #[test]
        fn robust_token_requests_are_a_known_grant_or_a_protocol_error(body in form_body()) {
            let Ok(form) = Form::parse(&body) else { return Ok(()) };
            match TokenRequest::parse(&form) {
                // Any other grant type is named for the extension grants to decide.
                Ok(TokenRequest::Extension(g)) => {
                    prop_assert_eq!(form.get("grant_type"), Some(g.as_str()));
                    prop_assert!(g.len() <= 256);
                }
                Ok(_) => prop_assert!(matches!(
                    form.get("grant_type"),
                    Some("client_credentials" | "authorization_code" | "refresh_token")
                )),
                Err(e) => {
                    prop_assert!(matches!(
                        e.code,
                        ErrorCode::InvalidRequest | ErrorCode::UnsupportedGrantType
                    ));
                    assert_protocol_error(&e)?;
                }
            }
        }

        /// RFC 6749 §3.3: scope tokens are %x21 / %x23-5B / %x5D-7E, or the value is
        /// `invalid_scope`.
        #[test]
        fn robust_scope_values_split_into_valid_tokens_or_are_invalid_scope(value in text(80)) {
            match scope::parse(&value) {
                Ok(tokens) => {
                    for t in tokens {
                        prop_assert!(!t.is_empty());
                        prop_assert!(t.bytes().all(|b| b == 0x21
                            || (0x23..=0x5b).contains(&b)
                            || (0x5d..=0x7e).contains(&b)), "{:?}", t);
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e.code, ErrorCode::InvalidScope);
                    assert_protocol_error(&e)?;
                }
            }
        }

        /// RFC 9700 §4.1.3: a confidential client's redirect URI matches only as the same string;
        /// a native one may differ in the loopback port alone.
        #[test]
        fn robust_redirect_uris_match_only_as_registered(
            presented in prop_oneof![
                text(80),
                "http://127\\.0\\.0\\.1(:[0-9]{1,6})?/cb[/?#]?[a-z]{0,3}",
                "http://(localhost|\\[::1\\]|127\\.0\\.0\\.2)(:[0-9]{1,5})?/cb",
            ],
        ) {
            let registered = vec![
                "http://127.0.0.1/cb".to_string(),
                "https://app.example/cb".to_string(),
            ];
            prop_assert_eq!(
                redirect_uri_matches(&registered, &presented, false),
                registered.contains(&presented)
            );
            let native = redirect_uri_matches(&registered, &presented, true);
            if native && !registered.contains(&presented) {
                let u = url::Url::parse(&presented).unwrap();
                prop_assert_eq!(u.scheme(), "http");
                prop_assert_eq!(u.host_str(), Some("127.0.0.1"));
                prop_assert_eq!(u.path(), "/cb");
                prop_assert!(u.query().is_none() && u.fragment().is_none());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JWS / JWT (RFC 7515, RFC 7519): request objects, id_token_hint, client assertions

/// One key per algorithm, made once (RSA generation is slow).
fn signers() -> &'static Vec<crate::keys::Signer> {
    use crate::keys::{Alg, Signer, signer::generate_pkcs8};
    static KEYS: OnceLock<Vec<Signer>> = OnceLock::new();
    KEYS.get_or_init(|| {
        Alg::ALL
            .into_iter()
            .map(|alg| Signer::from_pkcs8(alg, &generate_pkcs8(alg, 2048).unwrap()).unwrap())
            .collect()
    })
}

/// Arbitrary JSON, with the values JOSE parsers trip on.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        text(40).prop_map(Value::String),
        prop::sample::select(VALUES).prop_map(|s| json!(s)),
        prop::sample::select(
            &[
                "RS256", "PS256", "ES256", "EdDSA", "none", "HS256", "RSA", "EC", "OKP", "P-256",
                "Ed25519", "sig", "dpop+jwt", "JWT"
            ][..]
        )
        .prop_map(|s| json!(s)),
        "[A-Za-z0-9_-]{0,400}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(
                        &[
                            "kty", "crv", "x", "y", "n", "e", "d", "kid", "alg", "use", "keys",
                            "k", "typ", "jwk", "crit"
                        ][..]
                    )
                    .prop_map(str::to_string),
                    text(8),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

mod jws {
    use super::*;
    use crate::keys::Alg;
    use crate::tokens::jws::{decode_unverified, verify, verify_hmac};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use serde_json::json;

    /// Compact strings: arbitrary text, or three base64url segments of arbitrary JSON.
    fn compact() -> impl Strategy<Value = String> {
        prop_oneof![
            text(200),
            "[A-Za-z0-9_.=+/-]{0,200}",
            (
                json_value(),
                json_value(),
                prop::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(h, c, s)| format!(
                    "{}.{}.{}",
                    B64.encode(h.to_string()),
                    B64.encode(c.to_string()),
                    B64.encode(s)
                )),
        ]
    }

    proptest! {
        #![proptest_config(config(512))]

        /// Arbitrary compact strings decode or are refused; none verifies against real keys or
        /// a 32-byte HMAC secret.
        #[test]
        fn robust_arbitrary_compact_strings_never_verify(s in compact()) {
            let _ = decode_unverified(&s);
            let keys: Vec<_> = signers().iter().map(|k| k.public_jwk()).collect();
            let jwks = json!({"keys": keys});
            prop_assert!(verify(&s, &jwks, &Alg::ALL).is_err());
            prop_assert!(verify_hmac(&s, &[7u8; 64]).is_err());
        }

        /// Any change to a signed JWS, in any of its parts, breaks it.
        #[test]
        fn robust_a_mutated_jws_never_verifies(
            which in 0usize..4,
            claims in json_value(),
            edits in edits(JWT_TOKENS),
        ) {
            let key = &signers()[which];
            let jwt = key.sign_jwt("JWT", &json!({"sub": "alice", "x": claims})).unwrap();
            let jwks = json!({"keys": [key.public_jwk()]});
            prop_assert!(verify(&jwt, &jwks, &Alg::ALL).is_ok());
            let mutated = apply(jwt.clone().into_bytes(), &edits);
            let Ok(mutated) = String::from_utf8(mutated) else { return Ok(()) };
            if mutated != jwt {
                prop_assert!(verify(&mutated, &jwks, &Alg::ALL).is_err(), "{}", mutated);
            }
        }

        /// Key sets of any shape are survived; a token verifies only with its own key in the set.
        #[test]
        fn robust_arbitrary_key_sets_are_survived(
            which in 0usize..4,
            keys in prop::collection::vec(json_value(), 0..4),
            with_real_key in any::<bool>(),
            junk in json_value(),
        ) {
            let key = &signers()[which];
            let jwt = key.sign_jwt("JWT", &json!({"sub": "alice"})).unwrap();
            let mut keys = keys;
            if with_real_key {
                keys.push(key.public_jwk());
            }
            let verified = verify(&jwt, &json!({"keys": keys}), &Alg::ALL).is_ok();
            prop_assert!(!verified || with_real_key);
            prop_assert!(verify(&jwt, &junk, &Alg::ALL).is_err());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP proofs (RFC 9449 §4.3)

mod dpop_proofs {
    use super::*;
    use crate::validation::dpop::{Expect, PROOF_WINDOW, check};
    use serde_json::{Value, json};

    const URL: &str = "https://login.example/acme/connect/token";
    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expect<'static> {
        Expect {
            htm: "POST",
            htu: URL,
            now: NOW,
            access_token: None,
        }
    }

    /// An `htu` value and whether RFC 9449 §4.3 item 9 lets it name this request.
    fn htu() -> impl Strategy<Value = (Value, bool)> {
        prop_oneof![
            6 => Just((json!(URL), true)),
            1 => Just((json!(format!("{URL}?x=1")), true)),
            1 => Just((json!(format!("{URL}#f")), true)),
            1 => Just((json!("HTTPS://LOGIN.EXAMPLE/acme/connect/token"), true)),
            1 => Just((json!("https://login.example:443/acme/connect/token"), true)),
            1 => Just((json!("https://login.example/acme/connect/token/"), false)),
            1 => Just((json!("https://login.example/ACME/connect/token"), false)),
            1 => Just((json!("http://login.example/acme/connect/token"), false)),
            1 => Just((
                json!("https://login.example:8443/acme/connect/token"),
                false
            )),
            1 => Just((json!("https://evil.example/acme/connect/token"), false)),
            1 => json_value().prop_map(|v| (v, false)),
        ]
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Whatever arrives in the DPoP header, only a proof that meets every rule passes.
        #[test]
        fn robust_arbitrary_dpop_headers_are_refused(
            s in prop_oneof![text(300), "[A-Za-z0-9_.-]{0,9000}"],
        ) {
            prop_assert!(check(&s, &expect()).is_err());
        }

        #[test]
        fn robust_a_mutated_dpop_proof_is_refused(edits in edits(JWT_TOKENS)) {
            let key = &signers()[2];
            let proof = key
                .sign_with_header(
                    &json!({"typ": "dpop+jwt", "jwk": key.bare_public_jwk()}),
                    &json!({"htm": "POST", "htu": URL, "iat": NOW, "jti": "j"}),
                )
                .unwrap();
            prop_assert!(check(&proof, &expect()).is_ok());
            let Ok(mutated) = String::from_utf8(apply(proof.clone().into_bytes(), &edits)) else {
                return Ok(());
            };
            if mutated != proof {
                prop_assert!(check(&mutated, &expect()).is_err());
            }
        }

        /// Proofs really signed, with any header and claims: accepted only when typ, key, method,
        /// URL, time window and jti all hold.
        #[test]
        fn robust_signed_dpop_proofs_pass_only_when_every_rule_holds(
            which in 0usize..4,
            // Each part is mostly right, so that most proofs break one rule at most.
            typ in prop_oneof![
                4 => Just(json!("dpop+jwt")),
                1 => Just(json!("JWT")),
                1 => json_value(),
            ],
            jwk_choice in prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
            junk_jwk in json_value(),
            htm in prop_oneof![
                6 => Just(json!("POST")),
                1 => Just(json!("GET")),
                1 => Just(json!("post")),
                1 => json_value(),
            ],
            (htu, htu_ok) in htu(),
            iat in prop_oneof![
                6 => (-PROOF_WINDOW - 2..62i64).prop_map(|d| json!(NOW + d)),
                1 => Just(json!(NOW.to_string())),
                1 => Just(json!(NOW as f64 + 0.5)),
                1 => json_value(),
            ],
            jti in prop_oneof![
                6 => Just(json!("j")),
                1 => Just(json!("")),
                1 => Just(json!("x".repeat(257))),
                1 => json_value(),
            ],
            extra in prop::collection::btree_map("[a-z]{1,5}", json_value(), 0..3),
        ) {
            let key = &signers()[which];
            let other = &signers()[(which + 1) % 4];
            let jwk = match jwk_choice {
                0 => key.bare_public_jwk(),
                1 => other.bare_public_jwk(),
                2 => {
                    let mut j = key.bare_public_jwk();
                    j["d"] = json!("AAAA");
                    j
                }
                _ => junk_jwk,
            };
            let mut claims: serde_json::Map<String, Value> = extra.into_iter().collect();
            claims.insert("htm".into(), htm.clone());
            claims.insert("htu".into(), htu);
            claims.insert("iat".into(), iat.clone());
            claims.insert("jti".into(), jti.clone());
            let proof = key
                .sign_with_header(&json!({"typ": typ, "jwk": jwk}), &Value::Object(claims))
                .unwrap();
            if let Ok(p) = check(&proof, &expect()) {
                prop_assert_eq!(&typ, &json!("dpop+jwt"));
                prop_assert_eq!(jwk_choice, 0, "the proof's own key signed it");
                prop_assert_eq!(&p.jkt, &key.kid);
                prop_assert_eq!(&htm, &json!("POST"));
                prop_assert!(htu_ok);
                let iat = iat.as_i64().unwrap();
                prop_assert!((NOW - PROOF_WINDOW..=NOW + 60).contains(&iat));
                prop_assert_eq!(p.iat, iat);
                prop_assert!(jti.as_str().is_some_and(|j| !j.is_empty() && j == p.jti));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SAML responses (mutations of a valid signed response) and IdP metadata

mod saml {
    use super::*;
    use crate::federation::saml::sp::test_idp::{
        ResponseOptions, TestIdp, self_signed_key_and_cert,
    };
    use crate::federation::saml::sp::{
        IdpMetadata, SpConfig, VerifiedAssertion, parse_idp_metadata, verify_response,
    };
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE as B64_URL};
    use std::io::Write;

    const NOW: i64 = 1_900_000_000;
    const SP_ENTITY: &str = "https://gw.example/acme/federation/corp-saml";
    const ACS: &str = "https://gw.example/acme/federation/corp-saml/acs";
    const IDP_ENTITY: &str = "https://idp.example/saml";
    const REQUEST_ID: &str = "_0123456789abcdef0123456789abcdef";
    const NAME: &str = "alice@corp.example";

    struct Fixture {
        idp: TestIdp,
        sp: SpConfig,
        metadata: IdpMetadata,
        /// Valid signed responses (decoded XML) of each shape, and what each verifies to.
        responses: Vec<(String, VerifiedAssertion)>,
    }

    fn options() -> ResponseOptions {
        let mut o =
            ResponseOptions::valid_for(ACS, SP_ENTITY, Some(REQUEST_ID), NAME, NOW).unwrap();
        o.attributes = vec![
            (
                "urn:oid:0.9.2342.19200300.100.1.3".into(),
                vec![NAME.into()],
            ),
            ("groups".into(), vec!["admins".into(), "staff".into()]),
        ];
        o.attribute_friendly_names =
            vec![("urn:oid:0.9.2342.19200300.100.1.3".into(), "mail".into())];
        o
    }

    fn decode(b64: &str) -> String {
        String::from_utf8(B64.decode(b64).unwrap()).unwrap()
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let idp = TestIdp::generate(IDP_ENTITY, "https://idp.example/saml/sso").unwrap();
            let (signing_key_pem, signing_cert_pem) = self_signed_key_and_cert("sp", true).unwrap();
            let (enc_key, enc_cert) = self_signed_key_and_cert("sp-enc", false).unwrap();
            let sp = SpConfig {
                entity_id: SP_ENTITY.into(),
                acs_url: ACS.into(),
                slo_url: None,
                signing_key_pem,
                signing_cert_pem,
                encryption_key_pem: Some(enc_key),
                encryption_cert_pem: Some(enc_cert.clone()),
                max_clock_skew_secs: 60,
                allow_idp_initiated: false,
            };
            let metadata = parse_idp_metadata(&idp.metadata_xml()).unwrap();
            let shapes: [(bool, bool, bool); 4] = [
                // (sign the Response, sign the Assertion, encrypt the Assertion)
                (false, true, false),
                (true, true, false),
                (true, false, false),
                (true, false, true),
            ];
            let responses = shapes
                .iter()
                .map(|&(response, assertion, encrypt)| {
                    let mut o = options();
                    o.sign_response = response;
                    o.sign_assertion = assertion;
                    o.encrypt_for_cert_pem = encrypt.then(|| enc_cert.clone());
                    let b64 = idp.response(&o).unwrap();
                    let verified =
                        verify_response(&sp, &metadata, &b64, Some(REQUEST_ID), NOW).unwrap();
                    (decode(&b64), verified)
                })
                .collect();
            Fixture {
                idp,
                sp,
                metadata,
                responses,
            }
        })
    }

    fn verify(b64: &str) -> Result<VerifiedAssertion, crate::federation::saml::sp::SamlError> {
        let f = fixture();
        verify_response(&f.sp, &f.metadata, b64, Some(REQUEST_ID), NOW)
    }

    /// Refused, or accepted as exactly what the IdP signed.
    fn refused_or_unchanged(
        got: Result<VerifiedAssertion, crate::federation::saml::sp::SamlError>,
        expected: &VerifiedAssertion,
    ) -> Result<(), TestCaseError> {
        if let Ok(v) = got {
            prop_assert_eq!(
                &v,
                expected,
                "a mutated response was accepted with another meaning"
            );
        }
        Ok(())
    }

    /// (start, end) of every element, start tags before their content (no nesting of a name in
    /// itself in these documents; attribute values never hold `>`).
    fn elements(xml: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut i = 0;
        while let Some(off) = xml[i..].find('<') {
            let start = i + off;
            let Some(len) = xml[start..].find('>') else {
                break;
            };
            let end = start + len + 1;
            let tag = &xml[start..end];
            if tag.starts_with("</") {
                if let Some(s) = open.pop() {
                    out.push((s, end));
                }
            } else if tag.ends_with("/>") {
                out.push((start, end));
            } else if !tag.starts_with("<?") && !tag.starts_with("<!") {
                open.push(start);
            }
            i = end;
        }
        out.sort_unstable();
        out
    }

    /// (whole attribute with its leading space, value) ranges.
    fn attributes(xml: &str) -> Vec<((usize, usize), (usize, usize))> {
        let mut out = Vec::new();
        for (start, _) in elements(xml) {
            let tag_end = start + xml[start..].find('>').unwrap_or(0);
            let tag = &xml[start..tag_end];
            let mut from = 0;
            while let Some(eq) = tag[from..].find("=\"") {
                let eq = from + eq;
                let Some(close) = tag[eq + 2..].find('"') else {
                    break;
                };
                let value_end = eq + 2 + close;
                let name_start = tag[..eq].rfind(' ').unwrap_or(eq);
                out.push((
                    (start + name_start, start + value_end + 1),
                    (start + eq + 2, start + value_end),
                ));
                from = value_end + 1;
            }
        }
        out
    }

    /// A structural change of a signed document: the edits an attacker tries on SAML.
    #[derive(Debug, Clone)]
    enum XmlEdit {
        RemoveElement(Index),
        DuplicateElement(Index),
        /// Cut one element and put it before another (wrapping, reordering).
        MoveElement(Index, Index),
        /// Copy one element as the first child of another (signature wrapping).
        CopyInto(Index, Index),
        ReplaceContent(Index, String),
        RemoveAttribute(Index),
        DuplicateAttribute(Index),
        SetAttribute(Index, String),
    }

    fn replacement() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(
                &[
                    "",
                    "mallory@evil.example",
                    ACS,
                    SP_ENTITY,
                    IDP_ENTITY,
                    REQUEST_ID,
                    "_other",
                    "&lt;x&gt;",
                    "&amp;",
                    "&#0;",
                    "]]>",
                    "<![CDATA[alice@corp.example]]>",
                    "alice@corp.example<!-- -->",
                    "2.0",
                    "1.0",
                    "1970-01-01T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "2030-03-17T17:46:40Z",
                    "not a time",
                    "urn:oasis:names:tc:SAML:2.0:status:Success",
                    "urn:oasis:names:tc:SAML:2.0:status:Requester",
                    "urn:oasis:names:tc:SAML:2.0:cm:bearer",
                    "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key",
                    "#_other",
                    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                    "http://www.w3.org/2000/09/xmldsig#sha1",
                ][..]
            )
            .prop_map(str::to_string),
            text(40),
            (1usize..200_000).prop_map(|n| "A".repeat(n)),
        ]
    }

    fn xml_edits() -> impl Strategy<Value = Vec<XmlEdit>> {
        let e = prop_oneof![
            any::<Index>().prop_map(XmlEdit::RemoveElement),
            any::<Index>().prop_map(XmlEdit::DuplicateElement),
            (any::<Index>(), any::<Index>()).prop_map(|(a, b)| XmlEdit::MoveElement(a, b)),
            (any::<Index>(), any::<Index>()).prop_map(|(a, b)| XmlEdit::CopyInto(a, b)),
            (any::<Index>(), replacement()).prop_map(|(a, t)| XmlEdit::ReplaceContent(a, t)),
            any::<Index>().prop_map(XmlEdit::RemoveAttribute),
            any::<Index>().prop_map(XmlEdit::DuplicateAttribute),
            (any::<Index>(), replacement()).prop_map(|(a, t)| XmlEdit::SetAttribute(a, t)),
        ];
        prop::collection::vec(e, 1..4)
    }

    fn apply_xml(mut xml: String, edits: &[XmlEdit]) -> String {
        for e in edits {
            let els = elements(&xml);
            let attrs = attributes(&xml);
            if els.is_empty() {
                break;
            }
            let el = |i: &Index| els[i.index(els.len())];
            match e {
                XmlEdit::RemoveElement(i) => {
                    let (s, t) = el(i);
                    xml.replace_range(s..t, "");
                }
                XmlEdit::DuplicateElement(i) => {
                    let (s, t) = el(i);
                    let copy = xml[s..t].to_string();
                    xml.insert_str(t, &copy);
                }
                XmlEdit::MoveElement(a, b) => {
                    let (s, t) = el(a);
                    let (to, _) = el(b);
                    if to < s || to >= t {
                        let cut = xml[s..t].to_string();
                        if to < s {
                            xml.replace_range(s..t, "");
                            xml.insert_str(to, &cut);
                        } else {
                            xml.insert_str(to, &cut);
                            xml.replace_range(s..t, "");
                        }
                    }
                }
                XmlEdit::CopyInto(a, b) => {
                    let (s, t) = el(a);
                    let (to, to_end) = el(b);
                    let copy = xml[s..t].to_string();
                    let start_tag_end = to + xml[to..].find('>').unwrap_or(0) + 1;
                    if !xml[to..start_tag_end].ends_with("/>") && start_tag_end < to_end {
                        xml.insert_str(start_tag_end, &copy);
                    }
                }
                XmlEdit::ReplaceContent(i, content) => {
                    let (s, t) = el(i);
                    let open_end = s + xml[s..].find('>').unwrap_or(0) + 1;
                    let close_start = xml[..t].rfind("</").unwrap_or(t);
                    if open_end <= close_start && close_start < t {
                        xml.replace_range(open_end..close_start, content);
                    }
                }
                XmlEdit::RemoveAttribute(i) if !attrs.is_empty() => {
                    let ((s, t), _) = attrs[i.index(attrs.len())];
                    xml.replace_range(s..t, "");
                }
                XmlEdit::DuplicateAttribute(i) if !attrs.is_empty() => {
                    let ((s, t), _) = attrs[i.index(attrs.len())];
                    let copy = xml[s..t].to_string();
                    xml.insert_str(t, &copy);
                }
                XmlEdit::SetAttribute(i, value) if !attrs.is_empty() => {
                    let (_, (s, t)) = attrs[i.index(attrs.len())];
                    xml.replace_range(s..t, value);
                }
                _ => {}
            }
        }
        xml
    }

    /// DOCTYPEs with entities: expansion bombs, external and parameter entities, and one that
    /// expands to the very text it replaces (a parser differential would show there).
    fn doctype() -> impl Strategy<Value = (String, String)> {
        let laughs = {
            let mut d = String::from("<!ENTITY l0 \"lol\">");
            for i in 1..10 {
                d.push_str(&format!(
                    "<!ENTITY l{i} \"{}\">",
                    format!("&l{};", i - 1).repeat(10)
                ));
            }
            (d, "&l9;".to_string())
        };
        prop::sample::select(vec![
            laughs,
            (
                "<!ENTITY x SYSTEM \"file:///etc/passwd\">".into(),
                "&x;".into(),
            ),
            (
                "<!ENTITY % p SYSTEM \"http://127.0.0.1:9/x.dtd\"> %p;".into(),
                "&x;".into(),
            ),
            (format!("<!ENTITY n \"{NAME}\">"), "&n;".into()),
            ("<!ENTITY n \"mallory@evil.example\">".into(), "&n;".into()),
            (
                "<!ELEMENT saml:NameID ANY><!ATTLIST saml:Assertion ID ID #IMPLIED>".into(),
                NAME.into(),
            ),
        ])
    }

    /// How the transport might carry the XML: base64 variants, deflate (the Redirect binding's
    /// encoding, not allowed for Responses), other character encodings.
    #[derive(Debug, Clone, Copy)]
    enum Encoding {
        Standard,
        LineBreaks,
        UrlSafe,
        NoPadding,
        Deflated,
        Twice,
        Latin1,
        Utf16,
    }

    fn encode(xml: &[u8], how: Encoding) -> String {
        match how {
            Encoding::Standard => B64.encode(xml),
            Encoding::LineBreaks => B64
                .encode(xml)
                .as_bytes()
                .chunks(76)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("\r\n"),
            Encoding::UrlSafe => B64_URL.encode(xml),
            Encoding::NoPadding => B64.encode(xml).trim_end_matches('=').to_string(),
            Encoding::Deflated => {
                let mut d =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                d.write_all(xml).unwrap();
                B64.encode(d.finish().unwrap())
            }
            Encoding::Twice => B64.encode(B64.encode(xml)),
            Encoding::Latin1 => B64.encode(
                String::from_utf8_lossy(xml)
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect::<Vec<u8>>(),
            ),
            Encoding::Utf16 => B64.encode(
                String::from_utf8_lossy(xml)
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
            ),
        }
    }

    /// Text an IdP may put in a NameID or attribute value: no leading or trailing white space
    /// (XML processors may normalise it), XML's special characters and non-ASCII included.
    fn printable() -> impl Strategy<Value = String> {
        "[!-~\u{e9}\u{263a}\u{1F600}]([ -~\u{e9}\u{263a}]{0,30}[!-~])?"
    }

    /// Puts `prolog` after the XML declaration, if there is one.
    fn with_prolog(xml: &str, prolog: &str) -> String {
        match xml
            .strip_prefix("<?xml")
            .and_then(|rest| rest.split_once("?>"))
        {
            Some((decl, rest)) => format!("<?xml{decl}?>{prolog}{rest}"),
            None => format!("{prolog}{xml}"),
        }
    }

    proptest! {
        #![proptest_config(config(128))]

        /// Byte-level damage to a valid signed response: refused, or unchanged in meaning.
        #[test]
        fn robust_saml_responses_with_flipped_inserted_or_cut_bytes_are_refused(
            which in 0usize..4,
            edits in edits(XML_TOKENS),
        ) {
            let (xml, expected) = &fixture().responses[which];
            let mutated = apply(xml.clone().into_bytes(), &edits);
            refused_or_unchanged(verify(&B64.encode(mutated)), expected)?;
        }

        /// Elements and attributes removed, duplicated, moved, copied into others (wrapping) or
        /// changed: refused, or unchanged in meaning.
        #[test]
        fn robust_saml_responses_with_moved_removed_or_changed_elements_are_refused(
            which in 0usize..4,
            edits in xml_edits(),
        ) {
            let (xml, expected) = &fixture().responses[which];
            let mutated = apply_xml(xml.clone(), &edits);
            refused_or_unchanged(verify(&B64.encode(mutated)), expected)?;
        }

        /// Entities and DTDs: no expansion bomb, no external fetch, no parser differential.
        #[test]
        fn robust_saml_responses_with_doctypes_and_entities_are_refused(
            which in 0usize..4,
            (dtd, reference) in doctype(),
            target in prop::sample::select(&[NAME, SP_ENTITY, "admins", IDP_ENTITY][..]),
        ) {
            let (xml, expected) = &fixture().responses[which];
            let with_ref = xml.replacen(&format!(">{target}<"), &format!(">{reference}<"), 1);
            let mutated = with_prolog(&with_ref, &format!("<!DOCTYPE samlp:Response [{dtd}]>"));
            refused_or_unchanged(verify(&B64.encode(mutated)), expected)?;
        }

        /// Transport encodings: plain base64 with or without line breaks is the same response;
        /// anything else is refused.
        #[test]
        fn robust_saml_responses_in_other_encodings_are_refused(
            which in 0usize..4,
            how in prop::sample::select(vec![
                Encoding::Standard, Encoding::LineBreaks, Encoding::UrlSafe, Encoding::NoPadding,
                Encoding::Deflated, Encoding::Twice, Encoding::Latin1, Encoding::Utf16,
            ]),
        ) {
            let (xml, expected) = &fixture().responses[which];
            let got = verify(&encode(xml.as_bytes(), how));
            match how {
                Encoding::Standard | Encoding::LineBreaks => {
                    prop_assert_eq!(&got.unwrap(), expected)
                }
                _ => refused_or_unchanged(got, expected)?,
            }
        }

        /// A genuine response with a huge value, many attributes, or values full of XML's
        /// special characters, as the IdP signs them: verified exactly as signed.
        #[test]
        fn robust_signed_saml_responses_with_huge_or_odd_values_verify_as_signed(
            name in prop_oneof![Just(NAME.to_string()), printable()],
            attributes in prop_oneof![
                (1usize..300_000).prop_map(|n| vec![("big".to_string(), vec!["v".repeat(n)])]),
                prop::collection::vec(
                    ("[a-z][a-z:.]{0,20}", prop::collection::vec(printable(), 0..5)),
                    1..200,
                ),
            ],
        ) {
            let f = fixture();
            let mut o =
                ResponseOptions::valid_for(ACS, SP_ENTITY, Some(REQUEST_ID), &name, NOW).unwrap();
            o.attributes = attributes;
            let v = verify(&f.idp.response(&o).unwrap());
            prop_assert!(v.is_ok(), "a genuine response was refused: {:?}", v);
            let v = v.unwrap();
            prop_assert_eq!(&v.name_id, &name);
            let expected: Vec<(String, Vec<String>)> = o.attributes.clone();
            prop_assert_eq!(&v.attributes, &expected);
        }

        /// Arbitrary SAMLResponse parameters: refused.
        #[test]
        fn robust_arbitrary_saml_response_parameters_are_refused(
            s in prop_oneof![
                text(300),
                prop::collection::vec(any::<u8>(), 0..600).prop_map(|b| B64.encode(b)),
            ],
        ) {
            prop_assert!(verify(&s).is_err());
        }

        /// IdP metadata (operator input, fetched from a URL): parsed or refused, never a panic;
        /// metadata that parses still names a signing certificate.
        #[test]
        fn robust_mutated_idp_metadata_is_parsed_or_refused(
            edits in edits(XML_TOKENS),
            xml_edits in xml_edits(),
            structural in any::<bool>(),
        ) {
            let xml = fixture().idp.metadata_xml();
            let mutated = if structural {
                apply_xml(xml, &xml_edits)
            } else {
                String::from_utf8_lossy(&apply(xml.into_bytes(), &edits)).into_owned()
            };
            if let Ok(md) = parse_idp_metadata(&mutated) {
                prop_assert!(!md.entity_id.is_empty());
            }
        }

        /// SP metadata (a tenant admin's `metadata_url`): parsed and completed, or refused,
        /// never a panic; an SP it completes without a problem is about the registered entity
        /// and posts only to ACS URLs the tenant files' rules allow.
        #[test]
        fn robust_mutated_sp_metadata_is_parsed_or_refused(
            edits in edits(XML_TOKENS),
            xml_edits in xml_edits(),
            structural in any::<bool>(),
        ) {
            let xml = crate::federation::saml::sp::sp_metadata_xml(&fixture().sp).unwrap();
            let mutated = if structural {
                apply_xml(xml, &xml_edits)
            } else {
                String::from_utf8_lossy(&apply(xml.into_bytes(), &edits)).into_owned()
            };
            let base = crate::config::tenant::check_definition(
                &serde_json::from_value(serde_json::json!({
                    "entity_id": SP_ENTITY,
                    "metadata_url": "https://sp.example/metadata",
                }))
                .unwrap(),
            )
            .unwrap();
            if let Ok(md) = crate::saml::metadata::parse(&mutated, NOW) {
                let mut problems = 0;
                let sp = crate::saml::metadata::complete(
                    &base,
                    &md,
                    &crate::config::KeyPath::root(),
                    &mut |_, _| problems += 1,
                );
                if problems == 0 {
                    prop_assert_eq!(&md.entity_id, SP_ENTITY);
                    prop_assert!(!sp.acs.is_empty());
                    for a in &sp.acs {
                        prop_assert!(crate::config::tenant::check_redirect_uri(&a.url, false).is_ok());
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client certificates (RFC 8705 §2): DER and PEM from the TLS layer or a trusted proxy

mod certificates {
    use super::*;
    use crate::config::tenant::TlsSubject;
    use crate::devcerts::DevCa;
    use crate::validation::client_cert::{pki_matches, self_signed_matches};
    use base64::Engine;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use serde_json::json;

    const DER_TOKENS: &[&str] = &[
        "\u{30}\u{80}",
        "\u{2}\u{0}",
        "\u{6}\u{0}",
        "\u{5}\u{0}",
        "\u{0}",
        "\u{30}",
    ];

    struct Fixture {
        ca: Vec<u8>,
        leaf: Vec<u8>,
        leaf_pem: String,
        now: i64,
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let ca = DevCa::new("Robustness CA").unwrap();
            let leaf = ca
                .client(
                    "acme-mtls",
                    vec![rcgen::SanType::DnsName(
                        "client.acme.test".try_into().unwrap(),
                    )],
                )
                .unwrap();
            let now = x509_parser::parse_x509_certificate(&leaf.der)
                .unwrap()
                .1
                .validity()
                .not_before
                .timestamp()
                + 3600;
            Fixture {
                ca: ca.der(),
                leaf: leaf.der,
                leaf_pem: leaf.cert_pem,
                now,
            }
        })
    }

    const PEM_TOKENS: &[&str] = &[
        "-----",
        "BEGIN",
        "END",
        "CERTIFICATE",
        "\n",
        "\r\n",
        "=",
        " ",
        "+",
        "/",
    ];

    fn subject() -> TlsSubject {
        TlsSubject::SubjectDn(
            crate::validation::dn::DistinguishedName::parse(
                "CN=acme-mtls, O=Portcullis development",
            )
            .unwrap(),
        )
    }

    /// What the code reads of a certificate, read from anything.
    fn read_fields(der: &[u8]) {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(der) {
            let _ = c.subject().to_string();
            let _ = c.issuer().to_string();
            let _ = c.subject_alternative_name();
            let _ = c.validity().not_before.timestamp();
            for rdn in c.subject().iter() {
                for atv in rdn.iter() {
                    let _ = atv.as_str();
                    let _ = atv.attr_type().to_id_string();
                }
            }
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        /// A client certificate with any byte changed no longer authenticates (strict DER, and
        /// the signature covers the rest); nothing panics on the way.
        #[test]
        fn robust_mutated_client_certificates_never_authenticate(
            edits in edits(DER_TOKENS),
            junk in prop::collection::vec(any::<u8>(), 0..400),
            with_junk_intermediate in any::<bool>(),
        ) {
            let f = fixture();
            let anchors = [CertificateDer::from(f.ca.clone())];
            let mutated = apply(f.leaf.clone(), &edits);
            read_fields(&mutated);
            read_fields(&junk);
            let mut chain = vec![CertificateDer::from(mutated.clone())];
            if with_junk_intermediate {
                chain.push(CertificateDer::from(junk.clone()));
            }
            let ok = pki_matches(&anchors, &chain, &subject(), f.now).is_ok();
            prop_assert!(!ok || mutated == f.leaf, "a mutated certificate authenticated");
            let x5c = base64::engine::general_purpose::STANDARD.encode(&f.leaf);
            let jwks = json!({"keys": [{"kty": "EC", "x5c": [x5c]}]});
            let ok = self_signed_matches(&jwks, &CertificateDer::from(mutated.clone()), f.now);
            prop_assert!(!ok || mutated == f.leaf);
            // Junk as a trust anchor or as the whole chain.
            let junk_anchor = [CertificateDer::from(junk.clone())];
            let leaf = [CertificateDer::from(f.leaf.clone())];
            prop_assert!(pki_matches(&junk_anchor, &leaf, &subject(), f.now).is_err());
            let junk = [CertificateDer::from(junk)];
            prop_assert!(pki_matches(&anchors, &junk, &subject(), f.now).is_err());
        }

        /// PEM as a proxy forwards it: parsed into the same certificate, or refused.
        #[test]
        fn robust_mutated_pem_certificates_are_refused_or_unchanged(edits in edits(PEM_TOKENS)) {
            let f = fixture();
            let mutated = apply(f.leaf_pem.clone().into_bytes(), &edits);
            if let Ok(der) = CertificateDer::from_pem_slice(&mutated) {
                read_fields(der.as_ref());
                let anchors = [CertificateDer::from(f.ca.clone())];
                let ok =
                    pki_matches(&anchors, std::slice::from_ref(&der), &subject(), f.now).is_ok();
                prop_assert!(!ok || der.as_ref() == f.leaf.as_slice());
            }
        }

        /// Any registered subject or SAN value, and any key set: compared without a panic.
        #[test]
        fn robust_registered_subjects_and_key_sets_of_any_shape_are_survived(
            value in text(80),
            kind in 0usize..5,
            jwks in json_value(),
        ) {
            let f = fixture();
            // What a tenant file may register: DNs and addresses only once they parse.
            let subject = match kind {
                0 => match crate::validation::dn::DistinguishedName::parse(&value) {
                    Ok(dn) => TlsSubject::SubjectDn(dn),
                    Err(_) => return Ok(()),
                },
                1 => TlsSubject::SanDns(value),
                2 => TlsSubject::SanUri(value),
                3 => match value.parse() {
                    Ok(ip) => TlsSubject::SanIp(ip),
                    Err(_) => return Ok(()),
                },
                _ => TlsSubject::SanEmail(value),
            };
            let chain = [CertificateDer::from(f.leaf.clone())];
            let _ = pki_matches(&[CertificateDer::from(f.ca.clone())], &chain, &subject, f.now);
            let _ = self_signed_matches(&jwks, &chain[0], f.now);
        }

        /// A certificate from the tenant's CA authenticates a tls_client_auth client only when
        /// its subject is the registered one. (The values leave out the DN syntax characters
        /// `,+=\;"<>#`: a CN holding `, O=…` posing as another subject is tested by
        /// `a_certificate_whose_common_name_contains_a_comma_cannot_pose_as_another_subject_dn`
        /// and the DN parser's own tests.)
        #[test]
        fn robust_certificates_of_other_subjects_from_the_same_ca_never_authenticate(
            cn in "[^,+=\\\\;\"<>#\u{0}]{1,40}",
            org in proptest::option::of("[^,+=\\\\;\"<>#\u{0}]{1,40}"),
        ) {
            let f = fixture();
            static CA: OnceLock<DevCa> = OnceLock::new();
            let ca = CA.get_or_init(|| DevCa::new("Robustness CA 2").unwrap());
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, cn.as_str());
            if let Some(o) = &org {
                params.distinguished_name.push(rcgen::DnType::OrganizationName, o.as_str());
            }
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let leaf = ca.issue(params).unwrap();
            let ok = pki_matches(
                &[CertificateDer::from(ca.der())],
                &[CertificateDer::from(leaf.der)],
                &subject(),
                f.now,
            )
            .is_ok();
            let genuine = cn.trim() == "acme-mtls"
                && org.as_deref().map(str::trim) == Some("Portcullis development");
            prop_assert!(!ok || genuine, "CN={:?} O={:?} authenticated as acme-mtls", cn, org);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration: tenant files, the server file, provider files, admin API definitions

mod configuration {
    use super::*;
    use crate::config::tenant::{TenantDefaults, resolve};
    use crate::config::{ConfigError, FileRoots, ServerConfig};
    use crate::federation::definition::{Definition, FileAccess, Plain, ProviderFile};
    use crate::federation::provider::Provider;
    use crate::outbound::Policy;
    use std::path::Path;

    const ACME: &str = include_str!("../tenants/acme.toml");
    const GLOBEX: &str = include_str!("../tenants/globex.toml");
    const SERVER: &str = include_str!("../config/portcullis.toml");
    const PROVIDER: &str = include_str!("../providers/globex.toml");

    /// Files a tenant may read live in an empty directory: nothing outside the test is read.
    fn roots() -> &'static (tempfile::TempDir, FileRoots) {
        static R: OnceLock<(tempfile::TempDir, FileRoots)> = OnceLock::new();
        R.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let roots = FileRoots::under(dir.path());
            (dir, roots)
        })
    }

    /// Line-level edits: the mistakes operators make (a line lost, doubled, moved, or a value
    /// replaced by another type).
    #[derive(Debug, Clone)]
    enum LineEdit {
        Remove(Index),
        Duplicate(Index),
        Swap(Index, Index),
        SetValue(Index, String),
    }

    fn line_edits() -> impl Strategy<Value = Vec<LineEdit>> {
        let value = prop_oneof![
            prop::sample::select(
                &[
                    "\"\"",
                    "0",
                    "-1",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "1.5",
                    "nan",
                    "true",
                    "[]",
                    "[\"\"]",
                    "{}",
                    "[1, \"a\"]",
                    "\"x\"",
                    "\"https://\"",
                    "\"http://10.0.0.1\"",
                    "\"../../etc/passwd\"",
                    "\"/etc/passwd\"",
                    "\"${public_base_url}\"",
                    "1979-05-27",
                    "\"RS256\"",
                    "\"none\"",
                    "\"HS256\"",
                    "[\"none\"]",
                    "\"sha256:AAAA\"",
                ][..]
            )
            .prop_map(str::to_string),
            text(30).prop_map(|s| format!("{s:?}")),
        ];
        let e = prop_oneof![
            any::<Index>().prop_map(LineEdit::Remove),
            any::<Index>().prop_map(LineEdit::Duplicate),
            (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
            (any::<Index>(), value).prop_map(|(a, v)| LineEdit::SetValue(a, v)),
        ];
        prop::collection::vec(e, 1..4)
    }

    fn apply_lines(text: &str, edits: &[LineEdit]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for e in edits {
            if lines.is_empty() {
                break;
            }
            let n = lines.len();
            match e {
                LineEdit::Remove(i) => {
                    lines.remove(i.index(n));
                }
                LineEdit::Duplicate(i) => {
                    let l = lines[i.index(n)].clone();
                    lines.insert(i.index(n), l);
                }
                LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
                LineEdit::SetValue(i, v) => {
                    // The value of the i-th `key = value` line.
                    let assignments: Vec<usize> =
                        (0..n).filter(|&j| lines[j].contains(" = ")).collect();
                    if !assignments.is_empty() {
                        let j = assignments[i.index(assignments.len())];
                        let key = lines[j].split(" = ").next().unwrap_or_default().to_string();
                        lines[j] = format!("{key} = {v}");
                    }
                }
            }
        }
        lines.join("\n")
    }

    /// Text mutated by lines or by bytes.
    fn mutated(
        base: &'static str,
        tokens: &'static [&'static str],
    ) -> impl Strategy<Value = String> {
        prop_oneof![
            line_edits().prop_map(move |e| apply_lines(base, &e)),
            edits(tokens).prop_map(move |e| String::from_utf8_lossy(&apply(
                base.as_bytes().to_vec(),
                &e
            ))
            .into_owned()),
        ]
    }

    /// A configuration error says where: the file, and a line or a key.
    fn located(errors: &[ConfigError], path: &Path) -> Result<(), TestCaseError> {
        prop_assert!(!errors.is_empty());
        for e in errors {
            prop_assert_eq!(&e.file, path);
            prop_assert!(!e.message.is_empty());
            prop_assert!(e.line.is_some() || !e.key.is_empty(), "not located: {}", e);
        }
        Ok(())
    }

    /// A definition the admin API accepts, as JSON: OIDC with a key, or SAML with metadata.
    fn definitions() -> &'static Vec<serde_json::Value> {
        use crate::federation::saml::sp::test_idp::{TestIdp, self_signed_key_and_cert};
        static D: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
        D.get_or_init(|| {
            let idp = TestIdp::generate_ec("https://idp.example/saml", "https://idp.example/sso")
                .unwrap();
            let (key, cert) = self_signed_key_and_cert("sp", true).unwrap();
            let pkcs8 = crate::keys::signer::generate_pkcs8(crate::keys::Alg::ES256, 2048).unwrap();
            let private_key = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pkcs8)
            );
            vec![
                serde_json::json!({
                    "id": "corp", "kind": "oidc", "display_name": "Corp",
                    "domains": ["corp.example"],
                    "oidc": {"issuer": "https://idp.example", "client_id": "c",
                             "client_secret": "s3cret", "scopes": ["openid", "email"],
                             "allowed_algorithms": ["ES256"]},
                    "claims": {"email": "mail"}, "provisioning": {"jit": true}
                }),
                serde_json::json!({
                    "id": "corp-jwt", "kind": "oidc",
                    "oidc": {"issuer": "https://idp.example", "client_id": "c",
                             "token_endpoint_auth_method": "private_key_jwt",
                             "private_key": private_key, "private_key_alg": "ES256"}
                }),
                serde_json::json!({
                    "id": "corp-saml", "kind": "saml",
                    "saml": {"metadata_xml": idp.metadata_xml(), "sp_signing_key": key,
                             "sp_certificate": cert, "binding": "post",
                             "max_clock_skew_seconds": 60}
                }),
            ]
        })
    }

    /// JSON edits of a definition: a member set to any value, removed, or added.
    fn json_edits() -> impl Strategy<Value = Vec<(Vec<String>, Option<serde_json::Value>)>> {
        let path = prop::collection::vec(
            prop_oneof![
                prop::sample::select(
                    &[
                        "id",
                        "kind",
                        "display_name",
                        "enabled",
                        "listed",
                        "domains",
                        "oidc",
                        "saml",
                        "claims",
                        "provisioning",
                        "issuer",
                        "discovery_url",
                        "client_id",
                        "client_secret",
                        "scopes",
                        "token_endpoint_auth_method",
                        "private_key",
                        "private_key_alg",
                        "allowed_algorithms",
                        "metadata_xml",
                        "metadata_url",
                        "sp_signing_key",
                        "sp_certificate",
                        "sp_encryption_key",
                        "sp_encryption_certificate",
                        "binding",
                        "max_clock_skew_seconds",
                        "jit",
                        "client_secret_file",
                        "link_by_verified_email",
                    ][..]
                )
                .prop_map(str::to_string),
                text(6),
            ],
            1..3,
        );
        prop::collection::vec((path, proptest::option::of(json_value())), 1..4)
    }

    fn edit_json(
        mut v: serde_json::Value,
        edits: &[(Vec<String>, Option<serde_json::Value>)],
    ) -> serde_json::Value {
        for (path, value) in edits {
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            let mut at = &mut v;
            for p in parents {
                if !at.get(p).is_some_and(serde_json::Value::is_object) {
                    break;
                }
                at = at.get_mut(p).unwrap();
            }
            if let Some(obj) = at.as_object_mut() {
                match value {
                    Some(value) => obj.insert(last.clone(), value.clone()),
                    None => obj.remove(last),
                };
            }
        }
        v
    }

    /// Found by `robust_mutated_server_files_and_environments_load_or_report_located_errors`: a
    /// value of the wrong type (or an override out of range) was reported with neither line nor
    /// key, since converting the parsed table loses the spans.
    #[test]
    fn robust_a_server_value_of_the_wrong_type_is_reported_where_it_is() {
        let path = Path::new("config/portcullis.toml");
        let text = SERVER.replace("client_cert_header = \"\"", "client_cert_header = 0");
        let errors = ServerConfig::from_text(path, &text, &|_| None, ".".into()).unwrap_err();
        let line = SERVER
            .lines()
            .position(|l| l.starts_with("client_cert_header ="))
            .unwrap();
        assert_eq!(errors[0].line, Some(line + 1), "{errors:?}");
        let env = |k: &str| (k == "PORTCULLIS_SERVER_MAX_BODY_BYTES").then(|| "-1".to_string());
        let errors = ServerConfig::from_text(path, SERVER, &env, ".".into()).unwrap_err();
        assert_eq!(errors[0].key, "server.max_body_bytes", "{errors:?}");
        assert!(
            errors[0]
                .message
                .starts_with("PORTCULLIS_SERVER_MAX_BODY_BYTES")
        );
    }

    proptest! {
        #![proptest_config(config(256))]

        /// `tenants/*.toml` damaged by lines or bytes: resolved, or refused with located errors.
        #[test]
        fn robust_mutated_tenant_files_resolve_or_report_located_errors(
            text in prop_oneof![mutated(ACME, TOML_TOKENS), mutated(GLOBEX, TOML_TOKENS)],
        ) {
            let stem = if text.contains("slug = \"globex\"") { "globex" } else { "acme" };
            let path = std::path::PathBuf::from(format!("tenants/{stem}.toml"));
            let defaults = TenantDefaults {
                public_base_url: "https://localhost:8443",
                mtls_base_url: "https://localhost:8444",
                files: &roots().1,
            };
            if let Err(errors) = resolve(&path, &text, &defaults) {
                located(&errors, &path)?;
            }
        }

        /// `config/portcullis.toml` damaged, with any PORTCULLIS_* overrides: loaded, or refused
        /// with located errors.
        #[test]
        fn robust_mutated_server_files_and_environments_load_or_report_located_errors(
            text in mutated(SERVER, TOML_TOKENS),
            env in prop::collection::btree_map(
                prop::sample::select(&[
                    "PORTCULLIS_SERVER_LISTEN", "PORTCULLIS_SERVER_MAX_BODY_BYTES",
                    "PORTCULLIS_SERVER_TRUSTED_PROXIES", "PORTCULLIS_DATABASE_URL",
                    "PORTCULLIS_KEYS_MASTER_KEY", "PORTCULLIS_TLS_DEV_CERTS",
                    "PORTCULLIS_OUTBOUND_ALLOW_NETWORKS", "PORTCULLIS_LOG_LEVEL",
                    "PORTCULLIS_SERVER_REQUEST_TIMEOUT_SECONDS", "PORTCULLIS_UNKNOWN_KEY",
                ][..]),
                prop_oneof![
                    text(30),
                    prop::sample::select(&["-1", "10.0.0.0/8,x", "99999999999999999999"][..])
                        .prop_map(str::to_string),
                ],
                0..3,
            ),
        ) {
            let path = Path::new("config/portcullis.toml");
            let env = move |k: &str| env.get(k).cloned();
            let base_dir = roots().0.path().to_path_buf();
            if let Err(errors) = ServerConfig::from_text(path, &text, &env, base_dir) {
                located(&errors, path)?;
            }
        }

        /// `providers/*.toml` damaged: loaded into a provider, or refused with a message that
        /// names no OS error.
        #[test]
        fn robust_mutated_provider_files_load_or_are_refused(
            text in mutated(PROVIDER, TOML_TOKENS),
        ) {
            let Ok(file) = toml::from_str::<ProviderFile>(&text) else { return Ok(()) };
            let access = FileAccess {
                // Some paths read as a (useless) key, the others fail.
                read: &|p| if p.len() % 2 == 0 {
                    Ok("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into())
                } else {
                    Err("cannot read".into())
                },
                env: &|_| Some("value".into()),
                allow_inline_secret: true,
            };
            match file.load(&access) {
                Ok(mut def) => {
                    if def.id.is_empty() {
                        def.id = "globex".into();
                    }
                    if let Err(e) = Provider::new(def, None, &Policy::default()) {
                        prop_assert!(!e.is_empty());
                    }
                }
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }

        /// What the admin API receives: any JSON near a valid definition, or damaged bytes. It
        /// becomes a provider or is refused with a message free of OS errors and server paths.
        #[test]
        fn robust_admin_api_definitions_become_providers_or_are_refused(
            which in 0usize..3,
            edits in json_edits(),
            bytes in proptest::option::of(edits(JSON_TOKENS)),
        ) {
            let v = edit_json(definitions()[which].clone(), &edits);
            let body = match &bytes {
                Some(b) => apply(serde_json::to_vec(&v).unwrap(), b),
                None => serde_json::to_vec(&v).unwrap(),
            };
            let Ok(def) = serde_json::from_slice::<Definition<Plain>>(&body) else { return Ok(()) };
            if let Err(e) = Provider::new(def, Some("acme"), &Policy::default()) {
                prop_assert!(!e.is_empty());
                prop_assert!(!e.contains("os error") && !e.contains("No such file"), "{}", e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What upstream providers send: id token claims, claims to map, cache headers

mod upstream {
    use super::*;
    use crate::federation::definition::{Definition, Plain};
    use crate::federation::oidc::check_id_token_claims;
    use crate::federation::{FederationError, map_claims};
    use serde_json::{Value, json};

    const ISSUER: &str = "https://idp.example";
    const CLIENT: &str = "acme-broker";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const NOW: i64 = 1_800_000_000;

    /// A claim value: mostly the right one, else anything.
    fn claim(right: Value) -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            6 => Just(Some(right)),
            1 => Just(None),
            2 => json_value().prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(config(512))]

        /// OIDC Core §3.1.3.7: verified claims pass only with this issuer, this client as
        /// audience (and authorized party), a live `exp`, no `iat` in the future, and this nonce.
        #[test]
        fn robust_upstream_id_token_claims_pass_only_when_every_rule_holds(
            iss in claim(json!(ISSUER)),
            aud in prop_oneof![
                4 => claim(json!(CLIENT)),
                1 => Just(Some(json!([CLIENT, "other"]))),
                1 => Just(Some(json!(["other"]))),
            ],
            azp in prop_oneof![4 => Just(None), 1 => claim(json!(CLIENT))],
            exp in claim(json!(NOW + 60)),
            iat in claim(json!(NOW)),
            nonce in claim(json!(NONCE)),
            extra in prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..3),
        ) {
            let mut claims: serde_json::Map<String, Value> = extra.into_iter().collect();
            let parts = [
                ("iss", &iss), ("aud", &aud), ("azp", &azp),
                ("exp", &exp), ("iat", &iat), ("nonce", &nonce),
            ];
            for (k, v) in parts {
                match v {
                    Some(v) => claims.insert(k.into(), v.clone()),
                    None => claims.remove(k),
                };
            }
            match check_id_token_claims(&claims, ISSUER, CLIENT, NONCE, NOW) {
                Ok(()) => {
                    prop_assert_eq!(claims.get("iss"), Some(&json!(ISSUER)));
                    prop_assert_eq!(claims.get("nonce"), Some(&json!(NONCE)));
                    let auds = match claims.get("aud") {
                        Some(Value::String(a)) => vec![a.clone()],
                        Some(Value::Array(list)) => {
                            list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect()
                        }
                        _ => vec![],
                    };
                    prop_assert!(auds.iter().any(|a| a == CLIENT));
                    // A non-string azp counts as absent (Core §2: azp is a string).
                    match claims.get("azp").and_then(Value::as_str) {
                        Some(azp) => prop_assert_eq!(azp, CLIENT),
                        None => prop_assert!(auds.len() == 1),
                    }
                    let exp = claims.get("exp").and_then(Value::as_i64);
                    prop_assert!(exp.is_some_and(|e| e > NOW - 600), "exp {:?}", exp);
                    let iat = claims.get("iat").and_then(Value::as_i64);
                    prop_assert!(iat.is_some_and(|i| i <= NOW + 600), "iat {:?}", iat);
                }
                Err(e) => prop_assert!(matches!(e, FederationError::Rejected(_))),
            }
        }

        /// Upstream claims become local ones only through the mapping, never as `sub`, `iss`,
        /// `amr` or another claim the server sets itself.
        #[test]
        fn robust_upstream_claims_never_map_onto_reserved_local_names(
            upstream in prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(&[
                        "sub", "iss", "aud", "amr", "acr", "idp", "sid", "email", "name", "groups",
                    ][..])
                    .prop_map(str::to_string),
                    text(8),
                ],
                json_value(),
                0..8,
            ),
            mapping in prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(&["sub", "iss", "exp", "amr", "idp", "email", "role"][..])
                        .prop_map(str::to_string),
                    text(8),
                ],
                prop_oneof![
                    prop::sample::select(&["sub", "email", "upn", "groups"][..])
                        .prop_map(str::to_string),
                    text(8),
                ],
                0..4,
            ),
        ) {
            let mut spec: Definition<Plain> = serde_json::from_value(json!({
                "id": "corp", "kind": "oidc",
                "oidc": {"issuer": ISSUER, "client_id": CLIENT}
            }))
            .unwrap();
            spec.claims = mapping;
            let upstream: serde_json::Map<String, Value> = upstream.into_iter().collect();
            let local = map_claims(&spec, &upstream);
            for reserved in ["sub", "iss", "aud", "exp", "iat", "nbf", "sid", "idp", "amr", "acr"] {
                prop_assert!(!local.contains_key(reserved), "{} was mapped", reserved);
            }
            for v in local.values() {
                prop_assert!(upstream.values().any(|u| u == v));
            }
        }

        /// RFC 9111 §5.2.2.1: whatever `Cache-Control` an upstream sends, a document is kept
        /// between one minute and one day.
        #[test]
        fn robust_upstream_cache_control_keeps_documents_for_a_bounded_time(
            raw in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..80),
                concat!(
                    "(no-store|no-cache|public|max-age=-?[0-9]{0,25}|s-maxage=1)",
                    "(, ?(max-age=-?[0-9]{0,25}|private))*",
                )
                .prop_map(String::into_bytes),
            ],
        ) {
            let mut h = reqwest::header::HeaderMap::new();
            if let Ok(v) = reqwest::header::HeaderValue::from_bytes(&raw) {
                h.insert(reqwest::header::CACHE_CONTROL, v);
            }
            let t = crate::outbound::documents::freshness(&h);
            prop_assert!((60..=86_400).contains(&t), "{}", t);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers: cookies

mod headers {
    use super::*;
    use crate::sessions::read_cookie;
    use axum::http::{HeaderMap, HeaderValue, header};

    proptest! {
        #![proptest_config(config(512))]

        /// RFC 6265 §5.4: a cookie is found by its exact name in any Cookie header, whatever
        /// surrounds it, and arbitrary bytes are survived.
        #[test]
        fn robust_cookies_are_read_by_exact_name_from_any_header(
            before in "[ -~&&[^;]]{0,40}",
            after in "[ -~]{0,40}",
            value in "[!#-+\\--:<-\\[\\]-~]{1,40}",
            raw in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&raw) {
                h.append(header::COOKIE, v);
                let _ = read_cookie(&h, "portcullis.session");
                h.clear();
            }
            let line = format!("{before}; portcullis.session={value}; {after}");
            h.append(header::COOKIE, HeaderValue::from_str(&line).unwrap());
            let got = read_cookie(&h, "portcullis.session");
            if !before.split(';').any(|p| p.trim().starts_with("portcullis.session=")) {
                prop_assert_eq!(got, Some(value.trim_matches('"')));
            }
        }
    }
}
