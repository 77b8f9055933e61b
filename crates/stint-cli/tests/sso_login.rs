//! `stint login` through a real OpenID Provider, run as the real binary: the browser flow
//! through the CLI's own loopback listener, the device flow with its polling, then
//! `stint creds` (cached) and `stint exec`, and their refusal once the session is gone.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{ok_json, start_server_on, stint};
use serde_json::Value;
use stint_testkit::{browse, free_port, Idp};

/// Starts `stint args…` as the person whose CLI state lives in `home`; its stderr lines
/// arrive on the receiver as they are printed.
fn spawn(home: &Path, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = stint()
        .args(args)
        .env("STINT_CONFIG_DIR", home)
        .env("STINT_CACHE_DIR", home.join("cache"))
        .env_remove("STINT_SERVER")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Reads stderr lines until one satisfies `pick`, within 30 s.
fn line_matching(rx: &Receiver<String>, what: &str, pick: impl Fn(&str) -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("the CLI never printed {what}"));
        if let Some(v) = pick(&line) {
            return v;
        }
    }
}

/// Waits (polling, with a deadline) for the child to exit; returns its stdout as JSON.
fn finished(mut child: Child, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the CLI did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stint failed: {:?}", out.status);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `stint`, with the cache in `home` too; returns stdout, or the stderr of a failure.
fn stint_in(home: &Path, args: &[&str]) -> Result<String, String> {
    let out = stint()
        .args(args)
        .env("STINT_CONFIG_DIR", home)
        .env("STINT_CACHE_DIR", home.join("cache"))
        .env_remove("STINT_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_browser_and_device_login_then_creds_and_exec() {
    let root = std::env::temp_dir().join(format!("stint-sso-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (idp_port, port) = (free_port(), free_port());
    let config = root.join("stint.toml");
    let secret = root.join("client-secret");
    std::fs::write(&secret, stint_testkit::IDP_CLIENT_SECRET).unwrap();
    std::fs::write(
        &config,
        format!(
            "[[identity.oidc]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:{idp_port}\"\nclient_id = \"stint\"\n\
             client_secret_file = {secret:?}\ndanger_allow_http_loopback = true\n\
             scopes = [\"openid\", \"email\", \"groups\"]\n[identity.oidc.roles]\ndevelopers = [\"developer\"]\n"
        ),
    )
    .unwrap();
    let (server, _) = start_server_on(port, &root.join("data"), &["--config", config.to_str().unwrap()], "debug");
    let url = server.url.clone();
    let _idp = Idp::start(idp_port, &format!("{url}/v1/sso/callback"), "k1");
    let mut secrets = vec![];

    // Browser: SSO is the default once the server has a provider. Without a display the CLI
    // prints the URL; the browser stand-in signs in and is sent to the CLI's listener.
    let alice = root.join("alice");
    let (child, rx) = spawn(&alice, &["login", "--server", &url, "-o", "json"]);
    let auth_url = line_matching(&rx, "the sign-in URL", |l| l.trim().starts_with("http://127.0.0.1").then(|| l.trim().to_owned()));
    let loopback =
        line_matching(&rx, "its loopback address", |l| l.strip_prefix("Waiting for your browser at ").and_then(|r| r.split(' ').next()).map(String::from));
    let landing = browse(&auth_url, &loopback, Some(("alice", "alice-password"))).await;
    let page = reqwest::get(&landing.url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("signed in to stint as alice"));
    let login = finished(child, Duration::from_secs(30));
    assert_eq!(login["username"], "alice");
    secrets.push(landing.query["code"].clone());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(alice.join("session.json")).unwrap()).unwrap();
    secrets.push(saved["session_token"].as_str().unwrap().to_owned());

    // creds: cached while fresh, so tools can call it as often as they like.
    let first: Value = serde_json::from_str(&stint_in(&alice, &["creds", "--role", "developer", "--ttl", "30m"]).unwrap()).unwrap();
    let again: Value = serde_json::from_str(&stint_in(&alice, &["creds", "--role", "developer", "--ttl", "30m"]).unwrap()).unwrap();
    assert_eq!(first["jti"], again["jti"], "served from the cache");
    // One private directory for alice's identity, one private file per credential.
    let mode = |p: &std::path::Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
    let identity = std::fs::read_dir(alice.join("cache")).unwrap().next().unwrap().unwrap().path();
    let cached = std::fs::read_dir(&identity).unwrap().next().unwrap().unwrap().path();
    assert_eq!((mode(&identity), mode(&cached)), (0o700, 0o600));
    // --no-cache: a new credential, which is not kept either.
    let fresh: Value = serde_json::from_str(&stint_in(&alice, &["creds", "--role", "developer", "--ttl", "30m", "--no-cache"]).unwrap()).unwrap();
    assert_ne!(first["jti"], fresh["jti"]);
    let (token, uncached) = (first["token"].as_str().unwrap().to_owned(), fresh["token"].as_str().unwrap().to_owned());
    secrets.extend([token.clone(), uncached.clone()]);
    let env = stint_in(&alice, &["creds", "--role", "developer", "--ttl", "30m", "--format", "env"]).unwrap();
    assert!(env.contains(&format!("export STINT_TOKEN='{token}'")) && env.contains("export STINT_ROLE='developer'"), "{env}");
    assert!(!env.contains(&uncached), "the --no-cache credential was not cached");
    let refused = stint_in(&alice, &["creds", "--role", "developer", "--format", "credential-process"]).unwrap_err();
    assert!(refused.contains("AWS keys") && refused.contains("--format env or json"), "{refused}");

    // exec: the command sees the credential in its environment.
    let out = stint_in(&alice, &["exec", "--role", "developer", "--ttl", "30m", "--", "sh", "-c", "printf '%s %s' \"$STINT_ROLE\" \"$STINT_TOKEN\""]).unwrap();
    assert_eq!(out, format!("developer {token}"));

    // Device: the CLI shows a code; the person enters it on stint's page from another device.
    let carol = root.join("carol");
    let (child, rx) = spawn(&carol, &["login", "--device", "--server", &url, "-o", "json"]);
    let user_code = line_matching(&rx, "the user code", |l| {
        let t = l.trim();
        (t.len() == 9 && t.as_bytes()[4] == b'-').then(|| t.to_owned())
    });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The page shows the login the code names first; its confirm button goes on.
    let page = http.post(format!("{url}/v1/sso/device")).form(&[("user_code", user_code.as_str())]).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"confirm\""));
    let resp = http.post(format!("{url}/v1/sso/device")).form(&[("user_code", user_code.as_str()), ("confirm", "yes")]).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let to_provider = resp.headers()["location"].to_str().unwrap().to_owned();
    let callback = browse(&to_provider, &format!("{url}/v1/sso/callback"), Some(("carol", "carol-password"))).await;
    let page = http.get(&callback.url).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("signed in to stint as <b>carol</b>"));
    // The CLI polls every 5 s (RFC 8628's default interval): allow a few rounds.
    let login = finished(child, Duration::from_secs(60));
    assert_eq!(login["username"], "carol");
    let who = ok_json(&carol, &["whoami", "-o", "json"], None);
    assert_eq!(who["username"], "carol");

    // Once the session is over, credentials stop and the message says what to do.
    let session = carol.join("session.json");
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    secrets.push(saved["session_token"].as_str().unwrap().to_owned());
    saved["expires_at"] = Value::String("2020-01-01T00:00:00Z".into());
    std::fs::write(&session, saved.to_string()).unwrap();
    let ended = stint_in(&carol, &["creds", "--role", "readonly"]).unwrap_err();
    assert!(ended.contains("run `stint login`"), "{ended}");
    stint_in(&alice, &["logout"]).unwrap();
    let out = stint_in(&alice, &["creds", "--role", "developer", "--ttl", "30m"]).unwrap_err();
    assert!(out.contains("not logged in; run `stint login`"), "{out}");
    assert!(std::fs::read_dir(alice.join("cache")).unwrap().next().is_none(), "logout clears the credential cache");

    // No login code, session or credential reached the server's log.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("stint server ready"), "the log is being captured");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a secret leaked into the server log");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// Moving a team from local users to SSO without recreating anyone: an administrator links
/// dave, a local user, to his sign-in at the provider (`stint user link`); his next
/// `stint login` through the provider is dave, with dave's groups. A sign-in is linked once.
/// On the way, the user commands for a contractor's account (`--expires`, `--sponsor`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_links_a_local_user_to_their_sso_sign_in() {
    let root = std::env::temp_dir().join(format!("stint-sso-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (idp_port, port) = (free_port(), free_port());
    let config = root.join("stint.toml");
    std::fs::write(
        &config,
        format!(
            "[[identity.oidc]]\nname = \"corp\"\nissuer = \"http://127.0.0.1:{idp_port}\"\nclient_id = \"stint\"\n\
             danger_client_secret = {:?}\ndanger_allow_http_loopback = true\nscopes = [\"openid\", \"email\"]\n",
            stint_testkit::IDP_CLIENT_SECRET
        ),
    )
    .unwrap();
    let (server, bootstrap) = start_server_on(port, &root.join("data"), &["--config", config.to_str().unwrap()], "info");
    let url = server.url.clone();
    let _idp = Idp::start(idp_port, &format!("{url}/v1/sso/callback"), "k1");
    let admin = root.join("admin");
    let b = ok_json(&admin, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    common::enroll_and_login(&url, &admin, "root", b["enrollment_code"].as_str().unwrap());
    ok_json(&admin, &["user", "add", "dave", "--group", "developers", "-o", "json"], None);
    // A contractor's account: an end and a sponsor, shown by `stint user list`, then cleared.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let day = stint_core::Timestamp(now + 100 * 86_400).to_rfc3339()[..10].to_owned();
    let ends = stint_core::Timestamp::parse_end(&day).unwrap().to_rfc3339();
    ok_json(&admin, &["user", "add", "vic", "--expires", &day, "--sponsor", "root", "-o", "json"], None);
    let list = stint_in(&admin, &["user", "list"]).unwrap();
    let vic = list.lines().find(|l| l.starts_with("vic ")).unwrap_or_else(|| panic!("{list}"));
    assert!(vic.contains(&format!("{ends} (sponsor root)")), "through the day named: {list}");
    let missing = stint_in(&admin, &["user", "add", "val", "--expires", &day]).unwrap_err();
    assert!(missing.contains("--sponsor"), "an end needs a sponsor: {missing}");
    let never = ok_json(&admin, &["user", "expiry", "vic", "--never", "-o", "json"], None);
    assert!(never.get("expires_at").is_none(), "{never}");

    let linked = ok_json(&admin, &["user", "link", "dave", "--provider", "corp", "--subject", "alice", "-o", "json"], None);
    assert_eq!(linked["name"], "dave", "{linked}");
    let again = stint_in(&admin, &["user", "link", "root", "--provider", "corp", "--subject", "alice"]).unwrap_err();
    assert!(again.contains("identity_exists") || again.contains("already"), "a sign-in is linked once: {again}");
    let help = String::from_utf8(stint().args(["user", "link", "--help"]).output().unwrap().stdout).unwrap();
    assert!(help.contains("--provider") && help.contains("--subject"), "{help}");

    // alice's sign-in at the provider is dave now.
    let dave = root.join("dave");
    let (child, rx) = spawn(&dave, &["login", "--server", &url, "-o", "json"]);
    let auth_url = line_matching(&rx, "the sign-in URL", |l| l.trim().starts_with("http://127.0.0.1").then(|| l.trim().to_owned()));
    let loopback =
        line_matching(&rx, "its loopback address", |l| l.strip_prefix("Waiting for your browser at ").and_then(|r| r.split(' ').next()).map(String::from));
    let landing = browse(&auth_url, &loopback, Some(("alice", "alice-password"))).await;
    reqwest::get(&landing.url).await.unwrap();
    let login = finished(child, Duration::from_secs(30));
    assert_eq!(login["username"], "dave", "{login}");
    let who = ok_json(&dave, &["whoami", "-o", "json"], None);
    assert!(who["groups"].as_array().is_some_and(|g| g.iter().any(|x| x == "developers")), "dave's groups: {who}");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
