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
// Resources as SCIM sees them (RFC 7643 §4): a User's `id` is the user id, `userName` the stint
// name, `active` the opposite of disabled; `externalId` and the work email are what the provider
// says, kept in a [`ScimProfile`]. A Group is the provider's group, kept as a [`ScimGroup`];
// the configuration maps its `displayName` to a stint group. Filters (RFC 7644 §3.4.2.2) and
// PATCH paths (§3.5.2) are parsed by `scim_v2` and evaluated here.

pub use scim_v2::filter::Filter;
use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, PatchPath, ValFilter};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::ScimGroupId;
use crate::model::User;

/// The schema URN of the core User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The schema URN of the core Group resource.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// stint's extension of the User resource: an account that ends by itself (a contractor's),
/// with `expires` (a date or RFC 3339 time) and `sponsor` (a user name). Providers let an
/// administrator map attributes to an extension named this way.
pub const STINT_USER_EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:stint:2.0:User";
/// The schema URN of a PATCH request.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Filters longer than this are refused before parsing.
pub const MAX_FILTER_BYTES: usize = 2048;
/// Operations in one PATCH request, at most.
pub const MAX_PATCH_OPERATIONS: usize = 100;
/// Members of one group, at most (a team's groups are far smaller).
pub const MAX_GROUP_MEMBERS: usize = 10_000;
/// The longest `externalId`, email or `displayName` kept.
pub const MAX_VALUE_BYTES: usize = 255;

/// What the provider says about a person beyond what stint keeps on the user: the ids that
/// match them to their sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScimProfile {
    /// The provider's id for the person (Okta's and Entra's `externalId`).
    pub external_id: Option<String>,
    /// The work email, lowercased.
    pub email: Option<String>,
}

/// A group at the identity provider, with its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimGroup {
    pub id: ScimGroupId,
    pub display_name: String,
    pub external_id: Option<String>,
    /// User ids, sorted, without duplicates.
    pub members: Vec<UserId>,
    pub created_at: Timestamp,
}

/// How provisioning ties into the rest of stint (`[scim]` in the configuration).
#[derive(Clone, Debug, Default)]
pub struct ScimSettings {
    /// The SSO provider (by name) the provisioned people sign in through: their first sign-in
    /// there is matched to the provisioned person instead of creating a new one.
    pub provider: Option<String>,
    pub match_by: ScimMatch,
    /// A provider group's `displayName`, lowercased, to the stint group its members are in.
    /// The stint groups named here follow the provider: membership in them is what it says.
    pub groups: std::collections::BTreeMap<String, crate::ids::GroupName>,
}

/// How a first sign-in finds the provisioned person it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScimMatch {
    /// The ID token's `sub` equals the person's `externalId` (Okta sends its user id in both).
    #[default]
    ExternalId,
    /// The ID token's verified email equals the person's work email.
    Email,
}

impl ScimSettings {
    /// The stint groups that follow the provider.
    pub fn managed(&self) -> impl Iterator<Item = &crate::ids::GroupName> {
        self.groups.values()
    }

