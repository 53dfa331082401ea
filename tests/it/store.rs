//! The store suite: runs on SQLite always and on PostgreSQL when PORTCULLIS_TEST_POSTGRES_URL is set.

use crate::support::*;
use portcullis::config::runtime::Database;
use portcullis::config::tenant::{TenantDefaults, resolve};
use portcullis::keys::{Alg, KeyPolicy, MasterKey, ring};
use portcullis::stores::{
    BucketLimit, ClientStore, GrantKind, GrantRecord, GrantStore, KeyStore, Slot, Store,
    TenantStore,
};
use std::path::Path;

/// A store on each engine, with what it takes to open a second, independent connection pool to
/// the same database (a second node).
struct Engine {
    store: Store,
    url: String,
    schema: String,
    _dir: tempfile::TempDir, // keeps the SQLite file for the whole test
}

impl Engine {
    async fn second_node(&self) -> Store {
        Store::connect(&Database::at(&self.url, &self.schema))
            .await
            .unwrap()
    }
}

async fn engines() -> Vec<Engine> {
    let mut v = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&Database::at(&url, "")).await.unwrap();
    v.push(Engine {
        store,
        url,
        schema: String::new(),
        _dir: dir,
    });
    if let Some(pg) = postgres_url() {
        let schema = unique_schema();
        let store = Store::connect(&Database::at(&pg, &schema)).await.unwrap();
        v.push(Engine {
            store,
            url: pg,
            schema,
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    v
}

fn demo(
    name: &str,
    text: &str,
) -> (
    portcullis::config::TenantSpec,
    Vec<portcullis::config::ClientSpec>,
) {
    let files = portcullis::config::FileRoots::under(Path::new("."));
    let d = TenantDefaults {
        public_base_url: "https://localhost:8443",
        mtls_base_url: "https://localhost:8444",
        files: &files,
    };
    resolve(Path::new(&format!("tenants/{name}.toml")), text, &d).unwrap()
}

#[tokio::test]
async fn upserting_a_tenant_changes_its_version_only_when_something_changed() {
    for engine in engines().await {
        let store = &engine.store;
        let (spec, clients) = demo("acme", ACME);
        assert!(
            store
                .upsert_tenant(&spec, &clients, "file", 1)
                .await
                .unwrap()
        );
        assert!(
            !store
                .upsert_tenant(&spec, &clients, "file", 2)
                .await
                .unwrap(),
            "{}: no change",
            store.engine()
        );
        let v1 = store.find_tenant("acme").await.unwrap().unwrap().version;
        let mut changed = clients.clone();
        changed[0].scopes.pop();
        assert!(
            store
                .upsert_tenant(&spec, &changed, "file", 3)
                .await
                .unwrap()
        );
        let v2 = store.find_tenant("acme").await.unwrap().unwrap().version;
        assert!(v2 > v1);
        assert!(
            store.upsert_tenant(&spec, &[], "file", 4).await.unwrap(),
            "removing a client is a change"
        );
        assert!(
            store
                .find_client("acme", "acme-m2m")
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn clients_are_scoped_to_their_tenant() {
    for engine in engines().await {
        let store = &engine.store;
        let (acme, acme_clients) = demo("acme", ACME);
        let (globex, globex_clients) = demo("globex", GLOBEX);
        store
            .upsert_tenant(&acme, &acme_clients, "file", 1)
            .await
            .unwrap();
        store
            .upsert_tenant(&globex, &globex_clients, "file", 1)
            .await
            .unwrap();
        assert!(
            store
                .find_client("acme", "acme-m2m")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .find_client("acme", "globex-m2m")
                .await
                .unwrap()
                .is_none(),
            "{}",
            store.engine()
        );
        assert!(
            store
                .find_client("globex", "acme-m2m")
                .await
                .unwrap()
                .is_none()
        );
        let versions = store.tenant_versions().await.unwrap();
        assert_eq!(
            versions.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
            ["acme", "globex"]
        );
    }
}

#[tokio::test]
async fn grants_are_found_by_tenant_and_hash_and_purged_when_expired() {
    for engine in engines().await {
        let store = &engine.store;
        let g = GrantRecord {
            handle_hash: "h1".into(),
            client_id: "c".into(),
            subject: None,
            data: "{}".into(),
            created_at: 10,
            expires_at: 20,
            consumed_at: None,
            ..GrantRecord::of(GrantKind::ReferenceToken)
        };
        store.insert_grant("acme", &g).await.unwrap();
        assert!(
            store.insert_grant("acme", &g).await.is_err(),
            "a handle is unique"
        );
        assert_eq!(
            store
                .find_grant("acme", "h1")
                .await
                .unwrap()
                .unwrap()
                .client_id,
            "c"
        );
        assert!(store.find_grant("globex", "h1").await.unwrap().is_none());
        assert_eq!(store.expired_rows(15).await.unwrap().total(), 0);
        assert_eq!(store.sweep(15, 10).await.unwrap().unwrap().total(), 0);
        assert_eq!(store.expired_rows(21).await.unwrap().total(), 1);
        assert_eq!(store.sweep(21, 10).await.unwrap().unwrap().total(), 1);
        assert!(store.find_grant("acme", "h1").await.unwrap().is_none());
    }
}

const POLICY: KeyPolicy = KeyPolicy {
    rotation_interval: 1000,
    propagation: 100,
    retention: 100,
    rsa_bits: 2048,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_create_keys_agree_on_one_key_ring() {
    for engine in engines().await {
        // Two nodes: two separate connection pools to the same database.
        let store = engine.store.clone();
        let other = engine.second_node().await;
        let master = std::sync::Arc::new(MasterKey::from_bytes(&[9u8; 32]).unwrap());
        let algs = [Alg::ES256, Alg::EdDSA];
        for round in 0..5 {
            let tenant = format!("race{round}");
            let (a, b) = tokio::join!(
                ring::sync_tenant(
                    ring::KeyEnv {
                        store: &store,
                        master: &master,
                        policy: &POLICY
                    },
                    &tenant,
                    &algs,
                    1000,
                    true,
                ),
                ring::sync_tenant(
                    ring::KeyEnv {
                        store: &other,
                        master: &master,
                        policy: &POLICY
                    },
                    &tenant,
                    &algs,
                    1000,
                    true,
                ),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            // Whichever node lost the race may not have seen the winner's key yet; a second sync does.
            let a = if a.kids.len() < 2 {
                ring::sync_tenant(
                    ring::KeyEnv {
                        store: &store,
                        master: &master,
                        policy: &POLICY,
                    },
                    &tenant,
                    &algs,
                    1000,
                    true,
                )
                .await
                .unwrap()
            } else {
                a
            };
            let b = if b.kids.len() < 2 {
                ring::sync_tenant(
                    ring::KeyEnv {
                        store: &other,
                        master: &master,
                        policy: &POLICY,
                    },
                    &tenant,
                    &algs,
                    1000,
                    true,
                )
                .await
                .unwrap()
            } else {
                b
            };
            let records = store.list_keys(&tenant).await.unwrap();
            assert_eq!(
                records.len(),
                2,
                "{}: exactly one key per algorithm, got {records:?}",
                store.engine()
            );
            assert_eq!(a.kids, b.kids, "both nodes publish the same JWKS");
            assert_eq!(
                a.signer(Alg::ES256).unwrap().kid,
                b.signer(Alg::ES256).unwrap().kid
            );
        }
    }
}

#[tokio::test]
async fn a_key_sealed_for_one_tenant_does_not_open_as_another_tenants_key() {
    for engine in engines().await {
        let store = &engine.store;
        let master = MasterKey::from_bytes(&[1u8; 32]).unwrap();
        ring::sync_tenant(
            ring::KeyEnv {
                store,
                master: &master,
                policy: &POLICY,
            },
            "acme",
            &[Alg::ES256],
            1000,
            true,
        )
        .await
        .unwrap();
        let mut moved = store.list_keys("acme").await.unwrap().remove(0);
        moved.tenant = "globex".into();
        assert!(store.insert_key(&moved).await.unwrap());
        assert!(
            ring::sync_tenant(
                ring::KeyEnv {
                    store,
                    master: &master,
                    policy: &POLICY
                },
                "globex",
                &[Alg::ES256],
                1000,
                true,
            )
            .await
            .is_err()
        );
        let wrong_master = MasterKey::from_bytes(&[2u8; 32]).unwrap();
        assert!(
            ring::sync_tenant(
                ring::KeyEnv {
                    store,
                    master: &wrong_master,
                    policy: &POLICY
                },
                "acme",
                &[Alg::ES256],
                1000,
                true,
            )
            .await
            .is_err()
        );
    }
}

#[tokio::test]
async fn the_whole_server_runs_on_postgresql_too() {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    let s = TestServer::start_with(Options {
        postgres: true,
        ..Default::default()
    })
    .await;
    let (_, ready) = s.get_json("/health/ready").await;
    assert_eq!(ready["database"], "postgres");
    let r = s
        .token(
            "acme",
            "acme-m2m",
            "acme-m2m-secret",
            &[("grant_type", "client_credentials"), ("scope", "api.read")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let (_, jwks) = s.get_json("/acme/.well-known/jwks").await;
    verify_jwt(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &s.url("/acme"),
        "https://api.acme.test",
    );
    s.stop().await;
}

#[tokio::test]
async fn a_change_made_on_one_node_reaches_the_other_at_once_through_postgresql() {
    a_change_made_on_one_node_reaches_the_other("").await;
}

#[tokio::test]
async fn with_notify_switched_off_a_change_reaches_the_other_node_through_the_change_table() {
    a_change_made_on_one_node_reaches_the_other(
        "change_notices = \"poll\"\nchange_poll_interval_ms = 200",
    )
    .await;
}

/// Two nodes on one schema, with `[database]` keys `database`: a secret replaced on node A is
/// refused on node B within 5 s (the periodic sync is an hour away in tests).
async fn a_change_made_on_one_node_reaches_the_other(database: &str) {
    if postgres_url().is_none() {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    }
    use base64::Engine;
    // Two nodes of one deployment: same database schema, same master key, same files.
    let schema = unique_schema();
    let keys = format!(
        "master_key = \"{}\"",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let node = || Options {
        postgres: true,
        postgres_schema: Some(schema.clone()),
        keys: keys.clone(),
        database_extra: database.to_string(),
        ..Default::default()
    };
    let a = TestServer::start_with(node()).await;
    let b = TestServer::start_with(node()).await;
    assert!(b.state().hears_changes(), "node B hears changes");
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(
        b.token("acme", "acme-m2m", "acme-m2m-secret", &cc)
            .await
            .status(),
        200
    );
    let (_, jwks_a) = a.get_json("/acme/.well-known/jwks").await;
    let (_, jwks_b) = b.get_json("/acme/.well-known/jwks").await;
    assert_eq!(jwks_a, jwks_b, "both nodes publish one key ring");

    // Node A applies a changed tenant file that replaces the client's secret. The periodic sync
    // is an hour away in tests, so only the notification can tell node B in time.
    let new_hash = portcullis::secrets::SecretHash::of("rotated-secret").to_stored();
    write_tenant(
        a.dir.path(),
        "acme",
        &ACME.replace(
            "sha256:Zsxv5CP7oTQ4690W5g1DqnGwn5toTEeS1o_uDrQnPD4",
            &new_hash,
        ),
    );
    portcullis::registry::sync::reload_files(a.state())
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if b.token("acme", "acme-m2m", "acme-m2m-secret", &cc)
            .await
            .status()
            == 401
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "node B still accepts the replaced secret");
    assert_eq!(
        b.token("acme", "acme-m2m", "rotated-secret", &cc)
            .await
            .status(),
        200
    );
    // Polling nodes announce through the change table, and only there; notifying nodes never
    // write it.
    let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM \"{schema}\".changes WHERE payload = 'acme'"
    )))
    .fetch_one(
        &sqlx::PgPool::connect(&postgres_url().unwrap())
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(rows > 0, database.contains("poll"), "{rows} change rows");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_single_use_grant_is_consumed_once_and_its_family_revoked_together() {
    use portcullis::stores::Consumed;
    for engine in engines().await {
        let store = &engine.store;
        let grant = |hash: &str, kind: GrantKind| GrantRecord {
            handle_hash: hash.into(),
            client_id: "c".into(),
            data: "{}".into(),
            created_at: 10,
            expires_at: 100,
            family: Some("f1".into()),
            ..GrantRecord::of(kind)
        };
        store
            .insert_grant("acme", &grant("code", GrantKind::Interaction))
            .await
            .unwrap();
        let tokens = [
            grant("rt", GrantKind::RefreshToken),
            grant("at", GrantKind::AccessToken),
        ];
        assert!(matches!(
            store
                .consume_grant("acme", "code", 20, &tokens)
                .await
                .unwrap(),
            Consumed::Fresh(_)
        ));
        assert!(
            store.find_grant("acme", "rt").await.unwrap().is_some(),
            "{}: written with the consumption",
            store.engine()
        );
        assert!(matches!(
            store
                .consume_grant("acme", "code", 21, &[grant("rt2", GrantKind::RefreshToken)])
                .await
                .unwrap(),
            Consumed::Replayed(_)
        ));
        assert!(
            store.find_grant("acme", "rt2").await.unwrap().is_none(),
            "nothing is written on a replay"
        );
        assert!(matches!(
            store
                .consume_grant("globex", "code", 21, &[])
                .await
                .unwrap(),
            Consumed::NotFound
        ));
        assert_eq!(store.revoke_family("acme", "f1", 22).await.unwrap(), 3);
        assert!(
            store
                .find_grant("acme", "rt")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert!(matches!(
            store.consume_grant("acme", "rt", 23, &[]).await.unwrap(),
            Consumed::Dead
        ));
        store
            .insert_grant("acme", &grant("old", GrantKind::RefreshToken))
            .await
            .unwrap();
        assert!(
            matches!(
                store.consume_grant("acme", "old", 100, &[]).await.unwrap(),
                Consumed::Dead
            ),
            "expired"
        );
    }
}

#[tokio::test]
async fn sessions_consents_and_login_failures_work_on_both_engines() {
    use portcullis::stores::{ConsentStore, LoginThrottleStore, SessionRecord, SessionStore};
    for engine in engines().await {
        let store = &engine.store;
        let s = SessionRecord {
            sid: "sid1".into(),
            handle_hash: "hh".into(),
            subject: "alice".into(),
            auth_time: 10,
            amr: "pwd".into(),
            acr: "a".into(),
            created_at: 10,
            last_seen_at: 10,
            expires_at: 1000,
            clients: String::new(),
            idp: "local".into(),
            upstream_sid: None,
            upstream: None,
        };
        store.insert_session("acme", &s).await.unwrap();
        assert!(
            store
                .find_session_by_handle("globex", "hh")
                .await
                .unwrap()
                .is_none()
        );
        store
            .touch_session("acme", "sid1", 20, Some("web"))
            .await
            .unwrap();
        store
            .touch_session("acme", "sid1", 21, Some("web"))
            .await
            .unwrap();
        store
            .touch_session("acme", "sid1", 22, Some("spa"))
            .await
            .unwrap();
        let found = store
            .find_session_by_handle("acme", "hh")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            found.client_ids().collect::<Vec<_>>(),
            ["web", "spa"],
            "{}",
            store.engine()
        );
        assert_eq!(found.last_seen_at, 22);
        assert_eq!(store.list_sessions("acme", "alice").await.unwrap().len(), 1);
        assert!(
            store
                .delete_session("acme", "sid1")
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.find_session("acme", "sid1").await.unwrap().is_none());

        store
            .upsert_consent(
                "acme",
                "alice",
                "web",
                &["openid".into(), "api.read".into()],
                10,
                Some(50),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .find_consent("acme", "alice", "web", 20)
                .await
                .unwrap()
                .unwrap(),
            ["openid", "api.read"]
        );
        assert!(
            store
                .find_consent("acme", "alice", "web", 50)
                .await
                .unwrap()
                .is_none(),
            "expired consent"
        );
        assert!(
            store
                .find_consent("globex", "alice", "web", 20)
                .await
                .unwrap()
                .is_none()
        );

        let b = "user:alice".to_string();
        let three = BucketLimit {
            max: 3,
            window: 60,
            lockout: 300,
        };
        let taken = |locked_until| Slot::Taken { locked_until };
        assert_eq!(
            store.take_slot("acme", &b, 100, three).await.unwrap(),
            taken(None)
        );
        assert_eq!(
            store.take_slot("acme", &b, 101, three).await.unwrap(),
            taken(None)
        );
        assert_eq!(
            store.take_slot("acme", &b, 102, three).await.unwrap(),
            taken(Some(402)),
            "the third attempt locks"
        );
        assert_eq!(
            store.take_slot("acme", &b, 103, three).await.unwrap(),
            Slot::Refused { until: 402 }
        );
        assert_eq!(
            store.take_slot("globex", &b, 103, three).await.unwrap(),
            taken(None),
            "another tenant's bucket of the same name"
        );
        // The attempt that locked is given back: the lock goes with it.
        store.give_back_slot("acme", &b, 3, true).await.unwrap();
        assert_eq!(
            store.take_slot("acme", &b, 104, three).await.unwrap(),
            taken(Some(404))
        );
        store.clear_failures("acme", &b).await.unwrap();
        assert_eq!(
            store.take_slot("acme", &b, 105, three).await.unwrap(),
            taken(None)
        );
        // An attempt after the window starts a new count.
        store.take_slot("acme", &b, 106, three).await.unwrap();
        assert_eq!(
            store.take_slot("acme", &b, 500, three).await.unwrap(),
            taken(None)
        );
    }
}

#[tokio::test]
async fn providers_domains_links_and_upstream_sessions_work_on_both_engines() {
    use portcullis::stores::{
        FederationStore, ProviderRow, ProviderWrite, SessionRecord, SessionStore, UserStore,
    };
    for engine in engines().await {
        let store = &engine.store;
        let row = |id: &str, listed: bool| ProviderRow {
            id: id.into(),
            enabled: true,
            listed,
            display_name: id.to_uppercase(),
            spec: "{}".into(),
            updated_at: 1,
        };
        let w = store
            .upsert_provider_row("acme", &row("corp", true), &["corp.example".into()])
            .await
            .unwrap();
        assert!(matches!(w, ProviderWrite::Written));
        // A domain belongs to one provider of a tenant; another tenant may claim it too.
        let w = store
            .upsert_provider_row("acme", &row("other", false), &["corp.example".into()])
            .await
            .unwrap();
        assert!(matches!(w, ProviderWrite::DomainTaken(_)));
        assert!(
            store
                .find_provider_row("acme", "other")
                .await
                .unwrap()
                .is_none()
        );
        store
            .upsert_provider_row("globex", &row("other", true), &["corp.example".into()])
            .await
            .unwrap();
        assert_eq!(
            store
                .provider_for_domain("acme", "corp.example")
                .await
                .unwrap()
                .as_deref(),
            Some("corp")
        );
        assert_eq!(
            store
                .provider_for_domain("globex", "corp.example")
                .await
                .unwrap()
                .as_deref(),
            Some("other")
        );
        store
            .upsert_provider_row("acme", &row("hidden", false), &[])
            .await
            .unwrap();
        let listed = store
            .list_provider_rows("acme", true, "", 20)
            .await
            .unwrap();
        assert_eq!(
            listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["corp"]
        );
        let all = store
            .list_provider_rows("acme", false, "", 20)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        let page = store
            .list_provider_rows("acme", false, "corp", 20)
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["hidden"]
        );
        assert!(store.delete_provider_row("acme", "corp").await.unwrap());
        assert!(
            store
                .provider_for_domain("acme", "corp.example")
                .await
                .unwrap()
                .is_none()
        );
        // Links: the first one wins.
        assert!(
            store
                .insert_link("acme", "corp", "https://idp.corp", "u1", "local-1", 5)
                .await
                .unwrap()
        );
        assert!(
            !store
                .insert_link("acme", "corp", "https://idp.corp", "u1", "local-2", 5)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .find_link("acme", "corp", "https://idp.corp", "u1")
                .await
                .unwrap()
                .as_deref(),
            Some("local-1")
        );
        assert!(
            store
                .find_link("globex", "corp", "https://idp.corp", "u1")
                .await
                .unwrap()
                .is_none()
        );
        // The same subject from another upstream under the same provider id is someone else.
        assert!(
            store
                .find_link("acme", "corp", "https://evil.example", "u1")
                .await
                .unwrap()
                .is_none()
        );
        // Users by email, case-insensitively, in their tenant only.
        let user = portcullis::config::tenant::UserSpec {
            subject: "s-ann".into(),
            username: "ann".into(),
            password_hash: String::new(),
            totp_secret: None,
            enabled: true,
            claims: serde_json::json!({"email": "Ann@Corp.Example"})
                .as_object()
                .cloned()
                .unwrap(),
        };
        store.upsert_user("acme", &user, "db", 1).await.unwrap();
        assert_eq!(
            store
                .find_users_by_email("acme", "ann@corp.example")
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .find_users_by_email("globex", "ann@corp.example")
                .await
                .unwrap()
                .is_empty()
        );
        // Sessions by upstream session id.
        let s = SessionRecord {
            sid: "s-up".into(),
            handle_hash: "hh-up".into(),
            subject: "s-ann".into(),
            auth_time: 10,
            amr: "external".into(),
            acr: "a".into(),
            created_at: 10,
            last_seen_at: 10,
            expires_at: 1000,
            clients: String::new(),
            idp: "corp".into(),
            upstream_sid: Some("up-sid".into()),
            upstream: Some("{}".into()),
        };
        store.insert_session("acme", &s).await.unwrap();
        let found = store
            .sessions_by_upstream_sid("acme", "corp", "up-sid")
            .await
            .unwrap();
        assert_eq!(found, vec![s.clone()]);
        assert!(
            store
                .sessions_by_upstream_sid("acme", "other", "up-sid")
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn at_serializable_isolation_concurrent_redemptions_lose_no_race_and_never_fail() {
    // PostgreSQL at SERIALIZABLE (as CockroachDB always is) aborts the losers of a race with
    // SQLSTATE 40001; the store runs them again, and then they see the winner's write.
    let Some(pg) = postgres_url() else {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
        return;
    };
    use portcullis::stores::Consumed;
    let sep = if pg.contains('?') { '&' } else { '?' };
    let url = format!("{pg}{sep}options=-c%20default_transaction_isolation%3Dserializable");
    let schema = unique_schema();
    let store = Store::connect(&Database {
        max_connections: 16,
        ..Database::at(&url, &schema)
    })
    .await
    .unwrap();
    let grant = |hash: &str, kind: GrantKind| GrantRecord {
        handle_hash: hash.into(),
        client_id: "c".into(),
        data: "{}".into(),
        created_at: 10,
        expires_at: 1000,
        family: Some("f".into()),
        ..GrantRecord::of(kind)
    };
    for round in 0..5 {
        let rt = format!("rt{round}");
        store
            .insert_grant("acme", &grant(&rt, GrantKind::RefreshToken))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (store, rt) = (store.clone(), rt.clone());
            let next = grant(&format!("{rt}-next{i}"), GrantKind::RefreshToken);
            tasks.push(tokio::spawn(async move {
                let rotated = store.consume_grant("acme", &rt, 20, &[next]).await;
                let marker = GrantRecord {
                    consumed_at: Some(20),
                    ..grant(&format!("marker{round}"), GrantKind::CodeUsed)
                };
                let redeemed = store.redeem_once("acme", &marker, &[]).await;
                (rotated, redeemed)
            }));
        }
        let (mut fresh, mut first) = (0, 0);
        for t in tasks {
            let (rotated, redeemed) = t.await.unwrap();
            match rotated.expect("a lost serialization race is retried, not an error") {
                Consumed::Fresh(_) => fresh += 1,
                Consumed::Replayed(_) => {}
                other => panic!("{other:?}"),
            }
            if redeemed.expect("a lost race on a marker is retried, not an error") {
                first += 1;
            }
        }
        assert_eq!((fresh, first), (1, 1), "round {round}: exactly one winner");
    }
    store.close().await;
}
