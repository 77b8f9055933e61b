//! Sessions follow the identity provider: an SSO login's refresh token is used, every
//! `[identity] revalidate`, to ask the provider whether it still vouches for the person;
//! against a real OpenID Provider (panva's `oidc-provider`, `tests/oidc/provider.mjs`),
//! which the test controls: it disables an account there, takes the token endpoint down,
//! or stops the provider.
//!
//! The server's clock starts at the real time (the provider signs real timestamps) and is
//! moved by the test; each run is triggered with `Broker::revalidate_sessions`, not waited for.
#![allow(clippy::unwrap_used)]

mod common;

use common::{body, real_now, spawn_app_at, Backend, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::audit::Record;
use stint_core::ids::{LeaseId, SessionId};
use stint_core::model::SsoRefresh;
use stint_core::oidc;
use stint_testkit::{browse, free_port, Idp};

/// Where the CLI would listen; nothing does, the browser stand-in stops before it.
const LOOPBACK: &str = "http://127.0.0.1:9/callback";
/// The shortest interval allowed: the provider's ID tokens live 5 minutes, so a refreshed
/// one is still valid at the server's clock moved by one interval.
const INTERVAL: i64 = 60;

struct Sso {
    app: TestApp,
    idp: Option<Idp>,
}

/// A server revalidating every minute with the test provider `corp`, and stint's SSH CA as
/// a backend for the developer role.
async fn sso(backend: Backend) -> Sso {
    let idp_port = free_port();
    let toml = format!(
        "[identity]\nrevalidate = \"1m\"\n\
         [[identity.oidc]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:{idp_port}\"\nclient_id = \"stint\"\n\
         danger_client_secret = \"stint-test-secret\"\ndanger_allow_http_loopback = true\njwks_min_refetch = \"0s\"\n\
         scopes = [\"openid\", \"email\", \"groups\"]\n\
         [identity.oidc.roles]\ndevelopers = [\"developer\"]\n\
         [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"dev\"]\n"
    );
    let app = spawn_app_at(backend, &toml, real_now()).await;
    let idp = Idp::start(idp_port, &app.url("/v1/sso/callback"), "k1");
    Sso { app, idp: Some(idp) }
}

/// An OpenSSH public key line for a fresh Ed25519 key (RFC 8709 wire format).
fn ssh_public_key() -> String {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), key.verifying_key().as_bytes().as_slice()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-ed25519 {}", data_encoding::BASE64.encode(&blob))
}

/// What a signed-in person holds: the session, a role token and a lease.
struct Holding {
    session: String,
    session_id: SessionId,
    token: String,
    lease: LeaseId,
}

impl Sso {
    fn idp(&self) -> &Idp {
        self.idp.as_ref().unwrap()
    }

