//! What an identity provider (or whoever holds its SCIM token) sends to `/scim/v2/`: filters,
//! PATCH requests, and User and Group resources. The first byte chooses which; the rest is the
//! input. Invariants: nothing panics; every refusal has a stable code with a SCIM `scimType`
//! (or is `unknown_member`/`invalid_value`, answered 400); a filter that parses evaluates on a
//! person and a group without panicking; member changes leave members sorted, unique and
//! within the cap; a resource that parses has its schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stint_core::ids::{GroupName, ScimGroupId, UserId, Username};
use stint_core::model::User;
use stint_core::scim::{self, GroupChanges, ScimGroup, ScimProfile, ScimSettings, UserChanges, UserView};
use stint_core::Timestamp;

fn refused(e: stint_core::Error) {
    let code = e.code();
    assert!(scim::scim_type(code).is_some() || code.starts_with("invalid_"), "a refusal without a SCIM type: {code}");
}

fn person() -> (User, ScimProfile) {
    let user = User {
        id: UserId::from_trusted("u_aaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
        name: Username::parse("alice").expect("a name"),
        groups: vec![GroupName::parse("developers").expect("a group")],
        disabled: false,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        expires_at: None,
        sponsor: None,
        created_at: Timestamp(0),
    };
    (user, ScimProfile { external_id: Some("00u1".into()), email: Some("alice@example.com".into()) })
}

fn group() -> ScimGroup {
    ScimGroup {
        id: ScimGroupId::from_trusted("sg_aaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
        display_name: "On-Call".into(),
        external_id: None,
        members: vec![UserId::from_trusted("u_aaaaaaaaaaaaaaaaaaaaaaaaaa".into())],
        created_at: Timestamp(0),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (user, profile) = person();
    if which % 2 == 0 {
        // A filter, on both resources.
        match scim::parse_filter(text) {
            Ok(f) => {
                if let Err(e) = scim::matches(&f, &UserView { user: &user, profile: Some(&profile) }) {
                    refused(e);
                }
                if let Err(e) = scim::matches(&f, &group()) {
                    refused(e);
                }
            }
            Err(e) => refused(e),
        }
        return;
    }
    let Ok(body) = serde_json::from_str::<Value>(text) else { return };
    match which % 8 {
        1 => match UserChanges::from_patch(&body) {
            Ok(c) => assert!(c.email.flatten().is_none_or(|e| e == e.to_lowercase() && e.len() <= scim::MAX_VALUE_BYTES)),
            Err(e) => refused(e),
        },
        3 => {
            let mut g = group();
            match GroupChanges::from_patch(&body).and_then(|c| g.apply_members(&c.members).map(|()| c)) {
                Ok(c) => {
                    assert!(g.members.windows(2).all(|w| w[0] < w[1]), "members sorted and unique");
                    assert!(g.members.len() <= scim::MAX_GROUP_MEMBERS);
                    assert!(c.display_name.is_none_or(|n| !n.is_empty() && n.len() <= scim::MAX_VALUE_BYTES));
                    let settings = ScimSettings { groups: [("on-call".to_owned(), GroupName::parse("oncall").expect("a group"))].into(), ..Default::default() };
                    let groups = settings.groups_of(&user, &[g]);
                    assert!(groups.windows(2).all(|w| w[0] < w[1]));
                }
                Err(e) => refused(e),
            }
        }
        5 => match scim::user_resource(&body) {
            Ok((_, c)) => assert!(c.active.is_some(), "a created person is active or not, never unsaid"),
            Err(e) => refused(e),
        },
        _ => match scim::group_resource(&body) {
            Ok((name, _)) => assert!(!name.is_empty() && name.len() <= scim::MAX_VALUE_BYTES),
            Err(e) => refused(e),
        },
    }
});
