//! `[[oncall.schedule]]`: who is on call, from a rotation in the configuration or an
//! iCalendar feed (a file or a URL), and which roles being on call grants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use stint_core::authz::PolicySource;
use stint_core::ids::{RoleName, Username};
use stint_core::oncall::{Calendar, CalendarPeople, Rotation, Schedule, ScheduleSource};
use stint_core::policy::Roles;
use stint_core::{Timestamp, Ttl};

use super::{err, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallSection {
    #[serde(default)]
    pub schedule: Vec<ScheduleSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    pub name: String,
    /// Roles its people may assume while on call (a generated Cedar policy each).
    #[serde(default)]
    pub grants: Vec<String>,
    /// How long after a shift its person still counts as on call.
    pub grace: Option<String>,
    /// Rotation: people in order, the first's first day, handoff time, period, time zone.
    #[serde(default)]
    pub people: Vec<String>,
    pub first_day: Option<String>,
    pub handoff: Option<String>,
    pub every: Option<String>,
    pub timezone: Option<String>,
    /// Calendar: a file, or a URL refreshed every `refresh`.
    pub ical_file: Option<PathBuf>,
    pub ical_url: Option<String>,
    pub refresh: Option<String>,
    /// A feed larger than this is refused (and the last good one kept), like `5MiB`.
    pub max_feed_size: Option<String>,
    /// Calendar attendee emails or event summaries → stint user names, for people whose
    /// calendar address is not `<user name>@…`.
    #[serde(default)]
    pub people_map: BTreeMap<String, String>,
    /// Attendees `<user name>@<email_domain>` are those users; others need `people_map`.
    pub email_domain: Option<String>,
}

/// Where a calendar schedule's feed is, for the host to refresh.
#[derive(Clone, Debug)]
pub struct CalendarFeed {
    pub schedule: String,
    pub file: Option<PathBuf>,
    pub url: Option<String>,
    pub refresh: Duration,
    /// Bytes a feed may have; a larger one is refused whole.
    pub max_bytes: usize,
    pub people_map: Vec<(String, Username)>,
    pub email_domain: Option<String>,
    pub timezone: stint_core::jiff::tz::TimeZone,
}

/// The feed size limit unless `max_feed_size` says otherwise.
pub const DEFAULT_MAX_FEED_BYTES: usize = 5 * 1024 * 1024;

impl CalendarFeed {
    /// Parses a feed's text, read at `now`, into this schedule's shifts.
    pub fn parse(&self, text: &str, now: Timestamp) -> stint_core::error::Result<Calendar> {
        if text.len() > self.max_bytes {
            return Err(stint_core::error::Error::invalid("calendar_too_large", format!("the feed is larger than {} bytes", self.max_bytes)));
        }
        stint_core::oncall::parse_ical(text, &CalendarPeople { map: &self.people_map, email_domain: self.email_domain.as_deref() }, &self.timezone, now)
    }
}

/// `5MiB`, `512KiB`, `1000000`: a size in bytes.
fn parse_size(v: &str) -> Result<usize, String> {
    let v = v.trim();
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(format!("{v:?} is not a size like 5MiB, 512KiB or 1000000")),
    };
    let n: usize = digits.parse().map_err(|_| format!("{v:?} is not a size like 5MiB, 512KiB or 1000000"))?;
    match n.checked_mul(unit) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(format!("{v:?} must be more than 0 bytes and fit in memory")),
    }
}

/// What the `[[oncall.schedule]]` tables yield.
pub struct OnCall {
    /// Calendar ones with the shifts of their file, or none yet for URLs.
    pub schedules: Vec<Schedule>,
    /// The feeds to re-read while serving.
    pub feeds: Vec<CalendarFeed>,
    /// The Cedar policies of the schedules' `grants`.
    pub policies: Option<PolicySource>,
}

