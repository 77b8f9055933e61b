//! Untrusted on-call calendar feeds: the iCalendar reader (content lines, the `icalendar`
//! parser, VTIMEZONE rules) and recurrence expansion (`rrule`), as the server runs them on
//! every refresh of a feed.
//! Invariants: nothing panics or overflows the stack (deep nesting, hostile RRULEs); a feed
//! is read whole or refused; every shift ends after it starts; asking who is on call at any
//! time, within the expanded window or far outside it, answers (within the expansion bounds).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stint_core::ids::Username;
use stint_core::jiff::tz::TimeZone;
use stint_core::oncall::{parse_ical, CalendarPeople, Schedule, ScheduleSource};
use stint_core::Timestamp;

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let bob = Username::parse("bob").expect("a valid user name");
    let map = [("robert@partner.example".to_owned(), bob.clone())];
    let people = CalendarPeople { map: &map, email_domain: Some("example.com") };
    let Ok(calendar) = parse_ical(text, &people, &TimeZone::get("Europe/Berlin").expect("in the bundled tzdb"), Timestamp(NOW)) else {
        return;
    };
    for s in calendar.shifts() {
        assert!(s.end > s.start, "{s:?}");
    }
    let schedule = Schedule { name: "fuzz".into(), grace_secs: 1800, source: ScheduleSource::Calendar(calendar) };
    for t in [NOW, NOW - 8 * 86_400, NOW + 40 * 86_400, NOW + 3_650 * 86_400, 0] {
        let _ = schedule.on_call(&bob, Timestamp(t));
    }
});
