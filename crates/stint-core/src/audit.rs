//! The audit log as a cryptographic artefact: canonical records in a SHA-256 hash chain.
//!
//! Record *n* commits to record *n − 1* through `prev_hash`, so editing, deleting, inserting
//! or reordering any record breaks the chain at a point [`verify_chain`] reports. The chain
//! head is also kept apart from the records, which exposes truncation of the tail.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// Stable event codes. Renaming one breaks every consumer: `codes_are_stable` pins them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    ConfigLoaded,
    KeyCreated,
    KeyRotated,
    BootstrapIssued,
    BootstrapUsed,
    UserCreated,
    UserEnrolled,
    UserDisabled,
    UserEnabled,
    EnrollmentIssued,
    LoginSucceeded,
    LoginFailed,
    SessionStarted,
    SessionEnded,
    SessionRevoked,
    CredentialIssued,
    AssumeDenied,
    RequestRefused,
    UserGroupsChanged,
    ExchangeDenied,
    RequestCreated,
    RequestApproved,
    RequestDenied,
    GrantRevoked,
    BreakGlass,
    CredentialFailed,
    LeaseRevoked,
    LeaseEnded,
    IdentityLinked,
    OnCallFeedFailed,
    /// Identical refusals counted instead of written one by one ([`crate::fold`]).
    RefusalsFolded,
    WorkloadCreated,
    WorkloadDisabled,
    WorkloadEnabled,
    JoinTokenIssued,
    /// An agent enrolled a key for a workload (with a join token or a platform token).
    WorkloadEnrolled,
    /// A workload's enrollment or credential request was refused.
    WorkloadDenied,
    ScimTokenCreated,
    ScimTokenRevoked,
    /// A SCIM request was refused its bearer token.
    ScimDenied,
    /// The identity provider changed what it says about a person (externalId, email).
    ScimUserUpdated,
    ScimGroupCreated,
    /// The identity provider renamed a group or changed its members.
    ScimGroupUpdated,
    ScimGroupDeleted,
    /// An account reached its end and was disabled (everything it held ended).
    UserExpired,
    /// An account's end or sponsor was set or changed.
    UserExpiryChanged,
    /// The sponsor of an account was alerted of its end.
    UserExpiryAlerted,
    /// The identity provider could not be asked whether it still vouches for the people
    /// of some sessions (unreachable, a 5xx): those sessions stay, and are asked again.
    SsoRevalidateFailed,
    /// A snapshot of an AWS account's long-lived credentials was kept (imported or fetched).
    InventoryImported,
}

