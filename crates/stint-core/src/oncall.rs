//! Who is on call now: rotations from the configuration, and shifts from iCalendar feeds
//! (RFC 5545; PagerDuty, Opsgenie and calendar apps export them).
//!
//! Pure: the host reads feeds and passes their text in ([`parse_ical`]); rotations are
//! computed from the time. A person counts as on call from a shift's start until its end plus
//! the schedule's grace period. Only the configured schedules count, and policies see them by
//! name (`context.on_call_schedules`).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::error::{Error, Result};
use crate::ids::Username;
use crate::time::Timestamp;

/// One person's time on call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    /// The stint user on call.
    pub person: Username,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A rotation: `people` take turns of `period_days`, handing off at `handoff` local time in
/// `tz`; `people[0]` starts on `first_day`.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub people: Vec<Username>,
    pub first_day: Date,
    pub handoff: Time,
    pub period_days: i64,
    pub tz: TimeZone,
}

fn instant(date: Date, time: Time, tz: &TimeZone) -> Result<Timestamp> {
    let z = date.at(time.hour(), time.minute(), time.second(), 0).to_zoned(tz.clone()).map_err(|e| Error::Internal(format!("rotation time: {e}")))?;
    Ok(Timestamp(z.timestamp().as_second()))
}

impl Rotation {
    /// The shift covering `now` and the one before it (for the grace period); none before
    /// the rotation starts.
    pub fn shifts_around(&self, now: Timestamp) -> Result<Vec<Shift>> {
        if self.people.is_empty() {
            return Ok(vec![]);
        }
        let local = jiff::Timestamp::from_second(now.0).map_err(|e| Error::Internal(format!("time: {e}")))?.to_zoned(self.tz.clone());
        let mut day = local.date();
        if local.time() < self.handoff {
            day = day.yesterday().map_err(|e| Error::Internal(format!("date: {e}")))?;
        }
        let elapsed = (day - self.first_day).get_days() as i64;
        if elapsed < 0 {
            return Ok(vec![]);
        }
        let index = elapsed.div_euclid(self.period_days);
        let mut out = Vec::new();
        for i in [index - 1, index] {
            if i < 0 {
                continue;
            }
            let start_day = self.first_day.checked_add(jiff::Span::new().days(i * self.period_days)).map_err(|e| Error::Internal(format!("date: {e}")))?;
            let end_day = start_day.checked_add(jiff::Span::new().days(self.period_days)).map_err(|e| Error::Internal(format!("date: {e}")))?;
            let person = self.people[(i as usize) % self.people.len()].clone();
            out.push(Shift { person, start: instant(start_day, self.handoff, &self.tz)?, end: instant(end_day, self.handoff, &self.tz)? });
        }
        Ok(out)
    }
}

/// Where a schedule's shifts come from.
#[derive(Clone, Debug)]
pub enum ScheduleSource {
    Rotation(Rotation),
    /// Shifts read from a calendar feed; the host refreshes them.
    Calendar(Vec<Shift>),
}

/// A configured on-call schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    /// Seconds a person still counts as on call after their shift ends.
    pub grace_secs: i64,
    pub source: ScheduleSource,
}

impl Schedule {
    /// Whether `person` is on call at `now` (or within the grace period after a shift).
    pub fn on_call(&self, person: &Username, now: Timestamp) -> bool {
        let covers = |s: &Shift| &s.person == person && s.start <= now && now.0 < s.end.0.saturating_add(self.grace_secs);
        match &self.source {
            ScheduleSource::Calendar(shifts) => shifts.iter().any(covers),
            ScheduleSource::Rotation(r) => r.shifts_around(now).map(|s| s.iter().any(covers)).unwrap_or(false),
        }
    }
}

/// The schedules `person` is on at `now`, by name.
pub fn schedules_on_call(schedules: &[Schedule], person: &Username, now: Timestamp) -> Vec<String> {
    schedules.iter().filter(|s| s.on_call(person, now)).map(|s| s.name.clone()).collect()
}

/// Unfolds RFC 5545 content lines (a line starting with a space or tab continues the last).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(raw.to_owned()),
        }
    }
    lines
}

/// A content line's parameters, `(NAME, value)`.
type Params = Vec<(String, String)>;
/// A property of an event: name, parameters, value.
type Property = (String, Params, String);

/// `NAME;PARAM=V;…:value` → (name, params, value).
fn content_line(line: &str) -> Option<(String, Params, &str)> {
    let (head, value) = line.split_once(':')?;
    let mut parts = head.split(';');
    let name = parts.next()?.to_ascii_uppercase();
    let params = parts.filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_ascii_uppercase(), v.trim_matches('"').to_owned())).collect();
    Some((name, params, value))
}

