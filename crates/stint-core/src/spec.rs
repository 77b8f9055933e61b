//! Store specs as operators write them, and how to show them without leaking a password.

pub fn is_postgres(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

const REDACTED: &str = "<redacted>";

/// `spec` fit for logs and status pages: the password of a URL (in the user info or a
/// `password=` query parameter) becomes `<redacted>`.
pub fn describe(spec: &str) -> String {
    let Some((scheme, rest)) = spec.split_once("://") else {
        return spec.to_owned();
    };
    let (authority, tail) = split_authority(rest);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// Splits `user:pass@host:port` from `/db?query`. A password should percent-encode `/`, `?`
/// and `#`, but if one does not, treating everything up to the last `@` as user info
/// over-redacts rather than leaking.
fn split_authority(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let end = match rest[..end].rfind('@') {
        Some(_) => end,
        None => match rest.rfind('@') {
            Some(at) => rest[at..].find(['/', '?', '#']).map_or(rest.len(), |i| at + i),
            None => end,
        },
    };
    rest.split_at(end)
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={REDACTED}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            ("sqlite", "sqlite"),
            ("postgres://stint:s3cret@db:5432/stint", "postgres://stint:<redacted>@db:5432/stint"),
            ("postgresql://stint@db/stint", "postgresql://stint@db/stint"),
            ("postgres://db/stint", "postgres://db/stint"),
            ("postgres://u:p%40ss@db", "postgres://u:<redacted>@db"),
            ("postgres://u:a/b?c@db/x", "postgres://u:<redacted>@db/x"),
            ("postgres://u@db/x?sslmode=disable&password=hunter2", "postgres://u@db/x?sslmode=disable&password=<redacted>"),
            ("postgres://u:pw@db/x?options=-csearch_path%3Dt", "postgres://u:<redacted>@db/x?options=-csearch_path%3Dt"),
        ];
        for (spec, want) in cases {
            assert_eq!(describe(spec), want, "{spec}");
        }
    }

    #[test]
    fn recognises_postgres_urls() {
        assert!(is_postgres("postgres://x"));
        assert!(is_postgres("postgresql://x"));
        assert!(!is_postgres("sqlite"));
        assert!(!is_postgres("mysql://x"));
    }
}