impl Event {
    pub const ALL: [Event; 49] = [
        Event::ConfigLoaded,
        Event::KeyCreated,
        Event::KeyRotated,
        Event::BootstrapIssued,
        Event::BootstrapUsed,
        Event::UserCreated,
        Event::UserEnrolled,
        Event::UserDisabled,
        Event::UserEnabled,
        Event::EnrollmentIssued,
        Event::LoginSucceeded,
        Event::LoginFailed,
        Event::SessionStarted,
        Event::SessionEnded,
        Event::SessionRevoked,
        Event::CredentialIssued,
        Event::AssumeDenied,
        Event::RequestRefused,
        Event::UserGroupsChanged,
        Event::ExchangeDenied,
        Event::RequestCreated,
        Event::RequestApproved,
        Event::RequestDenied,
        Event::GrantRevoked,
        Event::BreakGlass,
        Event::CredentialFailed,
        Event::LeaseRevoked,
        Event::LeaseEnded,
        Event::IdentityLinked,
        Event::OnCallFeedFailed,
        Event::RefusalsFolded,
        Event::WorkloadCreated,
        Event::WorkloadDisabled,
        Event::WorkloadEnabled,
        Event::JoinTokenIssued,
        Event::WorkloadEnrolled,
        Event::WorkloadDenied,
        Event::ScimTokenCreated,
        Event::ScimTokenRevoked,
        Event::ScimDenied,
        Event::ScimUserUpdated,
        Event::ScimGroupCreated,
        Event::ScimGroupUpdated,
        Event::ScimGroupDeleted,
        Event::UserExpired,
        Event::UserExpiryChanged,
        Event::UserExpiryAlerted,
        Event::SsoRevalidateFailed,
        Event::InventoryImported,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Event::ConfigLoaded => "config.loaded",
            Event::KeyCreated => "key.created",
            Event::KeyRotated => "key.rotated",
            Event::BootstrapIssued => "bootstrap.issued",
            Event::BootstrapUsed => "bootstrap.used",
            Event::UserCreated => "user.created",
            Event::UserEnrolled => "user.enrolled",
            Event::UserDisabled => "user.disabled",
            Event::UserEnabled => "user.enabled",
            Event::EnrollmentIssued => "user.enrollment_issued",
            Event::LoginSucceeded => "auth.login.succeeded",
            Event::LoginFailed => "auth.login.failed",
            Event::SessionStarted => "session.started",
            Event::SessionEnded => "session.ended",
            Event::SessionRevoked => "session.revoked",
            Event::CredentialIssued => "credential.issued",
            Event::AssumeDenied => "role.assume.denied",
            Event::RequestRefused => "request.refused",
            Event::UserGroupsChanged => "user.groups_changed",
            Event::ExchangeDenied => "ci.exchange.denied",
            Event::RequestCreated => "request.created",
            Event::RequestApproved => "request.approved",
            Event::RequestDenied => "request.denied",
            Event::GrantRevoked => "grant.revoked",
            Event::BreakGlass => "break_glass.used",
            Event::CredentialFailed => "credential.failed",
            Event::LeaseRevoked => "lease.revoked",
            Event::LeaseEnded => "lease.ended",
            Event::IdentityLinked => "user.identity_linked",
            Event::OnCallFeedFailed => "oncall.feed_failed",
            Event::RefusalsFolded => "refusals.folded",
            Event::WorkloadCreated => "workload.created",
            Event::WorkloadDisabled => "workload.disabled",
            Event::WorkloadEnabled => "workload.enabled",
            Event::JoinTokenIssued => "workload.join_token_issued",
            Event::WorkloadEnrolled => "workload.enrolled",
            Event::WorkloadDenied => "workload.denied",
            Event::ScimTokenCreated => "scim.token_created",
            Event::ScimTokenRevoked => "scim.token_revoked",
            Event::ScimDenied => "scim.denied",
            Event::ScimUserUpdated => "scim.user_updated",
            Event::ScimGroupCreated => "scim.group_created",
            Event::ScimGroupUpdated => "scim.group_updated",
            Event::ScimGroupDeleted => "scim.group_deleted",
            Event::UserExpired => "user.expired",
            Event::UserExpiryChanged => "user.expiry_changed",
            Event::UserExpiryAlerted => "user.expiry_alerted",
            Event::SsoRevalidateFailed => "sso.revalidate_failed",
            Event::InventoryImported => "inventory.imported",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// An event about to be appended. The store assigns `seq` and the hashes in the same
/// transaction as the change the event describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub at: Timestamp,
    pub event: String,
    pub outcome: Outcome,
    /// Who acted: a user id, `bootstrap`, `system`, or an address for anonymous callers.
    pub actor: String,
    /// What it acted on (user id, session id, key id), empty when none.
    pub subject: String,
    /// Machine-readable failure reason, empty on success.
    pub reason: String,
    /// Further facts (role, ttl, jti, address…). Never a secret.
    pub details: BTreeMap<String, String>,
}

impl Draft {
    pub fn new(at: Timestamp, event: Event, outcome: Outcome) -> Draft {
        Draft { at, event: event.code().to_owned(), outcome, actor: String::new(), subject: String::new(), reason: String::new(), details: BTreeMap::new() }
    }
    pub fn actor(mut self, a: impl fmt::Display) -> Self {
        self.actor = a.to_string();
        self
    }
    pub fn subject(mut self, s: impl fmt::Display) -> Self {
        self.subject = s.to_string();
        self
    }
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = r.into();
        self
    }
    pub fn detail(mut self, k: &str, v: impl fmt::Display) -> Self {
        self.details.insert(k.to_owned(), v.to_string());
        self
    }
}

/// A chained record as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: Timestamp,
    pub event: String,
    pub outcome: Outcome,
    pub actor: String,
    pub subject: String,
    pub reason: String,
    pub details: BTreeMap<String, String>,
    /// Hex SHA-256 of the previous record; 64 zeros for the first.
    pub prev_hash: String,
    /// Hex SHA-256 of this record's canonical encoding.
    pub hash: String,
}

/// One line of a failed-authentication count: how often authentications by `method` (through
/// `provider`: the SSO provider, the CI issuer) failed for `reason`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailureCount {
    pub method: String,
    pub provider: String,
    pub reason: String,
    pub count: u64,
    /// Distinct actors (addresses) the failures came from.
    pub sources: u64,
    pub last_at: Timestamp,
}

