//! The before-and-after report (`stint report`, `GET /v1/report`): the long-lived keys the
//! inventory still finds ("before"), what stint issued instead ("after"), and who could and
//! did hold what (the access review). Built from facts the broker reads; nothing here reads a
//! store or a clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::audit::{count_failures, login_failures, Event, FailureCount, Outcome, Record, Refused};
use crate::error::{Error, Result};
use crate::ids::RoleName;
use crate::inventory::{Imported, Inventory, Totals};
use crate::model::{Lease, RequestStatus, RoleRequest, User};
use crate::policy::CI_SUBJECT_PREFIX;
use crate::time::Timestamp;
use crate::workload::WORKLOAD_SUBJECT_PREFIX;

/// The longest period one report covers: a year and a quarter, enough for an annual audit.
pub const MAX_PERIOD_SECS: i64 = 460 * 86_400;

/// The period a report covers when none is asked for.
pub const DEFAULT_PERIOD_SECS: i64 = 30 * 86_400;

/// The most leases and audit records a report reads; past this it says it is partial.
pub const MAX_ROWS: usize = 500_000;

/// Who holds a credential: a person, a CI pipeline or a workload (a service's agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Person,
    Ci,
    Workload,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Person, Source::Ci, Source::Workload];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Person => "person",
            Source::Ci => "ci",
            Source::Workload => "workload",
        }
    }

    /// Who a lease was issued to, from the holder it names.
    pub fn of(lease: &Lease) -> Source {
        if lease.user_id.is_some() {
            Source::Person
        } else if lease.subject.starts_with(WORKLOAD_SUBJECT_PREFIX) {
            Source::Workload
        } else {
            Source::Ci
        }
    }

    /// Who a `credential.issued` record's actor is: `ci:ISSUER`, `workload:NAME`, or a
    /// person's user id.
    pub fn of_actor(actor: &str) -> Source {
        if actor.starts_with(CI_SUBJECT_PREFIX) {
            Source::Ci
        } else if actor.starts_with(WORKLOAD_SUBJECT_PREFIX) {
            Source::Workload
        } else {
            Source::Person
        }
    }
}

/// One credential issued, as its `credential.issued` record tells: role tokens and backend
/// credentials alike.
struct Issuance<'a> {
    at: Timestamp,
    source: Source,
    /// The person's user id, `workload:NAME`, or `ci:ISSUER:SUB`.
    holder: String,
    role: &'a str,
    /// The lifetime granted, seconds.
    ttl: i64,
    grant: Option<&'a str>,
    /// `token` for a role token; a backend's name otherwise.
    backend: Option<&'a str>,
    /// The person's session it was issued in.
    session: Option<&'a str>,
}

/// The credentials issued in the period: every `credential.issued` record but those whose
/// backend then failed to make the credential (`credential.failed` for the same lease).
fn issuances(records: &[Record], period: Period) -> Vec<Issuance<'_>> {
    let failed: BTreeSet<&str> = records.iter().filter(|r| r.event == Event::CredentialFailed.code()).map(|r| r.subject.as_str()).collect();
    records
        .iter()
        .filter(|r| r.event == Event::CredentialIssued.code() && r.outcome == Outcome::Success && period.holds(r.at))
        .filter(|r| !failed.contains(r.subject.as_str()))
        .map(|r| {
            let detail = |k: &str| r.details.get(k).map(String::as_str);
            let source = Source::of_actor(&r.actor);
            let holder = match (source, detail("claim.sub")) {
                (Source::Ci, Some(sub)) => format!("{}:{sub}", r.actor),
                _ => r.actor.clone(),
            };
            Issuance {
                at: r.at,
                source,
                holder,
                role: detail("role").unwrap_or_default(),
                ttl: detail("ttl").and_then(|t| t.parse().ok()).unwrap_or(0),
                grant: detail("grant"),
                backend: detail("backend"),
                session: detail("session"),
            }
        })
        .collect()
}

/// The period `[since, as_of]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub since: Timestamp,
    pub as_of: Timestamp,
}

