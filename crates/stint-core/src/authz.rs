//! Who may assume which role, decided by the Cedar policy engine.
//!
//! The request is: principal (a `Stint::Person` in its `Stint::Group`s, or a
//! `Stint::Workload`), action `Stint::Action::"assume"`, resource (a `Stint::Role`), and a
//! context (how the person authenticated, whether they are on call, whether an approved
//! request or break-glass covers the role, where the request comes from, the time). The schema
//! ships in `authz/schema.cedarschema`. The role settings of the TOML configuration generate
//! the default policies ([`crate::policy::default_policies`]); teams add their own `.cedar` files, validated
//! against the schema at start with errors that name the file and line. Every decision says
//! which policies allowed or forbade it.
//!
//! Pure: no I/O; the caller reads the policy files and passes their text in.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
    Schema, ValidationMode, Validator,
};

use crate::error::{Error, Result};
use crate::ids::{GroupName, RoleName};
use crate::model::User;
use crate::time::Timestamp;

/// The schema every policy is validated against.
pub const SCHEMA: &str = include_str!("authz/schema.cedarschema");

/// Where a request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A person with a session.
    Human,
    /// A CI pipeline's token exchange.
    Ci,
    /// A service's own credentials.
    Service,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Human => "human",
            Source::Ci => "ci",
            Source::Service => "service",
        }
    }
}

/// What a decision may depend on beyond who asks for which role.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuthzContext {
    /// How the person showed a second factor (`password+totp`, `amr:otp`, `stint_totp`…).
    pub mfa: String,
    /// On call now (or within the grace period after a shift).
    pub on_call: bool,
    /// The on-call schedules the person is on now.
    pub on_call_schedules: Vec<String>,
    /// An approved request covers this role now.
    pub approved_request: bool,
    /// A break-glass grant covers this role now.
    pub break_glass: bool,
    pub source: Source,
    pub now: Timestamp,
    /// A grant that allowed the request ends here: a credential may not outlive it.
    #[serde(skip)]
    pub not_after: Option<Timestamp>,
}

impl AuthzContext {
    /// A person's ordinary request: no on-call, no request, no break-glass.
    pub fn human(mfa: &str, now: Timestamp) -> AuthzContext {
        AuthzContext {
            mfa: mfa.to_owned(),
            on_call: false,
            on_call_schedules: vec![],
            approved_request: false,
            break_glass: false,
            source: Source::Human,
            now,
            not_after: None,
        }
    }

    fn cedar(&self) -> Result<Context> {
        let secs = self.now.0;
        let days = secs.div_euclid(86_400);
        // 1970-01-01 was a Thursday: 0 = Monday … 6 = Sunday.
        let weekday = (days + 3).rem_euclid(7);
        let hour = secs.rem_euclid(86_400) / 3600;
        let pairs = [
            ("mfa", RestrictedExpression::new_string(self.mfa.clone())),
            ("on_call", RestrictedExpression::new_bool(self.on_call)),
            ("on_call_schedules", RestrictedExpression::new_set(self.on_call_schedules.iter().map(|s| RestrictedExpression::new_string(s.clone())))),
            ("approved_request", RestrictedExpression::new_bool(self.approved_request)),
            ("break_glass", RestrictedExpression::new_bool(self.break_glass)),
            ("source", RestrictedExpression::new_string(self.source.as_str().to_owned())),
            ("now", RestrictedExpression::new_long(secs)),
            ("hour_utc", RestrictedExpression::new_long(hour)),
            ("weekday_utc", RestrictedExpression::new_long(weekday)),
        ];
        Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v))).map_err(|e| Error::Internal(format!("authorization context: {e}")))
    }
}

/// Who asks.
pub enum Principal<'a> {
    Person(&'a User),
    /// A CI pipeline: `issuer` is the configured issuer's name, `subject` its token's `sub`.
    Workload {
        issuer: &'a str,
        subject: &'a str,
    },
    /// A named workload (a service) with the roles it was given.
    Service(&'a crate::workload::Workload),
}

/// A decision and the policies behind it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits that allowed, or the forbids that denied.
    pub policies: Vec<String>,
    /// Policies that could not be evaluated: any error denies the request (fail closed).
    pub errors: Vec<String>,
}

