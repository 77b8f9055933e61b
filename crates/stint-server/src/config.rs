//! Configuration: defaults → TOML file → `STINT_*` environment → flags, validated once into
//! [`Config`]. Unknown keys are errors; every error names the file, the key and the problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stint_core::broker::{ApprovalConfig, BreakGlassConfig, BrokerConfig};
use stint_core::ids::{GroupName, RoleName};
use stint_core::policy::{RoleDef, Roles};
use stint_core::throttle::ThrottleConfig;
use stint_core::Ttl;

pub mod backends;
pub mod ci;
pub mod limits;
pub mod oidc;
pub mod oncall;
pub use ci::CiIssuerClient;
pub use oidc::OidcClientConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7807";
pub const DEFAULT_DATA_DIR: &str = "./stint-data";

/// The TOML file, as written. Every field optional; unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `sqlite` (the default) or a `postgres://` URL.
    pub store: Option<String>,
    /// A file holding the store URL, for URLs that carry a password.
    pub store_file: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    /// The public base URL: the `iss` of every token. Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    pub log_format: Option<String>,
    /// HTTPS: the certificate chain and private key (PEM), reloaded when they change.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `"proxy"`: TLS ends at a proxy in front, which names the client in a header.
    pub tls: Option<String>,
    #[serde(default)]
    pub session: SessionSection,
    #[serde(default)]
    pub tokens: TokensSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub login: LoginSection,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleSection>,
    #[serde(default)]
    pub identity: oidc::IdentitySection,
    #[serde(default)]
    pub ci: ci::CiSection,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub oncall: oncall::OnCallSection,
    #[serde(default)]
    pub alerts: AlertsSection,
    pub approvals: Option<ApprovalsSection>,
    pub break_glass: Option<BreakGlassSection>,
    #[serde(default)]
    pub backends: backends::BackendsSection,
    #[serde(default)]
    pub bench: BenchSection,
    #[serde(default)]
    pub postgres: PostgresSection,
    #[serde(default)]
    pub reasons: ReasonsSection,
    #[serde(default)]
    pub limits: limits::LimitsSection,
    #[serde(default)]
    pub scim: ScimSection,
    #[serde(default)]
    pub users: UsersSection,
}

/// `[users]`: accounts that end by themselves (`stint user add --expires --sponsor`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSection {
    /// How long before an account's end its sponsor is alerted; default `7d`.
    pub expiry_alert: Option<String>,
    /// Accounts that end, set here rather than with `stint user expiry`.
    #[serde(default)]
    pub account: Vec<AccountSection>,
}

/// `[[users.account]]`: an account's end and its sponsor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    pub name: String,
    /// `2026-12-31` (through that day, UTC) or an RFC 3339 time.
    pub expires: String,
    pub sponsor: String,
}

fn accounts(list: Vec<AccountSection>, origin: &str) -> Result<Vec<stint_core::broker::ConfiguredAccount>, ConfigError> {
    use stint_core::ids::Username;
    list.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let key = |k: &str| format!("users.account[{i}].{k}");
            let name = Username::parse(&a.name).map_err(|e| err(origin, &key("name"), e))?;
            let sponsor = Username::parse(&a.sponsor).map_err(|e| err(origin, &key("sponsor"), e))?;
            if name == sponsor {
                return Err(err(origin, &key("sponsor"), "an account does not sponsor itself"));
            }
            let expires_at = stint_core::Timestamp::parse_end(&a.expires)
                .ok_or_else(|| err(origin, &key("expires"), format!("{:?} is not a date (2026-12-31) or an RFC 3339 time", a.expires)))?;
            Ok(stint_core::broker::ConfiguredAccount { name, expires_at, sponsor })
        })
        .collect()
}

/// `[scim]`: how people an identity provider provisions tie into sign-in and groups.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimSection {
    /// The `[[identity.oidc]]` provider (by name) the provisioned people sign in through.
    pub provider: Option<String>,
    /// How a first sign-in is matched to a provisioned person: `externalId` (default) or `email`.
    #[serde(rename = "match")]
    pub match_by: Option<String>,
    /// A provider group's displayName → the stint group its members are in.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

fn scim(s: ScimSection, sso: &[stint_core::broker::SsoProvider], origin: &str) -> Result<stint_core::scim::ScimSettings, ConfigError> {
    use stint_core::scim::ScimMatch;
    if let Some(p) = &s.provider {
        if !sso.iter().any(|x| &x.name == p) {
            return Err(err(origin, "scim.provider", format!("{p:?} is not the name of an [[identity.oidc]] provider")));
        }
    }
    let match_by = match s.match_by.as_deref() {
        None | Some("externalId") => ScimMatch::ExternalId,
        Some("email") => ScimMatch::Email,
        Some(other) => return Err(err(origin, "scim.match", format!("{other:?} is not \"externalId\" or \"email\""))),
    };
    let mut groups = BTreeMap::new();
    for (name, group) in s.groups {
        let key = format!("scim.groups.{name:?}");
        let group = GroupName::parse(&group).map_err(|e| err(origin, &key, e))?;
        if groups.insert(name.to_lowercase(), group).is_some() {
            return Err(err(origin, &key, "maps a group named again with other capitals; provider group names are case-insensitive"));
        }
    }
    Ok(stint_core::scim::ScimSettings { provider: s.provider, match_by, groups })
}

/// `[reasons]`: what a reason people write (requests, break-glass, denials) must have.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonsSection {
    /// The least visible characters, once control and invisible characters are dropped.
    pub min_chars: Option<usize>,
}

/// `[postgres]`: how long one replica's stalled or slow transaction may hold up the others
/// (see [`stint_core::store::Timeouts`]). Whole seconds; ignored on SQLite.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// A transaction left idle this long is ended by PostgreSQL (default 1s).
    pub idle_in_transaction_timeout: Option<String>,
    /// A statement waiting this long for a lock fails with 503 (default 3s).
    pub lock_timeout: Option<String>,
    /// A statement running this long fails with 503 (default 5s).
    pub statement_timeout: Option<String>,
    /// How often each replica re-reads what it keeps in memory, in case a notice from
    /// another replica was lost (default 10s; see `docs/replicas.md`).
    pub reread_interval: Option<String>,
    /// Do not listen for other replicas' notices: only the re-read keeps memory true. For
    /// tests and benchmarks of the fallback.
    pub danger_ignore_notifications: Option<bool>,
}

