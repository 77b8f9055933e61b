//! `stint ci login` and `stint policy explain` as the real binary, against the real server
//! and a stand-in for GitHub Actions' OIDC token service (`stint_testkit::github`; GitHub
//! only issues real tokens inside its own runners). Also checks the shipped `action.yml`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{python, start_server_on, stint};
use serde_json::{json, Value};
use stint_testkit::github::{self, GithubIssuer, Run};
use stint_testkit::{free_port, workspace_root};

fn ci(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = stint();
    cmd.args(args).env_remove("GITHUB_ENV").env_remove("ACTIONS_ID_TOKEN_REQUEST_URL").env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN").env_remove("STINT_SERVER");
    cmd.envs(env.iter().copied()).stdin(Stdio::null());
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn introspect(url: &str, token: &str) -> Value {
    reqwest::Client::new().post(format!("{url}/v1/introspect")).form(&[("token", token)]).send().await.unwrap().json().await.unwrap()
}

fn write_config(dir: &Path, issuer: &str) -> std::path::PathBuf {
    let host = issuer.trim_start_matches("http://");
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": issuer },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": { format!("{host}:aud"): "stint" },
                "StringLike": { format!("{host}:sub"): "repo:acme/infra:ref:refs/heads/*" }
            }
        }]
    });
    std::fs::write(dir.join("deploy-trust.json"), serde_json::to_string_pretty(&policy).unwrap()).unwrap();
    let config = dir.join("stint.toml");
    let toml = format!(
        "[[ci.issuer]]\nname = \"github\"\nurl = \"{issuer}\"\ndanger_allow_http_loopback = true\n\n\
         [roles.deploy]\nmax_ttl = \"1h\"\nci_ttl = \"10m\"\ntrust_policy_file = \"deploy-trust.json\"\n"
    );
    std::fs::write(&config, toml).unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_login_in_github_actions_and_policy_explain() {
    let root = std::env::temp_dir().join(format!("stint-ci-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let gh = GithubIssuer::start().await;
    let config = write_config(&root, &gh.url);
    let cfg = config.to_str().unwrap();
    let (server, _) = start_server_on(free_port(), &root.join("data"), &["--config", cfg], "debug");
    let url = server.url.clone();
    let github_env = root.join("github_env");
    std::fs::write(&github_env, "").unwrap();
    let job = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", gh.request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", github::REQUEST_TOKEN),
        ("GITHUB_ENV", github_env.to_str().unwrap()),
    ];
    let mut secrets = vec![];

    // In a job on main: the credential is masked, then exported for the following steps.
    let out = ci(&job, &["ci", "login", "--server", &url, "--role", "deploy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = std::fs::read_to_string(&github_env).unwrap();
    let token = exported.lines().find_map(|l| l.strip_prefix("STINT_TOKEN=")).expect("STINT_TOKEN exported").to_owned();
    assert!(exported.contains("STINT_ROLE=deploy\n") && exported.contains("STINT_TOKEN_EXPIRES_AT="), "{exported}");
    assert_eq!(text(&out.stdout).lines().next(), Some(format!("::add-mask::{token}").as_str()), "masked before anything else");
    assert!(!text(&out.stderr).contains(&token));
    let seen = introspect(&url, &token).await;
    assert_eq!((seen["active"].as_bool(), seen["role"].as_str()), (Some(true), Some("deploy")), "{seen}");
    assert_eq!(seen["exp"].as_i64().unwrap() - seen["iat"].as_i64().unwrap(), 600, "the role's ci_ttl");
    secrets.push(token);

    // Printed instead, shorter on request.
    let out = ci(&job, &["ci", "login", "--server", &url, "--role", "deploy", "--ttl", "5m", "--print", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["expires_in"], 300);
    secrets.push(v["access_token"].as_str().unwrap().to_owned());

    // A job in an environment: refused, and told why.
    gh.set_run(Run { environment: Some("prod".into()), ..Run::default() });
    let out = ci(&job, &["ci", "login", "--server", &url, "--role", "deploy"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no_matching_trust_policy") && err.contains("got repo:acme/infra:environment:prod") && err.contains("environment"), "{err}");
    gh.set_run(Run::default());

    // Outside GitHub Actions: a clear error; other platforms pass the token as a file.
    let out = ci(&[], &["ci", "login", "--server", &url, "--role", "deploy"]);
    assert!(text(&out.stderr).contains("permissions: id-token: write"), "{}", text(&out.stderr));
    let token_file = root.join("k8s-token");
    std::fs::write(&token_file, gh.sign(&gh.claims(&Run { git_ref: "refs/heads/release".into(), ..Run::default() }, "stint", now()))).unwrap();
    let out = ci(&[], &["ci", "login", "--server", &url, "--role", "deploy", "--token-file", token_file.to_str().unwrap(), "--print", "env"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("export STINT_ROLE='deploy'"));
    let replay = ci(&[], &["ci", "login", "--server", &url, "--role", "deploy", "--token-file", token_file.to_str().unwrap(), "--print", "env"]);
    assert!(text(&replay.stderr).contains("token_replayed"), "{}", text(&replay.stderr));

    // Explain before deploying: which statement matches, or which condition fails.
    let good = root.join("good.jwt");
    std::fs::write(&good, gh.sign(&gh.claims(&Run::default(), "stint", now()))).unwrap();
    let out = ci(&[], &["policy", "explain", "--config", cfg, "--role", "deploy", "--token", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("allowed by statement 1 (lifetime 10m)"), "{}", text(&out.stdout));
    let claims = gh.claims(&Run { environment: Some("prod".into()), ..Run::default() }, "stint", now()).to_string();
    let out = ci(&[], &["policy", "explain", "--config", cfg, "--role", "deploy", "--claims", &claims, "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "refused explanations exit 2");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["result"], "no_match");
    assert!(v["statements"][0]["failed"].as_str().unwrap().contains("StringLike on sub: got repo:acme/infra:environment:prod"), "{v}");

    // No CI token or credential reached the server's log.
    let log = std::fs::read_to_string(&server.log).unwrap();
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a credential leaked into the server log");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// The shipped composite action, run as a runner runs it: its login step's script, with the
/// step's environment filled from the workflow's inputs (GitHub substitutes `${{ inputs.* }}` in
/// `env`, never in the script), exchanges the job's token and exports a live credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_action_runs_ci_login() {
    let script = "import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = std::process::Command::new(python())
        .args(["-c", script])
        .arg(workspace_root().join("action.yml"))
        .output()
        .expect("python with PyYAML (run scripts/test)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let action: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    for input in ["server", "role"] {
        assert_eq!(action["inputs"][input]["required"], true, "{input}");
    }
    let steps = action["runs"]["steps"].as_array().unwrap();
    let login = steps.iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains("ci login"))).expect("a step running stint ci login");
    assert_eq!(login["shell"], "bash");
    let run = login["run"].as_str().unwrap();
    // Inputs reach the script through the environment, never spliced into the script text.
    assert!(!run.contains("${{"), "inputs are not interpolated into the script");

    let root = std::env::temp_dir().join(format!("stint-action-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let gh = GithubIssuer::start().await;
    let config = write_config(&root, &gh.url);
    let (server, _) = start_server_on(free_port(), &root.join("data"), &["--config", config.to_str().unwrap()], "info");
    let github_env = root.join("github_env");
    std::fs::write(&github_env, "").unwrap();
    let inputs = [("server", server.url.as_str()), ("role", "deploy"), ("ttl", "5m"), ("stint-binary", env!("CARGO_BIN_EXE_stint"))];
    let input = |name: &str| {
        inputs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()).or_else(|| action["inputs"][name]["default"].as_str().map(str::to_owned)).unwrap()
    };
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-e", "-c", run]).env_clear().env("PATH", std::env::var_os("PATH").unwrap()).env("HOME", &root);
    for (var, value) in login["env"].as_object().expect("the step's env") {
        let value = value.as_str().unwrap();
        let name = value.strip_prefix("${{ inputs.").and_then(|v| v.strip_suffix(" }}")).unwrap_or_else(|| panic!("{var} is not an input: {value}"));
        cmd.env(var, input(name));
    }
    cmd.env("GITHUB_ACTION_PATH", workspace_root())
        .env("GITHUB_ENV", &github_env)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &gh.request_url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", github::REQUEST_TOKEN)
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = std::fs::read_to_string(&github_env).unwrap();
    let token = exported.lines().find_map(|l| l.strip_prefix("STINT_TOKEN=")).expect("STINT_TOKEN exported");
    let seen = introspect(&server.url, token).await;
    assert_eq!((seen["active"].as_bool(), seen["role"].as_str()), (Some(true), Some("deploy")), "{seen}");
    assert_eq!(seen["exp"].as_i64().unwrap() - seen["iat"].as_i64().unwrap(), 300, "the ttl input reached the exchange");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
