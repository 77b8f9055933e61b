//! Finding long-lived credentials where they live in code and configuration (`stint scan`,
//! `docs/scan.md`): AWS access keys with their secret nearby, containers and `.env` files given
//! AWS keys, CI workflows reading them from repository secrets, Terraform creating them, and
//! private keys.
//!
//! [`scan`] reads one file's bytes and returns what it found; walking a tree, reading files and
//! printing are the CLI's. A finding never carries a secret: a key id is shown as its first
//! and last four characters, a secret only by the line it is on.
//!
//! One Aho-Corasick pass over the bytes finds every place worth a look (most files have none),
//! and only there are the rules checked, so the cost of a file is one linear pass.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use serde::Serialize;

/// Each rule: what it finds, how bad it is, and what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// `AKIA…` with a 40-character secret within a few lines.
    AwsAccessKeyWithSecret,
    /// `AKIA…` alone.
    AwsAccessKey,
    /// `ASIA…` (temporary) with its secret nearby.
    AwsTemporaryKeyWithSecret,
    /// An ECS task definition or Kubernetes manifest setting `AWS_ACCESS_KEY_ID` or
    /// `AWS_SECRET_ACCESS_KEY` in a container's environment.
    ContainerEnvAwsKeys,
    /// A GitHub Actions workflow reading AWS keys from `secrets.AWS_…`.
    WorkflowAwsSecrets,
    /// A Terraform `aws_iam_access_key` resource.
    TerraformAccessKey,
    /// A `.env` file setting `AWS_ACCESS_KEY_ID` or `AWS_SECRET_ACCESS_KEY`.
    DotenvAwsKeys,
    /// `-----BEGIN … PRIVATE KEY-----`.
    PrivateKey,
}

/// How a finding is reported (SARIF's `level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::AwsAccessKeyWithSecret,
        Rule::AwsAccessKey,
        Rule::AwsTemporaryKeyWithSecret,
        Rule::ContainerEnvAwsKeys,
        Rule::WorkflowAwsSecrets,
        Rule::TerraformAccessKey,
        Rule::DotenvAwsKeys,
        Rule::PrivateKey,
    ];

    /// The stable id scripts and SARIF consumers match on.
    pub fn id(self) -> &'static str {
        match self {
            Rule::AwsAccessKeyWithSecret => "aws-access-key-with-secret",
            Rule::AwsAccessKey => "aws-access-key",
            Rule::AwsTemporaryKeyWithSecret => "aws-temporary-key-with-secret",
            Rule::ContainerEnvAwsKeys => "container-env-aws-keys",
            Rule::WorkflowAwsSecrets => "workflow-aws-secrets",
            Rule::TerraformAccessKey => "terraform-access-key",
            Rule::DotenvAwsKeys => "dotenv-aws-keys",
            Rule::PrivateKey => "private-key",
        }
    }

    pub fn level(self) -> Level {
        match self {
            Rule::AwsAccessKey | Rule::AwsTemporaryKeyWithSecret | Rule::PrivateKey => Level::Warning,
            _ => Level::Error,
        }
    }

    /// What it is, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Rule::AwsAccessKeyWithSecret => "An IAM user's long-lived access key with its secret",
            Rule::AwsAccessKey => "An IAM user's long-lived access key id",
            Rule::AwsTemporaryKeyWithSecret => "Temporary AWS credentials written down",
            Rule::ContainerEnvAwsKeys => "A container given AWS keys in its environment",
            Rule::WorkflowAwsSecrets => "A workflow reading AWS keys from repository secrets",
            Rule::TerraformAccessKey => "Terraform creating a long-lived access key",
            Rule::DotenvAwsKeys => "A .env file with AWS keys",
            Rule::PrivateKey => "A private key",
        }
    }

    /// What to do instead.
    pub fn hint(self) -> &'static str {
        match self {
            Rule::AwsAccessKeyWithSecret | Rule::AwsAccessKey => {
                "deactivate the key (`stint inventory` shows its owner), then give what used it short-lived credentials: `stint login` for a person, `stint ci login` for a pipeline, `stint agent` for a service"
            }
            Rule::AwsTemporaryKeyWithSecret => "do not keep credentials in files: let the tool ask stint each time (`credential_process = stint creds …`)",
            Rule::ContainerEnvAwsKeys => "move this service to `stint agent`: the SDK reads its container credentials endpoint, no keys in the environment",
            Rule::WorkflowAwsSecrets => "use `stint ci login` with the workflow's OIDC token, then delete the repository secrets",
            Rule::TerraformAccessKey => "remove the resource and give what used the key a stint role",
            Rule::DotenvAwsKeys => "run the program under `stint exec`, or have `stint agent --env-file` write the file with short-lived keys",
            Rule::PrivateKey => "an SSH key can give way to short-lived certificates (`stint ssh-cert`); other keys belong in a secret store",
        }
    }
}

