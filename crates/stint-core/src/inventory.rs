//! The inventory of long-lived credentials: what an AWS account holds that does not expire by
//! itself (IAM users' access keys, passwords, signing certificates), read from IAM's
//! credential report (`docs/inventory.md`, PROTOCOLS.md §5).
//!
//! A [`Snapshot`] is one report as it was when AWS generated it: several form the history the
//! report's trend is drawn from. Ages are computed at the snapshot's generation time, never at
//! the time it was imported, so an old file gives the numbers of its own day.
//!
//! The report is parsed with the `csv` crate, column by column as IAM writes it: booleans in
//! any case, `N/A`, `no_information` and `not_supported` where IAM puts them, the
//! `<root_account>` row, two access keys and two certificates per user. Anything else is
//! refused with its line and column, and nothing of the file is kept.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::truncate;
use crate::time::Timestamp;

/// The credential report's header, in IAM's order.
pub const CREDENTIAL_REPORT_COLUMNS: [&str; 22] = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// The largest report stint reads: about 40,000 users, far beyond IAM's 5,000-user quota.
pub const MAX_REPORT_BYTES: usize = 16 << 20;

/// The name IAM gives the account's root user in the report.
pub const ROOT_USER: &str = "<root_account>";

/// A key or user unused this long counts as stale (CIS AWS Foundations 1.12).
pub const STALE_DAYS: i64 = 90;

const DAY: i64 = 86_400;

/// Where a snapshot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// IAM's credential report, as a file an administrator downloaded or stint fetched.
    AwsCredentialReport,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AwsCredentialReport => "aws-credential-report",
        }
    }

    pub fn parse(s: &str) -> Result<Source> {
        match s {
            "aws-credential-report" => Ok(Source::AwsCredentialReport),
            _ => Err(Error::invalid("unknown_inventory_format", format!("unknown inventory format {:?}; stint reads aws-credential-report", truncate(s)))),
        }
    }
}

/// One account's long-lived credentials, as of `generated_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub source: Source,
    /// The 12-digit AWS account, from the users' ARNs.
    pub account: String,
    /// When AWS generated the report: what every age is computed at.
    pub generated_at: Timestamp,
    pub users: Vec<IamUser>,
}

/// A snapshot as stint keeps it: who brought it in, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    pub snapshot: Snapshot,
    pub imported_at: Timestamp,
    /// `user:NAME` for an import, `backend:NAME` for a fetch.
    pub imported_by: String,
}

/// An access key as IAM lists it (`ListAccessKeys`), to name the report's keys.
#[derive(Clone, Copy, Debug)]
pub struct ListedKey<'a> {
    pub user: &'a str,
    pub id: &'a str,
    pub created: Option<Timestamp>,
    pub active: bool,
}

/// One row of the report: an IAM user, or the account's root user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamUser {
    /// The user name; [`ROOT_USER`] for the root user.
    pub name: String,
    pub arn: String,
    pub root: bool,
    pub created_at: Option<Timestamp>,
    /// Whether the user has a console password; `None` where IAM says `not_supported` (root).
    pub password_enabled: Option<bool>,
    pub password_last_used: LastUsed,
    pub mfa_active: bool,
    /// The user's access keys, slot 1 then slot 2; a slot that never held a key is left out.
    pub access_keys: Vec<AccessKey>,
    /// X.509 signing certificates, the same way.
    pub certificates: Vec<Certificate>,
}

/// When a password or key was last used, as IAM knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum LastUsed {
    Never,
    /// Used, if at all, before IAM began tracking (2014-10-20 for passwords, 2015-04-22 for keys).
    NoInformation,
    At(Timestamp),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// 1 or 2: the report's `access_key_N_*` columns.
    pub slot: u8,
    /// The access key id (`AKIA…`), when a fetch could name the key: the report itself does
    /// not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub active: bool,
    /// When the key was created or last rotated: its age is counted from here.
    pub last_rotated: Option<Timestamp>,
    pub last_used: LastUsed,
    pub last_used_region: Option<String>,
    pub last_used_service: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub slot: u8,
    pub active: bool,
    pub last_rotated: Option<Timestamp>,
}

