//! The before-and-after report from facts written by hand: what each figure counts, what it
//! leaves out (outside the period, a backend that failed, a denied request), and the access
//! review.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use stint_core::audit::{chain, Draft, Event, Outcome, Record, GENESIS};
use stint_core::ids::{GroupName, LeaseId, RoleName, UserId, Username};
use stint_core::inventory::{Imported, Snapshot};
use stint_core::model::{BackendKind, Lease, RequestStatus, RoleRequest, User};
use stint_core::report::{Eligible, Facts, Period, PersonFacts, PipelineFacts, Report, Source, WorkloadFacts};
use stint_core::Timestamp;

const REPORT: &str = include_str!("fixtures/credential-report/aws.csv");
const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

fn t(days: i64, secs: i64) -> Timestamp {
    Timestamp(T0 + days * DAY + secs)
}

fn role(r: &str) -> RoleName {
    RoleName::parse(r).unwrap()
}

fn user(name: &str, groups: &[&str], disabled: bool) -> User {
    User {
        id: UserId::random(&mut rand_core::OsRng),
        name: Username::parse(name).unwrap(),
        groups: groups.iter().map(|g| GroupName::parse(g).unwrap()).collect(),
        disabled,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        created_at: Timestamp(0),
        expires_at: None,
        sponsor: None,
    }
}

struct Log(Vec<Record>);

impl Log {
    /// Appends `what` (`Draft::new(…)` with its actor, subject and reason) with `details`.
    fn add(&mut self, what: Draft, details: &[(&str, &str)]) {
        let d = details.iter().fold(what, |d, (k, v)| d.detail(k, v));
        let prev = self.0.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
        let seq = self.0.len() as u64 + 1;
        self.0.push(chain(seq, &prev, d));
    }
    fn issued(&mut self, at: Timestamp, actor: &str, subject: &str, role: &str, ttl: i64, more: &[(&str, &str)]) {
        let ttl = ttl.to_string();
        let mut details = vec![("role", role), ("ttl", ttl.as_str())];
        details.extend_from_slice(more);
        self.add(Draft::new(at, Event::CredentialIssued, Outcome::Success).actor(actor).subject(subject), &details);
    }
}

fn lease(id: &str, holder: &User, issued: Timestamp, expires: Timestamp, ended: Option<Timestamp>) -> Lease {
    Lease {
        id: LeaseId::from_trusted(format!("l_{id}")),
        backend: "aws-prod".into(),
        kind: BackendKind::Aws,
        user_id: Some(holder.id.clone()),
        subject: holder.name.to_string(),
        role: role("developer"),
        session_id: None,
        grant_id: None,
        external_id: format!("stint-{id}"),
        issued_at: issued,
        expires_at: expires,
        revoked_at: None,
        revoke_reason: None,
        ended_at: ended,
        retry_at: None,
    }
}

fn request(
    id: &str,
    who: &User,
    role_name: &str,
    status: RequestStatus,
    created: Timestamp,
    granted: Option<(Timestamp, Timestamp)>,
    break_glass: bool,
) -> RoleRequest {
    RoleRequest {
        id: id.into(),
        requester: who.id.clone(),
        requester_name: who.name.clone(),
        role: role(role_name),
        reason: format!("reason of {id}"),
        duration_secs: 3_600,
        status,
        created_at: created,
        pending_until: Timestamp(created.0 + DAY),
        approvals: if break_glass { vec![] } else { vec![Username::parse("dave").unwrap()] },
        granted_from: granted.map(|g| g.0),
        granted_until: granted.map(|g| g.1),
        decided_by: (status == RequestStatus::Revoked).then(|| "dave".to_owned()),
        decision_reason: None,
        break_glass,
    }
}

fn snapshot(csv: &str, at: Timestamp) -> Imported {
    Imported { snapshot: Snapshot::from_credential_report(csv.as_bytes(), at).unwrap(), imported_at: at, imported_by: "user:root".into() }
}

