//! Authentication: bootstrap, enrollment, password + TOTP login, session bearers.

use crate::audit::{Draft, Event, Outcome};
use crate::bearer::{self, BearerKind};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use crate::ids::{SessionId, UserId, Username};
use crate::model::{CodePurpose, OneTimeCode, Session, User};
use crate::password::NewPassword;
use crate::secret::{SecretBytes, SecretString};
use crate::store::{Change, Mutation};
use crate::time::Timestamp;
use crate::totp;

use super::Broker;

/// The `method` of password logins' records, and the scope their refusals fold in.
const PASSWORD_METHOD: &str = "password+totp";

/// A login attempt as received.
pub struct LoginRequest {
    pub username: String,
    pub password: SecretString,
    pub totp: SecretString,
    /// The caller's address, for throttling and the audit record.
    pub addr: String,
}

/// A session bearer, shown to its holder once.
pub struct NewSession {
    pub token: SecretString,
    pub session_id: SessionId,
    pub user: Username,
    pub expires_at: Timestamp,
}

/// A one-time code, shown to the administrator once.
pub struct NewCode {
    pub username: Username,
    pub code: SecretString,
    pub expires_at: Timestamp,
}

/// The result of enrollment: the TOTP secret, shown to the user once.
pub struct Enrolled {
    pub username: Username,
    pub otpauth_uri: SecretString,
    pub totp_secret_base32: SecretString,
}

/// An authenticated caller: an active session of an enabled user.
/// Only [`Broker::authenticate`] constructs it.
#[derive(Debug)]
pub struct Caller {
    pub(super) user: User,
    pub(super) session: Session,
}

impl Caller {
    pub fn user(&self) -> &User {
        &self.user
    }
    pub fn session(&self) -> &Session {
        &self.session
    }
}

/// A one-time code as presented, with what its checks audit: `event`, from `addr`.
struct CodeUse<'a> {
    kind: BearerKind,
    purpose: CodePurpose,
    value: &'a str,
    event: Event,
    addr: &'a str,
}

pub(super) fn totp_context(user: &UserId) -> String {
    format!("totp:{user}")
}

/// The message for every login failure before the password and code both verified, so a
/// caller cannot tell an unknown user from a wrong password.
const BAD_LOGIN: &str = "invalid username, password or one-time code";
/// The message for a wrong second factor after the first one passed.
pub(super) const BAD_TOTP: &str = "wrong one-time code; enter the current code from your authenticator app";

impl Broker {
    pub(super) async fn issue_bootstrap(&self, now: Timestamp) -> Result<(SecretString, Timestamp)> {
        let b = bearer::mint(BearerKind::Bootstrap, &mut *self.rng());
        let expires_at = now.plus(self.cfg.bootstrap_ttl);
        let code = OneTimeCode { lookup: b.lookup, secret_hash: b.hash.to_vec(), purpose: CodePurpose::Bootstrap, user_id: None, expires_at, used_at: None };
        let d = Draft::new(now, Event::BootstrapIssued, Outcome::Success).actor("system").detail("expires_at", expires_at);
        self.commit(Change::default().with(Mutation::ExpireBootstrapCodes { at: now }).with(Mutation::InsertCode(code)).record(d)).await?;
        Ok((b.value, expires_at))
    }

    /// Checks a presented one-time code; on failure audits `event` with the reason.
    async fn check_code(&self, u: &CodeUse<'_>) -> Result<OneTimeCode> {
        let now = self.now();
        let code = match u.purpose {
            CodePurpose::Bootstrap => "invalid_bootstrap_token",
            CodePurpose::Enrollment => "invalid_enrollment_code",
        };
        let found = match bearer::parse(u.kind, u.value, code) {
            Ok(p) => self.store.code(&p.lookup).await?.filter(|row| row.purpose == u.purpose && p.matches(&row.secret_hash)),
            Err(_) => None,
        };
        let reason = match &found {
            None => Some("unknown_code"),
            Some(row) if row.used_at.is_some() => Some("code_used"),
            Some(row) if now >= row.expires_at => Some("code_expired"),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            self.observer.auth_failed(reason);
            self.commit(Change::audit_only(Draft::new(now, u.event, Outcome::Failure).actor(u.addr).reason(reason))).await?;
            return Err(Error::unauthenticated(
                code,
                format!("the {} code is unknown, used or expired; ask an administrator for a new one", u.purpose.as_str()),
            ));
        }
        found.ok_or_else(|| Error::Internal("checked code vanished".into()))
    }