impl Snapshot {
    /// Reads an IAM credential report generated at `generated_at` (a downloaded file does not
    /// say when; `GetCredentialReport` does).
    pub fn from_credential_report(csv: &[u8], generated_at: Timestamp) -> Result<Snapshot> {
        if csv.len() > MAX_REPORT_BYTES {
            return Err(Error::invalid("report_too_large", format!("the report is {} bytes; stint reads at most {MAX_REPORT_BYTES}", csv.len())));
        }
        let csv = csv.strip_prefix(b"\xef\xbb\xbf").unwrap_or(csv);
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(csv);
        let header = reader.headers().map_err(|e| malformed(&e, "the header"))?.clone();
        let header: Vec<&str> = header.iter().map(str::trim).collect();
        if header != CREDENTIAL_REPORT_COLUMNS {
            let at = header.iter().zip(CREDENTIAL_REPORT_COLUMNS).position(|(a, b)| *a != b).unwrap_or(header.len().min(CREDENTIAL_REPORT_COLUMNS.len()));
            return Err(Error::invalid(
                "malformed_report",
                format!(
                    "line 1, column {}: the header is not IAM's credential report (expected {:?}, found {:?}); give the file as `aws iam get-credential-report` returns it, base64-decoded",
                    at + 1,
                    CREDENTIAL_REPORT_COLUMNS.get(at).copied().unwrap_or("no more columns"),
                    header.get(at).map_or_else(|| "no more columns".to_owned(), |h| truncate(h)),
                ),
            ));
        }
        let mut users = Vec::new();
        let mut account: Option<String> = None;
        for record in reader.records() {
            let record = record.map_err(|e| malformed(&e, "a row"))?;
            let line = record.position().map_or(0, |p| p.line());
            let row = Row { line, fields: &record };
            let user = row.user()?;
            let this_account = account_of(&user.arn).ok_or_else(|| row.refuse(1, "an IAM user or root ARN like arn:aws:iam::123456789012:user/name"))?;
            match &account {
                None => account = Some(this_account.to_owned()),
                Some(a) if a != this_account => return Err(row.refuse(1, &format!("the same account as the rows before ({a})"))),
                Some(_) => {}
            }
            users.push(user);
        }
        let account =
            account.ok_or_else(|| Error::invalid("malformed_report", "the report has a header but no users; even an empty account has its root user"))?;
        Ok(Snapshot { source: Source::AwsCredentialReport, account, generated_at, users })
    }

    /// Names the report's keys from a listing of them (`ListAccessKeys`): a key is the one
    /// of the same user, created at the same second and as active. A key created after the
    /// report is not in it and stays out.
    pub fn name_keys<'a>(&mut self, listed: impl IntoIterator<Item = ListedKey<'a>>) {
        for l in listed {
            let slot = self
                .users
                .iter_mut()
                .filter(|u| u.name == l.user)
                .flat_map(|u| u.access_keys.iter_mut())
                .find(|k| k.id.is_none() && l.created.is_some() && k.last_rotated == l.created && k.active == l.active);
            if let Some(k) = slot {
                k.id = Some(l.id.to_owned());
            }
        }
    }

    /// The figures of this snapshot, at its generation time.
    pub fn summary(&self) -> Summary {
        Summary {
            account: self.account.clone(),
            generated_at: self.generated_at,
            users: self.users.iter().filter(|u| !u.root).count() as u64,
            active_certificates: self.users.iter().flat_map(|u| &u.certificates).filter(|c| c.active).count() as u64,
            figures: Figures::of([self]),
        }
    }
}

impl IamUser {
    /// A console user (or the root user, who always has a password) without MFA.
    pub fn signs_in_without_mfa(&self) -> bool {
        !self.mfa_active && (self.root || self.password_enabled == Some(true))
    }
}

impl AccessKey {
    /// Whole days from its last rotation to `now`, if IAM gave that date.
    pub fn age_days(&self, now: Timestamp) -> Option<i64> {
        self.last_rotated.map(|t| (now.0 - t.0).max(0) / DAY)
    }

    /// Not used in the `days` before `now`: never, before tracking, or too long ago.
    pub fn unused_for(&self, now: Timestamp, days: i64) -> bool {
        match self.last_used {
            LastUsed::At(t) => now.0 - t.0 > days * DAY,
            LastUsed::Never | LastUsed::NoInformation => true,
        }
    }
}

/// What the inventory counts, over one snapshot or the newest of several; each key's age is
/// taken at its own snapshot's generation time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub active_keys: u64,
    pub average_key_age_days: f64,
    pub oldest_key_age_days: i64,
    pub keys_older_than_90_days: u64,
    /// Active keys not used in the last 90 days (or never).
    pub keys_unused_90_days: u64,
    pub root_keys_active: u64,
    /// Console users, and the root user, without MFA.
    pub users_without_mfa: u64,
}

