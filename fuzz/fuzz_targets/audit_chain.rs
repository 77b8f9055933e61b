//! The audit log's verifier (`stint audit verify`) on tampered chains: the harness chains
//! records the fuzzer writes (any text in every field), then the fuzzer tampers with them as
//! someone with write access to the store would: edits any field (the hashes and links
//! included), swaps, drops, duplicates and truncates rows, appends a correctly chained
//! record, recomputes a tampered record's own hash, moves the head kept apart.
//! Invariants: nothing panics; the untampered chain verifies, also after the JSON the CLI
//! reads it as, and page by page; with the head untouched, any change is found; the break
//! reported is never before the first changed row, and is that row unless its hash was
//! recomputed to match (then the next link or the head breaks); a truncation is reported
//! only when every row verified.
#![no_main]

use libfuzzer_sys::arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use stint_core::audit::{chain, verify_chain, Break, Draft, Event, Outcome, Record, Verifier, GENESIS};
use stint_core::Timestamp;

type Head = Option<(u64, String)>;

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => String::new(),
        1 => (*u.choose(&["alice", "system", "bootstrap", "10.0.0.1", "s_1", "role/admin", "\u{0}", "é\"\\\n"])?).to_owned(),
        _ => String::arbitrary(u)?,
    })
}

fn draft(u: &mut Unstructured<'_>) -> Result<Draft> {
    let event = *u.choose(&Event::ALL)?;
    let outcome = if u.arbitrary()? { Outcome::Success } else { Outcome::Failure };
    let mut d = Draft::new(Timestamp(i64::arbitrary(u)?), event, outcome);
    if u.ratio(1, 8)? {
        d.event = text(u)?;
    }
    d.actor = text(u)?;
    d.subject = text(u)?;
    d.reason = text(u)?;
    for _ in 0..u.int_in_range(0..=3)? {
        d.details.insert(text(u)?, text(u)?);
    }
    Ok(d)
}

fn draft_of(r: &Record) -> Draft {
    let mut d = Draft::new(r.at, Event::ALL[0], r.outcome);
    d.event.clone_from(&r.event);
    d.actor.clone_from(&r.actor);
    d.subject.clone_from(&r.subject);
    d.reason.clone_from(&r.reason);
    d.details.clone_from(&r.details);
    d
}

/// Whether `r`'s hash is that of its content: chained by the harness, or by the fuzzer,
/// which can learn a hash from the verifier's comparisons.
fn hashed(r: &Record) -> bool {
    chain(r.seq, &r.prev_hash, draft_of(r)).hash == r.hash
}

/// Whether `r` is a correctly hashed record at position `i` after a record with hash `prev`.
fn passes(r: &Record, i: usize, prev: &str) -> bool {
    r.seq == i as u64 + 1 && r.prev_hash == prev && hashed(r)
}

/// A hash-like or other value for a hash field: another record's, a near miss, or any text.
fn hash_value(u: &mut Unstructured<'_>, rows: &[Record]) -> Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 if !rows.is_empty() => rows[u.choose_index(rows.len())?].hash.clone(),
        1 if !rows.is_empty() => rows[u.choose_index(rows.len())?].hash.to_uppercase(),
        2 => GENESIS.to_owned(),
        _ => String::arbitrary(u)?,
    })
}

fn edit(u: &mut Unstructured<'_>, rows: &mut [Record]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let i = u.choose_index(rows.len())?;
    let hash = hash_value(u, rows)?;
    let r = &mut rows[i];
    match u.int_in_range(0..=10)? {
        0 => r.seq = if u.arbitrary()? { r.seq.wrapping_add(u64::from(u8::arbitrary(u)?)) } else { u64::arbitrary(u)? },
        1 => r.at = Timestamp(if u.arbitrary()? { r.at.0.wrapping_add(1) } else { i64::arbitrary(u)? }),
        2 => r.event = text(u)?,
        3 => r.outcome = if r.outcome == Outcome::Success { Outcome::Failure } else { Outcome::Success },
        4 => r.actor = text(u)?,
        5 => r.subject = text(u)?,
        6 => r.reason = text(u)?,
        7 => {
            let k = text(u)?;
            if u.arbitrary()? {
                r.details.remove(&k);
            } else {
                r.details.insert(k, text(u)?);
            }
        }
        8 => r.prev_hash = hash,
        9 => r.hash = hash,
        _ => {
            // One character of a hash flipped: the smallest edit.
            let field = if u.arbitrary()? { &mut r.hash } else { &mut r.prev_hash };
            if !field.is_empty() {
                let at = u.choose_index(field.len())?;
                if field.is_char_boundary(at) && field.is_char_boundary(at + 1) {
                    let c = if &field[at..at + 1] == "0" { "1" } else { "0" };
                    field.replace_range(at..at + 1, c);
                }
            }
        }
    }
    Ok(())
}

