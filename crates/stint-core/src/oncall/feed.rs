//! Reading an iCalendar feed (RFC 5545) into a [`Calendar`]: the `icalendar` crate parses
//! the content lines, `rrule` expands recurrences, this module decides who is on call.
//!
//! A feed is read whole or not at all: anything unreadable refuses the feed, so a feed cut
//! off in transfer (no `END:VCALENDAR`) never yields the shifts it got as far as.

use std::collections::BTreeMap;

use icalendar::parser::{Component, Property};
use rrule::{RRule, RRuleSet, Unvalidated};

use super::calendar::{to_rrule, Calendar, Length, Series};
use super::zone::{bad, is, param, parse_wall, prop, props, to_wall, Moment, Zones};
use super::{CalendarPeople, Shift};
use crate::error::Result;
use crate::ids::{truncate, Username};
use crate::time::Timestamp;

/// Components nest this deep at most (VCALENDAR › VTIMEZONE › STANDARD is 3); deeper
/// nesting is refused before the recursive parser sees it.
const MAX_DEPTH: usize = 8;

/// The shifts of an iCalendar feed, read at `now` (recurring shifts are expanded around it,
/// see [`Calendar`]): each VEVENT's DTSTART–DTEND for the people it names.
pub fn parse_ical(text: &str, people: &CalendarPeople<'_>, default_tz: &jiff::tz::TimeZone, now: Timestamp) -> Result<Calendar> {
    let text = content_lines(text)?;
    let roots = icalendar::parser::read_calendar_simple(&text).map_err(|_| bad("not a readable iCalendar feed"))?;
    let calendar = match roots.as_slice() {
        [c] if is(c, "VCALENDAR") => c,
        _ => return Err(bad("not an iCalendar feed (one VCALENDAR expected)")),
    };
    let zones = Zones::new(calendar, default_tz)?;
    let events = calendar.components.iter().filter(|c| is(c, "VEVENT")).map(|c| Event::read(c, &zones, people)).collect::<Result<Vec<_>>>()?;
    // §3.8.4.4: an event with a series' UID and a RECURRENCE-ID replaces that occurrence
    // (cancelled or naming nobody here, it still replaces it).
    let mut replaced: BTreeMap<&str, Vec<Timestamp>> = BTreeMap::new();
    for e in &events {
        if let (Some(uid), Some(at)) = (&e.uid, e.recurrence_id) {
            replaced.entry(uid).or_default().push(at);
        }
    }
    let mut single = Vec::new();
    let mut series = Vec::new();
    for e in events.iter().filter(|e| !e.cancelled && !e.people.is_empty()) {
        match (&e.rule, e.recurrence_id) {
            (Some(rule), None) => {
                let replaced = e.uid.as_deref().and_then(|u| replaced.get(u)).into_iter().flatten().copied();
                let mut skip: Vec<Timestamp> = e.exdates.iter().copied().chain(replaced).collect();
                skip.sort_unstable();
                series.push(Series { people: e.people.clone(), tz: e.start.tz.clone(), rule: rule.clone(), length: e.length.clone(), skip, ended: false });
            }
            _ => single.extend(e.shifts()?),
        }
    }
    Calendar::new(single, series, now)
}

/// Unfolds (§3.1) and checks the content lines, written back with CRLF endings.
///
/// Bare CR, a line without its `:` or with an open quote, and deep nesting are refused: the
/// parser would read across line ends there (and take quadratic time doing it).
fn content_lines(text: &str) -> Result<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n");
    if text.contains('\r') {
        return Err(bad("a carriage return outside a line ending"));
    }
    let text = icalendar::parser::unfold(&text);
    let mut depth = 0usize;
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        if !has_value(line) {
            return Err(bad(format!("line {} is not a content line", n + 1)));
        }
        if starts_with_ci(line, "BEGIN:") {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(bad(format!("components nest deeper than {MAX_DEPTH}")));
            }
        } else if starts_with_ci(line, "END:") {
            depth = depth.saturating_sub(1);
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(out)
}

/// `name *(";" param) ":" value`, quotes in parameters closed (§3.1).
fn has_value(line: &str) -> bool {
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return true,
            _ => {}
        }
    }
    false
}