impl Figures {
    fn of<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> Figures {
        let mut f = Figures::default();
        let mut ages = Vec::new();
        for s in snapshots {
            let now = s.generated_at;
            for u in &s.users {
                f.users_without_mfa += u64::from(u.signs_in_without_mfa());
                for k in u.access_keys.iter().filter(|k| k.active) {
                    f.active_keys += 1;
                    f.root_keys_active += u64::from(u.root);
                    f.keys_unused_90_days += u64::from(k.unused_for(now, STALE_DAYS));
                    ages.extend(k.age_days(now));
                }
            }
        }
        f.keys_older_than_90_days = ages.iter().filter(|&&a| a > STALE_DAYS).count() as u64;
        f.oldest_key_age_days = ages.iter().copied().max().unwrap_or(0);
        f.average_key_age_days = if ages.is_empty() { 0.0 } else { ages.iter().sum::<i64>() as f64 / ages.len() as f64 };
        f
    }
}

/// The figures of a snapshot: what an import answers and the report's "before".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub account: String,
    pub generated_at: Timestamp,
    /// IAM users, not counting the root user.
    pub users: u64,
    pub active_certificates: u64,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The 12-digit account of a user ARN (`arn:aws:iam::123456789012:user/…`) or the root ARN
/// (`…:root`).
fn account_of(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "iam", "", account, resource] = parts.as_slice() else {
        return None;
    };
    let ok =
        !partition.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && (*resource == "root" || resource.starts_with("user/"));
    ok.then_some(*account)
}

/// One data row, with what it takes to name a field in an error.
struct Row<'a> {
    line: u64,
    fields: &'a csv::StringRecord,
}

impl Row<'_> {
    fn user(&self) -> Result<IamUser> {
        // Columns 5 and 6 (password last changed, next rotation) are checked for their shape
        // only: nothing stint reports depends on them.
        self.time(5)?;
        self.time(6)?;
        let name = self.text(0)?.to_owned();
        let root = name == ROOT_USER;
        let arn = self.text(1)?.to_owned();
        if root != arn.ends_with(":root") {
            return Err(self.refuse(1, "the root ARN (…:root) on the <root_account> row, and only there"));
        }
        let mut access_keys = Vec::new();
        for (slot, first) in [(1u8, 8usize), (2, 13)] {
            let key = AccessKey {
                slot,
                id: None,
                active: self.boolean(first)?,
                last_rotated: self.time(first + 1)?,
                last_used: self.last_used(first + 2)?,
                last_used_region: self.optional(first + 3),
                last_used_service: self.optional(first + 4),
            };
            if key.active || key.last_rotated.is_some() {
                access_keys.push(key);
            }
        }
        let mut certificates = Vec::new();
        for (slot, first) in [(1u8, 18usize), (2, 20)] {
            let cert = Certificate { slot, active: self.boolean(first)?, last_rotated: self.time(first + 1)? };
            if cert.active || cert.last_rotated.is_some() {
                certificates.push(cert);
            }
        }
        Ok(IamUser {
            name,
            arn,
            root,
            created_at: self.time(2)?,
            password_enabled: match self.get(3) {
                v if v.eq_ignore_ascii_case("not_supported") => None,
                _ => Some(self.boolean(3)?),
            },
            password_last_used: self.last_used(4)?,
            mfa_active: self.boolean(7)?,
            access_keys,
            certificates,
        })
    }

    fn get(&self, column: usize) -> &str {
        self.fields.get(column).unwrap_or("").trim()
    }

    fn text(&self, column: usize) -> Result<&str> {
        match self.get(column) {
            "" => Err(self.refuse(column, "a value")),
            v => Ok(v),
        }
    }

    fn boolean(&self, column: usize) -> Result<bool> {
        match self.get(column) {
            v if v.eq_ignore_ascii_case("true") => Ok(true),
            v if v.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.refuse(column, "TRUE or FALSE")),
        }
    }

    /// A date, or one of IAM's words for none.
    fn time(&self, column: usize) -> Result<Option<Timestamp>> {
        match self.get(column) {
            v if none_word(v) => Ok(None),
            v => Timestamp::parse_rfc3339(v).map(Some).ok_or_else(|| self.refuse(column, "an ISO 8601 time like 2026-01-31T12:00:00+00:00, or N/A")),
        }
    }

    fn last_used(&self, column: usize) -> Result<LastUsed> {
        match self.get(column) {
            v if v.eq_ignore_ascii_case("no_information") => Ok(LastUsed::NoInformation),
            _ => Ok(self.time(column)?.map_or(LastUsed::Never, LastUsed::At)),
        }
    }

    fn optional(&self, column: usize) -> Option<String> {
        Some(self.get(column)).filter(|v| !none_word(v)).map(str::to_owned)
    }

    fn refuse(&self, column: usize, expected: &str) -> Error {
        Error::invalid(
            "malformed_report",
            format!(
                "line {}, column {} ({}): expected {expected}, found {:?}",
                self.line,
                column + 1,
                CREDENTIAL_REPORT_COLUMNS[column],
                truncate(self.get(column))
            ),
        )
    }
}

