//! Who may assume which role, for how long: the decision that yields a [`Permit`].
//!
//! The decision lists *reasons* a grant holds. Today a reason is "everyone" or a group
//! membership; on-call, approved requests and break-glass plug in as further reasons.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Listed, Result};
use crate::ids::{GroupName, RoleName, SessionId, UserId};
use crate::model::{Session, User};
use crate::time::{Timestamp, Ttl};

/// A role as configured.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RoleDef {
    pub name: RoleName,
    pub max_ttl: Ttl,
    /// Every user may assume it.
    pub everyone: bool,
    /// Members of any of these groups may assume it.
    pub groups: Vec<GroupName>,
    pub description: String,
}

/// Why a user may assume a role.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum GrantReason {
    Everyone,
    Group(GroupName),
}

impl fmt::Display for GrantReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantReason::Everyone => f.write_str("every user"),
            GrantReason::Group(g) => write!(f, "member of group {g}"),
        }
    }
}

/// The set of roles in force.
#[derive(Clone, Debug)]
pub struct Roles {
    defs: BTreeMap<RoleName, RoleDef>,
}

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap_or_else(|_| unreachable!("built-in role names are valid"))
}
fn group(name: &str) -> GroupName {
    GroupName::parse(name).unwrap_or_else(|_| unreachable!("built-in group names are valid"))
}
fn ttl(s: u64) -> Ttl {
    Ttl::from_secs(s).unwrap_or_else(|_| unreachable!("built-in TTLs are in range"))
}

impl Roles {
    /// `readonly` for everyone (8 h), `developer` for group `developers` (4 h), `admin` for group `admins` (1 h).
    pub fn builtin() -> Roles {
        let defs = [
            RoleDef { name: role("readonly"), max_ttl: ttl(8 * 3600), everyone: true, groups: vec![], description: "view resources, read logs".into() },
            RoleDef {
                name: role("developer"),
                max_ttl: ttl(4 * 3600),
                everyone: false,
                groups: vec![group("developers")],
                description: "deploy services, change non-sensitive config".into(),
            },
            RoleDef { name: role("admin"), max_ttl: ttl(3600), everyone: false, groups: vec![group("admins")], description: "full access".into() },
        ];
        Roles { defs: defs.into_iter().map(|d| (d.name.clone(), d)).collect() }
    }

    /// Adds or replaces a role definition (config overrides built-ins by name).
    pub fn set(&mut self, def: RoleDef) {
        self.defs.insert(def.name.clone(), def);
    }