/// How replicas sharing a PostgreSQL store keep what they hold in memory true (`[postgres]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// The fallback: what is held is read again this often, whatever was heard.
    pub reread: std::time::Duration,
    /// Other replicas' notices are listened for (off only with `danger_ignore_notifications`).
    pub listen: bool,
}

fn replicas(s: &PostgresSection, origin: &str, warnings: &mut Vec<String>) -> Result<Replicas, ConfigError> {
    let secs = secs_within(origin, "postgres.reread_interval", s.reread_interval.as_deref(), 10, 1..=300, "between 1s and 5m")?;
    let listen = !s.danger_ignore_notifications.unwrap_or(false);
    if !listen {
        warnings.push(format!("postgres.danger_ignore_notifications: a key rotated on another replica is seen here only by the re-read every {secs}s"));
    }
    Ok(Replicas { reread: std::time::Duration::from_secs(secs), listen })
}

/// An optional duration setting in whole seconds: `default` when absent, refused outside
/// `range`, which `bounds` spells for the message (`"between 1s and 5m"`).
pub(crate) fn secs_within(
    origin: &str,
    key: &str,
    v: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    bounds: &str,
) -> Result<u64, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let secs = v.parse::<Ttl>().map_err(|e| err(origin, key, e))?.as_secs();
    if !range.contains(&secs) {
        return Err(err(origin, key, bounds));
    }
    Ok(secs)
}

fn store_timeouts(s: &PostgresSection, origin: &str) -> Result<stint_core::store::Timeouts, ConfigError> {
    let d = stint_core::store::Timeouts::default();
    let secs = |key: &str, v: &Option<String>, default: u64| secs_within(origin, key, v.as_deref(), default, 1..=300, "between 1s and 5m");
    let t = stint_core::store::Timeouts {
        idle_in_transaction_secs: secs("postgres.idle_in_transaction_timeout", &s.idle_in_transaction_timeout, d.idle_in_transaction_secs)?,
        lock_secs: secs("postgres.lock_timeout", &s.lock_timeout, d.lock_secs)?,
        statement_secs: secs("postgres.statement_timeout", &s.statement_timeout, d.statement_secs)?,
    };
    // A writer queued behind a stalled replica must outwait the server ending that replica's
    // transaction, or every write would fail while one replica is paused.
    if t.lock_secs <= t.idle_in_transaction_secs {
        return Err(err(origin, "postgres.lock_timeout", "must be longer than postgres.idle_in_transaction_timeout"));
    }
    Ok(t)
}

/// `[approvals]`: roles people request, and who approves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSection {
    /// Roles that can be requested (each gets a policy: permitted while a request is approved).
    pub roles: Vec<String>,
    /// The approvers' group (default: the administrators' group).
    pub approvers: Option<String>,
    /// Distinct approvals a request needs (default 1).
    pub required: Option<usize>,
    /// The longest grant (default 1h).
    pub max_duration: Option<String>,
    /// A request not decided within this expires (default 1h).
    pub pending_ttl: Option<String>,
}

fn approvals(
    s: ApprovalsSection,
    roles: &Roles,
    admin_group: &GroupName,
    origin: &str,
) -> Result<(ApprovalConfig, stint_core::authz::PolicySource), ConfigError> {
    let mut names = Vec::new();
    let mut text = String::new();
    for r in &s.roles {
        let role = RoleName::parse(r).map_err(|e| err(origin, "approvals.roles", e))?;
        if roles.get(&role).is_none() {
            return Err(err(origin, "approvals.roles", format!("no role named {role}")));
        }
        text.push_str(&format!(
            "@id(\"approved request: {role}\")\npermit(principal is Stint::Person, action == Stint::Action::\"assume\", resource == Stint::Role::{:?})\nwhen {{ context.approved_request }};\n",
            role.as_str()
        ));
        names.push(role);
    }
    if names.is_empty() {
        return Err(err(origin, "approvals.roles", "list the roles people may request, e.g. [\"admin\"]"));
    }
    let approvers = match &s.approvers {
        Some(g) => GroupName::parse(g).map_err(|e| err(origin, "approvals.approvers", e))?,
        None => admin_group.clone(),
    };
    let required = s.required.unwrap_or(1);
    if !(1..=10).contains(&required) {
        return Err(err(origin, "approvals.required", "between 1 and 10 approvals"));
    }
    let ttl = |k: &str, v: &Option<String>| -> Result<Ttl, ConfigError> { v.as_deref().unwrap_or("1h").parse::<Ttl>().map_err(|e| err(origin, k, e)) };
    let max_duration = ttl("approvals.max_duration", &s.max_duration)?;
    let pending_ttl = ttl("approvals.pending_ttl", &s.pending_ttl)?;
    let source = stint_core::authz::PolicySource { origin: "defaults (generated from [approvals])".into(), text };
    Ok((ApprovalConfig { roles: names, approvers, required, max_duration, pending_ttl }, source))
}

/// `[break_glass]`: who may take a role at once, alerting everyone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassSection {
    /// Members may break the glass (default `break-glass`).
    pub group: Option<String>,
    /// The role it grants (default `admin`).
    pub role: Option<String>,
    /// The longest break-glass grant (default and maximum 1h).
    pub max_duration: Option<String>,
    /// How recent the login (with MFA) must be (default 5m).
    pub fresh_login: Option<String>,
}

fn break_glass(s: BreakGlassSection, roles: &Roles, origin: &str) -> Result<(BreakGlassConfig, stint_core::authz::PolicySource), ConfigError> {
    let group = GroupName::parse(s.group.as_deref().unwrap_or("break-glass")).map_err(|e| err(origin, "break_glass.group", e))?;
    let role = RoleName::parse(s.role.as_deref().unwrap_or("admin")).map_err(|e| err(origin, "break_glass.role", e))?;
    if roles.get(&role).is_none() {
        return Err(err(origin, "break_glass.role", format!("no role named {role}")));
    }
    let max_duration = s.max_duration.as_deref().unwrap_or("1h").parse::<Ttl>().map_err(|e| err(origin, "break_glass.max_duration", e))?;
    if max_duration.as_secs() > 3600 {
        return Err(err(origin, "break_glass.max_duration", "break-glass lasts at most 1h"));
    }
    let fresh_login = s.fresh_login.as_deref().unwrap_or("5m").parse::<Ttl>().map_err(|e| err(origin, "break_glass.fresh_login", e))?;
    let text = format!(
        "@id(\"break-glass: {role}\")\npermit(principal in Stint::Group::{:?}, action == Stint::Action::\"assume\", resource == Stint::Role::{:?})\nwhen {{ context.break_glass }};\n",
        group.as_str(),
        role.as_str()
    );
    let source = stint_core::authz::PolicySource { origin: "defaults (generated from [break_glass])".into(), text };
    Ok((BreakGlassConfig { group, role, max_duration, fresh_login }, source))
}

