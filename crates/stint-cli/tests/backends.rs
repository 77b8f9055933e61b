//! Backend credentials from the command line, as the real binary against the real server:
//! the AWS CLI reads stint's `credential_process` output (AWS is the moto emulator),
//! `stint exec` hands the keys to a command, `stint ssh-cert` writes a certificate beside the
//! key, and `stint leases` lists and revokes.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{enroll_and_login, enroll_and_login_with_cache, ok_json, ok_json_with_cache, run, run_with_cache, start_server_with_env, Server};
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

/// A stint server whose role `developer` has credentials on the test cluster (`appdb`), on AWS
/// (moto, `aws`) and as SSH certificates (`servers`); its administrator, logged in. Everything
/// is removed when it is dropped.
struct Setup {
    root: PathBuf,
    url: String,
    admin: PathBuf,
    prefix: String,
    server: Option<Server>,
    moto: Moto,
    _cleanup: PgCleanup,
}

impl Setup {
    fn start(name: &str) -> Setup {
        let root = std::env::temp_dir().join(format!("stint-{name}-{}", std::process::id()));
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
        let env = [("AWS_ACCESS_KEY_ID", "AKIASTINTTESTSTINT01"), ("AWS_SECRET_ACCESS_KEY", "stint-test-secret")];
        let (server, bootstrap) = start_server_with_env(&root.join("data"), &["--config", config.to_str().unwrap()], &env);
        let url = server.url.clone();
        let admin = root.join("root");
        let b = ok_json(&admin, &["bootstrap", "--server", &url, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
        enroll_and_login(&url, &admin, "root", b["enrollment_code"].as_str().unwrap());
        Setup { root, url, admin, prefix, server: Some(server), moto, _cleanup }
    }

    /// A new developer, enrolled and logged in with their state in a directory of their own
    /// and their credential cache in `cache`; the directory.
    fn developer(&self, name: &str, cache: &Path) -> PathBuf {
        let home = self.root.join(name);
        let code = ok_json(&self.admin, &["user", "add", name, "--group", "developers", "-o", "json"], None)["enrollment_code"].as_str().unwrap().to_owned();
        enroll_and_login_with_cache(&self.url, &home, cache, name, &code);
        home
    }

    /// An AWS config whose profiles run `stint creds` themselves: `stint-dev`, and
    /// `stint-offline` (with `--offline`).
    fn aws_config(&self) -> PathBuf {
        let path = self.root.join("aws-config");
        let process = format!("{} creds developer --backend aws --format credential-process", env!("CARGO_BIN_EXE_stint"));
        let text = format!(
            "[profile stint-dev]\nregion = us-east-1\ncredential_process = {process}\n\
             [profile stint-offline]\nregion = us-east-1\ncredential_process = {process} --offline\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `aws sts get-caller-identity` with `profile`, as the person of `home` with `cache`.
    fn aws(&self, home: &Path, cache: &Path, profile: &str) -> std::process::Output {
        Command::new(aws_cli())
            .args(["sts", "get-caller-identity", "--endpoint-url", &self.moto.url, "--profile", profile, "--output", "json"])
            .env("AWS_CONFIG_FILE", self.aws_config())
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("STINT_CONFIG_DIR", home)
            .env("STINT_CACHE_DIR", cache)
            .env_remove("STINT_SERVER")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .output()
            .unwrap()
    }

    /// The ARN the AWS CLI acted as (`…:assumed-role/developer/<lease id>`).
    fn aws_arn(&self, home: &Path, cache: &Path, profile: &str) -> String {
        let out = self.aws(home, cache, profile);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let arn = me["Arn"].as_str().unwrap().to_owned();
        assert!(arn.contains(":assumed-role/developer/l_"), "{me}");
        arn
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.server.as_ref().unwrap().log).unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The lease ids `stint leases` lists for the person of `home`, of one kind.
fn lease_ids(home: &Path, kind: &str) -> Vec<String> {
    let leases = ok_json(home, &["leases", "-o", "json"], None);
    leases.as_array().unwrap().iter().filter(|l| l["kind"] == kind).map(|l| l["id"].as_str().unwrap().to_owned()).collect()
}

/// The credential files in a cache directory (any identity's).
fn cached_files(cache: &Path) -> usize {
    let Ok(ids) = std::fs::read_dir(cache) else { return 0 };
    ids.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|f| f.flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("creds-"))
        .count()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn credential_process_exec_ssh_cert_and_leases_from_the_command_line() {
    let setup = Setup::start("backends-cli");
    let (root_home, root, prefix) = (&setup.admin, &setup.root, &setup.prefix);
    let cache = root.join("dana").join("cache");
    let dana = setup.developer("dana", &cache);

    // whoami lists the role's backends, in JSON and for people.
    let who = ok_json(&dana, &["whoami", "-o", "json"], None);
    let dev = who["roles"].as_array().unwrap().iter().find(|r| r["role"] == "developer").unwrap();
    let kinds: Vec<&str> = dev["backends"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ssh", "postgres", "aws"], "{dev}");
    let text = String::from_utf8_lossy(&run(&dana, &["whoami"], None).stdout).into_owned();
    let line = text.lines().find(|l| l.trim_start().starts_with("developer")).unwrap_or_default();
    assert!(line.ends_with("backends: servers (ssh), appdb (postgres), aws (aws)"), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("readonly") && !l.contains("backends")), "{text}");

    // exec: psql logs in as the lease's own role, from the environment stint sets.
    let out = run(&dana, &["exec", "developer", "--backend", "appdb", "--", "psql", "-X", "-A", "-t", "-c", "SELECT current_user"], None);
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(user.starts_with(&format!("{prefix}dana_")), "{user:?} {}", stderr(&out));
    let pg = ok_json(&dana, &["creds", "--role", "developer", "--backend", "appdb"], None);
    assert_eq!(pg["username"], user.as_str(), "served from the cache, whichever way the role is named");
    let pg_password = pg["password"].as_str().unwrap().to_owned();
    let without_backend = run(&dana, &["creds", "--role", "developer"], None);
    assert!(stderr(&without_backend).contains("choose one with --backend"), "{without_backend:?}");
    // The role as an argument or a flag, but one role.
    let two = run(&dana, &["creds", "developer", "--role", "readonly"], None);
    assert!(!two.status.success() && stderr(&two).contains("two roles named, developer and --role readonly"), "{two:?}");
    let none = run(&dana, &["exec", "--backend", "appdb", "--", "true"], None);
    assert!(!none.status.success() && stderr(&none).contains("name the role"), "{none:?}");
    let assumed = ok_json(&dana, &["assume", "--role", "readonly", "-o", "json"], None);
    assert_eq!(assumed["role"], "readonly");

    // The AWS CLI runs `stint creds --format credential-process` itself and calls "AWS" with the keys.
    let arn_seen = setup.aws_arn(&dana, &cache, "stint-dev");
    // Cached: a second run reuses the same keys (the AWS CLI does not cache process credentials).
    assert_eq!(setup.aws_arn(&dana, &cache, "stint-dev"), arn_seen);
    let raw = run(&dana, &["creds", "--role", "developer", "--backend", "aws", "--format", "credential-process"], None);
    let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert!(v["AccessKeyId"].as_str().unwrap().starts_with("ASIA") && v["SessionToken"].is_string() && v["Expiration"].is_string(), "{v}");

    // exec: the command sees AWS_* variables.
    let out = run(&dana, &["exec", "--role", "developer", "--backend", "aws", "--", "sh", "-c", "printf '%s %s' \"$AWS_REGION\" \"$AWS_ACCESS_KEY_ID\""], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("us-east-1 ASIA"), "{text} {}", stderr(&out));

    // ssh-cert writes id-cert.pub beside the key; ssh-keygen reads it.
    let key = root.join("id_ed25519");
    assert!(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&key).status().unwrap().success());
    let pubkey = root.join("id_ed25519.pub");
    let c = ok_json(&dana, &["ssh-cert", "developer", "--key", pubkey.to_str().unwrap(), "-o", "json"], None);
    let cert = root.join("id_ed25519-cert.pub");
    assert_eq!(c["certificate_file"], cert.to_str().unwrap());
    let shown = Command::new("ssh-keygen").arg("-L").arg("-f").arg(&cert).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Key ID: \"dana lease="), "{shown:?}");

    // leases: both listed; revoke one by id; the ssh one shows revoked.
    assert_eq!(lease_ids(&dana, "ssh").len(), 1);
    let ssh_lease = c["lease_id"].as_str().unwrap();
    let r = ok_json(&dana, &["leases", "revoke", ssh_lease, "-o", "json"], None);
    assert_eq!(r["revoke_reason"], "revoked by request");
    let text = String::from_utf8_lossy(&run(&dana, &["leases", "--all"], None).stdout).into_owned();
    assert!(text.contains(ssh_lease) && text.contains("revok"), "{text}");
    let refused = run(&dana, &["leases", "--everyone"], None);
    assert!(!refused.status.success() && stderr(&refused).contains("admin"), "{refused:?}");
    // Every lease shows for the administrator, with no secret in the listing.
    let all = ok_json(root_home, &["leases", "--everyone", "--all", "-o", "json"], None);
    assert!(all.as_array().unwrap().len() >= 2);
    assert!(!all.to_string().contains(v["SecretAccessKey"].as_str().unwrap()));

    // The server's log holds no key secret or session token.
    let log = setup.log();
    assert!(!log.contains(v["SecretAccessKey"].as_str().unwrap()) && !log.contains(v["SessionToken"].as_str().unwrap()));
    assert!(!log.contains(&pg_password), "no database password in the server's log");

    // Revoking the database lease drops its role.
    let r = ok_json(&dana, &["leases", "revoke", pg["lease_id"].as_str().unwrap(), "-o", "json"], None);
    assert_eq!(r["revoke_reason"], "revoked by request");
    wait_until_dropped(&user);
}

/// Waits until the reaper dropped a lease's database role: at once, or on the server's
/// periodic run right after if one was mid-run.
fn wait_until_dropped(user: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while admin_sql(&format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")) != "0" {
        assert!(std::time::Instant::now() < deadline, "role {user} was not dropped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `SELECT current_user` through `stint exec … -- psql`, as the person of `home`.
fn exec_psql(home: &Path) -> std::process::Output {
    run(home, &["exec", "developer", "--backend", "appdb", "--", "psql", "-X", "-A", "-t", "-c", "SELECT current_user"], None)
}

#[test]
fn revoked_leases_and_disabled_people_get_nothing_from_the_cache() {
    let setup = Setup::start("cli-revoked");
    let cache = setup.root.join("dana").join("cache");
    let dana = setup.developer("dana", &cache);

    // A revoked AWS lease: the AWS CLI's next run fails with the revocation's code, and the one
    // after gets a new lease (the revoked one was forgotten).
    let first = setup.aws_arn(&dana, &cache, "stint-dev");
    let [lease] = lease_ids(&dana, "aws").try_into().unwrap();
    assert!(first.ends_with(&format!("/{lease}")), "{first}");
    ok_json(&dana, &["leases", "revoke", &lease, "-o", "json"], None);
    let out = setup.aws(&dana, &cache, "stint-dev");
    assert!(!out.status.success() && stderr(&out).contains("lease_revoked") && stderr(&out).contains(&lease), "{}", stderr(&out));
    let second = setup.aws_arn(&dana, &cache, "stint-dev");
    assert_ne!(second, first);
    assert_eq!(setup.aws_arn(&dana, &cache, "stint-dev"), second, "the new lease is cached");

    // A revoked database lease: psql is never started with the dropped role.
    let out = exec_psql(&dana);
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success() && user.starts_with(&setup.prefix), "{user} {}", stderr(&out));
    let [pg_lease] = lease_ids(&dana, "postgres").try_into().unwrap();
    ok_json(&dana, &["leases", "revoke", &pg_lease, "-o", "json"], None);
    wait_until_dropped(&user);
    let out = exec_psql(&dana);
    assert!(!out.status.success() && out.stdout.is_empty() && stderr(&out).contains("lease_revoked"), "{out:?}");
    let again = exec_psql(&dana);
    let new_user = String::from_utf8_lossy(&again.stdout).trim().to_owned();
    assert!(again.status.success() && new_user.starts_with(&setup.prefix) && new_user != user, "{new_user} {}", stderr(&again));
    // And a role token, checked by introspection.
    let token = ok_json(&dana, &["creds", "developer", "--backend", "token"], None);
    assert_eq!(ok_json(&dana, &["creds", "developer", "--backend", "token"], None)["token"], token["token"], "served from the cache");
    assert_eq!(cached_files(&cache), 3, "aws, appdb and the token");

    // Disabling dana: the disable counts her two live leases; nothing cached is served after it.
    let said = run(&setup.admin, &["user", "disable", "dana"], None);
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    assert_eq!(said.trim(), "Disabled dana; revoked every session and token they held, and 2 leases on the backends.");
    let out = setup.aws(&dana, &cache, "stint-dev");
    assert!(!out.status.success() && stderr(&out).contains("session_revoked"), "{}", stderr(&out));
    let out = exec_psql(&dana);
    assert!(!out.status.success() && out.stdout.is_empty() && stderr(&out).contains("session_revoked"), "{out:?}");
    let out = run(&dana, &["creds", "developer", "--backend", "token"], None);
    assert!(!out.status.success() && out.stdout.is_empty() && stderr(&out).contains("session_revoked"), "{out:?}");
    assert_eq!(cached_files(&cache), 0, "every refused credential was forgotten");
    let log = setup.log();
    assert!(!log.contains(token["token"].as_str().unwrap()), "the checked token never reaches the server's log");
}

#[test]
fn a_server_out_of_reach_is_an_error_unless_offline_is_asked_for() {
    let mut setup = Setup::start("cli-offline");
    let cache = setup.root.join("dana").join("cache");
    let dana = setup.developer("dana", &cache);
    let arn = setup.aws_arn(&dana, &cache, "stint-dev");
    let keys = ok_json(&dana, &["creds", "developer", "--backend", "aws"], None);
    setup.server.take();

    let out = setup.aws(&dana, &cache, "stint-dev");
    assert!(!out.status.success() && stderr(&out).contains("cannot reach the stint server"), "{}", stderr(&out));
    let out = run(&dana, &["creds", "developer", "--backend", "aws"], None);
    assert!(!out.status.success() && out.stdout.is_empty() && stderr(&out).contains("cannot reach the stint server"), "{out:?}");

    // --offline: the cached keys, unchecked, with a warning; the AWS CLI works with them.
    assert_eq!(setup.aws_arn(&dana, &cache, "stint-offline"), arn);
    let out = run(&dana, &["creds", "developer", "--backend", "aws", "--offline"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let served: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served["access_key_id"], keys["access_key_id"]);
    assert_eq!(served["lease_id"], keys["lease_id"]);
    let warning = stderr(&out);
    assert!(
        warning.starts_with("warning: cannot reach the stint server") && warning.contains("--offline") && warning.contains("may have been revoked"),
        "{warning}"
    );
    // Nothing cached for this one: --offline has nothing to serve.
    let out = run(&dana, &["creds", "developer", "--backend", "appdb", "--offline"], None);
    assert!(!out.status.success() && stderr(&out).contains("cannot reach the stint server"), "{out:?}");
}

#[test]
fn people_sharing_an_os_account_keep_their_own_caches() {
    let setup = Setup::start("cli-shared");
    // One OS account: one cache directory, two configuration directories.
    let shared = setup.root.join("cache");
    let dana = setup.developer("dana", &shared);
    let creds = |home: &Path, extra: &[&str]| {
        let args = [&["creds", "developer", "--backend", "aws"][..], extra].concat();
        ok_json_with_cache(home, &shared, &args, None)["lease_id"].as_str().unwrap().to_owned()
    };
    let mine = creds(&dana, &[]);
    // erin enrolls and logs in here too; dana's cached lease stays hers.
    let erin = setup.developer("erin", &shared);
    assert_eq!(creds(&dana, &[]), mine);
    let hers = creds(&erin, &[]);
    assert_ne!(hers, mine, "erin gets her own credential, not dana's");
    assert_eq!(creds(&erin, &[]), hers);
    // erin's logout forgets erin's credentials only.
    assert!(run_with_cache(&erin, &shared, &["logout"], None).status.success());
    assert_eq!(creds(&dana, &[]), mine);
    assert_eq!(lease_ids(&dana, "aws"), std::slice::from_ref(&mine), "one live lease: nothing was wiped and minted again");

    // --no-cache neither reads nor writes the cache.
    let fresh = creds(&dana, &["--no-cache"]);
    assert_ne!(fresh, mine);
    assert_eq!(creds(&dana, &[]), mine);
}
