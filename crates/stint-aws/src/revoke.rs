//! "Deny older sessions" policy documents: how to take back STS credentials already issued.
//!
//! STS credentials cannot be revoked; they are valid until they expire. But every request
//! they sign is checked against the role's policies at that moment, so an inline policy on
//! the role that denies everything to sessions issued before a point in time neutralises
//! them. That is what the IAM console's "Revoke active sessions" does (its inline policy
//! `AWSRevokeOlderSessions`: Deny `*` on `*` if `aws:TokenIssueTime` `DateLessThan` the time of revocation;
//! PROTOCOLS.md §4). [`deny_all_older_sessions`] builds that policy for a whole role.
//!
//! [`deny_older_sessions`] narrows it to one person: stint sets `SourceIdentity` on every
//! session it issues, which AWS exposes to policy evaluation as the global condition key
//! `aws:SourceIdentity` (`sts:SourceIdentity` is the *trust-policy* key, evaluated only at
//! `AssumeRole`). One statement per revoked identity denies its sessions issued before its
//! revocation, and leaves its later sessions and everyone else alone.
//!
//! Size: a role's inline policies share 10,240 characters. No role session lasts more than
//! 12 hours ([`MAX_SESSION`]), so a revocation older than that denies nothing still alive and
//! is dropped. Times are rounded *up* to the whole second, so a session issued in the same
//! second just before the revocation is denied too (at worst one issued in that second just
//! after is denied as well, and the caller can simply reissue).
//!
//! IAM applies policy changes within seconds to minutes ("may take a few minutes"), which is
//! the real revocation delay.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};

/// The longest a role session can last (`DurationSeconds` ≤ 43,200).
pub const MAX_SESSION: Duration = Duration::hours(12);

/// The name stint gives the inline policy it keeps on each role it manages.
pub const POLICY_NAME: &str = "StintRevokeOlderSessions";

/// One person's sessions to neutralise: those with `source_identity` issued before `revoked_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub source_identity: String,
    pub revoked_at: OffsetDateTime,
}

/// A policy denying every session of the role issued before `revoked_at`.
pub fn deny_all_older_sessions(revoked_at: OffsetDateTime) -> String {
    policy(vec![deny_before(revoked_at, None)])
}

/// A policy denying, for each revocation still relevant at `now`, the sessions with that
/// source identity issued before its time. `Ok(None)` when none is still relevant (the caller
/// then deletes the policy). Fails if the document would exceed `max_chars` — pass
/// [`crate::iam::ROLE_INLINE_POLICY_LIMIT`] minus what the role's other inline policies use.
pub fn deny_older_sessions(revocations: &[Revocation], now: OffsetDateTime, max_chars: usize) -> Result<Option<String>> {
    // Latest revocation per identity: a later cut-off covers an earlier one.
    let mut live: Vec<&Revocation> = Vec::new();
    for r in revocations.iter().filter(|r| r.revoked_at + MAX_SESSION > now) {
        match live.iter_mut().find(|l| l.source_identity == r.source_identity) {
            Some(l) if l.revoked_at < r.revoked_at => *l = r,
            Some(_) => {}
            None => live.push(r),
        }
    }
    if live.is_empty() {
        return Ok(None);
    }
    live.sort_by(|a, b| a.source_identity.cmp(&b.source_identity));
    let doc = policy(live.iter().map(|r| deny_before(r.revoked_at, Some(&r.source_identity))).collect());
    let len = doc.chars().count();
    if len > max_chars {
        return Err(Error::Invalid(format!(
            "{} revocations from the last 12 hours need a {len}-character policy but only {max_chars} are free on the role; \
             revoke all of the role's older sessions instead",
            live.len()
        )));
    }
    Ok(Some(doc))
}