fn starts_with_ci(line: &str, prefix: &str) -> bool {
    line.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// What one VEVENT says, its own properties only (a VALARM's ATTENDEE is whom to remind).
struct Event {
    uid: Option<String>,
    recurrence_id: Option<Timestamp>,
    cancelled: bool,
    start: Moment,
    length: Length,
    rule: Option<RRuleSet>,
    exdates: Vec<Timestamp>,
    people: Vec<Username>,
}

impl Event {
    fn read(c: &Component<'_>, zones: &Zones, people: &CalendarPeople<'_>) -> Result<Event> {
        let start = zones.moment(prop(c, "DTSTART").ok_or_else(|| bad("an event without DTSTART"))?)?;
        let length = length(c, &start, zones)?;
        let rule = match props(c, "RRULE").collect::<Vec<_>>().as_slice() {
            [] => None,
            [r] => Some(rule(r.val.as_str(), &start)?),
            _ => return Err(bad("an event with more than one RRULE")),
        };
        let mut exdates = Vec::new();
        for p in props(c, "EXDATE") {
            for v in p.val.as_str().split(',') {
                exdates.push(zones.moment_of(v, param(p, "TZID"))?.instant()?);
            }
        }
        Ok(Event {
            uid: prop(c, "UID").map(|p| p.val.as_str().to_owned()),
            recurrence_id: prop(c, "RECURRENCE-ID").map(|p| zones.moment(p).and_then(|m| m.instant())).transpose()?,
            // §3.8.1.11: a cancelled event is no shift.
            cancelled: prop(c, "STATUS").is_some_and(|p| p.val.as_str().trim().eq_ignore_ascii_case("CANCELLED")),
            start,
            length,
            rule,
            exdates,
            people: named(c, people),
        })
    }

    /// A single event's shifts, one per person.
    fn shifts(&self) -> Result<Vec<Shift>> {
        let start = self.start.instant()?;
        let end = match &self.length {
            Length::Wall(span) => super::zone::to_instant(self.start.wall.checked_add(*span).map_err(|_| bad("a shift ends out of range"))?, &self.start.tz)?,
            Length::Exact(secs) => Timestamp(start.0.saturating_add(*secs)),
        };
        if end <= start {
            return Ok(vec![]);
        }
        Ok(self.people.iter().map(|p| Shift { person: p.clone(), start, end }).collect())
    }
}

/// DTEND − DTSTART, or DURATION (§3.8.2.5); a day for a DATE without either (§3.6.1).
fn length(c: &Component<'_>, start: &Moment, zones: &Zones) -> Result<Length> {
    if let Some(end_prop) = prop(c, "DTEND") {
        let end = zones.moment(end_prop)?;
        let zone = |p: &Property<'_>| (param(p, "TZID").map(str::to_owned), p.val.as_str().ends_with('Z'));
        return Ok(if prop(c, "DTSTART").map(zone) == Some(zone(end_prop)) {
            Length::Wall(start.wall.until(end.wall).map_err(|_| bad("an event ends out of range"))?)
        } else {
            Length::Exact(end.instant()?.0 - start.instant()?.0)
        });
    }
    if let Some(d) = prop(c, "DURATION") {
        let v = d.val.as_str().trim().trim_start_matches('+');
        let span: jiff::Span = v.parse().map_err(|_| bad(format!("unreadable duration {:?}", truncate(v))))?;
        return Ok(Length::Wall(span));
    }
    Ok(Length::Wall(if start.date_only { jiff::Span::new().days(1) } else { jiff::Span::new() }))
}

/// The rule of a recurring event (§3.3.10), in wall-clock time.
fn rule(value: &str, start: &Moment) -> Result<RRuleSet> {
    let unreadable = || bad(format!("unreadable RRULE {:?}", truncate(value)));
    // The recur grammar (§3.3.10) is ASCII; the rrule crate's parser slices its text by byte
    // and panics inside a multi-byte character, so nothing else reaches it.
    if !value.is_ascii() {
        return Err(unreadable());
    }
    let mut until = None;
    let mut rest = Vec::new();
    for part in value.split(';') {
        match part.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("UNTIL") => until = Some(v),
            Some((k, v)) if k.eq_ignore_ascii_case("FREQ") && ["SECONDLY", "MINUTELY"].iter().any(|f| f.eq_ignore_ascii_case(v)) => {
                return Err(bad(format!("shifts repeating {v} are not supported (HOURLY at most)")));
            }
            _ => rest.push(part),
        }
    }
    let mut rule: RRule<Unvalidated> = rest.join(";").parse().map_err(|_| unreadable())?;
    if let Some(u) = until {
        // UNTIL is in UTC when DTSTART has a zone, else a wall time like DTSTART; a day
        // includes all of it.
        let (wall, utc, date_only) = parse_wall(u)?;
        let wall = match (utc, date_only) {
            (true, _) => to_wall(super::zone::to_instant(wall, &jiff::tz::TimeZone::UTC)?, &start.tz)?,
            (false, true) => wall.date().at(23, 59, 59, 0),
            (false, false) => wall,
        };
        rule = rule.until(to_rrule(wall)?);
    }
    Ok(rule.build(to_rrule(start.wall)?).map_err(|_| unreadable())?.limit())
}

/// The people a VEVENT names: its ATTENDEEs who take part and have not declined or
/// delegated (§3.2.12, §3.2.16), through the mapping or the e-mail domain; without such an
/// attendee who is a stint user, the SUMMARY through the mapping. Declined by all, nobody.
fn named(c: &Component<'_>, people: &CalendarPeople<'_>) -> Vec<Username> {
    let attendees: Vec<&Property<'_>> = props(c, "ATTENDEE").collect();
    let taking_part: Vec<&Property<'_>> = attendees
        .iter()
        .copied()
        .filter(|a| !param(a, "PARTSTAT").is_some_and(|s| s.eq_ignore_ascii_case("DECLINED") || s.eq_ignore_ascii_case("DELEGATED")))
        .filter(|a| !param(a, "ROLE").is_some_and(|r| r.eq_ignore_ascii_case("NON-PARTICIPANT")))
        .collect();
    let mut named: Vec<Username> = taking_part.iter().filter_map(|a| people.resolve(Some(address(a.val.as_str())), None)).collect();
    named.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    named.dedup();
    if named.is_empty() && (attendees.is_empty() || !taking_part.is_empty()) {
        let summary = prop(c, "SUMMARY").map(|p| p.val.as_str());
        named.extend(people.resolve(None, summary));
    }
    named
}

/// A CAL-ADDRESS without its `mailto:` scheme, in any case (RFC 3986 §3.1); PagerDuty
/// writes bare addresses.
fn address(v: &str) -> &str {
    let v = v.trim();
    match v.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => &v[7..],
        _ => v,
    }
}