/// What one record says of refused authentications: by which method, through which
/// provider, how many (a folded summary stands for several), and from where.
pub struct Refused<'a> {
    pub method: String,
    pub provider: String,
    pub count: u64,
    pub source: &'a str,
}

/// Refusals counted by method, provider and reason, most frequent first; `of` says what a
/// record refuses, if anything.
pub fn count_failures<'a>(records: impl IntoIterator<Item = &'a Record>, of: impl Fn(&'a Record) -> Option<Refused<'a>>) -> Vec<FailureCount> {
    /// Count, distinct sources, latest time.
    type Tally<'a> = (u64, std::collections::BTreeSet<&'a str>, Timestamp);
    let mut rows: BTreeMap<(String, String, String), Tally<'a>> = BTreeMap::new();
    for r in records {
        let Some(refused) = of(r) else { continue };
        let row = rows.entry((refused.method, refused.provider, r.reason.clone())).or_insert((0, Default::default(), r.at));
        row.0 += refused.count;
        row.1.insert(refused.source);
        row.2 = row.2.max(r.at);
    }
    let mut out: Vec<FailureCount> = rows
        .into_iter()
        .map(|((method, provider, reason), (count, sources, last_at))| FailureCount { method, provider, reason, count, sources: sources.len() as u64, last_at })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.reason, &a.method, &a.provider).cmp(&(&b.reason, &b.method, &b.provider))));
    out
}

/// Failed logins at or after `since`, counted by method, provider and reason, most frequent
/// first ([`login_failures`]).
pub fn failures_by_reason<'a>(records: impl IntoIterator<Item = &'a Record>, since: Timestamp) -> Vec<FailureCount> {
    count_failures(records.into_iter().filter(|r| r.at >= since), login_failures)
}

/// The failed logins `r` records, if it records any: the `auth.login.failed` records every
/// login path writes, and the `refusals.folded` summaries of those folded (their scope is
/// `method` or `method:provider`, their count the failures they stand for).
pub fn login_failures(r: &Record) -> Option<Refused<'_>> {
    let detail = |k: &str| r.details.get(k).cloned().unwrap_or_default();
    if r.event == Event::LoginFailed.code() {
        return Some(Refused { method: detail("method"), provider: detail("provider"), count: 1, source: &r.actor });
    }
    if r.event != Event::RefusalsFolded.code() || detail("event") != Event::LoginFailed.code() {
        return None;
    }
    let scope = detail("scope");
    let (method, provider) = scope.split_once(':').unwrap_or((&scope, ""));
    Some(Refused { method: method.to_owned(), provider: provider.to_owned(), count: detail("count").parse().unwrap_or(0), source: &r.actor })
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical encoding: JSON with a fixed field order and sorted detail keys, prefixed
/// by a domain-separation tag. Everything except `hash` is covered.
fn canonical(seq: u64, d: &Draft, prev_hash: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct C<'a> {
        v: u8,
        seq: u64,
        prev: &'a str,
        at: i64,
        event: &'a str,
        outcome: &'a str,
        actor: &'a str,
        subject: &'a str,
        reason: &'a str,
        details: &'a BTreeMap<String, String>,
    }
    let c = C {
        v: 1,
        seq,
        prev: prev_hash,
        at: d.at.0,
        event: &d.event,
        outcome: d.outcome.as_str(),
        actor: &d.actor,
        subject: &d.subject,
        reason: &d.reason,
        details: &d.details,
    };
    let mut out = b"stint-audit\n".to_vec();
    // Serializing strings, integers and a string map cannot fail.
    out.extend(serde_json::to_vec(&c).unwrap_or_default());
    out
}

/// Lowercase: the chain's hashes are compared as text, so the spelling is part of the format.
fn hex(d: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(d)
}

/// Chains `draft` after the record with `prev_hash`, at position `seq`.
pub fn chain(seq: u64, prev_hash: &str, draft: Draft) -> Record {
    let hash = hex(&Sha256::digest(canonical(seq, &draft, prev_hash)));
    Record {
        seq,
        at: draft.at,
        event: draft.event,
        outcome: draft.outcome,
        actor: draft.actor,
        subject: draft.subject,
        reason: draft.reason,
        details: draft.details,
        prev_hash: prev_hash.to_owned(),
        hash,
    }
}