    /// A person's stint groups once the provider's `groups` are as given: the ones the
    /// provider manages come from the groups they are a member of; the others stay.
    pub fn groups_of(&self, user: &User, groups: &[ScimGroup]) -> Vec<crate::ids::GroupName> {
        let mut out: Vec<_> = user.groups.iter().filter(|g| !self.managed().any(|m| m == *g)).cloned().collect();
        for g in groups.iter().filter(|g| g.members.contains(&user.id)) {
            if let Some(mapped) = self.groups.get(&g.display_name.to_lowercase()) {
                out.push(mapped.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// A SCIM error's `scimType` (RFC 7644 §3.12) by stint's code.
pub fn scim_type(code: &str) -> Option<&'static str> {
    match code {
        "invalid_filter" => Some("invalidFilter"),
        "invalid_syntax" => Some("invalidSyntax"),
        "invalid_path" => Some("invalidPath"),
        "invalid_value" | "unknown_member" | "invalid_expiry" | "invalid_sponsor" | "invalid_username" => Some("invalidValue"),
        "mutability" => Some("mutability"),
        "user_exists" | "group_exists" | "external_id_taken" => Some("uniqueness"),
        "no_target" => Some("noTarget"),
        _ => None,
    }
}

fn invalid_filter(why: impl Into<String>) -> Error {
    Error::invalid("invalid_filter", why)
}

fn syntax(why: impl Into<String>) -> Error {
    Error::invalid("invalid_syntax", why)
}

fn invalid_value(why: impl Into<String>) -> Error {
    Error::invalid("invalid_value", why)
}

/// Parses `?filter=` (bounded; the parser also bounds nesting).
pub fn parse_filter(text: &str) -> Result<Filter> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(invalid_filter(format!("the filter is longer than {MAX_FILTER_BYTES} bytes")));
    }
    text.parse::<Filter>().map_err(|e| invalid_filter(format!("the filter does not parse: {}", crate::ids::truncate(&e.to_string()))))
}

/// An attribute's value as a filter compares it.
pub enum AttrValue<'a> {
    /// A string; `exact` when the attribute is case-exact (ids).
    Str {
        value: &'a str,
        exact: bool,
    },
    Bool(bool),
    /// A multi-valued attribute's values (`members`, `emails`): a comparison holds when it
    /// holds for one of them (RFC 7644 §3.4.2.2).
    Many(Vec<&'a str>),
    /// Defined by the schema, but no value is kept.
    Absent,
}

/// A resource a filter can be evaluated on.
pub trait Filterable {
    /// The resource's core schema URN, which a filter may prefix attribute names with.
    const SCHEMA: &'static str;
    /// What the filterable attributes are called, for the refusal of any other.
    const ATTRIBUTES: &'static str;
    /// The value of `name` (lowercase, with `.sub` when the filter names a sub-attribute), or
    /// `None` when the resource has no such attribute.
    fn attr(&self, name: &str) -> Option<AttrValue<'_>>;
}

/// A person with what the provider said about them.
pub struct UserView<'a> {
    pub user: &'a User,
    pub profile: Option<&'a ScimProfile>,
}

impl Filterable for UserView<'_> {
    const SCHEMA: &'static str = USER_SCHEMA;
    const ATTRIBUTES: &'static str = "id, userName, active, externalId and emails";
    fn attr(&self, name: &str) -> Option<AttrValue<'_>> {
        let p = self.profile;
        Some(match name {
            "id" => AttrValue::Str { value: self.user.id.as_str(), exact: true },
            "username" => AttrValue::Str { value: self.user.name.as_str(), exact: false },
            "active" => AttrValue::Bool(!self.user.disabled),
            "externalid" => match p.and_then(|p| p.external_id.as_deref()) {
                Some(v) => AttrValue::Str { value: v, exact: true },
                None => AttrValue::Absent,
            },
            "emails" | "emails.value" => match p.and_then(|p| p.email.as_deref()) {
                Some(v) => AttrValue::Many(vec![v]),
                None => AttrValue::Absent,
            },
            _ => return None,
        })
    }
}

impl Filterable for ScimGroup {
    const SCHEMA: &'static str = GROUP_SCHEMA;
    const ATTRIBUTES: &'static str = "id, displayName, externalId and members";
    fn attr(&self, name: &str) -> Option<AttrValue<'_>> {
        Some(match name {
            "id" => AttrValue::Str { value: self.id.as_str(), exact: true },
            "displayname" => AttrValue::Str { value: &self.display_name, exact: false },
            "externalid" => match &self.external_id {
                Some(v) => AttrValue::Str { value: v, exact: true },
                None => AttrValue::Absent,
            },
            "members" | "members.value" => AttrValue::Many(self.members.iter().map(UserId::as_str).collect()),
            _ => return None,
        })
    }
}

/// Compares strings as the attribute says: case-insensitive unless `exact`.
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

fn value_of<'r, R: Filterable>(p: &AttrPath, r: &'r R) -> Result<AttrValue<'r>> {
    let unknown = || invalid_filter(format!("stint filters on {}; not {:?}", R::ATTRIBUTES, crate::ids::truncate(&p.to_string())));
    if p.uri.as_deref().is_some_and(|u| !u.eq_ignore_ascii_case(R::SCHEMA)) {
        return Err(unknown());
    }
    // Attribute names are case-insensitive (RFC 7643 §2.1).
    let mut name = p.name.to_ascii_lowercase();
    if let Some(sub) = &p.sub_attr {
        name = format!("{name}.{}", sub.to_ascii_lowercase());
    }
    r.attr(&name).ok_or_else(unknown)
}

