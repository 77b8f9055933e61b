//! The credentials the agent holds and what it serves from them: pure, no I/O.
//!
//! A [`Held`] credential is the server's [`CredsResponse`] with its values as secrets (zeroized
//! on drop, printed as `<redacted>`). From it come the AWS container credentials body
//! (PROTOCOLS.md §1), the `KEY=value` lines of `--env-file` and the role token of
//! `--token-file`. What the endpoint answers one request is decided in
//! [`stint_api::loopback::agent`], where the fuzz targets reach it.

use std::collections::BTreeMap;
use std::time::Duration;

pub use stint_api::loopback::agent::Served;
use stint_api::CredsResponse;
use stint_core::secret::SecretString;
use stint_core::Timestamp;

/// A credential as the agent keeps it.
#[derive(Debug)]
pub struct Held {
    pub backend: String,
    /// `aws`, `token`, `postgres`, `ssh`.
    pub kind: String,
    pub role: String,
    pub lease_id: Option<String>,
    pub expires_at: Timestamp,
    /// How long it lives from the moment it was received, by the server's `expires_in` and,
    /// if sooner, its `expires_at` by this machine's clock.
    pub lifetime: Duration,
    values: BTreeMap<String, SecretString>,
    /// Environment variable → the name of the value it carries.
    env: BTreeMap<String, String>,
}

impl Held {
    /// Takes the server's answer, received at `now_ms` (milliseconds since the epoch by this
    /// machine's clock: `expires_at` has whole seconds, and the credential must not be served
    /// in the fraction of a second past it).
    pub fn from_response(r: CredsResponse, now_ms: i64) -> Result<Held, String> {
        let expires_at = Timestamp::parse_rfc3339(&r.expires_at).ok_or("the server's credential has no valid expires_at")?;
        let by_clock = expires_at.0.saturating_mul(1000).saturating_sub(now_ms).max(0) as u64;
        let lifetime = Duration::from_millis(r.expires_in.saturating_mul(1000).min(by_clock));
        let values = r
            .values
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, SecretString::new(text))
            })
            .collect();
        Ok(Held { backend: r.backend, kind: r.kind, role: r.role, lease_id: r.lease_id, expires_at, lifetime, values, env: r.env })
    }

    /// One of the credential's values by name (`token`, `access_key_id`, `password`, …).
    pub fn value(&self, name: &str) -> Option<&SecretString> {
        self.values.get(name)
    }

    /// The role token of a `token` credential, for `--token-file`.
    pub fn token(&self) -> Result<&SecretString, String> {
        self.value("token").ok_or_else(|| format!("the {} credential of backend {} carries no token", self.kind, self.backend))
    }

    /// The AWS container credentials body (PROTOCOLS.md §1) of an `aws` credential.
    pub fn container_body(&self) -> Result<SecretString, String> {
        if self.kind != "aws" {
            return Err(format!("backend {} issues {} credentials, not AWS keys", self.backend, self.kind));
        }
        let get = |k: &str| self.value(k).map(SecretString::expose).ok_or_else(|| format!("the server's AWS credential has no {k}"));
        let role_arn = self.value("role_arn").map_or("", SecretString::expose);
        let body = serde_json::json!({
            "AccessKeyId": get("access_key_id")?,
            "SecretAccessKey": get("secret_access_key")?,
            "Token": get("session_token")?,
            "Expiration": self.expires_at.to_rfc3339(),
            "RoleArn": role_arn,
            "AccountId": account_id(role_arn).unwrap_or_default(),
        });
        Ok(SecretString::new(body.to_string()))
    }

    /// `--env-file`'s contents: `STINT_ROLE`, `STINT_EXPIRES_AT` and the credential's own
    /// variables (`PGPASSWORD`, `AWS_ACCESS_KEY_ID`, …), one `KEY=value` a line.
    pub fn env_file(&self) -> SecretString {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| {
            out.push_str(k);
            out.push('=');
            out.push_str(&env_value(v));
            out.push('\n');
        };
        line("STINT_ROLE", &self.role);
        line("STINT_EXPIRES_AT", &self.expires_at.to_rfc3339());
        for (var, name) in &self.env {
            if let Some(v) = self.value(name) {
                line(var, v.expose());
            }
        }
        SecretString::new(out)
    }
}

/// The account of an IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role/NAME`.
pub fn account_id(role_arn: &str) -> Option<String> {
    stint_core::aws::RoleArn::parse(role_arn).ok().map(|arn| arn.account().to_owned())
}

