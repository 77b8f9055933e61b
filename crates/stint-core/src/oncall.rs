//! Who is on call now: rotations from the configuration, and shifts from iCalendar feeds
//! (RFC 5545; PagerDuty, Opsgenie and calendar apps export them).
//!
//! Pure: the host reads feeds and passes their text and the time in ([`parse_ical`]);
//! rotations are computed from the time. A person counts as on call from a shift's start until its end plus
//! the schedule's grace period. Only the configured schedules count, and policies see them by
//! name (`context.on_call_schedules`).

mod calendar;
mod feed;
mod zone;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

pub use calendar::{Calendar, MAX_PERIODS, MAX_SERIES, MAX_SHIFTS, MAX_STEPS};
pub use feed::parse_ical;

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
    Calendar(Calendar),
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
    /// Whether `person` takes shifts on this schedule at all: in the rotation, or named by
    /// the calendar feed as last read.
    pub fn lists(&self, person: &Username) -> bool {
        match &self.source {
            ScheduleSource::Calendar(calendar) => calendar.lists(person),
            ScheduleSource::Rotation(r) => r.people.contains(person),
        }
    }

    /// Whether `person` is on call at `now` (or within the grace period after a shift).
    pub fn on_call(&self, person: &Username, now: Timestamp) -> bool {
        let covers = |s: &Shift| &s.person == person && s.start <= now && now.0 < s.end.0.saturating_add(self.grace_secs);
        match &self.source {
            ScheduleSource::Calendar(calendar) => calendar.covers(person, now, self.grace_secs),
            ScheduleSource::Rotation(r) => r.shifts_around(now).map(|s| s.iter().any(covers)).unwrap_or(false),
        }
    }
}

/// The schedules `person` is on at `now`, by name.
pub fn schedules_on_call(schedules: &[Schedule], person: &Username, now: Timestamp) -> Vec<String> {
    schedules.iter().filter(|s| s.on_call(person, now)).map(|s| s.name.clone()).collect()
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

#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod tests;
