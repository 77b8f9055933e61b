//! Trust policies: which CI tokens may assume a role, in the IAM JSON shape people already
//! write for `sts:AssumeRoleWithWebIdentity`.
//!
//! ```json
//! { "Version": "2012-10-17",
//!   "Statement": [{
//!     "Effect": "Allow",
//!     "Principal": { "Federated": "token.actions.githubusercontent.com" },
//!     "Action": "sts:AssumeRoleWithWebIdentity",
//!     "Condition": {
//!       "StringEquals": { "token.actions.githubusercontent.com:aud": "stint",
//!                         "token.actions.githubusercontent.com:sub": "repo:acme/infra:ref:refs/heads/main" } } }] }
//! ```
//!
//! Semantics follow IAM: an explicit `Deny` that matches wins; otherwise some `Allow` must
//! match. A statement matches when the token's issuer is one of its `Principal.Federated`
//! and every condition holds (operators AND); the values listed for one key are alternatives
//! (OR). Comparisons are case-sensitive. `*` matches any run of characters and `?` one
//! character, in `StringLike`/`StringNotLike` only. Condition keys are written
//! `<issuer host>:<claim>`, as in AWS, or as the bare claim name.
//!
//! Pure: the caller verifies the token and passes its issuer and claims in.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::error::{Error, Result};

/// The only action a trust policy grants.
pub const ACTION: &str = "sts:AssumeRoleWithWebIdentity";

/// Policy documents larger than this are refused.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    /// `"true"`: the claim must be absent; `"false"`: present.
    Null,
}

impl Operator {
    fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "StringEquals" => Operator::StringEquals,
            "StringNotEquals" => Operator::StringNotEquals,
            "StringLike" => Operator::StringLike,
            "StringNotLike" => Operator::StringNotLike,
            "Null" => Operator::Null,
            _ => return None,
        })
    }
    fn negated(self) -> bool {
        matches!(self, Operator::StringNotEquals | Operator::StringNotLike)
    }
    fn name(self) -> &'static str {
        match self {
            Operator::StringEquals => "StringEquals",
            Operator::StringNotEquals => "StringNotEquals",
            Operator::StringLike => "StringLike",
            Operator::StringNotLike => "StringNotLike",
            Operator::Null => "Null",
        }
    }
    /// Whether one claim value satisfies the (un-negated) comparison with one policy value.
    fn compare(self, got: &str, want: &str) -> bool {
        match self {
            Operator::StringEquals | Operator::StringNotEquals => got == want,
            Operator::StringLike | Operator::StringNotLike => glob(want.as_bytes(), got.as_bytes()),
            Operator::Null => false,
        }
    }
}

/// How a condition treats a claim with several values (IAM's set operators).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetQualifier {
    /// No qualifier: a list claim matches if any value does (for negated operators: if none does).
    Single,
    /// At least one claim value matches; an absent or empty claim does not.
    ForAnyValue,
    /// Every claim value matches; an absent or empty claim does (IAM's rule).
    ForAllValues,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    pub set: SetQualifier,
    /// The key as written, for messages.
    pub key: String,
    /// The claim it reads.
    pub claim: String,
    /// The issuer the key is qualified with (`token.actions.githubusercontent.com`), if any.
    pub issuer: Option<String>,
    pub values: Vec<String>,
}

impl Condition {
    fn label(&self) -> String {
        let set = match self.set {
            SetQualifier::Single => "",
            SetQualifier::ForAnyValue => "ForAnyValue:",
            SetQualifier::ForAllValues => "ForAllValues:",
        };
        format!("{set}{} on {}", self.operator.name(), self.claim)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// Issuer identities (`host[/path]`) of `Principal.Federated`.
    pub issuers: Vec<String>,
    pub conditions: Vec<Condition>,
}

impl Statement {
    /// One line for a reader (the access review): `Allow token.actions.githubusercontent.com
    /// when sub StringLike [repo:acme/app:*]`.
    pub fn describe(&self) -> String {
        let effect = match self.effect {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        };
        let issuers = if self.issuers.is_empty() { "any issuer".to_owned() } else { self.issuers.join(", ") };
        let conditions: Vec<String> = self
            .conditions
            .iter()
            .map(|c| {
                let set = match c.set {
                    SetQualifier::Single => "",
                    SetQualifier::ForAnyValue => "ForAnyValue:",
                    SetQualifier::ForAllValues => "ForAllValues:",
                };
                format!("{} {set}{} [{}]", c.key, c.operator.name(), c.values.join(", "))
            })
            .collect();
        match conditions.as_slice() {
            [] => format!("{effect} {issuers}"),
            c => format!("{effect} {issuers} when {}", c.join(" and ")),
        }
    }

