//! `stint request`, `requests`, `approve`, `deny`, `grant revoke` and `break-glass` as the real
//! binary against the real server.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{enroll_and_login, ok_json, run, start_server_with};

fn fails_with(home: &Path, args: &[&str], code: &str) {
    let out = run(home, args, None);
    assert!(!out.status.success(), "stint {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(code), "stint {args:?}: {err}");
}

#[test]
fn request_approve_revoke_and_break_glass_from_the_command_line() {
    let root = std::env::temp_dir().join(format!("stint-requests-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let config = root.join("stint.toml");
    std::fs::write(
        &config,
        "[roles.admin]\ngroups = []\n[approvals]\nroles = [\"admin\"]\napprovers = \"approvers\"\n[break_glass]\ngroup = \"break-glass\"\n",
    )
    .unwrap();
    let (server, bootstrap) = start_server_with(&root.join("data"), &["--config", config.to_str().unwrap()], "info");
    let url = server.url.clone();
    let (root_home, alice_home, bob_home) = (root.join("root"), root.join("alice"), root.join("bob"));
    let b = ok_json(&root_home, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    enroll_and_login(&url, &root_home, "root", b["enrollment_code"].as_str().unwrap());
    let add = |name: &str, group: &str| {
        ok_json(&root_home, &["user", "add", name, "--group", group, "-o", "json"], None)["enrollment_code"].as_str().unwrap().to_owned()
    };
    let (alice_code, bob_code) = (add("alice", "break-glass"), add("bob", "approvers"));
    enroll_and_login(&url, &alice_home, "alice", &alice_code);
    enroll_and_login(&url, &bob_home, "bob", &bob_code);

    fails_with(&alice_home, &["assume", "admin"], "role_not_granted");
    let r = ok_json(&alice_home, &["request", "admin", "--reason", "rotate the database password", "--for", "30m", "-o", "json"], None);
    let id = r["id"].as_str().unwrap().to_owned();
    fails_with(&alice_home, &["approve", &id], "approver_required");
    let listed = ok_json(&bob_home, &["requests", "-o", "json"], None);
    assert_eq!(listed[0]["status"], "pending");
    let approved = ok_json(&bob_home, &["approve", &id, "-o", "json"], None);
    assert_eq!(approved["status"], "approved");
    let token = ok_json(&alice_home, &["assume", "admin", "-o", "json"], None);
    assert!(token["expires_in"].as_u64().unwrap() <= 1800);
    ok_json(&bob_home, &["grant", "revoke", &id, "--reason", "done", "-o", "json"], None);
    fails_with(&alice_home, &["assume", "admin"], "role_not_granted");

    let second = ok_json(&alice_home, &["request", "admin", "--reason", "again", "-o", "json"], None);
    let denied = ok_json(&bob_home, &["deny", second["id"].as_str().unwrap(), "--reason", "use developer", "-o", "json"], None);
    assert_eq!(denied["status"], "denied");

    // Break-glass right after a fresh login.
    let glass = ok_json(&alice_home, &["break-glass", "--reason", "payments are down", "--for", "15m", "-o", "json"], None);
    assert_eq!((glass["status"].as_str(), glass["break_glass"].as_bool()), (Some("approved"), Some(true)));
    assert_eq!(ok_json(&alice_home, &["assume", "admin", "-o", "json"], None)["role"], "admin");
    fails_with(&bob_home, &["break-glass", "--reason", "me too"], "not_break_glass_member");
    let report = ok_json(&root_home, &["report", "--since", "1h", "-o", "json"], None);
    assert_eq!(report["after"]["break_glass"].as_array().unwrap().len(), 1, "{report}");
    let approvals = report["after"]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "the denied request is not an approval: {report}");
    assert_eq!((approvals[0]["revoked_by"].as_str(), approvals[0]["credentials"].as_u64()), (Some("bob"), Some(1)));
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
