//! Who may assume which role, for how long: the decision that yields a [`Permit`].
//!
//! Eligibility is Cedar's ([`crate::authz`]): the role settings generate default policies,
//! teams add their own. The decision lists the policies that allowed it; this module adds
//! the lifetime rules (the role's maximum, the session's end).

use std::collections::BTreeMap;
use std::fmt;

use std::sync::Arc;

use crate::authz::{AuthzContext, Engine, PolicySource, Principal};
use crate::error::{Error, Result};
use crate::ids::{GroupName, RoleName, SessionId, UserId, Username};
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
    /// How long a workload's credentials for this role live; by default an hour, or
    /// `max_ttl` if shorter (`Broker::workload_creds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_ttl: Option<Ttl>,
}

/// Why a user may assume a role: a Cedar policy that permitted it, by id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum GrantReason {
    Policy(String),
}

impl fmt::Display for GrantReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantReason::Policy(id) => write!(f, "policy {id:?}"),
        }
    }
}

/// The policies the role settings imply: `everyone` and `groups` of each role; and that a
/// workload (a service) may assume the roles it was given (`stint workload add --role`).
pub fn default_policies<'a>(roles: impl IntoIterator<Item = &'a RoleDef>) -> String {
    let mut out = String::from("// Generated from the [roles] settings of the configuration.\n");
    out.push_str(
        "@id(\"workloads: their own roles\")\npermit(principal is Stint::Workload, action == Stint::Action::\"assume\", resource)\n\
         when { context.source == \"service\" && principal has roles && principal.roles.contains(resource) };\n",
    );
    for r in roles {
        let role = format!("{:?}", r.name.as_str());
        if r.everyone {
            out.push_str(&format!(
                "@id(\"{name}: everyone\")\npermit(principal is Stint::Person, action == Stint::Action::\"assume\", resource == Stint::Role::{role});\n",
                name = r.name
            ));
        }
        for g in &r.groups {
            out.push_str(&format!(
                "@id(\"{name}: group {g}\")\npermit(principal in Stint::Group::{group:?}, action == Stint::Action::\"assume\", resource == Stint::Role::{role});\n",
                name = r.name,
                group = g.as_str()
            ));
        }
    }
    out
}

/// The set of roles in force, and the policies that decide who may assume them.
#[derive(Clone, Debug)]
pub struct Roles {
    defs: BTreeMap<RoleName, RoleDef>,
    /// The team's policy files, kept so that changing a role regenerates the defaults.
    extra: Vec<PolicySource>,
    engine: Arc<Engine>,
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
            RoleDef {
                name: role("readonly"),
                max_ttl: ttl(8 * 3600),
                everyone: true,
                groups: vec![],
                description: "view resources, read logs".into(),
                service_ttl: None,
            },
            RoleDef {
                name: role("developer"),
                max_ttl: ttl(4 * 3600),
                everyone: false,
                groups: vec![group("developers")],
                description: "deploy services, change non-sensitive config".into(),
                service_ttl: None,
            },
            RoleDef {
                name: role("admin"),
                max_ttl: ttl(3600),
                everyone: false,
                groups: vec![group("admins")],
                description: "full access".into(),
                service_ttl: None,
            },
        ];
        let defs = defs.into_iter().map(|d| (d.name.clone(), d)).collect();
        let engine = Arc::new(Engine::new(&[Self::defaults_of(&defs)]).unwrap_or_else(|e| unreachable!("built-in policies validate: {e}")));
        Roles { defs, extra: vec![], engine }
    }

    fn defaults_of(defs: &BTreeMap<RoleName, RoleDef>) -> PolicySource {
        PolicySource { origin: "defaults (generated from [roles])".into(), text: default_policies(defs.values()) }
    }

    /// Adds or replaces a role definition (config overrides built-ins by name) and
    /// regenerates the default policies.
    pub fn set(&mut self, def: RoleDef) -> Result<()> {
        self.defs.insert(def.name.clone(), def);
        self.rebuild()
    }

    /// Adds the team's policy files; they are validated with the defaults.
    pub fn with_policies(mut self, files: Vec<PolicySource>) -> Result<Roles> {
        self.extra = files;
        self.rebuild()?;
        Ok(self)
    }

    fn rebuild(&mut self) -> Result<()> {
        let mut sources = vec![Self::defaults_of(&self.defs)];
        sources.extend(self.extra.iter().cloned());
        self.engine = Arc::new(Engine::new(&sources)?);
        Ok(())
    }

    /// The policy engine in force.
    pub fn engine(&self) -> &Engine {
        &self.engine
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

    /// The policies that let `user` assume `def` in `ctx`; `Err` when none does, or a
    /// `forbid` matched (the refusal names it).
    pub fn reasons(&self, def: &RoleDef, user: &User, ctx: &AuthzContext) -> Result<Vec<GrantReason>> {
        let d = self.engine.decide(&Principal::Person(user), &def.name, ctx)?;
        if d.allowed {
            return Ok(d.policies.into_iter().map(GrantReason::Policy).collect());
        }
        let role = &def.name;
        let why = if !d.errors.is_empty() {
            format!("{} may not assume {role}: a policy failed to evaluate, so the request is refused ({})", user.name, d.errors.join("; "))
        } else if d.policies.is_empty() {
            let groups: Vec<&str> = def.groups.iter().map(GroupName::as_str).collect();
            match groups.as_slice() {
                [] => format!("{} may not assume {role}: no policy permits it", user.name),
                g => format!("{} may not assume {role}: no policy permits it (its default grant is membership in one of [{}])", user.name, g.join(", ")),
            }
        } else {
            format!("{} may not assume {role}: forbidden by policy {}", user.name, d.policies.join(", "))
        };
        Err(Error::forbidden("role_not_granted", why))
    }

    /// Every role `user` may assume in `ctx`, with the reasons.
    pub fn eligible(&self, user: &User, ctx: &AuthzContext) -> Vec<(&RoleDef, Vec<GrantReason>)> {
        self.defs.values().filter_map(|d| self.reasons(d, user, ctx).ok().map(|r| (d, r))).collect()
    }

    /// Decides whether `user`, in `session`, may assume `role` for `requested` (or the longest
    /// allowed when `None`). Refuses — never caps — a request beyond the role's maximum or the
    /// session's end.
    pub fn decide(&self, user: &User, session: &Session, role: &RoleName, requested: Option<Ttl>, ctx: &AuthzContext) -> Result<Permit> {
        let now = ctx.now;
        let def =
            self.get(role).ok_or_else(|| Error::not_found("unknown_role", format!("no role named {role}; `stint whoami` lists the roles you may assume")))?;
        let reasons = self.reasons(def, user, ctx)?;
        let session_left = now.until(ctx.not_after.map_or(session.expires_at, |n| n.min(session.expires_at)));
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
        let subject = Subject::Person { user: user.id.clone(), name: user.name.clone(), session: session.id.clone(), grant: None };
        Ok(Permit { subject, role: role.clone(), ttl, expires_at: now.plus(ttl), reasons })
    }
}