    /// `statement 2 ("AllowMain")`, for messages.
    fn label(&self, index: usize) -> String {
        match &self.sid {
            Some(sid) => format!("statement {} ({sid:?})", index + 1),
            None => format!("statement {}", index + 1),
        }
    }
}

/// A validated trust policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPolicy {
    pub statements: Vec<Statement>,
}

/// The identity of an issuer in policies: its URL without scheme and trailing slash
/// (`token.actions.githubusercontent.com`), from a URL, a host, or an AWS
/// `arn:aws:iam::ACCOUNT:oidc-provider/HOST` ARN.
pub fn issuer_id(reference: &str) -> String {
    let r = reference.split_once(":oidc-provider/").map_or(reference, |(_, host)| host);
    let r = r.strip_prefix("https://").or_else(|| r.strip_prefix("http://")).unwrap_or(r);
    r.trim_end_matches('/').to_owned()
}

fn bad(where_: &str, why: impl fmt::Display) -> Error {
    Error::invalid("invalid_trust_policy", format!("{where_}: {why}"))
}

/// A string, or a list of strings (IAM allows both almost everywhere).
fn strings(v: &Value, where_: &str) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(bad(where_, "values must be strings")),
            })
            .collect(),
        Value::Array(_) => Err(bad(where_, "an empty list matches nothing")),
        _ => Err(bad(where_, "expected a string or a list of strings")),
    }
}

/// `Null` is written with `"true"`/`"false"` (or JSON booleans).
fn check_null_values(values: &[String], where_: &str) -> Result<()> {
    if values.len() != 1 || !matches!(values[0].as_str(), "true" | "false") {
        return Err(bad(where_, "Null takes \"true\" (the claim is absent) or \"false\" (present)"));
    }
    Ok(())
}

/// What parsing learned beyond the policy itself: things that are allowed but almost
/// certainly not what was meant.
pub type Warnings = Vec<String>;

impl TrustPolicy {
    /// Parses and validates a policy document. `issuers` are the identities ([`issuer_id`])
    /// of the configured issuers; every `Principal.Federated` must be one of them.
    pub fn parse(json: &str, issuers: &[String]) -> Result<(TrustPolicy, Warnings)> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(bad("policy", format!("larger than {} KiB", MAX_POLICY_BYTES / 1024)));
        }
        let doc: Value = serde_json::from_str(json).map_err(|e| bad("policy", format!("not JSON: {e}")))?;
        let obj = doc.as_object().ok_or_else(|| bad("policy", "expected a JSON object"))?;
        for k in obj.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(bad("policy", format!("unknown field {k:?}")));
            }
        }
        if let Some(v) = obj.get("Version") {
            if !matches!(v.as_str(), Some("2012-10-17" | "2008-10-17")) {
                return Err(bad("Version", "must be \"2012-10-17\""));
            }
        }
        let raw = match obj.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            Some(v @ Value::Object(_)) => vec![v.clone()],
            _ => return Err(bad("policy", "needs a Statement (an object or a non-empty list)")),
        };
        let mut warnings = Vec::new();
        let mut statements = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            statements.push(parse_statement(s, i, issuers, &mut warnings)?);
        }
        Ok((TrustPolicy { statements }, warnings))
    }

    /// Evaluates the policy for a verified token from `issuer` with `claims`.
    pub fn evaluate(&self, issuer: &str, claims: &BTreeMap<String, Value>) -> Evaluation {
        let id = issuer_id(issuer);
        let results: Vec<StatementResult> = self.statements.iter().enumerate().map(|(i, s)| evaluate_statement(s, i, &id, claims)).collect();
        let denied = results.iter().find(|r| r.effect == Effect::Deny && r.matched).map(|r| r.index);
        let allowed_by = results.iter().find(|r| r.effect == Effect::Allow && r.matched).map(|r| r.index);
        let decision = match (denied, allowed_by) {
            (Some(i), _) => Decision::Denied { statement: i },
            (None, Some(i)) => Decision::Allowed { statement: i },
            (None, None) => Decision::NoMatch,
        };
        Evaluation { decision, statements: results }
    }
}