/// Validates the schedules.
pub fn load(section: OnCallSection, roles: &Roles, base: &Path, origin: &str) -> Result<OnCall, ConfigError> {
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut feeds = Vec::new();
    let mut policies = String::new();
    for (i, s) in section.schedule.into_iter().enumerate() {
        let key = |k: &str| format!("oncall.schedule[{i}].{k}");
        if s.name.is_empty() || s.name.len() > 64 || !s.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(err(origin, &key("name"), "use 1-64 characters of a-z, 0-9, '-' and '_'"));
        }
        if schedules.iter().any(|x| x.name == s.name) {
            return Err(err(origin, &key("name"), format!("two schedules are named {:?}", s.name)));
        }
        let grace = match s.grace.as_deref() {
            None | Some("0s") => 0,
            Some(v) => v.parse::<Ttl>().map_err(|e| err(origin, &key("grace"), e))?.as_secs() as i64,
        };
        let tz_name = s.timezone.clone().unwrap_or_else(|| "UTC".into());
        let tz = stint_core::jiff::tz::TimeZone::get(&tz_name)
            .map_err(|_| err(origin, &key("timezone"), format!("unknown time zone {tz_name:?}; use an IANA name like Europe/Berlin")))?;
        let calendar = s.ical_file.is_some() || s.ical_url.is_some();
        let source = if calendar {
            if s.ical_file.is_some() && s.ical_url.is_some() {
                return Err(err(origin, &key("ical_file"), "set ical_file or ical_url, not both"));
            }
            if !s.people.is_empty() {
                return Err(err(origin, &key("people"), "a schedule is a rotation (people) or a calendar (ical_file/ical_url), not both"));
            }
            if s.ical_url.as_deref().is_some_and(|u| !u.starts_with("https://") && !u.starts_with("http://127.0.0.1")) {
                return Err(err(origin, &key("ical_url"), "must be an https:// URL"));
            }
            let refresh = s.refresh.as_deref().unwrap_or("5m").parse::<Ttl>().map_err(|e| err(origin, &key("refresh"), e))?;
            let max_bytes = s.max_feed_size.as_deref().map_or(Ok(DEFAULT_MAX_FEED_BYTES), parse_size).map_err(|e| err(origin, &key("max_feed_size"), e))?;
            let people_map = s
                .people_map
                .iter()
                .map(|(k, v)| Username::parse(v).map(|u| (k.clone(), u)).map_err(|e| err(origin, &key("people_map"), e)))
                .collect::<Result<Vec<_>, _>>()?;
            let feed = CalendarFeed {
                schedule: s.name.clone(),
                file: s.ical_file.as_ref().map(|f| base.join(f)),
                url: s.ical_url.clone(),
                refresh: Duration::from_secs(refresh.as_secs()),
                max_bytes,
                people_map,
                email_domain: s.email_domain.clone(),
                timezone: tz,
            };
            let calendar = match &feed.file {
                Some(f) => {
                    let text = std::fs::read_to_string(f).map_err(|e| err(origin, &key("ical_file"), format!("cannot read {}: {e}", f.display())))?;
                    // Read at the system's time; the server re-reads at its clock's as it starts.
                    feed.parse(&text, Timestamp(stint_core::jiff::Timestamp::now().as_second())).map_err(|e| err(origin, &key("ical_file"), e))?
                }
                None => Calendar::default(),
            };
            feeds.push(feed);
            ScheduleSource::Calendar(calendar)
        } else {
            let people = s.people.iter().map(|p| Username::parse(p)).collect::<Result<Vec<_>, _>>().map_err(|e| err(origin, &key("people"), e))?;
            if people.is_empty() {
                return Err(err(origin, &key("people"), "a rotation needs people (or set ical_file / ical_url)"));
            }
            let first_day: stint_core::jiff::civil::Date = s
                .first_day
                .as_deref()
                .ok_or_else(|| err(origin, &key("first_day"), "a rotation needs its first day, like 2026-10-19"))?
                .parse()
                .map_err(|e| err(origin, &key("first_day"), format!("not a date like 2026-10-19: {e}")))?;
            let handoff: stint_core::jiff::civil::Time =
                s.handoff.as_deref().unwrap_or("09:00").parse().map_err(|e| err(origin, &key("handoff"), format!("not a time like 09:00: {e}")))?;
            let every = s.every.as_deref().unwrap_or("7d").parse::<Ttl>().map_err(|e| err(origin, &key("every"), e))?;
            if every.as_secs() % 86_400 != 0 {
                return Err(err(origin, &key("every"), "rotations hand off after whole days, like 1d or 7d"));
            }
            ScheduleSource::Rotation(Rotation { people, first_day, handoff, period_days: (every.as_secs() / 86_400) as i64, tz })
        };
        for r in &s.grants {
            let role = RoleName::parse(r).map_err(|e| err(origin, &key("grants"), e))?;
            if roles.get(&role).is_none() {
                return Err(err(origin, &key("grants"), format!("no role named {role}")));
            }
            policies.push_str(&format!(
                "@id(\"on call ({name}): {role}\")\npermit(principal is Stint::Person, action == Stint::Action::\"assume\", resource == Stint::Role::{role:?})\nwhen {{ context.on_call_schedules.contains({name:?}) }};\n",
                name = s.name,
                role = role.as_str()
            ));
        }
        schedules.push(Schedule { name: s.name, grace_secs: grace, source });
    }
    let source = (!policies.is_empty()).then(|| PolicySource { origin: "defaults (generated from [[oncall.schedule]])".into(), text: policies });
    Ok(OnCall { schedules, feeds, policies: source })
}
