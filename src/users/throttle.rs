//! Sign-in throttling: how many passwords and one-time codes may be tried, by whom, from where.
//!
//! An attempt takes a slot in each of its buckets *before* anything is verified, in one statement
//! per bucket that checks the lock and counts the attempt ([`LoginThrottleStore::take_slot`]).
//! So N concurrent wrong passwords evaluate at most the limit's worth of hashes, on any number of
//! nodes. The slot is a failure until the attempt says otherwise: [`Attempt::succeeded`] gives it
//! back (or forgets the bucket), [`Attempt::withdrawn`] gives it back when nothing was verified,
//! and an attempt dropped half-way (its client went away) stays counted.
//!
//! Buckets:
//! - `user:<username>`: passwords of one account (`max_failures_per_user`), forgotten when the
//!   password is right;
//! - `otp:<subject>`: one-time codes of one account, same limits, forgotten only when a code is
//!   right (a right password does not reset it);
//! - `ip:<address>`: every password and code from one address (`max_failures_per_address`); a
//!   success gives its own slot back and leaves the others' failures;
//! - `usercode:<browser>`: device user codes entered in one browser (RFC 8628 §5.1);
//! - `interaction:<hash>`: codes tried in one sign-in; at `max_code_failures_per_interaction`
//!   the sign-in is ended and the user starts again from the application.

use crate::config::tenant::LoginPolicy;
use crate::error::InternalError;
use crate::stores::{
    BucketLimit, GrantKind, GrantRecord, GrantStore, LoginThrottleStore, Slot, Store,
};
use crate::users::{Busy, Hashers};

/// Longer than any sign-in lives: an interaction's code bucket never unlocks while it matters.
const SIGN_IN_BUCKET_LIFETIME: i64 = 86_400;

/// Why an attempt may not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures for the account or the address: nothing before `until`.
    Locked { until: i64 },
    /// This sign-in used up its one-time code attempts; it has been ended.
    SignInEnded,
}

/// A failed attempt, already counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Set when this failure locked the account or the address.
    pub locked_until: Option<i64>,
    /// Set when this failure used up the sign-in's code attempts: the sign-in has been ended.
    pub sign_in_ended: bool,
}

/// How a throttled password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Verified,
    /// Wrong username or password; `locked_until` is set when this failure locked.
    Wrong {
        locked_until: Option<i64>,
    },
    /// Not checked: locked out.
    Refused(Refused),
    /// Not checked and not counted: every hashing thread busy and the queue full.
    Busy,
}

/// How a throttled one-time code check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    /// Wrong or reused; `locked_until` is set when this failure locked.
    Wrong {
        locked_until: Option<i64>,
    },
    /// Not checked (locked out), or this failure used up the sign-in's attempts
    /// ([`Refused::SignInEnded`]: the sign-in has been ended).
    Refused(Refused),
}

/// The throttle of one tenant at one instant (`now`).
#[derive(Debug, Clone)]
pub struct Throttle {
    store: Store,
    tenant: String,
    policy: LoginPolicy,
    now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The account's bucket: a success forgets its failures.
    Account,
    /// The address's bucket: a success gives back its own slot only.
    Address,
    /// The sign-in's code bucket: its lock ends the sign-in.
    SignIn,
}

#[derive(Debug)]
struct Held {
    bucket: String,
    kind: Kind,
    limit: BucketLimit,
    /// This attempt reached the limit and set the lock at that time.
    locked_until: Option<i64>,
}

/// An attempt holding its slots; say how it ended with [`Attempt::succeeded`],
/// [`Attempt::failed`] or [`Attempt::withdrawn`]. Dropped otherwise, it stays a failure.
#[must_use = "an attempt is a failure until it is resolved"]
#[derive(Debug)]
pub struct Attempt<'t> {
    throttle: &'t Throttle,
    held: Vec<Held>,
    /// The sign-in whose code this is (its interaction handle hash).
    sign_in: Option<String>,
}

impl Throttle {
    pub fn new(store: &Store, tenant: &str, policy: &LoginPolicy, now: i64) -> Self {
        Self {
            store: store.clone(),
            tenant: tenant.to_string(),
            policy: policy.clone(),
            now,
        }
    }

    fn account_limit(&self) -> BucketLimit {
        BucketLimit {
            max: self.policy.max_failures_per_user,
            window: self.policy.failure_window,
            lockout: self.policy.lockout,
        }
    }

    fn address_limit(&self) -> BucketLimit {
        BucketLimit {
            max: self.policy.max_failures_per_address,
            window: self.policy.failure_window,
            lockout: self.policy.lockout,
        }
    }