fn parse_statement(s: &Value, i: usize, issuers: &[String], warnings: &mut Warnings) -> Result<Statement> {
    let at = format!("statement {}", i + 1);
    let obj = s.as_object().ok_or_else(|| bad(&at, "expected an object"))?;
    for k in obj.keys() {
        match k.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "Condition" => {}
            "NotPrincipal" | "NotAction" | "Resource" | "NotResource" => return Err(bad(&at, format!("{k} is not supported in trust policies"))),
            _ => return Err(bad(&at, format!("unknown field {k:?}"))),
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad(&at, "Sid must be a string")),
    };
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(bad(&at, "Effect must be \"Allow\" or \"Deny\"")),
    };
    let federated = obj.get("Principal").and_then(Value::as_object).and_then(|p| p.get("Federated"));
    let federated = federated.ok_or_else(|| bad(&at, "needs Principal.Federated naming the CI issuer"))?;
    let mut stmt_issuers = Vec::new();
    for f in strings(federated, &format!("{at} Principal.Federated"))? {
        let id = issuer_id(&f);
        if !issuers.contains(&id) {
            return Err(bad(&at, format!("Principal.Federated {f:?} is not a configured CI issuer (configured: {})", issuers.join(", "))));
        }
        stmt_issuers.push(id);
    }
    let actions = strings(obj.get("Action").ok_or_else(|| bad(&at, format!("needs Action \"{ACTION}\"")))?, &format!("{at} Action"))?;
    if !actions.iter().any(|a| a.eq_ignore_ascii_case(ACTION)) {
        return Err(bad(&at, format!("Action must include \"{ACTION}\"")));
    }
    let mut conditions = Vec::new();
    if let Some(c) = obj.get("Condition") {
        let ops = c.as_object().ok_or_else(|| bad(&at, "Condition must be an object"))?;
        for (op_name, block) in ops {
            let (set, bare) = match op_name.split_once(':') {
                Some(("ForAnyValue", rest)) => (SetQualifier::ForAnyValue, rest),
                Some(("ForAllValues", rest)) => (SetQualifier::ForAllValues, rest),
                Some(_) => return Err(bad(&at, format!("unknown condition operator {op_name:?}"))),
                None => (SetQualifier::Single, op_name.as_str()),
            };
            let operator = Operator::parse(bare).ok_or_else(|| {
                bad(&at, format!("unsupported condition operator {op_name:?}: use StringEquals, StringNotEquals, StringLike, StringNotLike or Null"))
            })?;
            let block = block.as_object().ok_or_else(|| bad(&at, format!("{op_name} must map keys to values")))?;
            for (key, v) in block {
                let where_ = format!("{at} {op_name} {key}");
                let values = strings(v, &where_)?;
                if operator == Operator::Null {
                    check_null_values(&values, &where_)?;
                }
                let (issuer, claim) = match key.rsplit_once(':') {
                    Some((prefix, claim)) => (Some(prefix.to_owned()), claim.to_owned()),
                    None => (None, key.clone()),
                };
                if claim.is_empty() {
                    return Err(bad(&where_, "names no claim"));
                }
                if let Some(p) = &issuer {
                    if !stmt_issuers.contains(p) {
                        return Err(bad(&where_, format!("the key is qualified with {p:?}, which is not this statement's Principal.Federated")));
                    }
                }
                if matches!(operator, Operator::StringEquals | Operator::StringNotEquals) {
                    if let Some(w) = values.iter().find(|w| w.contains('*') || w.contains('?')) {
                        warnings.push(format!(
                            "{at}: {op_name} on {claim} has {w:?}: {op_name} compares exactly, so '*' and '?' never match as wildcards; use StringLike"
                        ));
                    }
                }
                if set == SetQualifier::ForAllValues && !operator.negated() && operator != Operator::Null {
                    warnings.push(format!("{at}: {op_name} on {claim} also matches a token without {claim} (IAM's rule for ForAllValues)"));
                }
                conditions.push(Condition { operator, set, key: key.clone(), claim, issuer, values });
            }
        }
    }
    if effect == Effect::Allow {
        let binds = |claims: &[&str]| {
            conditions.iter().any(|c| {
                claims.contains(&c.claim.as_str())
                    && matches!(c.operator, Operator::StringEquals | Operator::StringLike)
                    && c.set != SetQualifier::ForAllValues
                    && c.values.iter().any(|v| !v.trim_matches(['*', '?']).is_empty())
            })
        };
        if !binds(&["aud"]) {
            return Err(bad(&at, "binds no audience: add a StringEquals condition on aud (the audience the workflow requests)"));
        }
        if !binds(&["sub", "repository", "repository_id"]) {
            return Err(bad(&at, "binds neither sub nor repository/repository_id: any repository could use this role"));
        }
    }
    Ok(Statement { sid, effect, issuers: stmt_issuers, conditions })
}

