//! The one HTML escape: the server's SSO pages and STS's XML answers, and the page the CLI's
//! loopback listener shows after a browser login, all put untrusted text through it.

/// Escapes text for HTML (and XML) element content and quoted attribute values. Code points
/// outside XML 1.0's `Char` production (§2.2: most C0 controls, U+FFFE, U+FFFF), which make
/// an XML parser refuse the whole document, become U+FFFD, and so do the other control
/// characters (DEL, C1, CR), which HTML treats as errors; tab and newline stay.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_text_char(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    out
}

/// XML 1.0 `Char` (`#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`;
/// a `char` is never a surrogate) without the control characters but tab and newline.
fn is_text_char(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        c if c.is_control() => false,
        c => matches!(c, '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}'),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn what_xml_forbids_becomes_the_replacement_character() {
        use super::escape;
        assert_eq!(escape("a\u{fffe}b\u{ffff}c\u{0}d\u{1b}e\u{7f}f\u{85}g\rh"), "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}e\u{fffd}f\u{fffd}g\u{fffd}h");
        // Allowed by XML, though noncharacters in Unicode: kept as they are.
        assert_eq!(escape("\t\n\u{fdd0}\u{fffd}\u{e000}\u{1fffe}\u{10ffff}\u{d7ff} "), "\t\n\u{fdd0}\u{fffd}\u{e000}\u{1fffe}\u{10ffff}\u{d7ff} ");
        // Every code point: the output holds only XML Chars and no raw markup character.
        let xml_char = |c: char| matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let out = escape(&c.to_string());
            assert!(out.chars().all(xml_char), "{:x} gave {out:?}", c as u32);
            assert!(!out.contains(['<', '>', '"', '\'']), "{out:?}");
            if xml_char(c) && !c.is_control() && !"<>&\"'".contains(c) {
                assert_eq!(out, c.to_string(), "{:x} is text", c as u32);
            }
        }
    }
}
