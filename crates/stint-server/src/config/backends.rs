//! `[[backends.aws]]`, `[[backends.postgres]]` and `[[backends.ssh]]`: the systems roles open.
//!
//! Each backend names the roles it serves and what each role becomes there: a group role in
//! the database, principals on the servers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use stint_backends::{AwsConfig, PostgresConfig};
use stint_core::broker::SshBackendConfig;
use stint_core::ids::RoleName;
use stint_core::policy::Roles;

use super::{err, ConfigError, SecretSources};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsSection {
    #[serde(default)]
    pub aws: Vec<AwsSection>,
    #[serde(default)]
    pub postgres: Vec<PostgresSection>,
    #[serde(default)]
    pub ssh: Vec<SshSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    pub name: String,
    /// `postgres://admin@host:port/database`, without a password.
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub danger_password: Option<stint_core::secret::SecretString>,
    /// stint role → group role, e.g. `readonly = "app_readonly"`.
    pub roles: BTreeMap<String, String>,
    /// Prefix of the roles stint creates (default `stint_`).
    pub role_prefix: Option<String>,
    /// Sessions each credential may open at once (default 5).
    pub connection_limit: Option<u32>,
    /// Administrator connections (default 4).
    pub pool_size: Option<usize>,
    /// Host, port and database given to people, when they differ from `url`'s.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// PBKDF2 iterations of issued passwords' SCRAM verifiers (default 16: the passwords are
    /// 256 random bits; see `stint_backends::postgres::DEFAULT_SCRAM_ITERATIONS`).
    pub scram_iterations: Option<u32>,
}

/// AWS: stint calls STS `AssumeRole` as itself (the standard AWS credential chain: never a
/// key in this file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    pub name: String,
    pub region: String,
    /// stint role → IAM role ARN, e.g. `developer = "arn:aws:iam::123456789012:role/developer"`.
    pub roles: BTreeMap<String, String>,
    pub sts_endpoint: Option<String>,
    pub iam_endpoint: Option<String>,
    /// Attach the deny-older-sessions policy on revocation (default true).
    pub revoke_sessions: Option<bool>,
    /// The longest STS session asked for (default 1h; the roles' MaxSessionDuration).
    pub max_session: Option<String>,
    /// Accept `http://127.0.0.1…` endpoints: a local emulator, for tests only.
    pub danger_allow_http_loopback: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSection {
    pub name: String,
    /// stint role → the principals (login names) its certificates carry.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Certificate extensions (default `["permit-pty"]`).
    pub extensions: Option<Vec<String>>,
}

/// The backends, validated.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    pub aws: Vec<AwsConfig>,
    pub postgres: Vec<PostgresConfig>,
    pub ssh: Vec<SshBackendConfig>,
}

impl Backends {
    /// Settings that are allowed but only meant for tests; logged at start.
    pub fn warnings(&self) -> Vec<String> {
        self.aws
            .iter()
            .filter(|a| a.allow_http_loopback)
            .map(|a| format!("backends.aws {:?}: danger_allow_http_loopback is set: plain-HTTP AWS endpoints are for a local emulator only", a.name))
            .collect()
    }