    /// Commits `change`, which consumes the code `u` presented. When a concurrent use (or a
    /// newer code voiding this one) committed since the check, the store refuses the change
    /// (`code_used`): the code is checked again, so the attempt that lost the race gets the
    /// answer and the audit record of a later reuse.
    async fn commit_code_use(&self, u: &CodeUse<'_>, change: Change) -> Result<()> {
        match self.commit(change).await {
            Err(e) if e.code() == "code_used" => {
                self.check_code(u).await?;
                Err(e)
            }
            other => other.map(drop),
        }
    }

    /// Uses the bootstrap token to create the first administrator; returns their enrollment code.
    pub async fn bootstrap(&self, token: &str, username: &str, addr: &str) -> Result<NewCode> {
        let u = CodeUse { kind: BearerKind::Bootstrap, purpose: CodePurpose::Bootstrap, value: token, event: Event::BootstrapUsed, addr };
        let row = self.check_code(&u).await?;
        let name = Username::parse(username)?;
        let now = self.now();
        let user = User {
            id: UserId::random(&mut *self.rng()),
            name: name.clone(),
            groups: vec![self.cfg.admin_group.clone()],
            disabled: false,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            expires_at: None,
            sponsor: None,
            created_at: now,
        };
        let (enroll, code) = self.mint_enrollment(&user, now);
        let used = Draft::new(now, Event::BootstrapUsed, Outcome::Success).actor("bootstrap").subject(&user.id).detail("addr", addr);
        let created = Draft::new(now, Event::UserCreated, Outcome::Success)
            .actor("bootstrap")
            .subject(&user.id)
            .detail("name", &name)
            .detail("groups", &self.cfg.admin_group);
        let change = Change::default()
            .with(Mutation::ConsumeCode { lookup: row.lookup, at: now })
            // Another replica may have printed its own token: it dies with this one's use.
            .with(Mutation::ExpireBootstrapCodes { at: now })
            .with(Mutation::RequireNoEnrolledUsers)
            .with(Mutation::InsertUser(user))
            .with(Mutation::InsertCode(enroll))
            .record(used)
            .record(created);
        self.commit_code_use(&u, change).await?;
        Ok(code)
    }

    pub(super) fn mint_enrollment(&self, user: &User, now: Timestamp) -> (OneTimeCode, NewCode) {
        let b = bearer::mint(BearerKind::Enrollment, &mut *self.rng());
        let expires_at = now.plus(self.cfg.enrollment_ttl);
        let row = OneTimeCode {
            lookup: b.lookup,
            secret_hash: b.hash.to_vec(),
            purpose: CodePurpose::Enrollment,
            user_id: Some(user.id.clone()),
            expires_at,
            used_at: None,
        };
        (row, NewCode { username: user.name.clone(), code: b.value, expires_at })
    }

    /// Sets the password and a new TOTP secret of the user an enrollment code names.
    pub async fn enroll(&self, code: &str, password: SecretString, addr: &str) -> Result<Enrolled> {
        let u = CodeUse { kind: BearerKind::Enrollment, purpose: CodePurpose::Enrollment, value: code, event: Event::UserEnrolled, addr };
        let row = self.check_code(&u).await?;
        let password = NewPassword::parse(password)?;
        let user_id = row.user_id.clone().ok_or_else(|| Error::Internal("enrollment code without user".into()))?;
        let user = self.store.user_by_id(&user_id).await?.ok_or_else(|| Error::Internal("enrollment code for a missing user".into()))?;
        let now = self.now();
        if user.disabled || user.expired_at(now) {
            self.commit(Change::audit_only(Draft::new(now, Event::UserEnrolled, Outcome::Failure).actor(addr).subject(&user.id).reason("user_disabled")))
                .await?;
            return Err(Error::forbidden("user_disabled", "this user is disabled; ask an administrator"));
        }
        let password_hash = self.work.hash(password).await?;
        let secret = totp::generate_secret(&mut *self.rng());
        let totp_sealed = self.kek.seal(&totp_context(&user.id), secret.expose(), &mut *self.rng());
        let d = Draft::new(now, Event::UserEnrolled, Outcome::Success).actor(&user.id).subject(&user.id).detail("addr", addr);
        let change = Change::default()
            .with(Mutation::ConsumeCode { lookup: row.lookup, at: now })
            // Any other code the person still holds (an older reset, say) is void once they enrolled.
            .with(Mutation::ExpireUserCodes { user: user.id.clone(), at: now })
            .with(Mutation::SetCredentials { user: user.id.clone(), password_hash, totp_sealed })
            .record(d);
        self.commit_code_use(&u, change).await?;
        let issuer = self.totp_issuer();
        Ok(Enrolled {
            otpauth_uri: SecretString::new(totp::otpauth_uri(&secret, &issuer, user.name.as_str())),
            totp_secret_base32: SecretString::new(data_encoding::BASE32_NOPAD.encode(secret.expose())),
            username: user.name,
        })
    }

