//! The PostgreSQL backend against the real server on 127.0.0.1:5432: each lease is a login
//! role that `psql` logs in with, with exactly its group's privileges; revocation ends open
//! sessions and refuses new ones; expiry is enforced by PostgreSQL itself (`VALID UNTIL`)
//! and by the reaper, which leaves no role behind.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use stint_core::Timestamp;

/// A database of its own with two group roles, dropped with its roles at the end.
struct Fixture {
    db: String,
    prefix: String,
    ro: String,
    rw: String,
    /// A copy made to clean up with: its own drop does nothing.
    cleaned: bool,
}

async fn admin_client(db: &str) -> tokio_postgres::Client {
    let url = pg_url();
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.dbname(db);
    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.expect("PostgreSQL must be reachable at STINT_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c
}

impl Fixture {
    async fn new() -> Fixture {
        let tag: String = format!("{:x}", rand_core::RngCore::next_u32(&mut rand_core::OsRng));
        let f =
            Fixture { db: format!("stint_be_{tag}"), prefix: format!("st{tag}_"), ro: format!("app_ro_{tag}"), rw: format!("app_rw_{tag}"), cleaned: false };
        let root = admin_client("postgres").await;
        root.batch_execute(&format!("CREATE DATABASE {}", f.db)).await.unwrap();
        root.batch_execute(&format!("CREATE ROLE {} NOLOGIN; CREATE ROLE {} NOLOGIN", f.ro, f.rw)).await.unwrap();
        // Members authenticate with their password on 127.0.0.1 (scripts/test configures
        // pg_hba.conf so): trust would let any password in and prove nothing.
        root.batch_execute(&format!("GRANT stint_password_auth TO {}, {}", f.ro, f.rw))
            .await
            .expect("role stint_password_auth must exist with SCRAM required for its members in pg_hba.conf: run scripts/test");
        let db = admin_client(&f.db).await;
        db.batch_execute(&format!(
            "CREATE TABLE widgets (id int); INSERT INTO widgets VALUES (1), (2);
             GRANT SELECT ON widgets TO {ro}; GRANT SELECT, INSERT ON widgets TO {rw};
             GRANT CREATE ON SCHEMA public TO {rw};",
            ro = f.ro,
            rw = f.rw
        ))
        .await
        .unwrap();
        f
    }

    fn toml(&self) -> String {
        self.toml_with("")
    }

    /// As [`Fixture::toml`], with libpq parameters (`sslmode=…`) in the administrator's URL.
    fn toml_with(&self, params: &str) -> String {
        let url = pg_url();
        let base = url.rsplit_once('/').unwrap().0;
        let query = if params.is_empty() { String::new() } else { format!("?{params}") };
        format!(
            "[[backends.postgres]]\nname = \"appdb\"\nurl = \"{base}/{db}{query}\"\nrole_prefix = \"{prefix}\"\nconnection_limit = 3\n[backends.postgres.roles]\nreadonly = \"{ro}\"\ndeveloper = \"{rw}\"\n",
            db = self.db,
            prefix = self.prefix,
            ro = self.ro,
            rw = self.rw
        )
    }

    /// Roles stint created that still exist.
    async fn leftover_roles(&self) -> i64 {
        let c = admin_client("postgres").await;
        c.query_one("SELECT COUNT(*) FROM pg_roles WHERE starts_with(rolname, $1)", &[&self.prefix]).await.unwrap().get(0)
    }

    /// Drops the database and every role the test made, also when the test panicked.
    async fn drop_all(&self) {
        let c = admin_client("postgres").await;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db)).await.unwrap();
        let left: Vec<String> =
            c.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", &[&self.prefix]).await.unwrap().iter().map(|r| r.get(0)).collect();
        for r in left.iter().chain([&self.ro, &self.rw]) {
            c.batch_execute(&format!("DROP ROLE IF EXISTS \"{r}\"")).await.unwrap();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let f = Fixture { db: self.db.clone(), prefix: self.prefix.clone(), ro: self.ro.clone(), rw: self.rw.clone(), cleaned: true };
        // Drop cannot await: clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(f.drop_all());
        })
        .join();
    }
}

