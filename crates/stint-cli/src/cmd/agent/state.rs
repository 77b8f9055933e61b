//! The agent's state directory (0700): its key, its enrolled identity, the endpoint's
//! `Authorization` value, where it listens, and its status for `stint agent status`.
//!
//! Every file is written whole to a temporary file in the same directory and renamed over the
//! old one, mode 0600, so a reader never sees half a file and nobody else reads any.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use stint_core::crypto::SigningKey;
use stint_core::secret::{SecretBytes, SecretString};

pub const KEY: &str = "key";
pub const IDENTITY: &str = "identity.json";
pub const AUTH_TOKEN: &str = "auth-token";
pub const AGENT: &str = "agent.json";
pub const STATUS: &str = "status.json";

/// `$XDG_STATE_HOME/stint/agent/NAME`, else `~/.local/state/stint/agent/NAME`.
pub fn default_dir(workload: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").context("cannot find your home directory; give the agent's directory with --state-dir")?;
            PathBuf::from(home).join(".local").join("state")
        }
    };
    Ok(base.join("stint").join("agent").join(workload))
}

/// Creates `dir` if missing and makes it 0700 (it holds the agent's key).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the agent's state directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (0700); is it yours?", dir.display()))?;
    }
    Ok(())
}

pub use stint_os::write_atomic;

/// Removes `path`; a missing file is not an error.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refuses a secret file others may read, as OpenSSH does.
fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!("{} is readable by others (mode {:o}); run `chmod 600 {}`", path.display(), mode & 0o777, path.display());
        }
    }
    Ok(())
}

