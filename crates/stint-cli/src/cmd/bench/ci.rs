//! The CI issuer `stint bench` stands up for the exchange scenarios: discovery and a JWKS on
//! a loopback port, RS256 tokens in GitHub Actions' shape, each with its own `jti`.
//!
//! It signs with a fixed test key (`crates/stint-testkit/keys/rsa-1.pkcs1.b64`) that no real
//! configuration trusts: the bench server is configured with this issuer's loopback URL only.

use std::sync::Arc;

use anyhow::{Context, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use serde_json::json;

const KEY: &str = include_str!("../../../../stint-testkit/keys/rsa-1.pkcs1.b64");
const KID: &str = "bench-1";
const AUDIENCE: &str = "stint";
const SUB: &str = "repo:bench/bench:ref:refs/heads/main";

pub struct BenchIssuer {
    pub url: String,
    key: Arc<RsaKeyPair>,
    _server: tokio::task::JoinHandle<()>,
}

impl BenchIssuer {
    pub async fn start() -> Result<BenchIssuer> {
        let key = Arc::new(RsaKeyPair::from_der(&STANDARD.decode(KEY.trim())?).map_err(|e| anyhow::anyhow!("bench key: {e}"))?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("a loopback port for the bench issuer")?;
        let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
        let jwks = json!({ "keys": [{ "kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": B64.encode(&c.n), "e": B64.encode(&c.e) }] });
        let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/.well-known/jwks"), "id_token_signing_alg_values_supported": ["RS256"] });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(discovery) }))
            .route("/.well-known/jwks", axum::routing::get(move || async move { axum::Json(jwks) }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(BenchIssuer { url, key, _server: server })
    }

    /// The bench server's configuration: this issuer, and a role `deploy` whose trust policy
    /// admits its tokens.
    pub fn config(&self) -> String {
        let host = self.url.trim_start_matches("http://");
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "Federated": self.url },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": { "StringEquals": { format!("{host}:aud"): AUDIENCE, format!("{host}:sub"): SUB } }
            }]
        });
        format!(
            "[[ci.issuer]]\nname = \"bench\"\nurl = \"{}\"\ndanger_allow_http_loopback = true\n\n[roles.deploy]\nmax_ttl = \"15m\"\ntrust_policy = '''{policy}'''\n",
            self.url
        )
    }

    /// `n` distinct tokens valid for the next 30 minutes, signed on every core.
    pub fn mint(&self, n: usize) -> Result<Vec<String>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let header = B64.encode(json!({ "typ": "JWT", "alg": "RS256", "kid": KID }).to_string());
        let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
        let chunk = n.div_ceil(threads.max(1)).max(1);
        let sign = |from: usize, to: usize| -> Result<Vec<String>> {
            let rng = SystemRandom::new();
            let mut sig = vec![0; self.key.public().modulus_len()];
            (from..to)
                .map(|i| {
                    let claims = json!({
                        "iss": self.url, "aud": AUDIENCE, "sub": SUB, "jti": format!("bench-{now}-{i}"),
                        "repository": "bench/bench", "ref": "refs/heads/main", "event_name": "push",
                        "iat": now, "nbf": now - 60, "exp": now + 1800,
                    });
                    let input = format!("{header}.{}", B64.encode(claims.to_string()));
                    self.key.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig).map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
                    Ok(format!("{input}.{}", B64.encode(&sig)))
                })
                .collect()
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).step_by(chunk).map(|from| s.spawn(move || sign(from, (from + chunk).min(n)))).collect();
            let mut out = Vec::with_capacity(n);
            for h in handles {
                out.extend(h.join().map_err(|_| anyhow::anyhow!("a signing thread panicked"))??);
            }
            Ok(out)
        })
    }
}

/// The RFC 8693 form for one token.
pub fn exchange_form(token: &str) -> [(&'static str, String); 4] {
    [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_owned()),
        ("subject_token", token.to_owned()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt".to_owned()),
        ("role", "deploy".to_owned()),
    ]
}
