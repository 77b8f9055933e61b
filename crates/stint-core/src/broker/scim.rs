//! The identity provider's side door: SCIM bearer tokens. An administrator makes one per
//! provider (`stint scim token create okta`), shown once; the provider presents it on every
//! SCIM request; revoking it shuts the door at once (read on every request, never cached).

use crate::audit::{Draft, Event, Outcome};
use crate::bearer::{self, BearerKind};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use std::collections::BTreeMap;

use crate::ids::{truncate, GroupName, ScimGroupId, ScimTokenName, UserId, Username};
use crate::model::User;
use crate::scim::{GroupChanges, MemberChange, ScimGroup, ScimMatch, ScimProfile, ScimToken, UserChanges, UserView};
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::Timestamp;

use super::admin::{Admin, Terms};
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
        // Its maker must still be enabled as it commits: a disable revokes the tokens they
        // made, and one made concurrently must not escape it.
        let change = Change::default().with(Mutation::RequireEnabledUser { user: admin.id().clone() }).with(Mutation::InsertScimToken(row)).record(d);
        self.commit(change).await?;
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

/// A person as the provider sees them: the user and what the provider said about them.
#[derive(Clone, Debug)]
pub struct ScimPerson {
    pub user: User,
    pub profile: Option<ScimProfile>,
    /// The user name of the sponsor of an account that ends.
    pub sponsor: Option<Username>,
}

impl ScimPerson {
    pub fn view(&self) -> UserView<'_> {
        UserView { user: &self.user, profile: self.profile.as_ref() }
    }
}

fn unknown_user(id: &str) -> Error {
    Error::not_found("unknown_user", format!("no user with id {:?}", truncate(id)))
}

fn unknown_group(id: &str) -> Error {
    Error::not_found("unknown_group", format!("no group with id {:?}", truncate(id)))
}

impl Broker {
    /// Every person, for the provider to list and filter (local users included: a provider
    /// that starts provisioning finds existing accounts by `userName`).
    pub async fn scim_users(&self, _caller: &ScimCaller) -> Result<Vec<ScimPerson>> {
        let mut profiles: BTreeMap<UserId, ScimProfile> = self.store.scim_profiles().await?.into_iter().collect();
        let users = self.store.users().await?;
        let names: BTreeMap<UserId, Username> = users.iter().map(|u| (u.id.clone(), u.name.clone())).collect();
        Ok(users
            .into_iter()
            .map(|user| ScimPerson { profile: profiles.remove(&user.id), sponsor: user.sponsor.as_ref().and_then(|s| names.get(s).cloned()), user })
            .collect())
    }

    /// The person with SCIM `id` (their user id).
    pub async fn scim_user(&self, _caller: &ScimCaller, id: &str) -> Result<ScimPerson> {
        let id = UserId::parse(id).map_err(|_| unknown_user(id))?;
        let user = self.store.user_by_id(&id).await?.ok_or_else(|| unknown_user(id.as_str()))?;
        let profile = self.store.scim_profiles().await?.into_iter().find(|(u, _)| u == &id).map(|(_, p)| p);
        let sponsor = match &user.sponsor {
            Some(s) => self.store.user_by_id(s).await?.map(|s| s.name),
            None => None,
        };
        Ok(ScimPerson { user, profile, sponsor })
    }

    /// Refuses an `externalId` another person has (`external_id_taken`).
    async fn external_id_free(&self, external_id: Option<&str>, except: Option<&UserId>) -> Result<()> {
        let Some(want) = external_id else { return Ok(()) };
        if self.store.scim_profiles().await?.iter().any(|(u, p)| Some(u) != except && p.external_id.as_deref() == Some(want)) {
            return Err(Error::conflict("external_id_taken", format!("another person has the externalId {:?}", truncate(want))));
        }
        Ok(())
    }

