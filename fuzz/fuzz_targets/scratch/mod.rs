//! A server's configuration and data directory for a target that runs a real store: in memory
//! (tmpfs where there is one), so the store is real and its fsyncs cheap. Shared by the
//! `routes`, `ci_exchange` and `workload_exchange` targets.

use std::path::{Path, PathBuf};

use stint_server::config::{Config, Overrides};

/// Limits a run never reaches, for targets that call the broker many times from one address
/// (`routes` fuzzes the limits instead, so it leaves this unused).
#[allow(dead_code)]
pub const UNLIMITED: &str = "
[limits]
per_address_rate = 1000000
per_address_burst = 1000000
global_rate = 1000000
global_burst = 1000000
keys_per_workload = 1000000
";

/// `toml` loaded as the server loads its file, with the data directory [`data_dir`]`(target)`.
pub fn config(target: &str, toml: &str) -> (Config, PathBuf) {
    let data = data_dir(target);
    let file = data.join("stint.toml");
    std::fs::write(&file, toml).expect("config");
    let cfg = Config::load(Some(&file), Overrides { data_dir: Some(data.clone()), ..Default::default() }).expect("config loads");
    (cfg, data)
}

/// This process's directory, `stint-fuzz-<target>-<pid>`, created; those the target's
/// processes that ended left behind are removed first.
pub fn data_dir(target: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let prefix = format!("stint-fuzz-{target}-");
    for old in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix) {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
    }
    let data = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&data).expect("data dir");
    data
}
