//! One conformance suite for every `Store` adapter.
//!
//! Each case is an async fn taking `Arc<dyn Store>`; `conformance!` runs it twice, as
//! `sqlite::case` on a fresh file in a temp dir and as `postgres::case` in a fresh schema
//! of the PostgreSQL at `STINT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). PostgreSQL being down fails the
//! postgres cases: a skipped adapter would pass silently.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use stint_core::audit::{chain, verify_chain, Draft, Event, Outcome, Record, GENESIS};
use stint_core::crypto::StoredKey;
use stint_core::ids::{GroupName, SessionId, UserId, Username};
use stint_core::model::{CodePurpose, Identity, OneTimeCode, RequestStatus, RoleRequest, Session, SsoAttempt, SsoMode, SsoRefresh, SsoStatus, User};
use stint_core::store::{Change, Mutation, Store};
use stint_core::{Error, Timestamp};
use stint_store::{describe, PostgresStore, SqliteStore};

const T0: i64 = 1_700_000_000;

// ---------------------------------------------------------------- fixtures

fn uid(tag: &str) -> UserId {
    UserId::from_trusted(format!("u_{tag:a<26}"))
}
fn sid(tag: &str) -> SessionId {
    SessionId::from_trusted(format!("s_{tag:a<26}"))
}
fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}
fn user(tag: &str) -> User {
    User {
        id: uid(tag),
        name: name(tag),
        groups: vec![GroupName::parse("dev").unwrap()],
        disabled: false,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        expires_at: None,
        sponsor: None,
        created_at: Timestamp(T0),
    }
}
fn session(tag: &str, owner: &UserId, expires_at: i64) -> Session {
    Session {
        id: sid(tag),
        lookup: format!("lk-{tag}"),
        secret_hash: vec![7; 32],
        user_id: owner.clone(),
        created_at: Timestamp(T0 - 100),
        expires_at: Timestamp(expires_at),
        revoked_at: None,
        mfa: "password+totp".into(),
    }
}
fn code(lookup: &str, purpose: CodePurpose, owner: Option<&UserId>) -> OneTimeCode {
    OneTimeCode { lookup: lookup.into(), secret_hash: vec![1, 2, 3], purpose, user_id: owner.cloned(), expires_at: Timestamp(T0 + 600), used_at: None }
}
fn key(kid: &str, created: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        public: vec![9; 32],
        sealed_private: format!("sealed-{kid}"),
        created_at: Timestamp(created),
        retired_at: None,
        verify_until: None,
    }
}
fn draft(n: u64) -> Draft {
    Draft::new(Timestamp(T0 + n as i64), Event::UserCreated, Outcome::Success)
        .actor("system")
        .subject(format!("subject-{n}"))
        .detail("n", n)
        .detail("role", "readonly")
}
fn insert(u: User) -> Change {
    Change::default().with(Mutation::InsertUser(u))
}
/// The model types have no `PartialEq`; their `Debug` output covers every field.
fn same<T: std::fmt::Debug>(a: &T, b: &T) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
/// The code of a change a precondition refused: a conflict, or the peer error the caller
/// answers with (`user_disabled` is a 403, `session_revoked` a 401).
fn conflict(r: Result<u64, Error>) -> &'static str {
    match r {
        Err(e) if e.fault() == stint_core::Fault::Peer => e.code(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
async fn records(store: &dyn Store) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    loop {
        let page = store.audit_after(out.last().map_or(0, |r| r.seq), 100).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}
/// Verifies the whole stored chain against the separately kept head; returns its length.
async fn verified(store: &dyn Store) -> u64 {
    let all = records(store).await;
    verify_chain(&all, store.audit_head().await.unwrap()).unwrap()
}

// ---------------------------------------------------------------- cases

async fn users(store: Arc<dyn Store>) {
    assert!(!store.any_enrolled_user().await.unwrap());
    assert!(store.users().await.unwrap().is_empty());
    let mut alice = user("alice");
    alice.groups.push(GroupName::parse("ops").unwrap());
    assert_eq!(store.apply(insert(alice.clone()).record(draft(1))).await.unwrap(), 1);
    // A change without audit records reports the unchanged head.
    assert_eq!(store.apply(insert(user("bob"))).await.unwrap(), 1);

    assert!(!store.any_enrolled_user().await.unwrap(), "nobody has enrolled yet");
    same(&store.user_by_name(&name("alice")).await.unwrap().unwrap(), &alice);
    same(&store.user_by_id(&alice.id).await.unwrap().unwrap(), &alice);
    assert!(store.user_by_name(&name("carol")).await.unwrap().is_none());
    assert!(store.user_by_id(&uid("carol")).await.unwrap().is_none());
    let names: Vec<String> = store.users().await.unwrap().into_iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["alice", "bob"]);

    let mut twin = user("twin");
    twin.name = name("alice");
    assert_eq!(conflict(store.apply(insert(twin).record(draft(2))).await), "user_exists");
    assert!(store.user_by_id(&uid("twin")).await.unwrap().is_none());
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 1);
}

async fn credentials(store: Arc<dyn Store>) {
    let alice = user("alice");
    store.apply(insert(alice.clone())).await.unwrap();
    assert!(!store.user_by_id(&alice.id).await.unwrap().unwrap().enrolled());
    let enroll = Mutation::SetCredentials { user: alice.id.clone(), password_hash: "$argon2id$x".into(), totp_sealed: "sealed-totp".into() };
    store.apply(Change::default().with(enroll)).await.unwrap();
    let got = store.user_by_id(&alice.id).await.unwrap().unwrap();
    assert!(got.enrolled());
    assert_eq!((got.password_hash.as_deref(), got.totp_sealed.as_deref()), (Some("$argon2id$x"), Some("sealed-totp")));

    for disabled in [true, false] {
        store.apply(Change::default().with(Mutation::SetUserDisabled { user: alice.id.clone(), disabled })).await.unwrap();
        assert_eq!(store.user_by_name(&alice.name).await.unwrap().unwrap().disabled, disabled);
    }
    assert!(store.any_enrolled_user().await.unwrap());
}

