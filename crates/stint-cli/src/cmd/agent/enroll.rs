//! Enrollment: the agent proves who it is once (a join token, or a platform token) to register
//! the public half of its key, and again with a new key when the server revokes the old one
//! and a platform token allows it.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rand_core::OsRng;
use stint_core::crypto::SigningKey;
use stint_core::secret::SecretString;

use super::api::ApiError;
use super::runner::{now, problem, Agent, Config, Enrolled, Proof};
use super::state::{self, Identity};

impl Agent {
    /// Uses the saved identity if it matches this server, workload and key; else enrolls.
    /// Retries while the server is out of reach; a refusal is an error for the operator.
    pub async fn start(&self, key: SigningKey) -> Result<()> {
        let saved = state::read_identity(&self.cfg.state_dir)?;
        let matches = |id: &Identity| id.server == self.cfg.server && id.workload == self.cfg.workload.as_str() && id.key_id == key.kid();
        match saved {
            Some(identity) if matches(&identity) => {
                tracing::info!(workload = %self.cfg.workload, key_id = %identity.key_id, "using the enrolled identity in {}", self.cfg.state_dir.display());
                self.set_enrolled(Enrolled { key, identity });
            }
            _ => self.enroll(key).await?,
        }
        self.resolve_role()
    }

    fn set_enrolled(&self, e: Enrolled) {
        let key_id = e.identity.key_id.clone();
        *self.enrolled.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(e));
        self.update_status(|s| s.key_id = Some(key_id));
    }

    /// The role to ask for: `--role`, else the workload's only one.
    fn resolve_role(&self) -> Result<()> {
        let roles = self.current().map(|e| e.identity.roles.clone()).unwrap_or_default();
        let role = match (&self.cfg.role, roles.as_slice()) {
            (Some(r), _) => r.clone(),
            (None, [only]) => only.clone(),
            (None, []) => bail!("workload {} has no role; grant it one (`stint workload add … --role ROLE`) or name it with --role", self.cfg.workload),
            (None, many) => bail!("workload {} has several roles ({}); name one with --role", self.cfg.workload, many.join(", ")),
        };
        self.update_status(|s| s.role = Some(role.clone()));
        *self.role.write().unwrap_or_else(std::sync::PoisonError::into_inner) = role;
        Ok(())
    }

    /// Enrolls `key` with the join or platform token, retrying while the server is out of reach.
    async fn enroll(&self, key: SigningKey) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.try_enroll(&key).await {
                Ok(identity) => {
                    state::write_identity(&self.cfg.state_dir, &identity)?;
                    tracing::info!(workload = %self.cfg.workload, key_id = %identity.key_id, by = %identity.enrolled_by, "enrolled");
                    self.set_enrolled(Enrolled { key, identity });
                    return Ok(());
                }
                Err(EnrollError::Fatal(e)) => return Err(e),
                Err(EnrollError::Retry(e)) => {
                    let wait = super::schedule::backoff(failures);
                    failures += 1;
                    tracing::warn!(code = e.code(), "cannot enroll yet: {e}; trying again in {wait:?}");
                    self.update_status(|s| s.enroll_error = Some(problem(e.code(), e.message())));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn try_enroll(&self, key: &SigningKey) -> Result<Identity, EnrollError> {
        let audience = self.api.issuer().await?;
        let public = stint_core::workload::encode_public_key(&key.public());
        let (reply, by) = match &self.cfg.proof {
            Proof::JoinToken(f) => (self.api.join(&read_token(f)?, &public).await, "join_token"),
            Proof::PlatformToken(f) => (self.api.attest(self.cfg.workload.as_str(), &read_token(f)?, &public).await, "platform_token"),
        };
        let reply = reply.map_err(|e| match e {
            ApiError::Refused { .. } => EnrollError::Fatal(anyhow::anyhow!("{}", enroll_refusal(&e, &self.cfg))),
            e => EnrollError::Retry(e),
        })?;
        if reply.workload != self.cfg.workload.as_str() {
            return Err(EnrollError::Fatal(anyhow::anyhow!(
                "the server enrolled this key for workload {}, not {}; use a join token made for {} (`stint workload join-token {}`)",
                reply.workload,
                self.cfg.workload,
                self.cfg.workload,
                self.cfg.workload
            )));
        }
        if reply.key_id != key.kid() {
            return Err(EnrollError::Fatal(anyhow::anyhow!(
                "the server enrolled key {} but the agent's key is {}; is --server the right server?",
                reply.key_id,
                key.kid()
            )));
        }
        self.update_status(|s| s.enroll_error = None);
        Ok(Identity {
            server: self.cfg.server.clone(),
            workload: reply.workload,
            key_id: reply.key_id,
            audience,
            roles: reply.roles,
            enrolled_by: by.into(),
            enrolled_at: now().to_rfc3339(),
        })
    }

    /// After `key_revoked` for the key `kid`: with a platform token, a new key is enrolled
    /// (once, however many loops saw the refusal). Returns whether the agent may go on.
    pub(super) async fn reenroll(&self, kid: &str) -> bool {
        let _one = self.enrolling.lock().await;
        if self.current().is_some_and(|e| e.key.kid() != kid) {
            return true;
        }
        // The revoked key is useless: forget the identity and replace the key, so that the
        // next enrollment (now, or at a restart with a new join token) registers a new one.
        if let Err(e) = state::remove(&self.cfg.state_dir.join(state::IDENTITY)) {
            tracing::warn!("cannot remove the revoked identity: {e}");
        }
        let key = match state::new_key(&self.cfg.state_dir, &mut OsRng) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("cannot make a new key: {e:#}");
                return false;
            }
        };
        if !matches!(self.cfg.proof, Proof::PlatformToken(_)) {
            return false;
        }
        tracing::info!(workload = %self.cfg.workload, "the agent's key was revoked; enrolling a new key with the platform token");
        match self.enroll(key).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("{e:#}");
                false
            }
        }
    }
}

