//! Rotations across daylight-saving changes, grace periods, and calendar feeds.

use jiff::civil::date;

use super::*;

fn user(n: &str) -> Username {
    Username::parse(n).unwrap()
}

/// Unix seconds of a UTC time.
fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    Timestamp(date(y, mo, d).at(h, mi, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp().as_second())
}

fn weekly_berlin() -> Schedule {
    // Handoffs on Mondays at 09:00 Berlin time, starting Monday 2026-10-19.
    let rotation = Rotation {
        people: vec![user("alice"), user("bob"), user("carol")],
        first_day: date(2026, 10, 19),
        handoff: Time::new(9, 0, 0, 0).unwrap(),
        period_days: 7,
        tz: TimeZone::get("Europe/Berlin").unwrap(),
    };
    Schedule { name: "primary".into(), grace_secs: 30 * 60, source: ScheduleSource::Rotation(rotation) }
}

#[test]
fn a_weekly_rotation_hands_off_at_local_time_across_dst() {
    let s = weekly_berlin();
    let on = |who: &str, t: Timestamp| s.on_call(&user(who), t);
    // Before the first handoff nobody is on call.
    assert!(!on("alice", utc(2026, 10, 19, 6, 59)));
    // 09:00 CEST = 07:00 UTC on 19 October.
    assert!(on("alice", utc(2026, 10, 19, 7, 0)));
    assert!(!on("bob", utc(2026, 10, 19, 7, 0)));
    // Clocks go back on 25 October: the next handoff, 09:00 CET, is 08:00 UTC on the 26th.
    assert!(on("alice", utc(2026, 10, 26, 7, 59)));
    assert!(on("bob", utc(2026, 10, 26, 8, 0)));
    // Alice's grace: 30 minutes after her shift.
    assert!(on("alice", utc(2026, 10, 26, 8, 29)));
    assert!(!on("alice", utc(2026, 10, 26, 8, 30)));
    // The third week is carol's, the fourth alice's again.
    assert!(on("carol", utc(2026, 11, 2, 8, 0)));
    assert!(on("alice", utc(2026, 11, 9, 8, 0)));
    assert!(!on("carol", utc(2026, 11, 9, 9, 0)));
    assert_eq!(schedules_on_call(&[s], &user("alice"), utc(2026, 11, 10, 12, 0)), ["primary"]);
}

const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//PagerDuty Inc.//PagerDuty//EN\r\n\
BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:On Call - Alice Smith - Primary\r\nDTSTART:20261128T080000Z\r\nDTEND:20261129T080000Z\r\n\
ATTENDEE;CN=Alice Smith:mailto:alice@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:2\r\nSUMMARY:On Call - Bob Jones - Primary\r\nDTSTART;TZID=America/New_York:20261129T030000\r\n\
DTEND;TZID=America/New_York:20261130T03\r\n 0000\r\nATTENDEE:mailto:robert.jones@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:3\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261225\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[test]
fn a_calendar_feed_gives_shifts_for_mapped_people() {
    let map = [("robert.jones@example.com".to_owned(), user("bob"))];
    let calendar = parse_ical(FEED, &CalendarPeople { map: &map, email_domain: Some("example.com") }, &TimeZone::UTC, utc(2026, 11, 1, 0, 0)).unwrap();
    let shifts: Vec<Shift> = calendar.shifts().cloned().collect();
    assert_eq!(shifts.len(), 2, "the holiday has no attendee and names nobody: {shifts:?}");
    assert_eq!(shifts[0], Shift { person: user("alice"), start: utc(2026, 11, 28, 8, 0), end: utc(2026, 11, 29, 8, 0) });
    // 03:00 in New York (EST, UTC-5) is 08:00 UTC; the folded DTEND line reads as one.
    assert_eq!(shifts[1], Shift { person: user("bob"), start: utc(2026, 11, 29, 8, 0), end: utc(2026, 11, 30, 8, 0) });
    let s = Schedule { name: "pagerduty".into(), grace_secs: 0, source: ScheduleSource::Calendar(calendar) };
    assert!(s.on_call(&user("alice"), utc(2026, 11, 28, 8, 0)));
    assert!(!s.on_call(&user("alice"), utc(2026, 11, 29, 8, 0)), "no grace here");
    assert!(s.on_call(&user("bob"), utc(2026, 11, 29, 8, 0)));
}

#[test]
fn attendees_elsewhere_or_declined_name_nobody() {
    let feed =
        |attendees: &str| format!("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261128T080000Z\nDTEND:20261129T080000Z\n{attendees}END:VEVENT\nEND:VCALENDAR\n");
    let people = CalendarPeople { map: &[], email_domain: Some("example.com") };
    let now = utc(2026, 11, 1, 0, 0);
    let who = |a: &str| parse_ical(&feed(a), &people, &TimeZone::UTC, now).unwrap().shifts().map(|s| s.person.to_string()).collect::<Vec<_>>();
    assert_eq!(who("ATTENDEE:mailto:admin@attacker.example\n"), Vec::<String>::new(), "another domain");
    assert_eq!(who("ATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.com\nATTENDEE:mailto:alice@example.com\n"), ["alice"]);
    let no_domain = CalendarPeople { map: &[], email_domain: None };
    assert_eq!(parse_ical(&feed("ATTENDEE:mailto:alice@example.com\n"), &no_domain, &TimeZone::UTC, now).unwrap().shifts().count(), 0, "only the map counts");
}

#[test]
fn malformed_feeds_are_refused() {
    let people = CalendarPeople { map: &[], email_domain: Some("x") };
    let e = |t: &str| parse_ical(t, &people, &TimeZone::UTC, utc(2026, 11, 1, 0, 0)).unwrap_err().code();
    assert_eq!(e("hello"), "invalid_calendar");
    let bad_tz = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;TZID=Mars/Olympus:20261128T080000\nDTEND:20261129T080000Z\nATTENDEE:mailto:alice@x\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(e(bad_tz), "invalid_calendar");
    let bad_time = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:2026-11-28\nDTEND:20261129T080000Z\nATTENDEE:mailto:alice@x\nEND:VEVENT\nEND:VCALENDAR\n";
    assert_eq!(e(bad_time), "invalid_calendar");
}