fn attr_matches<R: Filterable>(e: &AttrExp, r: &R) -> Result<bool> {
    match e {
        AttrExp::Present(p) => Ok(match value_of(p, r)? {
            AttrValue::Absent => false,
            AttrValue::Many(v) => !v.is_empty(),
            _ => true,
        }),
        AttrExp::Comparison(p, op, value) => match (value_of(p, r)?, value) {
            (AttrValue::Absent, _) => Ok(matches!(op, CompareOp::Ne)),
            (AttrValue::Str { value: v, exact }, CompValue::Str(s)) => Ok(compare_str(v, op, s, exact)),
            (AttrValue::Many(vs), CompValue::Str(s)) => Ok(vs.iter().any(|v| compare_str(v, op, s, true))),
            (AttrValue::Bool(have), CompValue::True | CompValue::False) => {
                let want = matches!(value, CompValue::True);
                match op {
                    CompareOp::Eq => Ok(have == want),
                    CompareOp::Ne => Ok(have != want),
                    _ => Err(invalid_filter("booleans are compared with eq or ne only")),
                }
            }
            (AttrValue::Bool(_), _) => Err(invalid_filter("active is compared with true or false")),
            (_, _) => Err(invalid_filter("strings are compared with strings")),
        },
    }
}

/// Whether `r` matches `f`. A filter naming an attribute the resource does not have, or
/// comparing one with the wrong type, is refused (`invalid_filter`) rather than matching
/// nothing.
pub fn matches<R: Filterable>(f: &Filter, r: &R) -> Result<bool> {
    match f {
        Filter::Attr(e) => attr_matches(e, r),
        Filter::Not(inner) => Ok(!matches(inner, r)?),
        Filter::And(a, b) => Ok(matches(a, r)? && matches(b, r)?),
        Filter::Or(a, b) => Ok(matches(a, r)? || matches(b, r)?),
        Filter::ValuePath(_) => Err(invalid_filter("stint does not filter inside multi-valued attributes; compare members or emails directly")),
    }
}

/// A boolean as identity providers send it: JSON `true`/`false`, or (Microsoft Entra ID)
/// the strings `"True"`/`"False"` in any case.
fn boolean(v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid_value("active must be true or false")),
    }
}

/// A short string attribute (`externalId`, `displayName`, an email): `null` clears it.
fn short_string(v: &Value, name: &str) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.len() <= MAX_VALUE_BYTES && !s.chars().any(char::is_control) => Ok(Some(s.clone())),
        _ => Err(invalid_value(format!("{name} must be a string of at most {MAX_VALUE_BYTES} bytes without control characters"))),
    }
}

/// An email, lowercased (which can lengthen it, so the bound is checked after).
fn email(v: &Value) -> Result<Option<String>> {
    match v {
        Value::String(s) => short_string(&Value::String(s.to_lowercase()), "an email"),
        other => short_string(other, "an email"),
    }
}

/// The work email of an `emails` value: the primary one, else the first; lowercased.
fn email_of(v: &Value) -> Result<Option<String>> {
    let list = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a,
        _ => return Err(invalid_value("emails must be a list of {\"value\": \"…\"}")),
    };
    let primary = list.iter().find(|e| e.get("primary").and_then(Value::as_bool) == Some(true)).or_else(|| list.first());
    match primary.map(|e| e.get("value").unwrap_or(&Value::Null)) {
        None => Ok(None),
        Some(v) => email(v),
    }
}

/// A path's attribute name, lowercase, without the core schema's URN (`None` for a path in
/// another schema, such as the enterprise extension: accepted, not kept).
fn core_name(p: &AttrPath, schema: &str) -> Option<String> {
    match &p.uri {
        Some(u) if !u.eq_ignore_ascii_case(schema) => None,
        _ => Some(match &p.sub_attr {
            Some(sub) => format!("{}.{}", p.name.to_ascii_lowercase(), sub.to_ascii_lowercase()),
            None => p.name.to_ascii_lowercase(),
        }),
    }
}

fn parse_path(text: &str) -> Result<PatchPath> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(Error::invalid("invalid_path", "the path is too long"));
    }
    text.parse::<PatchPath>().map_err(|_| Error::invalid("invalid_path", format!("{:?} is not an attribute path", crate::ids::truncate(text))))
}

/// The checked envelope of a PATCH request: its operations as (op, path, value).
fn patch_operations(body: &Value) -> Result<Vec<(String, Option<PatchPath>, &Value)>> {
    let schemas = body.get("schemas").and_then(Value::as_array).ok_or_else(|| syntax("a PATCH request names its schema: schemas: [PatchOp]"))?;
    if !schemas.iter().any(|s| s.as_str() == Some(PATCH_SCHEMA)) {
        return Err(syntax("a PATCH request's schemas must include urn:ietf:params:scim:api:messages:2.0:PatchOp"));
    }
    let ops = body.get("Operations").and_then(Value::as_array).ok_or_else(|| syntax("a PATCH request carries Operations: [...]"))?;
    if ops.is_empty() || ops.len() > MAX_PATCH_OPERATIONS {
        return Err(syntax("a PATCH request carries 1 to 100 operations"));
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).map(str::to_ascii_lowercase).ok_or_else(|| syntax("each operation names its op"))?;
        if !matches!(kind.as_str(), "add" | "replace" | "remove") {
            return Err(syntax("op must be add, replace or remove"));
        }
        let path = match op.get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(parse_path(p)?),
            Some(_) => return Err(Error::invalid("invalid_path", "path must be a string")),
        };
        if kind == "remove" && path.is_none() {
            return Err(Error::invalid("invalid_path", "a remove operation names its path"));
        }
        out.push((kind, path, op.get("value").unwrap_or(&Value::Null)));
    }
    Ok(out)
}