/// A policy file as read, for validation messages.
#[derive(Clone, Debug)]
pub struct PolicySource {
    /// Where it came from: a file path.
    pub origin: String,
    pub text: String,
}

/// The validated policies, ready to decide.
#[derive(Clone)]
pub struct Engine {
    schema: Schema,
    policies: PolicySet,
    /// Every policy's text by id, for `stint policy test` and the docs.
    texts: Vec<(String, String)>,
    /// Whether a policy reads `context.now`; if none does, decisions within one hour of the
    /// same request and context are the same, and are remembered.
    uses_now: bool,
    /// Decisions by everything they depend on (policies are fixed for the engine's life).
    cache: std::sync::Arc<std::sync::RwLock<HashMap<String, Decision>>>,
}

/// Decisions remembered; past this the cache starts over.
const DECISION_CACHE_MAX: usize = 16_384;

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Engine({} policies)", self.texts.len())
    }
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap_or_else(|_| unreachable!("built-in type names parse")), EntityId::new(id))
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `file:line:col: message` for each labelled span of a Cedar diagnostic.
fn located(origin: &str, text: &str, d: &dyn miette::Diagnostic, message: String) -> String {
    let at = d.labels().and_then(|mut l| l.next()).map(|l| line_col(text, l.offset()));
    match at {
        Some((line, col)) => format!("{origin}:{line}:{col}: {message}"),
        None => format!("{origin}: {message}"),
    }
}

fn invalid(problems: Vec<String>) -> Error {
    Error::invalid("invalid_policy", problems.join("\n"))
}

