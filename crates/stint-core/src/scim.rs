//! Provisioning from the identity provider (SCIM 2.0, RFC 7643/7644): the provider is a client
//! of stint with a bearer token an administrator made (`stint scim token create`), shown once
//! and stored as lookup + SHA-256 like every bearer secret.
//!
//! Pure: no I/O.

use crate::ids::{ScimTokenName, UserId};
use crate::time::Timestamp;

/// A SCIM bearer token as stint keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimToken {
    /// The administrator's name for it (the provider it is for: `okta`, `entra`).
    pub name: ScimTokenName,
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ScimToken {
    /// What audit records name the provider by: `scim:NAME`.
    pub fn actor(&self) -> String {
        format!("scim:{}", self.name)
    }
}

// ---------------------------------------------------------------------------------------
// Users as SCIM sees them (RFC 7643 §4.1): `id` is the user id, `userName` the stint name,
// `active` the opposite of disabled. Filters (RFC 7644 §3.4.2.2) are parsed by `scim_v2`
// and evaluated here over those attributes.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter};

use crate::error::{Error, Result};
use crate::model::User;

/// The schema URN of the core User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The schema URN of a PATCH request.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Filters longer than this are refused before parsing.
pub const MAX_FILTER_BYTES: usize = 2048;
/// Operations in one PATCH request, at most.
pub const MAX_PATCH_OPERATIONS: usize = 100;

/// A SCIM error's `scimType` (RFC 7644 §3.12) by stint's code.
pub fn scim_type(code: &str) -> Option<&'static str> {
    match code {
        "invalid_filter" => Some("invalidFilter"),
        "invalid_syntax" => Some("invalidSyntax"),
        "invalid_path" => Some("invalidPath"),
        "invalid_value" => Some("invalidValue"),
        "mutability" => Some("mutability"),
        _ => None,
    }
}

fn invalid_filter(why: impl Into<String>) -> Error {
    Error::invalid("invalid_filter", why)
}

/// Parses `?filter=` (bounded; the parser also bounds nesting).
pub fn parse_filter(text: &str) -> Result<Filter> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(invalid_filter(format!("the filter is longer than {MAX_FILTER_BYTES} bytes")));
    }
    text.parse::<Filter>().map_err(|e| invalid_filter(format!("the filter does not parse: {}", crate::ids::truncate(&e.to_string()))))
}

/// The attributes a filter may name, as stint keeps them.
enum Attr {
    Id,
    UserName,
    Active,
    /// Defined by the schema, but stint keeps no value for it: never present.
    Absent,
}

fn attr(p: &AttrPath) -> Result<Attr> {
    if p.uri.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(USER_SCHEMA)) || p.sub_attr.is_some() {
        return Err(invalid_filter(format!("stint filters users on id, userName, active and externalId; not {:?}", crate::ids::truncate(&p.name))));
    }
    // Attribute names are case-insensitive (RFC 7643 §2.1).
    match p.name.to_ascii_lowercase().as_str() {
        "id" => Ok(Attr::Id),
        "username" => Ok(Attr::UserName),
        "active" => Ok(Attr::Active),
        "externalid" => Ok(Attr::Absent),
        other => Err(invalid_filter(format!("stint filters users on id, userName, active and externalId; not {:?}", crate::ids::truncate(other)))),
    }
}

/// Compares strings as the attribute says: `userName` is case-insensitive, `id` exact.
fn compare_str(value: &str, op: &CompareOp, want: &str, exact: bool) -> bool {
    let (v, w) = if exact { (value.to_owned(), want.to_owned()) } else { (value.to_lowercase(), want.to_lowercase()) };
    match op {
        CompareOp::Eq => v == w,
        CompareOp::Ne => v != w,
        CompareOp::Co => v.contains(&w),
        CompareOp::Sw => v.starts_with(&w),
        CompareOp::Ew => v.ends_with(&w),
        CompareOp::Gt => v > w,
        CompareOp::Ge => v >= w,
        CompareOp::Lt => v < w,
        CompareOp::Le => v <= w,
    }
}