/// A value as env files take it: bare when it is plain, else single-quoted (systemd's
/// `EnvironmentFile`, dotenv and POSIX shells all read that back unchanged).
fn env_value(v: &str) -> String {
    let plain = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+=,%".contains(&b));
    if plain {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(2_000_000_000);
    const NOW_MS: i64 = NOW.0 * 1000;

    fn response(kind: &str, values: &[(&str, &str)], env: &[(&str, &str)]) -> CredsResponse {
        CredsResponse {
            backend: kind.into(),
            kind: kind.into(),
            role: "api-service".into(),
            lease_id: Some("l_x".into()),
            issued_at: NOW.to_rfc3339(),
            expires_at: Timestamp(NOW.0 + 3600).to_rfc3339(),
            expires_in: 3600,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            values: values.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).into()))).collect(),
        }
    }

    fn aws() -> Held {
        let values = [
            ("access_key_id", "ASIAEXAMPLE"),
            ("secret_access_key", "s3cr3t"),
            ("session_token", "tok"),
            ("role_arn", "arn:aws:iam::123456789012:role/api"),
            ("region", "eu-west-1"),
        ];
        Held::from_response(response("aws", &values, &[("AWS_ACCESS_KEY_ID", "access_key_id")]), NOW_MS).unwrap()
    }

    #[test]
    fn aws_credentials_are_served_in_the_container_format_with_exactly_its_fields() {
        let body: serde_json::Value = serde_json::from_str(aws().container_body().unwrap().expose()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "AccessKeyId": "ASIAEXAMPLE",
                "SecretAccessKey": "s3cr3t",
                "Token": "tok",
                "Expiration": "2033-05-18T04:33:20Z",
                "RoleArn": "arn:aws:iam::123456789012:role/api",
                "AccountId": "123456789012",
            })
        );
        let pg = Held::from_response(response("postgres", &[("password", "p")], &[]), NOW_MS).unwrap();
        assert!(pg.container_body().unwrap_err().contains("postgres credentials, not AWS keys"));
        let partial = Held::from_response(response("aws", &[("access_key_id", "A")], &[]), NOW_MS).unwrap();
        assert!(partial.container_body().unwrap_err().contains("secret_access_key"));
        assert!(!format!("{:?}", aws()).contains("s3cr3t"), "Debug redacts the values");
    }

    #[test]
    fn the_account_comes_from_the_role_arn() {
        assert_eq!(account_id("arn:aws:iam::123456789012:role/x"), Some("123456789012".to_owned()));
        assert_eq!(account_id("arn:aws-cn:iam::000000000001:role/a/b"), Some("000000000001".to_owned()));
        for junk in ["", "arn:aws:iam::12:role/x", "role/x", "arn:aws:iam::abcdefghijkl:role/x", "nra:aws:iam::123456789012:role/x"] {
            assert_eq!(account_id(junk), None, "{junk}");
        }
    }

    #[test]
    fn the_lifetime_is_the_sooner_of_expires_in_and_expires_at_by_this_clock() {
        assert_eq!(aws().lifetime, Duration::from_secs(3600));
        let late_clock = Held::from_response(response("token", &[("token", "t")], &[]), NOW_MS + 600_000).unwrap();
        assert_eq!(late_clock.lifetime, Duration::from_secs(3000));
        let late_in_the_second = Held::from_response(response("token", &[("token", "t")], &[]), NOW_MS + 900).unwrap();
        assert_eq!(late_in_the_second.lifetime, Duration::from_millis(3_599_100), "never past expires_at, to the millisecond");
        let past = Held::from_response(response("token", &[("token", "t")], &[]), NOW_MS + 9_999_000).unwrap();
        assert_eq!(past.lifetime, Duration::ZERO);
        let mut bad = response("token", &[], &[]);
        bad.expires_at = "soon".into();
        assert!(Held::from_response(bad, NOW_MS).is_err());
    }

    #[test]
    fn env_files_carry_the_credentials_variables_quoted_when_needed() {
        let values = [("username", "stint_api_x"), ("password", "p'w d"), ("host", "db.internal"), ("port", "5432")];
        let env = [("PGUSER", "username"), ("PGPASSWORD", "password"), ("PGHOST", "host"), ("PGPORT", "port"), ("MISSING", "nope")];
        let pg = Held::from_response(response("postgres", &values, &env), NOW_MS).unwrap();
        assert_eq!(
            pg.env_file().expose(),
            "STINT_ROLE=api-service\nSTINT_EXPIRES_AT=2033-05-18T04:33:20Z\nPGHOST=db.internal\nPGPASSWORD='p'\\''w d'\nPGPORT=5432\nPGUSER=stint_api_x\n"
        );
        assert!(pg.token().is_err());
        let t = Held::from_response(response("token", &[("token", "eyJ.x.y")], &[]), NOW_MS).unwrap();
        assert_eq!(t.token().unwrap().expose(), "eyJ.x.y");
    }
}