/// The agent's Ed25519 key: read from `dir/key`, or generated there (0600) the first time.
/// Returns the key and whether it is new.
pub fn load_or_create_key(dir: &Path, rng: &mut dyn rand_core::CryptoRngCore) -> Result<(SigningKey, bool)> {
    let path = dir.join(KEY);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_private(&path)?;
            let text = SecretString::new(text);
            let seed =
                SecretBytes::new(B64.decode(text.expose().trim()).with_context(|| format!("{} is corrupt; remove it and enroll again", path.display()))?);
            let key = SigningKey::from_seed(seed.expose()).map_err(|_| anyhow::anyhow!("{} is corrupt; remove it and enroll again", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((new_key(dir, rng)?, true)),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Generates a key and saves it in `dir/key` (0600), replacing any old one.
pub fn new_key(dir: &Path, rng: &mut dyn rand_core::CryptoRngCore) -> Result<SigningKey> {
    let path = dir.join(KEY);
    let key = SigningKey::generate(rng);
    let text = SecretString::new(B64.encode(key.seed().expose()));
    write_atomic(&path, text.expose().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

/// Who the agent is, once enrolled: written at enrollment, read at every start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub server: String,
    pub workload: String,
    pub key_id: String,
    /// The server's issuer URL: the audience of the agent's assertions.
    pub audience: String,
    pub roles: Vec<String>,
    /// `join_token` or `platform_token`.
    pub enrolled_by: String,
    pub enrolled_at: String,
}

pub fn read_identity(dir: &Path) -> Result<Option<Identity>> {
    read_json(&dir.join(IDENTITY))
}

pub fn write_identity(dir: &Path, id: &Identity) -> Result<()> {
    write_json(&dir.join(IDENTITY), id)
}

/// A fresh 256-bit `Authorization` value for the endpoint, written to `dir/auth-token` (0600,
/// no trailing newline, since some SDKs send the file's bytes as they are).
pub fn rotate_auth_token(dir: &Path, rng: &mut dyn rand_core::CryptoRngCore) -> Result<SecretString> {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let token = SecretString::new(B64.encode(bytes));
    bytes.fill(0);
    let path = dir.join(AUTH_TOKEN);
    write_atomic(&path, token.expose().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

/// Where a running agent listens, for `stint agent env`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentInfo {
    pub listen: String,
    pub pid: u32,
    pub workload: String,
    pub server: String,
    pub started_at: String,
}

pub fn read_agent(dir: &Path) -> Result<Option<AgentInfo>> {
    read_json(&dir.join(AGENT))
}

pub fn write_agent(dir: &Path, a: &AgentInfo) -> Result<()> {
    write_json(&dir.join(AGENT), a)
}

/// What `stint agent status` shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub workload: String,
    pub server: String,
    pub pid: u32,
    /// The enrolled key, once enrolled.
    pub key_id: Option<String>,
    pub role: Option<String>,
    /// Why the whole agent stopped getting credentials (workload disabled, key revoked).
    pub stopped: Option<Problem>,
    /// The last failure to enroll (the server out of reach, say), until enrolling succeeds.
    pub enroll_error: Option<Problem>,
    pub credentials: Vec<CredentialStatus>,
    pub updated_at: String,
}

/// One credential the agent keeps fresh.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialStatus {
    /// What it is for: `aws-endpoint`, `env-file`, `token-file`.
    pub purpose: Vec<String>,
    /// The backend asked for (default: the role's).
    pub backend: Option<String>,
    pub kind: Option<String>,
    pub lease_id: Option<String>,
    /// `pending`, `live`, `expired` or `revoked`.
    pub state: String,
    pub expires_at: Option<String>,
    pub next_refresh_at: Option<String>,
    pub last_refresh_at: Option<String>,
    pub last_error: Option<Problem>,
}

/// An error with its stable code, and when it happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    pub code: String,
    pub message: String,
    pub at: String,
}

pub fn read_status(dir: &Path) -> Result<Option<Status>> {
    read_json(&dir.join(STATUS))
}

pub fn write_status(dir: &Path, s: &Status) -> Result<()> {
    write_json(&dir.join(STATUS), s)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| format!("{} is corrupt; remove it", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rand_core::OsRng;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("stint-agent-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn writes_are_atomic_and_private() {
        let d = tempdir("atomic");
        ensure_private_dir(&d).unwrap();
        let f = d.join("token");
        write_atomic(&f, b"one").unwrap();
        assert_eq!(mode(&f), 0o600);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "two");
        assert_eq!(mode(&f), 0o600, "the replacement is a new 0600 file");
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["token"], "no temporary file is left behind");
        assert!(write_atomic(&d.join("missing-dir/x"), b"x").is_err());
        remove(&f).unwrap();
        remove(&f).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_state_directory_is_made_private_even_if_it_existed() {
        let d = tempdir("dir").join("nested/agent");
        ensure_private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::remove_dir_all(d.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn the_key_is_generated_once_and_reused() {
        let d = tempdir("key");
        ensure_private_dir(&d).unwrap();
        let (first, created) = load_or_create_key(&d, &mut OsRng).unwrap();
        assert!(created);
        assert_eq!(mode(&d.join(KEY)), 0o600);
        let (again, created) = load_or_create_key(&d, &mut OsRng).unwrap();
        assert!(!created);
        assert_eq!(again.kid(), first.kid());
        std::fs::set_permissions(d.join(KEY), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load_or_create_key(&d, &mut OsRng).err().unwrap().to_string().contains("chmod 600"));
        std::fs::write(d.join(KEY), "junk!").unwrap();
        std::fs::set_permissions(d.join(KEY), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create_key(&d, &mut OsRng).err().unwrap().to_string().contains("corrupt"));
        let replaced = new_key(&d, &mut OsRng).unwrap();
        assert_ne!(replaced.kid(), first.kid());
        assert_eq!(load_or_create_key(&d, &mut OsRng).unwrap().0.kid(), replaced.kid());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_auth_token_is_rotated_private_and_has_no_newline() {
        let d = tempdir("auth");
        ensure_private_dir(&d).unwrap();
        let a = rotate_auth_token(&d, &mut OsRng).unwrap();
        let b = rotate_auth_token(&d, &mut OsRng).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43, "256 bits in base64url");
        assert_eq!(std::fs::read_to_string(d.join(AUTH_TOKEN)).unwrap(), b.expose());
        assert_eq!(mode(&d.join(AUTH_TOKEN)), 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn identity_and_status_round_trip() {
        let d = tempdir("json");
        ensure_private_dir(&d).unwrap();
        assert_eq!(read_identity(&d).unwrap(), None);
        let id = Identity {
            server: "https://stint.example".into(),
            workload: "api".into(),
            key_id: "k".into(),
            audience: "https://stint.example".into(),
            roles: vec!["api-service".into()],
            enrolled_by: "join_token".into(),
            enrolled_at: "2026-01-01T00:00:00Z".into(),
        };
        write_identity(&d, &id).unwrap();
        assert_eq!(read_identity(&d).unwrap(), Some(id));
        let s = Status { workload: "api".into(), credentials: vec![CredentialStatus { state: "live".into(), ..Default::default() }], ..Default::default() };
        write_status(&d, &s).unwrap();
        assert_eq!(read_status(&d).unwrap(), Some(s));
        std::fs::write(d.join(AGENT), "{").unwrap();
        assert!(read_agent(&d).unwrap_err().to_string().contains("corrupt"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