/// `[alerts]`: where alerts go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    #[serde(default)]
    pub webhook: Vec<WebhookSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    pub url: String,
    /// `slack` (incoming-webhook JSON) or `json` (signed with HMAC-SHA256).
    pub format: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub danger_secret: Option<stint_core::secret::SecretString>,
    /// The events it receives (default: all).
    #[serde(default)]
    pub events: Vec<String>,
    pub timeout: Option<String>,
}

fn webhooks(sections: Vec<WebhookSection>, base: &Path, origin: &str) -> Result<Vec<crate::webhooks::Webhook>, ConfigError> {
    use crate::webhooks::{Format, Webhook};
    use stint_core::alerts::AlertKind;
    let mut out = Vec::new();
    for (i, s) in sections.into_iter().enumerate() {
        let key = |k: &str| format!("alerts.webhook[{i}].{k}");
        if !(s.url.starts_with("https://") || s.url.starts_with("http://127.0.0.1") || s.url.starts_with("http://localhost")) {
            return Err(err(origin, &key("url"), "must be an https:// URL"));
        }
        let format = match s.format.as_deref().unwrap_or("slack") {
            "slack" => Format::Slack,
            "json" => Format::Json,
            other => return Err(err(origin, &key("format"), format!("{other:?} is not \"slack\" or \"json\""))),
        };
        let sources = SecretSources { file: s.secret_file.as_deref(), env: s.secret_env.as_deref(), inline: s.danger_secret };
        let secret = sources.read("secret", base, &key, origin)?;
        if format == Format::Json && secret.as_ref().is_none_or(|s| s.expose().len() < 16) {
            return Err(err(origin, &key("secret_file"), "a json webhook needs a signing secret of at least 16 characters"));
        }
        let events = s
            .events
            .iter()
            .map(|e| AlertKind::parse(e).ok_or_else(|| err(origin, &key("events"), format!("unknown event {e:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = s.timeout.as_deref().unwrap_or("5s").parse::<Ttl>().map_err(|e| err(origin, &key("timeout"), e))?;
        out.push(Webhook { url: s.url, format, secret, events, timeout: std::time::Duration::from_secs(timeout.as_secs()) });
    }
    Ok(out)
}

/// Where a secret may come from: `<name>_file`, `<name>_env`, or `danger_<name>` inline.
pub(crate) struct SecretSources<'a> {
    pub file: Option<&'a Path>,
    pub env: Option<&'a str>,
    pub inline: Option<stint_core::secret::SecretString>,
}

impl SecretSources<'_> {
    /// The secret, from at most one source (`None` when none is set); a file is read relative
    /// to `base` and trimmed. `key` names the configuration keys in errors.
    pub(crate) fn read(
        self,
        name: &str,
        base: &Path,
        key: &dyn Fn(&str) -> String,
        origin: &str,
    ) -> Result<Option<stint_core::secret::SecretString>, ConfigError> {
        use stint_core::secret::SecretString;
        let file_key = key(&format!("{name}_file"));
        match (self.file, self.env, self.inline) {
            (Some(f), None, None) => {
                let text = std::fs::read_to_string(base.join(f)).map_err(|e| err(origin, &file_key, format!("cannot read {}: {e}", f.display())))?;
                Ok(Some(SecretString::new(text.trim().to_owned())))
            }
            (None, Some(v), None) => {
                let value = std::env::var(v).map_err(|_| err(origin, &key(&format!("{name}_env")), format!("environment variable {v} is not set")))?;
                Ok(Some(SecretString::new(value)))
            }
            (None, None, inline) => Ok(inline),
            _ => Err(err(origin, &file_key, format!("set exactly one of {name}_file, {name}_env or danger_{name}"))),
        }
    }
}

/// `[policy]`: the team's Cedar policies, added to the defaults the roles generate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// `.cedar` files, or directories whose `.cedar` files are all read (relative to this file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// Reads the policy files and directories (sorted, so the order is stable).
fn policy_sources(paths: &[PathBuf], base: &Path, origin: &str) -> Result<Vec<stint_core::authz::PolicySource>, ConfigError> {
    let mut files = Vec::new();
    for p in paths {
        let path = base.join(p);
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| err(origin, "policy.files", format!("cannot read {}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "cedar"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).map_err(|e| err(origin, "policy.files", format!("cannot read {}: {e}", f.display())))?;
            Ok(stint_core::authz::PolicySource { origin: f.display().to_string(), text })
        })
        .collect()
}

/// Settings for `stint bench`; nothing here is for production.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchSection {
    /// Serves `POST /v1/bench/floor`: one signature with a throwaway key, no storage.
    pub floor: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    pub ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    pub audience: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    pub free_failures: Option<u32>,
    pub free_failures_per_address: Option<u32>,
    pub max_lockout: Option<String>,
    pub enrollment_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSection {
    pub max_ttl: Option<String>,
    #[serde(default)]
    pub everyone: Option<bool>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    pub description: Option<String>,
    /// Who may exchange a CI token for this role: an IAM-shaped trust policy, inline JSON…
    pub trust_policy: Option<String>,
    /// …or in a file (relative to this configuration file).
    pub trust_policy_file: Option<PathBuf>,
    /// Lifetime of the role's CI credentials (5m-15m; default 15m or the role's max_ttl).
    pub ci_ttl: Option<String>,
    /// Lifetime of the credentials workloads (services) get for this role, which their agents
    /// renew at about two thirds of it (default 1h, or the role's max_ttl if shorter). Set on
    /// a role meant for services only, it is what lets anyone assume it.
    pub service_ttl: Option<String>,
}

/// Values from flags or `STINT_*` variables (clap merges the two); they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub public_url: Option<String>,
    pub log_format: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// Where TLS ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// stint serves HTTPS itself with these files.
    Serve(crate::tls::TlsFiles),
    /// A proxy in front ends TLS (`tls = "proxy"`); stint speaks HTTP to it.
    Proxy,
    /// Plain HTTP, allowed on a loopback address only.
    Off,
}

impl Tls {
    fn describe(&self) -> serde_json::Value {
        match self {
            Tls::Serve(f) => serde_json::json!({ "cert_file": f.cert.display().to_string(), "key_file": f.key.display().to_string() }),
            Tls::Proxy => serde_json::json!("proxy"),
            Tls::Off => serde_json::json!("off (loopback only)"),
        }
    }
}

/// Where TLS ends, from the file and the flags. Plain HTTP off loopback is refused: a
/// credential broker must not send credentials in clear text.
fn tls(mode: Option<&str>, cert: Option<PathBuf>, key: Option<PathBuf>, listen: SocketAddr, origin: &str) -> Result<Tls, ConfigError> {
    let mode = match (mode, cert, key) {
        (Some("proxy"), None, None) => Tls::Proxy,
        (Some("proxy"), _, _) => {
            return Err(err(origin, "tls", "tls = \"proxy\" means TLS ends at the proxy: remove tls_cert_file and tls_key_file, or remove tls"))
        }
        (Some(other), _, _) => return Err(err(origin, "tls", format!("{other:?} is not \"proxy\" (to serve HTTPS, set tls_cert_file and tls_key_file)"))),
        (None, Some(cert), Some(key)) => {
            let files = crate::tls::TlsFiles { cert, key };
            crate::tls::load(&files).map_err(|e| err(origin, "tls_cert_file", e))?;
            Tls::Serve(files)
        }
        (None, Some(_), None) => return Err(err(origin, "tls_key_file", "set it too: the private key of tls_cert_file")),
        (None, None, Some(_)) => return Err(err(origin, "tls_cert_file", "set it too: the certificate chain of tls_key_file")),
        (None, None, None) => Tls::Off,
    };
    if mode == Tls::Off && !listen.ip().is_loopback() {
        return Err(err(
            origin,
            "listen",
            format!(
                "{listen} is reachable from other machines, and without TLS credentials would cross the network in clear text: \
                 set tls_cert_file and tls_key_file (STINT_TLS_CERT_FILE, STINT_TLS_KEY_FILE), or tls = \"proxy\" when a proxy in front ends TLS"
            ),
        ));
    }
    Ok(mode)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: String,
    /// PostgreSQL timeouts (`[postgres]`).
    pub store_timeouts: stint_core::store::Timeouts,
    /// Notices between replicas and the periodic re-read (`[postgres]`).
    pub replicas: Replicas,
    pub master_key_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// Where TLS ends (`tls_cert_file`/`tls_key_file`, or `tls = "proxy"`).
    pub tls: Tls,
    pub broker: BrokerConfig,
    /// Serve the benchmark floor endpoint (see [`BenchSection`]).
    pub bench_floor: bool,
    /// How to reach each OpenID Provider of `broker.sso`, in the same order.
    pub oidc: Vec<OidcClientConfig>,
    /// How to reach each CI issuer of `broker.ci`.
    pub ci_issuers: Vec<CiIssuerClient>,
    /// Calendar feeds of on-call schedules, refreshed by the server.
    pub oncall_feeds: Vec<oncall::CalendarFeed>,
    /// Where alerts go.
    pub webhooks: Vec<crate::webhooks::Webhook>,
    /// Credential backends (the SSH ones are also in `broker.ssh`).
    pub backends: backends::Backends,
    /// Rate limits and client addressing (`[limits]`; the caps and folding are in `broker`).
    pub limits: limits::Limits,
    /// Accepted but probably not meant (a trust policy's `StringEquals` with a `*`…); logged at start.
    pub warnings: Vec<String>,
}

/// A configuration error that names where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

fn err(origin: &str, key: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError { origin: origin.to_owned(), message: format!("key `{key}`: {problem}") }
}

impl Config {
    /// Reads `file` (if any), then applies `over`, then validates.
    pub fn load(file: Option<&Path>, over: Overrides) -> Result<Config, ConfigError> {
        let (fc, origin) = match file {
            Some(p) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError { origin: origin.clone(), message: format!("cannot read: {e}") })?;
                let fc: FileConfig = toml::from_str(&text).map_err(|e| ConfigError { origin: origin.clone(), message: e.to_string().trim_end().to_owned() })?;
                (fc, origin)
            }
            None => (FileConfig::default(), "configuration".to_owned()),
        };
        Self::validate(fc, over, file.map(Path::to_path_buf), &origin)
    }

    fn validate(mut fc: FileConfig, mut over: Overrides, source: Option<PathBuf>, origin: &str) -> Result<Config, ConfigError> {
        let base = source.as_deref().and_then(Path::parent).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        // Flags name files from the working directory; the file names them from where it is.
        let tls_cert = over.tls_cert_file.take().or_else(|| fc.tls_cert_file.take().map(|f| base.join(f)));
        let tls_key = over.tls_key_file.take().or_else(|| fc.tls_key_file.take().map(|f| base.join(f)));
        let listen_s = over.listen.or(fc.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_s.parse().map_err(|_| err(origin, "listen", format!("{listen_s:?} is not an address like 127.0.0.1:7807")))?;
        let data_dir = over.data_dir.or(fc.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = match (over.store.or(fc.store), fc.store_file) {
            (Some(s), _) => s,
            (None, Some(f)) => {
                std::fs::read_to_string(&f).map_err(|e| err(origin, "store_file", format!("cannot read {}: {e}", f.display())))?.trim().to_owned()
            }
            (None, None) => "sqlite".to_owned(),
        };
        if store != "sqlite" && !stint_core::spec::is_postgres(&store) {
            return Err(err(origin, "store", "must be \"sqlite\" or a postgres:// URL"));
        }
        let store_timeouts = store_timeouts(&fc.postgres, origin)?;
        let log_format = match over.log_format.or(fc.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(err(origin, "log_format", format!("{other:?} is not \"text\" or \"json\""))),
        };
        let tls = tls(fc.tls.as_deref(), tls_cert, tls_key, listen, origin)?;
        let public_url = match (over.public_url.or(fc.public_url.clone()), &tls) {
            (Some(u), _) => u,
            (None, Tls::Serve(_)) => format!("https://{listen}"),
            (None, Tls::Off) => format!("http://{listen}"),
            (None, Tls::Proxy) => {
                return Err(err(origin, "public_url", "with tls = \"proxy\", set the https:// address clients reach stint at through the proxy"))
            }
        };
        if !(public_url.starts_with("https://") || public_url.starts_with("http://")) || public_url.ends_with('/') {
            return Err(err(origin, "public_url", "must be an http(s) URL without a trailing slash"));
        }
        if tls != Tls::Off && !public_url.starts_with("https://") {
            return Err(err(origin, "public_url", "must be an https:// URL: clients reach stint over TLS"));
        }
        let ttl = |key: &str, v: Option<String>, default: &str| -> Result<Ttl, ConfigError> {
            v.as_deref().unwrap_or(default).parse::<Ttl>().map_err(|e| err(origin, key, e))
        };
        let session_ttl = ttl("session.ttl", fc.session.ttl, "8h")?;
        if session_ttl.as_secs() > 24 * 3600 {
            return Err(err(origin, "session.ttl", "sessions may last at most 24h; people re-authenticate daily"));
        }
        let audience = fc.tokens.audience.unwrap_or_else(|| vec!["stint".to_owned()]);
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(err(origin, "tokens.audience", "must list at least one non-empty audience"));
        }
        let admin_group = GroupName::parse(fc.admin.group.as_deref().unwrap_or("admins")).map_err(|e| err(origin, "admin.group", e))?;
        let trust_sources = fc
            .roles
            .iter()
            .map(|(name, r)| {
                (name.clone(), ci::RoleTrustSource { inline: r.trust_policy.clone(), file: r.trust_policy_file.clone(), ci_ttl: r.ci_ttl.clone() })
            })
            .collect();
        // Roles that approvals, break-glass or on-call schedules grant need no group of their own.
        let mut granted_elsewhere: Vec<String> = fc.approvals.as_ref().map(|a| a.roles.clone()).unwrap_or_default();
        if let Some(b) = &fc.break_glass {
            granted_elsewhere.push(b.role.clone().unwrap_or_else(|| "admin".into()));
        }
        granted_elsewhere.extend(fc.oncall.schedule.iter().flat_map(|s| s.grants.iter().cloned()));
        let roles = roles(fc.roles, &granted_elsewhere, origin)?;
        let (ci_issuers, ci, mut warnings) = ci::load(fc.ci, trust_sources, &roles, &base, origin)?;
        // Workloads a trust policy admits are permitted their role by a generated Cedar policy.
        let workload_policies: String = ci
            .trust
            .keys()
            .map(|r| {
                format!(
                    "@id(\"{r}: CI trust policy\")\npermit(principal is Stint::Workload, action == Stint::Action::\"assume\", resource == Stint::Role::{:?})\nwhen {{ context.source == \"ci\" }};\n",
                    r.as_str()
                )
            })
            .collect();
        let oncall::OnCall { schedules, feeds: oncall_feeds, policies: oncall_policies } = oncall::load(fc.oncall, &roles, &base, origin)?;
        let mut sources: Vec<_> = oncall_policies.into_iter().collect();
        if !workload_policies.is_empty() {
            sources.push(stint_core::authz::PolicySource { origin: "defaults (generated from the roles' trust policies)".into(), text: workload_policies });
        }
        let approvals = match fc.approvals {
            Some(a) => {
                let (cfg, policy) = approvals(a, &roles, &admin_group, origin)?;
                sources.push(policy);
                Some(cfg)
            }
            None => None,
        };
        let break_glass = match fc.break_glass {
            Some(b) => {
                let (cfg, policy) = break_glass(b, &roles, origin)?;
                sources.push(policy);
                Some(cfg)
            }
            None => None,
        };
        sources.extend(policy_sources(&fc.policy.files, &base, origin)?);
        let webhooks = webhooks(fc.alerts.webhook, &base, origin)?;
        let roles = roles.with_policies(sources).map_err(|e| ConfigError { origin: origin.to_owned(), message: format!("policy: {e}") })?;
        let revalidate = oidc::revalidate(fc.identity.revalidate.as_deref(), origin)?;
        let (oidc, sso) = oidc::providers(fc.identity.oidc, &roles, &public_url, origin)?;
        let scim = scim(fc.scim, &sso, origin)?;
        let backends = backends::load(fc.backends, &roles, &base, origin)?;
        warnings.extend(backends.warnings());
        warnings.extend(
            sso.iter()
                .filter(|p| p.insecure_assume_email_verified)
                .map(|p| format!("identity provider {}: insecure_assume_email_verified counts an email as verified when the provider does not say so", p.name)),
        );
        let throttle = ThrottleConfig {
            free: fc.login.free_failures.unwrap_or(5),
            free_per_address: fc.login.free_failures_per_address.unwrap_or(20),
            max_lock_secs: ttl("login.max_lockout", fc.login.max_lockout, "5m")?.as_secs() as i64,
            ..ThrottleConfig::default()
        };
        let reason_min_chars = fc.reasons.min_chars.unwrap_or(stint_core::reason::DEFAULT_MIN_CHARS);
        if !(1..=stint_core::reason::MAX_CHARS).contains(&reason_min_chars) {
            return Err(err(origin, "reasons.min_chars", format!("must be 1-{}: a reason says something", stint_core::reason::MAX_CHARS)));
        }
        let limits = limits::load(fc.limits, tls == Tls::Proxy, origin)?;
        let broker = BrokerConfig {
            issuer: public_url,
            audience,
            session_ttl,
            roles,
            admin_group,
            enrollment_ttl: ttl("login.enrollment_ttl", fc.login.enrollment_ttl, "24h")?,
            bootstrap_ttl: ttl("bootstrap", None, "1h")?,
            throttle,
            sso,
            revalidate,
            ci,
            oncall: schedules,
            approvals,
            break_glass,
            ssh: backends.ssh.clone(),
            reason_min_chars,
            caps: limits.caps,
            folding: limits.folding,
            scim,
            expiry_alert: ttl("users.expiry_alert", fc.users.expiry_alert, "7d")?,
            accounts: accounts(fc.users.account, origin)?,
            named_people: oncall_feeds.iter().flat_map(|f| f.people_map.iter().map(|(_, u)| u.clone())).collect(),
        };
        let bench_floor = fc.bench.floor.unwrap_or(false);
        let replicas = replicas(&fc.postgres, origin, &mut warnings)?;
        Ok(Config {
            source,
            listen,
            data_dir,
            store,
            store_timeouts,
            replicas,
            master_key_file: over.master_key_file.or(fc.master_key_file),
            log_format,
            tls,
            broker,
            bench_floor,
            oidc,
            ci_issuers,
            oncall_feeds,
            webhooks,
            backends,
            limits,
            warnings,
        })
    }

    /// The effective configuration as TOML-like JSON, with secrets redacted.
    pub fn redacted(&self) -> serde_json::Value {
        let roles: BTreeMap<String, &RoleDef> = self.broker.roles.iter().map(|r| (r.name.to_string(), r)).collect();
        serde_json::json!({
            "source": self.source.as_ref().map(|p| p.display().to_string()),
            "listen": self.listen.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "store": stint_core::spec::describe(&self.store),
            "postgres": {
                "idle_in_transaction_timeout": format!("{}s", self.store_timeouts.idle_in_transaction_secs),
                "lock_timeout": format!("{}s", self.store_timeouts.lock_secs),
                "statement_timeout": format!("{}s", self.store_timeouts.statement_secs),
                "reread_interval": format!("{}s", self.replicas.reread.as_secs()),
                "danger_ignore_notifications": !self.replicas.listen,
            },
            "master_key_file": self.master_key_file.as_ref().map_or_else(|| format!("{} (generated; one machine only)", self.data_dir.join("master.key").display()), |p| p.display().to_string()),
            "public_url": self.broker.issuer,
            "log_format": self.log_format,
            "tls": self.tls.describe(),
            "session": { "ttl": self.broker.session_ttl },
            "tokens": { "audience": self.broker.audience },
            "admin": { "group": self.broker.admin_group },
            "login": { "free_failures": self.broker.throttle.free, "free_failures_per_address": self.broker.throttle.free_per_address, "max_lockout": format!("{}s", self.broker.throttle.max_lock_secs), "enrollment_ttl": self.broker.enrollment_ttl },
            "roles": roles,
            "identity": { "revalidate": self.broker.revalidate, "oidc": self.broker.sso.iter().zip(&self.oidc).map(|(p, c)| serde_json::json!({
                "name": p.name,
                "issuer": p.issuer,
                "client_id": p.client_id,
                "client_secret": "<redacted>",
                "scopes": c.scopes,
                "redirect_uri": c.redirect_uri,
                "allowed_domains": p.allowed_domains,
                "insecure_assume_email_verified": p.insecure_assume_email_verified,
                "mfa_amr": p.mfa_amr,
                "mfa_acr": p.mfa_acr,
                "step_up_totp": p.step_up_totp,
                "groups": p.groups,
                "session_ttl": p.session_ttl,
                "provider_session": p.provider_session,
            })).collect::<Vec<_>>() },
            "ci": {
                "clock_skew": format!("{}s", self.broker.ci.skew_secs),
                "issuer": self.broker.ci.issuers.iter().map(|i| serde_json::json!({ "name": i.name, "url": i.url })).collect::<Vec<_>>(),
                "trust": self.broker.ci.trust.iter().map(|(r, t)| (r.to_string(), serde_json::json!({ "ci_ttl": t.ttl, "statements": t.policy.statements.len() }))).collect::<BTreeMap<_, _>>(),
            },
            "backends": self.backends.redacted(),
            "warnings": self.warnings,
            "bench": { "floor": self.bench_floor },
            "reasons": { "min_chars": self.broker.reason_min_chars },
            "limits": self.limits.redacted(),
        })
    }

    /// A digest of the effective configuration, recorded in the audit log at each start.
    pub fn digest(&self) -> String {
        use std::hash::{Hash, Hasher};
        // Not a security hash: it only lets a reader see that the configuration changed.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.redacted().to_string().hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

fn roles(sections: BTreeMap<String, RoleSection>, granted_elsewhere: &[String], origin: &str) -> Result<Roles, ConfigError> {
    let mut roles = Roles::builtin();
    for (name, s) in sections {
        let key = |k: &str| format!("roles.{name}.{k}");
        let rname = RoleName::parse(&name).map_err(|e| err(origin, &format!("roles.{name}"), e))?;
        let base = roles.get(&rname).cloned();
        let max_ttl = match (s.max_ttl, &base) {
            (Some(v), _) => v.parse::<Ttl>().map_err(|e| err(origin, &key("max_ttl"), e))?,
            (None, Some(b)) => b.max_ttl,
            (None, None) => return Err(err(origin, &key("max_ttl"), "a new role needs a max_ttl")),
        };
        if max_ttl.as_secs() > 24 * 3600 {
            return Err(err(origin, &key("max_ttl"), "credentials may live at most 24h"));
        }
        let groups = match (s.groups, &base) {
            (Some(g), _) => g.iter().map(|g| GroupName::parse(g)).collect::<Result<Vec<_>, _>>().map_err(|e| err(origin, &key("groups"), e))?,
            (None, Some(b)) => b.groups.clone(),
            (None, None) => vec![],
        };
        let everyone = s.everyone.or(base.as_ref().map(|b| b.everyone)).unwrap_or(false);
        let service_ttl = match (s.service_ttl, &base) {
            (Some(v), _) => Some(v.parse::<Ttl>().map_err(|e| err(origin, &key("service_ttl"), e))?),
            (None, Some(b)) => b.service_ttl,
            (None, None) => None,
        };
        if service_ttl.is_some_and(|t| t > max_ttl) {
            return Err(err(origin, &key("service_ttl"), format!("must not exceed the role's max_ttl ({max_ttl})")));
        }
        let trusted = s.trust_policy.is_some() || s.trust_policy_file.is_some() || service_ttl.is_some() || granted_elsewhere.contains(&name);
        if !everyone && groups.is_empty() && !trusted {
            return Err(err(
                origin,
                &key("groups"),
                "nobody could assume this role: set groups, everyone = true, a trust_policy or (for workloads) a service_ttl, or grant it through [approvals], [break_glass] or an on-call schedule",
            ));
        }
        let description = s.description.or(base.map(|b| b.description)).unwrap_or_default();
        roles.set(RoleDef { name: rname, max_ttl, everyone, groups, description, service_ttl }).map_err(|e| err(origin, &format!("roles.{name}"), e))?;
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let fc: FileConfig = toml::from_str(toml).map_err(|e| ConfigError { origin: "test.toml".into(), message: e.to_string() })?;
        Config::validate(fc, Overrides::default(), None, "test.toml")
    }

    #[test]
    fn zero_config_defaults() {
        let c = load_str("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7807");
        assert_eq!(c.store, "sqlite");
        assert_eq!(c.broker.session_ttl.as_secs(), 8 * 3600);
        assert_eq!(c.broker.issuer, "http://127.0.0.1:7807");
        assert_eq!(c.broker.roles.iter().count(), 3);
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = load_str("lisen = \"x\"").unwrap_err().to_string();
        assert!(e.contains("test.toml") && e.contains("lisen"), "{e}");
        let e = load_str("[session]\nttl = \"forever\"").unwrap_err().to_string();
        assert!(e.contains("test.toml: key `session.ttl`") && e.contains("invalid duration"), "{e}");
        let e = load_str("[roles.deploy]\nmax_ttl = \"15m\"").unwrap_err().to_string();
        assert!(e.contains("roles.deploy.groups"), "{e}");
        let e = load_str("[roles.deploy]\ngroups = [\"ci\"]\nmax_ttl = \"15m\"\ncolour = 1").unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn aws_backends_take_only_names_sts_takes() {
        let aws = |region: &str, arn: &str| format!("[[backends.aws]]\nname = \"aws\"\nregion = {region:?}\n[backends.aws.roles]\ndeveloper = {arn:?}\n");
        let ok = load_str(&aws("eu-west-1", "arn:aws:iam::123456789012:role/team/deploy")).unwrap();
        assert_eq!(ok.backends.aws[0].region, "eu-west-1");
        // The checks are stint_core::aws's, the ones the backend and the STS call make: what
        // loads here is what STS is sent.
        for (region, arn, key, says) in [
            ("eu west", "arn:aws:iam::123456789012:role/deploy", "backends.aws[0].region", "not a region name"),
            ("eu-west-1", "arn:aws:iam::1234:role/deploy", "backends.aws[0].roles", "not an IAM role ARN"),
            ("eu-west-1", "arn:aws:iam::123456789012:role/de ploy", "backends.aws[0].roles", "not an IAM role ARN"),
            ("eu-west-1", "arn:aws:iam::123456789012:user/alice", "backends.aws[0].roles", "not an IAM role ARN"),
        ] {
            let e = load_str(&aws(region, arn)).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(says), "{region} {arn}: {e}");
        }
    }

    #[test]
    fn tls_settings_are_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("stint-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, other) = (stint_testkit::tls::TestCa::new("ca"), stint_testkit::tls::TestCa::new("other"));
        let (a, b) = (ca.issue(&["127.0.0.1"]), other.issue(&["127.0.0.1"]));
        for (name, text) in [("cert.pem", &a.cert_pem), ("key.pem", &a.key_pem), ("other-key.pem", &b.key_pem)] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let files = |cert: &str, key: &str| format!("tls_cert_file = {:?}\ntls_key_file = {:?}\n", dir.join(cert), dir.join(key));
        let served = load_str(&format!("listen = \"0.0.0.0:7807\"\n{}", files("cert.pem", "key.pem"))).unwrap();
        assert!(matches!(served.tls, Tls::Serve(_)));
        assert_eq!(served.broker.issuer, "https://0.0.0.0:7807", "the default public URL is https");
        for (toml, says) in [
            (files("cert.pem", "other-key.pem"), "is not the key of the certificate"),
            (files("key.pem", "key.pem"), "no certificate in it"),
            (format!("tls_cert_file = {:?}", dir.join("cert.pem")), "tls_key_file"),
            ("tls = \"on\"".to_owned(), "is not \"proxy\""),
            (format!("tls = \"proxy\"\n{}", files("cert.pem", "key.pem")), "remove tls_cert_file"),
            ("listen = \"0.0.0.0:7807\"\ntls = \"proxy\"\n[limits]\ntrusted_proxies = [\"10.0.0.5\"]".to_owned(), "public_url"),
            ("tls = \"proxy\"\npublic_url = \"https://stint.example.com\"".to_owned(), "limits.trusted_proxies"),
            ("tls = \"proxy\"\npublic_url = \"http://stint.example.com\"\n[limits]\ntrusted_proxies = [\"10.0.0.5\"]".to_owned(), "must be an https://"),
            ("listen = \"[::]:7807\"".to_owned(), "clear text"),
        ] {
            let e = load_str(&toml).unwrap_err().to_string();
            assert!(e.contains(says), "{toml}: {e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn roles_extend_and_override_builtins() {
        let c = load_str("[roles.deploy]\nmax_ttl = \"15m\"\ngroups = [\"ci\"]\n[roles.admin]\nmax_ttl = \"30m\"").unwrap();
        let admin = c.broker.roles.get(&RoleName::parse("admin").unwrap()).unwrap();
        assert_eq!(admin.max_ttl.as_secs(), 1800);
        assert_eq!(admin.groups[0].as_str(), "admins", "unset fields keep the built-in value");
        assert!(c.broker.roles.get(&RoleName::parse("deploy").unwrap()).is_some());
    }

    #[test]
    fn overrides_win_over_file() {
        let fc: FileConfig = toml::from_str("listen = \"127.0.0.1:1\"").unwrap();
        let c = Config::validate(fc, Overrides { listen: Some("127.0.0.1:2".into()), ..Default::default() }, None, "f").unwrap();
        assert_eq!(c.listen.port(), 2);
    }

    const GOOGLE: &str = "[[identity.oidc]]\nname = \"google\"\nissuer = \"https://accounts.google.com\"\nclient_id = \"abc.apps.googleusercontent.com\"\n";

    #[test]
    fn oidc_secret_comes_from_a_file_or_the_environment_never_plainly_inline() {
        let e = load_str(&format!("{GOOGLE}client_secret = \"s3cret\"")).unwrap_err().to_string();
        assert!(e.contains("client_secret"), "a plain inline secret is an unknown key: {e}");
        let e = load_str(GOOGLE).unwrap_err().to_string();
        assert!(e.contains("identity.oidc[0].client_secret_file") && e.contains("exactly one"), "{e}");
        let c = load_str(&format!("{GOOGLE}danger_client_secret = \"s3cret\"")).unwrap();
        assert_eq!(c.oidc[0].client_secret.expose(), "s3cret");
        assert!(!c.redacted().to_string().contains("s3cret"));

        let dir = std::env::temp_dir().join(format!("stint-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = load_str(&format!("{GOOGLE}client_secret_file = {:?}", file.display().to_string())).unwrap();
        assert_eq!(c.oidc[0].client_secret.expose(), "from-file");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = load_str(&format!("{GOOGLE}client_secret_env = \"STINT_TEST_NO_SUCH_VARIABLE\"")).unwrap_err().to_string();
        assert!(e.contains("STINT_TEST_NO_SUCH_VARIABLE is not set"), "{e}");
    }

    #[test]
    fn revalidation_interval_defaults_to_15m_within_bounds() {
        assert_eq!(load_str("").unwrap().broker.revalidate.as_secs(), 15 * 60);
        let c = load_str("[identity]\nrevalidate = \"5m\"\n").unwrap();
        assert_eq!(c.broker.revalidate.as_secs(), 300);
        assert_eq!(c.redacted()["identity"]["revalidate"], "5m");
        for bad in ["30s", "9h", "soon"] {
            let e = load_str(&format!("[identity]\nrevalidate = \"{bad}\"\n")).unwrap_err().to_string();
            assert!(e.contains("identity.revalidate"), "{bad}: {e}");
        }
    }

    #[test]
    fn oidc_rules_are_validated() {
        let ok = format!("{GOOGLE}danger_client_secret = \"x\"\n");
        let c = load_str(&format!("{ok}allowed_domains = [\"Acme.com\"]\n[identity.oidc.roles]\n\"eng@acme.com\" = [\"developer\", \"readonly\"]")).unwrap();
        let p = &c.broker.sso[0];
        assert_eq!((p.name.as_str(), p.session_ttl.as_secs(), p.skew_secs), ("google", 8 * 3600, 60));
        assert_eq!(p.allowed_domains, ["acme.com"]);
        assert_eq!(p.groups["eng@acme.com"], [GroupName::parse("developers").unwrap()], "a role maps to the groups that may assume it");
        assert_eq!(c.oidc[0].redirect_uri, "http://127.0.0.1:7807/v1/sso/callback");
        for (extra, key) in [
            ("session_ttl = \"9h\"", "session_ttl"),
            ("clock_skew = \"10m\"", "clock_skew"),
            ("scopes = [\"email\"]", "scopes"),
            ("[identity.oidc.roles]\neng = [\"superuser\"]", "roles"),
            ("[identity.oidc.auth_params]\nnonce = \"fixed\"", "auth_params"),
            ("mfa_amr = []", "mfa_amr"),
        ] {
            let e = load_str(&format!("{ok}{extra}")).unwrap_err().to_string();
            assert!(e.contains(&format!("identity.oidc[0].{key}")), "{extra}: {e}");
        }
        let e = load_str(&ok.replace("https://accounts.google.com", "http://accounts.google.com")).unwrap_err().to_string();
        assert!(e.contains("must be an https:// URL"), "{e}");
        let e = load_str(&format!("{ok}{ok}")).unwrap_err().to_string();
        assert!(e.contains("two providers are named"), "{e}");
    }

    #[test]
    fn a_role_granted_only_by_approval_or_break_glass_needs_no_group() {
        let e = load_str("[roles.admin]\ngroups = []\n").unwrap_err().to_string();
        assert!(e.contains("roles.admin.groups") && e.contains("[approvals]"), "{e}");
        assert!(load_str("[roles.admin]\ngroups = []\n[approvals]\nroles = [\"admin\"]\n").is_ok());
        assert!(load_str("[roles.admin]\ngroups = []\n[break_glass]\n").is_ok());
    }

    #[test]
    fn postgres_timeouts_are_bounded_and_a_lock_outwaits_an_idle_transaction() {
        let d = load_str("").unwrap().store_timeouts;
        assert_eq!((d.idle_in_transaction_secs, d.lock_secs, d.statement_secs), (1, 3, 5));
        let t = load_str("[postgres]\nidle_in_transaction_timeout = \"2s\"\nlock_timeout = \"10s\"\nstatement_timeout = \"1m\"").unwrap().store_timeouts;
        assert_eq!((t.idle_in_transaction_secs, t.lock_secs, t.statement_secs), (2, 10, 60));
        for (toml, key) in [
            ("[postgres]\nstatement_timeout = \"10m\"", "postgres.statement_timeout"),
            ("[postgres]\nidle_in_transaction_timeout = \"0s\"", "postgres.idle_in_transaction_timeout"),
            ("[postgres]\nlock_timeout = \"soon\"", "postgres.lock_timeout"),
            ("[postgres]\nidle_in_transaction_timeout = \"3s\"\nlock_timeout = \"3s\"", "postgres.lock_timeout"),
        ] {
            let e = load_str(toml).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn replicas_reread_is_bounded_and_ignoring_notices_is_warned() {
        let d = load_str("").unwrap();
        assert_eq!(d.replicas, Replicas { reread: std::time::Duration::from_secs(10), listen: true });
        let c = load_str("[postgres]\nreread_interval = \"1s\"\ndanger_ignore_notifications = true").unwrap();
        assert_eq!(c.replicas, Replicas { reread: std::time::Duration::from_secs(1), listen: false });
        assert!(c.warnings.iter().any(|w| w.contains("danger_ignore_notifications")), "{:?}", c.warnings);
        for toml in ["[postgres]\nreread_interval = \"0s\"", "[postgres]\nreread_interval = \"10m\""] {
            let e = load_str(toml).unwrap_err().to_string();
            assert!(e.contains("postgres.reread_interval"), "{toml}: {e}");
        }
    }

    #[test]
    fn store_password_is_redacted() {
        let c = load_str("store = \"postgres://stint:s3cret@db:5432/stint\"").unwrap();
        let shown = c.redacted().to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        let c = load_str("store = \"postgres://stint@db/stint?password=hunter2\"").unwrap();
        assert!(!c.redacted().to_string().contains("hunter2"));
        assert!(shown.contains("postgres://stint:<redacted>@db:5432/stint"), "{shown}");
    }
}