impl Engine {
    /// Parses and validates `sources` (the defaults first, then the team's files) against the
    /// schema, strictly. Every problem names its file, line and column.
    pub fn new(sources: &[PolicySource]) -> Result<Engine> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).map_err(|e| Error::Internal(format!("the shipped Cedar schema: {e}")))?;
        let validator = Validator::new(schema.clone());
        let mut policies = PolicySet::new();
        let mut texts = Vec::new();
        let mut problems = Vec::new();
        for src in sources {
            let set = match PolicySet::from_str(&src.text) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(located(&src.origin, &src.text, &e, e.to_string()));
                    continue;
                }
            };
            let result = validator.validate(&set, ValidationMode::Strict);
            for e in result.validation_errors() {
                problems.push(located(&src.origin, &src.text, e, e.to_string()));
            }
            for (n, p) in set.policies().enumerate() {
                let id = p.annotation("id").map_or_else(|| format!("{}#{}", src.origin, n + 1), str::to_owned);
                if let Err(e) = policies.add(p.new_id(PolicyId::new(&id))) {
                    problems.push(format!("{}: policy {id:?}: {e}", src.origin));
                    continue;
                }
                texts.push((id, p.to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        // Any mention of `now` (`context.now`, `context["now"]`…) makes decisions per second.
        let uses_now = texts.iter().any(|(_, t)| t.contains("now"));
        Ok(Engine { schema, policies, texts, uses_now, cache: Default::default() })
    }

    /// Every policy in force, by id, as Cedar text.
    pub fn policies(&self) -> &[(String, String)] {
        &self.texts
    }

    /// Everything a decision depends on, as a cache key.
    fn key(&self, principal: &Principal<'_>, role: &RoleName, ctx: &AuthzContext) -> String {
        let who = match principal {
            Principal::Person(u) => format!(
                "p:{}:{}:{:?}:{:?}",
                u.name,
                u.groups.iter().map(GroupName::as_str).collect::<Vec<_>>().join(","),
                u.expires_at.map(|t| t.0),
                u.sponsor.as_ref().map(crate::ids::UserId::as_str)
            ),
            Principal::Workload { issuer, subject } => format!("w:{issuer}:{subject}"),
            Principal::Service(w) => format!("s:{}:{}", w.name, w.roles.iter().map(RoleName::as_str).collect::<Vec<_>>().join(",")),
        };
        let time = if self.uses_now { ctx.now.0 } else { ctx.now.0.div_euclid(3600) };
        // Every field of the context but `not_after` (which the policies do not see).
        format!(
            "{who}\n{role}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            ctx.mfa,
            ctx.on_call,
            ctx.on_call_schedules.join(","),
            ctx.approved_request,
            ctx.break_glass,
            ctx.source.as_str(),
            time
        )
    }

    /// May `principal` assume `role` in `ctx`?
    pub fn decide(&self, principal: &Principal<'_>, role: &RoleName, ctx: &AuthzContext) -> Result<Decision> {
        let key = self.key(principal, role, ctx);
        if let Some(d) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(d);
        }
        let d = self.evaluate(principal, role, ctx)?;
        if let Ok(mut c) = self.cache.write() {
            if c.len() >= DECISION_CACHE_MAX {
                c.clear();
            }
            c.insert(key, d.clone());
        }
        Ok(d)
    }

    fn evaluate(&self, principal: &Principal<'_>, role: &RoleName, ctx: &AuthzContext) -> Result<Decision> {
        let role_uid = uid("Stint::Role", role.as_str());
        let mut entities = vec![Entity::new_no_attrs(role_uid.clone(), HashSet::new())];
        let principal_uid = match principal {
            Principal::Person(user) => {
                let groups: HashSet<EntityUid> = user.groups.iter().map(|g: &GroupName| uid("Stint::Group", g.as_str())).collect();
                entities.extend(groups.iter().map(|g| Entity::new_no_attrs(g.clone(), HashSet::new())));
                let person = uid("Stint::Person", user.name.as_str());
                let mut attrs = HashMap::from([("name".to_owned(), RestrictedExpression::new_string(user.name.to_string()))]);
                // An account that ends (a contractor's): policies may limit what it assumes.
                if let Some(at) = user.expires_at {
                    attrs.insert("expires".to_owned(), RestrictedExpression::new_long(at.0));
                }
                if let Some(s) = &user.sponsor {
                    attrs.insert("sponsor".to_owned(), RestrictedExpression::new_string(s.to_string()));
                }
                entities.push(Entity::new(person.clone(), attrs, groups).map_err(|e| Error::Internal(format!("person entity: {e}")))?);
                person
            }
            Principal::Workload { issuer, subject } => {
                let w = uid("Stint::Workload", &format!("{issuer}:{subject}"));
                let attrs = HashMap::from([
                    ("issuer".to_owned(), RestrictedExpression::new_string((*issuer).to_owned())),
                    ("subject".to_owned(), RestrictedExpression::new_string((*subject).to_owned())),
                ]);
                entities.push(Entity::new(w.clone(), attrs, HashSet::new()).map_err(|e| Error::Internal(format!("workload entity: {e}")))?);
                w
            }
            Principal::Service(workload) => {
                let w = uid("Stint::Workload", workload.name.as_str());
                let roles = workload.roles.iter().map(|r| RestrictedExpression::new_entity_uid(uid("Stint::Role", r.as_str())));
                let attrs = HashMap::from([
                    ("issuer".to_owned(), RestrictedExpression::new_string("stint".to_owned())),
                    ("subject".to_owned(), RestrictedExpression::new_string(workload.name.to_string())),
                    ("roles".to_owned(), RestrictedExpression::new_set(roles)),
                ]);
                // The roles it names exist as entities, as the requested one does.
                entities.extend(workload.roles.iter().filter(|r| *r != role).map(|r| Entity::new_no_attrs(uid("Stint::Role", r.as_str()), HashSet::new())));
                entities.push(Entity::new(w.clone(), attrs, HashSet::new()).map_err(|e| Error::Internal(format!("workload entity: {e}")))?);
                w
            }
        };
        // Entities and request are built here, to the schema's shape: debug builds (the tests)
        // check them against it; release builds skip a check that would double a decision's cost.
        let schema = cfg!(debug_assertions).then_some(&self.schema);
        let entities = Entities::from_entities(entities, schema).map_err(|e| Error::Internal(format!("authorization entities: {e}")))?;
        let request = Request::new(principal_uid, uid("Stint::Action", "assume"), role_uid, ctx.cedar()?, schema)
            .map_err(|e| Error::Internal(format!("authorization request: {e}")))?;
        let response = Authorizer::new().is_authorized(&request, &self.policies, &entities);
        let mut policies: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        policies.sort();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        // Cedar skips a policy that fails to evaluate; a skipped `forbid` would allow what it
        // was written to refuse. Fail closed: any error denies.
        let allowed = response.decision() == CedarDecision::Allow && errors.is_empty();
        Ok(Decision { allowed, policies: if allowed || errors.is_empty() { policies } else { vec![] }, errors })
    }
}

#[cfg(test)]
mod tests;