enum EnrollError {
    Fatal(anyhow::Error),
    Retry(ApiError),
}

impl From<ApiError> for EnrollError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Refused { .. } => EnrollError::Fatal(anyhow::anyhow!("the server refused to describe itself: {e}; is --server a stint server?")),
            e => EnrollError::Retry(e),
        }
    }
}

impl From<anyhow::Error> for EnrollError {
    fn from(e: anyhow::Error) -> Self {
        EnrollError::Fatal(e)
    }
}

/// A refusal at enrollment, with what the operator does about it.
pub(super) fn enroll_refusal(e: &ApiError, cfg: &Config) -> String {
    let w = &cfg.workload;
    let remedy = match (e.code(), &cfg.proof) {
        ("invalid_join_token" | "join_token_used" | "join_token_expired", Proof::JoinToken(f)) => {
            format!("make a new one (`stint workload join-token {w} --ttl 1h`), write it to {} and start the agent again", f.display())
        }
        ("workload_disabled", _) => format!("enable it (`stint workload enable {w}`) and start the agent again"),
        (_, Proof::PlatformToken(f)) => {
            format!("check that {} holds a current token for workload {w}, and its platform binding (`stint workload show {w}`)", f.display())
        }
        _ => "see the server's log".into(),
    };
    format!("cannot enroll workload {w}: {e}; {remedy}")
}

/// Reads a token file (join or platform token), trimmed.
fn read_token(path: &Path) -> Result<SecretString> {
    let text = SecretString::new(std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?);
    let token = text.expose().trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(SecretString::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stint_core::ids::WorkloadName;

    use super::*;

    #[test]
    fn a_refused_enrollment_says_what_to_do() {
        let cfg = |proof| Config {
            server: "http://127.0.0.1:7807".into(),
            workload: WorkloadName::parse("api").unwrap(),
            proof,
            role: None,
            backend: None,
            ttl: None,
            state_dir: "/tmp/x".into(),
            token_file: None,
            env_file: None,
            ssh: None,
            on_change: None,
            check_interval: Duration::from_secs(30),
        };
        let refused = |code: &str| ApiError::Refused { status: 401, code: code.into(), message: "refused".into() };
        let join = cfg(Proof::JoinToken("/run/join".into()));
        for code in ["join_token_used", "join_token_expired", "invalid_join_token"] {
            let m = enroll_refusal(&refused(code), &join);
            assert!(m.contains(code) && m.contains("stint workload join-token api --ttl 1h") && m.contains("/run/join"), "{m}");
        }
        assert!(enroll_refusal(&refused("workload_disabled"), &join).contains("stint workload enable api"));
        let platform = cfg(Proof::PlatformToken("/var/run/stint/token".into()));
        let m = enroll_refusal(&refused("invalid_platform_token"), &platform);
        assert!(m.contains("/var/run/stint/token") && m.contains("stint workload show api"), "{m}");
    }
}