async fn preconditions_guard_their_change(store: Arc<dyn Store>) {
    let alice = user("alice");
    store.apply(insert(alice.clone())).await.unwrap();
    let require = || Mutation::RequireEnabledUser { user: alice.id.clone() };
    store.apply(Change::default().with(require()).record(draft(1))).await.unwrap();
    store.apply(Change::default().with(Mutation::SetUserDisabled { user: alice.id.clone(), disabled: true })).await.unwrap();
    let head = store.audit_head().await.unwrap();
    let login = Change::default().with(require()).with(Mutation::InsertSession(session("late", &alice.id, T0 + 600))).record(draft(2));
    assert_eq!(conflict(store.apply(login).await), "user_disabled");
    assert!(store.session_by_lookup("lk-late").await.unwrap().is_none(), "no session for a disabled user");
    assert_eq!(store.audit_head().await.unwrap(), head, "nor its audit record");
    assert_eq!(conflict(store.apply(Change::default().with(Mutation::RequireEnabledUser { user: uid("ghost") })).await), "user_disabled");

    store.apply(Change::default().with(Mutation::RequireNoEnrolledUsers)).await.unwrap();
    let enroll = Mutation::SetCredentials { user: alice.id.clone(), password_hash: "$argon2id$x".into(), totp_sealed: "t".into() };
    store.apply(Change::default().with(enroll)).await.unwrap();
    assert_eq!(
        conflict(store.apply(Change::default().with(Mutation::RequireNoEnrolledUsers).with(Mutation::InsertUser(user("bob")))).await),
        "already_bootstrapped"
    );
    assert!(store.user_by_name(&name("bob")).await.unwrap().is_none());
}

async fn totp_replay_is_refused_atomically(store: Arc<dyn Store>) {
    let alice = user("alice");
    store.apply(insert(alice.clone()).record(draft(1))).await.unwrap();
    let advance = |step| Mutation::AdvanceTotp { user: alice.id.clone(), step };
    store.apply(Change::default().with(advance(100))).await.unwrap();
    assert_eq!(store.user_by_id(&alice.id).await.unwrap().unwrap().totp_last_step, 100);
    assert_eq!(conflict(store.apply(Change::default().with(advance(100))).await), "totp_replayed");
    assert_eq!(conflict(store.apply(Change::default().with(advance(99))).await), "totp_replayed");
    store.apply(Change::default().with(advance(101))).await.unwrap();

    // The session insert succeeds first, then the stale step fails: nothing may remain.
    let s = session("s1", &alice.id, T0 + 3600);
    let login = Change::default().with(Mutation::InsertSession(s.clone())).with(advance(101)).record(draft(2));
    assert_eq!(conflict(store.apply(login).await), "totp_replayed");
    assert!(store.session_by_lookup(&s.lookup).await.unwrap().is_none());
    assert!(store.session(&s.id).await.unwrap().is_none());
    assert_eq!(store.active_sessions(Timestamp(T0)).await.unwrap(), 0);
    assert_eq!(records(&*store).await.len(), 1);
    assert_eq!(verified(&*store).await, 1);
}

async fn sessions(store: Arc<dyn Store>) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.apply(insert(alice.clone()).with(Mutation::InsertUser(bob.clone()))).await.unwrap();
    let s1 = session("s1", &alice.id, T0 + 3600);
    let s2 = session("s2", &alice.id, T0 + 3600);
    let s3 = session("s3", &bob.id, T0 + 3600);
    let expired = session("s4", &alice.id, T0);
    let mut c = Change::default();
    for s in [&s1, &s2, &s3, &expired] {
        c = c.with(Mutation::InsertSession(s.clone()));
    }
    store.apply(c).await.unwrap();
    assert_eq!(store.active_sessions(Timestamp(T0)).await.unwrap(), 3);

    let (got, owner) = store.session_by_lookup(&s1.lookup).await.unwrap().unwrap();
    same(&got, &s1);
    same(&owner, &alice);
    let (got, owner) = store.session(&s3.id).await.unwrap().unwrap();
    same(&got, &s3);
    same(&owner, &bob);
    assert!(store.session_by_lookup("lk-nope").await.unwrap().is_none());
    assert!(store.session(&sid("nope")).await.unwrap().is_none());

    let revoke = |at| Change::default().with(Mutation::RevokeSession { session: s1.id.clone(), at: Timestamp(at) });
    store.apply(revoke(T0 + 10)).await.unwrap();
    store.apply(revoke(T0 + 20)).await.unwrap();
    let revoked_at = |s: Option<(Session, User)>| s.unwrap().0.revoked_at;
    assert_eq!(revoked_at(store.session(&s1.id).await.unwrap()), Some(Timestamp(T0 + 10)), "a revocation is never moved");
    assert_eq!(store.active_sessions(Timestamp(T0)).await.unwrap(), 2);

    store.apply(Change::default().with(Mutation::RevokeUserSessions { user: alice.id.clone(), at: Timestamp(T0 + 30) })).await.unwrap();
    assert_eq!(revoked_at(store.session(&s1.id).await.unwrap()), Some(Timestamp(T0 + 10)));
    assert_eq!(revoked_at(store.session(&s2.id).await.unwrap()), Some(Timestamp(T0 + 30)));
    assert_eq!(revoked_at(store.session(&s3.id).await.unwrap()), None);
    assert_eq!(store.active_sessions(Timestamp(T0)).await.unwrap(), 1);
    assert_eq!(store.active_sessions(Timestamp(T0 + 3600)).await.unwrap(), 0);
}

async fn codes(store: Arc<dyn Store>) {
    let alice = user("alice");
    let enroll = code("enroll-1", CodePurpose::Enrollment, Some(&alice.id));
    let late = code("enroll-2", CodePurpose::Enrollment, Some(&alice.id));
    let (boot1, boot2) = (code("boot-1", CodePurpose::Bootstrap, None), code("boot-2", CodePurpose::Bootstrap, None));
    let mut c = insert(alice.clone());
    for k in [&enroll, &late, &boot1, &boot2] {
        c = c.with(Mutation::InsertCode(k.clone()));
    }
    store.apply(c).await.unwrap();
    same(&store.code("enroll-1").await.unwrap().unwrap(), &enroll);
    same(&store.code("boot-1").await.unwrap().unwrap(), &boot1);
    assert!(store.code("nope").await.unwrap().is_none());

    let consume = |lookup: &str, at| Change::default().with(Mutation::ConsumeCode { lookup: lookup.into(), at: Timestamp(at) });
    store.apply(consume("enroll-1", T0)).await.unwrap();
    assert_eq!(store.code("enroll-1").await.unwrap().unwrap().used_at, Some(Timestamp(T0)));
    assert_eq!(conflict(store.apply(consume("enroll-1", T0 + 1)).await), "code_used");
    assert_eq!(conflict(store.apply(consume("enroll-2", T0 + 600)).await), "code_used", "expired");
    assert_eq!(conflict(store.apply(consume("nope", T0)).await), "code_used");
    assert_eq!(store.code("enroll-2").await.unwrap().unwrap().used_at, None);

    store.apply(consume("boot-2", T0)).await.unwrap();
    store.apply(Change::default().with(Mutation::ExpireBootstrapCodes { at: Timestamp(T0 + 5) })).await.unwrap();
    assert_eq!(store.code("boot-1").await.unwrap().unwrap().expires_at, Timestamp(T0 + 5));
    assert_eq!(store.code("boot-2").await.unwrap().unwrap().expires_at, Timestamp(T0 + 600), "used codes are left alone");
    assert_eq!(store.code("enroll-2").await.unwrap().unwrap().expires_at, Timestamp(T0 + 600), "enrollment codes are left alone");
    assert_eq!(conflict(store.apply(consume("boot-1", T0 + 6)).await), "code_used");
}

