use crate::support::*;

#[tokio::test]
async fn discovery_describes_exactly_what_the_tenant_serves() {
    let s = TestServer::start().await;
    let (status, d) = s.get_json("/acme/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let issuer = s.url("/acme");
    assert_eq!(d["issuer"], issuer.as_str());
    assert_eq!(d["token_endpoint"], format!("{issuer}/connect/token"));
    assert_eq!(d["jwks_uri"], format!("{issuer}/.well-known/jwks"));
    assert_eq!(
        d["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:openid:params:grant-type:ciba"
        ])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "none"
        ])
    );
    assert_eq!(d["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        d["authorization_endpoint"],
        format!("{issuer}/connect/authorize")
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );
    assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(
        d["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{}/acme/connect/token", s.mtls_base)
    );
    let scopes: Vec<&str> = d["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(scopes.contains(&"api.read") && scopes.contains(&"openid"));
    assert_eq!(
        d["introspection_endpoint"],
        format!("{issuer}/connect/introspect")
    );
    assert_eq!(
        d["revocation_endpoint"],
        format!("{issuer}/connect/revocation")
    );
    // RFC 8628 §4
    assert_eq!(
        d["device_authorization_endpoint"],
        format!("{issuer}/connect/deviceauthorization")
    );
    // CIBA Core §4
    assert_eq!(
        d["backchannel_authentication_endpoint"],
        format!("{issuer}/connect/ciba")
    );
    assert_eq!(
        d["mtls_endpoint_aliases"]["backchannel_authentication_endpoint"],
        format!("{}/acme/connect/ciba", s.mtls_base)
    );
    assert_eq!(
        d["mtls_endpoint_aliases"]["device_authorization_endpoint"],
        format!("{}/acme/connect/deviceauthorization", s.mtls_base)
    );
    // Only what exists is advertised: no push mode.
    assert_eq!(d["backchannel_user_code_parameter_supported"], true);
    assert_eq!(
        d["backchannel_token_delivery_modes_supported"],
        serde_json::json!(["poll", "ping"])
    );
    s.stop().await;
}

#[tokio::test]
async fn rfc_8414_well_known_location_serves_the_same_document() {
    let s = TestServer::start().await;
    let (_, a) = s.get_json("/acme/.well-known/openid-configuration").await;
    let (status, b) = s
        .get_json("/.well-known/oauth-authorization-server/acme")
        .await;
    assert_eq!(status, 200);
    assert_eq!(a, b);
    s.stop().await;
}

#[tokio::test]
async fn each_tenant_has_its_own_issuer_and_keys() {
    let s = TestServer::start().await;
    let (_, acme) = s.get_json("/acme/.well-known/jwks").await;
    let (_, globex) = s.get_json("/globex/.well-known/jwks").await;
    let kids = |j: &serde_json::Value| -> Vec<String> {
        j["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(kids(&acme).iter().all(|k| !kids(&globex).contains(k)));
    let (_, d) = s.get_json("/globex/.well-known/openid-configuration").await;
    assert_eq!(d["issuer"], s.url("/globex").as_str());
    s.stop().await;
}

#[tokio::test]
async fn jwks_publishes_public_keys_with_kid_alg_and_use_only() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(s.url("/acme/.well-known/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/jwk-set+json");
    let j: serde_json::Value = r.json().await.unwrap();
    let keys = j["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert!(
        algs.contains(&"RS256") && algs.contains(&"ES256"),
        "{algs:?}"
    );
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].is_string());
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} published"
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn unknown_tenants_and_paths_are_404_json() {
    let s = TestServer::start().await;
    let (status, body) = s.get_json("/nobody/.well-known/openid-configuration").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, body) = s.get_json("/acme/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    s.stop().await;
}
