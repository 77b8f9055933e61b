//! A calendar feed's shifts: single events, and recurring ones (RFC 5545 §3.8.5.3 RRULE,
//! §3.8.5.1 EXDATE, §3.8.4.4 RECURRENCE-ID) expanded within bounds.
//!
//! Recurring shifts are expanded when the feed is read, for [`Calendar::LOOKBACK`] before
//! and [`Calendar::LOOKAHEAD`] after the read; a question about a time outside that window
//! (the feed has not been read for a month) expands the series again around that time.
//! Either way an expansion takes at most [`MAX_STEPS`] occurrences from the rules and keeps
//! at most [`MAX_SHIFTS`], of at most [`MAX_SERIES`] rules that each run through at most
//! [`MAX_PERIODS`] periods: a hostile rule cannot make the broker spin or grow without bound.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use rrule::RRuleSet;

use super::zone::{bad, to_instant};
use super::Shift;
use crate::error::Result;
use crate::ids::Username;
use crate::time::Timestamp;

/// Occurrences one expansion may draw from the rules of a feed, all series together.
pub const MAX_STEPS: u32 = 1_000_000;
/// Shifts one expansion may yield.
pub const MAX_SHIFTS: usize = 20_000;
/// Recurring events a feed may have. With [`MAX_PERIODS`] and the `rrule` crate's own
/// bound on its search for a match (100 000 periods), this bounds the work of one read.
pub const MAX_SERIES: usize = 200;
/// Periods (hours, days, weeks… times INTERVAL) a rule may run through from its DTSTART to
/// the time asked about: an hourly rule from 1970 would be refused, a daily one is not.
pub const MAX_PERIODS: i64 = 100_000;

/// How long each occurrence lasts.
#[derive(Clone, Debug)]
pub(super) enum Length {
    /// DTSTART and DTEND in one zone: the wall-clock span (a daily 09:00 handoff stays at
    /// 09:00 across daylight-saving changes, §3.3.6's nominal days).
    Wall(jiff::Span),
    /// Otherwise the exact seconds between them.
    Exact(i64),
}

/// A recurring shift, its rule in wall-clock time (UTC stands in for `tz` inside `rrule`,
/// whose zones are not the feed's VTIMEZONEs; each occurrence is then read in `tz`).
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub people: Vec<Username>,
    pub tz: TimeZone,
    pub rule: RRuleSet,
    pub length: Length,
    /// Starts that are not shifts: EXDATEs, and occurrences a RECURRENCE-ID event replaces.
    /// Sorted.
    pub skip: Vec<Timestamp>,
    /// The rule had no occurrence left at the end of the window expanded at the read.
    pub ended: bool,
}

struct Budget {
    steps: u32,
}

impl Series {
    /// Appends this series' shifts that end after `from` and start before `to`; true when
    /// the rule has no occurrence from `to` on.
    fn expand(&self, from: Timestamp, to: Timestamp, budget: &mut Budget, out: &mut Vec<Shift>) -> Result<bool> {
        if self.periods_until(to) > MAX_PERIODS {
            return Err(bad(format!("a recurring event repeats more than {MAX_PERIODS} times from its DTSTART to the time asked about")));
        }
        for occurrence in &self.rule {
            budget.steps += 1;
            if budget.steps > MAX_STEPS {
                return Err(bad(format!("recurring events repeat more than {MAX_STEPS} times before the time asked about")));
            }
            let wall = from_rrule(&occurrence)?;
            let start = to_instant(wall, &self.tz)?;
            if start >= to {
                return Ok(false);
            }
            let end = match &self.length {
                Length::Wall(span) => to_instant(wall.checked_add(*span).map_err(|_| bad("a shift ends out of range"))?, &self.tz)?,
                Length::Exact(secs) => Timestamp(start.0.saturating_add(*secs)),
            };
            if end <= from || end <= start || self.skip.binary_search(&start).is_ok() {
                continue;
            }
            for person in &self.people {
                if out.len() >= MAX_SHIFTS {
                    return Err(bad(format!("recurring events yield more than {MAX_SHIFTS} shifts")));
                }
                out.push(Shift { person: person.clone(), start, end });
            }
        }
        Ok(true)
    }

