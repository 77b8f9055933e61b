//! IAM credential reports an administrator uploads (`POST /v1/inventory/snapshots`) or IAM
//! returns to a fetch: the `csv` reader, the column checks, the summary and the inventory.
//! Invariants: nothing panics; a report is read whole or refused with `malformed_report` or
//! `report_too_large`; what is read is one account's, with the root ARN only on the root row;
//! ages are never negative; a snapshot survives the store's JSON unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stint_core::inventory::{Imported, Inventory, Snapshot};
use stint_core::Timestamp;

const GENERATED: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let snapshot = match Snapshot::from_credential_report(data, Timestamp(GENERATED)) {
        Ok(s) => s,
        Err(e) => {
            assert!(matches!(e.code(), "malformed_report" | "report_too_large"), "{}: {e}", e.code());
            return;
        }
    };
    assert!(!snapshot.users.is_empty());
    for u in &snapshot.users {
        assert!(u.arn.split(':').nth(4) == Some(snapshot.account.as_str()), "{} is not of account {}", u.arn, snapshot.account);
        assert_eq!(u.root, u.arn.ends_with(":root"));
        assert!(u.access_keys.len() <= 2 && u.certificates.len() <= 2);
    }
    let summary = snapshot.summary();
    let f = &summary.figures;
    assert!(f.oldest_key_age_days >= 0 && f.average_key_age_days >= 0.0);
    assert!(f.keys_older_than_90_days <= f.active_keys && f.root_keys_active <= f.active_keys && f.keys_unused_90_days <= f.active_keys);
    let json = serde_json::to_string(&snapshot.users).expect("a snapshot serialises");
    let back: Vec<stint_core::inventory::IamUser> = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back, snapshot.users);
    let kept = Imported { snapshot, imported_at: Timestamp(GENERATED), imported_by: "user:fuzz".into() };
    let inv = Inventory::of(std::slice::from_ref(&kept));
    assert_eq!(inv.totals.figures, summary.figures, "one snapshot: the totals are its figures");
});