async fn keys(store: Arc<dyn Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    let (k1, k2) = (key("k1", T0), key("k2", T0 + 10));
    store.apply(Change::default().with(Mutation::InsertKey(k2.clone())).with(Mutation::InsertKey(k1.clone()))).await.unwrap();
    let got = store.signing_keys().await.unwrap();
    assert_eq!(got.len(), 2);
    same(&got[0], &k1);
    same(&got[1], &k2);

    store
        .apply(Change::default().with(Mutation::RetireKeysExcept { keep: "k2".into(), at: Timestamp(T0 + 10), verify_until: Timestamp(T0 + 100) }))
        .await
        .unwrap();
    let got = store.signing_keys().await.unwrap();
    assert_eq!((got[0].retired_at, got[0].verify_until), (Some(Timestamp(T0 + 10)), Some(Timestamp(T0 + 100))));
    same(&got[1], &k2);
    // Retiring again leaves already-retired keys as they were.
    store
        .apply(Change::default().with(Mutation::RetireKeysExcept { keep: "k2".into(), at: Timestamp(T0 + 50), verify_until: Timestamp(T0 + 500) }))
        .await
        .unwrap();
    assert_eq!(store.signing_keys().await.unwrap()[0].verify_until, Some(Timestamp(T0 + 100)));
}

async fn audit_chain(store: Arc<dyn Store>) {
    assert_eq!(store.audit_head().await.unwrap(), None);
    assert!(store.audit_after(0, 10).await.unwrap().is_empty());
    assert_eq!(verified(&*store).await, 0);

    let mut expected: Vec<Record> = Vec::new();
    for i in 0..40u64 {
        let mut change = Change::default();
        for j in 0..=(i % 3) {
            let d = draft(i * 10 + j);
            let prev = expected.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
            expected.push(chain(expected.len() as u64 + 1, &prev, d.clone()));
            change = change.record(d);
        }
        assert_eq!(store.apply(change).await.unwrap(), expected.len() as u64);
    }
    let n = expected.len() as u64;
    assert_eq!(store.apply(Change::default()).await.unwrap(), n);

    assert_eq!(records(&*store).await, expected);
    assert_eq!(store.audit_after(10, 5).await.unwrap(), expected[10..15]);
    assert!(store.audit_after(n, 10).await.unwrap().is_empty());
    let last = expected.last().unwrap();
    assert_eq!(store.audit_head().await.unwrap(), Some((n, last.hash.clone())));
    assert_eq!(verified(&*store).await, n);
}