    /// How many periods of the rule lie between its DTSTART and `to`, roughly (the work
    /// `rrule` does to get there).
    fn periods_until(&self, to: Timestamp) -> i64 {
        let Some(rule) = self.rule.get_rrule().first() else { return 0 };
        let period: i64 = match rule.get_freq() {
            rrule::Frequency::Yearly => 365 * 86_400,
            rrule::Frequency::Monthly => 28 * 86_400,
            rrule::Frequency::Weekly => 7 * 86_400,
            rrule::Frequency::Daily => 86_400,
            rrule::Frequency::Hourly => 3_600,
            rrule::Frequency::Minutely => 60,
            rrule::Frequency::Secondly => 1,
        };
        let start = self.rule.get_dt_start().timestamp();
        to.0.saturating_sub(start).max(0) / period.saturating_mul(i64::from(rule.get_interval().max(1)))
    }
}

/// The wall-clock reading `rrule` yields (in its stand-in UTC).
fn from_rrule(t: &chrono::DateTime<rrule::Tz>) -> Result<DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(t.year() as i16, t.month() as i8, t.day() as i8, t.hour() as i8, t.minute() as i8, t.second() as i8, 0)
        .map_err(|_| bad("a recurrence outside the supported range"))
}

/// A wall-clock reading as `rrule` takes it.
pub(super) fn to_rrule(wall: DateTime) -> Result<chrono::DateTime<rrule::Tz>> {
    use chrono::TimeZone as _;
    rrule::Tz::UTC
        .with_ymd_and_hms(wall.year().into(), wall.month() as u32, wall.day() as u32, wall.hour() as u32, wall.minute() as u32, wall.second() as u32)
        .single()
        .ok_or_else(|| bad("a recurrence outside the supported range"))
}

/// The shifts of one calendar feed.
#[derive(Clone, Debug)]
pub struct Calendar {
    single: Vec<Shift>,
    series: Vec<Series>,
    /// The occurrences of `series` within `window`, expanded when the feed was read.
    expanded: Vec<Shift>,
    window: (Timestamp, Timestamp),
}

/// No shifts (a feed not read yet).
impl Default for Calendar {
    fn default() -> Calendar {
        Calendar { single: vec![], series: vec![], expanded: vec![], window: (Timestamp(0), Timestamp(0)) }
    }
}

impl Calendar {
    /// Recurring shifts ending up to this long before a read are kept (covers grace periods).
    pub const LOOKBACK: i64 = 7 * 86_400;
    /// Recurring shifts starting up to this long after a read are expanded at the read.
    pub const LOOKAHEAD: i64 = 31 * 86_400;

    pub(super) fn new(single: Vec<Shift>, series: Vec<Series>, read_at: Timestamp) -> Result<Calendar> {
        if series.len() > MAX_SERIES {
            return Err(bad(format!("more than {MAX_SERIES} recurring events")));
        }
        let window = (Timestamp(read_at.0.saturating_sub(Self::LOOKBACK)), Timestamp(read_at.0.saturating_add(Self::LOOKAHEAD)));
        let mut series = series;
        let mut budget = Budget { steps: 0 };
        let mut expanded = Vec::new();
        for s in &mut series {
            s.ended = s.expand(window.0, window.1, &mut budget, &mut expanded)?;
        }
        Ok(Calendar { single, series, expanded, window })
    }

    /// The single shifts and the recurring ones expanded at the read.
    pub fn shifts(&self) -> impl Iterator<Item = &Shift> {
        self.single.iter().chain(&self.expanded)
    }

    /// Whether `person` has a shift covering `now`, or one that ended less than `grace`
    /// seconds before it.
    /// Whether the feed names `person` in any shift it holds.
    pub fn lists(&self, person: &Username) -> bool {
        self.single.iter().chain(&self.expanded).any(|s| &s.person == person) || self.series.iter().any(|s| s.people.contains(person))
    }

    pub fn covers(&self, person: &Username, now: Timestamp, grace: i64) -> bool {
        let covers = |s: &Shift| &s.person == person && s.start <= now && now.0 < s.end.0.saturating_add(grace);
        if self.single.iter().any(covers) {
            return true;
        }
        if self.expanded.iter().any(covers) {
            return true;
        }
        let since = Timestamp(now.0.saturating_sub(grace));
        if self.window.0 <= since && now < self.window.1 {
            return false;
        }
        // Outside what the read expanded: expand again here, failing closed. After the
        // window, rules that had ended by then have nothing more.
        let later = self.window.0 <= since;
        let series = self.series.iter().filter(|s| !(later && s.ended));
        let mut budget = Budget { steps: 0 };
        let mut shifts = Vec::new();
        series.map(|s| s.expand(since, Timestamp(now.0.saturating_add(1)), &mut budget, &mut shifts)).collect::<Result<Vec<_>>>().is_ok()
            && shifts.iter().any(covers)
    }
}
