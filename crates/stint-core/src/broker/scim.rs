//! The identity provider's side door: SCIM bearer tokens. An administrator makes one per
//! provider (`stint scim token create okta`), shown once; the provider presents it on every
//! SCIM request; revoking it shuts the door at once (read on every request, never cached).

use crate::audit::{Draft, Event, Outcome};
use crate::bearer::{self, BearerKind};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use crate::ids::{truncate, ScimTokenName, UserId};
use crate::model::User;
use crate::scim::ScimToken;
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::Timestamp;

use super::admin::Admin;
use super::Broker;

/// A new SCIM token, shown once to the administrator who made it.
pub struct NewScimToken {
    pub name: ScimTokenName,
    pub token: SecretString,
    pub created_at: Timestamp,
}

/// A SCIM token as `stint scim token list` shows it; never the secret.
#[derive(Debug, serde::Serialize)]
pub struct ScimTokenInfo {
    pub name: ScimTokenName,
    pub created_by: String,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl From<&ScimToken> for ScimTokenInfo {
    fn from(t: &ScimToken) -> Self {
        ScimTokenInfo { name: t.name.clone(), created_by: t.created_by.to_string(), created_at: t.created_at, revoked_at: t.revoked_at }
    }
}

/// An identity provider whose SCIM token is live: what SCIM changes are made by.
#[derive(Debug)]
pub struct ScimCaller {
    pub token: ScimToken,
    pub addr: String,
}

impl Broker {
    /// A new SCIM token named `name`; a live token of that name must be revoked first.
    pub async fn create_scim_token(&self, admin: &Admin<'_>, name: &str) -> Result<NewScimToken> {
        let name = ScimTokenName::parse(name)?;
        let now = self.now();
        let b = bearer::mint(BearerKind::Scim, &mut *self.rng());
        let row =
            ScimToken { name: name.clone(), lookup: b.lookup, secret_hash: b.hash.to_vec(), created_by: admin.id().clone(), created_at: now, revoked_at: None };
        let d = Draft::new(now, Event::ScimTokenCreated, Outcome::Success).actor(admin.id()).subject(&name);
        self.commit(Change::default().with(Mutation::InsertScimToken(row)).record(d)).await?;
        Ok(NewScimToken { name, token: b.value, created_at: now })
    }

    pub async fn list_scim_tokens(&self, _admin: &Admin<'_>) -> Result<Vec<ScimTokenInfo>> {
        Ok(self.store.scim_tokens().await?.iter().map(ScimTokenInfo::from).collect())
    }

    /// Revokes the live token `name`: the provider's next request is refused.
    pub async fn revoke_scim_token(&self, admin: &Admin<'_>, name: &str) -> Result<()> {
        let name = ScimTokenName::parse(name)?;
        let now = self.now();
        let d = Draft::new(now, Event::ScimTokenRevoked, Outcome::Success).actor(admin.id()).subject(&name);
        self.commit(Change::default().with(Mutation::RevokeScimToken { name, at: now }).record(d)).await.map(drop)
    }

    /// The provider behind a SCIM request's bearer `value`, if its token is live. A refusal is
    /// audited, folded per address (a provider misconfigured, or someone guessing, costs a
    /// bounded number of records).
    pub async fn scim_caller(&self, value: Option<&str>, addr: &str) -> Result<ScimCaller> {
        let now = self.now();
        let found = match value.map(|v| bearer::parse(BearerKind::Scim, v, "invalid_scim_token")) {
            Some(Ok(presented)) => self.store.scim_token(&presented.lookup).await?.filter(|t| presented.matches(&t.secret_hash)),
            _ => None,
        };
        match found {
            Some(t) if t.revoked_at.is_none() => Ok(ScimCaller { token: t, addr: truncate(addr) }),
            found => {
                let (code, why) = match (value, found) {
                    (None, _) => ("missing_credentials", "a SCIM request needs Authorization: Bearer <the token from `stint scim token create`>"),
                    (Some(_), Some(_)) => {
                        ("scim_token_revoked", "this SCIM token was revoked; an administrator makes a new one with `stint scim token create`")
                    }
                    (Some(_), None) => {
                        ("invalid_scim_token", "not a live SCIM token of this server; an administrator makes one with `stint scim token create`")
                    }
                };
                let addr = truncate(addr);
                let d = Draft::new(now, Event::ScimDenied, Outcome::Failure).actor(&addr).reason(code).detail("addr", &addr);
                self.audit_refusal(FoldKey::of(&d, "scim", &addr), d).await?;
                Err(Error::unauthenticated(code, why))
            }
        }
    }
}

impl Broker {
    /// Every person, for the provider to list and filter (local users included: a provider
    /// that starts provisioning finds existing accounts by `userName`).
    pub async fn scim_users(&self, _caller: &ScimCaller) -> crate::error::Result<Vec<User>> {
        self.store.users().await
    }

    /// The person with SCIM `id` (their user id).
    pub async fn scim_user(&self, _caller: &ScimCaller, id: &str) -> crate::error::Result<User> {
        let unknown = || Error::not_found("unknown_user", format!("no user with id {:?}", truncate(id)));
        let id = UserId::parse(id).map_err(|_| unknown())?;
        self.store.user_by_id(&id).await?.ok_or_else(unknown)
    }

    /// Sets whether the person is active, as the provider says. Deactivating disables them and
    /// ends everything they hold, in one transaction ([`Broker::disable_person`]), with the
    /// provider (`scim:NAME`) as the actor; reactivating enables them (what a disable ended
    /// stays ended). Setting what already holds changes nothing and records nothing.
    pub async fn scim_set_active(&self, caller: &ScimCaller, id: &str, active: bool) -> crate::error::Result<User> {
        let user = self.scim_user(caller, id).await?;
        if user.disabled != active {
            return Ok(user);
        }
        let actor = caller.token.actor();
        if active {
            self.enable_person(&actor, user.clone()).await?;
        } else {
            self.disable_person(&actor, &actor, user.clone()).await?;
        }
        Ok(User { disabled: !active, ..user })
    }
}