impl Period {
    /// `since` must come before `as_of`, by at most [`MAX_PERIOD_SECS`].
    pub fn new(since: Timestamp, as_of: Timestamp) -> Result<Period> {
        if since >= as_of {
            return Err(Error::invalid(
                "invalid_period",
                format!("the period must start before it ends ({} is not before {})", since.to_rfc3339(), as_of.to_rfc3339()),
            ));
        }
        if as_of.0 - since.0 > MAX_PERIOD_SECS {
            return Err(Error::invalid("invalid_period", format!("a report covers at most {} days; ask for a shorter --since", MAX_PERIOD_SECS / 86_400)));
        }
        Ok(Period { since, as_of })
    }

    fn holds(&self, t: Timestamp) -> bool {
        self.since <= t && t <= self.as_of
    }
}

/// The roles someone could assume, by what it takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligible {
    /// Whenever they ask (with MFA where the policy wants it).
    pub standing: Vec<RoleName>,
    /// Only while on call.
    pub on_call: Vec<RoleName>,
    /// Only with an approved request.
    pub on_request: Vec<RoleName>,
    /// Only through break-glass.
    pub break_glass: Vec<RoleName>,
}

/// A person and what the policies let them assume.
pub struct PersonFacts<'a> {
    pub user: &'a User,
    pub eligible: Eligible,
    /// The sponsor's user name, for an account that ends.
    pub sponsor: Option<String>,
}

/// A workload and the roles it was given.
pub struct WorkloadFacts {
    pub name: String,
    pub disabled: bool,
    pub roles: Vec<RoleName>,
}

/// A role pipelines may assume, and the trust policy's statements that say which.
pub struct PipelineFacts {
    pub role: RoleName,
    pub trust: Vec<String>,
}

/// What the broker read for a report.
pub struct Facts<'a> {
    pub period: Period,
    pub generated_at: Timestamp,
    /// Kept inventory snapshots generated at or before `as_of`, oldest first.
    pub snapshots: &'a [Imported],
    /// Leases issued at or before `as_of` and not over before `since`.
    pub leases: &'a [Lease],
    /// Audit records of the period, in order: what was issued (`credential.issued`, role
    /// tokens included), refused, granted and disabled.
    pub records: &'a [Record],
    /// Role requests that may have been granted in the period.
    pub requests: &'a [RoleRequest],
    pub people: Vec<PersonFacts<'a>>,
    pub workloads: Vec<WorkloadFacts>,
    pub pipelines: Vec<PipelineFacts>,
    /// The leases or records were cut at [`MAX_ROWS`].
    pub partial: bool,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: Timestamp,
    pub period: Period,
    /// Some rows were not read ([`MAX_ROWS`]): the figures are lower bounds.
    pub partial: bool,
    pub before: Before,
    pub after: After,
    pub review: Review,
}

/// The long-lived keys: where the team started, where it is, and the way between.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Before {
    /// Each account's first snapshot, added up: the starting point. `None` without snapshots.
    pub baseline: Option<Totals>,
    /// Each account's newest snapshot at `as_of`, added up.
    pub current: Totals,
    /// The totals after each snapshot of the period (and the last one before it).
    pub trend: Vec<Totals>,
}

/// What stint issued instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct After {
    /// Credentials live at `as_of`: backend credentials (AWS, PostgreSQL, SSH) as their leases
    /// say, and role tokens (backend `token`) not expired nor ended with their session, person,
    /// grant or workload.
    pub active: Active,
    /// People's sign-in sessions started in the period, and how long they lasted.
    pub sessions: Sessions,
    /// How long the credentials issued in the period were granted for.
    pub lifetimes: Lifetimes,
    /// Credentials issued in the period, by role and source, most first.
    pub issued: Vec<IssuedCount>,
    pub issued_total: u64,
    /// Refused logins, CI token exchanges and workload requests, by reason, most first.
    pub failed_authentications: Vec<FailureCount>,
    pub failed_total: u64,
    pub break_glass: Vec<BreakGlassUse>,
    pub approvals: Vec<Approval>,
    /// Every person disabled in the period, and how long until the last credential they
    /// held had ended.
    pub offboarding: Vec<Offboarded>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    pub total: u64,
    /// Every source, zero included.
    pub by_source: BTreeMap<Source, u64>,
    pub by_backend: BTreeMap<String, u64>,
}

