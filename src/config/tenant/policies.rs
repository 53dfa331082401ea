//! `[session]`, `[login]`, `[par]`, `[device]` and `[ciba]`: the limits a tenant sets on sign-in.

use super::{CibaPolicy, DevicePolicy, KeyPath, LoginPolicy, ParPolicy, SessionPolicy, TenantFile};

pub(super) fn check_session_and_login(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let root = KeyPath::root();
    let session = &file.session;
    if !(60..=30 * 86_400).contains(&session.idle_timeout)
        || !(60..=365 * 86_400).contains(&session.absolute_lifetime)
    {
        bad(
            root.key("session"),
            "idle_timeout is 60 s to 30 days, absolute_lifetime 60 s to a year".into(),
        );
    }
    if session.cookie_name.is_empty()
        || !session
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bad(
            root.key("session").key("cookie_name"),
            "a cookie name is letters, digits, '-', '_' and '.'".into(),
        );
    }
    let login = &file.login;
    if login.max_failures_per_user < 1
        || login.max_failures_per_address < 1
        || login.failure_window < 1
        || login.lockout < 1
        || login.max_code_failures_per_interaction < 1
    {
        bad(
            root.key("login"),
            "every login limit must be positive".into(),
        );
    }
    if login.failure_window > super::MAX_LOGIN_FAILURE_WINDOW {
        bad(
            root.key("login").key("failure_window"),
            "at most 604800 seconds (7 days)".into(),
        );
    }
}

pub(super) fn check_par(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let root = KeyPath::root();
    if !(1..=600).contains(&file.par.lifetime) {
        bad(
            root.key("par").key("lifetime"),
            "must be between 1 and 600 seconds (RFC 9126 §2.2)".into(),
        );
    }
}

pub(super) fn session(file: &TenantFile) -> SessionPolicy {
    SessionPolicy {
        idle_timeout: file.session.idle_timeout,
        absolute_lifetime: file.session.absolute_lifetime,
        cookie_name: file.session.cookie_name.clone(),
    }
}

pub(super) fn login(file: &TenantFile) -> LoginPolicy {
    LoginPolicy {
        max_failures_per_user: file.login.max_failures_per_user,
        max_failures_per_address: file.login.max_failures_per_address,
        failure_window: file.login.failure_window,
        lockout: file.login.lockout,
        max_code_failures_per_interaction: file.login.max_code_failures_per_interaction,
    }
}

pub(super) fn par(file: &TenantFile) -> ParPolicy {
    ParPolicy {
        required: file.par.required,
        lifetime: file.par.lifetime,
    }
}

pub(super) fn check_device(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let device = KeyPath::root().key("device");
    // RFC 8628 §6.1: a user code's lifetime bounds how long it can be guessed at.
    if !(60..=1800).contains(&file.device.code_lifetime) {
        bad(
            device.key("code_lifetime"),
            "must be between 60 and 1800 seconds".into(),
        );
    }
    if !(0..=60).contains(&file.device.interval) {
        bad(
            device.key("interval"),
            "must be between 0 and 60 seconds".into(),
        );
    }
    if !(1..=100).contains(&file.device.max_failures_per_session) {
        bad(
            device.key("max_failures_per_session"),
            "must be between 1 and 100".into(),
        );
    }
}

pub(super) fn device(file: &TenantFile) -> DevicePolicy {
    DevicePolicy {
        code_lifetime: file.device.code_lifetime,
        interval: file.device.interval,
        max_failures_per_session: file.device.max_failures_per_session,
    }
}

pub(super) fn check_ciba(file: &TenantFile, bad: &mut impl FnMut(KeyPath, String)) {
    let ciba = KeyPath::root().key("ciba");
    if !(30..=3600).contains(&file.ciba.request_lifetime) {
        bad(
            ciba.key("request_lifetime"),
            "must be between 30 and 3600 seconds".into(),
        );
    }
    if !(0..=60).contains(&file.ciba.interval) {
        bad(
            ciba.key("interval"),
            "must be between 0 and 60 seconds".into(),
        );
    }
    if !(1..=500).contains(&file.ciba.binding_message_max) {
        bad(
            ciba.key("binding_message_max"),
            "must be between 1 and 500 characters".into(),
        );
    }
    if let Some(u) = &file.ciba.webhook_url
        && let Err(m) = super::check_redirect_uri(u, false)
    {
        bad(ciba.key("webhook_url"), m);
    }
}

pub(super) fn ciba(file: &TenantFile) -> CibaPolicy {
    CibaPolicy {
        request_lifetime: file.ciba.request_lifetime,
        interval: file.ciba.interval,
        binding_message_max: file.ciba.binding_message_max,
        require_mfa: file.ciba.require_mfa,
        webhook_url: file.ciba.webhook_url.clone(),
    }
}
