//! The credential cache of `stint creds` and `stint exec`: one directory per identity (server,
//! user and configuration directory), one file per credential asked for (role, lifetime,
//! backend), mode 0600, like the AWS CLI's own caches.
//!
//! Identities never share a directory, so one person's login or logout never touches another's
//! credentials, and a new session of the same person keeps the leases they still hold (each use
//! asks the server whether the lease is live, so nothing revoked is served).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use stint_api::CredsResponse;

use crate::client::{self, SavedSession};

/// `$STINT_CACHE_DIR`, else `$XDG_CACHE_HOME/stint`, else `~/.cache/stint`.
fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("STINT_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("stint"));
    }
    let home = std::env::var_os("HOME").context("cannot find your home directory; set STINT_CACHE_DIR")?;
    Ok(PathBuf::from(home).join(".cache").join("stint"))
}

/// A short, stable file name for `parts` (which may hold any characters).
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so no two different lists of parts hash alike.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    data_encoding::HEXLOWER.encode(&h.finalize()[..12])
}

/// The directory of one identity's credentials.
fn identity_dir(base: &Path, server: &str, username: &str, config_dir: &Path) -> PathBuf {
    // The same directory named two ways (a symlink, a trailing slash) is one identity.
    let config_dir = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_owned());
    base.join(format!("id-{}", digest(&[server, username, &config_dir.to_string_lossy()])))
}

/// One cached credential: where it is kept.
pub struct Entry {
    path: PathBuf,
}

impl Entry {
    /// The entry for this credential of the identity logged in at `server`.
    pub fn new(saved: &SavedSession, server: &str, role: &str, ttl: Option<&str>, backend: Option<&str>) -> Result<Entry> {
        let dir = identity_dir(&cache_dir()?, server, &saved.username, &client::config_dir()?);
        Ok(Entry { path: dir.join(format!("creds-{}.json", digest(&[role, ttl.unwrap_or(""), backend.unwrap_or("")]))) })
    }

    /// The cached credential, if there is one this client can read.
    pub fn read(&self) -> Option<CredsResponse> {
        std::fs::read_to_string(&self.path).ok().and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Best effort: a cache that cannot be written only costs a new credential next time.
    pub fn write(&self, r: &CredsResponse) {
        let Some(dir) = self.path.parent() else { return };
        if stint_os::ensure_private_dir(dir).is_err() {
            return;
        }
        if let Ok(text) = serde_json::to_string(r) {
            let _ = stint_os::write_atomic(&self.path, text.as_bytes());
        }
    }

    /// Forgets the credential (revoked, expired, or refused by the server).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Forgets every credential of the identity of `saved` at `server` (after its logout revoked them).
pub fn clear(saved: &SavedSession, server: &str) {
    let (Ok(base), Ok(config)) = (cache_dir(), client::config_dir()) else { return };
    let dir = identity_dir(&base, server, &saved.username, &config);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("creds-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Only when empty: a credential written meanwhile by another command stays.
    let _ = std::fs::remove_dir(&dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_has_its_own_directory() {
        let base = Path::new("/nonexistent/cache");
        let (a, b) = (Path::new("/nonexistent/a"), Path::new("/nonexistent/b"));
        let dana = identity_dir(base, "https://stint", "dana", a);
        assert_eq!(dana, identity_dir(base, "https://stint", "dana", a), "stable");
        assert_ne!(dana, identity_dir(base, "https://stint", "dana", b), "another configuration directory");
        assert_ne!(dana, identity_dir(base, "https://stint", "erin", a), "another user");
        assert_ne!(dana, identity_dir(base, "https://other", "dana", a), "another server");
        assert!(dana.starts_with(base));
    }

    #[test]
    fn entry_names_do_not_collide_across_field_boundaries() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_ne!(digest(&["dev", "", "aws"]), digest(&["dev", "aws", ""]));
    }
}