impl Record {
    fn recompute(&self) -> String {
        let d = Draft {
            at: self.at,
            event: self.event.clone(),
            outcome: self.outcome,
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            reason: self.reason.clone(),
            details: self.details.clone(),
        };
        hex(&Sha256::digest(canonical(self.seq, &d, &self.prev_hash)))
    }
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Break {
    /// The record's content no longer matches its hash.
    Edited { seq: u64 },
    /// The record does not follow the one before it: something was deleted, inserted or reordered.
    Unlinked { seq: u64, expected_seq: u64 },
    /// The last record is not the recorded head: records were removed from the end.
    Truncated { last_seq: u64, head_seq: u64 },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Edited { seq } => write!(f, "record {seq} was edited: its content does not match its hash"),
            Break::Unlinked { seq, expected_seq } => {
                write!(f, "chain broken at record {seq} (expected record {expected_seq} here): a record was deleted, inserted or reordered")
            }
            Break::Truncated { last_seq, head_seq } if last_seq > head_seq => {
                write!(f, "log ends at record {last_seq} but the chain head says {head_seq}: records were added past the head outside stint")
            }
            Break::Truncated { last_seq, head_seq } => {
                write!(f, "log ends at record {last_seq} but the chain head says {head_seq}: records were removed from the end")
            }
        }
    }
}

/// Walks records in stored order, carrying what it needs between pages.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: u64,
    prev_hash: String,
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { expected_seq: 1, prev_hash: GENESIS.to_owned(), checked: 0 }
    }
}