    /// Logs `user` in through the browser flow as the CLI does; returns the session token.
    async fn login(&self, user: &str) -> String {
        let v = oidc::pkce_verifier(&mut rand_core::OsRng);
        let (verifier, challenge) = (v.expose().to_owned(), oidc::pkce_challenge(&v));
        let (s, begun) = self.app.post("/v1/sso/begin", None, json!({ "redirect_uri": LOOPBACK, "code_challenge": challenge })).await;
        assert_eq!(s, StatusCode::OK, "{begun}");
        let landing = browse(begun["authorization_url"].as_str().unwrap(), LOOPBACK, Some((user, &format!("{user}-password")))).await;
        let code = landing.query.get("code").unwrap_or_else(|| panic!("no login code: {:?}", landing.query));
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", verifier.as_str())];
        let (s, v) = body(self.app.http.post(self.app.url("/v1/sso/token")).form(&form).send().await.unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["session_token"].as_str().unwrap().to_owned()
    }

    /// Logs `user` in and takes a role token and an SSH certificate.
    async fn holding(&self, user: &str) -> Holding {
        let session = self.login(user).await;
        let (s, me) = self.whoami(&session).await;
        assert_eq!(s, StatusCode::OK, "{me}");
        let session_id = SessionId::parse(me["session_id"].as_str().unwrap()).unwrap();
        let (s, tok) = self.app.post("/v1/assume", Some(&session), json!({ "role": "developer", "ttl": "30m" })).await;
        assert_eq!(s, StatusCode::OK, "{tok}");
        let (s, cert) = self.app.post("/v1/creds", Some(&session), json!({ "role": "developer", "backend": "servers", "public_key": ssh_public_key() })).await;
        assert_eq!(s, StatusCode::OK, "{cert}");
        let lease = LeaseId::parse(cert["lease_id"].as_str().unwrap()).unwrap();
        Holding { session, session_id, token: tok["token"].as_str().unwrap().to_owned(), lease }
    }

    async fn whoami(&self, session: &str) -> (StatusCode, Value) {
        self.app.get("/v1/whoami", Some(session)).await
    }

    /// Moves the server's clock one interval on and runs a revalidation.
    async fn next_interval(&self) -> stint_core::broker::Revalidated {
        self.app.clock.advance(INTERVAL);
        self.run().await
    }

    /// One run. Should the server's own timer (every minute of real time) be running one
    /// just now, this one waits for it to end (at most 30 s) and runs after it.
    async fn run(&self) -> stint_core::broker::Revalidated {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = self.app.state.broker.revalidate_sessions().await.unwrap();
            if r.ran {
                return r;
            }
            assert!(std::time::Instant::now() < deadline, "another revalidation run never ended");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn records(&self, event: &str) -> Vec<Record> {
        self.app.store.audit_after(0, 10_000).await.unwrap().into_iter().filter(|r| r.event == event).collect()
    }

    /// Whether the lease is revoked, and why.
    async fn lease_revoked(&self, id: &LeaseId) -> Option<String> {
        let lease = self.app.store.lease(id).await.unwrap().unwrap();
        lease.revoked_at.map(|_| lease.revoke_reason.unwrap_or_default())
    }
}

/// The account disabled at the provider: the next run ends the stint session and revokes
/// what it holds, at once, on the record in the provider's name. Other sessions stay.
async fn a_refusal_at_the_provider_ends_the_session_and_what_it_holds(t: Sso) {
    let alice = t.holding("alice").await;
    let carol = t.holding("carol").await;
    assert!(t.app.store.sso_refresh(&alice.session_id).await.unwrap().is_some(), "the login's refresh token is kept");

    t.idp().control("accounts/alice/disable").await;
    let r = t.next_interval().await;
    assert_eq!((r.ended, r.refreshed, r.failures.len()), (1, 1, 0), "{r:?}");

    let (s, v) = t.whoami(&alice.session).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("session_revoked")), "{v}");
    assert_eq!(t.app.introspect(&alice.token).await["active"], false, "the role token dies with its session");
    assert_eq!(t.lease_revoked(&alice.lease).await.as_deref(), Some("idp_refresh_refused"));
    assert!(t.app.store.sso_refresh(&alice.session_id).await.unwrap().is_none(), "the refresh token is gone with the session");
    t.app.settle().await;