    fn totp_issuer(&self) -> String {
        let host = self.cfg.issuer.split("://").nth(1).unwrap_or(&self.cfg.issuer);
        format!("stint ({})", host.trim_end_matches('/'))
    }

    /// Counts an attempt against `addr_keys` (address budget) and `keys` (per-user budget)
    /// before its outcome is known, or refuses it while any key is locked (audited as `reason`).
    async fn throttle_attempt(&self, addr_keys: &[String], keys: &[String], req: &LoginRequest, reason: &str, now: Timestamp) -> Result<()> {
        let poisoned = || Error::Internal("throttle lock poisoned".into());
        let locked = {
            // Both locks in one fixed order, so the check and the count are one step.
            let mut by_addr = self.addr_throttle.lock().map_err(|_| poisoned())?;
            let mut by_user = self.throttle.lock().map_err(|_| poisoned())?;
            let blocked = addr_keys.iter().map(|k| by_addr.check(k, now)).chain(keys.iter().map(|k| by_user.check(k, now))).find_map(|r| r.err());
            match blocked {
                Some(secs) => Err(secs),
                None => by_addr.attempt(addr_keys, now).and_then(|()| by_user.attempt(keys, now)),
            }
        };
        let Err(secs) = locked else { return Ok(()) };
        self.observer.auth_failed(reason);
        let d = Draft::new(now, Event::LoginFailed, Outcome::Failure)
            .actor(&req.addr)
            .reason(reason)
            .detail("method", PASSWORD_METHOD)
            .detail("username", crate::ids::truncate(&req.username));
        self.audit_refusal(FoldKey::of(&d, PASSWORD_METHOD, &req.addr), d).await?;
        Err(Error::Throttled { retry_after_secs: secs.max(1) })
    }

    /// A login succeeded: its own keys are cleared, and its attempt taken back from the
    /// address's, whose earlier failures still count (one's own login between sprays must not
    /// reset the address's budget).
    fn throttle_clear(&self, addr_keys: &[String], keys: &[String]) {
        if let Ok(mut t) = self.addr_throttle.lock() {
            addr_keys.iter().for_each(|k| t.refund(k));
        }
        if let Ok(mut t) = self.throttle.lock() {
            keys.iter().for_each(|k| t.success(k));
        }
    }

    /// Audits a failed login, folded like other refusals ([`Broker::audit_refusal`]): a flood
    /// of wrong passwords for one name from one address is one record and a count per window.
    async fn login_failed(&self, req: &LoginRequest, user: Option<&User>, reason: &str, now: Timestamp) -> Result<()> {
        self.observer.auth_failed(reason);
        if let Some(u) = user {
            self.alert_login_failure(u, reason, &req.addr, PASSWORD_METHOD, now);
        }
        let mut d = Draft::new(now, Event::LoginFailed, Outcome::Failure).actor(&req.addr).reason(reason).detail("method", PASSWORD_METHOD);
        d = match user {
            Some(u) => d.subject(&u.id),
            None => d.detail("username", crate::ids::truncate(&req.username)),
        };
        self.audit_refusal(FoldKey::of(&d, PASSWORD_METHOD, &req.addr), d).await
    }

