//! The IAM credential report, as IAM writes it and as a spreadsheet saves it again.
//!
//! `fixtures/credential-report/aws.csv` has the shape `GetCredentialReport` returns (lowercase
//! booleans, `+00:00` offsets, the `<root_account>` row with `not_supported`, `N/A` for a
//! non-regional service, `no_information`); `spreadsheet.csv` is the same report opened and
//! saved again (a byte-order mark, CRLF, `TRUE`/`FALSE`). The report moto generates is read
//! through `stint inventory fetch` in the CLI's tests.

#![allow(clippy::unwrap_used)]

use stint_core::inventory::{LastUsed, ListedKey, Snapshot, Source, ROOT_USER};
use stint_core::Timestamp;

const AWS: &[u8] = include_bytes!("fixtures/credential-report/aws.csv");
const SPREADSHEET: &[u8] = include_bytes!("fixtures/credential-report/spreadsheet.csv");

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect(s)
}

/// Whole days between two times, by the calendar (`time`), not by stint's arithmetic.
fn days(from: &str, to: &str) -> i64 {
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    (parse(to) - parse(from)).whole_days()
}

const GENERATED: &str = "2026-11-30T12:00:00Z";

#[test]
fn the_report_iam_returns_is_read_row_by_row() {
    let s = Snapshot::from_credential_report(AWS, at(GENERATED)).expect("IAM's report");
    assert_eq!((s.source, s.account.as_str(), s.generated_at), (Source::AwsCredentialReport, "123456789012", at(GENERATED)));
    let names: Vec<&str> = s.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, [ROOT_USER, "alice", "ci-deploy", "bob"]);

    let root = &s.users[0];
    assert!(root.root && root.password_enabled.is_none(), "not_supported is no answer, not false");
    assert_eq!(root.password_last_used, LastUsed::At(at("2026-11-02T08:14:00Z")));
    assert_eq!(root.access_keys.len(), 1, "an empty slot is no key");

    let alice = &s.users[1];
    assert!(!alice.root && alice.password_enabled == Some(true) && alice.mfa_active);
    let k1 = &alice.access_keys[0];
    assert!(k1.active && k1.last_used_region.is_none(), "N/A region: a non-regional service");
    assert_eq!(k1.last_used_service.as_deref(), Some("s3"));
    let k2 = &alice.access_keys[1];
    assert_eq!((k2.slot, k2.active, k2.last_used_region.as_deref()), (2, false, Some("eu-west-1")), "an inactive key is still listed");

    let ci = &s.users[2];
    assert_eq!(ci.arn, "arn:aws:iam::123456789012:user/ci/ci-deploy");
    assert_eq!((ci.password_enabled, ci.password_last_used), (Some(false), LastUsed::Never));
    assert_eq!(ci.access_keys[0].last_used, LastUsed::Never);

    let bob = &s.users[3];
    assert_eq!(bob.password_last_used, LastUsed::NoInformation);
    assert!(bob.access_keys.is_empty());
    assert_eq!(bob.certificates.len(), 1);
}

#[test]
fn a_spreadsheets_copy_reads_the_same() {
    let iam = Snapshot::from_credential_report(AWS, at(GENERATED)).unwrap();
    let saved = Snapshot::from_credential_report(SPREADSHEET, at(GENERATED)).expect("BOM, CRLF, TRUE/FALSE");
    assert_eq!(saved, iam);
}

#[test]
fn the_figures_are_those_of_the_day_the_report_was_generated() {
    let s = Snapshot::from_credential_report(AWS, at(GENERATED)).unwrap();
    let sum = s.summary();
    // Active keys: root's, alice's first, both of ci-deploy's.
    let ages = [
        days("2020-01-15T10:00:00Z", GENERATED),
        days("2026-10-01T12:00:00Z", GENERATED),
        days("2025-06-01T00:00:00Z", GENERATED),
        days("2026-09-01T12:00:00Z", GENERATED),
    ];
    assert_eq!(ages[3], 90, "the fixture's newest key is exactly 90 days old: not older than 90");
    assert_eq!(sum.users, 3, "the root user is not an IAM user");
    assert_eq!(sum.figures.active_keys, 4);
    assert_eq!(sum.figures.average_key_age_days, ages.iter().sum::<i64>() as f64 / 4.0);
    assert_eq!(sum.figures.oldest_key_age_days, ages[0]);
    assert_eq!(sum.figures.keys_older_than_90_days, 2, "root's and ci-deploy's first");
    assert_eq!(sum.figures.keys_unused_90_days, 2, "root's (last used 182 days before) and ci-deploy's first (never)");
    assert_eq!(sum.figures.root_keys_active, 1);
    assert_eq!(sum.figures.users_without_mfa, 2, "root and bob; ci-deploy has no console password");
    assert_eq!(sum.active_certificates, 1);

    // The same file said to be generated a year later is a year older: ages are computed at
    // the report's time, not at the import's.
    let later = Snapshot::from_credential_report(AWS, at("2027-11-30T12:00:00Z")).unwrap().summary();
    assert_eq!(later.figures.oldest_key_age_days, ages[0] + 365);
    assert_eq!(later.figures.keys_older_than_90_days, 4);
}

