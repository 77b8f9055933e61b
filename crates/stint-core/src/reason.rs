//! The free text people must write to justify what they do: the reason of a role request or a
//! break-glass, and an approver's reason to deny or revoke.
//!
//! One normalisation for all of them, so that what is stored, audited and alerted is exactly
//! what was checked: control (`Cc`) and format (`Cf`) characters are dropped (a BEL, a NUL, an
//! escape, a zero-width space or a bidirectional override says nothing a reader can see), runs
//! of whitespace become one space, and then enough visible characters must remain.

use std::fmt;

use crate::error::{Error, Result};

/// The least visible characters of a reason unless configured otherwise.
pub const DEFAULT_MIN_CHARS: usize = 3;
/// The most characters a reason keeps (after normalisation).
pub const MAX_CHARS: usize = 500;

/// Unicode general category `Cf` (format characters), Unicode 15.1. std has no table for it.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a control (`Cc`) or format (`Cf`) character. Tabs and line breaks are
/// controls too, but they separate words: they are whitespace, collapsed like spaces.
fn invisible(c: char) -> bool {
    let u = u32::from(c);
    (c.is_control() && !c.is_whitespace()) || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// A reason someone wrote, normalised and long enough to say something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Normalises `raw` and requires at least `min_chars` visible characters (and at most
    /// [`MAX_CHARS`] in all); `reason_required` otherwise, saying what is missing.
    pub fn parse(raw: &str, min_chars: usize) -> Result<Reason> {
        let kept: String = raw.chars().filter(|c| !invisible(*c)).collect();
        let text = kept.split_whitespace().collect::<Vec<_>>().join(" ");
        let visible = text.chars().filter(|c| !c.is_whitespace()).count();
        if visible < min_chars {
            let seen = if visible == 0 { "none".to_owned() } else { visible.to_string() };
            return Err(Error::invalid(
                "reason_required",
                format!(
                    "say why in at least {min_chars} visible characters (--reason \"…\"); this reason has {seen} \
                     once control and invisible characters are dropped"
                ),
            ));
        }
        if text.chars().count() > MAX_CHARS {
            return Err(Error::invalid("reason_required", format!("say why in at most {MAX_CHARS} characters")));
        }
        Ok(Reason(text))
    }

    /// Like [`Reason::parse`], for a reason that may be left out: blank (once normalised) is `None`.
    pub fn parse_optional(raw: &str, min_chars: usize) -> Result<Option<Reason>> {
        if raw.chars().all(|c| invisible(c) || c.is_whitespace()) {
            return Ok(None);
        }
        Reason::parse(raw, min_chars).map(Some)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn refused(raw: &str) -> String {
        let e = Reason::parse(raw, DEFAULT_MIN_CHARS).unwrap_err();
        assert_eq!(e.code(), "reason_required", "{raw:?}");
        e.to_string()
    }

    #[test]
    fn nothing_visible_is_no_reason() {
        for raw in
            ["", "   ", "\u{7}\u{0}\u{1b}", "\u{200b}", "\u{200b}\u{200c}\u{200d}\u{2060}\u{feff}", "\t\n\r", "\u{202e}\u{2066}\u{ad}", "\u{e0041}\u{e0042}"]
        {
            assert!(refused(raw).contains("has none"), "{raw:?}");
        }
    }

    #[test]
    fn too_few_visible_characters_say_how_many() {
        let m = refused("a\u{200b}b");
        assert!(m.contains("at least 3 visible") && m.contains("has 2"), "{m}");
        assert!(refused(" x \u{0} y ").contains("has 2"));
    }

    #[test]
    fn what_is_kept_is_what_was_checked() {
        let r = Reason::parse("  fix\u{0} the\u{200b}\n\n  prod\u{1b}[31m  outage\t", 3).unwrap();
        assert_eq!(r.as_str(), "fix the prod[31m outage");
        assert_eq!(Reason::parse("INC-42", 3).unwrap().to_string(), "INC-42");
        assert_eq!(Reason::parse("the\n\tdb\r\nis down", 3).unwrap().as_str(), "the db is down", "line breaks separate words");
        assert_eq!(Reason::parse("abc", 3).unwrap().as_str(), "abc");
        assert_eq!(Reason::parse("ab", 2).unwrap().as_str(), "ab", "the minimum is configurable");
        assert_eq!(Reason::parse("Ωμέγα 修正", 3).unwrap().as_str(), "Ωμέγα 修正", "letters of every script are visible");
    }

    #[test]
    fn length_is_bounded_after_normalisation() {
        assert!(Reason::parse(&"a".repeat(MAX_CHARS), 3).is_ok());
        assert!(refused(&"a".repeat(MAX_CHARS + 1)).contains("at most 500"));
        // Invisible padding does not count against the limit: it is gone.
        assert!(Reason::parse(&format!("{}{}", "a".repeat(MAX_CHARS), "\u{200b}".repeat(50)), 3).is_ok());
    }

    #[test]
    fn an_optional_reason_may_be_blank_but_not_short() {
        assert_eq!(Reason::parse_optional("", 3).unwrap(), None);
        assert_eq!(Reason::parse_optional(" \u{200b} ", 3).unwrap(), None);
        assert_eq!(Reason::parse_optional("no", 3).unwrap_err().code(), "reason_required");
        assert_eq!(Reason::parse_optional(" left the team ", 3).unwrap().unwrap().as_str(), "left the team");
    }
}