/// Sign-in sessions: from the login to whichever came first of the logout or revocation
/// (the person's disable included) and the session's expiry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    pub started: u64,
    pub average_secs: f64,
    pub median_secs: i64,
    /// Ended by a logout or a revocation before they expired.
    pub ended_early: u64,
}

/// The lifetimes credentials were granted, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifetimes {
    pub count: u64,
    pub average_secs: f64,
    pub median_secs: i64,
    pub p90_secs: i64,
    pub longest_secs: i64,
    /// Average by source (sources that issued nothing are left out).
    pub average_secs_by_source: BTreeMap<Source, f64>,
    pub buckets: Vec<Bucket>,
}

/// Credentials whose lifetime is at most `up_to_secs` (and over the previous bucket's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub label: String,
    /// `None`: the last bucket, with no upper bound.
    pub up_to_secs: Option<i64>,
    pub count: u64,
}

/// The lifetime buckets: the CI range, the hour services rotate on, a working day, longer.
const BUCKETS: [(&str, Option<i64>); 6] =
    [("≤ 15 min", Some(900)), ("≤ 1 h", Some(3_600)), ("≤ 4 h", Some(14_400)), ("≤ 8 h", Some(28_800)), ("≤ 24 h", Some(86_400)), ("> 24 h", None)];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCount {
    pub role: String,
    pub source: Source,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassUse {
    pub at: Timestamp,
    pub person: String,
    pub role: String,
    pub reason: String,
    pub until: Option<Timestamp>,
    /// Credentials issued under it.
    pub credentials: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub requested_at: Timestamp,
    pub granted_at: Timestamp,
    pub until: Timestamp,
    pub requester: String,
    pub role: String,
    pub approvers: Vec<String>,
    pub reason: String,
    /// Revoked before its end, and by whom.
    pub revoked_by: Option<String>,
    pub credentials: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offboarded {
    pub person: String,
    pub disabled_at: Timestamp,
    /// Who disabled the account: a person, `scim:PROVIDER`, or `stint` (account expiry).
    pub by: String,
    /// Credentials live when the account was disabled.
    pub credentials_live: u64,
    /// When the last of them ended at the backend; `None` while one has not yet.
    pub last_ended_at: Option<Timestamp>,
    /// From the disable to that end; 0 when nothing was live, `None` while one is pending.
    pub seconds_to_revoke: Option<i64>,
}

/// For every person, workload and pipeline: what they could assume and what they held.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub people: Vec<PersonReview>,
    pub workloads: Vec<WorkloadReview>,
    pub pipelines: Vec<PipelineReview>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonReview {
    pub name: String,
    /// `active`, `disabled` (offboarded) or `expired` (an account that ended on its date).
    pub status: String,
    pub groups: Vec<String>,
    pub expires_at: Option<Timestamp>,
    pub sponsor: Option<String>,
    pub could: Eligible,
    pub held: Vec<Held>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadReview {
    pub name: String,
    pub disabled: bool,
    pub could: Vec<RoleName>,
    pub held: Vec<Held>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineReview {
    pub role: RoleName,
    /// The trust policy's statements, one line each.
    pub trust: Vec<String>,
    /// The pipelines (`ci:ISSUER:SUB`) that held it in the period.
    pub held_by: Vec<HeldBy>,
}

/// A role held in the period: how many credentials, the last issued when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub role: String,
    pub credentials: u64,
    pub last_issued_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBy {
    pub subject: String,
    pub credentials: u64,
    pub last_issued_at: Timestamp,
}

impl Report {
    pub fn build(f: &Facts<'_>) -> Report {
        let issued = issuances(f.records, f.period);
        Report {
            generated_at: f.generated_at,
            period: f.period,
            partial: f.partial,
            before: before(f.snapshots, f.period),
            after: After {
                active: Active::at(f.leases, f.period.as_of).with_tokens(live_tokens(f, &issued)),
                sessions: sessions(f),
                lifetimes: lifetimes(&issued),
                issued_total: issued.len() as u64,
                issued: issued_counts(&issued),
                failed_total: 0,
                failed_authentications: vec![],
                break_glass: break_glass(f, &issued),
                approvals: approvals(f, &issued),
                offboarding: offboarding(f),
            }
            .with_failures(failures(f.records, f.period)),
            review: review(f, &issued),
        }
    }
}

impl After {
    fn with_failures(mut self, failures: Vec<FailureCount>) -> After {
        self.failed_total = failures.iter().map(|c| c.count).sum();
        self.failed_authentications = failures;
        self
    }
}

fn before(snapshots: &[Imported], period: Period) -> Before {
    let kept: Vec<&Imported> = snapshots.iter().filter(|i| i.snapshot.generated_at <= period.as_of).collect();
    let mut first: BTreeMap<&str, &Imported> = BTreeMap::new();
    for i in &kept {
        first.entry(i.snapshot.account.as_str()).or_insert(i);
    }
    let baseline = (!first.is_empty()).then(|| Inventory::totals_of(first.values().copied()));
    // Each point: every account's newest snapshot up to then. The first point is the last
    // state before the period, so the trend starts where the period did.
    let mut trend = Vec::new();
    let mut newest: BTreeMap<&str, &Imported> = BTreeMap::new();
    for (n, i) in kept.iter().enumerate() {
        newest.insert(&i.snapshot.account, i);
        let next_same_time = kept.get(n + 1).is_some_and(|j| j.snapshot.generated_at == i.snapshot.generated_at);
        let before_period = i.snapshot.generated_at < period.since;
        let last_before = kept.get(n + 1).is_none_or(|j| j.snapshot.generated_at >= period.since);
        if !next_same_time && (!before_period || last_before) {
            trend.push(Inventory::totals_of(newest.values().copied()));
        }
    }
    Before { baseline, current: Inventory::totals_of(newest.values().copied()), trend }
}

impl Active {
    /// The credentials of `leases` live at `at`.
    pub fn at(leases: &[Lease], at: Timestamp) -> Active {
        let mut a = Active { by_source: Source::ALL.iter().map(|s| (*s, 0)).collect(), ..Active::default() };
        for l in leases.iter().filter(|l| l.issued_at <= at && l.live_at(at)) {
            a.total += 1;
            *a.by_source.entry(Source::of(l)).or_default() += 1;
            *a.by_backend.entry(l.backend.clone()).or_default() += 1;
        }
        a
    }

    fn with_tokens(mut self, sources: Vec<Source>) -> Active {
        for s in sources {
            self.total += 1;
            *self.by_source.entry(s).or_default() += 1;
            *self.by_backend.entry(TOKEN_BACKEND.to_owned()).or_default() += 1;
        }
        self
    }
}

/// What the `credential.issued` record of a role token names as its backend.
const TOKEN_BACKEND: &str = "token";

/// The sources of the role tokens of `issued` still honoured at the period's end: not expired,
/// their session not ended or revoked, their person not disabled, their grant not revoked,
/// their workload not disabled. (A pipeline's token ends only by expiring.)
fn live_tokens(f: &Facts<'_>, issued: &[Issuance<'_>]) -> Vec<Source> {
    let at = f.period.as_of;
    let ended = |events: &[Event]| -> BTreeSet<&str> {
        f.records.iter().filter(|r| r.at <= at && events.iter().any(|e| r.event == e.code())).map(|r| r.subject.as_str()).collect()
    };
    let sessions = ended(&[Event::SessionEnded, Event::SessionRevoked]);
    let mut grants = ended(&[Event::GrantRevoked]);
    grants.extend(f.requests.iter().filter(|q| q.status == RequestStatus::Revoked).map(|q| q.id.as_str()));
    let mut people = ended(&[Event::UserDisabled]);
    people.extend(f.people.iter().filter(|p| p.user.disabled).map(|p| p.user.id.as_str()));
    let workloads: BTreeSet<String> = f.workloads.iter().filter(|w| w.disabled).map(|w| format!("{WORKLOAD_SUBJECT_PREFIX}{}", w.name)).collect();
    issued
        .iter()
        .filter(|i| i.backend == Some(TOKEN_BACKEND) && i.at <= at && at.0 < i.at.0.saturating_add(i.ttl))
        .filter(|i| match i.source {
            Source::Person => !people.contains(i.holder.as_str()) && !i.session.is_some_and(|s| sessions.contains(s)),
            Source::Workload => !workloads.contains(&i.holder),
            Source::Ci => true,
        })
        .filter(|i| !i.grant.is_some_and(|g| grants.contains(g)))
        .map(|i| i.source)
        .collect()
}

fn sessions<'a>(f: &'a Facts<'_>) -> Sessions {
    let mut ends: BTreeMap<&str, Timestamp> = BTreeMap::new();
    let mut note = |key: &'a str, at: Timestamp| {
        let e = ends.entry(key).or_insert(at);
        *e = (*e).min(at);
    };
    for r in f.records.iter().filter(|r| r.outcome == Outcome::Success) {
        if r.event == Event::SessionEnded.code() || r.event == Event::SessionRevoked.code() || r.event == Event::UserDisabled.code() {
            // A session's own end names the session; a disable (and the revocation of all of
            // a person's sessions that comes with it) names the person.
            note(r.subject.as_str(), r.at);
        }
    }
    let mut early = 0;
    let mut secs: Vec<i64> = f
        .records
        .iter()
        .filter(|r| r.event == Event::SessionStarted.code() && r.outcome == Outcome::Success && f.period.holds(r.at))
        .map(|r| {
            let expires = r.details.get("expires_at").and_then(|t| Timestamp::parse_rfc3339(t)).unwrap_or(r.at);
            let ended = [ends.get(r.subject.as_str()), ends.get(r.actor.as_str())].into_iter().flatten().copied().filter(|&e| e >= r.at).min();
            let end = match ended {
                Some(e) if e < expires => {
                    early += 1;
                    e
                }
                _ => expires,
            };
            (end.0 - r.at.0).max(0)
        })
        .collect();
    if secs.is_empty() {
        return Sessions::default();
    }
    secs.sort_unstable();
    Sessions { started: secs.len() as u64, average_secs: mean(&secs), median_secs: nearest_rank(&secs, 0.5), ended_early: early }
}

/// The mean of `values` (not empty).
fn mean(values: &[i64]) -> f64 {
    values.iter().map(|&s| s as f64).sum::<f64>() / values.len() as f64
}

/// Nearest rank: the smallest of `sorted` (not empty) with at least a fraction `q` of them at
/// or below it.
fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn lifetimes(issued: &[Issuance<'_>]) -> Lifetimes {
    let mut secs: Vec<i64> = issued.iter().map(|i| i.ttl).collect();
    if secs.is_empty() {
        return Lifetimes { buckets: buckets(&[]), ..Lifetimes::default() };
    }
    secs.sort_unstable();
    let mut by_source: BTreeMap<Source, (f64, u64)> = BTreeMap::new();
    for i in issued {
        let e = by_source.entry(i.source).or_default();
        e.0 += i.ttl as f64;
        e.1 += 1;
    }
    Lifetimes {
        count: secs.len() as u64,
        average_secs: mean(&secs),
        median_secs: nearest_rank(&secs, 0.5),
        p90_secs: nearest_rank(&secs, 0.9),
        longest_secs: secs[secs.len() - 1],
        average_secs_by_source: by_source.into_iter().map(|(s, (sum, n))| (s, sum / n as f64)).collect(),
        buckets: buckets(&secs),
    }
}

fn buckets(sorted_secs: &[i64]) -> Vec<Bucket> {
    let mut lower = i64::MIN;
    BUCKETS
        .iter()
        .map(|&(label, up_to)| {
            let upper = up_to.unwrap_or(i64::MAX);
            let count = sorted_secs.iter().filter(|&&s| s > lower && s <= upper).count() as u64;
            lower = upper;
            Bucket { label: label.to_owned(), up_to_secs: up_to, count }
        })
        .collect()
}

fn issued_counts(issued: &[Issuance<'_>]) -> Vec<IssuedCount> {
    let mut counts: BTreeMap<(String, Source), u64> = BTreeMap::new();
    for i in issued {
        *counts.entry((i.role.to_owned(), i.source)).or_default() += 1;
    }
    let mut out: Vec<IssuedCount> = counts.into_iter().map(|((role, source), count)| IssuedCount { role, source, count }).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.role, a.source).cmp(&(&b.role, b.source))));
    out
}