    /// `POST /Users`: the provider provisions a person. They sign in through the provider
    /// (`[scim] provider`), so they get no password or enrollment code; their first sign-in is
    /// matched to them (by `externalId` or email). A taken `userName` is refused
    /// (`user_exists`): providers look a person up by `userName` before creating them, and
    /// then take over the existing account.
    pub async fn scim_create_user(&self, caller: &ScimCaller, name: &str, c: UserChanges) -> Result<ScimPerson> {
        let name = Username::parse(name)?;
        if self.store.user_by_name(&name).await?.is_some() {
            return Err(Error::conflict("user_exists", format!("a user named {name} already exists; find it with filter=userName eq \"{name}\"")));
        }
        let profile = ScimProfile { external_id: c.external_id.flatten(), email: c.email.flatten() };
        self.external_id_free(profile.external_id.as_deref(), None).await?;
        let now = self.now();
        let terms = match terms_of(c.expires.flatten(), c.sponsor.flatten())? {
            Some((expires, sponsor)) => Some(self.terms(Terms { expires: &expires, sponsor: &sponsor }, None, now).await?),
            None => None,
        };
        let mut user = User {
            id: UserId::random(&mut *self.rng()),
            name: name.clone(),
            groups: vec![],
            disabled: c.active == Some(false),
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            expires_at: terms.as_ref().map(|(at, _)| *at),
            sponsor: terms.as_ref().map(|(_, s)| s.id.clone()),
            created_at: now,
        };
        // A person the provider already lists in a group it maps gets that group at once.
        user.groups = self.cfg.scim.groups_of(&user, &self.store.scim_groups().await?);
        let list: Vec<&str> = user.groups.iter().map(GroupName::as_str).collect();
        let actor = caller.token.actor();
        let d = Draft::new(now, Event::UserCreated, Outcome::Success)
            .actor(&actor)
            .subject(&user.id)
            .detail("name", &name)
            .detail("groups", list.join(","))
            .detail("disabled", user.disabled.to_string());
        let d = match &terms {
            Some((at, sponsor)) => d.detail("expires_at", at).detail("sponsor", &sponsor.name),
            None => d,
        };
        let change = Change::default()
            .with(Mutation::InsertUser(user.clone()))
            .with(Mutation::PutScimProfile { user: user.id.clone(), profile: profile.clone(), at: now })
            .record(d);
        self.commit(change).await?;
        Ok(ScimPerson { user, profile: Some(profile), sponsor: terms.map(|(_, s)| s.name) })
    }

