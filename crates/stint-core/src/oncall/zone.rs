//! Times in a feed (RFC 5545 §3.3.4 DATE, §3.3.5 DATE-TIME) and the zones they are read in:
//! a `TZID` names an IANA zone or a `VTIMEZONE` of the feed (§3.6.5).

use icalendar::parser::{Component, Property};
use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};

use crate::error::{Error, Result};
use crate::ids::truncate;
use crate::time::Timestamp;

pub(super) fn bad(what: impl std::fmt::Display) -> Error {
    Error::invalid("invalid_calendar", what.to_string())
}

/// A parameter's value, by case-insensitive name (§3.2).
pub(super) fn param<'a>(p: &'a Property<'_>, name: &str) -> Option<&'a str> {
    p.params.iter().find(|x| x.key.as_str().eq_ignore_ascii_case(name)).and_then(|x| x.val.as_ref()).map(|v| v.as_str())
}

/// The properties of `c` named `name` (names are case-insensitive, §3.1).
pub(super) fn props<'a, 'b>(c: &'a Component<'b>, name: &'a str) -> impl Iterator<Item = &'a Property<'b>> + 'a {
    c.properties.iter().filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

pub(super) fn prop<'a, 'b>(c: &'a Component<'b>, name: &'a str) -> Option<&'a Property<'b>> {
    props(c, name).next()
}

pub(super) fn is(c: &Component<'_>, name: &str) -> bool {
    c.name.as_str().eq_ignore_ascii_case(name)
}

/// A time as the feed wrote it: the wall-clock reading and the zone to read it in.
#[derive(Clone, Debug)]
pub(super) struct Moment {
    pub wall: DateTime,
    pub tz: TimeZone,
    /// A `VALUE=DATE` day rather than a time.
    pub date_only: bool,
}

impl Moment {
    /// The instant; a wall time a daylight-saving change skips or repeats is read as
    /// §3.3.5 says (the offset before the gap, the first of a repeated hour).
    pub fn instant(&self) -> Result<Timestamp> {
        to_instant(self.wall, &self.tz)
    }
}

pub(super) fn to_instant(wall: DateTime, tz: &TimeZone) -> Result<Timestamp> {
    let z = wall.to_zoned(tz.clone()).map_err(|_| bad("a time outside the supported range"))?;
    Ok(Timestamp(z.timestamp().as_second()))
}

/// The wall-clock reading of `t` in `tz`.
pub(super) fn to_wall(t: Timestamp, tz: &TimeZone) -> Result<DateTime> {
    let ts = jiff::Timestamp::from_second(t.0).map_err(|_| bad("a time outside the supported range"))?;
    Ok(ts.to_zoned(tz.clone()).datetime())
}

/// The zones a feed defines with `VTIMEZONE`, and the default for floating times.
pub(super) struct Zones {
    defined: Vec<(String, TimeZone)>,
    pub default: TimeZone,
}

impl Zones {
    pub fn new(calendar: &Component<'_>, default: &TimeZone) -> Result<Zones> {
        let defined = calendar.components.iter().filter(|c| is(c, "VTIMEZONE")).map(vtimezone).collect::<Result<Vec<_>>>()?;
        Ok(Zones { defined, default: default.clone() })
    }

    /// The zone `TZID` names: an IANA name as the tz database has it (calendar apps name
    /// IANA zones and ship a VTIMEZONE copy of them), else the feed's own `VTIMEZONE`.
    fn get(&self, tzid: &str) -> Result<TimeZone> {
        if let Ok(tz) = TimeZone::get(tzid) {
            return Ok(tz);
        }
        self.defined
            .iter()
            .find(|(id, _)| id == tzid)
            .map(|(_, tz)| tz.clone())
            .ok_or_else(|| bad(format!("unknown time zone {:?} (neither an IANA name nor a VTIMEZONE of the feed)", truncate(tzid))))
    }

    /// A DTSTART/DTEND/EXDATE/RECURRENCE-ID value: UTC (`…Z`), local with `TZID`, floating
    /// (read in the schedule's zone) or a `VALUE=DATE` day (its midnight).
    pub fn moment(&self, p: &Property<'_>) -> Result<Moment> {
        self.moment_of(p.val.as_str(), param(p, "TZID"))
    }

    pub fn moment_of(&self, value: &str, tzid: Option<&str>) -> Result<Moment> {
        let (wall, utc, date_only) = parse_wall(value)?;
        let tz = match (utc, tzid) {
            // §3.3.5: TZID is never applied to a UTC time.
            (true, _) => TimeZone::UTC,
            (false, Some(id)) => self.get(id)?,
            (false, None) => self.default.clone(),
        };
        Ok(Moment { wall, tz, date_only })
    }
}

/// `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]`, strictly.
pub(super) fn parse_wall(value: &str) -> Result<(DateTime, bool, bool)> {
    let unreadable = || bad(format!("unreadable time {:?}", truncate(value)));
    let num = |s: &str| -> Option<i16> { s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten() };
    let date = |s: &str| -> Option<Date> {
        // ASCII first: the byte offsets below must fall between characters.
        (s.len() == 8 && s.is_ascii()).then_some(())?;
        Date::new(num(&s[0..4])?, num(&s[4..6])? as i8, num(&s[6..8])? as i8).ok()
    };
    let (value, utc) = value.strip_suffix('Z').map_or((value, false), |v| (v, true));
    match value.split_once('T') {
        None if !utc => Ok((date(value).ok_or_else(unreadable)?.at(0, 0, 0, 0), false, true)),
        None => Err(unreadable()),
        Some((d, t)) if t.len() == 6 && t.is_ascii() => {
            let (h, m, s) = (num(&t[0..2]).ok_or_else(unreadable)?, num(&t[2..4]).ok_or_else(unreadable)?, num(&t[4..6]).ok_or_else(unreadable)?);
            // A leap second (60) reads as the last second of its minute.
            let time = jiff::civil::Time::new(h as i8, m as i8, s.min(59) as i8, 0).map_err(|_| unreadable())?;
            Ok((date(d).ok_or_else(unreadable)?.to_datetime(time), utc, false))
        }
        Some(_) => Err(unreadable()),
    }
}

/// A `VTIMEZONE` as a POSIX TZ rule: its latest STANDARD and DAYLIGHT observances with
/// yearly `BYMONTH`/`BYDAY` rules (what calendar apps export), or a fixed offset.
fn vtimezone(c: &Component<'_>) -> Result<(String, TimeZone)> {
    let id = prop(c, "TZID").map(|p| p.val.as_str().to_owned()).ok_or_else(|| bad("a VTIMEZONE without TZID"))?;
    let latest = |kind: &str| -> Result<Option<&Component<'_>>> {
        let mut best: Option<(DateTime, &Component<'_>)> = None;
        for o in c.components.iter().filter(|o| is(o, kind)) {
            let start = prop(o, "DTSTART").ok_or_else(|| bad("a time zone observance without DTSTART"))?;
            let (wall, _, _) = parse_wall(start.val.as_str())?;
            if best.as_ref().is_none_or(|(b, _)| wall > *b) {
                best = Some((wall, o));
            }
        }
        Ok(best.map(|(_, o)| o))
    };
    let standard = latest("STANDARD")?;
    let daylight = latest("DAYLIGHT")?;
    let tz = match (standard, daylight) {
        (Some(s), Some(d)) if prop(s, "RRULE").is_some() && prop(d, "RRULE").is_some() => {
            let posix = format!("STD{}DST{},{},{}", posix_offset(offset_to(s)?), posix_offset(offset_to(d)?), posix_rule(d)?, posix_rule(s)?);
            TimeZone::posix(&posix).map_err(|_| bad(format!("unsupported VTIMEZONE {:?}", truncate(&id))))?
        }
        // Without yearly changes the zone keeps the offset it last changed to.
        (Some(o), None) | (None, Some(o)) => TimeZone::fixed(offset_to(o)?),
        (Some(s), Some(d)) => {
            let start = |o: &Component<'_>| prop(o, "DTSTART").map(|p| p.val.as_str().to_owned()).unwrap_or_default();
            TimeZone::fixed(offset_to(if start(s) >= start(d) { s } else { d })?)
        }
        (None, None) => return Err(bad(format!("VTIMEZONE {:?} has no observance", truncate(&id)))),
    };
    Ok((id, tz))
}

/// `TZOFFSETTO`: `±HHMM[SS]`.
fn offset_to(o: &Component<'_>) -> Result<Offset> {
    let v = prop(o, "TZOFFSETTO").map(|p| p.val.as_str()).ok_or_else(|| bad("a time zone observance without TZOFFSETTO"))?;
    let unreadable = || bad(format!("unreadable offset {:?}", truncate(v)));
    let (sign, digits) = match v.as_bytes().first() {
        Some(b'+') => (1, &v[1..]),
        Some(b'-') => (-1, &v[1..]),
        _ => return Err(unreadable()),
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unreadable());
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i32>().ok()).unwrap_or(0);
    let secs = sign * (n(0..2) * 3600 + n(2..4) * 60 + n(4..6));
    Offset::from_seconds(secs).map_err(|_| unreadable())
}

/// POSIX writes offsets west of Greenwich as positive.
fn posix_offset(o: Offset) -> String {
    let s = -o.seconds();
    let sign = if s < 0 { "-" } else { "+" };
    let s = s.abs();
    format!("{sign}{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// An observance's onset as a POSIX `Mm.w.d/time` rule, from `RRULE:FREQ=YEARLY;BYMONTH=m;
/// BYDAY=nDD` and the wall time of its DTSTART (local time before the change, as in POSIX).
fn posix_rule(o: &Component<'_>) -> Result<String> {
    let rule = prop(o, "RRULE").map(|p| p.val.as_str()).unwrap_or_default();
    let unsupported = || bad(format!("unsupported time zone rule {:?}", truncate(rule)));
    let part = |k: &str| rule.split(';').filter_map(|kv| kv.split_once('=')).find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v);
    if !part("FREQ").is_some_and(|f| f.eq_ignore_ascii_case("YEARLY")) {
        return Err(unsupported());
    }
    let month: u8 = part("BYMONTH").and_then(|m| m.parse().ok()).filter(|m| (1..=12).contains(m)).ok_or_else(unsupported)?;
    let byday = part("BYDAY").ok_or_else(unsupported)?;
    // `nDD`: the day is the last two bytes, which a hostile feed may cut inside a character.
    let cut = byday.len().saturating_sub(2);
    let (Some(nth), Some(day)) = (byday.get(..cut), byday.get(cut..)) else {
        return Err(unsupported());
    };
    let week = match nth.trim_start_matches('+').parse::<i8>().map_err(|_| unsupported())? {
        n @ 1..=4 => n,
        -1 => 5,
        _ => return Err(unsupported()),
    };
    let day = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"].iter().position(|d| d.eq_ignore_ascii_case(day)).ok_or_else(unsupported)?;
    let (wall, _, _) = parse_wall(prop(o, "DTSTART").map(|p| p.val.as_str()).unwrap_or_default())?;
    Ok(format!("M{month}.{week}.{day}/{}:{:02}:{:02}", wall.hour(), wall.minute(), wall.second()))
}