/// What a request changes of a person. `None`: left as it is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub active: Option<bool>,
    pub external_id: Option<Option<String>>,
    pub email: Option<Option<String>>,
    /// The account's end ([`STINT_USER_EXTENSION`] `expires`); `Some(None)` clears it.
    pub expires: Option<Option<String>>,
    /// Its sponsor's user name ([`STINT_USER_EXTENSION`] `sponsor`).
    pub sponsor: Option<Option<String>>,
}

fn renaming() -> Error {
    Error::invalid("mutability", "stint does not rename people: userName cannot change")
}

impl UserChanges {
    /// Applies one attribute of the core schema (`name` lowercase) set to `v`.
    fn set(&mut self, name: &str, v: &Value) -> Result<()> {
        match name {
            "active" => self.active = Some(boolean(v)?),
            "externalid" => self.external_id = Some(short_string(v, "externalId")?),
            "emails" => self.email = Some(email_of(v)?),
            "username" => return Err(renaming()),
            // Names, titles, phone numbers…: accepted, not kept.
            _ => {}
        }
        Ok(())
    }

    /// Applies an attribute of stint's extension (`name` lowercase) set to `v`.
    fn set_terms(&mut self, name: &str, v: &Value) -> Result<()> {
        match name {
            "expires" => self.expires = Some(short_string(v, "expires")?),
            "sponsor" => self.sponsor = Some(short_string(v, "sponsor")?),
            _ => return Err(Error::invalid("invalid_path", format!("stint's extension has expires and sponsor; not {:?}", crate::ids::truncate(name)))),
        }
        Ok(())
    }

    /// Applies the extension's object (`{"expires": …, "sponsor": …}`).
    fn set_extension(&mut self, v: &Value) -> Result<()> {
        let obj = v.as_object().ok_or_else(|| invalid_value("stint's extension is an object: {\"expires\": …, \"sponsor\": …}"))?;
        for (k, v) in obj {
            self.set_terms(&k.to_ascii_lowercase(), v)?;
        }
        Ok(())
    }