fn none_word(v: &str) -> bool {
    ["N/A", "no_information", "not_supported"].iter().any(|w| v.eq_ignore_ascii_case(w))
}

fn malformed(e: &csv::Error, what: &str) -> Error {
    let at = e.position().map(|p| format!("line {}: ", p.line())).unwrap_or_default();
    let problem = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!("{len} columns where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
        _ => format!("{what} is not CSV"),
    };
    Error::invalid("malformed_report", format!("{at}{problem}"))
}

/// What `stint inventory` shows: each account as its newest snapshot has it, the totals over
/// those, and every snapshot's figures in time order (the trend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub totals: Totals,
    pub accounts: Vec<Account>,
    pub history: Vec<Summary>,
}

/// One account as its newest snapshot has it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub summary: Summary,
    pub imported_at: Timestamp,
    pub imported_by: String,
    /// Every active key, oldest first.
    pub keys: Vec<KeyView>,
    /// Console users, and the root user, without MFA.
    pub users_without_mfa: Vec<String>,
}

/// An active access key, with its age at its snapshot's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub owner: String,
    pub root: bool,
    pub slot: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub age_days: Option<i64>,
    pub last_used: LastUsed,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
}

/// The newest snapshot of every account, added up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub accounts: u64,
    /// The generation time of the oldest of those snapshots: how fresh the totals are.
    pub as_of: Option<Timestamp>,
    #[serde(flatten)]
    pub figures: Figures,
}

impl Inventory {
    /// From kept snapshots, oldest first (as [`crate::store::Store::inventory_snapshots`]
    /// returns them).
    pub fn of(snapshots: &[Imported]) -> Inventory {
        let mut newest: std::collections::BTreeMap<&str, &Imported> = std::collections::BTreeMap::new();
        for i in snapshots {
            let slot = newest.entry(&i.snapshot.account).or_insert(i);
            if i.snapshot.generated_at >= slot.snapshot.generated_at {
                *slot = i;
            }
        }
        let accounts: Vec<Account> = newest.values().map(|i| Account::of(i)).collect();
        let totals = Inventory::totals_of(newest.values().copied());
        Inventory { totals, accounts, history: snapshots.iter().map(|i| i.snapshot.summary()).collect() }
    }

    /// The totals of `snapshots`, one per account.
    pub fn totals_of<'a>(snapshots: impl Iterator<Item = &'a Imported> + Clone) -> Totals {
        Totals {
            accounts: snapshots.clone().count() as u64,
            as_of: snapshots.clone().map(|i| i.snapshot.generated_at).min(),
            figures: Figures::of(snapshots.map(|i| &i.snapshot)),
        }
    }
}

impl Account {
    fn of(i: &Imported) -> Account {
        let s = &i.snapshot;
        let mut keys: Vec<KeyView> = s
            .users
            .iter()
            .flat_map(|u| {
                u.access_keys.iter().filter(|k| k.active).map(move |k| KeyView {
                    owner: u.name.clone(),
                    root: u.root,
                    slot: k.slot,
                    id: k.id.clone(),
                    age_days: k.age_days(s.generated_at),
                    last_used: k.last_used,
                    last_used_service: k.last_used_service.clone(),
                    last_used_region: k.last_used_region.clone(),
                })
            })
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.age_days));
        Account {
            summary: s.summary(),
            imported_at: i.imported_at,
            imported_by: i.imported_by.clone(),
            keys,
            users_without_mfa: s.users.iter().filter(|u| u.signs_in_without_mfa()).map(|u| u.name.clone()).collect(),
        }
    }
}

/// Where the server fetches snapshots from itself: an AWS backend, with its own identity
/// (`stint inventory fetch`).
#[async_trait::async_trait]
pub trait InventorySource: Send + Sync {
    /// The account's newest credential report, its keys named where a listing can.
    async fn fetch(&self) -> Result<Snapshot>;
}