/// The values of a claim as strings; `None` when absent (or JSON null).
fn claim_values(claims: &BTreeMap<String, Value>, name: &str) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match claims.get(name)? {
        Value::Null => None,
        Value::Array(a) => Some(a.iter().filter_map(one).collect()),
        v => Some(one(v).into_iter().collect()),
    }
}

/// Whether a condition holds; `Err(explanation)` when it does not.
fn check(c: &Condition, issuer_id: &str, claims: &BTreeMap<String, Value>) -> std::result::Result<(), String> {
    // A key qualified with another issuer names a claim this token does not have.
    let got = if c.issuer.as_deref().is_some_and(|p| p != issuer_id) { None } else { claim_values(claims, &c.claim) };
    if c.operator == Operator::Null {
        let want_absent = c.values[0] == "true";
        return match (&got, want_absent) {
            (None, true) | (Some(_), false) => Ok(()),
            (Some(v), true) => Err(format!("Null on {}: want no {} claim, got {}", c.claim, c.claim, shown(v))),
            (None, false) => Err(format!("Null on {}: the token has no {} claim", c.claim, c.claim)),
        };
    }
    let any_match = |v: &str| c.values.iter().any(|w| c.operator.compare(v, w));
    let holds = match (c.set, &got) {
        (SetQualifier::ForAllValues, None) => true,
        (SetQualifier::ForAllValues, Some(vs)) if c.operator.negated() => vs.iter().all(|v| !any_match(v)),
        (SetQualifier::ForAllValues, Some(vs)) => vs.iter().all(|v| any_match(v)),
        (SetQualifier::ForAnyValue, None) => false,
        (SetQualifier::ForAnyValue, Some(vs)) if c.operator.negated() => vs.iter().any(|v| !any_match(v)),
        (SetQualifier::ForAnyValue, Some(vs)) => vs.iter().any(|v| any_match(v)),
        // IAM: a negated operator on an absent key holds.
        (SetQualifier::Single, None) => c.operator.negated(),
        (SetQualifier::Single, Some(vs)) if c.operator.negated() => !vs.iter().any(|v| any_match(v)),
        (SetQualifier::Single, Some(vs)) => vs.iter().any(|v| any_match(v)),
    };
    if holds {
        return Ok(());
    }
    let mut why = match &got {
        None => format!("{}: the token has no {} claim", c.label(), c.claim),
        Some(v) => format!("{}: got {}", c.label(), shown(v)),
    };
    if let Some(hint) = got.as_deref().and_then(|g| hint(c, g)) {
        why.push_str(&format!(" ({hint})"));
    }
    Err(why)
}