/// Refused authentications: failed logins ([`crate::audit::login_failures`]), refused CI
/// token exchanges and refused workload requests, with the folded summaries of each
/// (`refusals.folded`, whose `count` is how many they stand for).
fn failures(records: &[Record], period: Period) -> Vec<FailureCount> {
    let in_period = records.iter().filter(|r| period.holds(r.at));
    count_failures(in_period, |r| login_failures(r).or_else(|| other_failures(r)))
}

/// The refused CI token exchanges and workload requests `r` records. A folded summary's actor
/// is the address and its scope `ISSUER/role` (CI); a refusal's actor is `ci:ISSUER` (once
/// the issuer is known) and its address a detail.
fn other_failures(r: &Record) -> Option<Refused<'_>> {
    let detail = |k: &str| r.details.get(k).map(String::as_str);
    let (event, count, provider, source) = if r.event == Event::RefusalsFolded.code() {
        let issuer = detail("scope").and_then(|s| s.split_once('/')).map_or("", |(i, _)| i);
        (detail("event").unwrap_or_default(), detail("count").and_then(|c| c.parse().ok()).unwrap_or(0), issuer, r.actor.as_str())
    } else {
        (r.event.as_str(), 1, r.actor.strip_prefix(CI_SUBJECT_PREFIX).unwrap_or_default(), detail("addr").unwrap_or(&r.actor))
    };
    let (method, provider) = if event == Event::ExchangeDenied.code() {
        ("ci", provider)
    } else if event == Event::WorkloadDenied.code() {
        ("workload", "")
    } else {
        return None;
    };
    Some(Refused { method: method.to_owned(), provider: provider.to_owned(), count, source })
}

