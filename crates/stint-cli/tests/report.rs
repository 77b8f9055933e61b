//! `stint report` as the real binary against the real server, after a team's month in
//! miniature: long-lived keys imported twice, role tokens and SSH certificates issued, an
//! approved request, break-glass, a failed login, and a person offboarded while holding a
//! credential. The HTML page is rendered by headless Chromium (Debian's `chromium`) to a PNG
//! and a PDF, and what a reader would see is checked on both (`tests/report/check_render.py`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{enroll_and_login, ok_json, python, run, start_server_with, PASSWORD};
use serde_json::Value;

const REPORT: &str = include_str!("../../stint-core/tests/fixtures/credential-report/aws.csv");

fn text(home: &Path, args: &[&str]) -> String {
    let out = run(home, args, None);
    assert!(out.status.success(), "stint {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_report_shows_the_before_the_after_and_the_access_review_and_renders_as_a_page() {
    let root = std::env::temp_dir().join(format!("stint-report-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let config = root.join("stint.toml");
    std::fs::write(
        &config,
        "[roles.admin]\ngroups = []\n[approvals]\nroles = [\"admin\"]\napprovers = \"approvers\"\n[break_glass]\ngroup = \"break-glass\"\n\
         [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n",
    )
    .unwrap();
    let (server, bootstrap) = start_server_with(&root.join("data"), &["--config", config.to_str().unwrap()], "info");
    let url = server.url.clone();
    let home = |n: &str| root.join(n);
    let admin = home("root");
    let b = ok_json(&admin, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    enroll_and_login(&url, &admin, "root", b["enrollment_code"].as_str().unwrap());
    let add = |name: &str, groups: &[&str], extra: &[&str]| {
        let mut args = vec!["user", "add", name];
        for g in groups {
            args.extend(["--group", g]);
        }
        args.extend(extra);
        args.extend(["-o", "json"]);
        let code = ok_json(&admin, &args, None)["enrollment_code"].as_str().unwrap().to_owned();
        enroll_and_login(&url, &home(name), name, &code);
    };
    add("alice", &["developers", "break-glass"], &[]);
    add("bob", &["approvers"], &[]);
    let now = stint_core::Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64);
    let ends = stint_core::Timestamp(now.0 + 300 * 86_400).to_rfc3339()[..10].to_owned();
    add("carol", &["developers"], &["--expires", &ends, "--sponsor", "alice"]);
    add("dave", &["developers"], &[]);

    // Before: IAM's credential report 40 days ago (4 active keys), and yesterday with the CI
    // user's two keys deactivated.
    let ago = |days: i64| stint_core::Timestamp(now.0 - days * 86_400).to_rfc3339();
    let (old, new) = (root.join("old.csv"), root.join("new.csv"));
    std::fs::write(&old, REPORT).unwrap();
    std::fs::write(
        &new,
        REPORT.replace(",false,true,2025-06-01T00:00:00+00:00,N/A,N/A,N/A,true,", ",false,false,2025-06-01T00:00:00+00:00,N/A,N/A,N/A,false,"),
    )
    .unwrap();
    for (file, days) in [(&old, 40), (&new, 1)] {
        ok_json(&admin, &["inventory", "import", "aws-credential-report", file.to_str().unwrap(), "--generated-at", &ago(days), "-o", "json"], None);
    }

    // After: a role token, SSH certificates, an approved request, break-glass.
    let key = root.join("id_ed25519");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&key).status().unwrap().success());
    let public = root.join("id_ed25519.pub");
    let public = public.to_str().unwrap();
    ok_json(&home("alice"), &["assume", "developer", "-o", "json"], None);
    ok_json(&home("alice"), &["ssh-cert", "developer", "--key", public, "-o", "json"], None);
    let r = ok_json(&home("alice"), &["request", "admin", "--reason", "rotate the database password", "--for", "30m", "-o", "json"], None);
    ok_json(&home("bob"), &["approve", r["id"].as_str().unwrap(), "-o", "json"], None);
    ok_json(&home("alice"), &["assume", "admin", "-o", "json"], None);
    ok_json(&home("bob"), &["grant", "revoke", r["id"].as_str().unwrap(), "--reason", "done", "-o", "json"], None);
    ok_json(&home("alice"), &["break-glass", "--reason", "payments are down", "--for", "15m", "-o", "json"], None);
    ok_json(&home("alice"), &["assume", "admin", "-o", "json"], None);
    // dave holds a certificate when he is offboarded.
    ok_json(&home("dave"), &["ssh-cert", "developer", "--key", public, "-o", "json"], None);
    ok_json(&admin, &["user", "disable", "dave", "-o", "json"], None);
    // A failed login.
    let failed =
        run(&home("bob"), &["login", "--server", &url, "--user", "bob", "--password-stdin", "--totp", "000000", "-o", "json"], Some("not the password"));
    assert!(!failed.status.success());
    assert_ne!(PASSWORD, "not the password");

    // The disable ends dave's certificate right away; the report shows when it ended.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report: Value = loop {
        let r = ok_json(&admin, &["report", "-o", "json"], None);
        if !r["after"]["offboarding"][0]["seconds_to_revoke"].is_null() || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (before, after) = (&report["before"], &report["after"]);
    assert_eq!(before["baseline"]["active_keys"], 4, "{before}");
    assert_eq!(before["current"]["active_keys"], 2);
    let trend: Vec<u64> = before["trend"].as_array().unwrap().iter().map(|t| t["active_keys"].as_u64().unwrap()).collect();
    assert_eq!(trend, [4, 2], "the last snapshot before the period, then the one in it");

    assert_eq!(after["issued_total"], 5, "alice: a developer token, a certificate, admin twice; dave: a certificate: {after}");
    // alice's certificate, her developer token and her break-glass token; the token of the
    // approved request ended with its grant, dave's certificate with his account.
    assert_eq!(after["active"]["total"], 3, "{after}");
    assert_eq!((after["active"]["by_backend"]["servers"].as_u64(), after["active"]["by_backend"]["token"].as_u64()), (Some(1), Some(2)));
    assert_eq!(after["active"]["by_source"]["person"], 3);
    assert_eq!(after["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(after["approvals"][0]["approvers"], serde_json::json!(["bob"]));
    assert_eq!(after["approvals"][0]["reason"], "rotate the database password");
    assert_eq!((after["approvals"][0]["credentials"].as_u64(), after["approvals"][0]["revoked_by"].as_str()), (Some(1), Some("bob")));
    assert_eq!(after["break_glass"].as_array().unwrap().len(), 1);
    assert_eq!((after["break_glass"][0]["person"].as_str(), after["break_glass"][0]["credentials"].as_u64()), (Some("alice"), Some(1)));
    assert!(after["failed_total"].as_u64().unwrap() >= 1, "{after}");
    assert_eq!(after["sessions"]["started"], 5, "one login each: root, alice, bob, carol, dave: {after}");
    assert_eq!(after["sessions"]["ended_early"], 1, "dave's, by his disable");
    let off = &after["offboarding"][0];
    assert_eq!((off["person"].as_str(), off["by"].as_str(), off["credentials_live"].as_u64()), (Some("dave"), Some("root"), Some(1)), "{off}");
    let took = off["seconds_to_revoke"].as_i64().unwrap_or_else(|| panic!("dave's certificate never ended: {off}"));
    assert!((0..20).contains(&took), "{off}");

    let people: Vec<&Value> = report["review"]["people"].as_array().unwrap().iter().collect();
    let person = |n: &str| *people.iter().find(|p| p["name"] == n).unwrap();
    assert_eq!(person("alice")["could"]["on_request"], serde_json::json!(["admin"]));
    assert_eq!(person("alice")["could"]["break_glass"], serde_json::json!(["admin"]));
    assert!(person("alice")["could"]["standing"].as_array().unwrap().iter().any(|r| r == "developer"));
    assert_eq!(person("bob")["could"]["break_glass"], serde_json::json!([]), "bob is not in the break-glass group");
    assert_eq!((person("dave")["status"].as_str(), person("dave")["could"]["standing"].as_array().unwrap().len()), (Some("disabled"), 0));
    assert_eq!(person("carol")["sponsor"], "alice");
    assert!(person("carol")["expires_at"].as_i64().is_some());

    // Text for people.
    let shown = text(&admin, &["report"]);
    for says in [
        "Before: long-lived AWS access keys",
        "After: short-lived credentials",
        "payments are down",
        "Access review",
        "as they were when the report was generated",
        "admin (on approval)",
        "dave",
    ] {
        assert!(shown.contains(says), "expected {says:?} in:\n{shown}");
    }
    // Flags are checked before anything is sent.
    let bad = run(&admin, &["report", "--since", "last month"], None);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("give an RFC 3339 time or an age like 30d"));
    let backwards = run(&admin, &["report", "--since", "2026-12-02T00:00:00Z", "--as-of", "2026-12-01"], None);
    assert!(!backwards.status.success() && String::from_utf8_lossy(&backwards.stderr).contains("--since must come before --as-of"));
    let dev = run(&home("alice"), &["report"], None);
    assert!(!dev.status.success() && String::from_utf8_lossy(&dev.stderr).contains("admin_required"));

    // The page, rendered by a real browser.
    let html = root.join("report.html");
    std::fs::write(&html, text(&admin, &["report", "--format", "html"])).unwrap();
    let render = Command::new(python())
        .arg(stint_testkit::workspace_root().join("tests/report/check_render.py"))
        .arg(&html)
        .arg(&root)
        .args(["Credentials: before and after stint", "active long-lived keys", "Access review", "payments are down", "rotate the database password"])
        .args(["alice", "carol", "dave", "sponsor alice", "Offboarding: time to revoke", "as they were when the report was generated"])
        .output()
        .unwrap();
    assert!(render.status.success(), "{}{}", String::from_utf8_lossy(&render.stdout), String::from_utf8_lossy(&render.stderr));
    let rendered: Value = serde_json::from_slice(&render.stdout).unwrap();
    assert_eq!(rendered["page_points"], serde_json::json!([595, 842]), "printed on A4: {rendered}");
    assert!(root.join("report.png").metadata().unwrap().len() > 10_000);

    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