    let revoked: Vec<_> = t.records("session.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let rec = &revoked[0];
    assert_eq!((rec.actor.as_str(), rec.subject.as_str(), rec.reason.as_str()), ("sso:corp", alice.session_id.as_str(), "idp_refresh_refused"));
    assert_eq!((rec.details["provider"].as_str(), rec.details["idp_subject"].as_str(), rec.details["idp_error"].as_str()), ("corp", "alice", "invalid_grant"));
    let lease_records = t.records("lease.revoked").await;
    assert_eq!(lease_records.len(), 1);
    assert_eq!((lease_records[0].subject.as_str(), lease_records[0].actor.as_str()), (alice.lease.as_str(), "sso:corp"));

    // Carol's account is fine: his session, token and certificate stay.
    assert_eq!(t.whoami(&carol.session).await.0, StatusCode::OK);
    assert_eq!(t.app.introspect(&carol.token).await["active"], true);
    assert_eq!(t.lease_revoked(&carol.lease).await, None);
}

/// A provider that cannot answer (a 503, then not running at all) ends nothing: the
/// sessions stay, the failure is on the record once per interval, and they are asked again
/// an interval later, not at every tick.
async fn a_provider_that_cannot_answer_ends_nothing(mut t: Sso) {
    let alice = t.holding("alice").await;
    let carol = t.holding("carol").await;
    let before = t.app.store.sso_refresh(&alice.session_id).await.unwrap().unwrap();

    t.idp().control("token/down").await;
    let r = t.next_interval().await;
    assert_eq!((r.ended, r.refreshed), (0, 0), "{r:?}");
    assert_eq!(r.failures.len(), 1, "{r:?}");
    let f = &r.failures[0];
    assert_eq!((f.provider.as_str(), f.code, f.sessions), ("corp", "idp_unreachable", 2), "one provider down: its other session is not asked");
    let after = t.app.store.sso_refresh(&alice.session_id).await.unwrap().unwrap();
    assert_eq!((after.validated_at, after.refresh_sealed.as_str()), (before.validated_at, before.refresh_sealed.as_str()), "not validated");
    assert!(after.checked_at > before.checked_at, "but checked");
    let failed = t.records("sso.revalidate_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].actor.as_str(), failed[0].reason.as_str(), failed[0].details["sessions"].as_str()), ("sso:corp", "idp_unreachable", "2"));

    // The next tick, within the interval, does not ask again.
    let r = t.run().await;
    assert_eq!((r.ended, r.refreshed, r.failures.len()), (0, 0, 0), "{r:?}");
    assert_eq!(t.records("sso.revalidate_failed").await.len(), 1);

    // The provider gone altogether: still nothing ends.
    drop(t.idp.take());
    let r = t.next_interval().await;
    assert_eq!((r.ended, r.failures.len(), r.failures[0].code), (0, 1, "idp_unreachable"), "{r:?}");
    assert_eq!(t.records("sso.revalidate_failed").await.len(), 2);
    for h in [&alice, &carol] {
        assert_eq!(t.whoami(&h.session).await.0, StatusCode::OK);
        assert_eq!(t.app.introspect(&h.token).await["active"], true);
        assert_eq!(t.lease_revoked(&h.lease).await, None);
    }
    assert!(t.records("session.revoked").await.is_empty());
}

/// The refresh token in a row, opened with the server's master key.
fn unsealed(t: &Sso, r: &SsoRefresh) -> String {
    let plain = t.app.master_key().open(&format!("sso-refresh:session:{}", r.session_id), &r.refresh_sealed).unwrap();
    String::from_utf8(plain.expose().to_vec()).unwrap()
}

/// A refresh the provider grants keeps the session and stores the rotated refresh token:
/// the provider spends the old one, so the next refresh works only with the new one. The
/// tokens are sealed at rest and never logged.
async fn a_granted_refresh_keeps_the_session_and_rotates_the_token(t: Sso) {
    let logs = stint_testkit::logs::LogBuffer::default();
    let _capture = logs.capture();
    let alice = t.holding("alice").await;
    let first = t.app.store.sso_refresh(&alice.session_id).await.unwrap().unwrap();
    assert_eq!((first.provider.as_str(), first.subject.as_str()), ("corp", "alice"));
    let mut tokens = vec![unsealed(&t, &first)];

    let r = t.run().await;
    assert_eq!((r.refreshed, r.ended), (0, 0), "not due within the interval: {r:?}");

    for _ in 0..2 {
        let r = t.next_interval().await;
        assert_eq!((r.refreshed, r.ended, r.failures.len()), (1, 0, 0), "{r:?}");
        let after = t.app.store.sso_refresh(&alice.session_id).await.unwrap().unwrap();
        let token = unsealed(&t, &after);
        assert!(!tokens.contains(&token), "the rotated token is stored");
        let now = stint_core::Clock::now(&t.app.clock);
        assert_eq!((after.validated_at, after.checked_at), (now, now));
        tokens.push(token);
    }
    assert_eq!(t.whoami(&alice.session).await.0, StatusCode::OK);
    assert_eq!(t.app.introspect(&alice.token).await["active"], true);
    assert_eq!(t.lease_revoked(&alice.lease).await, None);
    assert!(t.records("session.revoked").await.is_empty() && t.records("sso.revalidate_failed").await.is_empty());

    // A refresh that fails and one that is refused log too.
    t.idp().control("token/down").await;
    assert_eq!(t.next_interval().await.failures.len(), 1);
    t.idp().control("token/up").await;
    t.idp().control("accounts/alice/disable").await;
    assert_eq!(t.next_interval().await.ended, 1);
    let text = logs.text();
    assert!(text.contains("identity provider request failed"), "the logs were captured: {text}");
    for token in &tokens {
        assert!(token.len() >= 16, "{token}");
        assert!(!text.contains(token.as_str()), "a refresh token reached the logs");
        assert!(t.app.store.audit_after(0, 10_000).await.unwrap().iter().all(|r| !format!("{r:?}").contains(token.as_str())));
    }
}

/// Sessions without a refresh token (an SSO login that got none; a password login) are
/// left alone, whatever the provider says.
async fn a_session_without_refresh_token_is_left_alone(t: Sso) {
    t.idp().control("refresh-tokens/off").await;
    let alice = t.holding("alice").await;
    assert!(t.app.store.sso_refresh(&alice.session_id).await.unwrap().is_none(), "the provider issued no refresh token");
    let admin = t.app.admin().await;

    t.idp().control("accounts/alice/disable").await;
    let r = t.next_interval().await;
    assert_eq!((r.refreshed, r.ended, r.failures.len()), (0, 0, 0), "{r:?}");
    assert_eq!(t.whoami(&alice.session).await.0, StatusCode::OK);
    assert_eq!(t.whoami(&admin.session).await.0, StatusCode::OK);
    assert_eq!(t.lease_revoked(&alice.lease).await, None);
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::sso(super::Backend::Sqlite).await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::sso(super::Backend::Postgres).await).await;
            })*
        }
    };
}

cases!(
    a_refusal_at_the_provider_ends_the_session_and_what_it_holds,
    a_provider_that_cannot_answer_ends_nothing,
    a_granted_refresh_keeps_the_session_and_rotates_the_token,
    a_session_without_refresh_token_is_left_alone,
);