/// Credentials issued under each grant.
fn per_grant<'a>(issued: &[Issuance<'a>]) -> BTreeMap<&'a str, u64> {
    let mut m = BTreeMap::new();
    for g in issued.iter().filter_map(|i| i.grant) {
        *m.entry(g).or_default() += 1;
    }
    m
}

fn break_glass(f: &Facts<'_>, issued: &[Issuance<'_>]) -> Vec<BreakGlassUse> {
    let under = per_grant(issued);
    let mut out: Vec<BreakGlassUse> = f
        .requests
        .iter()
        .filter(|q| q.break_glass && f.period.holds(q.granted_from.unwrap_or(q.created_at)))
        .map(|q| BreakGlassUse {
            at: q.granted_from.unwrap_or(q.created_at),
            person: q.requester_name.to_string(),
            role: q.role.to_string(),
            reason: q.reason.clone(),
            until: q.granted_until,
            credentials: under.get(q.id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    out.sort_by_key(|b| b.at);
    out
}

fn approvals(f: &Facts<'_>, issued: &[Issuance<'_>]) -> Vec<Approval> {
    let under = per_grant(issued);
    let mut out: Vec<Approval> = f
        .requests
        .iter()
        .filter(|q| !q.break_glass && matches!(q.status, RequestStatus::Approved | RequestStatus::Revoked))
        .filter_map(|q| {
            let (from, until) = (q.granted_from?, q.granted_until?);
            f.period.holds(from).then(|| Approval {
                requested_at: q.created_at,
                granted_at: from,
                until,
                requester: q.requester_name.to_string(),
                role: q.role.to_string(),
                approvers: q.approvals.iter().map(ToString::to_string).collect(),
                reason: q.reason.clone(),
                revoked_by: (q.status == RequestStatus::Revoked).then(|| q.decided_by.clone().unwrap_or_default()),
                credentials: under.get(q.id.as_str()).copied().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|a| a.granted_at);
    out
}

fn offboarding(f: &Facts<'_>) -> Vec<Offboarded> {
    let names: BTreeMap<&str, &str> = f.people.iter().map(|p| (p.user.id.as_str(), p.user.name.as_str())).collect();
    let mut out = Vec::new();
    for r in f.records.iter().filter(|r| r.event == Event::UserDisabled.code() && r.outcome == Outcome::Success && f.period.holds(r.at)) {
        let at = r.at;
        let live: Vec<&Lease> = f
            .leases
            .iter()
            .filter(|l| l.user_id.as_ref().is_some_and(|u| u.as_str() == r.subject))
            .filter(|l| l.issued_at <= at && l.ended_at.is_none_or(|e| e >= at) && l.expires_at > at)
            .collect();
        let pending = live.iter().any(|l| l.ended_at.is_none());
        let last = live.iter().filter_map(|l| l.ended_at).max();
        out.push(Offboarded {
            person: names.get(r.subject.as_str()).map_or_else(|| r.subject.clone(), |n| (*n).to_owned()),
            disabled_at: at,
            by: actor_name(&r.actor, &names),
            credentials_live: live.len() as u64,
            last_ended_at: if pending { None } else { last },
            seconds_to_revoke: match (pending, last) {
                (true, _) => None,
                (false, Some(end)) => Some((end.0 - at.0).max(0)),
                (false, None) => Some(0),
            },
        });
    }
    out
}

/// A record's actor as a reader knows it: a person's name for a user id.
fn actor_name(actor: &str, names: &BTreeMap<&str, &str>) -> String {
    names.get(actor).map_or_else(|| actor.to_owned(), |n| (*n).to_owned())
}

/// How many of `issued` each key (a role, a pipeline) has, and the latest issuance.
fn tally<'a>(issued: impl Iterator<Item = &'a Issuance<'a>>, key: impl Fn(&'a Issuance<'a>) -> &'a str) -> BTreeMap<&'a str, (u64, Timestamp)> {
    let mut by: BTreeMap<&str, (u64, Timestamp)> = BTreeMap::new();
    for i in issued {
        let e = by.entry(key(i)).or_insert((0, i.at));
        e.0 += 1;
        e.1 = e.1.max(i.at);
    }
    by
}

fn held<'a>(issued: impl Iterator<Item = &'a Issuance<'a>>) -> Vec<Held> {
    tally(issued, |i| i.role).into_iter().map(|(role, (credentials, last_issued_at))| Held { role: role.to_owned(), credentials, last_issued_at }).collect()
}

fn review(f: &Facts<'_>, issued: &[Issuance<'_>]) -> Review {
    let people = f
        .people
        .iter()
        .map(|p| {
            let u = p.user;
            let status = if !u.disabled {
                "active"
            } else if u.expired_at(f.period.as_of.max(f.generated_at)) {
                "expired"
            } else {
                "disabled"
            };
            PersonReview {
                name: u.name.to_string(),
                status: status.to_owned(),
                groups: u.groups.iter().map(ToString::to_string).collect(),
                expires_at: u.expires_at,
                sponsor: p.sponsor.clone(),
                could: p.eligible.clone(),
                held: held(issued.iter().filter(|i| i.source == Source::Person && i.holder == u.id.as_str())),
            }
        })
        .collect();
    let workloads = f
        .workloads
        .iter()
        .map(|w| {
            let holder = format!("{WORKLOAD_SUBJECT_PREFIX}{}", w.name);
            WorkloadReview { name: w.name.clone(), disabled: w.disabled, could: w.roles.clone(), held: held(issued.iter().filter(|i| i.holder == holder)) }
        })
        .collect();
    let pipelines = f
        .pipelines
        .iter()
        .map(|p| {
            let by = tally(issued.iter().filter(|i| i.source == Source::Ci && i.role == p.role.as_str()), |i| i.holder.as_str());
            PipelineReview {
                role: p.role.clone(),
                trust: p.trust.clone(),
                held_by: by.into_iter().map(|(s, (credentials, last_issued_at))| HeldBy { subject: s.to_owned(), credentials, last_issued_at }).collect(),
            }
        })
        .collect();
    Review { people, workloads, pipelines }
}