    /// What `stint config check` shows (and the configuration digest covers); no password.
    pub fn redacted(&self) -> serde_json::Value {
        let roles = |m: &BTreeMap<RoleName, String>| m.iter().map(|(r, v)| (r.to_string(), v.clone())).collect::<BTreeMap<_, _>>();
        serde_json::json!({
            "aws": self.aws.iter().map(|a| serde_json::json!({
                "name": a.name, "region": a.region, "roles": roles(&a.roles), "revoke_sessions": a.revoke_sessions,
                "max_session": format!("{}s", a.max_session_secs), "sts_endpoint": a.sts_endpoint, "iam_endpoint": a.iam_endpoint,
                "danger_allow_http_loopback": a.allow_http_loopback,
            })).collect::<Vec<_>>(),
            "postgres": self.postgres.iter().map(|p| serde_json::json!({
                "name": p.name, "host": p.host, "port": p.port, "database": p.database, "admin": p.admin.config.get_user(), "sslmode": p.admin.sslmode().as_str(),
                "password": p.admin.config.get_password().map(|_| "<redacted>"), "roles": roles(&p.roles), "role_prefix": p.role_prefix,
                "connection_limit": p.connection_limit, "pool_size": p.pool_size, "scram_iterations": p.scram_iterations,
            })).collect::<Vec<_>>(),
            "ssh": self.ssh.iter().map(|s| serde_json::json!({
                "name": s.name, "roles": s.roles.iter().map(|(r, p)| (r.to_string(), p.clone())).collect::<BTreeMap<_, _>>(), "extensions": s.extensions,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A PostgreSQL identifier stint will quote: plain lowercase, so what people type works too.
fn pg_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') && !s.as_bytes()[0].is_ascii_digit()
}

fn role_of(name: &str, roles: &Roles, origin: &str, key: &str) -> Result<RoleName, ConfigError> {
    let role = RoleName::parse(name).map_err(|e| err(origin, key, e))?;
    if roles.get(&role).is_none() {
        return Err(err(origin, key, format!("no role named {role}")));
    }
    Ok(role)
}

pub fn load(s: BackendsSection, roles: &Roles, base: &Path, origin: &str) -> Result<Backends, ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    let mut unique = |name: &str, key: &str| -> Result<(), ConfigError> {
        let ok = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(err(origin, key, "a backend name is 1-64 of a-z, 0-9, - and _"));
        }
        if name == "token" || !names.insert(name.to_owned()) {
            return Err(err(origin, key, format!("backend name {name:?} is taken")));
        }
        Ok(())
    };
    let mut out = Backends::default();
    let mut arns = std::collections::BTreeSet::new();
    for (i, a) in s.aws.into_iter().enumerate() {
        let key = |k: &str| format!("backends.aws[{i}].{k}");
        unique(&a.name, &key("name"))?;
        stint_core::aws::check_region(&a.region).map_err(|e| err(origin, &key("region"), e))?;
        let mut map = BTreeMap::new();
        for (r, arn) in &a.roles {
            let role = role_of(r, roles, origin, &key("roles"))?;
            stint_core::aws::RoleArn::parse(arn).map_err(|e| err(origin, &key("roles"), format!("role {role}: {e}")))?;
            // STS's endpoint finds the stint role by ARN: one ARN, one role.
            if !arns.insert(arn.clone()) {
                return Err(err(origin, &key("roles"), format!("{arn} is mapped twice; map each IAM role to one stint role")));
            }
            map.insert(role, arn.clone());
        }
        if map.is_empty() {
            return Err(err(origin, &key("roles"), "map at least one role to an IAM role ARN"));
        }
        let mut cfg = AwsConfig::new(a.name, a.region, map);
        cfg.sts_endpoint = a.sts_endpoint;
        cfg.iam_endpoint = a.iam_endpoint;
        cfg.revoke_sessions = a.revoke_sessions.unwrap_or(true);
        cfg.allow_http_loopback = a.danger_allow_http_loopback.unwrap_or(false);
        if let Some(m) = a.max_session {
            let ttl = m.parse::<stint_core::Ttl>().map_err(|e| err(origin, &key("max_session"), e))?;
            if !(900..=43_200).contains(&ttl.as_secs()) {
                return Err(err(origin, &key("max_session"), "STS sessions last 15m to 12h"));
            }
            cfg.max_session_secs = ttl.as_secs() as u32;
        }
        out.aws.push(cfg);
    }
    for (i, p) in s.postgres.into_iter().enumerate() {
        let key = |k: &str| format!("backends.postgres[{i}].{k}");
        unique(&p.name, &key("name"))?;
        let mut target = stint_pgtls::Target::parse(&p.url).map_err(|e| err(origin, &key("url"), e))?;
        let admin = &mut target.config;
        if admin.get_password().is_some() {
            return Err(err(origin, &key("url"), "keep the password out of the URL: use password_file or password_env"));
        }
        let sources = SecretSources { file: p.password_file.as_deref(), env: p.password_env.as_deref(), inline: p.danger_password };
        if let Some(pw) = sources.read("password", base, &key, origin)? {
            admin.password(pw.expose());
        }
        let database = admin.get_dbname().map(str::to_owned).ok_or_else(|| err(origin, &key("url"), "name the database, e.g. postgres://stint@db:5432/app"))?;
        let host = match (&p.host, admin.get_hosts().first()) {
            (Some(h), _) => h.clone(),
            (None, Some(tokio_postgres::config::Host::Tcp(h))) => h.clone(),
            _ => return Err(err(origin, &key("host"), "the URL has no TCP host; set host")),
        };
        let port = p.port.or_else(|| admin.get_ports().first().copied()).unwrap_or(5432);
        let mut map = BTreeMap::new();
        for (r, group) in &p.roles {
            let role = role_of(r, roles, origin, &key("roles"))?;
            if !pg_identifier(group) {
                return Err(err(origin, &key("roles"), format!("{group:?} is not a plain PostgreSQL role name (a-z, 0-9, _)")));
            }
            map.insert(role, group.clone());
        }
        if map.is_empty() {
            return Err(err(origin, &key("roles"), "map at least one role to a group role, e.g. readonly = \"app_readonly\""));
        }
        let role_prefix = p.role_prefix.unwrap_or_else(|| "stint_".into());
        if !pg_identifier(&role_prefix) || role_prefix.len() > 16 {
            return Err(err(origin, &key("role_prefix"), "1-16 of a-z, 0-9 and _"));
        }
        let connection_limit = p.connection_limit.unwrap_or(5);
        if !(1..=1000).contains(&connection_limit) {
            return Err(err(origin, &key("connection_limit"), "between 1 and 1000"));
        }
        let pool_size = p.pool_size.unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            return Err(err(origin, &key("pool_size"), "between 1 and 64"));
        }
        let scram_iterations = p.scram_iterations.unwrap_or(stint_backends::postgres::DEFAULT_SCRAM_ITERATIONS);
        if !(1..=1_000_000).contains(&scram_iterations) {
            return Err(err(origin, &key("scram_iterations"), "between 1 and 1000000"));
        }
        admin.application_name("stint");
        admin.connect_timeout(std::time::Duration::from_secs(5));
        admin.keepalives(true);
        out.postgres.push(PostgresConfig {
            name: p.name,
            admin: target,
            host,
            port,
            database,
            roles: map,
            role_prefix,
            connection_limit,
            pool_size,
            scram_iterations,
        });
    }
    for (i, s) in s.ssh.into_iter().enumerate() {
        let key = |k: &str| format!("backends.ssh[{i}].{k}");
        unique(&s.name, &key("name"))?;
        let mut map = BTreeMap::new();
        for (r, principals) in &s.roles {
            let role = role_of(r, roles, origin, &key("roles"))?;
            let ok = |p: &String| !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            let distinct = principals.iter().collect::<std::collections::BTreeSet<_>>().len() == principals.len();
            if principals.is_empty() || !principals.iter().all(ok) || !distinct {
                return Err(err(origin, &key("roles"), format!("role {role}: list one or more distinct login names, e.g. [\"deploy\"]")));
            }
            map.insert(role, principals.clone());
        }
        if map.is_empty() {
            return Err(err(origin, &key("roles"), "map at least one role to principals, e.g. developer = [\"deploy\"]"));
        }
        let extensions = s.extensions.unwrap_or_else(|| vec!["permit-pty".into()]);
        if let Some(bad) = extensions.iter().find(|e| !stint_core::sshcert::STANDARD_EXTENSIONS.contains(&e.as_str())) {
            return Err(err(origin, &key("extensions"), format!("{bad:?} is not one of {}", stint_core::sshcert::STANDARD_EXTENSIONS.join(", "))));
        }
        out.ssh.push(SshBackendConfig { name: s.name, roles: map, extensions });
    }
    Ok(out)
}
