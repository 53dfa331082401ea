//! `[[users]]`: users defined in the tenant file.

use super::{KeyPath, UserFile, UserSpec};

pub(super) fn resolve(
    users: &[UserFile],
    root: &KeyPath,
    bad: &mut impl FnMut(KeyPath, String),
) -> Vec<UserSpec> {
    let mut out: Vec<UserSpec> = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let uk = root.key("users").index(i);
        let subject = u.subject.clone().unwrap_or_else(|| u.username.clone());
        if u.username.is_empty()
            || u.username.len() > 200
            || u.username.chars().any(char::is_control)
        {
            bad(
                uk.key("username"),
                "a username is 1-200 printable characters".into(),
            );
        }
        if subject.is_empty() || subject.len() > 255 {
            bad(
                uk.key("subject"),
                "a subject is 1-255 characters (OIDC Core §2)".into(),
            );
        }
        if out
            .iter()
            .any(|o| o.username == u.username || o.subject == subject)
        {
            bad(
                uk.key("username"),
                format!("user `{}` is defined twice", u.username),
            );
        }
        if let Err(m) = crate::secrets::check_password_hash(&u.password_hash) {
            bad(uk.key("password_hash"), m);
        }
        if let Some(secret) = &u.totp_secret
            && let Err(m) = crate::secrets::check_totp_secret(secret)
        {
            bad(uk.key("totp_secret"), m);
        }
        for reserved in [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "amr",
            "acr",
            "idp",
        ] {
            if u.claims.contains_key(reserved) {
                bad(
                    uk.key("claims").key(reserved),
                    "this claim is set by the server".into(),
                );
            }
        }
        out.push(UserSpec {
            subject,
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            totp_secret: u.totp_secret.clone(),
            enabled: u.enabled,
            claims: u.claims.clone(),
        });
    }
    out
}
