//! SSH certificates against a real OpenSSH server: `sshd` (Debian's openssh-server), started
//! by the test on a loopback port with its own configuration, trusts stint's CA from
//! `/v1/ssh/ca.pub` and reads `/v1/ssh/krl` as its `RevokedKeys`. It accepts a valid
//! certificate and refuses a wrong principal, an expired certificate and a revoked one.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stint_core::Timestamp;

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&path));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

fn start_sshd(dir: &Path) -> Sshd {
    assert!(Path::new(SSHD).exists(), "{SSHD} is missing: install openssh-server (scripts/test does)");
    // sshd's privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let host_key = keygen(dir, "host_key");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\nTrustedUserCAKeys {dir}/ca.pub\nRevokedKeys {dir}/revoked.krl\n\
             AuthorizedKeysFile none\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n",
            host = host_key.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let log = dir.join("sshd.log");
    let child =
        Command::new(SSHD).arg("-D").arg("-e").arg("-f").arg(&config).stderr(std::fs::File::create(&log).unwrap()).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen: {}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port, log }
}

/// `ssh root@127.0.0.1 echo …` with the key and certificate; Ok(stdout) or Err(stderr).
fn ssh(sshd: &Sshd, key: &Path, cert: &Path) -> Result<String, String> {
    let out = run(Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-p", &sshd.port.to_string(), "-i"])
        .arg(key)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .args(["root@127.0.0.1", "echo", "stint-ssh-ok"]));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn certify(app: &TestApp, p: &Person, role: &str, ttl: &str, key: &Path, out: &Path) -> Value {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (s, v) = app.post("/v1/creds", Some(&p.session), json!({ "role": role, "ttl": ttl, "backend": "servers", "public_key": public })).await;
    assert_eq!(s, 200, "{v}");
    std::fs::write(out, format!("{}\n", v["certificate"].as_str().unwrap())).unwrap();
    v
}

async fn fetch_krl(app: &TestApp, dir: &Path) {
    let resp = app.http.get(app.url("/v1/ssh/krl")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    std::fs::write(dir.join("revoked.krl"), resp.bytes().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_accepts_valid_certificates_and_refuses_wrong_expired_and_revoked_ones() {
    let toml =
        "[[backends.ssh]]\nname = \"servers\"\nextensions = [\"permit-pty\"]\n[backends.ssh.roles]\ndeveloper = [\"root\"]\nreadonly = [\"nobody-here\"]\n";
    let app = spawn_app_at(Backend::Sqlite, toml, real_now()).await;
    let dir = app.data_dir.join("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = app.http.get(app.url("/v1/ssh/ca.pub")).send().await.unwrap().text().await.unwrap();
    assert!(ca.starts_with("ssh-ed25519 ") && ca.ends_with(" stint-ssh-ca\n"), "{ca}");
    std::fs::write(dir.join("ca.pub"), &ca).unwrap();
    fetch_krl(&app, &dir).await;
    let sshd = start_sshd(&dir);

    let admin = app.admin().await;
    let dana = app.person(&admin, "dana", &["developers"]).await;
    let key = keygen(&dir, "id_dana");

    // A valid certificate: the fields sshd and `ssh-keygen -L` show.
    let cert = dir.join("dana-cert.pub");
    let v = certify(&app, &dana, "developer", "1h", &key, &cert).await;
    let shown = String::from_utf8(run(Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert).env("TZ", "UTC")).stdout).unwrap();
    let lease = v["lease_id"].as_str().unwrap();
    assert!(shown.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"), "{shown}");
    assert!(shown.contains(&format!("Key ID: \"dana lease={lease} session={} role=developer\"", dana.session_id)), "{shown}");
    assert!(shown.contains(&format!("Serial: {}", v["serial"].as_str().unwrap())), "{shown}");
    assert!(shown.contains("Principals: \n                root\n"), "{shown}");
    assert!(shown.contains("Extensions: \n                permit-pty\n"), "{shown}");
    let until = Timestamp::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap().to_rfc3339();
    assert!(shown.contains(&format!("to {}", until.trim_end_matches('Z'))), "valid_before is the credential's end: {shown}");
    assert_eq!(app.lease_shown(&dana, lease).await["expires_at"], v["expires_at"], "and the lease's");
    assert_eq!(ssh(&sshd, &key, &cert).unwrap(), "stint-ssh-ok");
    let log = std::fs::read_to_string(&sshd.log).unwrap();
    assert!(log.contains(&format!("ID dana lease={lease}")), "sshd logs who it was: {log}");

    // A certificate for another principal does not open root.
    let wrong = dir.join("wrong-cert.pub");
    certify(&app, &dana, "readonly", "1h", &key, &wrong).await;
    let refused = ssh(&sshd, &key, &wrong).unwrap_err();
    assert!(refused.contains("Permission denied"), "{refused}");

    // An expired certificate: issued with the clock two hours back, it ended an hour ago.
    app.clock.set(Timestamp(real_now().0 - 7200));
    let old = dir.join("old-cert.pub");
    certify(&app, &dana, "developer", "1h", &key, &old).await;
    app.clock.set(real_now());
    assert!(ssh(&sshd, &key, &old).unwrap_err().contains("Permission denied"));

    // A revoked certificate: the KRL lists it, and sshd refuses it from then on.
    let (s, r) = app.post(&format!("/v1/leases/{lease}/revoke"), Some(&dana.session), json!({})).await;
    assert_eq!((s.as_u16(), r["revoke_reason"].as_str()), (200, Some("revoked by request")), "{r}");
    fetch_krl(&app, &dir).await;
    let q = run(Command::new("ssh-keygen").arg("-Q").arg("-f").arg(dir.join("revoked.krl")).arg(&cert));
    assert!(!q.status.success() && String::from_utf8_lossy(&q.stdout).contains("REVOKED"), "{q:?}");
    assert!(ssh(&sshd, &key, &cert).unwrap_err().contains("Permission denied"));
    // A new certificate for the same key still works: revocation is per certificate.
    let fresh = dir.join("fresh-cert.pub");
    certify(&app, &dana, "developer", "1h", &key, &fresh).await;
    assert_eq!(ssh(&sshd, &key, &fresh).unwrap(), "stint-ssh-ok");

    // Malformed keys are refused before anything is recorded.
    let before = app.audit_head().await;
    for (bad, code) in [("ssh-dss AAAAB3NzaC1kc3M= x", "unsupported_key_type"), ("not a key", "unsupported_key_type"), ("", "invalid_public_key")] {
        let (s, v) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "backend": "servers", "public_key": bad })).await;
        assert_eq!((s.as_u16(), v["error"].as_str()), (400, Some(code)), "{bad:?}: {v}");
    }
    let (s, v) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "backend": "servers" })).await;
    assert_eq!((s.as_u16(), v["error"].as_str()), (400, Some("public_key_required")), "{v}");
    assert_eq!(app.audit_head().await, before, "refused keys change nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_and_revoking_a_grant_revoke_the_leases_they_covered() {
    let toml = "[approvals]\nroles = [\"admin\"]\napprovers = \"approvers\"\n\
                [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\nadmin = [\"root\"]\n";
    let app = spawn_app_at(Backend::Sqlite, toml, real_now()).await;
    let root = app.admin().await;
    let dana = app.person(&root, "dana", &["developers"]).await;
    let carol = app.person(&root, "carol", &["approvers"]).await;
    let dir = app.data_dir.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let key = keygen(&dir, "id");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let cert = |p: &Person, role: &str| {
        let body = json!({ "role": role, "backend": "servers", "public_key": public });
        let (app, session) = (&app, p.session.clone());
        async move {
            let (s, v) = app.post("/v1/creds", Some(&session), body).await;
            assert_eq!(s, 200, "{v}");
            (v["lease_id"].as_str().unwrap().to_owned(), v["certificate"].as_str().unwrap().to_owned())
        }
    };
    let status = |id: String| {
        let app = &app;
        async move { app.store.lease(&stint_core::ids::LeaseId::parse(&id).unwrap()).await.unwrap().unwrap() }
    };

    // A grant: admin approved for dana; her admin certificate is issued under it.
    let (s, q) = app.post("/v1/requests", Some(&dana.session), json!({ "role": "admin", "reason": "rotate keys", "duration": "30m" })).await;
    assert_eq!(s, 200, "{q}");
    let id = q["id"].as_str().unwrap();
    let (s, v) = app.post(&format!("/v1/requests/{id}/approve"), Some(&carol.session), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (under_grant, grant_cert) = cert(&dana, "admin").await;
    let (plain, plain_cert) = cert(&dana, "developer").await;
    assert_eq!(status(under_grant.clone()).await.grant_id.as_deref(), Some(id));
    let (s, v) = app.post(&format!("/v1/grants/{id}/revoke"), Some(&carol.session), json!({ "reason": "done" })).await;
    assert_eq!(s, 200, "{v}");
    let l = status(under_grant).await;
    assert_eq!((l.revoked_at.is_some(), l.revoke_reason.as_deref()), (true, Some("grant revoked")));
    assert!(status(plain.clone()).await.revoked_at.is_none(), "a lease outside the grant stays");

    // Logging out revokes the session's leases.
    let (s, _) = app.post("/v1/auth/logout", Some(&dana.session), json!({})).await;
    assert!(s.is_success());
    let l = status(plain).await;
    assert_eq!((l.revoked_at.is_some(), l.revoke_reason.as_deref()), (true, Some("logged out")));
    // Both certificates are in the KRL.
    fetch_krl(&app, &dir).await;
    for (name, text) in [("grant-cert.pub", grant_cert), ("plain-cert.pub", plain_cert)] {
        std::fs::write(dir.join(name), format!("{text}\n")).unwrap();
        let q = run(Command::new("ssh-keygen").arg("-Q").arg("-f").arg(dir.join("revoked.krl")).arg(dir.join(name)));
        assert!(!q.status.success() && String::from_utf8_lossy(&q.stdout).contains("REVOKED"), "{name}: {q:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_read_by_its_holder_and_administrators_and_unknown_to_everyone_else() {
    let toml = "[[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n";
    let app = spawn_app_with(Backend::Sqlite, toml).await;
    let root = app.admin().await;
    let dana = app.person(&root, "dana", &["developers"]).await;
    let erin = app.person(&root, "erin", &["developers"]).await;
    let dir = app.data_dir.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let key = keygen(&dir, "id");
    let first = certify(&app, &dana, "developer", "15m", &key, &dir.join("first-cert.pub")).await;
    let second = certify(&app, &dana, "developer", "1h", &key, &dir.join("second-cert.pub")).await;
    let (first, second) = (first["lease_id"].as_str().unwrap(), second["lease_id"].as_str().unwrap());
    let path = |id: &str| format!("/v1/leases/{id}");

    let (s, mine) = app.get(&path(first), Some(&dana.session)).await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!((mine["id"].as_str(), mine["status"].as_str(), mine["subject"].as_str()), (Some(first), Some("active"), Some("dana")));
    assert!(mine.get("certificate").is_none(), "the status, never the credential: {mine}");
    let (s, seen) = app.get(&path(first), Some(&root.session)).await;
    assert_eq!((s, &seen), (StatusCode::OK, &mine), "an administrator reads any lease");

    // Someone else's lease answers exactly as one that does not exist.
    let (s, theirs) = app.get(&path(first), Some(&erin.session)).await;
    let missing = stint_core::ids::LeaseId::random(&mut rand_core::OsRng).to_string();
    let (s2, none) = app.get(&path(&missing), Some(&erin.session)).await;
    assert_eq!((s, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{theirs} {none}");
    assert_eq!(theirs["error"], "unknown_lease");
    assert_eq!(theirs["message"].as_str().unwrap().replace(first, "ID"), none["message"].as_str().unwrap().replace(&missing, "ID"));
    let (s, bad) = app.get(&path("l_nope"), Some(&dana.session)).await;
    assert_eq!((s, bad["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_lease_id")));
    let (s, anon) = app.get(&path(first), None).await;
    assert_eq!((s, anon["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_credentials")));

    // Revoked and expired leases say so.
    let (s, v) = app.post(&format!("/v1/leases/{first}/revoke"), Some(&dana.session), json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (_, revoked) = app.get(&path(first), Some(&dana.session)).await;
    assert_eq!((revoked["status"].as_str(), revoked["revoke_reason"].as_str()), (Some("revoked"), Some("revoked by request")), "{revoked}");
    app.clock.advance(3600);
    let (_, expired) = app.get(&path(second), Some(&dana.session)).await;
    assert!(matches!(expired["status"].as_str(), Some("expiring" | "ended")), "{expired}");

    // A disable counts the leases it revoked: live ones only.
    let third = certify(&app, &erin, "developer", "15m", &key, &dir.join("third-cert.pub")).await;
    let (s, v) = app.post("/v1/users/erin/disable", Some(&root.session), json!({})).await;
    assert_eq!((s, v["leases_revoked"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let (_, gone) = app.get(&path(third["lease_id"].as_str().unwrap()), Some(&root.session)).await;
    assert_eq!(gone["revoke_reason"], "user disabled", "{gone}");
    let (_, listed) = app.get("/v1/users", Some(&root.session)).await;
    assert!(listed.as_array().unwrap().iter().all(|u| u.get("leases_revoked").is_none()), "only a disable answers the count: {listed}");
}

/// A backend standing in for one whose issuance overlaps a revocation: while it "creates"
/// the credential, the lease is revoked (as a concurrent logout would). Real backends cannot
/// be paused at that point, hence this stand-in.
struct RevokedMidway {
    store: std::sync::Arc<dyn stint_core::store::Store>,
    ended: std::sync::Mutex<Vec<(String, i64)>>,
}

#[async_trait::async_trait]
impl stint_core::backend::Backend for RevokedMidway {
    fn kind(&self) -> stint_core::model::BackendKind {
        stint_core::model::BackendKind::Postgres
    }
    fn roles(&self) -> Vec<stint_core::ids::RoleName> {
        vec![stint_core::ids::RoleName::parse("readonly").unwrap()]
    }
    fn external_id(&self, lease: &stint_core::model::Lease) -> String {
        format!("role_{}", lease.id)
    }
    async fn issue(&self, lease: &stint_core::backend::AuthorizedLease) -> stint_core::error::Result<stint_core::backend::Credential> {
        use stint_core::store::{Change, Mutation};
        let revoke = Mutation::RevokeLeases {
            scope: stint_core::model::LeaseScope::Lease(lease.id.clone()),
            at: lease.issued_at,
            reason: "logged out".into(),
            recorded_by: None,
        };
        self.store.apply(Change::default().with(revoke)).await?;
        Ok(stint_core::backend::Credential::new(lease.expires_at).secret("password", stint_core::secret::SecretString::new("s3cret-s3cret".into())))
    }
    async fn end(&self, lease: &stint_core::model::Lease, revoked: bool) -> stint_core::error::Result<()> {
        assert!(revoked);
        self.ended.lock().unwrap().push((lease.id.to_string(), lease.revoked_at.unwrap().0));
        Ok(())
    }
}

/// A second broker on `app`'s store and configuration, with stand-in `backends` (real backends
/// cannot be paused mid-issuance, nor configured without the systems they reach).
fn broker_beside(app: &TestApp, backends: std::collections::BTreeMap<String, std::sync::Arc<dyn stint_core::backend::Backend>>) -> stint_core::broker::Broker {
    let cfg = stint_server::config::Config::load(Some(&app.data_dir.join("stint.toml")), Default::default()).unwrap();
    let (kek, _) = stint_core::crypto::MasterKey::generate(&mut rand_core::OsRng);
    let work = std::sync::Arc::new(stint_core::broker::InlinePasswordWork::new(&mut rand_core::OsRng).unwrap());
    stint_core::broker::Broker::new(
        cfg.broker,
        app.store.clone(),
        std::sync::Arc::new(app.clock.clone()),
        stint_core::broker::os_entropy(),
        kek,
        work,
        std::sync::Arc::new(stint_core::broker::NoObserver),
    )
    .with_backends(backends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_revoked_while_it_is_made_is_ended_again_and_not_handed_out() {
    use stint_core::broker::LeaseAsk;
    let app = spawn_app_with(Backend::Sqlite, "").await;
    let root = app.admin().await;
    let vic = app.person(&root, "vic", &[]).await;
    let backend = std::sync::Arc::new(RevokedMidway { store: app.store.clone(), ended: Default::default() });
    let broker = broker_beside(&app, [("db".to_owned(), backend.clone() as std::sync::Arc<dyn stint_core::backend::Backend>)].into());
    let caller = broker.authenticate(&vic.session).await.unwrap();
    let e = broker.lease(&caller, LeaseAsk { role: "readonly".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), "lease_revoked");
    let ended = backend.ended.lock().unwrap().clone();
    assert_eq!(ended.len(), 1, "ended again once the credential existed");
    let now = stint_core::Clock::now(&app.clock).0;
    assert!(ended[0].1 > now, "with a cut-off after the credential was made: {ended:?}");
}

/// The preconditions an issuance commits with: on both stores, a lease is not recorded for a
/// revoked session or a grant no longer approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_not_recorded_for_a_revoked_session_or_grant() {
    use stint_core::store::{Change, Mutation};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app_with(backend, "").await;
        let root = app.admin().await;
        let vic = app.person(&root, "vic", &[]).await;
        let (s, _) = app.post("/v1/auth/logout", Some(&vic.session), json!({})).await;
        assert!(s.is_success());
        let session = stint_core::ids::SessionId::parse(&vic.session_id).unwrap();
        let now = stint_core::Clock::now(&app.clock);
        let e = app.store.apply(Change::default().with(Mutation::RequireLiveSession { session, at: now })).await.unwrap_err();
        assert_eq!(e.code(), "session_revoked", "{backend:?}");
        let live = stint_core::ids::SessionId::parse(&root.session_id).unwrap();
        app.store.apply(Change::default().with(Mutation::RequireLiveSession { session: live, at: now })).await.expect("a live session passes");
        let e = app.store.apply(Change::default().with(Mutation::RequireApprovedGrant { id: "req_nosuchgrant".into() })).await.unwrap_err();
        assert_eq!(e.code(), "grant_revoked", "{backend:?}");
    }
}

/// A backend that is only named: choosing among backends never reaches it.
struct Named(stint_core::model::BackendKind);

#[async_trait::async_trait]
impl stint_core::backend::Backend for Named {
    fn kind(&self) -> stint_core::model::BackendKind {
        self.0
    }
    fn roles(&self) -> Vec<stint_core::ids::RoleName> {
        vec![stint_core::ids::RoleName::parse("readonly").unwrap()]
    }
    fn external_id(&self, lease: &stint_core::model::Lease) -> String {
        lease.id.to_string()
    }
    async fn issue(&self, _: &stint_core::backend::AuthorizedLease) -> stint_core::error::Result<stint_core::backend::Credential> {
        unreachable!("the test never chooses this backend")
    }
    async fn end(&self, _: &stint_core::model::Lease, _: bool) -> stint_core::error::Result<()> {
        Ok(())
    }
}

/// A role with several backends needs one named; the refusal lists all of them, the SSH one
/// included, and says where SSH certificates come from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_a_backend_lists_every_one_and_points_to_ssh_cert() {
    use stint_core::broker::LeaseAsk;
    use stint_core::model::BackendKind;
    let toml = "[[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\nreadonly = [\"ro\"]\n";
    let app = spawn_app_with(Backend::Sqlite, toml).await;
    let root = app.admin().await;
    let wes = app.person(&root, "wes", &[]).await;
    let named = |k| std::sync::Arc::new(Named(k)) as std::sync::Arc<dyn stint_core::backend::Backend>;
    let broker = broker_beside(&app, [("appdb".to_owned(), named(BackendKind::Postgres)), ("aws".to_owned(), named(BackendKind::Aws))].into());
    let caller = broker.authenticate(&wes.session).await.unwrap();
    let e = broker.lease(&caller, LeaseAsk { role: "readonly".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), "backend_required");
    let message = e.to_string();
    assert!(message.contains("servers, appdb, aws"), "{message}");
    assert!(message.contains("stint ssh-cert --role readonly --backend servers"), "{message}");
}
