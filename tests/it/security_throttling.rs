//! Sign-in throttling that cannot be raced or reset: one-time codes
//! have their own counter that a right password does not clear, they count toward the address
//! too, a sign-in ends after too many wrong codes, concurrent wrong passwords evaluate no more
//! hashes than the limit, and a full hash queue answers "try again" at once.

use crate::interactive::{Browser, authorize_url, challenge, field, location};
use crate::support::*;
use portcullis::clock::{Clock, FixedClock, SystemClock};
use std::sync::Arc;
use tokio::task::JoinSet;

const CAROL_SECRET: &str = "CPVGE6YPNPBBTGYVKT2AOU537SU3URFN";

/// SQLite always; PostgreSQL too when PORTCULLIS_TEST_POSTGRES_URL is set.
fn engines() -> Vec<bool> {
    let mut v = vec![false];
    if postgres_url().is_some() {
        v.push(true);
    } else {
        eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL part skipped");
    }
    v
}

/// The demo acme tenant with a `[login]` section.
fn acme_with_login(login: &str) -> String {
    format!("{ACME}\n[login]\n{login}\n")
}

async fn server_with(postgres: bool, acme: String, clock: Arc<FixedClock>) -> TestServer {
    TestServer::start_with(Options {
        tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
        clock: Some(clock),
        postgres,
        ..Default::default()
    })
    .await
}

/// A login page opened for acme-spa: (interaction, csrf) of its form.
async fn open_login(server: &TestServer, b: &Browser) -> (String, String) {
    let ch = challenge(crate::interactive::VERIFIER);
    let p = vec![
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:9000/spa/callback"),
        ("scope", "openid profile"),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = b.get(&authorize_url(server, "acme", "acme-spa", &p)).await;
    assert_eq!(r.status(), 303);
    let page = b.get(&location(&r)).await;
    assert_eq!(page.status(), 200, "login page");
    let html = page.text().await.unwrap();
    (field(&html, "interaction"), field(&html, "csrf"))
}

async fn post_password(
    server: &TestServer,
    b: &Browser,
    (interaction, csrf): &(String, String),
    user: &str,
    password: &str,
) -> reqwest::Response {
    b.post(
        &server.url("/acme/account/login"),
        &[
            ("interaction", interaction),
            ("csrf", csrf),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

async fn post_code(
    server: &TestServer,
    b: &Browser,
    (interaction, csrf): &(String, String),
    code: &str,
) -> reqwest::Response {
    b.post(
        &server.url("/acme/account/login/totp"),
        &[("interaction", interaction), ("csrf", csrf), ("code", code)],
    )
    .await
}

/// Carol's password accepted on a fresh login page: the form of her one-time code step.
async fn carol_at_the_code_step(server: &TestServer, b: &Browser) -> (String, String) {
    let form = open_login(server, b).await;
    let r = post_password(server, b, &form, "carol", "carol-password").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"code\""),
        "the code step follows: {html}"
    );
    form
}

/// Carol's current code, and one that is valid in no step of the window.
fn codes(now: i64) -> (String, String) {
    let window: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| portcullis::users::totp_code(CAROL_SECRET, *t).unwrap())
        .collect();
    let wrong = (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !window.contains(c))
        .unwrap();
    (window[1].clone(), wrong)
}

fn real_clock() -> Arc<FixedClock> {
    FixedClock::new(SystemClock.now())
}

#[tokio::test]
async fn a_correct_password_does_not_reset_the_one_time_code_counter() {
    for postgres in engines() {
        let clock = real_clock();
        // Only the account's code counter may stop this (the per-sign-in limit is out of reach).
        let acme = acme_with_login("max_code_failures_per_interaction = 100");
        let server = server_with(postgres, acme, clock.clone()).await;
        let (right, wrong) = codes(clock.now());
        let b = Browser::new(&server);
        let form = carol_at_the_code_step(&server, &b).await;
        // Finding 4: four wrong codes, the password again on the same sign-in, and again.
        let mut evaluated = 0;
        let mut refused = 0;
        for _round in 0..3 {
            for _ in 0..4 {
                let r = post_code(&server, &b, &form, &wrong).await;
                assert_eq!(r.status(), 200);
                let html = r.text().await.unwrap();
                if html.contains("That code is not valid") {
                    evaluated += 1;
                } else {
                    assert!(html.contains("Too many attempts. Try again in"), "{html}");
                    refused += 1;
                }
            }
            let r = post_password(&server, &b, &form, "carol", "carol-password").await;
            assert_eq!(r.status(), 200, "the password is still right");
        }
        assert_eq!(
            evaluated, 5,
            "max_failures_per_user wrong codes, then the lock"
        );
        assert_eq!(refused, 7);
        // Even the right code waits for the lock to end.
        let r = post_code(&server, &b, &form, &right).await;
        assert_eq!(r.status(), 200, "no redirect with a code");
        assert!(r.text().await.unwrap().contains("Too many attempts"));
        server.stop().await;
    }
}

#[tokio::test]
async fn an_interaction_dies_after_too_many_wrong_codes() {
    for postgres in engines() {
        let clock = real_clock();
        let acme = acme_with_login(
            "max_code_failures_per_interaction = 3\nmax_failures_per_user = 100\nmax_failures_per_address = 100",
        );
        let server = server_with(postgres, acme, clock.clone()).await;
        let (right, wrong) = codes(clock.now());
        let b = Browser::new(&server);
        let form = carol_at_the_code_step(&server, &b).await;
        for _ in 0..2 {
            let r = post_code(&server, &b, &form, &wrong).await;
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("That code is not valid"));
        }
        let r = post_code(&server, &b, &form, &wrong).await;
        assert_eq!(r.status(), 400, "the third wrong code ends the sign-in");
        let html = r.text().await.unwrap();
        assert!(html.contains("invalid_request"), "{html}");
        assert!(html.contains("start again from the application"), "{html}");
        // The sign-in is gone: not even the right code or the password revives it.
        let r = post_code(&server, &b, &form, &right).await;
        assert_eq!(r.status(), 400);
        let html = r.text().await.unwrap();
        assert!(html.contains("invalid_request"), "{html}");
        assert!(html.contains("expired or is unknown"), "{html}");
        let r = post_password(&server, &b, &form, "carol", "carol-password").await;
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("expired or is unknown"));
        // Starting again from the application works: it was the sign-in that ended.
        let form = carol_at_the_code_step(&server, &b).await;
        let r = post_code(&server, &b, &form, &right).await;
        assert_eq!(r.status(), 303, "a new sign-in with the right code");
        assert!(location(&r).starts_with("http://127.0.0.1:9000/spa/callback?code="));
        server.stop().await;
    }
}