/// Tampers with `rows` and `head`. Appending and hashing a record anew are what an attacker
/// who knows the format can do: what is then caught is the link after it, or the head.
fn tamper(u: &mut Unstructured<'_>, rows: &mut Vec<Record>, head: &mut Head) -> Result<()> {
    for _ in 0..u.int_in_range(0..=6)? {
        let n = rows.len();
        match u.int_in_range(0..=8)? {
            0..=2 => edit(u, rows)?,
            3 if n >= 2 => {
                let (i, j) = (u.choose_index(n)?, u.choose_index(n)?);
                rows.swap(i, j);
            }
            4 if n >= 1 => {
                rows.remove(u.choose_index(n)?);
            }
            5 if n >= 1 => {
                let r = rows[u.choose_index(n)?].clone();
                rows.insert(u.int_in_range(0..=n)?, r);
            }
            6 => rows.truncate(u.int_in_range(0..=n)?),
            7 => {
                let prev = rows.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
                let d = draft(u)?;
                rows.push(chain(n as u64 + 1, &prev, d));
            }
            8 if n >= 1 => {
                let r = &mut rows[u.choose_index(n)?];
                *r = chain(r.seq, &r.prev_hash, draft_of(r));
            }
            _ => {
                *head = match u.int_in_range(0..=3)? {
                    0 => None,
                    1 => rows.last().map(|r| (r.seq, r.hash.clone())),
                    2 => head.clone().map(|(s, h)| (s.wrapping_add(1), h)),
                    _ => Some((u64::arbitrary(u)?, hash_value(u, rows)?)),
                };
            }
        }
    }
    Ok(())
}

/// `verify_chain` again, but page by page as `stint audit verify` walks the store.
fn paged(rows: &[Record], head: Head, u: &mut Unstructured<'_>) -> Result<std::result::Result<u64, Break>> {
    let mut v = Verifier::default();
    let mut rest = rows;
    while !rest.is_empty() {
        let take = u.int_in_range(1..=rest.len())?;
        for r in &rest[..take] {
            if let Err(b) = v.push(r) {
                assert_eq!(v.checked as usize, position(&b), "the records checked are those before the break");
                return Ok(Err(b));
            }
        }
        rest = &rest[take..];
    }
    Ok(v.finish(head).map(|()| v.checked))
}

/// The index of the row a break blames (for a truncation, one past the last row).
fn position(b: &Break) -> usize {
    match *b {
        Break::Edited { seq } => seq as usize - 1,
        Break::Unlinked { expected_seq, .. } => expected_seq as usize - 1,
        Break::Truncated { last_seq, .. } => last_seq as usize,
    }
}

/// Whether `head` says the chain ends where `rows` ends.
fn head_matches(rows: &[Record], head: &Head) -> bool {
    match (rows.last(), head) {
        (None, None) => true,
        (None, Some((seq, _))) => *seq == 0,
        (Some(last), Some((seq, hash))) => *seq == last.seq && *hash == last.hash,
        (Some(_), None) => false,
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let mut original: Vec<Record> = Vec::new();
    for i in 1..=u.int_in_range(0..=8)? {
        let prev = original.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
        original.push(chain(i, &prev, draft(u)?));
    }
    let n = original.len() as u64;
    let head: Head = original.last().map(|r| (r.seq, r.hash.clone()));
    assert_eq!(verify_chain(&original, head.clone()), Ok(n), "an untampered chain verifies");

    // What the CLI reads from `GET /v1/audit` is the same chain.
    let page = stint_api::AuditPage { records: original.clone(), head: head.clone() };
    let back: stint_api::AuditPage = serde_json::from_str(&serde_json::to_string(&page).expect("records serialize")).expect("and read back");
    assert_eq!((&back.records, &back.head), (&original, &head), "the JSON the CLI reads is the chain");

    let mut rows = original.clone();
    let mut tampered_head = head.clone();
    tamper(u, &mut rows, &mut tampered_head)?;
    // A correctly hashed row the chain did not have: a forgery (see `tamper`).
    let forged = rows.iter().any(|r| !original.contains(r) && hashed(r));
    let got = verify_chain(&rows, tampered_head.clone());
    assert_eq!(paged(&rows, tampered_head.clone(), u)?, got, "page by page, the same verdict");
    if let Err(b) = &got {
        let _ = b.to_string();
        let json = serde_json::to_value(b).expect("a break serializes");
        assert!(json["problem"].is_string(), "{json}");
    }

    if tampered_head == head && rows != original {
        assert!(got.is_err(), "a change with the head untouched is found: {rows:?}");
    }
    // The first row that differs (or the end of the shorter list).
    let p = rows.iter().zip(&original).take_while(|(a, b)| a == b).count();
    match got {
        Ok(checked) => {
            assert_eq!(checked, rows.len() as u64);
            assert!(head_matches(&rows, &tampered_head), "verified against a head that is not the end");
            assert!(p == rows.len() || forged, "a changed row verified without its hash recomputed");
        }
        Err(Break::Truncated { last_seq, head_seq }) => {
            assert_eq!(last_seq, rows.len() as u64, "a truncation is reported only after every row verified");
            assert_eq!(head_seq, tampered_head.as_ref().map_or(0, |h| h.0));
            assert!(!head_matches(&rows, &tampered_head));
            assert!(p == rows.len() || forged, "rows {p}.. changed, none hashed anew, yet all verified");
        }
        Err(b) => {
            let at = position(&b);
            assert!(at >= p, "{b:?} blames row {at}, before the first change at {p}");
            assert!(at < rows.len(), "{b:?} blames a row past the end");
            let r = &rows[at];
            match b {
                Break::Edited { seq } => assert_eq!(seq, r.seq),
                Break::Unlinked { seq, .. } => assert_eq!(seq, r.seq),
                Break::Truncated { .. } => unreachable!("handled above"),
            }
            // The first changed row is blamed unless it is a correctly hashed record in the
            // right place (its hash recomputed): then something after it is.
            let prev = if p == 0 { GENESIS } else { rows[p - 1].hash.as_str() };
            if p < rows.len() && !passes(&rows[p], p, prev) {
                assert_eq!(at, p, "{b:?}: the first changed row {p} is not the one blamed");
                let linked = rows[p].seq == p as u64 + 1 && rows[p].prev_hash == prev;
                assert_eq!(matches!(b, Break::Edited { .. }), linked, "{b:?}: an edit is a hash mismatch of a linked row");
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