    /// `PUT` and `PATCH /Users/{id}`: what the provider changes of a person. `name` (PUT's
    /// `userName`) must be theirs: people are not renamed. Deactivating disables them and
    /// ends everything they hold, in one transaction ([`Broker::disable_person`]), with the
    /// provider (`scim:NAME`) as the actor; reactivating enables them (what a disable ended
    /// stays ended). Setting what already holds changes nothing and records nothing.
    pub async fn scim_update_user(&self, caller: &ScimCaller, id: &str, name: Option<&str>, c: UserChanges) -> Result<ScimPerson> {
        let mut person = self.scim_user(caller, id).await?;
        if name.is_some_and(|n| !n.eq_ignore_ascii_case(person.user.name.as_str())) {
            return Err(Error::invalid("mutability", "stint does not rename people: userName cannot change"));
        }
        let actor = caller.token.actor();
        let now = self.now();
        // Everything is checked before anything is written (RFC 7644 §3.5.2: a request that
        // fails changes nothing): the profile and the account's terms in one transaction,
        // then `active`, which a disable carries out in its own.
        let mut change = Change::default();
        let before = person.profile.clone().unwrap_or_default();
        let after = ScimProfile { external_id: c.external_id.unwrap_or(before.external_id.clone()), email: c.email.unwrap_or(before.email.clone()) };
        let profile_changes = after != before || (person.profile.is_none() && after != ScimProfile::default());
        if profile_changes {
            self.external_id_free(after.external_id.as_deref(), Some(&person.user.id)).await?;
            let mut fields = vec![];
            if after.external_id != before.external_id {
                fields.push("externalId");
            }
            if after.email != before.email {
                fields.push("emails");
            }
            let d = Draft::new(now, Event::ScimUserUpdated, Outcome::Success).actor(&actor).subject(&person.user.id).detail("fields", fields.join(","));
            change = change.with(Mutation::PutScimProfile { user: person.user.id.clone(), profile: after.clone(), at: now }).record(d);
        }
        let mut new_terms = None;
        if c.expires.is_some() || c.sponsor.is_some() {
            let expires = c.expires.unwrap_or_else(|| person.user.expires_at.map(|t| t.to_rfc3339()));
            let sponsor = c.sponsor.unwrap_or_else(|| person.sponsor.as_ref().map(ToString::to_string));
            let terms = match terms_of(expires, sponsor)? {
                Some((expires, sponsor)) => Some(self.terms(Terms { expires: &expires, sponsor: &sponsor }, Some(&person.user.id), now).await?),
                None => None,
            };
            let (at, sponsor) = (terms.as_ref().map(|(at, _)| *at), terms.map(|(_, s)| s));
            if at != person.user.expires_at || sponsor.as_ref().map(|s| &s.id) != person.user.sponsor.as_ref() {
                let d = Draft::new(now, Event::UserExpiryChanged, Outcome::Success).actor(&actor).subject(&person.user.id);
                let d = match (&at, &sponsor) {
                    (Some(at), Some(s)) => d.detail("expires_at", at).detail("sponsor", &s.name),
                    _ => d.detail("expires_at", "never"),
                };
                let m = Mutation::SetUserExpiry { user: person.user.id.clone(), expires_at: at, sponsor: sponsor.as_ref().map(|s| s.id.clone()) };
                change = change.with(m).record(d);
                new_terms = Some((at, sponsor));
            }
        }
        if !change.mutations.is_empty() {
            self.commit(change).await?;
        }
        if profile_changes {
            person.profile = Some(after);
        }
        if let Some((at, sponsor)) = new_terms {
            person.user.expires_at = at;
            person.user.sponsor = sponsor.as_ref().map(|s| s.id.clone());
            person.sponsor = sponsor.map(|s| s.name);
        }
        match c.active {
            Some(active) if person.user.disabled == active => {
                if active {
                    self.enable_person(&actor, person.user.clone()).await?;
                } else {
                    self.disable_person(&actor, &actor, person.user.clone()).await?;
                }
                person.user.disabled = !active;
            }
            _ => {}
        }
        Ok(person)
    }

    pub async fn scim_groups(&self, _caller: &ScimCaller) -> Result<Vec<ScimGroup>> {
        self.store.scim_groups().await
    }

    pub async fn scim_group(&self, _caller: &ScimCaller, id: &str) -> Result<ScimGroup> {
        let gid = ScimGroupId::parse(id).map_err(|_| unknown_group(id))?;
        self.store.scim_groups().await?.into_iter().find(|g| g.id == gid).ok_or_else(|| unknown_group(id))
    }

    /// `POST /Groups`: a provider group; its members join the stint group it maps to.
    pub async fn scim_create_group(&self, caller: &ScimCaller, name: String, c: GroupChanges) -> Result<ScimGroup> {
        let now = self.now();
        let mut group = ScimGroup { id: ScimGroupId::random(&mut *self.rng()), display_name: name, external_id: None, members: vec![], created_at: now };
        self.change_group(caller, &mut group, c, Event::ScimGroupCreated, |g| Mutation::InsertScimGroup(g.clone())).await?;
        Ok(group)
    }

    /// `PUT` and `PATCH /Groups/{id}`: renames and member changes, with the stint groups of
    /// everyone whose membership changed, in one transaction.
    pub async fn scim_update_group(&self, caller: &ScimCaller, id: &str, c: GroupChanges) -> Result<ScimGroup> {
        let mut group = self.scim_group(caller, id).await?;
        self.change_group(caller, &mut group, c, Event::ScimGroupUpdated, |g| Mutation::UpdateScimGroup(g.clone())).await?;
        Ok(group)
    }