/// One thing found in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    /// 1-based.
    pub line: u32,
    /// 1-based, in bytes.
    pub column: u32,
    /// What was found, masked: never a secret.
    pub shown: String,
}

/// How many lines before and after a key id its secret may be.
const SECRET_LINES: usize = 5;

/// The literals every rule starts from.
const NEEDLES: [&str; 7] = ["AKIA", "ASIA", "PRIVATE KEY-----", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "secrets.AWS_", "aws_iam_access_key"];

fn needles() -> &'static AhoCorasick {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    AC.get_or_init(|| AhoCorasick::new(NEEDLES).expect("fixed literals"))
}

/// What kind of file `path` is, for the rules that depend on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileKind {
    workflow: bool,
    terraform: bool,
    dotenv: bool,
    manifest: bool,
}

impl FileKind {
    /// From the path as the walker gives it (`/` or the platform's separator).
    pub fn of(path: &str) -> FileKind {
        let path = path.replace('\\', "/");
        let name = path.rsplit('/').next().unwrap_or("");
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        FileKind {
            workflow: path.contains(".github/workflows/") && matches!(ext.as_str(), "yml" | "yaml"),
            terraform: ext == "tf",
            dotenv: name == ".env" || name.starts_with(".env.") || name.ends_with(".env"),
            manifest: matches!(ext.as_str(), "json" | "yml" | "yaml"),
        }
    }
}

/// Everything found in one file's bytes. A file with a NUL byte in its first 8 KiB is binary
/// and is not read (as git and ripgrep decide).
pub fn scan(kind: FileKind, bytes: &[u8]) -> Vec<Finding> {
    if is_binary(bytes) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut lines = Lines::new(bytes);
    for m in needles().find_overlapping_iter(bytes) {
        let (start, end) = (m.start(), m.end());
        let (line, line_start, line_end) = lines.at(start);
        let text = &bytes[line_start..line_end];
        let column = (start - line_start + 1) as u32;
        let hit = match NEEDLES[m.pattern().as_usize()] {
            "AKIA" | "ASIA" => key_id(bytes, start).and_then(|id| {
                let secret = secret_near(bytes, &mut lines, line);
                let temporary = id.starts_with("ASIA");
                let rule = match (temporary, secret) {
                    (false, Some(_)) => Rule::AwsAccessKeyWithSecret,
                    (false, None) => Rule::AwsAccessKey,
                    (true, Some(_)) => Rule::AwsTemporaryKeyWithSecret,
                    (true, None) => return None,
                };
                let shown = match secret {
                    Some(l) => format!("{}…{} (its secret on line {l})", &id[..4], &id[16..]),
                    None => format!("{}…{}", &id[..4], &id[16..]),
                };
                Some((rule, shown))
            }),
            "PRIVATE KEY-----" => private_key(bytes, start, line_start).map(|label| (Rule::PrivateKey, format!("-----BEGIN {label}-----"))),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => {
                let name = &bytes[start..end];
                let name = std::str::from_utf8(name).unwrap_or_default();
                if !word_at(bytes, start, end) {
                    None
                } else if kind.dotenv && dotenv_sets(text, start - line_start, end - line_start) {
                    Some((Rule::DotenvAwsKeys, format!("{name}=…")))
                } else if kind.manifest && container_env(bytes, text, line_end, start - line_start, end - line_start) {
                    Some((Rule::ContainerEnvAwsKeys, format!("environment variable {name}")))
                } else {
                    None
                }
            }
            "secrets.AWS_" if kind.workflow => workflow_secret(bytes, end).map(|name| (Rule::WorkflowAwsSecrets, format!("secrets.{name}"))),
            "aws_iam_access_key" if kind.terraform => {
                terraform_resource(text, start - line_start).map(|name| (Rule::TerraformAccessKey, format!("resource \"aws_iam_access_key\" \"{name}\"")))
            }
            _ => None,
        };
        if let Some((rule, shown)) = hit {
            found.push(Finding { rule, line: line as u32, column, shown });
        }
    }
    // A line setting both variables in one container or file is one finding per variable;
    // the same rule twice on a line (a key id quoted twice) is one.
    found.dedup_by(|a, b| a.rule == b.rule && a.line == b.line && a.shown == b.shown);
    found
}

fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(8192)]).is_some()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `bytes[start..end]` is not part of a longer name.
fn word_at(bytes: &[u8], start: usize, end: usize) -> bool {
    (start == 0 || !is_word_byte(bytes[start - 1])) && bytes.get(end).is_none_or(|b| !is_word_byte(*b))
}

/// An AWS access key id at `start`: the four-letter prefix and 16 of `A-Z0-9`, not inside a
/// longer word, and not AWS's documentation example (`…EXAMPLE`).
fn key_id(bytes: &[u8], start: usize) -> Option<&str> {
    let id = bytes.get(start..start + 20)?;
    let alnum = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    if !id.iter().all(alnum) || (start > 0 && bytes[start - 1].is_ascii_alphanumeric()) || bytes.get(start + 20).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let id = std::str::from_utf8(id).ok()?;
    (!id.ends_with("EXAMPLE")).then_some(id)
}

/// The line (1-based) of a 40-character secret access key within [`SECRET_LINES`] of `line`.
fn secret_near(bytes: &[u8], lines: &mut Lines<'_>, line: usize) -> Option<usize> {
    let from = line.saturating_sub(SECRET_LINES).max(1);
    for l in from..=line + SECRET_LINES {
        let (start, end) = lines.span(l)?;
        if has_secret(&bytes[start..end]) {
            return Some(l);
        }
    }
    None
}