/// Runs `psql -c sql` with the credential's environment, as a person would with `stint exec`.
fn psql(cred: &Value, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]).env_clear().env("PATH", std::env::var("PATH").unwrap());
    for (var, key) in cred["env"].as_object().unwrap() {
        cmd.env(var, cred[key.as_str().unwrap()].as_str().unwrap());
    }
    let out = cmd.output().expect("psql must be installed (postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn creds(app: &TestApp, p: &Person, role: &str, ttl: &str) -> Value {
    let (s, v) = app.post("/v1/creds", Some(&p.session), json!({ "role": role, "ttl": ttl })).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Polls `f` until it returns true, failing after `limit`.
async fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_log_in_with_their_groups_privileges_and_end_completely() {
    let fx = Fixture::new().await;
    let app = spawn_app_at(Backend::Sqlite, &fx.toml(), real_now()).await;
    let admin = app.admin().await;
    let dev = app.person(&admin, "dana", &["developers"]).await;
    let viewer = app.person(&admin, "vic", &[]).await;

    // A developer's credential: psql logs in, reads and writes (its group's grants).
    let d = creds(&app, &dev, "developer", "30m").await;
    assert_eq!((d["backend"].as_str(), d["kind"].as_str()), (Some("appdb"), Some("postgres")));
    let user = d["username"].as_str().unwrap().to_owned();
    assert!(user.starts_with(&format!("{}dana_", fx.prefix)), "{user}");
    assert_eq!(psql(&d, "SELECT count(*) FROM widgets").unwrap(), "2");
    let mut wrong = d.clone();
    wrong["password"] = json!("not-the-password");
    let refused = psql(&wrong, "SELECT 1").unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "PostgreSQL must check passwords of stint_password_auth members (scripts/test sets pg_hba.conf): {refused}"
    );
    psql(&d, "INSERT INTO widgets VALUES (3)").unwrap();
    psql(&d, "CREATE TABLE dana_notes (t text)").unwrap();
    // Exactly the group's privileges: not a superuser, cannot create roles, limited sessions.
    assert_eq!(psql(&d, "SELECT rolsuper, rolcreaterole, rolconnlimit FROM pg_roles WHERE rolname = current_user").unwrap(), "f|f|3");
    let membership = psql(&d, "SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user").unwrap();
    assert_eq!(membership, fx.rw);
    // The password reached PostgreSQL only as a SCRAM verifier.
    let c = admin_client(&fx.db).await;
    let stored: String = c.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&user]).await.unwrap().get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$16:") && !stored.contains(d["password"].as_str().unwrap()));
    let until: Option<std::time::SystemTime> = c.query_one("SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", &[&user]).await.unwrap().get(0);
    let until = until.unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(Timestamp(until).to_rfc3339(), d["expires_at"].as_str().unwrap(), "VALID UNTIL is the credential's end");
    assert_eq!(app.lease_shown(&dev, d["lease_id"].as_str().unwrap()).await["expires_at"], d["expires_at"], "and the lease's");

    // A readonly credential reads but cannot write.
    let r = creds(&app, &viewer, "readonly", "30m").await;
    assert_eq!(psql(&r, "SELECT count(*) FROM widgets").unwrap(), "3");
    let denied = psql(&r, "INSERT INTO widgets VALUES (4)").unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");

    // Both leases are listed, with no secret.
    let (s, all) = app.get("/v1/leases?everyone=true", Some(&admin.session)).await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(!all.to_string().contains(d["password"].as_str().unwrap()));
    let (s, mine) = app.get("/v1/leases", Some(&viewer.session)).await;
    assert_eq!((s.as_u16(), mine.as_array().unwrap().len()), (200, 1));
    let (s, v) = app.get("/v1/leases?everyone=true", Some(&viewer.session)).await;
    assert_eq!(s, 403, "{v}");

    // Revoking the developer's lease ends its open session and refuses new logins.
    let mut cfg: tokio_postgres::Config = format!("postgres://{}@127.0.0.1:5432/{}", user, fx.db).parse().unwrap();
    cfg.password(d["password"].as_str().unwrap());
    let (open, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    open.simple_query("SELECT 1").await.unwrap();
    let lease = d["lease_id"].as_str().unwrap();
    let started = Instant::now();
    let (s, v) = app.post(&format!("/v1/leases/{lease}/revoke"), Some(&dev.session), json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    app.settle().await;
    let took = started.elapsed();
    assert!(open.simple_query("SELECT 1").await.is_err(), "the open session was terminated");
    let _ = conn.await;
    let refused = psql(&d, "SELECT 1").unwrap_err();
    assert!(refused.contains(&format!("role \"{user}\" does not exist")), "the role is gone: {refused}");
    // What the role owned went to its group, so the data outlives the credential.
    let owner: String = c.query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'dana_notes'", &[]).await.unwrap().get(0);
    assert_eq!(owner, fx.rw);
    eprintln!("revoking one PostgreSQL lease took {took:?}");

    // Someone else's lease is not yours to revoke.
    let rl = r["lease_id"].as_str().unwrap();
    let (s, v) = app.post(&format!("/v1/leases/{rl}/revoke"), Some(&dev.session), json!({})).await;
    assert_eq!((s.as_u16(), v["error"].as_str()), (403, Some("not_your_lease")), "{v}");
    let refused = app.store.audit_after(0, 10_000).await.unwrap().into_iter().filter(|r| r.event == "request.refused" && r.reason == "not_your_lease").count();
    assert_eq!(refused, 1, "the refusal is audited");

    // Expiry: once the lease's end passes, the reaper drops the role.
    app.clock.advance(31 * 60);
    let reaped = app.state.broker.reap().await.unwrap();
    assert!(reaped.ran && reaped.ended == 1 && reaped.failed == 0, "{reaped:?}");
    assert_eq!(fx.leftover_roles().await, 0, "the reaper leaves no role behind");
    let (_, all) = app.get("/v1/leases?everyone=true&all=true", Some(&admin.session)).await;
    let statuses: Vec<&str> = all.as_array().unwrap().iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "revoked").count() + statuses.iter().filter(|s| **s == "ended").count(), 2, "{all}");

    // Every issuance and end is audited by lease id, never with the password.
    let records = app.store.audit_after(0, 10_000).await.unwrap();
    let text = serde_json::to_string(&records.iter().map(|r| (&r.event, &r.subject, &r.details)).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains(d["password"].as_str().unwrap()) && !text.contains(r["password"].as_str().unwrap()));
    for (event, subject) in [("credential.issued", lease), ("lease.revoked", lease), ("lease.ended", lease), ("lease.ended", rl)] {
        assert!(records.iter().any(|x| x.event == event && x.subject == subject), "{event} {subject}");
    }
    drop(app);
}