    /// Checks `password` for `username` from `address` against `hash` (`None`: no such user,
    /// checked against a decoy all the same) on `hashers`, within the limits.
    pub async fn check_password(
        &self,
        hashers: &Hashers,
        username: &str,
        address: &str,
        hash: Option<String>,
        password: String,
    ) -> Result<PasswordCheck, InternalError> {
        let attempt = match self.begin_password_attempt(username, address).await? {
            Ok(a) => a,
            Err(refused) => return Ok(PasswordCheck::Refused(refused)),
        };
        match hashers.verify(hash, password).await {
            Ok(true) => {
                attempt.succeeded().await?;
                Ok(PasswordCheck::Verified)
            }
            Ok(false) => Ok(PasswordCheck::Wrong {
                locked_until: attempt.failed().await?.locked_until,
            }),
            Err(Busy) => {
                attempt.withdrawn().await?;
                Ok(PasswordCheck::Busy)
            }
        }
    }

    /// Checks a one-time `code` of `subject` (TOTP `secret`) in the sign-in whose interaction
    /// handle hash is `sign_in`, from `address`, within the limits. RFC 6238 §5.2: a code is
    /// accepted once; its time step is recorded, and a second use is wrong.
    pub async fn check_code(
        &self,
        subject: &str,
        sign_in: &str,
        address: &str,
        secret: &str,
        code: &str,
    ) -> Result<CodeCheck, InternalError> {
        let attempt = match self.begin_code_attempt(subject, sign_in, address).await? {
            Ok(a) => a,
            Err(refused) => return Ok(CodeCheck::Refused(refused)),
        };
        let fresh = self.use_totp(subject, secret, code).await;
        if fresh {
            attempt.succeeded().await?;
            return Ok(CodeCheck::Accepted);
        }
        let failure = attempt.failed().await?;
        Ok(if failure.sign_in_ended {
            CodeCheck::Refused(Refused::SignInEnded)
        } else {
            CodeCheck::Wrong {
                locked_until: failure.locked_until,
            }
        })
    }

    /// RFC 6238 §5.2: a right code whose time step was not used before; the step is recorded.
    async fn use_totp(&self, subject: &str, secret: &str, code: &str) -> bool {
        match super::verify_totp(secret, code, self.now) {
            Some(step) => self
                .store
                .insert_grant(
                    &self.tenant,
                    &GrantRecord {
                        handle_hash: crate::tokens::handle_hash(&format!("totp:{subject}:{step}")),
                        client_id: String::new(),
                        subject: Some(subject.to_string()),
                        created_at: self.now,
                        expires_at: self.now + 120,
                        ..GrantRecord::of(GrantKind::TotpStep)
                    },
                )
                .await
                .is_ok(),
            None => false,
        }
    }

    /// Checks a one-time `code` of `subject` sent by an application on the user's behalf (CIBA
    /// `user_code`), from `address`: the account's and the address's one-time code limits, no
    /// sign-in to end.
    pub async fn check_code_outside_sign_in(
        &self,
        subject: &str,
        address: &str,
        secret: &str,
        code: &str,
    ) -> Result<CodeCheck, InternalError> {
        let attempt = match self
            .begin(
                vec![
                    (
                        format!("otp:{subject}"),
                        Kind::Account,
                        self.account_limit(),
                    ),
                    (format!("ip:{address}"), Kind::Address, self.address_limit()),
                ],
                None,
            )
            .await?
        {
            Ok(a) => a,
            Err(refused) => return Ok(CodeCheck::Refused(refused)),
        };
        if self.use_totp(subject, secret, code).await {
            attempt.succeeded().await?;
            return Ok(CodeCheck::Accepted);
        }
        let failure = attempt.failed().await?;
        Ok(CodeCheck::Wrong {
            locked_until: failure.locked_until,
        })
    }

