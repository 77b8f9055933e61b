//! Administration: users, sessions, keys, the audit log. Only callers in the admin group.

use crate::audit::{Draft, Event, Outcome, Record};
use crate::crypto::{SigningKey, StoredKey};
use crate::error::{Error, Result};
use crate::ids::{GroupName, SessionId, UserId, Username};
use crate::model::{LeaseScope, User};
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};

use super::{Broker, Caller, NewCode};

/// The longest an account that ends may be set to last, from now.
const MAX_TERM_DAYS: i64 = 3 * 366;

/// An account's end and its sponsor, as an administrator writes them: `2026-12-31` (the end of
/// that day, UTC) or an RFC 3339 time, and the sponsor's user name.
#[derive(Clone, Copy, Debug)]
pub struct Terms<'a> {
    pub expires: &'a str,
    pub sponsor: &'a str,
}

/// What [`Broker::expire_accounts`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExpiredAccounts {
    pub alerted: usize,
    pub ended: usize,
}

/// Proof the caller is an administrator. Only [`Broker::admin`] constructs it.
pub struct Admin<'a>(&'a Caller);

impl Admin<'_> {
    /// The administrator acting, for audit records.
    pub(super) fn id(&self) -> &UserId {
        &self.0.user.id
    }

    pub(super) fn name(&self) -> &Username {
        &self.0.user.name
    }
}

#[derive(Debug, serde::Serialize)]
pub struct UserInfo {
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub enrolled: bool,
    pub created_at: Timestamp,
    /// When the account ends by itself, for contractors and vendors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The user id of the person who vouches for an account that ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        UserInfo {
            id: u.id.to_string(),
            name: u.name.to_string(),
            groups: u.groups.iter().map(ToString::to_string).collect(),
            disabled: u.disabled,
            enrolled: u.enrolled(),
            created_at: u.created_at,
            expires_at: u.expires_at,
            sponsor: u.sponsor.as_ref().map(ToString::to_string),
        }
    }
}

/// The reason recorded on everything a disable ends.
const USER_DISABLED: &str = "user disabled";

/// A disabled user and what the disable revoked.
#[derive(Debug, serde::Serialize)]
pub struct Disabled {
    #[serde(flatten)]
    pub user: UserInfo,
    /// Leases (credentials on backends) this disable revoked.
    pub leases_revoked: usize,
    /// The SCIM tokens the person had made (as an administrator), revoked: whoever kept a
    /// copy cannot provision, nor enable anyone again, with it.
    pub scim_tokens_revoked: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub published_until: Option<Timestamp>,
    pub signing: bool,
}