/// Who a [`Permit`] is for. Each kind brings its own re-checks to the transaction that
/// records the issuance (`Broker::entitled`), so a revocation that committed first wins.
#[derive(Debug)]
pub enum Subject {
    /// A person, in a session. `grant` is the approved request (or break-glass grant) the
    /// decision relied on, if one: issuance re-checks the person, the session and the grant.
    Person { user: UserId, name: Username, session: SessionId, grant: Option<String> },
    /// A CI pipeline whose platform token a role's trust policy admitted.
    Pipeline(Pipeline),
    /// A named workload (a service), through an agent key it enrolled: issuance re-checks the
    /// workload enabled and the key live, as a person's are, and accepts the agent's
    /// assertion once.
    Workload(Service),
}

/// A workload as its verified assertion describes it. Building one authorises nothing: only
/// a [`Permit`] does.
#[derive(Debug)]
pub struct Service {
    pub workload: crate::ids::WorkloadId,
    pub name: crate::ids::WorkloadName,
    /// The enrolled agent key that signed the assertion.
    pub kid: String,
    /// Where the agent asked from.
    pub addr: String,
    /// The replay guard of the assertion (as for CI tokens): committed with the issuance.
    pub replay_key: String,
    pub replay_until: Timestamp,
}

impl Service {
    /// What leases and role tokens name it by: `workload:NAME`.
    pub fn holder(&self) -> String {
        format!("{}{}", crate::workload::WORKLOAD_SUBJECT_PREFIX, self.name)
    }
}

/// The `sub` of a CI credential, and the holder of its leases, start with this; user ids never do.
pub const CI_SUBJECT_PREFIX: &str = "ci:";

