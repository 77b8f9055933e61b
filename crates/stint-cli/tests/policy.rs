//! `stint policy test` as the real binary: the shipped suite for the default policies, single
//! questions (with groups given or looked up in the store), a team's policy files, and
//! invalid policies refused at start with their file and line.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Output, Stdio};

use common::stint;
use serde_json::Value;
use stint_testkit::workspace_root;

fn run(args: &[&str]) -> Output {
    stint().args(args).env_remove("STINT_CONFIG").stdin(Stdio::null()).output().unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_default_suite_passes_and_a_wrong_expectation_fails() {
    let suite = workspace_root().join("policies/tests/defaults.toml");
    let o = run(&["policy", "test", "--suite", suite.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("7 cases, 0 failed"), "{}", out(&o));

    let dir = std::env::temp_dir().join(format!("stint-policy-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, "[[case]]\nname = \"developers get admin\"\nuser = \"alice\"\ngroups = [\"developers\"]\nrole = \"admin\"\nexpect = \"allow\"\n")
        .unwrap();
    let o = run(&["policy", "test", "--suite", wrong.to_str().unwrap(), "-o", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v[0]["passed"].as_bool(), v[0]["decision"]["allowed"].as_bool()), (Some(false), Some(false)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn team_policies_answer_questions_about_time_and_context() {
    let dir = std::env::temp_dir().join(format!("stint-policy-team-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("stint.toml");
    let examples = workspace_root().join("policies/examples");
    std::fs::write(&config, format!("[policy]\nfiles = [{:?}]\n", examples.display().to_string())).unwrap();
    let cfg = config.to_str().unwrap();
    let ask = |extra: &[&str]| {
        let mut args = vec!["policy", "test", "--config", cfg, "--user", "root", "--group", "admins", "--role", "admin"];
        args.extend_from_slice(extra);
        run(&args)
    };
    // Saturday 03:00 UTC: the night forbid wins over the admins' default grant.
    let o = ask(&["--at", "2026-11-28T03:00:00Z"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("DENY") && out(&o).contains("forbidden by: admin: not at night without break-glass"), "{}", out(&o));
    let o = ask(&["--at", "2026-11-28T03:00:00Z", "--break-glass"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("permitted by: admin: approved request or break-glass, admin: group admins"), "{}", out(&o));
    let o = ask(&["--at", "2026-11-26T12:00:00Z", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["decision"]["allowed"], true, "noon: {v}");
    // On call, alice may deploy; not otherwise.
    let alice = |extra: &[&str]| {
        let mut args = vec!["policy", "test", "--config", cfg, "--user", "alice", "--group", "staff", "--role", "developer"];
        args.extend_from_slice(extra);
        run(&args).status.code()
    };
    assert_eq!(alice(&[]), Some(2));
    assert_eq!(alice(&["--on-call"]), Some(0));

    // A policy that does not validate stops the server from starting, naming file and line.
    let bad = dir.join("bad.cedar");
    std::fs::write(&bad, "// a comment\npermit(principal, action, resource)\nwhen { context.oncall };\n").unwrap();
    std::fs::write(&config, format!("[policy]\nfiles = [{:?}]\n", bad.display().to_string())).unwrap();
    let o = run(&["config", "check", "--config", cfg]);
    assert!(!o.status.success());
    assert!(out(&o).contains(&format!("{}:3:", bad.display())) && out(&o).contains("oncall"), "{}", out(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_users_groups_come_from_the_store_when_not_given() {
    let dir = std::env::temp_dir().join(format!("stint-policy-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = run(&["policy", "test", "--data", dir.to_str().unwrap(), "--user", "alice", "--role", "developer"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("no stint database") && out(&o).contains("--group"), "{}", out(&o));
}