    /// Whether a path names stint's extension: the extension itself, or one of its attributes.
    fn extension_attr(p: &AttrPath) -> Option<Option<String>> {
        if p.uri.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(STINT_USER_EXTENSION)) {
            return Some(Some(p.name.to_ascii_lowercase()));
        }
        let full = p.to_string();
        full.eq_ignore_ascii_case(STINT_USER_EXTENSION).then_some(None)
    }

    /// What a PATCH request (RFC 7644 §3.5.2) changes. Both shapes identity providers send are
    /// read: Okta's `{"op":"replace","value":{"active":false}}` and Microsoft Entra ID's
    /// `{"op":"Replace","path":"active","value":"False"}`, and Entra's
    /// `emails[type eq "work"].value`. Attributes stint does not keep are accepted and ignored;
    /// renaming (`userName`) is refused.
    pub fn from_patch(body: &Value) -> Result<UserChanges> {
        let mut c = UserChanges::default();
        for (kind, path, value) in patch_operations(body)? {
            match (kind.as_str(), path) {
                (_, Some(PatchPath::Value(vp))) => {
                    if core_name(&vp.attr, USER_SCHEMA).as_deref() == Some("emails") && vp.sub_attr.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("value")) {
                        c.email = Some(if kind == "remove" { None } else { email(value)? });
                    } else if core_name(&vp.attr, USER_SCHEMA).as_deref() == Some("username") {
                        return Err(renaming());
                    }
                }
                (_, Some(PatchPath::Attr(p))) if UserChanges::extension_attr(&p).is_some() => {
                    match (kind.as_str(), UserChanges::extension_attr(&p).flatten()) {
                        ("remove", Some(name)) => c.set_terms(&name, &Value::Null)?,
                        ("remove", None) => c.set_extension(&serde_json::json!({ "expires": null, "sponsor": null }))?,
                        (_, Some(name)) => c.set_terms(&name, value)?,
                        (_, None) => c.set_extension(value)?,
                    }
                }
                ("remove", Some(PatchPath::Attr(p))) => match core_name(&p, USER_SCHEMA).as_deref() {
                    Some("active") => return Err(Error::invalid("mutability", "active cannot be removed; replace it with false")),
                    Some("username") => return Err(renaming()),
                    Some("externalid") => c.external_id = Some(None),
                    Some("emails") => c.email = Some(None),
                    _ => {}
                },
                (_, Some(PatchPath::Attr(p))) => {
                    if let Some(name) = core_name(&p, USER_SCHEMA) {
                        c.set(&name, value)?;
                    }
                }
                (_, None) => {
                    let value = value.as_object().ok_or_else(|| syntax("an operation without a path carries an object value"))?;
                    for (k, v) in value {
                        // The extension's URN alone does not parse as a path: it names the object.
                        if k.eq_ignore_ascii_case(STINT_USER_EXTENSION) {
                            c.set_extension(v)?;
                            continue;
                        }
                        let path =
                            parse_path(k).map_err(|_| Error::invalid("invalid_path", format!("{:?} is not an attribute", crate::ids::truncate(k))))?.attr();
                        match UserChanges::extension_attr(&path) {
                            Some(Some(name)) => c.set_terms(&name, v)?,
                            Some(None) => c.set_extension(v)?,
                            None => {
                                if let Some(name) = core_name(&path, USER_SCHEMA) {
                                    c.set(&name, v)?;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(c)
    }
}

trait PathAttr {
    fn attr(self) -> AttrPath;
}

impl PathAttr for PatchPath {
    fn attr(self) -> AttrPath {
        match self {
            PatchPath::Attr(a) => a,
            PatchPath::Value(v) => v.attr,
        }
    }
}

fn require_schema(body: &Value, schema: &str) -> Result<()> {
    let schemas = body.get("schemas").and_then(Value::as_array).ok_or_else(|| syntax(format!("the resource names its schema: schemas: [{schema}]")))?;
    if !schemas.iter().any(|s| s.as_str() == Some(schema)) {
        return Err(syntax(format!("the resource's schemas must include {schema}")));
    }
    Ok(())
}

/// A User resource as POST and PUT send it: its `userName` and what it sets. `active`
/// defaults to true; attributes stint does not keep are ignored. An account's end and sponsor
/// change only when the resource carries stint's extension, which then replaces both: a
/// provider that knows nothing of the extension (its profile PUTs) never ends an account's
/// end by leaving it out.
pub fn user_resource(body: &Value) -> Result<(String, UserChanges)> {
    require_schema(body, USER_SCHEMA)?;
    let obj = body.as_object().ok_or_else(|| syntax("a User is a JSON object"))?;
    let name = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userName"))
        .and_then(|(_, v)| v.as_str())
        .ok_or_else(|| invalid_value("a User carries its userName"))?;
    let mut c = UserChanges { active: Some(true), external_id: Some(None), email: Some(None), expires: None, sponsor: None };
    for (k, v) in obj {
        if k.eq_ignore_ascii_case(STINT_USER_EXTENSION) {
            (c.expires, c.sponsor) = (Some(None), Some(None));
            c.set_extension(v)?;
            continue;
        }
        let k = k.to_ascii_lowercase();
        if k != "username" {
            c.set(&k, v)?;
        }
    }
    Ok((name.to_owned(), c))
}

/// What a request changes of a group.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GroupChanges {
    pub display_name: Option<String>,
    pub external_id: Option<Option<String>>,
    /// Member changes, in order.
    pub members: Vec<MemberChange>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    /// The members are exactly these.
    Set(Vec<String>),
}

/// The `value`s of a `members` list: `[{"value": "u_…"}, …]`.
fn member_values(v: &Value) -> Result<Vec<String>> {
    let list = match v {
        Value::Array(a) => a,
        Value::Object(_) => std::slice::from_ref(v),
        Value::Null => return Ok(vec![]),
        _ => return Err(invalid_value("members is a list of {\"value\": \"<user id>\"}")),
    };
    if list.len() > MAX_GROUP_MEMBERS {
        return Err(invalid_value(format!("a group has at most {MAX_GROUP_MEMBERS} members")));
    }
    list.iter()
        .map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| invalid_value("each member carries its user id as value")))
        .collect()
}

/// The user ids a `members[value eq "…"]` path selects (`or` of such comparisons too).
fn selected_members(f: &ValFilter) -> Result<Vec<String>> {
    match f {
        ValFilter::Attr(AttrExp::Comparison(p, CompareOp::Eq, CompValue::Str(s))) if p.name.eq_ignore_ascii_case("value") && p.sub_attr.is_none() => {
            Ok(vec![s.clone()])
        }
        ValFilter::Or(a, b) => Ok([selected_members(a)?, selected_members(b)?].concat()),
        _ => Err(Error::invalid("invalid_path", "stint selects members by value eq \"<user id>\"")),
    }
}

impl GroupChanges {
    fn set(&mut self, name: &str, v: &Value) -> Result<()> {
        match name {
            "displayname" => self.display_name = Some(short_string(v, "displayName")?.ok_or_else(|| invalid_value("a group has a displayName"))?),
            "externalid" => self.external_id = Some(short_string(v, "externalId")?),
            "members" => self.members.push(MemberChange::Set(member_values(v)?)),
            _ => {}
        }
        Ok(())
    }

    /// What a PATCH request changes of a group, in the shapes Okta and Microsoft Entra ID send:
    /// `{"op":"add","path":"members","value":[{"value":"u_…"}]}`,
    /// `{"op":"remove","path":"members[value eq \"u_…\"]"}`, Entra's
    /// `{"op":"Remove","path":"members","value":[{"value":"u_…"}]}`, and a rename as
    /// `{"op":"replace","value":{"displayName":"…"}}` or with `"path":"displayName"`.
    pub fn from_patch(body: &Value) -> Result<GroupChanges> {
        let mut c = GroupChanges::default();
        for (kind, path, value) in patch_operations(body)? {
            match path {
                Some(PatchPath::Value(vp)) => {
                    if core_name(&vp.attr, GROUP_SCHEMA).as_deref() != Some("members") || vp.sub_attr.is_some() {
                        return Err(Error::invalid("invalid_path", "stint's groups keep displayName, externalId and members"));
                    }
                    let ids = selected_members(&vp.filter)?;
                    match kind.as_str() {
                        "remove" => c.members.push(MemberChange::Remove(ids)),
                        _ => return Err(Error::invalid("invalid_path", "a member is added with path members and a value list")),
                    }
                }
                Some(PatchPath::Attr(p)) => match (kind.as_str(), core_name(&p, GROUP_SCHEMA).as_deref()) {
                    ("add", Some("members")) => c.members.push(MemberChange::Add(member_values(value)?)),
                    ("remove", Some("members")) if value.is_null() => c.members.push(MemberChange::Set(vec![])),
                    ("remove", Some("members")) => c.members.push(MemberChange::Remove(member_values(value)?)),
                    ("remove", Some("displayname")) => return Err(Error::invalid("mutability", "a group keeps its displayName; replace it")),
                    ("remove", Some("externalid")) => c.external_id = Some(None),
                    (_, Some(name)) => c.set(name, value)?,
                    (_, None) => {}
                },
                None => {
                    let value = value.as_object().ok_or_else(|| syntax("an operation without a path carries an object value"))?;
                    for (k, v) in value {
                        let k = k.to_ascii_lowercase();
                        match (kind.as_str(), k.as_str()) {
                            ("add", "members") => c.members.push(MemberChange::Add(member_values(v)?)),
                            // Okta repeats the group's id in a rename.
                            (_, "id") => {}
                            _ => c.set(&k, v)?,
                        }
                    }
                }
            }
        }
        Ok(c)
    }
}

/// A Group resource as POST and PUT send it: its `displayName` and what it sets.
pub fn group_resource(body: &Value) -> Result<(String, GroupChanges)> {
    require_schema(body, GROUP_SCHEMA)?;
    let obj = body.as_object().ok_or_else(|| syntax("a Group is a JSON object"))?;
    let mut c = GroupChanges { members: vec![MemberChange::Set(vec![])], external_id: Some(None), ..GroupChanges::default() };
    for (k, v) in obj {
        c.set(&k.to_ascii_lowercase(), v)?;
    }
    let name = c.display_name.take().ok_or_else(|| invalid_value("a Group carries its displayName"))?;
    Ok((name, c))
}

impl ScimGroup {
    /// Applies member changes; ids that are not user ids are refused (`unknown_member`), ids
    /// the caller must check exist.
    pub fn apply_members(&mut self, changes: &[MemberChange]) -> Result<()> {
        let parse = |ids: &[String]| -> Result<Vec<UserId>> {
            ids.iter()
                .map(|i| UserId::parse(i).map_err(|_| Error::invalid("unknown_member", format!("{:?} is not a stint user id", crate::ids::truncate(i)))))
                .collect()
        };
        for ch in changes {
            match ch {
                MemberChange::Add(ids) => self.members.extend(parse(ids)?),
                MemberChange::Remove(ids) => {
                    let gone = parse(ids)?;
                    self.members.retain(|m| !gone.contains(m));
                }
                MemberChange::Set(ids) => self.members = parse(ids)?,
            }
        }
        self.members.sort();
        self.members.dedup();
        if self.members.len() > MAX_GROUP_MEMBERS {
            return Err(invalid_value(format!("a group has at most {MAX_GROUP_MEMBERS} members")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ScimGroupId, Username};
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
            expires_at: None,
            sponsor: None,
            created_at: Timestamp(0),
        }
    }

    fn matches(filter: &str, u: &User) -> Result<bool> {
        super::matches(&parse_filter(filter)?, &UserView { user: u, profile: None })
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
        assert!(!matches(r#"externalId eq "00u1""#, &alice).unwrap(), "no externalId yet: it matches nothing");
        let profile = ScimProfile { external_id: Some("00u1".into()), email: Some("alice@example.com".into()) };
        let view = UserView { user: &alice, profile: Some(&profile) };
        let f = |t: &str| super::matches(&parse_filter(t).unwrap(), &view).unwrap();
        assert!(f(r#"externalId eq "00u1""#) && !f(r#"externalId eq "00U1""#), "externalId is case-exact");
        assert!(f(r#"emails.value eq "alice@example.com""#) && f(r#"emails eq "alice@example.com" and active eq true"#));
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
        assert_eq!(UserChanges::from_patch(&okta).unwrap().active, Some(false));
        let entra = json!({ "schemas": [PATCH_SCHEMA], "Operations": [
            { "op": "Replace", "path": "displayName", "value": "Alice A." },
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "Alice@Example.com" },
            { "op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Ops" }
        ] });
        let entra = UserChanges::from_patch(&entra).unwrap();
        assert_eq!(entra.active, Some(false));
        assert_eq!(entra.email, Some(Some("alice@example.com".into())), "Entra's emails[type eq \"work\"].value, lowercased");
        let back =
            json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:active", "value": true }] });
        assert_eq!(UserChanges::from_patch(&back).unwrap().active, Some(true));
        let names_only = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "value": { "name": { "givenName": "A" } } }] });
        assert_eq!(UserChanges::from_patch(&names_only).unwrap(), UserChanges::default());
        let code = |v: serde_json::Value| UserChanges::from_patch(&v).unwrap_err().code();
        assert_eq!(code(json!({ "Operations": [] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "move", "path": "active" }] })), "invalid_syntax");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "active", "value": "maybe" }] })), "invalid_value");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "userName", "value": "eve" }] })), "mutability");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "remove", "path": "active" }] })), "mutability");
        assert_eq!(code(json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": "a[[b", "value": 1 }] })), "invalid_path");
        assert_eq!(scim_type("invalid_filter"), Some("invalidFilter"));
    }

    #[test]
    fn user_resources_as_post_and_put_send_them() {
        let body = json!({
            "schemas": [USER_SCHEMA], "userName": "carol", "externalId": "00u9", "active": false,
            "name": { "givenName": "Carol" },
            "emails": [{ "value": "c@personal.example" }, { "value": "Carol@Example.com", "primary": true }],
        });
        let (name, c) = user_resource(&body).unwrap();
        assert_eq!(name, "carol");
        assert_eq!(
            c,
            UserChanges {
                active: Some(false),
                external_id: Some(Some("00u9".into())),
                email: Some(Some("carol@example.com".into())),
                expires: None,
                sponsor: None
            },
            "without stint's extension, the account's end and sponsor stay as they are"
        );
        let contractor =
            json!({ "schemas": [USER_SCHEMA, STINT_USER_EXTENSION], "userName": "vic", STINT_USER_EXTENSION: { "expires": "2027-03-31", "sponsor": "alice" } });
        let (_, c) = user_resource(&contractor).unwrap();
        assert_eq!((c.expires, c.sponsor), (Some(Some("2027-03-31".into())), Some(Some("alice".into()))));
        let (_, c) =
            user_resource(&json!({ "schemas": [USER_SCHEMA, STINT_USER_EXTENSION], "userName": "vic", STINT_USER_EXTENSION: { "expires": "2027-03-31" } }))
                .unwrap();
        assert_eq!((c.expires, c.sponsor), (Some(Some("2027-03-31".into())), Some(None)), "the extension replaces both");
        let extend =
            json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "path": format!("{STINT_USER_EXTENSION}:expires"), "value": "2027-06-30" }] });
        let c = UserChanges::from_patch(&extend).unwrap();
        assert_eq!((c.expires, c.sponsor), (Some(Some("2027-06-30".into())), None), "only the end changes");
        let okta =
            json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "value": { STINT_USER_EXTENSION: { "expires": null, "sponsor": null } } }] });
        let c = UserChanges::from_patch(&okta).unwrap();
        assert_eq!((c.expires, c.sponsor), (Some(None), Some(None)), "an account that no longer ends");
        let (_, c) = user_resource(&json!({ "schemas": [USER_SCHEMA], "userName": "dan" })).unwrap();
        assert_eq!(c.active, Some(true), "active by default");
        assert_eq!(user_resource(&json!({ "schemas": [GROUP_SCHEMA], "userName": "dan" })).unwrap_err().code(), "invalid_syntax");
        assert_eq!(user_resource(&json!({ "schemas": [USER_SCHEMA] })).unwrap_err().code(), "invalid_value");
        assert_eq!(user_resource(&json!({ "schemas": [USER_SCHEMA], "userName": "d", "externalId": "x".repeat(300) })).unwrap_err().code(), "invalid_value");
    }

    #[test]
    fn provider_groups_drive_the_stint_groups_they_map_to() {
        use crate::ids::GroupName;
        let gn = |s: &str| GroupName::parse(s).unwrap();
        let settings = ScimSettings { groups: [("engineering on-call".to_owned(), gn("oncall"))].into(), ..ScimSettings::default() };
        let mut alice = user("alice", false);
        alice.groups = vec![gn("developers"), gn("oncall")];
        let mut g = ScimGroup {
            id: ScimGroupId::random(&mut OsRng),
            display_name: "Engineering On-Call".into(),
            external_id: None,
            members: vec![],
            created_at: Timestamp(0),
        };
        assert_eq!(settings.groups_of(&alice, std::slice::from_ref(&g)), vec![gn("developers")], "left the provider's group: out of oncall, other groups stay");
        g.members.push(alice.id.clone());
        let unmapped = ScimGroup { id: ScimGroupId::random(&mut OsRng), display_name: "Marketing".into(), members: vec![alice.id.clone()], ..g.clone() };
        assert_eq!(settings.groups_of(&alice, &[g, unmapped]), vec![gn("developers"), gn("oncall")]);
    }

    #[test]
    fn group_changes_in_okta_and_entra_shapes() {
        let (a, b) = (UserId::random(&mut OsRng), UserId::random(&mut OsRng));
        let mut g =
            ScimGroup { id: ScimGroupId::random(&mut OsRng), display_name: "On-call".into(), external_id: None, members: vec![], created_at: Timestamp(0) };
        let add = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": a.as_str() }, { "value": b.as_str() }] }] });
        g.apply_members(&GroupChanges::from_patch(&add).unwrap().members).unwrap();
        assert_eq!(g.members.len(), 2);
        let okta_remove = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "remove", "path": format!("members[value eq \"{a}\"]") }] });
        g.apply_members(&GroupChanges::from_patch(&okta_remove).unwrap().members).unwrap();
        assert_eq!(g.members, vec![b.clone()]);
        let entra_remove = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "Remove", "path": "members", "value": [{ "value": b.as_str() }] }] });
        g.apply_members(&GroupChanges::from_patch(&entra_remove).unwrap().members).unwrap();
        assert!(g.members.is_empty());
        let rename = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "replace", "value": { "id": g.id.as_str(), "displayName": "SRE" } }] });
        assert_eq!(GroupChanges::from_patch(&rename).unwrap().display_name.as_deref(), Some("SRE"));
        let bad_member = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "not-an-id" }] }] });
        assert_eq!(g.apply_members(&GroupChanges::from_patch(&bad_member).unwrap().members).unwrap_err().code(), "unknown_member");
        let bad_path = json!({ "schemas": [PATCH_SCHEMA], "Operations": [{ "op": "remove", "path": "members[display sw \"x\"]" }] });
        assert_eq!(GroupChanges::from_patch(&bad_path).unwrap_err().code(), "invalid_path");
        let (name, c) = group_resource(&json!({ "schemas": [GROUP_SCHEMA], "displayName": "Admins", "members": [{ "value": a.as_str() }] })).unwrap();
        assert_eq!((name.as_str(), c.members), ("Admins", vec![MemberChange::Set(vec![]), MemberChange::Set(vec![a.to_string()])]));
        let f = |t: &str| super::matches(&parse_filter(t).unwrap(), &g).unwrap();
        assert!(f(r#"displayName eq "on-call""#) && !f(r#"members eq "u_x""#));
    }
}