fn policy(statements: Vec<Value>) -> String {
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

fn deny_before(at: OffsetDateTime, source_identity: Option<&str>) -> Value {
    let mut condition = json!({ "DateLessThan": { "aws:TokenIssueTime": rfc3339_ceil(at) } });
    if let Some(id) = source_identity {
        condition["StringEquals"] = json!({ "aws:SourceIdentity": id });
    }
    json!({ "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition })
}

/// `yyyy-mm-ddThh:mm:ssZ` in UTC, rounded up to the next whole second.
fn rfc3339_ceil(at: OffsetDateTime) -> String {
    let mut t = at.to_offset(UtcOffset::UTC);
    if t.nanosecond() != 0 {
        t = t.replace_nanosecond(0).unwrap_or(t) + Duration::SECOND;
    }
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::ROLE_INLINE_POLICY_LIMIT;

    fn t(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).expect("valid")
    }

    const NOW: i64 = 1_795_680_960; // 2026-11-26T08:16:00Z

    fn rev(id: &str, at: i64) -> Revocation {
        Revocation { source_identity: id.into(), revoked_at: t(at) }
    }

    #[test]
    fn whole_role_policy_matches_the_consoles() {
        let v: Value = serde_json::from_str(&deny_all_older_sessions(t(NOW))).expect("JSON");
        assert_eq!(
            v,
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-26T08:16:00Z"}}}]})
        );
    }

    #[test]
    fn one_statement_per_identity_with_its_own_cut_off() {
        let doc = deny_older_sessions(&[rev("bob", NOW - 60), rev("alice", NOW - 3600)], t(NOW), ROLE_INLINE_POLICY_LIMIT).expect("fits").expect("some");
        let v: Value = serde_json::from_str(&doc).expect("JSON");
        let st = v["Statement"].as_array().expect("statements");
        assert_eq!(st.len(), 2);
        assert_eq!(st[0]["Condition"]["StringEquals"]["aws:SourceIdentity"], "alice");
        assert_eq!(st[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "2026-11-26T07:16:00Z");
        assert_eq!(st[1]["Condition"]["StringEquals"]["aws:SourceIdentity"], "bob");
        assert_eq!(st[1]["Effect"], "Deny");
        assert_eq!(st[1]["Action"], "*");
        assert_eq!(st[1]["Resource"], "*");
    }

    #[test]
    fn drops_what_no_live_session_can_predate_and_keeps_the_latest_per_identity() {
        let old = rev("carol", NOW - 12 * 3600);
        assert_eq!(deny_older_sessions(std::slice::from_ref(&old), t(NOW), ROLE_INLINE_POLICY_LIMIT).expect("ok"), None);
        let just_in = rev("carol", NOW - 12 * 3600 + 1);
        assert!(deny_older_sessions(&[just_in], t(NOW), ROLE_INLINE_POLICY_LIMIT).expect("ok").is_some());
        let doc = deny_older_sessions(&[rev("dave", NOW - 100), rev("dave", NOW - 10), rev("dave", NOW - 50), old], t(NOW), ROLE_INLINE_POLICY_LIMIT)
            .expect("ok")
            .expect("some");
        let v: Value = serde_json::from_str(&doc).expect("JSON");
        assert_eq!(v["Statement"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "2026-11-26T08:15:50Z");
    }

    #[test]
    fn stays_within_the_limit_or_says_what_to_do() {
        let many: Vec<Revocation> = (0..200).map(|i| rev(&format!("user-{i:03}@example.com"), NOW - i)).collect();
        let e = deny_older_sessions(&many, t(NOW), ROLE_INLINE_POLICY_LIMIT).expect_err("too many");
        assert!(e.to_string().contains("revoke all"), "{e}");
        let fitting = &many[..40];
        let doc = deny_older_sessions(fitting, t(NOW), ROLE_INLINE_POLICY_LIMIT).expect("fits").expect("some");
        assert!(doc.chars().count() <= ROLE_INLINE_POLICY_LIMIT);
    }

    #[test]
    fn identities_are_json_escaped_and_times_round_up() {
        let doc = deny_older_sessions(&[rev("a\"b", NOW)], t(NOW), ROLE_INLINE_POLICY_LIMIT).expect("ok").expect("some");
        let v: Value = serde_json::from_str(&doc).expect("still JSON");
        assert_eq!(v["Statement"][0]["Condition"]["StringEquals"]["aws:SourceIdentity"], "a\"b");
        let frac = t(NOW) + Duration::milliseconds(1);
        assert_eq!(rfc3339_ceil(frac), "2026-11-26T08:16:01Z");
        assert_eq!(rfc3339_ceil(t(NOW).to_offset(UtcOffset::from_hms(2, 0, 0).expect("valid"))), "2026-11-26T08:16:00Z");
    }
}