fn attr_matches(e: &AttrExp, u: &User) -> Result<bool> {
    match e {
        AttrExp::Present(p) => Ok(!matches!(attr(p)?, Attr::Absent)),
        AttrExp::Comparison(p, op, value) => match (attr(p)?, value) {
            (Attr::Absent, _) => Ok(matches!(op, CompareOp::Ne)),
            (Attr::Id, CompValue::Str(s)) => Ok(compare_str(u.id.as_str(), op, s, true)),
            (Attr::UserName, CompValue::Str(s)) => Ok(compare_str(u.name.as_str(), op, s, false)),
            (Attr::Active, CompValue::True | CompValue::False) => {
                let (want, active) = (matches!(value, CompValue::True), !u.disabled);
                match op {
                    CompareOp::Eq => Ok(active == want),
                    CompareOp::Ne => Ok(active != want),
                    _ => Err(invalid_filter("active is compared with eq or ne only")),
                }
            }
            (Attr::Active, _) => Err(invalid_filter("active is compared with true or false")),
            (_, _) => Err(invalid_filter("id and userName are compared with strings")),
        },
    }
}

/// Whether `u` matches `f`. A filter naming an attribute stint does not have, or comparing
/// one with the wrong type, is refused (`invalid_filter`) rather than matching nothing.
pub fn user_matches(f: &Filter, u: &User) -> Result<bool> {
    match f {
        Filter::Attr(e) => attr_matches(e, u),
        Filter::Not(inner) => Ok(!user_matches(inner, u)?),
        Filter::And(a, b) => Ok(user_matches(a, u)? && user_matches(b, u)?),
        Filter::Or(a, b) => Ok(user_matches(a, u)? || user_matches(b, u)?),
        Filter::ValuePath(_) => Err(invalid_filter("stint keeps no multi-valued user attributes to filter on")),
    }
}

/// A boolean as identity providers send it: JSON `true`/`false`, or (Microsoft Entra ID)
/// the strings `"True"`/`"False"` in any case.
fn boolean(v: &serde_json::Value) -> Result<bool> {
    match v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Error::invalid("invalid_value", "active must be true or false")),
    }
}

/// Whether an attribute path names `active` of the core User schema.
fn is_path(path: &str, name: &str) -> bool {
    let bare = path.strip_prefix(USER_SCHEMA).and_then(|p| p.strip_prefix(':')).unwrap_or(path);
    bare.eq_ignore_ascii_case(name)
}