/// Many writers at once: on SQLite this forms group commits, on PostgreSQL it contends for
/// the head row. Every 7th change fails its precondition and must vanish without a trace.
async fn concurrent_applies(store: Arc<dyn Store>) {
    let alice = user("alice");
    store.apply(insert(alice.clone()).record(draft(0))).await.unwrap();
    let tasks: Vec<_> = (0..50u64)
        .map(|t| {
            let (store, owner) = (store.clone(), alice.id.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10u64 {
                    let s = session(&format!("t{t}x{i}"), &owner, T0 + 3600);
                    let mut change = Change::default().with(Mutation::InsertSession(s)).record(draft(t * 100 + i));
                    if (t * 10 + i) % 7 == 0 {
                        change = change.with(Mutation::AdvanceTotp { user: owner.clone(), step: 0 });
                        assert_eq!(conflict(store.apply(change).await), "totp_replayed");
                    } else {
                        seqs.push(store.apply(change).await.unwrap());
                    }
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    let ok = seqs.len() as u64;
    assert_eq!(ok, 500 - 500u64.div_ceil(7));
    assert_eq!(seqs, (2..=ok + 1).collect::<Vec<_>>(), "every successful change got its own seq");
    assert_eq!(verified(&*store).await, ok + 1);
    assert_eq!(store.active_sessions(Timestamp(T0)).await.unwrap(), ok);
}

fn identity(u: &User, subject: &str) -> Identity {
    Identity {
        issuer: "https://idp.example.com".into(),
        subject: subject.into(),
        user_id: u.id.clone(),
        email: Some(format!("{}@example.com", u.name)),
        created_at: Timestamp(T0),
        last_login_at: Timestamp(T0),
    }
}

async fn identities(store: Arc<dyn Store>) {
    let (alice, bob) = (user("alice"), user("bob"));
    let linked = identity(&alice, "sub-1");
    store.apply(insert(alice.clone()).with(Mutation::LinkIdentity(linked.clone()))).await.unwrap();
    let (found, owner) = store.identity("https://idp.example.com", "sub-1").await.unwrap().unwrap();
    assert_eq!(found, linked);
    same(&owner, &alice);
    assert!(store.identity("https://idp.example.com", "sub-2").await.unwrap().is_none());
    assert!(store.identity("https://other.example.com", "sub-1").await.unwrap().is_none(), "the issuer is part of the identity");

    // The same (issuer, subject) cannot be linked twice, and the failed change leaves no user behind.
    assert_eq!(conflict(store.apply(insert(bob.clone()).with(Mutation::LinkIdentity(identity(&bob, "sub-1")))).await), "identity_exists");
    assert!(store.user_by_name(&bob.name).await.unwrap().is_none());

    let groups = vec![GroupName::parse("developers").unwrap(), GroupName::parse("admins").unwrap()];
    let touch = Mutation::TouchIdentity { issuer: linked.issuer.clone(), subject: "sub-1".into(), email: None, at: Timestamp(T0 + 60) };
    store.apply(Change::default().with(touch).with(Mutation::SetUserGroups { user: alice.id.clone(), groups: groups.clone() })).await.unwrap();
    let (found, owner) = store.identity("https://idp.example.com", "sub-1").await.unwrap().unwrap();
    assert_eq!((found.email, found.last_login_at, found.created_at), (None, Timestamp(T0 + 60), Timestamp(T0)));
    assert_eq!(owner.groups, groups);
}

fn attempt(tag: &str, mode: SsoMode) -> SsoAttempt {
    SsoAttempt {
        id: format!("sso-{tag}"),
        provider: "corp".into(),
        mode,
        status: SsoStatus::Pending,
        state_lookup: format!("state-{tag}"),
        state_hash: "aa".repeat(32),
        nonce: format!("nonce-{tag}"),
        verifier_sealed: "sealed".into(),
        client_challenge: (mode == SsoMode::Browser).then(|| "challenge".into()),
        redirect_uri: (mode == SsoMode::Browser).then(|| "http://127.0.0.1:5000/callback".into()),
        code_lookup: (mode == SsoMode::Device).then(|| format!("device-{tag}")),
        code_hash: (mode == SsoMode::Device).then(|| "bb".repeat(32)),
        user_code_hash: (mode == SsoMode::Device).then(|| format!("user-code-{tag}")),
        user_id: None,
        subject: None,
        mfa: None,
        reason: None,
        session_expires_at: None,
        addr: "127.0.0.1".into(),
        created_at: Timestamp(T0),
        expires_at: Timestamp(T0 + 600),
        interval_secs: 5,
        last_poll_at: None,
        refresh_sealed: None,
    }
}

async fn sso_attempts(store: Arc<dyn Store>) {
    let (browser, device) = (attempt("b", SsoMode::Browser), attempt("d", SsoMode::Device));
    store.apply(Change::default().with(Mutation::InsertSsoAttempt(browser.clone())).with(Mutation::InsertSsoAttempt(device.clone()))).await.unwrap();
    assert_eq!(store.sso_attempt_by_state("state-b").await.unwrap().unwrap(), browser);
    assert_eq!(store.sso_attempt_by_code("device-d").await.unwrap().unwrap(), device);
    assert_eq!(store.sso_attempt_by_user_code("user-code-d", Timestamp(T0)).await.unwrap().unwrap(), device);
    assert!(store.sso_attempt_by_user_code("user-code-d", Timestamp(T0 + 600)).await.unwrap().is_none(), "expired");
    assert!(store.sso_attempt_by_state("state-x").await.unwrap().is_none());

    // A step happens once: the second of two updates expecting `pending` is refused.
    let alice = user("alice");
    store.apply(insert(alice.clone())).await.unwrap();
    let approved = SsoAttempt {
        status: SsoStatus::Approved,
        user_id: Some(alice.id.clone()),
        code_lookup: Some("login-b".into()),
        code_hash: Some("cc".repeat(32)),
        session_expires_at: Some(Timestamp(T0 + 3600)),
        ..browser.clone()
    };
    let update = |a: &SsoAttempt, expect| Change::default().with(Mutation::UpdateSsoAttempt { attempt: a.clone(), expect });
    store.apply(update(&approved, SsoStatus::Pending)).await.unwrap();
    let denied = SsoAttempt { status: SsoStatus::Denied, reason: Some("mfa_required".into()), ..browser.clone() };
    assert_eq!(conflict(store.apply(update(&denied, SsoStatus::Pending)).await), "sso_attempt_done");
    assert_eq!(store.sso_attempt_by_code("login-b").await.unwrap().unwrap(), approved, "found by the login code set on approval");

    // Device codes stop matching user codes once the attempt leaves `pending`.
    let polled = SsoAttempt { status: SsoStatus::Denied, last_poll_at: Some(Timestamp(T0 + 5)), ..device.clone() };
    store.apply(update(&polled, SsoStatus::Pending)).await.unwrap();
    assert!(store.sso_attempt_by_user_code("user-code-d", Timestamp(T0)).await.unwrap().is_none());

    store.apply(Change::default().with(Mutation::PurgeSsoAttempts { before: Timestamp(T0 + 601) })).await.unwrap();
    assert!(store.sso_attempt_by_state("state-b").await.unwrap().is_none());
    assert!(store.sso_attempt_by_code("device-d").await.unwrap().is_none());
}

async fn token_uses(store: Arc<dyn Store>) {
    let record = |key: &str, exp: i64| Change::default().with(Mutation::RecordTokenUse { key: key.into(), expires_at: Timestamp(exp) });
    store.apply(record("a", T0 + 300)).await.unwrap();
    assert_eq!(conflict(store.apply(record("a", T0 + 300)).await), "token_replayed");
    // A refused replay takes its whole change with it.
    let with_audit = record("a", T0 + 300).record(draft(1));
    assert_eq!(conflict(store.apply(with_audit).await), "token_replayed");
    assert_eq!(verified(&*store).await, 0);
    store.apply(record("b", T0 + 100)).await.unwrap();
    store.apply(Change::default().with(Mutation::PurgeTokenUses { before: Timestamp(T0 + 200) })).await.unwrap();
    store.apply(record("b", T0 + 400)).await.unwrap();
    assert_eq!(conflict(store.apply(record("a", T0 + 300)).await), "token_replayed", "unexpired uses are kept");
}

async fn role_requests(store: Arc<dyn Store>) {
    let alice = user("alice");
    store.apply(insert(alice.clone())).await.unwrap();
    let admin = stint_core::ids::RoleName::parse("admin").unwrap();
    let pending = RoleRequest {
        id: "r_1".into(),
        requester: alice.id.clone(),
        requester_name: alice.name.clone(),
        role: admin.clone(),
        reason: "rotate the database password".into(),
        duration_secs: 3600,
        status: RequestStatus::Pending,
        created_at: Timestamp(T0),
        pending_until: Timestamp(T0 + 3600),
        approvals: vec![],
        granted_from: None,
        granted_until: None,
        decided_by: None,
        decision_reason: None,
        break_glass: false,
    };
    store.apply(Change::default().with(Mutation::InsertRequest(pending.clone()))).await.unwrap();
    assert_eq!(store.request("r_1").await.unwrap().unwrap(), pending);
    assert!(store.grants(&alice.id, &admin).await.unwrap().is_empty());

    // Two approvers acting on the same state: the second is refused.
    let one = RoleRequest { approvals: vec![name("bob")], ..pending.clone() };
    let update = |q: &RoleRequest, expect, approvals| Change::default().with(Mutation::UpdateRequest { request: q.clone(), expect, approvals });
    store.apply(update(&one, RequestStatus::Pending, 0)).await.unwrap();
    let other = RoleRequest { approvals: vec![name("carol")], ..pending.clone() };
    assert_eq!(conflict(store.apply(update(&other, RequestStatus::Pending, 0)).await), "request_changed");
    let granted = RoleRequest {
        approvals: vec![name("bob"), name("carol")],
        status: RequestStatus::Approved,
        granted_from: Some(Timestamp(T0 + 10)),
        granted_until: Some(Timestamp(T0 + 3610)),
        ..pending.clone()
    };
    store.apply(update(&granted, RequestStatus::Pending, 1)).await.unwrap();
    assert_eq!(store.grants(&alice.id, &admin).await.unwrap(), vec![granted.clone()]);
    assert!(granted.grants_at(Timestamp(T0 + 10)) && !granted.grants_at(Timestamp(T0 + 3610)));
    let revoked = RoleRequest { status: RequestStatus::Revoked, ..granted.clone() };
    assert_eq!(conflict(store.apply(update(&revoked, RequestStatus::Pending, 2)).await), "request_changed", "it is approved now");
    store.apply(update(&revoked, RequestStatus::Approved, 2)).await.unwrap();
    assert!(store.grants(&alice.id, &admin).await.unwrap().is_empty());
    assert_eq!(store.requests(Timestamp(T0), 10).await.unwrap(), vec![revoked]);
    assert!(store.requests(Timestamp(T0 + 1), 10).await.unwrap().is_empty());
}

fn lease(tag: &str, owner: &User) -> stint_core::model::Lease {
    stint_core::model::Lease {
        id: stint_core::ids::LeaseId::from_trusted(format!("l_{tag:a<26}")),
        backend: "servers".into(),
        kind: stint_core::model::BackendKind::Ssh,
        user_id: Some(owner.id.clone()),
        subject: owner.name.to_string(),
        role: stint_core::ids::RoleName::parse("readonly").unwrap(),
        session_id: None,
        grant_id: None,
        external_id: format!("serial-{tag}"),
        issued_at: Timestamp(T0),
        expires_at: Timestamp(T0 + 3600),
        revoked_at: None,
        revoke_reason: None,
        ended_at: None,
        retry_at: None,
    }
}

/// What a disable ends, recorded from what each change actually changed: a lease revoked
/// twice is recorded once; grants and pending requests of the person are voided with their
/// records (ended ones and other people's are left alone); codes expire; SSO logins that could
/// still become a session are denied.
async fn revocations_record_what_they_changed(store: Arc<dyn Store>) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.apply(insert(alice.clone())).await.unwrap();
    store.apply(insert(bob.clone())).await.unwrap();
    let (l1, l2, other) = (lease("one", &alice), lease("two", &alice), lease("three", &bob));
    for l in [&l1, &l2, &other] {
        store.apply(Change::default().with(Mutation::InsertLease(l.clone()))).await.unwrap();
    }
    let revoke = |scope| {
        Change::default().with(Mutation::RevokeLeases { scope, at: Timestamp(T0 + 5), reason: "user disabled".into(), recorded_by: Some("admin".into()) })
    };
    let before = verified(&*store).await;
    store.apply(revoke(stint_core::model::LeaseScope::Lease(l1.id.clone()))).await.unwrap();
    store.apply(revoke(stint_core::model::LeaseScope::User(alice.id.clone()))).await.unwrap();
    store.apply(revoke(stint_core::model::LeaseScope::User(alice.id.clone()))).await.unwrap();
    let recorded: Vec<String> = records(&*store).await.into_iter().skip(before as usize).filter(|r| r.event == "lease.revoked").map(|r| r.subject).collect();
    assert_eq!(recorded, [l1.id.to_string(), l2.id.to_string()], "one record per lease, by the change that revoked it");
    assert!(store.lease(&other.id).await.unwrap().unwrap().revoked_at.is_none(), "bob's lease is not in alice's scope");

    let admin = stint_core::ids::RoleName::parse("admin").unwrap();
    let request = |id: &str, owner: &User, status, until: i64| RoleRequest {
        id: id.into(),
        requester: owner.id.clone(),
        requester_name: owner.name.clone(),
        role: admin.clone(),
        reason: "migrate the billing tables".into(),
        duration_secs: 3600,
        status,
        created_at: Timestamp(T0),
        pending_until: Timestamp(until),
        approvals: vec![],
        granted_from: Some(Timestamp(T0)),
        granted_until: Some(Timestamp(until)),
        decided_by: None,
        decision_reason: None,
        break_glass: false,
    };
    let all = [
        request("r_live", &alice, RequestStatus::Approved, T0 + 3600),
        request("r_pending", &alice, RequestStatus::Pending, T0 + 3600),
        request("r_ended", &alice, RequestStatus::Approved, T0 + 1),
        request("r_bob", &bob, RequestStatus::Approved, T0 + 3600),
    ];
    for q in &all {
        store.apply(Change::default().with(Mutation::InsertRequest(q.clone()))).await.unwrap();
    }
    let code_row = code("reset-a", CodePurpose::Enrollment, Some(&alice.id));
    let mut sso = attempt("a", SsoMode::Browser);
    sso.status = SsoStatus::Approved;
    sso.user_id = Some(alice.id.clone());
    let mut bobs = attempt("b", SsoMode::Browser);
    bobs.status = SsoStatus::Approved;
    bobs.user_id = Some(bob.id.clone());
    store
        .apply(Change::default().with(Mutation::InsertCode(code_row)).with(Mutation::InsertSsoAttempt(sso)).with(Mutation::InsertSsoAttempt(bobs)))
        .await
        .unwrap();
    let before = verified(&*store).await;
    let at = Timestamp(T0 + 10);
    let void = Change::default()
        .with(Mutation::VoidRequestsOf { user: alice.id.clone(), by: "root".into(), actor: "admin".into(), at, reason: "user disabled".into() })
        .with(Mutation::ExpireUserCodes { user: alice.id.clone(), at })
        .with(Mutation::DenySsoAttemptsOf { user: alice.id.clone(), reason: "user_disabled".into() });
    store.apply(void).await.unwrap();
    let status = |q: Option<RoleRequest>| q.map(|q| (q.status, q.decision_reason));
    let reason = Some("user disabled".to_owned());
    assert_eq!(status(store.request("r_live").await.unwrap()), Some((RequestStatus::Revoked, reason.clone())));
    assert_eq!(status(store.request("r_pending").await.unwrap()), Some((RequestStatus::Denied, reason)));
    assert_eq!(status(store.request("r_ended").await.unwrap()), Some((RequestStatus::Approved, None)), "an ended grant is left as it was");
    assert_eq!(status(store.request("r_bob").await.unwrap()), Some((RequestStatus::Approved, None)), "other people's grants are untouched");
    let events: Vec<(String, String)> = records(&*store).await.into_iter().skip(before as usize).map(|r| (r.event, r.subject)).collect();
    assert_eq!(events, [("grant.revoked".to_owned(), "r_live".to_owned()), ("request.denied".to_owned(), "r_pending".to_owned())]);
    let consume = Change::default().with(Mutation::ConsumeCode { lookup: "reset-a".into(), at });
    assert_eq!(conflict(store.apply(consume).await), "code_used", "an expired code is refused");
    assert_eq!(store.sso_attempt_by_state("state-a").await.unwrap().unwrap().status, SsoStatus::Denied);
    assert_eq!(store.sso_attempt_by_state("state-b").await.unwrap().unwrap().status, SsoStatus::Approved, "bob's login is his");
}

/// The caps on live sessions and leases: counted inside the change, so the N+1th is refused
/// and changes nothing; expired, revoked and ended ones do not count; another person's do
/// not count; and concurrent changes cannot overshoot.
async fn caps_per_person(store: Arc<dyn Store>) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.apply(insert(alice.clone())).await.unwrap();
    store.apply(insert(bob.clone())).await.unwrap();
    let at = Timestamp(T0);
    let session_room = |u: &User| Mutation::RequireSessionRoom { user: u.id.clone(), at, max: 3 };
    store.apply(Change::default().with(Mutation::InsertSession(session("old", &alice.id, T0 - 1)))).await.unwrap();
    store.apply(Change::default().with(Mutation::InsertSession(session("gone", &alice.id, T0 + 3600)))).await.unwrap();
    store.apply(Change::default().with(Mutation::RevokeSession { session: sid("gone"), at })).await.unwrap();
    for i in 0..3 {
        store.apply(Change::default().with(session_room(&alice)).with(Mutation::InsertSession(session(&format!("a{i}"), &alice.id, T0 + 3600)))).await.unwrap();
    }
    let head = store.audit_head().await.unwrap();
    let refused = Change::default().with(session_room(&alice)).with(Mutation::InsertSession(session("a3", &alice.id, T0 + 3600))).record(draft(1));
    assert_eq!(conflict(store.apply(refused).await), "too_many_sessions");
    assert!(store.session(&sid("a3")).await.unwrap().is_none(), "the refused change inserted nothing");
    assert_eq!(store.audit_head().await.unwrap(), head, "nor audited anything");
    store.apply(Change::default().with(session_room(&bob)).with(Mutation::InsertSession(session("b0", &bob.id, T0 + 3600)))).await.unwrap();
    store.apply(Change::default().with(Mutation::RevokeSession { session: sid("a0"), at })).await.unwrap();
    store.apply(Change::default().with(session_room(&alice)).with(Mutation::InsertSession(session("a3", &alice.id, T0 + 3600)))).await.unwrap();

    let lease_room = |u: &User| Mutation::RequireLeaseRoom { user: u.id.clone(), at, max: 2 };
    let mut expired = lease("expired", &alice);
    expired.expires_at = at;
    let mut ended = lease("ended", &alice);
    ended.ended_at = Some(at);
    store.apply(Change::default().with(Mutation::InsertLease(expired)).with(Mutation::InsertLease(ended))).await.unwrap();
    for i in 0..2 {
        store.apply(Change::default().with(lease_room(&alice)).with(Mutation::InsertLease(lease(&format!("la{i}"), &alice)))).await.unwrap();
    }
    let refused = Change::default().with(lease_room(&alice)).with(Mutation::InsertLease(lease("la2", &alice)));
    assert_eq!(conflict(store.apply(refused).await), "too_many_leases");
    assert!(store.lease(&lease("la2", &alice).id).await.unwrap().is_none());
    store.apply(Change::default().with(lease_room(&bob)).with(Mutation::InsertLease(lease("lb0", &bob)))).await.unwrap();
    let scope = stint_core::model::LeaseScope::Lease(lease("la0", &alice).id);
    store.apply(Change::default().with(Mutation::RevokeLeases { scope, at, reason: "test".into(), recorded_by: None })).await.unwrap();
    store.apply(Change::default().with(lease_room(&alice)).with(Mutation::InsertLease(lease("la2", &alice)))).await.unwrap();

    // Twenty concurrent logins of a person with room for five: exactly five get in.
    let carol = user("carol");
    store.apply(insert(carol.clone())).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, owner) = (store.clone(), carol.id.clone());
            tokio::spawn(async move {
                let room = Mutation::RequireSessionRoom { user: owner.clone(), at, max: 5 };
                store.apply(Change::default().with(room).with(Mutation::InsertSession(session(&format!("c{i}"), &owner, T0 + 3600)))).await
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(e) => assert_eq!(e.code(), "too_many_sessions", "{e}"),
        }
    }
    assert_eq!(admitted, 5);
}

fn refresh(session: &str, checked_at: i64) -> SsoRefresh {
    SsoRefresh {
        session_id: sid(session),
        provider: "corp".into(),
        subject: "sub-1".into(),
        refresh_sealed: format!("sealed-{session}"),
        validated_at: Timestamp(checked_at),
        checked_at: Timestamp(checked_at),
    }
}

/// SSO refresh rows: due ones oldest check first, only of live sessions, rotated in place,
/// and gone with their session (revoked one by one or per person, or purged once expired).
async fn sso_refresh(store: Arc<dyn Store>) {
    let (alice, bob) = (user("alice"), user("bob"));
    store.apply(insert(alice.clone()).with(Mutation::InsertUser(bob.clone()))).await.unwrap();
    let mut c = Change::default();
    for (tag, owner, expires, checked) in
        [("r1", &alice, T0 + 3600, T0 - 600), ("r2", &alice, T0 + 3600, T0 - 900), ("r3", &bob, T0 + 3600, T0), ("r4", &bob, T0 + 10, T0 - 999)]
    {
        c = c.with(Mutation::InsertSession(session(tag, &owner.id, expires))).with(Mutation::InsertSsoRefresh(refresh(tag, checked)));
    }
    store.apply(c).await.unwrap();
    let due = |before: i64, now: i64| {
        let store = store.clone();
        async move { store.sso_refresh_due(Timestamp(before), Timestamp(now), 10).await.unwrap().into_iter().map(|r| r.session_id).collect::<Vec<_>>() }
    };
    assert_eq!(due(T0 - 300, T0).await, [sid("r4"), sid("r2"), sid("r1")], "least recently checked first; r3 is not due");
    assert_eq!(due(T0 - 300, T0 + 10).await, [sid("r2"), sid("r1")], "r4's session has expired");
    assert_eq!(store.sso_refresh_due(Timestamp(T0), Timestamp(T0), 1).await.unwrap().len(), 1, "at most the limit");

    let rotated = SsoRefresh { refresh_sealed: "sealed-rotated".into(), validated_at: Timestamp(T0 + 5), checked_at: Timestamp(T0 + 5), ..refresh("r2", 0) };
    store.apply(Change::default().with(Mutation::UpdateSsoRefresh(rotated.clone()))).await.unwrap();
    assert_eq!(store.sso_refresh(&sid("r2")).await.unwrap(), Some(rotated));

    store.apply(Change::default().with(Mutation::RevokeSession { session: sid("r1"), at: Timestamp(T0) })).await.unwrap();
    assert_eq!(store.sso_refresh(&sid("r1")).await.unwrap(), None, "a revoked session's token goes with it");
    // An update racing the revocation changes nothing.
    store.apply(Change::default().with(Mutation::UpdateSsoRefresh(refresh("r1", T0 + 6)))).await.unwrap();
    assert_eq!(store.sso_refresh(&sid("r1")).await.unwrap(), None);
    store.apply(Change::default().with(Mutation::RevokeUserSessions { user: alice.id.clone(), at: Timestamp(T0) })).await.unwrap();
    assert_eq!(store.sso_refresh(&sid("r2")).await.unwrap(), None, "and a person's revoked sessions' tokens");
    store.apply(Change::default().with(Mutation::PurgeSsoRefresh { at: Timestamp(T0 + 10) })).await.unwrap();
    assert_eq!(store.sso_refresh(&sid("r4")).await.unwrap(), None, "an expired session's token is purged");
    assert_eq!(store.sso_refresh(&sid("r3")).await.unwrap().map(|r| r.refresh_sealed), Some("sealed-r3".into()), "a live one stays");
}

async fn inventory_snapshots(store: Arc<dyn Store>) {
    use stint_core::inventory::{AccessKey, IamUser, Imported, LastUsed, Snapshot, Source};
    let snapshot = |account: &str, at: i64| Imported {
        snapshot: Snapshot {
            source: Source::AwsCredentialReport,
            account: account.into(),
            generated_at: Timestamp(at),
            users: vec![IamUser {
                name: "ci-deploy".into(),
                arn: format!("arn:aws:iam::{account}:user/ci-deploy"),
                root: false,
                created_at: Some(Timestamp(T0 - 86_400)),
                password_enabled: None,
                password_last_used: LastUsed::NoInformation,
                mfa_active: false,
                access_keys: vec![AccessKey {
                    slot: 2,
                    id: Some("AKIAEXAMPLE".into()),
                    active: true,
                    last_rotated: Some(Timestamp(T0 - 3_600)),
                    last_used: LastUsed::At(Timestamp(T0 - 60)),
                    last_used_region: Some("eu-west-1".into()),
                    last_used_service: None,
                }],
                certificates: vec![],
            }],
        },
        imported_at: Timestamp(at + 5),
        imported_by: "user:alice".into(),
    };
    let (a1, b1, a2) = (snapshot("111111111111", T0), snapshot("222222222222", T0 + 10), snapshot("111111111111", T0 + 20));
    store.apply(Change::default().with(Mutation::InsertInventorySnapshot(a2.clone()))).await.unwrap();
    store.apply(Change::default().with(Mutation::InsertInventorySnapshot(a1.clone())).with(Mutation::InsertInventorySnapshot(b1.clone()))).await.unwrap();
    assert_eq!(store.inventory_snapshots(Timestamp(0)).await.unwrap(), [a1.clone(), b1.clone(), a2.clone()], "whole, oldest first");
    assert_eq!(store.inventory_snapshots(Timestamp(T0 + 10)).await.unwrap(), [b1, a2], "from `since` on");
    let again = Imported { imported_by: "backend:aws".into(), ..a1 };
    let head = store.audit_head().await.unwrap();
    assert_eq!(conflict(store.apply(Change::default().with(Mutation::InsertInventorySnapshot(again)).record(draft(1))).await), "inventory_exists");
    assert_eq!(store.audit_head().await.unwrap(), head, "a refused import writes nothing");
}

/// What a report reads by time: leases not over before the period and issued by its end
/// (bounds included), and the audit records written in it, paged by `seq`.
async fn report_reads(store: Arc<dyn Store>) {
    let owner = user("reader");
    store.apply(insert(owner.clone())).await.unwrap();
    let at = |issued: i64, expires: i64, ended: Option<i64>, tag: &str| {
        let mut l = lease(tag, &owner);
        (l.issued_at, l.expires_at, l.ended_at) = (Timestamp(T0 + issued), Timestamp(T0 + expires), ended.map(|e| Timestamp(T0 + e)));
        l
    };
    let leases = [
        at(0, 100, Some(50), "over-before"),  // ended before the period
        at(0, 99, None, "expired-before"),    // expired before the period
        at(0, 100, None, "expires-at-start"), // expires as the period starts: counted
        at(50, 500, Some(150), "ended-inside"),
        at(150, 250, None, "inside"),
        at(300, 400, None, "issued-at-end"), // issued as the period ends: counted
        at(301, 400, None, "issued-after"),
    ];
    for l in &leases {
        store.apply(Change::default().with(Mutation::InsertLease(l.clone()))).await.unwrap();
    }
    let got: Vec<String> = store.leases_during(Timestamp(T0 + 100), Timestamp(T0 + 300), 100).await.unwrap().iter().map(|l| l.external_id.clone()).collect();
    assert_eq!(got, ["serial-expires-at-start", "serial-ended-inside", "serial-inside", "serial-issued-at-end"], "oldest first");
    let first = store.leases_during(Timestamp(T0 + 100), Timestamp(T0 + 300), 2).await.unwrap();
    assert_eq!(first.len(), 2, "at most the limit");

    // Records at T0+1 … T0+10.
    for n in 1..=10 {
        store.apply(Change::audit_only(draft(n))).await.unwrap();
    }
    let all = records(store.as_ref()).await;
    let seq_of = |n: i64| all.iter().find(|r| r.at == Timestamp(T0 + n)).unwrap().seq;
    let page = store.audit_during(Timestamp(T0 + 3), Timestamp(T0 + 8), 0, 4).await.unwrap();
    assert_eq!(page.iter().map(|r| r.at.0 - T0).collect::<Vec<_>>(), [3, 4, 5, 6], "bounds included, at most the limit");
    let rest = store.audit_during(Timestamp(T0 + 3), Timestamp(T0 + 8), page.last().unwrap().seq, 4).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.at.0 - T0).collect::<Vec<_>>(), [7, 8]);
    assert_eq!(rest[0].seq, seq_of(7));
    for r in page.iter().chain(&rest) {
        same(r, all.iter().find(|a| a.seq == r.seq).unwrap());
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::on_sqlite(stringify!($case), super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::on_postgres(stringify!($case), super::$case).await;
                }
            )*
        }
    };
}