/// A run of exactly 40 characters of base64 (`A-Za-z0-9/+`) with upper and lower case letters
/// and a digit, as AWS's secrets are (a hex digest or a word is not).
fn has_secret(text: &[u8]) -> bool {
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    let mut i = 0;
    while i < text.len() {
        if !b64(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && b64(text[i]) {
            i += 1;
        }
        let run = &text[start..i];
        let bounded = text.get(i).is_none_or(|&b| b != b'=');
        if run.len() == 40 && bounded {
            let (upper, lower, digit) = (run.iter().any(u8::is_ascii_uppercase), run.iter().any(u8::is_ascii_lowercase), run.iter().any(u8::is_ascii_digit));
            if upper && lower && digit && !run.windows(7).any(|w| w == b"EXAMPLE") {
                return true;
            }
        }
    }
    false
}

/// `-----BEGIN <label>PRIVATE KEY-----` ending at `start`: the label, uppercase words.
fn private_key(bytes: &[u8], start: usize, line_start: usize) -> Option<String> {
    let before = &bytes[line_start..start];
    let begin = before.windows(11).rposition(|w| w == b"-----BEGIN ")?;
    let label = &before[begin + 11..];
    let ok = label.iter().all(|b| b.is_ascii_uppercase() || *b == b' ');
    ok.then(|| format!("{}PRIVATE KEY", clip(&String::from_utf8_lossy(label))))
}

/// `NAME=value` (or `export NAME=value`) with a literal value, the name first on its line.
fn dotenv_sets(text: &[u8], start: usize, end: usize) -> bool {
    let before = text[..start].trim_ascii();
    if !(before.is_empty() || before == b"export") {
        return false;
    }
    let rest = text[end..].trim_ascii_start();
    let Some(value) = rest.strip_prefix(b"=") else { return false };
    let value = value.trim_ascii();
    let value = value.strip_prefix(b"\"").or_else(|| value.strip_prefix(b"'")).unwrap_or(value);
    !(value.is_empty() || value.starts_with(b"$") || value.starts_with(b"\"") || value.starts_with(b"'"))
}

/// A container environment entry naming the variable: Kubernetes' `- name: AWS_…` (with its
/// `value:` or `valueFrom:` on the next lines) or an ECS task definition's
/// `{"name": "AWS_…", "value": …}`.
fn container_env(bytes: &[u8], text: &[u8], line_end: usize, start: usize, end: usize) -> bool {
    let before = text[..start].trim_ascii();
    let after = text[end..].trim_ascii();
    // ECS (JSON): "name": "AWS_SECRET_ACCESS_KEY"
    let json = before.ends_with(b"\"")
        && before[..before.len() - 1].trim_ascii_end().ends_with(b":")
        && {
            let key = before[..before.len() - 1].trim_ascii_end();
            let key = key[..key.len() - 1].trim_ascii_end();
            key.ends_with(b"\"name\"")
        }
        && after.starts_with(b"\"");
    // Kubernetes (YAML): - name: AWS_SECRET_ACCESS_KEY, then value/valueFrom.
    let yaml_name = {
        let b = before.strip_suffix(b"\"").or_else(|| before.strip_suffix(b"'")).unwrap_or(before).trim_ascii_end();
        let b = b.strip_prefix(b"-").unwrap_or(b).trim_ascii_start();
        (b == b"name:" || b == b"\"name\":") && (after.is_empty() || after == b"\"" || after == b"'")
    };
    let yaml = yaml_name && {
        let next = &bytes[line_end.min(bytes.len())..];
        let next = &next[..next.len().min(512)];
        next.windows(6).any(|w| w == b"value:") || next.windows(10).any(|w| w == b"valueFrom:")
    };
    json || yaml
}

/// `${{ secrets.AWS_<NAME> }}` where NAME is a key or a secret (not a role ARN or a region).
fn workflow_secret(bytes: &[u8], end: usize) -> Option<String> {
    let rest = &bytes[end..];
    let n = rest.iter().take_while(|b| is_word_byte(**b)).count();
    let name = std::str::from_utf8(&rest[..n]).ok()?.to_ascii_uppercase();
    let keyish = name.contains("ACCESS_KEY") || name.contains("SECRET") || name.contains("SESSION_TOKEN");
    keyish.then(|| format!("AWS_{}", clip(&name)))
}

/// `resource "aws_iam_access_key" "NAME"`, the type exact (not `aws_iam_access_keys`), the
/// name one Terraform allows.
fn terraform_resource(text: &[u8], at: usize) -> Option<String> {
    let before = text[..at].trim_ascii();
    let quoted_type = text.get(at.checked_sub(1)?..at + 19)? == b"\"aws_iam_access_key\"";
    if !(quoted_type && before.strip_suffix(b"\"")?.trim_ascii() == b"resource") {
        return None;
    }
    let rest = text[at + 19..].trim_ascii_start().strip_prefix(b"\"")?;
    // A Terraform name: letters, digits, `_` and `-`.
    let n = rest.iter().take(64).take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-').count();
    (n > 0 && rest.get(n) == Some(&b'"')).then(|| clip(&String::from_utf8_lossy(&rest[..n])))
}

/// A name from the file as a finding shows it: at most 32 characters (a name is not a secret,
/// but what is shown stays short and can never hold one whole).
fn clip(name: &str) -> String {
    match name.char_indices().nth(32) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_owned(),
    }
}

/// Line numbers for byte offsets, counted on the first hit (most files have none).
struct Lines<'a> {
    bytes: &'a [u8],
    /// Where each line starts; empty until first needed.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Lines<'a> {
        Lines { bytes, starts: Vec::new() }
    }

    fn starts(&mut self) -> &[usize] {
        if self.starts.is_empty() {
            self.starts.push(0);
            self.starts.extend(memchr::memchr_iter(b'\n', self.bytes).map(|i| i + 1));
        }
        &self.starts
    }

    /// The line (1-based) holding `offset`, with where it starts and ends.
    fn at(&mut self, offset: usize) -> (usize, usize, usize) {
        let line = self.starts().partition_point(|&s| s <= offset);
        let (start, end) = self.span(line).unwrap_or((offset, offset));
        (line, start, end)
    }

    /// Where line `line` (1-based) starts and ends (without its `\n` or `\r\n`), if the file
    /// has it.
    fn span(&mut self, line: usize) -> Option<(usize, usize)> {
        let bytes = self.bytes;
        let starts = self.starts();
        let start = *starts.get(line.checked_sub(1)?)?;
        let end = starts.get(line).map_or(bytes.len(), |next| next - 1);
        let end = if end > start && bytes[end - 1] == b'\r' { end - 1 } else { end };
        Some((start, end))
    }
}
