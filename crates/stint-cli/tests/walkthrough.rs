//! The README walk-through, run against the real `stint` binary: bootstrap → enroll → login →
//! assume → verify the token with an ordinary JWT library (PyJWT) → disable → audit verify.
//! It also proves no issued secret reaches the server's logs, and that SIGTERM shuts down cleanly.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{enroll_and_login, ok_json, python, run, start_server, start_server_with, stint, PASSWORD};
use serde_json::Value;
use stint_testkit::workspace_root;

#[test]
fn readme_walkthrough_against_the_real_binary() {
    let root = std::env::temp_dir().join(format!("stint-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("data");
    let (admin_home, alice_home) = (root.join("admin"), root.join("alice"));
    let (mut server, bootstrap) = start_server(&data);
    let url = server.url.clone();
    let mut secrets = vec![bootstrap.clone(), PASSWORD.to_owned()];

    // Bootstrap the first administrator, who enrolls and logs in.
    let b = ok_json(&admin_home, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    let code = b["enrollment_code"].as_str().unwrap().to_owned();
    let (root_secret, root_login) = enroll_and_login(&url, &admin_home, "root", &code);
    secrets.extend([code, root_secret]);
    assert_eq!(root_login["username"], "root");

    // The administrator adds alice; she enrolls, logs in, and assumes a role.
    let add = ok_json(&admin_home, &["user", "add", "alice", "--group", "developers", "-o", "json"], None);
    let code = add["enrollment_code"].as_str().unwrap().to_owned();
    let (alice_secret, _) = enroll_and_login(&url, &alice_home, "alice", &code);
    secrets.extend([code, alice_secret]);
    // A wrong password is refused, and counted in the report of failures by reason.
    let wrong = run(&alice_home, &["login", "--server", &url, "--user", "alice", "--password-stdin", "--totp", "000000"], Some("not her password"));
    assert!(!wrong.status.success());
    let report = ok_json(&admin_home, &["audit", "failures", "--since", "1h", "-o", "json"], None);
    assert_eq!(
        report,
        serde_json::json!([{ "method": "password+totp", "provider": "", "reason": "bad_password", "count": 1, "sources": 1, "last_at": report[0]["last_at"] }])
    );
    let who = ok_json(&alice_home, &["whoami", "-o", "json"], None);
    let period = ok_json(&admin_home, &["report", "--since", "1h", "-o", "json"], None);
    assert_eq!(period["after"]["failed_authentications"][0]["reason"], "bad_password", "{period}");
    assert_eq!(period["after"]["break_glass"], serde_json::json!([]));
    assert_eq!(who["username"], "alice");
    let assumed = ok_json(&alice_home, &["assume", "developer", "--ttl", "15m", "-o", "json"], None);
    let token = assumed["token"].as_str().unwrap().to_owned();
    assert_eq!(assumed["expires_in"], 900);
    let session: Value = serde_json::from_str(&std::fs::read_to_string(alice_home.join("session.json")).unwrap()).unwrap();
    secrets.extend([token.clone(), session["session_token"].as_str().unwrap().to_owned()]);

    // Any OIDC-aware library verifies the token through discovery and the JWKS.
    let py = Command::new(python())
        .arg(workspace_root().join("tests/verify_jwt.py"))
        .args([&url, "stint", &token])
        .output()
        .expect("python with PyJWT (run scripts/test)");
    assert!(py.status.success(), "PyJWT refused the token: {}", String::from_utf8_lossy(&py.stderr));
    let claims: Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!((claims["role"].as_str(), claims["sub"].as_str()), (Some("developer"), who["user_id"].as_str()));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);

    // Disabling alice cuts off her token at once.
    let introspect = |t: &str| -> Value {
        let script = "import sys,urllib.request,urllib.parse; d=urllib.parse.urlencode({'token': sys.argv[2]}).encode(); print(urllib.request.urlopen(sys.argv[1], d).read().decode())";
        let out = Command::new(python()).args(["-c", script, &format!("{url}/v1/introspect"), t]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(introspect(&token)["active"], true);
    ok_json(&admin_home, &["user", "disable", "alice", "-o", "json"], None);
    assert_eq!(introspect(&token)["active"], false);
    let refused = run(&alice_home, &["assume", "readonly"], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("session_revoked"), "{}", String::from_utf8_lossy(&refused.stderr));

    // `audit tail --follow` shows a record as it happens.
    let mut follower = stint()
        .args(["audit", "tail", "--follow", "--json", "-n", "1"])
        .env("STINT_CONFIG_DIR", &admin_home)
        .env_remove("STINT_SERVER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let follower_out = BufReader::new(follower.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in follower_out.lines().map_while(Result::ok) {
            if seen_tx.send(line).is_err() {
                return;
            }
        }
    });
    // The newest existing record comes first: once it is printed, the follower is following,
    // so the record below cannot land before the follower has read the head.
    let first = seen_rx.recv_timeout(Duration::from_secs(30)).expect("tail printed the newest record");
    assert!(serde_json::from_str::<Value>(&first).unwrap()["seq"].as_u64().is_some());
    ok_json(&admin_home, &["user", "add", "followed", "-o", "json"], None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let followed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = seen_rx.recv_timeout(left).expect("tail --follow printed the new record before the deadline");
        let record: Value = serde_json::from_str(&line).unwrap();
        if record["event"] == "user.created" && record["details"]["name"] == "followed" {
            break record;
        }
    };
    assert_eq!(followed["outcome"], "success");
    let _ = follower.kill();
    let _ = follower.wait();

    // The audit log verifies through the server…
    let v = ok_json(&admin_home, &["audit", "verify", "-o", "json"], None);
    assert_eq!(v["ok"], true, "{v}");
    let tail = run(&admin_home, &["audit", "tail", "--json", "-n", "1000"], None);
    assert!(tail.status.success());
    let tail = String::from_utf8_lossy(&tail.stdout).to_string();
    assert!(tail.contains("credential.issued") && tail.contains("user.disabled"), "{tail}");

    // …logout revokes on the server, SIGTERM stops the server cleanly…
    let out = run(&admin_home, &["logout"], None);
    assert!(out.status.success());
    assert!(!admin_home.join("session.json").exists());
    let status = Command::new("kill").args(["-TERM", &server.process.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = server.process.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");

    // …and offline, from the data directory alone.
    let data_s = data.to_str().unwrap();
    let v = ok_json(&admin_home, &["audit", "verify", "--data", data_s, "-o", "json"], None);
    assert_eq!(v["ok"], true, "{v}");
    let checked = v["checked"].as_u64().unwrap();
    assert!(checked > 15, "{v}");

    // No issued secret reached the server's log, the audit log, or the CLI's audit output.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("stint server ready"), "the log is being captured: {log}");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a secret leaked into the server log");
        assert!(!tail.contains(s.as_str()), "a secret leaked into the audit log");
    }

    // Removing the newest records is detected through the separately kept chain head.
    let db = data.join("stint.db");
    let backup = root.join("stint.db.bak");
    std::fs::copy(&db, &backup).unwrap();
    let sql = |q: &str| {
        let script = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()";
        assert!(Command::new(python()).args(["-c", script]).arg(&db).arg(q).status().unwrap().success());
    };
    sql("DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 2 FROM audit)");
    let out = run(&admin_home, &["audit", "verify", "--data", data_s, "-o", "json"], None);
    assert_eq!(out.status.code(), Some(2), "truncation exits 2: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["break"]["problem"], "truncated", "{v}");
    std::fs::copy(&backup, &db).unwrap();

    // Editing one record is detected and located.
    sql("UPDATE audit SET actor='mallory' WHERE seq=5");
    let out = run(&admin_home, &["audit", "verify", "--data", data_s, "-o", "json"], None);
    assert_eq!(out.status.code(), Some(2), "tampering exits non-zero");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["break"], serde_json::json!({ "problem": "edited", "seq": 5 }), "{v}");
    let out = run(&admin_home, &["audit", "verify", "--data", data_s], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("record 5 was edited"));

    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// The same binary on PostgreSQL: `--store postgres://…`, JSON logs, and `audit verify --store`.
#[test]
fn postgres_store_json_logs_and_offline_verify() {
    let base = std::env::var("STINT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("stint_walk_{}", std::process::id());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let root = std::env::temp_dir().join(format!("stint-walk-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let home = root.join("admin");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let psql = |sql: String| {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("PostgreSQL at STINT_TEST_POSTGRES_URL");
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        })
    };
    // Operators create the schema a search_path names; stint creates its tables in it.
    psql(format!("CREATE SCHEMA {schema}"));
    let (server, bootstrap) = start_server_with(&root.join("data"), &["--store", &url, "--log-format", "json"], "trace,tokio_postgres::query=trace");
    let b = ok_json(&home, &["bootstrap", "--server", &server.url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    let (_, login) = enroll_and_login(&server.url, &home, "root", b["enrollment_code"].as_str().unwrap());
    assert_eq!(login["username"], "root");
    let token = ok_json(&home, &["assume", "readonly", "-o", "json"], None)["token"].as_str().unwrap().to_owned();
    let users = ok_json(&home, &["user", "list", "-o", "json"], None);
    assert_eq!(users[0]["name"], "root");

    let v = ok_json(&home, &["audit", "verify", "--store", &url, "-o", "json"], None);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["checked"].as_u64().unwrap() >= 8, "{v}");

    let log = std::fs::read_to_string(&server.log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("--log-format json writes JSON lines: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(!log.contains(&token) && !log.contains(&bootstrap) && !log.contains(PASSWORD));
    assert!(!log.contains("$argon2id$") && !log.contains("with parameters"), "database parameters never reach the log");

    drop(server);
    psql(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let _ = std::fs::remove_dir_all(&root);
}