impl Broker {
    /// Proof that `caller` administers, or a refusal that is itself audited.
    pub async fn admin<'a>(&self, caller: &'a Caller, action: &str) -> Result<Admin<'a>> {
        if caller.user.in_group(&self.cfg.admin_group) {
            return Ok(Admin(caller));
        }
        let d = Draft::new(self.now(), Event::RequestRefused, Outcome::Failure).actor(&caller.user.id).reason("admin_required").detail("action", action);
        self.commit(Change::audit_only(d)).await?;
        Err(Error::forbidden("admin_required", format!("this needs a member of the {} group", self.cfg.admin_group)))
    }

    pub(super) async fn target_user(&self, name: &str) -> Result<User> {
        let name = Username::parse(name)?;
        self.store.user_by_name(&name).await?.ok_or_else(|| Error::not_found("unknown_user", format!("no user named {name}")))
    }

    /// A new person, with an enrollment code. `terms` (an end and a sponsor) make it an
    /// account that ends by itself: a contractor's or a vendor's.
    pub async fn add_user(&self, admin: &Admin<'_>, name: &str, groups: &[String], terms: Option<Terms<'_>>) -> Result<NewCode> {
        let name = Username::parse(name)?;
        let groups = groups.iter().map(|g| GroupName::parse(g)).collect::<Result<Vec<_>>>()?;
        if self.store.user_by_name(&name).await?.is_some() {
            return Err(Error::conflict("user_exists", format!("a user named {name} already exists")));
        }
        let now = self.now();
        let terms = match terms {
            Some(t) => Some(self.terms(t, None, now).await?),
            None => None,
        };
        let user = User {
            id: UserId::random(&mut *self.rng()),
            name: name.clone(),
            groups,
            disabled: false,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            created_at: now,
            expires_at: terms.as_ref().map(|(at, _)| *at),
            sponsor: terms.as_ref().map(|(_, s)| s.id.clone()),
        };
        let (row, code) = self.mint_enrollment(&user, now);
        let group_list: Vec<&str> = user.groups.iter().map(|g| g.as_str()).collect();
        let mut d = Draft::new(now, Event::UserCreated, Outcome::Success)
            .actor(&admin.0.user.id)
            .subject(&user.id)
            .detail("name", &name)
            .detail("groups", group_list.join(","));
        if let Some((at, sponsor)) = &terms {
            d = d.detail("expires_at", at).detail("sponsor", &sponsor.name);
        }
        self.commit(Change::default().with(Mutation::InsertUser(user)).with(Mutation::InsertCode(row)).record(d)).await?;
        Ok(code)
    }

    /// A new enrollment code for an existing user: one whose code expired before they used
    /// it, or who lost their authenticator. Their current credentials keep working until
    /// they enroll again. Every older unused code of theirs is void from now on, as the
    /// newest password-reset link is the only one that works elsewhere.
    pub async fn reissue_enrollment(&self, admin: &Admin<'_>, name: &str) -> Result<NewCode> {
        let user = self.target_user(name).await?;
        let now = self.now();
        let (row, code) = self.mint_enrollment(&user, now);
        let d = Draft::new(now, Event::EnrollmentIssued, Outcome::Success).actor(&admin.0.user.id).subject(&user.id).detail("expires_at", code.expires_at);
        // Expired before the new code is inserted, which the expiry would void too.
        let change = Change::default().with(Mutation::ExpireUserCodes { user: user.id.clone(), at: now }).with(Mutation::InsertCode(row)).record(d);
        self.commit(change).await?;
        Ok(code)
    }

    /// Checks an account's terms: an end in the future (at most `MAX_TERM_DAYS` away) and a
    /// sponsor who is an enabled person whose own account does not end (and not the person).
    pub(super) async fn terms(&self, t: Terms<'_>, person: Option<&UserId>, now: Timestamp) -> Result<(Timestamp, User)> {
        let at = Timestamp::parse_end(t.expires)
            .ok_or_else(|| Error::invalid("invalid_expiry", format!("{:?} is not a date (2026-12-31) or an RFC 3339 time", crate::ids::truncate(t.expires))))?;
        if at <= now {
            return Err(Error::invalid("invalid_expiry", format!("{at} has passed; to end the account now, disable it")));
        }
        if at.0 - now.0 > MAX_TERM_DAYS * 86_400 {
            return Err(Error::invalid("invalid_expiry", format!("an account ends within {MAX_TERM_DAYS} days; extend it later with `stint user expiry`")));
        }
        let sponsor = self
            .target_user(t.sponsor)
            .await
            .map_err(|_| Error::invalid("invalid_sponsor", format!("no user named {:?} to sponsor this account", crate::ids::truncate(t.sponsor))))?;
        if sponsor.disabled || sponsor.expires_at.is_some() || Some(&sponsor.id) == person {
            return Err(Error::invalid(
                "invalid_sponsor",
                format!("{} cannot sponsor it: a sponsor is an enabled person whose own account does not end", sponsor.name),
            ));
        }
        Ok((at, sponsor))
    }

    /// Sets when `name`'s account ends and who sponsors it, or (`None`) makes it one that does
    /// not end. The sponsor is alerted again before the new end.
    pub async fn set_expiry(&self, admin: &Admin<'_>, name: &str, terms: Option<Terms<'_>>) -> Result<UserInfo> {
        let mut user = self.target_user(name).await?;
        let now = self.now();
        let terms = match terms {
            Some(t) => Some(self.terms(t, Some(&user.id), now).await?),
            None => None,
        };
        let mut d = Draft::new(now, Event::UserExpiryChanged, Outcome::Success).actor(admin.id()).subject(&user.id);
        match &terms {
            Some((at, sponsor)) => d = d.detail("expires_at", at).detail("sponsor", &sponsor.name),
            None => d = d.detail("expires_at", "never"),
        }
        user.expires_at = terms.as_ref().map(|(at, _)| *at);
        user.sponsor = terms.map(|(_, s)| s.id);
        let m = Mutation::SetUserExpiry { user: user.id.clone(), expires_at: user.expires_at, sponsor: user.sponsor.clone() };
        self.commit(Change::default().with(m).record(d)).await?;
        Ok(UserInfo::from(&user))
    }

    /// Ends the accounts whose time has come, as a disable does (everything they hold ends),
    /// and alerts the sponsors of those ending within `[users] expiry_alert`, once each. Runs
    /// with the housekeeping, on every replica: the alert is claimed in the store, so one
    /// replica sends it.
    pub async fn expire_accounts(&self) -> Result<ExpiredAccounts> {
        let now = self.now();
        let mut out = ExpiredAccounts::default();
        self.apply_configured_accounts(now).await?;
        for user in self.store.expiring_unalerted(now.plus(self.cfg.expiry_alert)).await? {
            let (Some(at), Some(sponsor_id)) = (user.expires_at, &user.sponsor) else { continue };
            let sponsor = self.store.user_by_id(sponsor_id).await?.map_or_else(|| sponsor_id.to_string(), |s| s.name.to_string());
            let d = Draft::new(now, Event::UserExpiryAlerted, Outcome::Success)
                .actor("stint")
                .subject(&user.id)
                .detail("sponsor", &sponsor)
                .detail("expires_at", at);
            match self.commit(Change::default().with(Mutation::MarkExpiryAlerted { user: user.id.clone(), at: now }).record(d)).await {
                Ok(_) => {}
                Err(e) if e.code() == "already_alerted" => continue,
                Err(e) => return Err(e),
            }
            let summary = format!("{}'s account ends at {at}; its sponsor {sponsor} can extend it with `stint user expiry {}`", user.name, user.name);
            self.alerter.send(
                crate::alerts::Alert::new(crate::alerts::AlertKind::AccountExpiring, now, summary)
                    .detail("user", &user.name)
                    .detail("sponsor", &sponsor)
                    .detail("expires_at", at),
            );
            out.alerted += 1;
        }
        for user in self.store.users().await?.into_iter().filter(|u| !u.disabled && u.expired_at(now)) {
            let sponsor = match &user.sponsor {
                Some(id) => self.store.user_by_id(id).await?.map_or_else(|| id.to_string(), |s| s.name.to_string()),
                None => String::new(),
            };
            let at = user.expires_at.unwrap_or(now);
            let d = Draft::new(now, Event::UserExpired, Outcome::Success).actor("stint").subject(&user.id).detail("sponsor", &sponsor).detail("expires_at", at);
            self.commit(Change::audit_only(d)).await?;
            self.disable_person("stint", "account expiry", user).await?;
            out.ended += 1;
        }
        Ok(out)
    }

    /// Gives the accounts `[[users.account]]` names the end and sponsor it sets, when they
    /// differ (a person created later, by SSO or SCIM, gets them at the next housekeeping).
    /// An entry whose sponsor cannot sponsor (disabled, or an account that ends) waits until
    /// they can.
    async fn apply_configured_accounts(&self, now: Timestamp) -> Result<()> {
        for a in &self.cfg.accounts {
            let (Some(user), Some(sponsor)) = (self.store.user_by_name(&a.name).await?, self.store.user_by_name(&a.sponsor).await?) else { continue };
            if user.expires_at == Some(a.expires_at) && user.sponsor.as_ref() == Some(&sponsor.id) {
                continue;
            }
            if sponsor.disabled || sponsor.expires_at.is_some() {
                continue;
            }
            let d = Draft::new(now, Event::UserExpiryChanged, Outcome::Success)
                .actor("config")
                .subject(&user.id)
                .detail("expires_at", a.expires_at)
                .detail("sponsor", &sponsor.name);
            let m = Mutation::SetUserExpiry { user: user.id.clone(), expires_at: Some(a.expires_at), sponsor: Some(sponsor.id) };
            self.commit(Change::default().with(m).record(d)).await?;
        }
        Ok(())
    }

    pub async fn list_users(&self, _admin: &Admin<'_>) -> Result<Vec<UserInfo>> {
        Ok(self.store.users().await?.iter().map(UserInfo::from).collect())
    }

    /// Disables a user and ends everything they hold, in one change: their sessions (and so
    /// every role token), every lease on every backend, their grants (approved requests and
    /// break-glass), their pending requests, their unused enrollment or reset codes and their
    /// SSO logins not yet redeemed. Re-enabling restores none of it.
    pub async fn disable_user(&self, admin: &Admin<'_>, name: &str) -> Result<Disabled> {
        let user = self.target_user(name).await?;
        if user.id == admin.0.user.id {
            return Err(Error::conflict("cannot_disable_self", "you cannot disable yourself; ask another administrator"));
        }
        self.disable_person(&admin.0.user.id.to_string(), admin.0.user.name.as_str(), user).await
    }

    /// Disables `user` and ends everything they hold, in one transaction: sessions (and the
    /// tokens derived from them), grants and pending requests, unused codes, SSO logins in
    /// flight, and leases (then ended on their backends). `actor` is who the audit records
    /// name (an administrator's id, `scim:NAME`), `by` what a voided request says decided it.
    pub(super) async fn disable_person(&self, actor: &str, by: &str, mut user: User) -> Result<Disabled> {
        let now = self.now();
        let d = Draft::new(now, Event::UserDisabled, Outcome::Success).actor(actor).subject(&user.id);
        let r = Draft::new(now, Event::SessionRevoked, Outcome::Success).actor(actor).subject(&user.id).detail("scope", "all sessions of user");
        // The SCIM tokens they made, all revoked in the transaction; each one read here is
        // recorded. One made concurrently cannot commit after the disable: its creation
        // re-checks that its maker is enabled.
        let scim_tokens: Vec<_> =
            self.store.scim_tokens().await?.into_iter().filter(|t| t.created_by == user.id && t.revoked_at.is_none()).map(|t| t.name).collect();
        let mut change = Change::default();
        for name in &scim_tokens {
            change = change.record(
                Draft::new(now, Event::ScimTokenRevoked, Outcome::Success).actor(actor).subject(name).reason(USER_DISABLED).detail("created_by", &user.id),
            );
        }
        let change = change
            .with(Mutation::SetUserDisabled { user: user.id.clone(), disabled: true })
            .with(Mutation::RevokeUserSessions { user: user.id.clone(), at: now })
            .with(Mutation::VoidRequestsOf { user: user.id.clone(), by: by.to_owned(), actor: actor.to_owned(), at: now, reason: USER_DISABLED.into() })
            .with(Mutation::ExpireUserCodes { user: user.id.clone(), at: now })
            .with(Mutation::DenySsoAttemptsOf { user: user.id.clone(), reason: USER_DISABLED.into() })
            .with(Mutation::RevokeScimTokensOf { user: user.id.clone(), at: now })
            .with(Mutation::ExpireJoinTokensOf { user: user.id.clone(), at: now })
            .record(d)
            .record(r);
        self.commit(self.revocation(change, &actor, LeaseScope::User(user.id.clone()), USER_DISABLED)).await?;
        self.reap_now().await;
        // What this disable revoked (not an earlier one): for the administrator's summary.
        let leases = self.store.leases(Some(&user.id), true, 10_000).await?;
        let leases_revoked = leases.iter().filter(|l| l.revoked_at == Some(now) && l.revoke_reason.as_deref() == Some(USER_DISABLED)).count();
        user.disabled = true;
        Ok(Disabled { user: UserInfo::from(&user), leases_revoked, scim_tokens_revoked: scim_tokens.iter().map(ToString::to_string).collect() })
    }

    /// Enables a disabled person; `actor` as for [`Self::disable_person`].
    pub(super) async fn enable_person(&self, actor: &str, mut user: User) -> Result<UserInfo> {
        let d = Draft::new(self.now(), Event::UserEnabled, Outcome::Success).actor(actor).subject(&user.id);
        self.commit(Change::default().with(Mutation::SetUserDisabled { user: user.id.clone(), disabled: false }).record(d)).await?;
        user.disabled = false;
        Ok(UserInfo::from(&user))
    }

    /// Replaces a user's groups. For users of a provider that sends a groups claim, the
    /// provider's groups replace these again at their next login.
    pub async fn set_groups(&self, admin: &Admin<'_>, name: &str, groups: &[String]) -> Result<UserInfo> {
        let mut user = self.target_user(name).await?;
        let mut groups = groups.iter().map(|g| GroupName::parse(g)).collect::<Result<Vec<_>>>()?;
        groups.sort();
        groups.dedup();
        let list: Vec<&str> = groups.iter().map(GroupName::as_str).collect();
        let d = Draft::new(self.now(), Event::UserGroupsChanged, Outcome::Success).actor(&admin.0.user.id).subject(&user.id).detail("groups", list.join(","));
        self.commit(Change::default().with(Mutation::SetUserGroups { user: user.id.clone(), groups: groups.clone() }).record(d)).await?;
        user.groups = groups;
        Ok(UserInfo::from(&user))
    }

    pub async fn enable_user(&self, admin: &Admin<'_>, name: &str) -> Result<UserInfo> {
        let user = self.target_user(name).await?;
        self.enable_person(&admin.0.user.id.to_string(), user).await
    }

    /// Revokes one session: an administrator may revoke any, a user their own.
    pub async fn revoke_session(&self, caller: &Caller, id: &str) -> Result<()> {
        let id = SessionId::parse(id)?;
        let Some((session, _)) = self.store.session(&id).await? else {
            return Err(Error::not_found("unknown_session", format!("no session {id}")));
        };
        if session.user_id != caller.user.id {
            self.admin(caller, "session.revoke").await?;
        }
        let d = Draft::new(self.now(), Event::SessionRevoked, Outcome::Success).actor(&caller.user.id).subject(&id).detail("owner", &session.user_id);
        let change = Change::default().with(Mutation::RevokeSession { session: id.clone(), at: self.now() }).record(d);
        self.commit(self.revocation(change, &caller.user.id, LeaseScope::Session(id), "session revoked")).await?;
        self.reap_now().await;
        Ok(())
    }

    /// A new key signs from now on; the old one stays published until its last token expires.
    pub async fn rotate_keys(&self, admin: &Admin<'_>) -> Result<KeyInfo> {
        let now = self.now();
        let old = self.keyring()?.signer.kid().to_owned();
        let key = SigningKey::generate(&mut *self.rng());
        let stored = StoredKey::seal(&key, &self.kek, now, &mut *self.rng());
        // Published as long as any token it signed may live: role tokens and CI credentials.
        let longest = self.cfg.roles.longest_ttl().max(Ttl::from_secs(super::CI_TTL_MAX_SECS)?);
        let verify_until = now.plus(longest);
        let d = Draft::new(now, Event::KeyRotated, Outcome::Success)
            .actor(&admin.0.user.id)
            .subject(key.kid())
            .detail("retired", &old)
            .detail("retired_published_until", verify_until);
        // Retire every other unretired key, not only the one we believe signs: a concurrent
        // rotation (or one on a replica that has not reloaded yet) must not leave a key behind.
        let keep = key.kid().to_owned();
        let change = Change::default().with(Mutation::InsertKey(stored)).with(Mutation::RetireKeysExcept { keep, at: now, verify_until }).record(d);
        self.commit(change).await?;
        self.reload_keys().await?;
        Ok(KeyInfo { kid: key.kid().to_owned(), created_at: now, retired_at: None, published_until: None, signing: true })
    }

    pub async fn list_keys(&self, _admin: &Admin<'_>) -> Result<Vec<KeyInfo>> {
        let signer = self.keyring()?.signer.kid().to_owned();
        let now = self.now();
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.publishable(now))
            .map(|k| KeyInfo { signing: k.kid == signer, kid: k.kid, created_at: k.created_at, retired_at: k.retired_at, published_until: k.verify_until })
            .collect())
    }

    pub async fn audit_page(&self, _admin: &Admin<'_>, after: u64, limit: u32) -> Result<(Vec<Record>, Option<(u64, String)>)> {
        let head = self.store.audit_head().await?;
        // Sequence numbers are stored as signed 64-bit integers; nothing lies beyond that.
        let after = after.min(i64::MAX as u64);
        let records = self.store.audit_after(after, limit.clamp(1, 1000)).await?;
        Ok((records, head))
    }
}