/// With `sslmode=verify-full` in its URL, stint's administrator sessions are encrypted and the
/// server's certificate checked; a certificate from another CA fails the request closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_administrator_connects_with_verified_tls() {
    let ca = stint_testkit::tls::postgres_serving_test_certificate(&pg_url());
    let fx = Fixture::new().await;
    let app = spawn_app_with(Backend::Sqlite, &fx.toml_with(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))).await;
    let admin = app.admin().await;
    let viewer = app.person(&admin, "vic", &[]).await;
    let r = creds(&app, &viewer, "readonly", "30m").await;
    assert_eq!(psql(&r, "SELECT count(*) FROM widgets").unwrap(), "2");
    let c = admin_client("postgres").await;
    let row = c
        .query_one(
            "SELECT COUNT(*), COALESCE(bool_and(s.ssl), false) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND a.application_name = 'stint'",
            &[&fx.db],
        )
        .await
        .unwrap();
    let (sessions, encrypted): (i64, bool) = (row.get(0), row.get(1));
    assert!(sessions >= 1 && encrypted, "stint's administrator sessions: {sessions}, all encrypted: {encrypted}");
    drop(app);

    let roles_before = fx.leftover_roles().await;
    let wrong = std::env::temp_dir().join(format!("stint-wrong-ca-{}.pem", fx.prefix));
    std::fs::write(&wrong, stint_testkit::tls::TestCa::new("not the database's CA").pem()).unwrap();
    let app = spawn_app_with(Backend::Sqlite, &fx.toml_with(&format!("sslmode=verify-full&sslrootcert={}", wrong.display()))).await;
    let admin = app.admin().await;
    let viewer = app.person(&admin, "vic", &[]).await;
    let (s, v) = app.post("/v1/creds", Some(&viewer.session), json!({ "role": "readonly" })).await;
    std::fs::remove_file(&wrong).unwrap();
    assert_eq!((s.as_u16(), v["error"].as_str()), (502, Some("backend_unavailable")), "{v}");
    assert_eq!(fx.leftover_roles().await, roles_before, "no role was created through an unverified connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_itself_refuses_a_credential_after_its_end() {
    let fx = Fixture::new().await;
    let app = spawn_app_with(Backend::Sqlite, &fx.toml()).await;
    let admin = app.admin().await;
    let viewer = app.person(&admin, "vic", &[]).await;
    // The test clock runs 55 s behind: a 60 s lease ends 5 s from now in real time, and
    // PostgreSQL (which reads the real clock) refuses the password then, with no reaper.
    app.clock.set(Timestamp(real_now().0 - 55));
    let r = creds(&app, &viewer, "readonly", "1m").await;
    assert_eq!(psql(&r, "SELECT 1").unwrap(), "1");
    eventually(Duration::from_secs(30), "PostgreSQL refuses the expired password", || psql(&r, "SELECT 1").is_err()).await;
    assert!(psql(&r, "SELECT 1").unwrap_err().contains("password authentication failed"));
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_the_request_and_leaves_nothing_live() {
    let toml = "[[backends.postgres]]\nname = \"gone\"\nurl = \"postgres://nobody@127.0.0.1:1/nowhere\"\n[backends.postgres.roles]\nreadonly = \"app_ro\"\n";
    let app = spawn_app_with(Backend::Sqlite, toml).await;
    let admin = app.admin().await;
    let viewer = app.person(&admin, "vic", &[]).await;
    let (s, v) = app.post("/v1/creds", Some(&viewer.session), json!({ "role": "readonly" })).await;
    assert_eq!((s.as_u16(), v["error"].as_str()), (502, Some("backend_unavailable")), "{v}");
    let (_, leases) = app.get("/v1/leases?all=true", Some(&viewer.session)).await;
    assert_eq!(leases[0]["status"], "revoking", "the failed lease is left for the reaper to clean up: {leases}");
    let events: Vec<String> = app.store.audit_after(0, 1000).await.unwrap().into_iter().map(|r| r.event).collect();
    assert!(events.contains(&"credential.failed".to_owned()));
    // Unknown backend, and a role the backend does not serve: clear 4xx.
    let (s, v) = app.post("/v1/creds", Some(&viewer.session), json!({ "role": "readonly", "backend": "nope" })).await;
    assert_eq!((s.as_u16(), v["error"].as_str()), (404, Some("unknown_backend")), "{v}");
    let (s, v) = app.post("/v1/creds", Some(&admin.session), json!({ "role": "admin", "backend": "gone" })).await;
    assert_eq!((s.as_u16(), v["error"].as_str()), (403, Some("role_not_on_backend")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reaper_runs_among_replicas_sharing_a_store() {
    use stint_core::store::{Change, Mutation};
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app_with(backend, "").await;
        let now = Timestamp(1_900_000_000);
        let claim = |holder: &str, now: Timestamp| {
            Change::default().with(Mutation::ClaimLock { name: "reaper".into(), holder: holder.into(), until: Timestamp(now.0 + 30), now })
        };
        app.store.apply(claim("a", now)).await.unwrap();
        let held = app.store.apply(claim("b", Timestamp(now.0 + 10))).await.unwrap_err();
        assert_eq!(held.code(), "lock_held", "{backend:?}");
        app.store.apply(claim("a", Timestamp(now.0 + 20))).await.expect("the holder renews");
        app.store.apply(claim("b", Timestamp(now.0 + 51))).await.expect("another replica takes over once the claim lapsed");
        // The server's own reaper does not run while another replica holds the lock.
        app.clock.set(Timestamp(now.0 + 52));
        assert!(!app.state.broker.reap().await.unwrap().ran, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_person_revokes_their_aws_database_ssh_and_token_credentials_at_once() {
    let fx = Fixture::new().await;
    // AWS is the emulator (moto): stint calls it with credentials from its environment.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "stint-test-secret");
    let moto = stint_testkit::aws::Moto::start();
    let arn = moto.create_role("developer");
    let toml = format!(
        "{}[[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n\
         [[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
         [backends.aws.roles]\ndeveloper = \"{arn}\"\n",
        fx.toml(),
        m = moto.url
    );
    let app = spawn_app_at(Backend::Sqlite, &toml, real_now()).await;
    let admin = app.admin().await;
    let dana = app.person(&admin, "dana", &["developers"]).await;

    // Dana holds a database credential with an open session, an SSH certificate and a token.
    let db = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "ttl": "1h", "backend": "appdb" })).await.1;
    let (s, aws) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "ttl": "1h", "backend": "aws" })).await;
    assert_eq!(s, 200, "{aws}");
    let mut cfg: tokio_postgres::Config = format!("postgres://{}@127.0.0.1:5432/{}", db["username"].as_str().unwrap(), fx.db).parse().unwrap();
    cfg.password(db["password"].as_str().unwrap());
    let (open, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    open.simple_query("SELECT 1").await.unwrap();
    let dir = app.data_dir.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status().unwrap().success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let (s, cert) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "backend": "servers", "public_key": public })).await;
    assert_eq!(s, 200, "{cert}");
    std::fs::write(dir.join("id-cert.pub"), format!("{}\n", cert["certificate"].as_str().unwrap())).unwrap();
    let (s, tok) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer", "backend": "token" })).await;
    assert_eq!(s, 200, "{tok}");
    let token = tok["token"].as_str().unwrap();
    assert_eq!(app.introspect(token).await["active"], true);

    let started = Instant::now();
    let (s, v) = app.post("/v1/users/dana/disable", Some(&admin.session), json!({})).await;
    assert_eq!(s, 200, "{v}");
    app.settle().await;
    let took = started.elapsed();
    eprintln!("disabling a person with an AWS, a database, an SSH and a token credential took {took:?}");

    // Token: inactive. Database: open session gone, role gone. SSH: in the KRL.
    assert_eq!(app.introspect(token).await["active"], false);
    assert!(open.simple_query("SELECT 1").await.is_err(), "the open database session was terminated");
    let _ = conn.await;
    assert!(psql(&db, "SELECT 1").is_err());
    assert_eq!(fx.leftover_roles().await, 0);
    let krl = app.http.get(app.url("/v1/ssh/krl")).send().await.unwrap().bytes().await.unwrap();
    std::fs::write(dir.join("krl"), &krl).unwrap();
    let q = Command::new("ssh-keygen").arg("-Q").arg("-f").arg(dir.join("krl")).arg(dir.join("id-cert.pub")).output().unwrap();
    assert!(!q.status.success() && String::from_utf8_lossy(&q.stdout).contains("REVOKED"), "{q:?}");
    // AWS cannot recall a key: the deny policy neutralises dana's sessions issued before now.
    let policy: Value = serde_json::from_str(&moto.role_policy("developer", "StintRevokeOlderSessions").expect("a deny policy")).unwrap();
    assert_eq!(policy["Statement"][0]["Condition"]["StringEquals"]["aws:SourceIdentity"], "dana", "{policy}");
    assert!(aws["access_key_id"].as_str().unwrap().starts_with("ASIA"));
    let (_, leases) = app.get("/v1/leases?user=dana&all=true", Some(&admin.session)).await;
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 3);
    assert!(leases.iter().all(|l| l["status"] == "revoked" && l["revoke_reason"] == "user disabled"), "{leases:?}");
    // And nothing new is issued to her.
    let (s, _) = app.post("/v1/creds", Some(&dana.session), json!({ "role": "developer" })).await;
    assert_eq!(s, 401);
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_ends_a_backlog_in_batches_renewing_its_claim() {
    use stint_core::ids::{LeaseId, RoleName};
    use stint_core::model::{BackendKind, Lease};
    use stint_core::store::{Change, Mutation};
    let app = spawn_app_with(Backend::Sqlite, "").await;
    let now = stint_core::Clock::now(&app.clock);
    let mut change = Change::default();
    for i in 0..450 {
        change.mutations.push(Mutation::InsertLease(Lease {
            id: LeaseId::random(&mut rand_core::OsRng),
            backend: "servers".into(),
            kind: BackendKind::Ssh,
            user_id: None,
            subject: "ci:github:repo:acme/infra".into(),
            role: RoleName::parse("readonly").unwrap(),
            session_id: None,
            grant_id: None,
            external_id: (i + 1).to_string(),
            issued_at: Timestamp(now.0 - 600),
            expires_at: Timestamp(now.0 - 1),
            revoked_at: None,
            revoke_reason: None,
            ended_at: None,
            retry_at: None,
        }));
    }
    app.store.apply(change).await.unwrap();
    let r = app.state.broker.reap().await.unwrap();
    assert_eq!((r.ran, r.ended, r.failed), (true, 450, 0), "three batches in one run");
    assert!(app.store.leases_to_end(now, 1000).await.unwrap().is_empty());
    let ended = app.store.audit_after(0, 10_000).await.unwrap().iter().filter(|r| r.event == "lease.ended" && r.reason == "expired").count();
    assert_eq!(ended, 450);
}

