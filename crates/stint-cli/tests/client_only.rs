//! The client-only build (`cargo build -p stint-cli --no-default-features`) is a client:
//! neither the server nor its store, nor what only they need, is compiled into it. Every client
//! command speaks to the server through `stint-api`'s types; a `use stint_server::…` outside
//! the `server` feature fails this test (and the build without the feature).

use std::collections::BTreeSet;
use std::process::Command;

/// What the server's side brings: a client must not depend on any of it.
const SERVER_SIDE: [&str; 6] = ["stint-server", "stint-store", "stint-backends", "stint-pgtls", "rusqlite", "tokio-postgres"];

/// The crates `stint-cli` depends on (normal dependencies only, none of the tests'), by name.
fn dependencies(features: &[&str]) -> BTreeSet<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--manifest-path", manifest, "-p", "stint-cli", "-e", "normal", "--prefix", "none", "--offline"])
        .args(features)
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect()
}

#[test]
fn the_client_only_build_depends_on_neither_the_server_nor_its_store() {
    let client = dependencies(&["--no-default-features"]);
    assert!(client.contains("stint-api") && client.contains("stint-core"), "{client:?}");
    for name in SERVER_SIDE {
        assert!(!client.contains(name), "the client-only stint depends on {name}: {client:?}");
    }
    // The default build has them all: the names above are the ones cargo prints.
    let full = dependencies(&[]);
    for name in SERVER_SIDE {
        assert!(full.contains(name), "the default build lost {name}: {full:?}");
    }
}