    /// Alerts on a disabled user's login, and once per window when a user's failures reach
    /// the free allowance (from one address, or at the second factor).
    pub(super) fn alert_login_failure(&self, user: &User, reason: &str, addr: &str, method: &str, now: Timestamp) {
        use crate::alerts::{Alert, AlertKind};
        if reason == "user_disabled" {
            let a = Alert::new(AlertKind::DisabledUserLogin, now, format!("Disabled user {} tried to log in from {addr}", user.name))
                .detail("user", &user.name)
                .detail("addr", addr)
                .detail("method", method);
            self.alerter.send(a);
            return;
        }
        let free = self.cfg.throttle.free;
        let counted = self.throttle.lock().map(|t| {
            let by_user = t.failures(&format!("user:{}|addr:{addr}", crate::ids::truncate(user.name.as_str())));
            by_user.max(t.failures(&format!("totp:{}", user.id)))
        });
        if counted.is_ok_and(|n| n == free.max(1)) {
            let a = Alert::new(AlertKind::RepeatedLoginFailures, now, format!("{} failed logins for {} (last from {addr}: {reason})", free.max(1), user.name))
                .detail("user", &user.name)
                .detail("addr", addr)
                .detail("reason", reason)
                .detail("failures", free.max(1));
            self.alerter.send(a);
        }
    }

