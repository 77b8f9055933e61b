//! The shared credentials file (`~/.aws/credentials`), as the AWS SDKs & Tools Reference
//! Guide describes it: an INI file of `[profile-name]` sections (in this file, *without* the
//! `profile ` prefix the config file uses) holding `aws_access_key_id`,
//! `aws_secret_access_key` and optionally `aws_session_token`.
//!
//! Lines starting with `#` or `;` are comments; keys are matched case-insensitively; indented
//! lines continue a previous property (used for nested settings) and are skipped; a section
//! that appears twice is merged, later values winning. Only static keys are read: a profile
//! that needs `~/.aws/config` (SSO, `credential_process`, `role_arn`) is not supported, and
//! selecting one explicitly with `AWS_PROFILE` is an error that says so.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{read_small_file, AmbientEnv};
use crate::error::{Error, Result};
use crate::secret::{Credentials, SecretString};

const MAX_FILE: u64 = 1 << 20;

/// Credentials from the profile the environment selects, `None` if there is no file or (for
/// the implicit `default` profile) no such profile.
pub(crate) fn load(env: &AmbientEnv) -> Result<Option<Credentials>> {
    let explicit_file = env.shared_credentials_file.is_some();
    let Some(path) = path(env) else { return Ok(None) };
    let Some(text) = read_small_file(&path, MAX_FILE, "the shared credentials file")? else {
        if explicit_file {
            return Err(Error::Config(format!("AWS_SHARED_CREDENTIALS_FILE names {}, which does not exist", path.display())));
        }
        return Ok(None);
    };
    let name = env.profile.as_deref().unwrap_or("default");
    let explicit_profile = env.profile.is_some();
    let mut profiles = parse(text.expose());
    let Some(mut props) = profiles.remove(name) else {
        if explicit_profile {
            return Err(Error::Config(format!("AWS_PROFILE is {name:?} but {} has no [{name}] section", path.display())));
        }
        return Ok(None);
    };
    let id = props.remove("aws_access_key_id");
    let secret = props.remove("aws_secret_access_key");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some(match props.remove("aws_session_token") {
            Some(token) => Credentials::temporary(id.expose(), secret, token, None),
            None => Credentials::new(id.expose(), secret),
        })),
        (None, None) if !explicit_profile => Ok(None),
        _ => Err(Error::Config(format!(
            "profile [{name}] in {} needs both aws_access_key_id and aws_secret_access_key \
             (profiles that use SSO, credential_process or role_arn are not supported)",
            path.display()
        ))),
    }
}

/// `AWS_SHARED_CREDENTIALS_FILE` (a leading `~/` is the home directory), else `~/.aws/credentials`.
fn path(env: &AmbientEnv) -> Option<PathBuf> {
    match &env.shared_credentials_file {
        Some(p) => match (p.strip_prefix("~").ok(), &env.home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(p.clone()),
        },
        None => env.home.as_ref().map(|h| h.join(".aws").join("credentials")),
    }
}

/// Section name → (lower-cased key → value). Values are kept whole (trimmed), as secrets.
fn parse(text: &str) -> HashMap<String, HashMap<String, SecretString>> {
    let mut profiles: HashMap<String, HashMap<String, SecretString>> = HashMap::new();
    let mut current: Option<String> = None;
    // After `s3 =` (an empty value), indented lines are that property's nested settings.
    let mut in_nested = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if in_nested && raw.starts_with([' ', '\t']) {
            continue;
        }
        in_nested = false;
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split_once(']').map(|(name, _)| name.trim().to_owned());
            if let Some(name) = &current {
                profiles.entry(name.clone()).or_default();
            }
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            in_nested = value.trim().is_empty();
            if let Some(props) = profiles.get_mut(section) {
                props.insert(key.trim().to_ascii_lowercase(), SecretString::new(value.trim()));
            }
        }
    }
    profiles
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

; another comment
[ci]
AWS_ACCESS_KEY_ID=ASIACI
aws_secret_access_key=ci/secret+key
aws_session_token = FwoGZXIvYXdzEJr//////////wEaDA==
s3 =
  max_concurrent_requests = 20

[sso-only]
role_arn = arn:aws:iam::123456789012:role/x

[indented]
  aws_access_key_id = AKIDINDENTED
  aws_secret_access_key = s
";

    #[test]
    fn parses_sections_keys_and_values() {
        let p = parse(FILE);
        assert_eq!(p["default"]["aws_secret_access_key"].expose(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        assert_eq!(p["ci"]["aws_access_key_id"].expose(), "ASIACI");
        assert_eq!(p["ci"]["aws_session_token"].expose(), "FwoGZXIvYXdzEJr//////////wEaDA==");
        assert!(!p["ci"].contains_key("max_concurrent_requests"));
        assert!(p.contains_key("sso-only"));
        assert_eq!(p["indented"]["aws_access_key_id"].expose(), "AKIDINDENTED");
    }

    fn env_with(file: &std::path::Path, profile: Option<&str>) -> AmbientEnv {
        AmbientEnv { shared_credentials_file: Some(file.to_owned()), profile: profile.map(str::to_owned), ..AmbientEnv::default() }
    }

    #[test]
    fn loads_the_selected_profile_and_explains_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("stint-aws-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("credentials");
        std::fs::write(&file, FILE).expect("write");

        let c = load(&env_with(&file, None)).expect("ok").expect("default");
        assert_eq!(c.access_key_id(), "AKIDDEFAULT");
        assert!(c.session_token().is_none());
        let c = load(&env_with(&file, Some("ci"))).expect("ok").expect("ci");
        assert_eq!(c.session_token().map(SecretString::expose), Some("FwoGZXIvYXdzEJr//////////wEaDA=="));

        let e = load(&env_with(&file, Some("nope"))).expect_err("missing profile");
        assert!(e.to_string().contains("[nope]"), "{e}");
        let e = load(&env_with(&file, Some("sso-only"))).expect_err("unsupported profile");
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(!e.to_string().contains("wJalr"), "{e}");

        let e = load(&env_with(&dir.join("absent"), None)).expect_err("named file missing");
        assert!(e.to_string().contains("AWS_SHARED_CREDENTIALS_FILE"), "{e}");
        let home = AmbientEnv { home: Some(dir.join("no-home")), ..AmbientEnv::default() };
        assert!(load(&home).expect("ok").is_none(), "no ~/.aws/credentials is fine");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn tilde_means_home() {
        let env = AmbientEnv { shared_credentials_file: Some("~/creds".into()), home: Some("/home/stint".into()), ..AmbientEnv::default() };
        assert_eq!(path(&env), Some(PathBuf::from("/home/stint/creds")));
    }
}