/// A DTSTART/DTEND value: `20261128T090000Z`, local time with `TZID=…`, floating local time
/// (read in `default_tz`), or a `VALUE=DATE` day.
fn ical_time(params: &[(String, String)], value: &str, default_tz: &TimeZone) -> Result<Timestamp> {
    let bad = || Error::invalid("invalid_calendar", format!("unreadable time {:?}", crate::ids::truncate(value)));
    let tz = match params.iter().find(|(k, _)| k == "TZID") {
        Some((_, id)) => TimeZone::get(id).map_err(|_| Error::invalid("invalid_calendar", format!("unknown time zone {:?}", crate::ids::truncate(id))))?,
        None => default_tz.clone(),
    };
    let (value, utc) = match value.strip_suffix('Z') {
        Some(v) => (v, true),
        None => (value, false),
    };
    let date = |s: &str| -> Option<Date> { Date::new(s.get(0..4)?.parse().ok()?, s.get(4..6)?.parse().ok()?, s.get(6..8)?.parse().ok()?).ok() };
    let (d, t) = match value.split_once('T') {
        Some((d, t)) => {
            let time = Time::new(
                t.get(0..2).and_then(|x| x.parse().ok()).ok_or_else(bad)?,
                t.get(2..4).and_then(|x| x.parse().ok()).ok_or_else(bad)?,
                t.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(0),
                0,
            )
            .map_err(|_| bad())?;
            (date(d).ok_or_else(bad)?, time)
        }
        None => (date(value).ok_or_else(bad)?, Time::midnight()),
    };
    let tz = if utc { TimeZone::UTC } else { tz };
    instant(d, t, &tz)
}

/// How calendar events name people, mapped to stint users.
pub struct CalendarPeople<'a> {
    /// Explicit mapping from an attendee's email or the event's summary (case-insensitive).
    pub map: &'a [(String, Username)],
    /// Without a mapping, an attendee `<user name>@<email_domain>` is that user; without a
    /// domain, only the mapping counts (an address elsewhere names nobody here).
    pub email_domain: Option<&'a str>,
}

impl CalendarPeople<'_> {
    fn resolve(&self, attendee: Option<&str>, summary: Option<&str>) -> Option<Username> {
        for key in [attendee, summary].into_iter().flatten() {
            let key = key.trim();
            if let Some((_, u)) = self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Some(u.clone());
            }
        }
        // Without a mapping: the attendee's address is <user name>@<email_domain>.
        let (local, domain) = attendee?.rsplit_once('@')?;
        if !self.email_domain.is_some_and(|d| d.eq_ignore_ascii_case(domain)) {
            return None;
        }
        Username::parse(&local.to_ascii_lowercase()).ok()
    }
}

/// The shifts of an iCalendar feed: each VEVENT's DTSTART–DTEND for the person its ATTENDEE
/// (or SUMMARY) names. Events with an RRULE are refused: export single occurrences.
pub fn parse_ical(text: &str, people: &CalendarPeople<'_>, default_tz: &TimeZone) -> Result<Vec<Shift>> {
    if text.len() > 8 * 1024 * 1024 {
        return Err(Error::invalid("invalid_calendar", "the calendar is larger than 8 MiB"));
    }
    let lines = unfold(text);
    if !lines.iter().any(|l| l.trim().eq_ignore_ascii_case("BEGIN:VCALENDAR")) {
        return Err(Error::invalid("invalid_calendar", "not an iCalendar feed (no BEGIN:VCALENDAR)"));
    }
    let mut shifts = Vec::new();
    let mut event: Option<Vec<Property>> = None;
    for line in &lines {
        let Some((name, params, value)) = content_line(line) else { continue };
        match (name.as_str(), value.trim().to_ascii_uppercase().as_str()) {
            ("BEGIN", "VEVENT") => event = Some(Vec::new()),
            ("END", "VEVENT") => {
                let props = event.take().unwrap_or_default();
                let get = |n: &str| props.iter().find(|(k, _, _)| k == n);
                if get("RRULE").is_some() {
                    return Err(Error::invalid("invalid_calendar", "recurring events (RRULE) are not supported: export single occurrences"));
                }
                let (Some(start), Some(end)) = (get("DTSTART"), get("DTEND")) else { continue };
                // The first attendee who has not declined.
                let attendee = props
                    .iter()
                    .find(|(k, params, _)| k == "ATTENDEE" && !params.iter().any(|(p, v)| p == "PARTSTAT" && v.eq_ignore_ascii_case("DECLINED")))
                    .map(|(_, _, v)| v.trim_start_matches("mailto:").trim_start_matches("MAILTO:"));
                let summary = get("SUMMARY").map(|(_, _, v)| v.as_str());
                let Some(person) = people.resolve(attendee, summary) else { continue };
                let shift = Shift { person, start: ical_time(&start.1, &start.2, default_tz)?, end: ical_time(&end.1, &end.2, default_tz)? };
                if shift.end > shift.start {
                    shifts.push(shift);
                }
            }
            _ => {
                if let Some(props) = event.as_mut() {
                    props.push((name, params, value.to_owned()));
                }
            }
        }
    }
    Ok(shifts)
}

#[cfg(test)]
mod tests;