    /// `DELETE /Groups/{id}`: the group goes, and with it the stint group it gave its members.
    pub async fn scim_delete_group(&self, caller: &ScimCaller, id: &str) -> Result<()> {
        let mut group = self.scim_group(caller, id).await?;
        let changes = GroupChanges { members: vec![MemberChange::Set(vec![])], ..GroupChanges::default() };
        self.change_group(caller, &mut group, changes, Event::ScimGroupDeleted, |g| Mutation::DeleteScimGroup(g.id.clone())).await
    }

    /// Applies `c` to `group`, checks the result (a free display name, members who exist) and
    /// commits it with `write` and the stint groups it moves people in or out of.
    async fn change_group(
        &self,
        caller: &ScimCaller,
        group: &mut ScimGroup,
        c: GroupChanges,
        event: Event,
        write: impl FnOnce(&ScimGroup) -> Mutation,
    ) -> Result<()> {
        let mut all = self.store.scim_groups().await?;
        if let Some(name) = c.display_name {
            group.display_name = name;
        }
        if let Some(external_id) = c.external_id {
            group.external_id = external_id;
        }
        if all.iter().any(|g| g.id != group.id && g.display_name.eq_ignore_ascii_case(&group.display_name)) {
            return Err(Error::conflict("group_exists", format!("a group named {:?} exists already", truncate(&group.display_name))));
        }
        let before = group.members.clone();
        group.apply_members(&c.members)?;
        let users = self.store.users().await?;
        if let Some(stranger) = group.members.iter().find(|m| !users.iter().any(|u| &u.id == *m)) {
            return Err(Error::invalid("unknown_member", format!("no user with id {stranger}")));
        }
        let now = self.now();
        let actor = caller.token.actor();
        let d = Draft::new(now, event, Outcome::Success)
            .actor(&actor)
            .subject(&group.id)
            .detail("name", truncate(&group.display_name))
            .detail("members", group.members.len().to_string());
        let mut change = Change::default().with(write(group)).record(d);
        all.retain(|g| g.id != group.id);
        if event != Event::ScimGroupDeleted {
            all.push(group.clone());
        }
        for user in users.iter().filter(|u| before.contains(&u.id) || group.members.contains(&u.id)) {
            let groups = self.cfg.scim.groups_of(user, &all);
            if groups != user.groups {
                let list: Vec<&str> = groups.iter().map(GroupName::as_str).collect();
                let d = Draft::new(now, Event::UserGroupsChanged, Outcome::Success).actor(&actor).subject(&user.id).detail("groups", list.join(","));
                change = change.with(Mutation::SetUserGroups { user: user.id.clone(), groups }).record(d);
            }
        }
        self.commit(change).await.map(drop)
    }

    /// The provisioned person a first sign-in through provider `provider` is, when `[scim]`
    /// names that provider: by `externalId` equal to the token's `sub`, or by work email equal
    /// to its verified email.
    pub(super) async fn provisioned_person(&self, provider: &str, subject: &str, verified_email: Option<&str>) -> Result<Option<User>> {
        let s = &self.cfg.scim;
        if s.provider.as_deref() != Some(provider) {
            return Ok(None);
        }
        let profiles = self.store.scim_profiles().await?;
        let found = profiles.iter().find(|(_, p)| match s.match_by {
            ScimMatch::ExternalId => p.external_id.as_deref() == Some(subject),
            ScimMatch::Email => verified_email.is_some_and(|e| p.email.as_deref() == Some(e.to_lowercase().as_str())),
        });
        match found {
            Some((id, _)) => self.store.user_by_id(id).await,
            None => Ok(None),
        }
    }
}

/// An account's terms from what the provider says: both (an account that ends), neither (one
/// that does not), or one without the other, refused.
fn terms_of(expires: Option<String>, sponsor: Option<String>) -> Result<Option<(String, String)>> {
    match (expires, sponsor) {
        (Some(e), Some(s)) => Ok(Some((e, s))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::invalid("invalid_value", "an account that ends has a sponsor: set sponsor in the stint extension too")),
        (None, Some(_)) => Err(Error::invalid("invalid_value", "a sponsor vouches for an account that ends: set expires in the stint extension too")),
    }
}
