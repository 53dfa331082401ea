//! RFC 7591 §3: initial access tokens, which authorize registrations where the tenant's policy
//! asks for one. Each is good for a number of registrations until it expires; it is stored by
//! its hash only (a `GrantKind::InitialAccessToken` grant whose data counts the uses left), and
//! a use is taken compare-and-set, so two registrations racing for the last use cannot both
//! have it.

use crate::error::InternalError;
use crate::federation::admin::AdminError;
use crate::stores::{GrantKind, GrantRecord, GrantStore, Store};

/// The longest an initial access token may live (a year).
pub const MAX_LIFETIME: i64 = 366 * 86_400;
/// The most registrations one token may authorize.
pub const MAX_USES: u32 = 100_000;

/// A new token: shown once.
pub struct Issued {
    pub token: String,
    pub uses: u32,
    pub expires_at: i64,
}

/// The token stays out of `Debug` (a log line names it by a short hash at most).
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("uses", &self.uses)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issues a token for `uses` registrations in `tenant`, living `lifetime` seconds.
pub async fn issue(
    store: &Store,
    tenant: &str,
    uses: u32,
    lifetime: i64,
    now: i64,
) -> Result<Issued, AdminError> {
    if !(1..=MAX_USES).contains(&uses) {
        return Err(AdminError::Invalid(format!("uses: 1 to {MAX_USES}")));
    }
    if !(60..=MAX_LIFETIME).contains(&lifetime) {
        return Err(AdminError::Invalid(
            "the lifetime is a minute to a year".into(),
        ));
    }
    let token = crate::tokens::new_handle();
    let expires_at = now + lifetime;
    store
        .insert_grant(
            tenant,
            &GrantRecord {
                handle_hash: crate::tokens::handle_hash(&token),
                client_id: String::new(),
                data: uses_data(uses),
                created_at: now,
                expires_at,
                ..GrantRecord::of(GrantKind::InitialAccessToken)
            },
        )
        .await?;
    tracing::info!(target: "security", event = "initial_access_token_issued", tenant, uses, expires_at);
    Ok(Issued {
        token,
        uses,
        expires_at,
    })
}

fn uses_data(uses: u32) -> String {
    format!("{{\"uses_left\":{uses}}}")
}

fn uses_left(data: &str) -> u32 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("uses_left").and_then(serde_json::Value::as_u64))
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// A token that can authorize a registration now.
#[derive(Debug)]
pub struct Live {
    record: GrantRecord,
}

/// Finds `token` and checks that it is live and has a use left; `Err` says why not.
pub async fn check(
    store: &Store,
    tenant: &str,
    token: &str,
    now: i64,
) -> Result<Result<Live, &'static str>, InternalError> {
    let Some(record) = store
        .find_grant(tenant, &crate::tokens::handle_hash(token))
        .await?
        .filter(|r| r.kind == GrantKind::InitialAccessToken)
    else {
        return Ok(Err("the initial access token is not known"));
    };
    if record.revoked_at.is_some() || record.expires_at <= now {
        return Ok(Err("the initial access token expired"));
    }
    if uses_left(&record.data) == 0 {
        return Ok(Err("the initial access token was used up"));
    }
    Ok(Ok(Live { record }))
}

/// Takes one use of a checked token; false when another registration took the last one first.
pub async fn take_use(store: &Store, tenant: &str, live: Live) -> Result<bool, InternalError> {
    let mut record = live.record;
    loop {
        let left = uses_left(&record.data);
        if left == 0 {
            return Ok(false);
        }
        if store
            .swap_grant_data(
                tenant,
                &record.handle_hash,
                &record.data,
                &uses_data(left - 1),
            )
            .await?
        {
            return Ok(true);
        }
        // Another registration took a use: read what is left and try again.
        match store.find_grant(tenant, &record.handle_hash).await? {
            Some(r) => record = r,
            None => return Ok(false),
        }
    }
}

/// Parses a lifetime such as `3600`, `90s`, `30m`, `12h` or `7d` into seconds.
pub fn parse_lifetime(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at_checked(i).unwrap_or((s, "")),
        None => (s, ""),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a lifetime (e.g. 3600, 30m, 12h, 7d)"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit is s, m, h or d")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::{Issued, parse_lifetime};

    #[test]
    fn an_issued_token_never_appears_in_debug_output() {
        let i = Issued {
            token: "the-initial-access-token".into(),
            uses: 2,
            expires_at: 9,
        };
        let text = format!("{i:?}");
        assert!(!text.contains("the-initial-access-token"), "{text}");
        let saved = crate::clients::Saved {
            view: serde_json::json!({"client_id": "c"}),
            secret: Some("the-client-secret".into()),
            created: true,
        };
        let text = format!("{saved:?}");
        assert!(!text.contains("the-client-secret"), "{text}");
    }

    #[test]
    fn lifetimes_read_with_or_without_a_unit() {
        assert_eq!(parse_lifetime("3600"), Ok(3600));
        assert_eq!(parse_lifetime("30m"), Ok(1800));
        assert_eq!(parse_lifetime("12h"), Ok(43_200));
        assert_eq!(parse_lifetime("7d"), Ok(604_800));
        assert!(parse_lifetime("7w").is_err());
        assert!(parse_lifetime("h").is_err());
    }
}