/// A pipeline as its verified token and the trust policy that admitted it describe it.
/// Building one authorises nothing: only a [`Permit`] does.
#[derive(Debug)]
pub struct Pipeline {
    /// The issuer's short name, as in `ci:NAME:SUB` subjects.
    pub issuer: String,
    /// The issuer's URL, as its tokens' `iss` spells it.
    pub issuer_url: String,
    /// The token's `sub`.
    pub subject: String,
    /// What a role token calls it (`preferred_username`): the `repository` claim, else `sub`.
    pub display_name: String,
    /// The label of the trust-policy statement that admitted the token.
    pub statement: String,
    /// The claims the audit record keeps, bounded and printable.
    pub claims: Vec<(&'static str, String)>,
    /// Where the token was presented from.
    pub addr: String,
    /// The replay guard: the token is accepted once, remembered under this key until then
    /// (committed with the issuance, so a second use of the token fails to commit).
    pub replay_key: String,
    pub replay_until: Timestamp,
}

impl Pipeline {
    /// What leases and role tokens name it by: `ci:ISSUER:SUB`.
    pub fn holder(&self) -> String {
        format!("{CI_SUBJECT_PREFIX}{}:{}", self.issuer, self.subject)
    }
}

/// Permission to issue one credential, to a person or a pipeline. Only the decisions
/// construct it ([`Roles::decide`] for people, the trust policy for pipelines), and a lease
/// can only be built from one (`backend::AuthorizedLease`), so no credential is issued
/// without a decision:
///
/// ```compile_fail,E0451
/// use stint_core::policy::Permit;
/// fn forge(p: Permit) -> Permit {
///     Permit { ttl: stint_core::time::Ttl::MAX, ..p }
/// }
/// ```
#[derive(Debug)]
pub struct Permit {
    subject: Subject,
    role: RoleName,
    ttl: Ttl,
    expires_at: Timestamp,
    reasons: Vec<GrantReason>,
}

impl Permit {
    /// The decision for a pipeline: its trust policy admitted the token for `role`, and the
    /// Cedar policies in `reasons` permitted it.
    pub(crate) fn for_pipeline(pipeline: Pipeline, role: RoleName, ttl: Ttl, now: Timestamp, reasons: Vec<GrantReason>) -> Permit {
        Permit { subject: Subject::Pipeline(pipeline), role, ttl, expires_at: now.plus(ttl), reasons }
    }
    /// The decision for a workload: the Cedar policies in `reasons` permitted it `role`.
    pub(crate) fn for_workload(service: Service, role: RoleName, ttl: Ttl, now: Timestamp, reasons: Vec<GrantReason>) -> Permit {
        Permit { subject: Subject::Workload(service), role, ttl, expires_at: now.plus(ttl), reasons }
    }
    /// The same decision, taken because the approved request (or break-glass grant) `id`
    /// covers the role: issuance re-checks that it still does. People only have grants.
    pub(crate) fn under_grant(mut self, id: String) -> Permit {
        if let Subject::Person { grant, .. } = &mut self.subject {
            *grant = Some(id);
        }
        self
    }
    pub fn subject(&self) -> &Subject {
        &self.subject
    }
    /// The grant the permit was decided under, if any.
    pub fn grant(&self) -> Option<&str> {
        match &self.subject {
            Subject::Person { grant, .. } => grant.as_deref(),
            Subject::Pipeline(_) | Subject::Workload(_) => None,
        }
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
    /// This permit for at most `max`: a permit for a while allows any shorter while, so this
    /// only ever shortens (to what a backend can issue, say).
    pub fn shortened_to(self, max: Ttl) -> Permit {
        if self.ttl <= max {
            return self;
        }
        let issued_at = Timestamp(self.expires_at.0 - self.ttl.as_secs() as i64);
        Permit { ttl: max, expires_at: issued_at.plus(max), ..self }
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
            expires_at: None,
            sponsor: None,
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
            mfa: "password+totp".into(),
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
            let got = roles.decide(&u, &s, &role(role_name), req, &AuthzContext::human("password+totp", now)).map(|p| p.ttl().as_secs()).map_err(|e| e.code());
            assert_eq!(got, want, "groups={groups:?} role={role_name} req={req:?}");
        }
    }

    #[test]
    fn permit_carries_reasons_and_expiry() {
        let roles = Roles::builtin();
        let u = user(&["developers"]);
        let s = session(&u, 100_000);
        let ctx = AuthzContext::human("password+totp", Timestamp(10));
        let p = roles.decide(&u, &s, &role("developer"), None, &ctx).unwrap();
        assert_eq!(p.reasons(), &[GrantReason::Policy("developer: group developers".into())]);
        assert_eq!(p.expires_at(), Timestamp(10 + 4 * 3600));
        assert_eq!(roles.eligible(&u, &ctx).len(), 2);
        let refused = roles.decide(&user(&[]), &s, &role("admin"), None, &ctx).unwrap_err().to_string();
        assert!(refused.contains("no policy permits it") && refused.contains("[admins]"), "{refused}");
    }

    #[test]
    fn a_permit_is_only_ever_shortened() {
        let roles = Roles::builtin();
        let u = user(&["developers"]);
        let s = session(&u, 100_000);
        let ctx = AuthzContext::human("password+totp", Timestamp(10));
        let hour = Ttl::from_secs(3600).unwrap();
        let p = roles.decide(&u, &s, &role("developer"), None, &ctx).unwrap().shortened_to(hour);
        assert_eq!((p.ttl(), p.expires_at()), (hour, Timestamp(10 + 3600)));
        let short = roles.decide(&u, &s, &role("developer"), Some(Ttl::from_secs(900).unwrap()), &ctx).unwrap().shortened_to(hour);
        assert_eq!((short.ttl().as_secs(), short.expires_at()), (900, Timestamp(10 + 900)), "never lengthened");
    }
}
