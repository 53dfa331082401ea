//! SSO sessions: a random handle in a cookie scoped to the tenant (path of its issuer, HttpOnly,
//! Secure, SameSite=Lax), the session itself server-side. Also the browser-binding cookie that
//! ties a pending sign-in to the browser that started it, and logout notifications.

pub mod logout;

use crate::error::InternalError;
use crate::registry::Tenant;
use crate::state::AppState;
use crate::stores::{SessionRecord, SessionStore};
use crate::tokens;
use axum::http::{HeaderMap, HeaderValue, header};

/// Ties a pending interaction to the browser that started it (login CSRF defence).
pub const BIND_COOKIE: &str = "portcullis.bind";

/// The path the tenant's cookies are scoped to: the path of its issuer, or `/` at a host root.
pub fn cookie_path(tenant: &Tenant) -> String {
    url::Url::parse(&tenant.spec.issuer)
        .ok()
        .map(|u| u.path().trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// The value of a request cookie (RFC 6265 §5.4). If the name repeats, the first wins (the
/// most specific path is sent first).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value. `max_age: None` makes a browser-session cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<i64>,
    secure: bool,
) -> Option<HeaderValue> {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.max(0)));
    }
    HeaderValue::from_str(&c).ok()
}

pub fn clear_cookie(name: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    set_cookie(name, "", path, Some(0), secure)
}

/// The live session the request's cookie names, if any: unexpired, and active within the
/// tenant's idle timeout.
pub async fn current(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Option<SessionRecord>, InternalError> {
    let Some(handle) = read_cookie(headers, &tenant.spec.session.cookie_name) else {
        return Ok(None);
    };
    if handle.is_empty() || handle.len() > 100 {
        return Ok(None);
    }
    let Some(s) = state
        .store
        .find_session_by_handle(tenant.slug(), &tokens::handle_hash(handle))
        .await?
    else {
        return Ok(None);
    };
    if !is_live(tenant, &s, state.now()) {
        return Ok(None);
    }
    Ok(Some(s))
}

/// Like [`current`], and the user's consent for `client_id` read in the same query (the
/// authorization endpoint needs both on every single sign-on).
pub async fn current_with_consent(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Option<(SessionRecord, Option<crate::stores::StoredConsent>)>, InternalError> {
    let Some(handle) = read_cookie(headers, &tenant.spec.session.cookie_name) else {
        return Ok(None);
    };
    if handle.is_empty() || handle.len() > 100 {
        return Ok(None);
    }
    let Some((s, consent)) = state
        .store
        .find_session_with_consent(tenant.slug(), &tokens::handle_hash(handle), client_id)
        .await?
    else {
        return Ok(None);
    };
    if !is_live(tenant, &s, state.now()) {
        return Ok(None);
    }
    Ok(Some((s, consent)))
}

pub(crate) fn is_live(tenant: &Tenant, s: &SessionRecord, now: i64) -> bool {
    s.expires_at > now && s.last_seen_at + tenant.spec.session.idle_timeout > now
}

/// Authentication context class of a password sign-in (OIDC Core §2 `acr`).
pub const ACR_PASSWORD: &str = "urn:portcullis:acr:pwd";
/// … of a sign-in with a password and a second factor.
pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";
/// … of a sign-in at an upstream provider that reported none of its own.
pub const ACR_EXTERNAL: &str = "urn:portcullis:acr:external";

/// A successful login: who, how, and through which provider.
#[derive(Debug, Clone)]
pub struct Login {
    pub subject: String,
    /// RFC 8176 values.
    pub amr: Vec<String>,
    pub acr: String,
    /// `local`, or the upstream provider's id.
    pub idp: String,
    pub upstream_sid: Option<String>,
    /// What ending the upstream session needs (JSON of `federation::UpstreamSession`).
    pub upstream: Option<String>,
}

impl Login {
    pub fn local(subject: &str, amr: &[&str], acr: &str) -> Self {
        Self {
            subject: subject.to_string(),
            amr: amr.iter().map(|a| a.to_string()).collect(),
            acr: acr.to_string(),
            idp: crate::federation::LOCAL.to_string(),
            upstream_sid: None,
            upstream: None,
        }
    }
}

/// Starts a session after a successful login; returns it and the cookie to set.
pub async fn start(
    state: &AppState,
    tenant: &Tenant,
    login: &Login,
    client_id: &str,
    secure: bool,
) -> Result<(SessionRecord, HeaderValue), InternalError> {
    let now = state.now();
    let handle = tokens::new_handle();
    let record = SessionRecord {
        sid: tokens::new_jti(),
        handle_hash: tokens::handle_hash(&handle),
        subject: login.subject.clone(),
        auth_time: now,
        amr: login.amr.join(" "),
        acr: login.acr.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + tenant.spec.session.absolute_lifetime,
        // The client the user signed in for (logout notifications go to it).
        clients: format!(" {client_id}"),
        idp: login.idp.clone(),
        upstream_sid: login.upstream_sid.clone(),
        upstream: login.upstream.clone(),
    };
    state.store.insert_session(tenant.slug(), &record).await?;
    let cookie = set_cookie(
        &tenant.spec.session.cookie_name,
        &handle,
        &cookie_path(tenant),
        None,
        secure,
    )
    .ok_or(InternalError::Other("unrepresentable cookie".into()))?;
    Ok((record, cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; portcullis.session=abc; portcullis.sessionx=no"),
        );
        assert_eq!(read_cookie(&h, "portcullis.session"), Some("abc"));
        assert_eq!(read_cookie(&h, "b"), None);
    }

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_on_tls() {
        let c = set_cookie("s", "v", "/acme", None, true).unwrap();
        assert_eq!(c, "s=v; Path=/acme; HttpOnly; SameSite=Lax; Secure");
    }
}
