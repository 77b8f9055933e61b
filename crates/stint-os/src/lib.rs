//! What stint takes from the operating system: the clock, and files only their owner reads.
//!
//! The server (its data directory, the master key) and the client (the saved session, the
//! credential cache, the agent's state) both need these, and the client-only build has no
//! server, so they live here rather than in either. `stint-core` stays free of I/O: it takes
//! the time through [`stint_core::Clock`], which [`SystemClock`] implements.

use std::io::Write;
use std::path::Path;

use stint_core::{Clock, Timestamp};

/// The system clock, to the second.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Timestamp(secs as i64)
}

/// [`now`] as a [`Clock`], for what takes one (the broker, the backends).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }
}

/// Creates `dir` (0700) and its parents if missing; an existing one is left as it is.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates `path` readable by its owner only (0600); never overwrites.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents)
}

/// Replaces `path` with `contents`, readable by its owner only: written to a 0600 temporary
/// file beside it, synced, then renamed over it, so readers see the old file or the new one,
/// whole. The temporary file is removed if anything fails.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = write_private(&tmp, contents).and_then(|()| std::fs::File::open(&tmp)?.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("stint-os-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_directories_are_their_owners_alone() {
        let base = scratch("private");
        let d = base.join("a/b");
        ensure_private_dir(&d).unwrap();
        ensure_private_dir(&d).expect("an existing directory is fine");
        let f = d.join("key");
        write_private(&f, b"secret").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"secret");
        let again = write_private(&f, b"other").expect_err("never overwrites");
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&f).unwrap(), b"secret");
        #[cfg(unix)]
        assert_eq!((mode(&d), mode(&f)), (0o700, 0o600));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_nothing_behind() {
        let d = scratch("atomic");
        ensure_private_dir(&d).unwrap();
        let f = d.join("state.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        #[cfg(unix)]
        assert_eq!(mode(&f), 0o600);
        assert!(write_atomic(&d.join("missing-dir/x"), b"x").is_err());
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["state.json"], "no temporary file is left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_system_clock_is_the_clock() {
        let (a, b) = (now(), SystemClock.now());
        assert!(a.0 > 1_700_000_000 && b.0 >= a.0 && b.0 - a.0 < 5, "{a:?} {b:?}");
    }
}