/// The administrator the docs ask for: `CREATEROLE` and membership of the group roles, no
/// superuser. It issues, ends open sessions, hands over what the role owned and drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_createrole_administrator_is_enough() {
    let fx = Fixture::new().await;
    let admin_role = format!("{}admin", fx.prefix);
    let root = admin_client("postgres").await;
    root.batch_execute(&format!("CREATE ROLE {admin_role} LOGIN CREATEROLE PASSWORD 'admin-password-for-tests'; GRANT {}, {} TO {admin_role}", fx.ro, fx.rw))
        .await
        .unwrap();
    let toml = fx.toml().replace("url = \"postgres://postgres@", &format!("danger_password = \"admin-password-for-tests\"\nurl = \"postgres://{admin_role}@"));
    assert!(toml.contains(&admin_role), "{toml}");
    let app = spawn_app_at(Backend::Sqlite, &toml, real_now()).await;
    let root_person = app.admin().await;
    let dana = app.person(&root_person, "dana", &["developers"]).await;
    let d = creds(&app, &dana, "developer", "30m").await;
    let user = d["username"].as_str().unwrap().to_owned();
    psql(&d, "CREATE TABLE dana_scratch (t text)").unwrap();
    let mut cfg: tokio_postgres::Config = format!("postgres://{user}@127.0.0.1:5432/{}", fx.db).parse().unwrap();
    cfg.password(d["password"].as_str().unwrap());
    let (open, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let (s, v) = app.post(&format!("/v1/leases/{}/revoke", d["lease_id"].as_str().unwrap()), Some(&dana.session), json!({})).await;
    assert_eq!(s, 200, "{v}");
    app.settle().await;
    let (_, all) = app.get("/v1/leases?all=true", Some(&dana.session)).await;
    assert_eq!(all[0]["status"], "revoked", "ended by the non-superuser administrator: {all}");
    assert!(open.simple_query("SELECT 1").await.is_err(), "its open session was terminated");
    let _ = conn.await;
    assert_eq!(fx.leftover_roles().await, 1, "only the administrator role is left under the prefix");
    let c = admin_client(&fx.db).await;
    let owner: String = c.query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'dana_scratch'", &[]).await.unwrap().get(0);
    assert_eq!(owner, fx.rw);
    drop(app);
}