fn shown(values: &[String]) -> String {
    match values {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The known ways a GitHub Actions trust policy fails to match (docs/ci.md, "When it is refused").
fn hint(c: &Condition, got: &[String]) -> Option<String> {
    if c.operator.negated() {
        return None;
    }
    let want = &c.values;
    let g = got.first()?;
    if want.iter().any(|w| w.eq_ignore_ascii_case(g)) && !want.contains(g) {
        return Some("values are case-sensitive: write the owner and repository exactly as GitHub does".into());
    }
    if c.operator == Operator::StringEquals && want.iter().any(|w| w.contains('*')) {
        return Some("StringEquals never expands '*': use StringLike".into());
    }
    if c.claim == "sub" && g.contains(":environment:") && !want.iter().any(|w| w.contains(":environment:")) {
        return Some("the job runs in an environment, which makes sub repo:OWNER/REPO:environment:NAME instead of the branch form".into());
    }
    if c.claim == "sub" && g.contains('@') && !want.iter().any(|w| w.contains('@')) {
        return Some("this repository uses immutable subjects, repo:OWNER@OWNER_ID/REPO@REPO_ID:…".into());
    }
    if g.contains("%3A") && !want.iter().any(|w| w.contains("%3A")) {
        return Some("a ':' inside a value appears as %3A in sub".into());
    }
    None
}

/// `*` matches any run of characters (including none), `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) && pattern[p] != b'*' {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn evaluate_statement(s: &Statement, index: usize, issuer_id: &str, claims: &BTreeMap<String, Value>) -> StatementResult {
    let label = s.label(index);
    let mut failed = None;
    let mut failed_claim = None;
    if !s.issuers.iter().any(|i| i == issuer_id) {
        failed = Some(format!("the token's issuer {issuer_id} is not this statement's Principal.Federated ({})", s.issuers.join(", ")));
    } else {
        for c in &s.conditions {
            if let Err(why) = check(c, issuer_id, claims) {
                failed = Some(why);
                failed_claim = Some(c.claim.clone());
                break;
            }
        }
    }
    StatementResult { index, label, sid: s.sid.clone(), effect: s.effect, matched: failed.is_none(), failed, failed_claim }
}

/// What the policy decided, with every statement's result for explanations.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    pub decision: Decision,
    pub statements: Vec<StatementResult>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Decision {
    /// The first matching `Allow` statement (no `Deny` matched).
    Allowed { statement: usize },
    /// A matching `Deny` statement.
    Denied { statement: usize },
    /// No `Allow` statement matched.
    NoMatch,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct StatementResult {
    /// Zero-based position in the policy.
    pub index: usize,
    /// `statement 2 ("AllowMain")`.
    pub label: String,
    pub sid: Option<String>,
    pub effect: Effect,
    pub matched: bool,
    /// Why it did not match: the first condition that failed, with what the token had.
    pub failed: Option<String>,
    /// The claim that condition read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_claim: Option<String>,
}

impl Evaluation {
    pub fn allowed(&self) -> bool {
        matches!(self.decision, Decision::Allowed { .. })
    }

    /// No statement allowed the token, and each `Allow` failed on the audience alone: the
    /// token was meant for someone else (STS answers `InvalidIdentityToken` for that).
    pub fn wrong_audience(&self) -> bool {
        let mut allows = self.statements.iter().filter(|r| r.effect == Effect::Allow).peekable();
        matches!(self.decision, Decision::NoMatch) && allows.peek().is_some() && allows.all(|r| r.failed_claim.as_deref() == Some("aud"))
    }

    /// One line saying why the token was refused, for the error message and the audit record.
    pub fn refusal(&self) -> String {
        match self.decision {
            Decision::Allowed { .. } => String::new(),
            Decision::Denied { statement } => format!("{} (Deny) matched", self.statements[statement].label),
            Decision::NoMatch => {
                let parts: Vec<String> = self
                    .statements
                    .iter()
                    .filter(|r| r.effect == Effect::Allow)
                    .map(|r| format!("{}: {}", r.label, r.failed.as_deref().unwrap_or("matched")))
                    .collect();
                parts.join("; ")
            }
        }
    }
}

#[cfg(test)]
mod tests;