#[tokio::test]
async fn totp_failures_count_toward_the_address() {
    for postgres in engines() {
        let clock = real_clock();
        let acme = acme_with_login(
            "max_failures_per_address = 3\nmax_failures_per_user = 100\nmax_code_failures_per_interaction = 100",
        );
        let server = server_with(postgres, acme, clock.clone()).await;
        let (_, wrong) = codes(clock.now());
        let b = Browser::new(&server);
        // Carol's right password costs the address nothing; her three wrong codes do.
        let form = carol_at_the_code_step(&server, &b).await;
        for _ in 0..3 {
            let r = post_code(&server, &b, &form, &wrong).await;
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("That code is not valid"));
        }
        // Another account, its right password, the same address: locked out.
        let other = Browser::new(&server);
        let form = open_login(&server, &other).await;
        let r = post_password(&server, &other, &form, "alice", "alice-password").await;
        assert_eq!(r.status(), 200, "no redirect: the address is locked");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Too many failed attempts. You can try again in"),
            "{html}"
        );
        server.stop().await;
    }
}

/// Opens `n` login pages at once, each in its own browser (its own connection and cookies).
async fn open_logins(server: &Arc<TestServer>, n: usize) -> Vec<(Browser, (String, String))> {
    let mut set = JoinSet::new();
    let mut out = Vec::new();
    for i in 0..n {
        let server = server.clone();
        set.spawn(async move {
            let b = Browser::new(&server);
            let form = open_login(&server, &b).await;
            (i, b, form)
        });
        // A few at a time: the point is the POSTs arriving together, not these.
        if set.len() >= 16 {
            let (i, b, form) = set.join_next().await.unwrap().unwrap();
            out.push((i, b, form));
        }
    }
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, b, f)| (b, f)).collect()
}