conformance!(
    users,
    credentials,
    preconditions_guard_their_change,
    totp_replay_is_refused_atomically,
    sessions,
    codes,
    keys,
    audit_chain,
    concurrent_applies,
    identities,
    sso_attempts,
    token_uses,
    role_requests,
    revocations_record_what_they_changed,
    caps_per_person,
    sso_refresh,
    inventory_snapshots,
    report_reads
);

// ---------------------------------------------------------------- harness

/// A name no other test (in this run or a concurrent one) uses.
fn unique(case: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let short: String = case.chars().take(24).collect();
    format!("{short}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs `test` on its own task so a failed assertion still reaches the cleanup.
async fn isolate<F: Future<Output = ()> + Send + 'static>(test: F) -> std::thread::Result<()> {
    tokio::spawn(test).await.map_err(|e| e.into_panic())
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(case: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("stint-store-{}", unique(case)));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("stint.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn on_sqlite<F, Fut>(case: &str, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = TempDir::new(case);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.db()).unwrap());
    if let Err(panic) = isolate(test(store)).await {
        std::panic::resume_unwind(panic);
    }
}

fn postgres_url() -> String {
    std::env::var("STINT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e}", describe(url)));
    tokio::spawn(conn);
    client
}

async fn drop_schema(url: &str, schema: &str) {
    admin(url).await.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
}

async fn on_postgres<F, Fut>(case: &str, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (url, schema) = (postgres_url(), format!("stint_test_{}", unique(case)));
    let store = PostgresStore::connect_with_schema(&url, Some(&schema)).await.unwrap_or_else(|e| panic!("PostgreSQL at {} is required: {e:?}", describe(&url)));
    let outcome = isolate(test(Arc::new(store))).await;
    drop_schema(&url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------- adapter-specific

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopen_keeps_data_and_continues_the_chain() {
    let dir = TempDir::new("reopen");
    {
        let store = SqliteStore::open(&dir.db()).unwrap();
        store.apply(insert(user("alice")).record(draft(1)).record(draft(2))).await.unwrap();
        store.apply(Change::audit_only(draft(3))).await.unwrap();
    }
    let store = SqliteStore::open(&dir.db()).unwrap();
    assert!(store.user_by_name(&name("alice")).await.unwrap().is_some());
    assert_eq!(store.audit_head().await.unwrap().unwrap().0, 3);
    assert_eq!(store.apply(Change::audit_only(draft(4))).await.unwrap(), 4);
    assert_eq!(verified(&store).await, 4);
}

#[tokio::test]
async fn open_dispatches_on_the_spec() {
    let dir = TempDir::new("open");
    let data = dir.0.join("data");
    let store = stint_store::open("sqlite", &data).await.unwrap();
    assert_eq!(store.apply(Change::audit_only(draft(1))).await.unwrap(), 1);
    assert!(data.join("stint.db").exists());
    let err = stint_store::open("mysql://root:hunter2@db/stint", &data).await.err().unwrap();
    assert_eq!(err.code(), "invalid_store");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A plain `open(url)` honours `options=-csearch_path=...` in the URL.
#[tokio::test]
async fn postgres_open_honours_search_path_in_url() {
    let (url, schema) = (postgres_url(), format!("stint_test_{}", unique("url")));
    admin(&url).await.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let spec = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let outcome = isolate(async move {
        let store = stint_store::open(&spec, std::path::Path::new("/nonexistent")).await.unwrap();
        assert_eq!(store.apply(insert(user("alice")).record(draft(1))).await.unwrap(), 1);
        assert_eq!(verified(&*store).await, 1);
    })
    .await;
    let tables: i64 = admin(&url).await.query_one("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1", &[&schema]).await.unwrap().get(0);
    drop_schema(&url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(tables >= 7, "the tables went into {schema}, found {tables}");
}

/// A `verify-full` URL: every pooled session is encrypted, with the server's certificate
/// checked against the CA the URL names; a certificate from another CA is refused at open.
#[tokio::test]
async fn postgres_store_connects_with_verified_tls() {
    let url = postgres_url();
    let ca = stint_testkit::tls::postgres_serving_test_certificate(&url);
    let (schema, app) = (format!("stint_test_{}", unique("tls")), format!("stint_tls_{}", unique("app")));
    let sep = if url.contains('?') { '&' } else { '?' };
    let spec = format!("{url}{sep}sslmode=verify-full&sslrootcert={}&application_name={app}&options=-csearch_path%3D{schema}", ca.display());
    admin(&url).await.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let outcome = isolate({
        let (spec, app, url) = (spec.clone(), app.clone(), url.clone());
        async move {
            let store = stint_store::open(&spec, std::path::Path::new("/nonexistent")).await.unwrap();
            assert_eq!(store.apply(insert(user("alice")).record(draft(1))).await.unwrap(), 1);
            let row = admin(&url)
                .await
                .query_one(
                    "SELECT COUNT(*), COALESCE(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                    &[&app],
                )
                .await
                .unwrap();
            let (sessions, all_encrypted): (i64, bool) = (row.get(0), row.get(1));
            assert!(sessions >= 1 && all_encrypted, "{sessions} sessions, all encrypted: {all_encrypted}");
        }
    })
    .await;
    let wrong_dir = std::env::temp_dir().join(format!("stint-store-wrong-ca-{}", unique("ca")));
    std::fs::create_dir_all(&wrong_dir).unwrap();
    let wrong = wrong_dir.join("ca.pem");
    std::fs::write(&wrong, stint_testkit::tls::TestCa::new("another CA").pem()).unwrap();
    let refused = stint_store::open(&format!("{url}{sep}sslmode=verify-full&sslrootcert={}", wrong.display()), std::path::Path::new("/nonexistent")).await;
    std::fs::remove_dir_all(&wrong_dir).unwrap();
    drop_schema(&url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let e = refused.err().expect("a certificate from another CA is refused");
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");
}
