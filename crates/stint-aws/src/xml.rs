//! A tiny, bounded reader for the XML that the AWS Query protocol returns.
//!
//! STS and IAM answer with shallow, attribute-free element trees such as
//! `<AssumeRoleResponse xmlns=…><AssumeRoleResult><Credentials><AccessKeyId>…`. This reads
//! such a tree by path, without a general XML parser: it finds the first element with the
//! exact name inside the parent's content and its matching close tag (counting nested
//! elements of the same name), and unescapes text. It refuses input over [`MAX_LEN`] and
//! anything it does not understand (CDATA, comments, unknown entities) rather than guess.
//! Every search is linear in the input, so a hostile answer costs at most a few passes
//! over 1 MiB.

/// The largest answer read at all (1 MiB); AWS's Query answers are a few KiB.
pub const MAX_LEN: usize = 1 << 20;

/// A view of one element's content (or of the whole document).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node<'a>(&'a str);

impl<'a> Node<'a> {
    /// The document, if it is within [`MAX_LEN`] and free of constructs this reader skips.
    pub(crate) fn document(xml: &'a str) -> Option<Node<'a>> {
        if xml.len() > MAX_LEN || xml.contains("<![CDATA[") || xml.contains("<!--") || xml.contains("<!DOCTYPE") {
            return None;
        }
        Some(Node(xml))
    }

    /// The first descendant named `name` (at any depth), e.g. `child("Credentials")`.
    pub(crate) fn child(self, name: &str) -> Option<Node<'a>> {
        let s = self.0;
        let mut from = 0;
        while let Some(i) = s[from..].find('<').map(|i| i + from) {
            let rest = &s[i + 1..];
            if let Some(after) = rest.strip_prefix(name) {
                match after.as_bytes().first() {
                    Some(b'/') if after.starts_with("/>") => return Some(Node("")),
                    Some(b'>') => return close(s, i + 1 + name.len() + 1, name).map(Node),
                    Some(c) if c.is_ascii_whitespace() => {
                        let open_end = after.find('>')?;
                        if after[..open_end].ends_with('/') {
                            return Some(Node(""));
                        }
                        return close(s, i + 1 + name.len() + open_end + 1, name).map(Node);
                    }
                    _ => {}
                }
            }
            from = i + 1;
        }
        None
    }

    /// Follows `path` one name at a time.
    pub(crate) fn path(self, path: &[&str]) -> Option<Node<'a>> {
        path.iter().try_fold(self, |n, name| n.child(name))
    }

    /// The element's text, unescaped; `None` if it holds elements or a bad entity.
    pub(crate) fn text(self) -> Option<String> {
        if self.0.contains('<') {
            return None;
        }
        unescape(self.0)
    }
}

/// The content between `start` and the close tag of `name` that balances it.
fn close<'a>(s: &'a str, start: usize, name: &str) -> Option<&'a str> {
    let open = format!("<{name}");
    let end_tag = format!("</{name}>");
    let mut depth = 1usize;
    let mut at = start;
    loop {
        let next_close = s[at..].find(&end_tag)? + at;
        // Nested opens of the same name before this close (rare; AWS never nests them).
        let mut scan = at;
        while let Some(o) = s[scan..next_close].find(&open) {
            let o = scan + o;
            let after = s.as_bytes().get(o + open.len()).copied();
            if matches!(after, Some(b'>')) || after.is_some_and(|c| c.is_ascii_whitespace()) {
                depth += 1;
            }
            scan = o + open.len();
        }
        depth -= 1;
        if depth == 0 {
            return Some(&s[start..next_close]);
        }
        at = next_close + end_tag.len();
    }
}

/// Replaces the five predefined entities (XML 1.0 §4.6) and numeric character references.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let end = tail.find(';').filter(|&e| e <= 10)?;
        let entity = &tail[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>alice&amp;co</SourceIdentity>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken>a&lt;b&gt;c&quot;d&apos;e&#65;&#x42;</SessionToken></Credentials>
    <Empty/>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    fn doc() -> Node<'static> {
        Node::document(DOC).expect("small")
    }

    #[test]
    fn reads_by_path_and_unescapes() {
        assert_eq!(doc().path(&["AssumeRoleResult", "Credentials", "AccessKeyId"]).and_then(Node::text).as_deref(), Some("ASIA1"));
        assert_eq!(doc().path(&["Credentials", "SessionToken"]).and_then(Node::text).as_deref(), Some("a<b>c\"d'eAB"));
        assert_eq!(doc().child("SourceIdentity").and_then(Node::text).as_deref(), Some("alice&co"));
        assert_eq!(doc().path(&["AssumedRoleUser", "Arn"]).and_then(Node::text).as_deref(), Some("arn:aws:sts::123456789012:assumed-role/demo/s"));
        assert_eq!(doc().child("Empty").and_then(Node::text).as_deref(), Some(""));
    }

    #[test]
    fn names_match_exactly() {
        // <Error> must not match <ErrorResponse>, nor <Arn> match <ArnX>.
        let d = Node::document("<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>").expect("small");
        assert_eq!(d.path(&["Error", "Code"]).and_then(Node::text).as_deref(), Some("X"));
        let d = Node::document("<ArnX>no</ArnX><Arn>yes</Arn>").expect("small");
        assert_eq!(d.child("Arn").and_then(Node::text).as_deref(), Some("yes"));
    }

    #[test]
    fn nested_same_name_balances() {
        let d = Node::document("<A><A>in</A>tail</A>").expect("small");
        assert_eq!(d.child("A").map(|n| n.0), Some("<A>in</A>tail"));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        assert!(Node::document(&"x".repeat(MAX_LEN + 1)).is_none());
        assert!(Node::document("<A><![CDATA[x]]></A>").is_none());
        assert!(Node::document("<A>x</A>").expect("small").child("B").is_none());
        assert!(Node::document("<A>x").expect("small").child("A").is_none(), "unclosed");
        assert_eq!(Node::document("<A>&bogus;</A>").and_then(|d| d.child("A")).and_then(Node::text), None);
        assert_eq!(Node::document("<A>a & b</A>").and_then(|d| d.child("A")).and_then(Node::text), None);
        assert_eq!(Node::document("<A><B/></A>").and_then(|d| d.child("A")).and_then(Node::text), None, "not text");
    }
}