    /// Password and a current, unused TOTP code → a session with an absolute expiry.
    ///
    /// Throttling, counted before the slow work so that concurrent attempts cannot slip by:
    /// every attempt counts against its address (a larger budget, for offices behind one NAT)
    /// and against (user, address); only attempts that got the password right count against
    /// the user's second factor. So nobody without
    /// the password can lock a user out from elsewhere, and someone with it cannot guess
    /// one-time codes from many addresses at once.
    pub async fn login(&self, req: LoginRequest) -> Result<NewSession> {
        let now = self.now();
        let name = crate::ids::truncate(&req.username);
        let by_addr = [format!("addr:{}", req.addr)];
        let by_user = [format!("user:{name}|addr:{}", req.addr)];
        self.throttle_attempt(&by_addr, &by_user, &req, "throttled", now).await?;
        let user = match Username::parse(&req.username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        // Same argon2 work whether or not the user exists or has enrolled.
        let password_ok = self.work.verify(req.password.clone(), user.as_ref().and_then(|u| u.password_hash.clone())).await;
        let Some(user) = user else {
            self.login_failed(&req, None, "unknown_user", now).await?;
            return Err(Error::unauthenticated("invalid_credentials", BAD_LOGIN));
        };
        let step = match (password_ok, &user.totp_sealed) {
            (true, Some(sealed)) => {
                let second = [format!("totp:{}", user.id)];
                self.throttle_attempt(&[], &second, &req, "throttled_second_factor", now).await?;
                let secret: SecretBytes = self.kek.open(&totp_context(&user.id), sealed)?;
                totp::verify(secret.expose(), req.totp.expose(), now)
            }
            _ => None,
        };
        let reason = match (password_ok, step) {
            (false, _) if !user.enrolled() => Some("not_enrolled"),
            (false, _) => Some("bad_password"),
            (true, None) => Some("bad_totp"),
            (true, Some(_)) => None,
        };
        if let Some(reason) = reason {
            self.login_failed(&req, Some(&user), reason, now).await?;
            return Err(Error::unauthenticated("invalid_credentials", BAD_LOGIN));
        }
        let step = step.unwrap_or_default();
        if step <= user.totp_last_step {
            self.login_failed(&req, Some(&user), "totp_replayed", now).await?;
            return Err(Error::unauthenticated("totp_replayed", "this one-time code was already used; wait for the next one"));
        }
        if user.disabled {
            self.login_failed(&req, Some(&user), "user_disabled", now).await?;
            return Err(Error::forbidden("user_disabled", "this user is disabled; ask an administrator"));
        }
        if user.expired_at(now) {
            self.login_failed(&req, Some(&user), "account_expired", now).await?;
            return Err(account_expired());
        }
        let by_user = [by_user[0].clone(), format!("totp:{}", user.id)];
        self.start_session(req, user, step, (&by_addr, &by_user), now).await
    }

    /// `keys`: the throttle keys (by address, by user) that a success clears.
    async fn start_session(&self, req: LoginRequest, user: User, step: i64, keys: (&[String], &[String]), now: Timestamp) -> Result<NewSession> {
        let (session, out) = self.mint_session(&user, now.plus(self.cfg.session_ttl), "password+totp", now);
        let ok = Draft::new(now, Event::LoginSucceeded, Outcome::Success)
            .actor(&user.id)
            .subject(&user.id)
            .detail("method", "password+totp")
            .detail("addr", &req.addr);
        let started = Draft::new(now, Event::SessionStarted, Outcome::Success).actor(&user.id).subject(&session.id).detail("expires_at", session.expires_at);
        // The user is re-checked inside the transaction: a disable that commits between our
        // read and this write must not leave a live session behind.
        let change = Change::default()
            .with(Mutation::RequireEnabledUser { user: user.id.clone() })
            .with(Mutation::AdvanceTotp { user: user.id.clone(), step })
            .with(Mutation::RequireSessionRoom { user: user.id.clone(), at: now, max: self.cfg.caps.sessions_per_person })
            .with(Mutation::InsertSession(session))
            .record(ok)
            .record(started);
        match self.commit(change).await {
            Ok(_) => {
                self.throttle_clear(keys.0, keys.1);
                Ok(out)
            }
            // A concurrent login used the same code, or a disable landed, since our read.
            Err(e) if e.code() == "totp_replayed" => {
                self.login_failed(&req, Some(&user), "totp_replayed", now).await?;
                Err(e)
            }
            Err(e) if e.code() == "user_disabled" => {
                self.login_failed(&req, Some(&user), "user_disabled", now).await?;
                Err(Error::forbidden("user_disabled", "this user is disabled; ask an administrator"))
            }
            // The person holds as many sessions as allowed: refused, and audited (folded, as
            // whoever has the password could spin on it).
            Err(e) if e.code() == "too_many_sessions" => {
                self.login_failed(&req, Some(&user), "too_many_sessions", now).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// A new session for `user` ending at `expires_at`: the row to store and the bearer to hand over once.
    pub(super) fn mint_session(&self, user: &User, expires_at: Timestamp, mfa: &str, now: Timestamp) -> (Session, NewSession) {
        let b = bearer::mint(BearerKind::Session, &mut *self.rng());
        let session = Session {
            id: SessionId::random(&mut *self.rng()),
            lookup: b.lookup,
            secret_hash: b.hash.to_vec(),
            user_id: user.id.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            mfa: mfa.to_owned(),
        };
        let out = NewSession { token: b.value, session_id: session.id.clone(), user: user.name.clone(), expires_at };
        (session, out)
    }

    /// Resolves a session bearer to its active session and enabled user.
    pub async fn authenticate(&self, bearer_value: &str) -> Result<Caller> {
        let now = self.now();
        let presented = bearer::parse(BearerKind::Session, bearer_value, "invalid_session")?;
        let Some((session, user)) = self.store.session_by_lookup(&presented.lookup).await? else {
            return Err(Error::unauthenticated("invalid_session", "unknown session; run `stint login`"));
        };
        if !presented.matches(&session.secret_hash) {
            return Err(Error::unauthenticated("invalid_session", "unknown session; run `stint login`"));
        }
        if session.revoked_at.is_some() {
            return Err(Error::unauthenticated("session_revoked", "this session was revoked; run `stint login`"));
        }
        if now >= session.expires_at {
            return Err(Error::unauthenticated("session_expired", "this session has ended; run `stint login`"));
        }
        if user.disabled {
            return Err(Error::forbidden("user_disabled", "this user is disabled; ask an administrator"));
        }
        if user.expired_at(now) {
            return Err(account_expired());
        }
        Ok(Caller { user, session })
    }

    /// Ends the caller's own session on the server.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        let now = self.now();
        let d = Draft::new(now, Event::SessionEnded, Outcome::Success).actor(&caller.user.id).subject(&caller.session.id).detail("by", "logout");
        let change = Change::default().with(Mutation::RevokeSession { session: caller.session.id.clone(), at: now }).record(d);
        let scope = crate::model::LeaseScope::Session(caller.session.id.clone());
        self.commit(self.revocation(change, &caller.user.id, scope, "logged out")).await?;
        self.reap_now().await;
        Ok(())
    }
}

/// An account past its end, before the housekeeping disables it (seconds at most).
fn account_expired() -> Error {
    Error::forbidden("account_expired", "this account has reached its end; its sponsor or an administrator can extend it (`stint user expiry`)")
}
