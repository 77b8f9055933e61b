//! The workload scenario: agents asking for role tokens with assertions their enrolled keys
//! sign, as `stint agent` does (`POST /v1/workload/creds`).

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use stint_core::crypto::SigningKey;
use stint_core::ids::WorkloadName;
use stint_core::workload::{encode_public_key, sign_assertion};

use super::{call, now, MakeRequest};

/// Adds workload `bench-api` (role `readonly`) and enrolls `agents` keys with join tokens.
pub async fn agents(http: &reqwest::Client, url: &str, admin: &str, agents: usize) -> Result<Vec<SigningKey>> {
    call(http, format!("{url}/v1/workloads"), Some(admin), json!({ "name": "bench-api", "roles": ["readonly"] })).await?;
    let mut keys = Vec::with_capacity(agents);
    for _ in 0..agents {
        let t = call(http, format!("{url}/v1/workloads/bench-api/join-tokens"), Some(admin), json!({})).await?;
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let body = json!({ "join_token": t["join_token"], "public_key": encode_public_key(&key.public()) });
        call(http, format!("{url}/v1/workload/join"), None, body).await?;
        keys.push(key);
    }
    Ok(keys)
}

/// Each request signs a fresh assertion (the agent's cost is in the latency, as in life).
pub fn request(url: &str, keys: Arc<Vec<SigningKey>>) -> MakeRequest {
    let (url, name) = (url.to_owned(), WorkloadName::parse("bench-api").unwrap_or_else(|_| unreachable!("a valid name")));
    Arc::new(move |h, i| {
        let a = sign_assertion(&keys[i % keys.len()], &name, &url, now(), &mut rand_core::OsRng);
        h.post(format!("{url}/v1/workload/creds")).json(&json!({ "assertion": a.expose(), "role": "readonly", "backend": "token", "ttl": "5m" }))
    })
}