    pub fn get(&self, name: &RoleName) -> Option<&RoleDef> {
        self.defs.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &RoleDef> {
        self.defs.values()
    }

    /// The longest any token can live; a retired key stays published this long.
    pub fn longest_ttl(&self) -> Ttl {
        self.defs.values().map(|d| d.max_ttl).max().unwrap_or(Ttl::MAX)
    }

    /// The reasons `user` may assume `def`, empty if none.
    pub fn reasons(&self, def: &RoleDef, user: &User) -> Vec<GrantReason> {
        let mut out = Vec::new();
        if def.everyone {
            out.push(GrantReason::Everyone);
        }
        out.extend(def.groups.iter().filter(|g| user.in_group(g)).map(|g| GrantReason::Group(g.clone())));
        out
    }

    /// Every role `user` may assume now, with the reasons.
    pub fn eligible(&self, user: &User) -> Vec<(&RoleDef, Vec<GrantReason>)> {
        self.defs.values().map(|d| (d, self.reasons(d, user))).filter(|(_, r)| !r.is_empty()).collect()
    }

    /// Decides whether `user`, in `session`, may assume `role` for `requested` (or the longest
    /// allowed when `None`). Refuses — never caps — a request beyond the role's maximum or the
    /// session's end.
    pub fn decide(&self, user: &User, session: &Session, role: &RoleName, requested: Option<Ttl>, now: Timestamp) -> Result<Permit> {
        let def =
            self.get(role).ok_or_else(|| Error::not_found("unknown_role", format!("no role named {role}; `stint whoami` lists the roles you may assume")))?;
        let reasons = self.reasons(def, user);
        if reasons.is_empty() {
            let groups: Vec<_> = def.groups.iter().map(|g| g.as_str()).collect();
            return Err(Error::forbidden(
                "role_not_granted",
                format!("{} may not assume {role}: it requires membership in one of [{}]", user.name, Listed(&groups)),
            ));
        }
        let session_left = now.until(session.expires_at);
        if session_left == 0 {
            return Err(Error::unauthenticated("session_expired", "session has ended; run `stint login`"));
        }
        let ttl = match requested {
            Some(t) if t > def.max_ttl => {
                return Err(Error::invalid("ttl_exceeds_role_max", format!("requested {t} exceeds the maximum of {} for role {role}", def.max_ttl)));
            }
            Some(t) if t.as_secs() > session_left => {
                return Err(Error::invalid(
                    "ttl_exceeds_session",
                    format!("requested {t} outlives your session, which ends in {}s; ask for less or run `stint login`", session_left),
                ));
            }
            Some(t) => t,
            None => Ttl::from_secs(def.max_ttl.as_secs().min(session_left))?,
        };
        Ok(Permit { user: user.id.clone(), session: session.id.clone(), role: role.clone(), ttl, expires_at: now.plus(ttl), reasons })
    }
}

/// Permission to issue one credential. Only [`Roles::decide`] constructs it, so a backend
/// that takes a `&Permit` cannot be reached without a decision.
#[derive(Debug)]
pub struct Permit {
    user: UserId,
    session: SessionId,
    role: RoleName,
    ttl: Ttl,
    expires_at: Timestamp,
    reasons: Vec<GrantReason>,
}

impl Permit {
    pub fn user(&self) -> &UserId {
        &self.user
    }
    pub fn session(&self) -> &SessionId {
        &self.session
    }
    pub fn role(&self) -> &RoleName {
        &self.role
    }
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
    pub fn reasons(&self) -> &[GrantReason] {
        &self.reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Username;
    use rand_core::OsRng;

    fn user(groups: &[&str]) -> User {
        User {
            id: UserId::random(&mut OsRng),
            name: Username::parse("alice").unwrap(),
            groups: groups.iter().map(|g| group(g)).collect(),
            disabled: false,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            created_at: Timestamp(0),
        }
    }
    fn session(u: &User, expires: i64) -> Session {
        Session {
            id: SessionId::random(&mut OsRng),
            lookup: String::new(),
            secret_hash: vec![],
            user_id: u.id.clone(),
            created_at: Timestamp(0),
            expires_at: Timestamp(expires),
            revoked_at: None,
        }
    }

    #[test]
    fn decision_table() {
        let roles = Roles::builtin();
        let now = Timestamp(1000);
        let h = |s: u64| Some(Ttl::from_secs(s).unwrap());
        // (groups, role, requested ttl, session end, expected: Ok(ttl) or Err(code))
        type Row<'a> = (&'a [&'a str], &'a str, Option<Ttl>, i64, Result<u64, &'a str>);
        let table: Vec<Row> = vec![
            (&[], "readonly", None, 1000 + 8 * 3600, Ok(8 * 3600)),
            (&[], "readonly", None, 1000 + 600, Ok(600)),
            (&[], "readonly", h(900), 1000 + 8 * 3600, Ok(900)),
            (&[], "developer", None, 1000 + 8 * 3600, Err("role_not_granted")),
            (&["developers"], "developer", None, 1000 + 8 * 3600, Ok(4 * 3600)),
            (&["developers"], "admin", None, 1000 + 8 * 3600, Err("role_not_granted")),
            (&["admins"], "admin", h(3600), 1000 + 8 * 3600, Ok(3600)),
            (&["admins"], "admin", h(3601), 1000 + 8 * 3600, Err("ttl_exceeds_role_max")),
            (&[], "readonly", h(700), 1000 + 600, Err("ttl_exceeds_session")),
            (&[], "readonly", None, 1000, Err("session_expired")),
            (&[], "superuser", None, 1000 + 600, Err("unknown_role")),
        ];
        for (groups, role_name, req, end, want) in table {
            let u = user(groups);
            let s = session(&u, end);
            let got = roles.decide(&u, &s, &role(role_name), req, now).map(|p| p.ttl().as_secs()).map_err(|e| e.code());
            assert_eq!(got, want, "groups={groups:?} role={role_name} req={req:?}");
        }
    }

    #[test]
    fn permit_carries_reasons_and_expiry() {
        let roles = Roles::builtin();
        let u = user(&["developers"]);
        let s = session(&u, 100_000);
        let p = roles.decide(&u, &s, &role("developer"), None, Timestamp(10)).unwrap();
        assert_eq!(p.reasons(), &[GrantReason::Group(group("developers"))]);
        assert_eq!(p.expires_at(), Timestamp(10 + 4 * 3600));
        assert_eq!(roles.eligible(&u).len(), 2);
    }
}
