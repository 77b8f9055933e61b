//! Backend credentials from the command line, as the real binary against the real server:
//! the AWS CLI reads stint's `credential_process` output (AWS is the moto emulator),
//! `stint exec` hands the keys to a command, `stint ssh-cert` writes a certificate beside the
//! key, and `stint leases` lists and revokes.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{enroll_and_login, ok_json, run, start_server_with};
use stint_testkit::aws::{aws_cli, Moto};

/// `psql` as the test cluster's administrator; its output.
fn admin_sql(sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Drops the test's group role and every role issued under its prefix, also after a panic.
struct PgCleanup {
    group: String,
    prefix: String,
}

impl Drop for PgCleanup {
    fn drop(&mut self) {
        let sql = format!(
            "DO $$DECLARE r text; BEGIN FOR r IN SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{}') LOOP EXECUTE format('DROP ROLE %I', r); END LOOP; END$$; DROP ROLE IF EXISTS {}",
            self.prefix, self.group
        );
        let _ = Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-X", "-q", "-c", &sql]).output();
    }
}

#[test]
fn credential_process_exec_ssh_cert_and_leases_from_the_command_line() {
    let root = std::env::temp_dir().join(format!("stint-backends-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let moto = Moto::start();
    let arn = moto.create_role("developer");
    // A group role on the test cluster whose members log in with their password.
    let tag = format!("{:x}", rand_core::RngCore::next_u32(&mut rand_core::OsRng));
    let (group, prefix) = (format!("cli_ro_{tag}"), format!("cli{tag}_"));
    admin_sql(&format!("CREATE ROLE {group} NOLOGIN; GRANT stint_password_auth TO {group}"));
    let _cleanup = PgCleanup { group: group.clone(), prefix: prefix.clone() };
    let config = root.join("stint.toml");
    std::fs::write(
        &config,
        format!(
            "[[backends.postgres]]\nname = \"appdb\"\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\nrole_prefix = \"{prefix}\"\n\
             [backends.postgres.roles]\ndeveloper = \"{group}\"\n\
             [[backends.aws]]\nname = \"aws\"\nregion = \"us-east-1\"\nsts_endpoint = \"{m}\"\niam_endpoint = \"{m}\"\ndanger_allow_http_loopback = true\n\
             [backends.aws.roles]\ndeveloper = \"{arn}\"\n\
             [[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n",
            m = moto.url
        ),
    )
    .unwrap();
    // The server's own AWS identity comes from its environment (the standard chain).
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "stint-test-secret");
    let (server, bootstrap) = start_server_with(&root.join("data"), &["--config", config.to_str().unwrap()], "info");
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    let url = server.url.clone();
    let (root_home, dana) = (root.join("root"), root.join("dana"));
    let b = ok_json(&root_home, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    enroll_and_login(&url, &root_home, "root", b["enrollment_code"].as_str().unwrap());
    let code = ok_json(&root_home, &["user", "add", "dana", "--group", "developers", "-o", "json"], None)["enrollment_code"].as_str().unwrap().to_owned();
    enroll_and_login(&url, &dana, "dana", &code);

    // whoami lists the role's backends.
    let who = ok_json(&dana, &["whoami", "-o", "json"], None);
    let dev = who["roles"].as_array().unwrap().iter().find(|r| r["role"] == "developer").unwrap();
    let kinds: Vec<&str> = dev["backends"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ssh", "postgres", "aws"], "{dev}");

    // exec: psql logs in as the lease's own role, from the environment stint sets.
    let out = run(&dana, &["exec", "--role", "developer", "--backend", "appdb", "--", "psql", "-X", "-A", "-t", "-c", "SELECT current_user"], None);
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(user.starts_with(&format!("{prefix}dana_")), "{user:?} {}", String::from_utf8_lossy(&out.stderr));
    let pg = ok_json(&dana, &["creds", "--role", "developer", "--backend", "appdb"], None);
    assert_eq!(pg["username"], user.as_str(), "served from the cache");
    let pg_password = pg["password"].as_str().unwrap().to_owned();
    let without_backend = run(&dana, &["creds", "--role", "developer"], None);
    assert!(String::from_utf8_lossy(&without_backend.stderr).contains("choose one with --backend"), "{without_backend:?}");

    // The AWS CLI runs `stint creds --format credential-process` itself and calls "AWS" with the keys.
    let aws_config = root.join("aws-config");
    let cache = root.join("cache");
    std::fs::write(
        &aws_config,
        format!(
            "[profile stint-dev]\nregion = us-east-1\ncredential_process = {} creds --role developer --backend aws --format credential-process\n",
            env!("CARGO_BIN_EXE_stint")
        ),
    )
    .unwrap();
    let caller = |profile: &str| {
        Command::new(aws_cli())
            .args(["sts", "get-caller-identity", "--endpoint-url", &moto.url, "--profile", profile, "--output", "json"])
            .env("AWS_CONFIG_FILE", &aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("STINT_CONFIG_DIR", &dana)
            .env("STINT_CACHE_DIR", &cache)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap()
    };
    let out = caller("stint-dev");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn_seen = me["Arn"].as_str().unwrap().to_owned();
    assert!(arn_seen.contains(":assumed-role/developer/l_"), "{me}");
    // Cached: a second run reuses the same keys (the AWS CLI does not cache process credentials).
    let again: serde_json::Value = serde_json::from_slice(&caller("stint-dev").stdout).unwrap();
    assert_eq!(again["Arn"], me["Arn"]);
    let raw = run(&dana, &["creds", "--role", "developer", "--backend", "aws", "--format", "credential-process"], None);
    let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIA") && v["SessionToken"].is_string() && v["Expiration"].is_string(), "{v}");

    // exec: the command sees AWS_* variables.
    let out = run(&dana, &["exec", "--role", "developer", "--backend", "aws", "--", "sh", "-c", "printf '%s %s' \"$AWS_REGION\" \"$AWS_ACCESS_KEY_ID\""], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("us-east-1 ASIA"), "{text} {}", String::from_utf8_lossy(&out.stderr));

    // ssh-cert writes id-cert.pub beside the key; ssh-keygen reads it.
    let key = root.join("id_ed25519");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&key).status().unwrap().success());
    let pubkey = root.join("id_ed25519.pub");
    let c = ok_json(&dana, &["ssh-cert", "--role", "developer", "--key", pubkey.to_str().unwrap(), "-o", "json"], None);
    let cert = root.join("id_ed25519-cert.pub");
    assert_eq!(c["certificate_file"], cert.to_str().unwrap());
    let shown = Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Key ID: \"dana lease="), "{shown:?}");

    // leases: both listed; revoke one by id; the ssh one shows revoked.
    let leases = ok_json(&dana, &["leases", "-o", "json"], None);
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.iter().map(|l| l["kind"].as_str().unwrap()).filter(|k| *k == "ssh").count(), 1, "{leases:?}");
    let ssh_lease = c["lease_id"].as_str().unwrap();
    let r = ok_json(&dana, &["leases", "revoke", ssh_lease, "-o", "json"], None);
    assert_eq!(r["revoke_reason"], "revoked by request");
    let text = String::from_utf8_lossy(&run(&dana, &["leases", "--all"], None).stdout).into_owned();
    assert!(text.contains(ssh_lease) && text.contains("revok"), "{text}");
    let refused = run(&dana, &["leases", "--everyone"], None);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("admin"), "{refused:?}");
    // Every lease shows for the administrator, with no secret in the listing.
    let all = ok_json(&root_home, &["leases", "--everyone", "--all", "-o", "json"], None);
    assert!(all.as_array().unwrap().len() >= 2);
    assert!(!all.to_string().contains(v["SecretAccessKey"].as_str().unwrap()));

    // The server's log holds no key secret or session token.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(v["SecretAccessKey"].as_str().unwrap()) && !log.contains(v["SessionToken"].as_str().unwrap()));
    assert!(!log.contains(&pg_password), "no database password in the server's log");

    // Revoking the database lease drops its role.
    let r = ok_json(&dana, &["leases", "revoke", pg["lease_id"].as_str().unwrap(), "-o", "json"], None);
    assert_eq!(r["revoke_reason"], "revoked by request");
    // Ended at once, or by the server's periodic reaper right after if it was mid-run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while admin_sql(&format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")) != "0" {
        assert!(std::time::Instant::now() < deadline, "role {user} was not dropped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
