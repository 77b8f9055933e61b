//! Against a real OpenID Provider: panva's oidc-provider (OpenID Certified), run by
//! `tests/oidc/provider.mjs` (installed by scripts/test). The browser's part of the
//! Authorization Code flow is driven with plain HTTP: follow redirects, post the login form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stint_core::oidc::{self, Expected};
use stint_core::secret::SecretString;
use stint_core::Timestamp;
use stint_oidc::Provider;

const SECRET: &str = "stint-test-secret";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_idp(port: u16, redirect_uri: &str, kid: &str) -> Idp {
    let dir = root().join("tests/oidc");
    assert!(dir.join("node_modules/oidc-provider").exists(), "oidc-provider is not installed: run scripts/test (npm ci --prefix tests/oidc)");
    let child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .env("KID", kid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node must be installed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "oidc-provider did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Idp { child, issuer: format!("http://127.0.0.1:{port}") }
}

/// What a login produced: the authorization code and what stint must remember to redeem it.
struct Authorized {
    code: String,
    state: String,
    sent_state: String,
    nonce: String,
    verifier: SecretString,
}

fn random() -> String {
    oidc::pkce_verifier(&mut rand_core::OsRng).expose()[..22].to_owned()
}

/// Plays the browser: authorization request, login form, redirects back to `redirect_uri`.
async fn browser_login(p: &Provider, redirect_uri: &str, user: &str, password: &str) -> Authorized {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let verifier = oidc::pkce_verifier(&mut rand_core::OsRng);
    let (state, nonce) = (random(), random());
    let mut url = reqwest::Url::parse(&p.discovery.authorization_endpoint).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "stint")
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email groups")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &oidc::pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut next = http.get(url.clone());
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
            if to.as_str().starts_with(redirect_uri) {
                let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
                assert!(!q.contains_key("error"), "provider refused: {q:?}");
                return Authorized { code: q["code"].clone(), state: q["state"].clone(), sent_state: state, nonce, verifier };
            }
            next = http.get(to);
            continue;
        }
        let status = resp.status();
        let page = resp.text().await.unwrap();
        assert!(status.is_success(), "{status}: {page}");
        let action = page.split("action=\"").nth(1).and_then(|r| r.split('"').next()).expect("a login form");
        next = http.post(base.join(action).unwrap()).form(&[("login", user), ("password", password)]);
    }
    panic!("too many redirects");
}

fn expected<'a>(issuer: &'a str, nonce: &'a str) -> Expected<'a> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    Expected { issuer, client_id: "stint", nonce: Some(nonce), now: Timestamp(now), skew_secs: 30 }
}

#[tokio::test]
async fn code_flow_with_pkce_yields_verified_identity_and_mfa() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let idp = start_idp(free_port(), &redirect, "k1");
    let p = Provider::discover(&idp.issuer, true).await.unwrap();
    let secret = SecretString::new(SECRET.into());
    let mfa = ["mfa".to_owned(), "otp".to_owned(), "hwk".to_owned()];

    let a = browser_login(&p, &redirect, "alice", "alice-password").await;
    assert_eq!(a.state, a.sent_state, "state comes back unchanged");
    let tokens = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap();
    let id = p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, &a.nonce)).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.claims["email"], "alice@example.com");
    assert_eq!(id.claims["groups"], serde_json::json!(["developers"]));
    assert_eq!(oidc::asserted_mfa(&id, &mfa, &[]).as_deref(), Some("amr:otp"), "alice used a second factor: {:?}", id.claims.get("amr"));

    // The code is single use; a wrong audience or nonce is refused.
    let again = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap_err();
    assert_eq!(again.code(), "sso_code_refused");
    let mut wrong = expected(&idp.issuer, &a.nonce);
    wrong.client_id = "other";
    assert_eq!(p.verify_id_token(&tokens.id_token, &wrong).await.unwrap_err().code(), "id_token_wrong_audience");
    assert_eq!(p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, "not-this-login")).await.unwrap_err().code(), "id_token_nonce_mismatch");

    // A code redeemed with another PKCE verifier is refused.
    let b = browser_login(&p, &redirect, "bob", "bob-password").await;
    let other = oidc::pkce_verifier(&mut rand_core::OsRng);
    assert_eq!(p.exchange_code("stint", &secret, &b.code, &redirect, &other).await.unwrap_err().code(), "sso_code_refused");
    // Bob has no second factor.
    let b = browser_login(&p, &redirect, "bob", "bob-password").await;
    let tokens = p.exchange_code("stint", &secret, &b.code, &redirect, &b.verifier).await.unwrap();
    let id = p.verify_id_token(&tokens.id_token, &expected(&idp.issuer, &b.nonce)).await.unwrap();
    assert_eq!(oidc::asserted_mfa(&id, &mfa, &[]), None, "{:?}", id.claims.get("amr"));
}

#[tokio::test]
async fn key_rotation_and_an_unreachable_provider() {
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let port = free_port();
    let idp = start_idp(port, &redirect, "old");
    let p = Provider::discover(&idp.issuer, true).await.unwrap().with_refetch_interval(Duration::ZERO);
    let a = browser_login(&p, &redirect, "alice", "alice-password").await;
    let secret = SecretString::new(SECRET.into());
    let old_token = p.exchange_code("stint", &secret, &a.code, &redirect, &a.verifier).await.unwrap().id_token;
    assert!(p.verify_id_token(&old_token, &expected(&idp.issuer, &a.nonce)).await.is_ok());

    // The provider restarts with a new key: the cache refetches on the unknown kid.
    drop(idp);
    let idp = start_idp(port, &redirect, "new");
    let a2 = browser_login(&p, &redirect, "alice", "alice-password").await;
    let new_token = p.exchange_code("stint", &secret, &a2.code, &redirect, &a2.verifier).await.unwrap().id_token;
    let id = p.verify_id_token(&new_token, &expected(&idp.issuer, &a2.nonce)).await.unwrap();
    assert_eq!(id.subject, "alice");

    // The provider goes away: discovery fails with a clear error; cached keys still verify.
    drop(idp);
    let e = Provider::discover(&format!("http://127.0.0.1:{port}"), true).await.err().unwrap();
    assert_eq!(e.code(), "idp_unreachable");
    assert!(p.verify_id_token(&new_token, &expected(&format!("http://127.0.0.1:{port}"), &a2.nonce)).await.is_ok());
    assert_eq!(p.refetch().await.unwrap_err().code(), "idp_unreachable");
    assert!(p.verify_id_token(&new_token, &expected(&format!("http://127.0.0.1:{port}"), &a2.nonce)).await.is_ok(), "a failed refetch keeps the keys");
}