async fn verifications_in_metrics(server: &TestServer) -> u64 {
    let text = get_text(&server.http, &server.url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix("portcullis_password_verifications_total "))
        .unwrap_or_else(|| panic!("no password verification counter in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn concurrent_wrong_passwords_evaluate_no_more_hashes_than_the_limit() {
    const ATTEMPTS: usize = 150;
    for postgres in engines() {
        // A queue long enough for every attempt: only the throttle may keep hashes from running.
        let server = Arc::new(
            TestServer::start_with(Options {
                server_extra: format!("[passwords]\nmax_queued_verifications = {ATTEMPTS}\n"),
                postgres,
                ..Default::default()
            })
            .await,
        );
        let forms = open_logins(&server, ATTEMPTS).await;
        let before = server.state().passwords.computed();
        let mut set = JoinSet::new();
        for (b, form) in forms {
            let server = server.clone();
            set.spawn(async move {
                let r = post_password(&server, &b, &form, "alice", "wrong").await;
                (r.status().as_u16(), r.text().await.unwrap())
            });
        }
        let (mut wrong, mut locked) = (0, 0);
        while let Some(r) = set.join_next().await {
            let (status, html) = r.unwrap();
            assert_eq!(status, 200);
            if html.contains("Wrong username or password") {
                wrong += 1;
            } else {
                assert!(html.contains("Too many failed attempts"), "{html}");
                locked += 1;
            }
        }
        let computed = server.state().passwords.computed() - before;
        // The demo tenant allows 5 failures per user (tenants/acme.toml, [login] default).
        assert!(
            computed <= 5,
            "{computed} hashes computed for {ATTEMPTS} attempts"
        );
        assert_eq!(wrong, 5, "exactly the limit's worth evaluated");
        assert_eq!(locked, ATTEMPTS - 5);
        assert_eq!(verifications_in_metrics(&server).await, computed + before);
        Arc::try_unwrap(server).ok().unwrap().stop().await;
    }
}

/// An argon2id hash of `password` that takes a while to verify (about half a second).
fn slow_hash(password: &str) -> String {
    use argon2::PasswordHasher;
    let params = argon2::Params::new(16_384, 24, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), &[9u8; 16])
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_full_hash_queue_answers_try_again_instead_of_queueing() {
    const USERS: usize = 8;
    let hash = slow_hash("right");
    let mut acme = ACME.to_string();
    for n in 0..USERS {
        acme.push_str(&format!(
            "\n[[users]]\nusername = \"slow{n}\"\npassword_hash = \"{hash}\"\n"
        ));
    }
    // One hashing thread and one place in the queue.
    let server = Arc::new(
        TestServer::start_with(Options {
            tenants: vec![("acme", acme), ("globex", GLOBEX.to_string())],
            server_extra: "[passwords]\nhashing_threads = 1\nmax_queued_verifications = 1\n".into(),
            ..Default::default()
        })
        .await,
    );
    let forms = open_logins(&server, USERS).await;
    let mut set = JoinSet::new();
    for (n, (b, form)) in forms.into_iter().enumerate() {
        let server = server.clone();
        set.spawn(async move {
            let r = post_password(&server, &b, &form, &format!("slow{n}"), "wrong").await;
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            (status, retry, r.text().await.unwrap())
        });
    }
    let mut busy = 0u64;
    while let Some(r) = set.join_next().await {
        let (status, retry, html) = r.unwrap();
        if status == 503 {
            busy += 1;
            assert_eq!(retry.unwrap(), "1", "Retry-After");
            assert!(html.contains("Please try again in a moment"), "{html}");
            // The login form again, ready to be submitted once more.
            assert!(html.contains("name=\"password\""), "{html}");
        } else {
            assert_eq!(status, 200);
            assert!(html.contains("Wrong username or password"), "{html}");
        }
    }
    // All arrive within the first hash: one hashing, one waiting, the others refused at once.
    assert!(busy >= 4, "{busy} of {USERS} refused");
    let stats = server.state().passwords.stats();
    let computed = stats.computed.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(computed + busy, USERS as u64, "refused work is not hashed");
    // A refused attempt is not a failure: the account can still be used at once.
    let b = Browser::new(&server);
    let form = open_login(&server, &b).await;
    let r = post_password(&server, &b, &form, "slow0", "right").await;
    assert_eq!(r.status(), 303, "slow0 signs in");
    Arc::try_unwrap(server).ok().unwrap().stop().await;
}