#[test]
fn the_report_counts_what_happened_in_its_period_and_nothing_else() {
    let period = Period::new(t(0, 0), t(30, 0)).unwrap();
    let alice = user("alice", &["developers"], false);
    let bob = user("bob", &["developers"], true);
    let mut carol = user("carol", &["contractors"], false);
    carol.expires_at = Some(t(45, 0));
    carol.sponsor = Some(alice.id.clone());
    let (a, b) = (alice.id.to_string(), bob.id.to_string());

    let mut log = Log(vec![]);
    // Before the period: counted nowhere.
    log.issued(t(-1, 0), &a, "tok-old", "developer", 3_600, &[]);
    // People: a role token and backend credentials.
    log.issued(t(1, 0), &a, "tok-1", "developer", 3_600, &[("backend", "token")]);
    log.issued(t(2, 0), &a, "lease-1", "developer", 14_400, &[("backend", "aws-prod")]);
    log.issued(t(5, 60), &a, "tok-2", "admin", 1_800, &[("grant", "rq_1")]);
    log.issued(t(6, 60), &a, "tok-3", "breakglass", 900, &[("grant", "bg_1")]);
    log.issued(t(9, 50_000), &b, "lease-b", "developer", 43_200, &[("backend", "aws-prod")]);
    // A backend that failed to make the credential: not issued.
    log.issued(t(9, 10), &b, "lease-f", "developer", 3_600, &[("backend", "aws-prod")]);
    log.add(Draft::new(t(9, 11), Event::CredentialFailed, Outcome::Failure).actor(&b).subject("lease-f").reason("backend_unavailable"), &[]);
    // Pipelines and a workload.
    let main = "repo:acme/app:ref:refs/heads/main";
    log.issued(t(3, 0), "ci:github", "tok-c1", "deploy", 900, &[("claim.sub", main), ("source", "ci")]);
    log.issued(t(4, 0), "ci:github", "tok-c2", "deploy", 600, &[("claim.sub", main), ("source", "ci")]);
    log.issued(t(4, 0), "workload:billing", "lease-w", "billing-read", 3_600, &[("source", "service")]);
    // Refusals: logins (one folded summary standing for 5), CI exchanges (one folded for 10).
    for addr in ["10.0.0.1", "10.0.0.2", "10.0.0.1"] {
        log.add(Draft::new(t(7, 0), Event::LoginFailed, Outcome::Failure).actor(addr).subject("alice").reason("bad_password"), &[("method", "password")]);
    }
    let folded = [("event", Event::LoginFailed.code()), ("scope", "sso:google"), ("count", "5")];
    log.add(Draft::new(t(7, 5), Event::RefusalsFolded, Outcome::Failure).actor("10.0.0.9").subject("").reason("session_expired"), &folded);
    // As `exchange_denied` and the folding write them.
    let issuer = "https://token.actions.githubusercontent.com";
    log.add(
        Draft::new(t(8, 0), Event::ExchangeDenied, Outcome::Failure).actor("ci:github").subject("deploy").reason("no_matching_trust_policy"),
        &[("issuer", issuer), ("addr", "192.0.2.1")],
    );
    let folded = [("event", Event::ExchangeDenied.code()), ("scope", "github/deploy"), ("count", "10")];
    log.add(Draft::new(t(8, 1), Event::RefusalsFolded, Outcome::Failure).actor("192.0.2.2").subject("").reason("no_matching_trust_policy"), &folded);
    // Offboarding: bob is disabled on day 10; his live AWS credential ended 2 minutes later.
    log.add(Draft::new(t(10, 0), Event::UserDisabled, Outcome::Success).actor(&a).subject(&b), &[]);
    // Sign-in sessions: ended by a logout, by bob's disable, by expiring; one before the period.
    let started = |log: &mut Log, at: Timestamp, who: &str, session: &str, secs: i64| {
        let expires = Timestamp(at.0 + secs).to_rfc3339();
        log.add(Draft::new(at, Event::SessionStarted, Outcome::Success).actor(who).subject(session), &[("expires_at", expires.as_str())]);
    };
    started(&mut log, t(-1, 0), &a, "s_before", 28_800);
    started(&mut log, t(1, 0), &a, "s_a", 28_800);
    log.add(Draft::new(t(1, 3_600), Event::SessionEnded, Outcome::Success).actor(&a).subject("s_a"), &[("by", "logout")]);
    started(&mut log, t(9, 0), &b, "s_b1", 28_800);
    started(&mut log, t(9, 80_000), &b, "s_b2", 28_800);
    started(&mut log, t(20, 0), carol.id.as_str(), "s_c", 14_400);
    // After the period: counted nowhere.
    log.issued(t(31, 0), &a, "tok-late", "developer", 3_600, &[]);

    let leases = vec![
        lease("lease-b", &bob, t(9, 50_000), t(9, 93_200), Some(t(10, 120))),
        lease("lease-b0", &bob, t(1, 0), t(1, 3_600), Some(t(1, 3_600))),
        lease("lease-a", &alice, t(30, -3_600), t(30, 10_800), None),
        lease("lease-a-ended", &alice, t(29, 0), t(29, 3_600), Some(t(29, 3_600))),
    ];
    let requests = vec![
        request("rq_1", &alice, "admin", RequestStatus::Approved, t(5, 0), Some((t(5, 30), t(5, 3_630))), false),
        request("rq_0", &alice, "admin", RequestStatus::Approved, t(-3, 0), Some((t(-3, 30), t(-3, 3_630))), false),
        request("rq_2", &alice, "admin", RequestStatus::Denied, t(12, 0), None, false),
        request("bg_1", &alice, "breakglass", RequestStatus::Approved, t(6, 0), Some((t(6, 0), t(6, 1_800))), true),
    ];
    let less = REPORT.replace(",false,true,2025-06-01T00:00:00+00:00,N/A,N/A,N/A,true,", ",false,false,2025-06-01T00:00:00+00:00,N/A,N/A,N/A,false,");
    let least = less.replace(",false,true,2020-01-15", ",false,false,2020-01-15");
    assert_ne!(less, REPORT);
    assert_ne!(least, less);
    let snapshots =
        vec![snapshot(REPORT, t(-60, 0)), snapshot(REPORT, t(-30, 0)), snapshot(&less, t(1, 0)), snapshot(&least, t(20, 0)), snapshot(REPORT, t(40, 0))];

    let eligible = Eligible { standing: vec![role("developer")], on_call: vec![], on_request: vec![role("admin")], break_glass: vec![role("breakglass")] };
    let facts = Facts {
        period,
        generated_at: t(30, 5),
        snapshots: &snapshots,
        leases: &leases,
        records: &log.0,
        requests: &requests,
        people: vec![
            PersonFacts { user: &alice, eligible: eligible.clone(), sponsor: None },
            PersonFacts { user: &bob, eligible: Eligible::default(), sponsor: None },
            PersonFacts { user: &carol, eligible: Eligible { standing: vec![role("readonly")], ..Eligible::default() }, sponsor: Some("alice".into()) },
        ],
        workloads: vec![WorkloadFacts { name: "billing".into(), disabled: false, roles: vec![role("billing-read")] }],
        pipelines: vec![
            PipelineFacts { role: role("deploy"), trust: vec!["Allow token.actions.githubusercontent.com when sub StringLike [repo:acme/*]".into()] },
            PipelineFacts { role: role("release"), trust: vec![] },
        ],
        partial: false,
    };
    let r = Report::build(&facts);

    // Before: the first snapshot is the baseline; the trend starts with the last one before
    // the period; a snapshot after `as_of` is not there.
    let before = &r.before;
    assert_eq!(before.baseline.as_ref().unwrap().figures.active_keys, 4);
    assert_eq!(before.baseline.as_ref().unwrap().as_of, Some(t(-60, 0)));
    assert_eq!(before.current.figures.active_keys, 1, "the newest snapshot at as_of, not the one after");
    assert_eq!(before.current.figures.root_keys_active, 0);
    let trend: Vec<(Option<Timestamp>, u64)> = before.trend.iter().map(|t| (t.as_of, t.figures.active_keys)).collect();
    assert_eq!(trend, vec![(Some(t(-30, 0)), 4), (Some(t(1, 0)), 2), (Some(t(20, 0)), 1)]);

    // After: live now (leases), issued (records), lifetimes.
    let after = &r.after;
    let s = &after.sessions;
    assert_eq!((s.started, s.ended_early), (4, 2), "{s:?}");
    assert_eq!((s.average_secs, s.median_secs), ((3_600 + 6_400 + 14_400 + 28_800) as f64 / 4.0, 6_400), "bob's second session ended with his disable");
    assert_eq!(after.active.total, 1, "only alice's lease is live at as_of");
    assert_eq!(after.active.by_source[&Source::Person], 1);
    assert_eq!((after.active.by_source[&Source::Ci], after.active.by_source[&Source::Workload]), (0, 0));
    assert_eq!(after.active.by_backend["aws-prod"], 1);
    assert_eq!(after.issued_total, 8, "four of alice's, one of bob's, two pipelines', one workload's");
    let issued: BTreeMap<(String, Source), u64> = after.issued.iter().map(|i| ((i.role.clone(), i.source), i.count)).collect();
    assert_eq!(issued[&("developer".to_owned(), Source::Person)], 3);
    assert_eq!(issued[&("deploy".to_owned(), Source::Ci)], 2);
    assert_eq!(issued[&("billing-read".to_owned(), Source::Workload)], 1);
    assert_eq!(after.issued[0].count, 3, "most first");
    let l = &after.lifetimes;
    assert_eq!(l.count, 8);
    let ttls = [3_600, 14_400, 1_800, 900, 43_200, 900, 600, 3_600];
    assert!((l.average_secs - ttls.iter().sum::<i64>() as f64 / 8.0).abs() < 1e-9);
    assert_eq!((l.median_secs, l.longest_secs), (1_800, 43_200));
    let buckets: Vec<u64> = l.buckets.iter().map(|b| b.count).collect();
    assert_eq!(buckets, vec![3, 3, 1, 0, 1, 0], "≤15 min, ≤1 h, ≤4 h, ≤8 h, ≤24 h, longer");
    assert_eq!(l.average_secs_by_source[&Source::Ci], 750.0);

    // Failed authentications: every refusal, folded ones by the count they stand for.
    assert_eq!(after.failed_total, 3 + 5 + 1 + 10);
    let f: BTreeMap<(String, String), (u64, u64)> =
        after.failed_authentications.iter().map(|c| ((c.method.clone(), c.reason.clone()), (c.count, c.sources))).collect();
    assert_eq!(f[&("password".to_owned(), "bad_password".to_owned())], (3, 2), "two distinct addresses");
    assert_eq!(f[&("sso".to_owned(), "session_expired".to_owned())].0, 5);
    assert_eq!(f[&("ci".to_owned(), "no_matching_trust_policy".to_owned())], (11, 2), "one row for the issuer, folded or not");
    assert_eq!(after.failed_authentications.iter().find(|c| c.method == "ci").unwrap().provider, "github");
    assert_eq!(after.failed_authentications[0].count, 11, "most first");

    // Break-glass and approvals: only those granted in the period; credentials under each.
    assert_eq!(after.break_glass.len(), 1);
    assert_eq!((after.break_glass[0].person.as_str(), after.break_glass[0].credentials), ("alice", 1));
    assert_eq!(after.approvals.len(), 1, "the earlier grant and the denied request are not approvals of the period");
    let ap = &after.approvals[0];
    assert_eq!((ap.requester.as_str(), ap.role.as_str(), ap.approvers.clone(), ap.credentials), ("alice", "admin", vec!["dave".to_owned()], 1));
    assert_eq!(ap.reason, "reason of rq_1");

    // Offboarding: from the disable to the end of the last credential live then.
    assert_eq!(after.offboarding.len(), 1);
    let off = &after.offboarding[0];
    assert_eq!((off.person.as_str(), off.by.as_str(), off.credentials_live), ("bob", "alice", 1));
    assert_eq!((off.last_ended_at, off.seconds_to_revoke), (Some(t(10, 120)), Some(120)));

    // The access review.
    let people: BTreeMap<&str, _> = r.review.people.iter().map(|p| (p.name.as_str(), p)).collect();
    assert_eq!(people["alice"].could, eligible);
    let held: Vec<(&str, u64)> = people["alice"].held.iter().map(|h| (h.role.as_str(), h.credentials)).collect();
    assert_eq!(held, vec![("admin", 1), ("breakglass", 1), ("developer", 2)]);
    assert_eq!((people["bob"].status.as_str(), people["bob"].held.len()), ("disabled", 1));
    assert_eq!((people["carol"].expires_at, people["carol"].sponsor.as_deref()), (Some(t(45, 0)), Some("alice")));
    assert!(people["carol"].held.is_empty());
    assert_eq!(r.review.workloads[0].held[0].credentials, 1);
    let deploy = &r.review.pipelines[0];
    assert_eq!(deploy.held_by.len(), 1);
    assert_eq!((deploy.held_by[0].subject.as_str(), deploy.held_by[0].credentials), ("ci:github:repo:acme/app:ref:refs/heads/main", 2));
    assert!(r.review.pipelines[1].held_by.is_empty());

    // The report survives its JSON unchanged (the CLI reads what the server writes).
    let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn a_disable_with_a_credential_not_yet_ended_is_pending_and_one_with_none_took_no_time() {
    let period = Period::new(t(0, 0), t(30, 0)).unwrap();
    let (bob, eve) = (user("bob", &[], true), user("eve", &[], true));
    let mut log = Log(vec![]);
    log.add(Draft::new(t(10, 0), Event::UserDisabled, Outcome::Success).actor("scim:okta").subject(bob.id.as_str()), &[]);
    log.add(Draft::new(t(11, 0), Event::UserDisabled, Outcome::Success).actor("stint").subject(eve.id.as_str()), &[]);
    let leases = vec![lease("l1", &bob, t(9, 0), t(40, 0), None)];
    let facts = Facts {
        period,
        generated_at: t(30, 0),
        snapshots: &[],
        leases: &leases,
        records: &log.0,
        requests: &[],
        people: vec![
            PersonFacts { user: &bob, eligible: Eligible::default(), sponsor: None },
            PersonFacts { user: &eve, eligible: Eligible::default(), sponsor: None },
        ],
        workloads: vec![],
        pipelines: vec![],
        partial: false,
    };
    let r = Report::build(&facts);
    let off: Vec<(&str, &str, Option<i64>)> = r.after.offboarding.iter().map(|o| (o.person.as_str(), o.by.as_str(), o.seconds_to_revoke)).collect();
    assert_eq!(off, vec![("bob", "scim:okta", None), ("eve", "stint", Some(0))]);
    assert!(r.before.baseline.is_none() && r.before.trend.is_empty());
    assert_eq!(r.after.lifetimes.buckets.len(), 6, "every bucket, empty ones too");
}

#[test]
fn a_period_must_be_forward_and_bounded() {
    assert_eq!(Period::new(t(1, 0), t(1, 0)).unwrap_err().code(), "invalid_period");
    assert_eq!(Period::new(t(2, 0), t(1, 0)).unwrap_err().code(), "invalid_period");
    assert_eq!(Period::new(t(0, 0), t(461, 0)).unwrap_err().code(), "invalid_period");
    assert!(Period::new(t(0, 0), t(460, 0)).is_ok());
}

/// Role tokens have no lease: one is live until it expires, or its session ends, its person
/// is disabled, its grant revoked, or its workload disabled.
#[test]
fn role_tokens_are_live_until_they_expire_or_what_they_came_from_ends() {
    let period = Period::new(t(0, 0), t(30, 0)).unwrap();
    let (alice, bob) = (user("alice", &[], false), user("bob", &[], true));
    let (a, b) = (alice.id.to_string(), bob.id.to_string());
    let end = t(30, 0);
    let mut log = Log(vec![]);
    let token = |session: &'static str| vec![("backend", "token"), ("session", session)];
    log.issued(t(30, -600), &a, "tok-live", "developer", 3_600, &token("s_live"));
    log.issued(t(30, -7_200), &a, "tok-expired", "developer", 3_600, &token("s_live"));
    log.issued(t(30, -600), &a, "tok-logged-out", "developer", 3_600, &token("s_out"));
    log.add(Draft::new(t(30, -300), Event::SessionEnded, Outcome::Success).actor(&a).subject("s_out"), &[("by", "logout")]);
    log.issued(t(30, -600), &a, "tok-grant", "admin", 3_600, &[("backend", "token"), ("session", "s_live"), ("grant", "rq_9")]);
    log.add(Draft::new(t(30, -100), Event::GrantRevoked, Outcome::Success).actor(&a).subject("rq_9"), &[]);
    log.issued(t(30, -600), &b, "tok-disabled", "developer", 3_600, &token("s_bob"));
    log.issued(t(30, -60), "ci:github", "tok-ci", "deploy", 600, &[("backend", "token"), ("claim.sub", "repo:acme/app")]);
    log.issued(t(30, -60), "workload:billing", "tok-w", "billing-read", 600, &[("backend", "token")]);
    log.issued(t(30, -60), "workload:old", "tok-w-off", "billing-read", 600, &[("backend", "token")]);
    // Issued after the period's end: not live at it.
    log.issued(t(30, 10), &a, "tok-later", "developer", 3_600, &token("s_live"));
    let facts = Facts {
        period,
        generated_at: end,
        snapshots: &[],
        leases: &[],
        records: &log.0,
        requests: &[],
        people: vec![
            PersonFacts { user: &alice, eligible: Eligible::default(), sponsor: None },
            PersonFacts { user: &bob, eligible: Eligible::default(), sponsor: None },
        ],
        workloads: vec![
            WorkloadFacts { name: "billing".into(), disabled: false, roles: vec![] },
            WorkloadFacts { name: "old".into(), disabled: true, roles: vec![] },
        ],
        pipelines: vec![],
        partial: false,
    };
    let active = Report::build(&facts).after.active;
    assert_eq!(active.total, 3, "{active:?}");
    assert_eq!((active.by_source[&Source::Person], active.by_source[&Source::Ci], active.by_source[&Source::Workload]), (1, 1, 1));
    assert_eq!(active.by_backend["token"], 3);
}
