//! Shared pieces of stint's tests: free ports, child processes that die with the test, and
//! the real OpenID Provider (`tests/oidc/provider.mjs`, panva's oidc-provider) with a
//! browser stand-in that follows redirects and posts its login form over plain HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod aws;
pub mod github;
pub mod hostile;
pub mod logs;
pub mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls until something accepts connections on `port`, for at most 30 s.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed when the test lets go of it.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `oidc-provider`. Accounts: `alice`/`alice-password` (MFA: amr pwd+otp, group
/// developers) and `bob`/`bob-password` (no MFA). Client `stint`, secret [`IDP_CLIENT_SECRET`].
pub struct Idp {
    _process: Process,
    pub issuer: String,
}

pub const IDP_CLIENT_ID: &str = "stint";
pub const IDP_CLIENT_SECRET: &str = "stint-test-secret";

impl Idp {
    /// Starts the provider on `port`, accepting `redirect_uri`, signing with key id `kid`.
    pub fn start(port: u16, redirect_uri: &str, kid: &str) -> Idp {
        let dir = workspace_root().join("tests/oidc");
        assert!(dir.join("node_modules/oidc-provider").exists(), "oidc-provider is not installed: run scripts/test (npm ci --prefix tests/oidc)");
        let child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("PORT", port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("KID", kid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed (scripts/test installs it)");
        let process = Process(child);
        wait_for_port(port, "oidc-provider");
        Idp { _process: process, issuer: format!("http://127.0.0.1:{port}") }
    }

    /// One of the provider's test controls (`tests/oidc/provider.mjs`): `accounts/alice/disable`,
    /// `token/down`, `token/up`, `refresh-tokens/off`.
    pub async fn control(&self, what: &str) {
        let resp = reqwest::Client::new().post(format!("{}/admin/{what}", self.issuer)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 204, "the provider refused /admin/{what}");
    }
}

/// What the provider sent back to the redirect URI.
pub struct Callback {
    pub code: String,
    pub state: String,
}

/// Where a browser was sent once it reached a URL starting with the prefix it watched for.
pub struct Landing {
    pub url: String,
    pub query: BTreeMap<String, String>,
}

/// Plays the browser: opens `authorization_url`, posts the login form with `user` and
/// `password`, follows redirects (keeping cookies) until the provider sends it to
/// `redirect_uri`, and returns what it carried.
pub async fn browser_login(authorization_url: &str, redirect_uri: &str, user: &str, password: &str) -> Callback {
    let landing = browse(authorization_url, redirect_uri, Some((user, password))).await;
    let q = landing.query;
    assert!(!q.contains_key("error"), "provider refused: {q:?}");
    Callback { code: q["code"].clone(), state: q["state"].clone() }
}

/// Plays the browser as [`browser_login`] does, following redirects through pages (stint's
/// among them) until one leads to a URL starting with `until`; with `login = None` it
/// presses the provider's Cancel button instead of signing in.
pub async fn browse(start: &str, until: &str, login: Option<(&str, &str)>) -> Landing {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut next = http.get(start);
    for _ in 0..20 {
        let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let resp = next.header("cookie", jar.join("; ")).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            cookies.insert(k.to_owned(), v.to_owned());
        }
        let base = resp.url().clone();
        if resp.status().is_redirection() {
            let to = base.join(resp.headers()["location"].to_str().unwrap()).unwrap();
            if to.as_str().starts_with(until) {
                return Landing { url: to.to_string(), query: to.query_pairs().into_owned().collect() };
            }
            next = http.get(to);
            continue;
        }
        let status = resp.status();
        let page = resp.text().await.unwrap();
        assert!(status.is_success(), "{status}: {page}");
        let actions: Vec<&str> = page.split("action=\"").skip(1).filter_map(|r| r.split('"').next()).collect();
        next = match login {
            Some((user, password)) => {
                let action = actions.first().expect("a login form");
                http.post(base.join(action).unwrap()).form(&[("login", user), ("password", password)])
            }
            None => {
                let action = actions.iter().find(|a| a.ends_with("/abort")).expect("a cancel button");
                http.post(base.join(action).unwrap()).form(&[("cancel", "1")])
            }
        };
    }
    panic!("too many redirects");
}