    /// Takes the slots of a password attempt for `username` from `address`.
    pub async fn begin_password_attempt(
        &self,
        username: &str,
        address: &str,
    ) -> Result<Result<Attempt<'_>, Refused>, InternalError> {
        self.begin(
            vec![
                (
                    format!("user:{}", username.to_lowercase()),
                    Kind::Account,
                    self.account_limit(),
                ),
                (format!("ip:{address}"), Kind::Address, self.address_limit()),
            ],
            None,
        )
        .await
    }

    /// Takes the slots of a one-time code attempt by `subject` in the sign-in whose interaction
    /// handle hash is `sign_in`, from `address`.
    pub async fn begin_code_attempt(
        &self,
        subject: &str,
        sign_in: &str,
        address: &str,
    ) -> Result<Result<Attempt<'_>, Refused>, InternalError> {
        let per_sign_in = BucketLimit {
            max: self.policy.max_code_failures_per_interaction,
            window: SIGN_IN_BUCKET_LIFETIME,
            lockout: SIGN_IN_BUCKET_LIFETIME,
        };
        self.begin(
            vec![
                (format!("interaction:{sign_in}"), Kind::SignIn, per_sign_in),
                (
                    format!("otp:{subject}"),
                    Kind::Account,
                    self.account_limit(),
                ),
                (format!("ip:{address}"), Kind::Address, self.address_limit()),
            ],
            Some(sign_in.to_string()),
        )
        .await
    }

    /// Takes the slots of a user code entry (RFC 8628 §5.1) by the browser whose binding
    /// cookie hashes to `browser`, from `address`: at most `per_browser` wrong codes from one
    /// browser, and the address's limit shared with passwords and one-time codes.
    pub async fn begin_user_code_attempt(
        &self,
        browser: &str,
        address: &str,
        per_browser: i64,
    ) -> Result<Result<Attempt<'_>, Refused>, InternalError> {
        let per_browser = BucketLimit {
            max: per_browser,
            window: self.policy.failure_window,
            lockout: self.policy.lockout,
        };
        self.begin(
            vec![
                (format!("usercode:{browser}"), Kind::Account, per_browser),
                (format!("ip:{address}"), Kind::Address, self.address_limit()),
            ],
            None,
        )
        .await
    }

    async fn begin(
        &self,
        buckets: Vec<(String, Kind, BucketLimit)>,
        sign_in: Option<String>,
    ) -> Result<Result<Attempt<'_>, Refused>, InternalError> {
        let mut attempt = Attempt {
            throttle: self,
            held: Vec::with_capacity(buckets.len()),
            sign_in,
        };
        for (bucket, kind, limit) in buckets {
            match self
                .store
                .take_slot(&self.tenant, &bucket, self.now, limit)
                .await?
            {
                Slot::Taken { locked_until } => attempt.held.push(Held {
                    bucket,
                    kind,
                    limit,
                    locked_until,
                }),
                Slot::Refused { until } => {
                    // The buckets before this one counted an attempt that is not made.
                    let refused = if kind == Kind::SignIn {
                        attempt.end_sign_in().await?;
                        Refused::SignInEnded
                    } else {
                        Refused::Locked { until }
                    };
                    attempt.withdrawn().await?;
                    return Ok(Err(refused));
                }
            }
        }
        Ok(Ok(attempt))
    }
}

impl Attempt<'_> {
    /// The attempt succeeded: the account's (and the sign-in's) failures are forgotten, the
    /// address gets this attempt's slot back.
    pub async fn succeeded(self) -> Result<(), InternalError> {
        let t = self.throttle;
        for h in &self.held {
            match h.kind {
                Kind::Account | Kind::SignIn => {
                    t.store.clear_failures(&t.tenant, &h.bucket).await?;
                }
                Kind::Address => {
                    t.store
                        .give_back_slot(&t.tenant, &h.bucket, h.limit.max, h.locked_until.is_some())
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Nothing was verified (the hashing queue was full): every slot goes back.
    pub async fn withdrawn(self) -> Result<(), InternalError> {
        let t = self.throttle;
        for h in &self.held {
            t.store
                .give_back_slot(&t.tenant, &h.bucket, h.limit.max, h.locked_until.is_some())
                .await?;
        }
        Ok(())
    }

    /// The attempt failed. It is counted already; when it used up the sign-in's code attempts,
    /// the sign-in is ended here.
    pub async fn failed(self) -> Result<Failure, InternalError> {
        let locked_until = self
            .held
            .iter()
            .filter(|h| h.kind != Kind::SignIn)
            .filter_map(|h| h.locked_until)
            .max();
        let sign_in_ended = self
            .held
            .iter()
            .any(|h| h.kind == Kind::SignIn && h.locked_until.is_some());
        if sign_in_ended {
            self.end_sign_in().await?;
        }
        Ok(Failure {
            locked_until,
            sign_in_ended,
        })
    }

    /// Consumes the pending interaction (the user starts again from the application), then
    /// forgets its code bucket.
    async fn end_sign_in(&self) -> Result<(), InternalError> {
        let t = self.throttle;
        if let Some(hash) = &self.sign_in {
            t.store.delete_grant(&t.tenant, hash).await?;
            t.store
                .clear_failures(&t.tenant, &format!("interaction:{hash}"))
                .await?;
        }
        Ok(())
    }
}
