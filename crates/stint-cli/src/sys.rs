//! What the client takes from the operating system: the time, and files only their owner
//! reads. (The server has its own, for its data directory; the client-only build has no server.)

use std::path::Path;

use stint_core::Timestamp;

/// The system clock, to the second.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Timestamp(secs as i64)
}

/// Creates `path` readable by its owner only; never overwrites.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents)
}

/// Creates `dir` (0700) and its parents if missing; an existing one is left as it is.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}