#[test]
fn a_malformed_report_is_refused_with_its_line_and_column() {
    let text = std::str::from_utf8(AWS).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let with = |n: usize, line: &str| {
        let mut l = lines.clone();
        l[n] = line;
        l.join("\n")
    };
    let replace_field = |n: usize, col: usize, value: &str| {
        let mut fields: Vec<&str> = lines[n].split(',').collect();
        fields[col] = value;
        with(n, &fields.join(","))
    };
    let missing_column = with(2, lines[2].rsplit_once(',').unwrap().0);
    let cases = [
        (replace_field(3, 9, "2025-13-01T00:00:00+00:00"), "line 4, column 10 (access_key_1_last_rotated)"),
        (replace_field(2, 7, "yes"), "line 3, column 8 (mfa_active): expected TRUE or FALSE"),
        (replace_field(2, 1, "arn:aws:iam::999999999999:user/alice"), "line 3, column 2 (arn): expected the same account as the rows before (123456789012)"),
        (replace_field(2, 1, "arn:aws:iam::123456789012:role/alice"), "line 3, column 2 (arn)"),
        (replace_field(1, 1, "arn:aws:iam::123456789012:user/root"), "line 2, column 2 (arn): expected the root ARN"),
        (replace_field(2, 0, ""), "line 3, column 1 (user): expected a value"),
        (missing_column, "line 3: 21 columns where the header has 22"),
        (with(0, &lines[0].replace("mfa_active", "mfa")), "line 1, column 8: the header is not IAM's credential report"),
        (with(0, "UserName,PasswordExist,PasswordActive"), "line 1, column 1"),
        (lines[0].to_owned(), "no users"),
        (String::new(), "line 1, column 1"),
    ];
    for (csv, says) in cases {
        let e = Snapshot::from_credential_report(csv.as_bytes(), at(GENERATED)).expect_err(says);
        assert_eq!(e.code(), "malformed_report", "{says}: {e}");
        assert!(e.to_string().contains(says), "expected {says:?} in {e}");
    }
    let not_utf8 = [&AWS[..AWS.len() - 4], b"\xff\xfe\n"].concat();
    let e = Snapshot::from_credential_report(&not_utf8, at(GENERATED)).unwrap_err();
    assert!(e.to_string().contains("not UTF-8"), "{e}");
    let huge = vec![b'a'; stint_core::inventory::MAX_REPORT_BYTES + 1];
    assert_eq!(Snapshot::from_credential_report(&huge, at(GENERATED)).unwrap_err().code(), "report_too_large");
}

#[test]
fn the_inventory_is_each_accounts_newest_snapshot_with_every_snapshot_as_its_trend() {
    use stint_core::inventory::{Imported, Inventory};
    let kept = |csv: &[u8], account: &str, generated: &str| Imported {
        snapshot: {
            let text = std::str::from_utf8(csv).unwrap().replace("123456789012", account);
            Snapshot::from_credential_report(text.as_bytes(), at(generated)).unwrap()
        },
        imported_at: at(generated),
        imported_by: "user:alice".into(),
    };
    // Earlier in the year, the same account had only ci-deploy and bob (root's and alice's rows cut).
    let before: String = std::str::from_utf8(AWS).unwrap().lines().enumerate().filter(|(n, _)| ![1, 2].contains(n)).map(|(_, l)| format!("{l}\n")).collect();
    let snapshots = [
        kept(before.as_bytes(), "123456789012", "2026-01-01T00:00:00Z"),
        kept(AWS, "210987654321", "2026-11-01T00:00:00Z"),
        kept(AWS, "123456789012", GENERATED),
    ];
    let inv = Inventory::of(&snapshots);
    assert_eq!(inv.history.len(), 3, "every snapshot is in the trend");
    assert_eq!((inv.history[0].figures.active_keys, inv.history[0].figures.root_keys_active), (2, 0), "in January: ci-deploy's two keys");
    let accounts: Vec<(&str, u64)> = inv.accounts.iter().map(|a| (a.summary.account.as_str(), a.summary.figures.active_keys)).collect();
    assert_eq!(accounts, [("123456789012", 4), ("210987654321", 4)], "each account's newest snapshot");
    assert_eq!(inv.totals.figures.active_keys, 8);
    assert_eq!(inv.totals.figures.root_keys_active, 2);
    assert_eq!(inv.totals.as_of, Some(at("2026-11-01T00:00:00Z")), "as fresh as the oldest of them");
    assert_eq!(inv.totals.figures.oldest_key_age_days, days("2020-01-15T10:00:00Z", GENERATED));
    let newest = &inv.accounts[0];
    let owners: Vec<&str> = newest.keys.iter().map(|k| k.owner.as_str()).collect();
    assert_eq!(owners, [ROOT_USER, "ci-deploy", "ci-deploy", "alice"], "oldest key first");
    assert_eq!(newest.users_without_mfa, [ROOT_USER, "bob"]);
}

#[test]
fn a_listing_names_the_reports_keys_by_user_and_creation_time() {
    let mut s = Snapshot::from_credential_report(AWS, at(GENERATED)).unwrap();
    let listed = |user, id, created: Option<&str>, active| ListedKey { user, id, created: created.map(at), active };
    s.name_keys([
        listed("ci-deploy", "AKIAFIRST", Some("2025-06-01T00:00:00Z"), true),
        listed("ci-deploy", "AKIASECOND", Some("2026-09-01T12:00:00Z"), true),
        listed("alice", "AKIANEWERTHANREPORT", Some("2026-12-01T00:00:00Z"), true),
        listed("alice", "AKIAINACTIVE", Some("2026-10-01T12:00:00Z"), false),
        listed("bob", "AKIANOSUCHSLOT", Some("2016-02-02T00:00:00Z"), true),
        listed("alice", "AKIANODATE", None, true),
    ]);
    let ids: Vec<(&str, Option<&str>)> = s.users.iter().flat_map(|u| u.access_keys.iter().map(move |k| (u.name.as_str(), k.id.as_deref()))).collect();
    assert_eq!(
        ids,
        [(ROOT_USER, None), ("alice", None), ("alice", None), ("ci-deploy", Some("AKIAFIRST")), ("ci-deploy", Some("AKIASECOND"))],
        "only a key of the same user, created at the same second and as active, is named"
    );
}