impl Verifier {
    /// Checks the next record; returns the first break found.
    pub fn push(&mut self, r: &Record) -> Result<(), Break> {
        if r.seq != self.expected_seq || r.prev_hash != self.prev_hash {
            return Err(Break::Unlinked { seq: r.seq, expected_seq: self.expected_seq });
        }
        if r.recompute() != r.hash {
            return Err(Break::Edited { seq: r.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = r.hash.clone();
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the walk with the separately kept head `(seq, hash)`.
    pub fn finish(&self, head: Option<(u64, String)>) -> Result<(), Break> {
        let last = self.expected_seq - 1;
        match head {
            Some((seq, hash)) if seq != last || (seq > 0 && hash != self.prev_hash) => Err(Break::Truncated { last_seq: last, head_seq: seq }),
            None if last > 0 => Err(Break::Truncated { last_seq: last, head_seq: 0 }),
            _ => Ok(()),
        }
    }
}

/// Verifies a whole chain held in memory.
pub fn verify_chain<'a>(records: impl IntoIterator<Item = &'a Record>, head: Option<(u64, String)>) -> Result<u64, Break> {
    let mut v = Verifier::default();
    for r in records {
        v.push(r)?;
    }
    v.finish(head)?;
    Ok(v.checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(n: u64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
            out.push(chain(i, &prev, Draft::new(Timestamp(i as i64), Event::LoginSucceeded, Outcome::Success).actor(format!("u{i}")).detail("k", i)));
        }
        out
    }
    fn head(r: &[Record]) -> Option<(u64, String)> {
        r.last().map(|l| (l.seq, l.hash.clone()))
    }

    #[test]
    fn hashes_are_spelled_as_every_stored_chain_spells_them() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        // Two lowercase digits a byte, as the chain was first written (`{:02x}` per byte).
        let r = &build(1)[0];
        let d = Draft::new(Timestamp(1), Event::LoginSucceeded, Outcome::Success).actor("u1").detail("k", 1);
        let want: String = Sha256::digest(canonical(1, &d, GENESIS)).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.hash, want);
    }

    #[test]
    fn failures_are_counted_by_method_provider_and_reason() {
        let failed = |at: i64, actor: &str, reason: &str, method: &str, provider: Option<&str>| {
            let mut d = Draft::new(Timestamp(at), Event::LoginFailed, Outcome::Failure).actor(actor).reason(reason).detail("method", method);
            if let Some(p) = provider {
                d = d.detail("provider", p);
            }
            chain(1, GENESIS, d)
        };
        let records = [
            failed(100, "10.0.0.1", "bad_totp", "password+totp", None),
            failed(200, "10.0.0.1", "mfa_required", "sso", Some("okta")),
            failed(300, "10.0.0.2", "mfa_required", "sso", Some("okta")),
            failed(50, "10.0.0.3", "mfa_required", "sso", Some("okta")),
            chain(2, GENESIS, Draft::new(Timestamp(400), Event::LoginSucceeded, Outcome::Success).actor("u").detail("method", "sso")),
        ];
        let report = failures_by_reason(&records, Timestamp(100));
        assert_eq!(report.len(), 2);
        assert_eq!((report[0].reason.as_str(), report[0].provider.as_str(), report[0].count, report[0].sources), ("mfa_required", "okta", 2, 2));
        assert_eq!(report[0].last_at, Timestamp(300));
        assert_eq!((report[1].reason.as_str(), report[1].method.as_str(), report[1].count), ("bad_totp", "password+totp", 1));

        // Folded failures count with the summaries that stand for them; other folds do not.
        let folded = |scope: &str, event: &str, count: u64| {
            let d = Draft::new(Timestamp(500), Event::RefusalsFolded, Outcome::Failure).actor("10.0.0.9").reason("bad_totp");
            chain(3, GENESIS, d.detail("event", event).detail("scope", scope).detail("count", count))
        };
        let more = [folded("password+totp", "auth.login.failed", 40), folded("sso:okta", "auth.login.failed", 5), folded("/v1/token", "request.refused", 9)];
        let report = failures_by_reason(records.iter().chain(&more), Timestamp(100));
        assert_eq!((report[0].reason.as_str(), report[0].method.as_str(), report[0].count, report[0].sources), ("bad_totp", "password+totp", 41, 2));
        let sso: Vec<_> = report.iter().filter(|r| r.method == "sso" && r.reason == "bad_totp").collect();
        assert_eq!((sso.len(), sso[0].provider.as_str(), sso[0].count), (1, "okta", 5));
        assert_eq!(report.iter().map(|r| r.count).sum::<u64>(), 41 + 5 + 2);
    }

    #[test]
    fn codes_are_stable() {
        let codes: Vec<_> = Event::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(
            codes,
            [
                "config.loaded",
                "key.created",
                "key.rotated",
                "bootstrap.issued",
                "bootstrap.used",
                "user.created",
                "user.enrolled",
                "user.disabled",
                "user.enabled",
                "user.enrollment_issued",
                "auth.login.succeeded",
                "auth.login.failed",
                "session.started",
                "session.ended",
                "session.revoked",
                "credential.issued",
                "role.assume.denied",
                "request.refused",
                "user.groups_changed",
                "ci.exchange.denied",
                "request.created",
                "request.approved",
                "request.denied",
                "grant.revoked",
                "break_glass.used",
                "credential.failed",
                "lease.revoked",
                "lease.ended",
                "user.identity_linked",
                "oncall.feed_failed",
                "refusals.folded",
                "workload.created",
                "workload.disabled",
                "workload.enabled",
                "workload.join_token_issued",
                "workload.enrolled",
                "workload.denied",
                "scim.token_created",
                "scim.token_revoked",
                "scim.denied",
                "scim.user_updated",
                "scim.group_created",
                "scim.group_updated",
                "scim.group_deleted",
                "user.expired",
                "user.expiry_changed",
                "user.expiry_alerted",
                "sso.revalidate_failed",
                "inventory.imported",
            ]
        );
    }

    #[test]
    fn intact_chain_verifies() {
        let r = build(5);
        assert_eq!(verify_chain(&r, head(&r)), Ok(5));
        assert_eq!(verify_chain(&[], None), Ok(0));
    }

    #[test]
    fn every_tampering_is_located() {
        let good = build(6);
        let h = head(&good);

        let mut edited = good.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify_chain(&edited, h.clone()), Err(Break::Edited { seq: 3 }));

        let mut deleted = good.clone();
        deleted.remove(3);
        assert_eq!(verify_chain(&deleted, h.clone()), Err(Break::Unlinked { seq: 5, expected_seq: 4 }));

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_chain(&swapped, h.clone()), Err(Break::Unlinked { seq: 3, expected_seq: 2 }));

        let mut inserted = good.clone();
        let fake = chain(3, &good[1].hash, Draft::new(Timestamp(0), Event::UserCreated, Outcome::Success));
        inserted.insert(2, fake);
        assert_eq!(verify_chain(&inserted, h.clone()), Err(Break::Unlinked { seq: 3, expected_seq: 4 }));

        // Renumbered after a deletion: the seqs look fine but the links do not.
        let mut renumbered = good.clone();
        renumbered.remove(1);
        for (i, r) in renumbered.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
        assert!(matches!(verify_chain(&renumbered, h.clone()), Err(Break::Unlinked { seq: 2, .. })));

        let truncated = &good[..4];
        assert_eq!(verify_chain(truncated, h), Err(Break::Truncated { last_seq: 4, head_seq: 6 }));
    }
}