/// What a PATCH request (RFC 7644 §3.5.2) does to `active`: `Some` with the value its last
/// operation on `active` sets, `None` when none touches it. Both shapes identity providers
/// send are read: Okta's `{"op":"replace","value":{"active":false}}` and Microsoft Entra
/// ID's `{"op":"Replace","path":"active","value":"False"}`. Attributes stint does not keep
/// (names, emails…) are accepted and ignored; renaming (`userName`) is refused.
pub fn active_from_patch(body: &serde_json::Value) -> Result<Option<bool>> {
    let syntax = |why: &str| Error::invalid("invalid_syntax", why.to_owned());
    let schemas = body.get("schemas").and_then(|s| s.as_array()).ok_or_else(|| syntax("a PATCH request names its schema: schemas: [PatchOp]"))?;
    if !schemas.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA)) {
        return Err(syntax("a PATCH request's schemas must include urn:ietf:params:scim:api:messages:2.0:PatchOp"));
    }
    let ops = body.get("Operations").and_then(|o| o.as_array()).ok_or_else(|| syntax("a PATCH request carries Operations: [...]"))?;
    if ops.is_empty() || ops.len() > MAX_PATCH_OPERATIONS {
        return Err(syntax("a PATCH request carries 1 to 100 operations"));
    }
    let mut active = None;
    for op in ops {
        let kind = op.get("op").and_then(|o| o.as_str()).map(str::to_ascii_lowercase).ok_or_else(|| syntax("each operation names its op"))?;
        let path = match op.get("path") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(p)) => Some(p.as_str()),
            Some(_) => return Err(Error::invalid("invalid_path", "path must be a string")),
        };
        match (kind.as_str(), path) {
            ("add" | "replace", Some(p)) if is_path(p, "active") => active = Some(boolean(op.get("value").unwrap_or(&serde_json::Value::Null))?),
            ("add" | "replace" | "remove", Some(p)) if is_path(p, "userName") => {
                return Err(Error::invalid("mutability", "stint does not rename people: userName cannot change"));
            }
            ("remove", Some(p)) if is_path(p, "active") => return Err(Error::invalid("mutability", "active cannot be removed; replace it with false")),
            ("add" | "replace" | "remove", Some(_)) => {}
            ("add" | "replace", None) => {
                let value = op.get("value").and_then(|v| v.as_object()).ok_or_else(|| syntax("an operation without a path carries an object value"))?;
                for (k, v) in value {
                    if is_path(k, "active") {
                        active = Some(boolean(v)?);
                    } else if is_path(k, "userName") {
                        return Err(Error::invalid("mutability", "stint does not rename people: userName cannot change"));
                    }
                }
            }
            ("remove", None) => return Err(Error::invalid("invalid_path", "a remove operation names its path")),
            _ => return Err(syntax("op must be add, replace or remove")),
        }
    }
    Ok(active)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Username;
    use rand_core::OsRng;
    use serde_json::json;

    fn user(name: &str, disabled: bool) -> User {
        User {
            id: UserId::random(&mut OsRng),
            name: Username::parse(name).unwrap(),
            groups: vec![],
            disabled,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            created_at: Timestamp(0),
        }
    }

    fn matches(filter: &str, u: &User) -> Result<bool> {
        user_matches(&parse_filter(filter)?, u)
    }

    #[test]
    fn filters_as_identity_providers_send_them() {
        let alice = user("alice", false);
        let gone = user("bob", true);
        assert!(matches(r#"userName eq "alice""#, &alice).unwrap());
        assert!(matches(r#"userName eq "ALICE""#, &alice).unwrap(), "userName is case-insensitive");
        assert!(matches(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice""#, &alice).unwrap());
        assert!(!matches(r#"userName eq "alice""#, &gone).unwrap());
        assert!(matches(&format!(r#"id eq "{}""#, alice.id), &alice).unwrap());
        assert!(!matches(&format!(r#"id eq "{}""#, alice.id.as_str().to_uppercase()), &alice).unwrap(), "ids are exact");
        assert!(matches("active eq false", &gone).unwrap() && !matches("active eq false", &alice).unwrap());
        assert!(matches(r#"userName sw "al" and active eq true"#, &alice).unwrap());
        assert!(matches(r#"userName eq "nobody" or active eq false"#, &gone).unwrap());
        assert!(matches(r#"not (userName eq "alice")"#, &gone).unwrap());
        assert!(!matches(r#"externalId eq "00u1""#, &alice).unwrap(), "stint keeps no externalId: it matches nothing");
        for bad in [r#"emails[type eq "work"]"#, r#"title eq "x""#, r#"active eq "yes""#, "active gt true", r#"userName eq true"#] {
            assert_eq!(matches(bad, &alice).unwrap_err().code(), "invalid_filter", "{bad}");
        }
        for garbage in ["userName eq", "(((", "userName zz \"a\"", &"a".repeat(MAX_FILTER_BYTES + 1)] {
            assert_eq!(parse_filter(garbage).unwrap_err().code(), "invalid_filter", "{garbage:.20}");
        }
    }

    #[test]
    fn deactivation_reads_in_okta_and_entra_shapes() {
        let okta = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "value": { "active": false } }] });
        assert_eq!(active_from_patch(&okta).unwrap(), Some(false));
        let entra = json!({ "schemas": [PATCH_SCHEMA], "Operations": [
            { "op": "Replace", "path": "displayName", "value": "Alice A." },
            { "op": "Replace", "path": "active", "value": "False" }
        ] });
        assert_eq!(active_from_patch(&entra).unwrap(), Some(false));
        let back =
            json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:active", "value": true }] });
        assert_eq!(active_from_patch(&back).unwrap(), Some(true));
        let names_only = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "value": { "name": { "givenName": "A" } } }] });
        assert_eq!(active_from_patch(&names_only).unwrap(), None);
        let code = |v: serde_json::Value| active_from_patch(&v).unwrap_err().code();
        assert_eq!(code(json!({ "Operations": [] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "move", "path": "active" }] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "active", "value": "maybe" }] })), "invalid_value");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "userName", "value": "eve" }] })), "mutability");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "remove", "path": "active" }] })), "mutability");
        assert_eq!(scim_type("invalid_filter"), Some("invalidFilter"));
    }
}
