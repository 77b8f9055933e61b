//! Decision tables through the real Cedar engine.

use rand_core::OsRng;

use super::*;
use crate::ids::{UserId, Username};
use crate::policy::Roles;

fn person(name: &str, groups: &[&str]) -> User {
    User {
        id: UserId::random(&mut OsRng),
        name: Username::parse(name).unwrap(),
        groups: groups.iter().map(|g| GroupName::parse(g).unwrap()).collect(),
        disabled: false,
        password_hash: None,
        totp_sealed: None,
        totp_last_step: 0,
        expires_at: None,
        sponsor: None,
        created_at: Timestamp(0),
    }
}

fn defaults() -> PolicySource {
    PolicySource { origin: "defaults".into(), text: crate::policy::default_policies(Roles::builtin().iter()) }
}

fn engine(extra: &str) -> Engine {
    let mut sources = vec![defaults()];
    if !extra.is_empty() {
        sources.push(PolicySource { origin: "team.cedar".into(), text: extra.into() });
    }
    Engine::new(&sources).unwrap()
}

fn role(r: &str) -> RoleName {
    RoleName::parse(r).unwrap()
}

/// 2026-11-28 03:00 UTC, a Saturday.
const SATURDAY_3AM: i64 = 1_795_834_800;

#[test]
fn the_defaults_follow_the_role_settings() {
    let e = engine("");
    let ctx = AuthzContext::human("password+totp", Timestamp(SATURDAY_3AM));
    let table = [
        (&[][..], "readonly", true, vec!["readonly: everyone"]),
        (&[], "developer", false, vec![]),
        (&["developers"], "developer", true, vec!["developer: group developers"]),
        (&["developers"], "admin", false, vec![]),
        (&["admins"], "admin", true, vec!["admin: group admins"]),
    ];
    for (groups, r, allowed, policies) in table {
        let d = e.decide(&Principal::Person(&person("alice", groups)), &role(r), &ctx).unwrap();
        assert_eq!((d.allowed, d.policies.iter().map(String::as_str).collect::<Vec<_>>()), (allowed, policies), "{groups:?} {r}");
        assert!(d.errors.is_empty());
    }
}

#[test]
fn team_policies_use_the_context() {
    let team = r#"
        @id("on-call developers")
        permit(principal is Stint::Person, action == Stint::Action::"assume", resource == Stint::Role::"developer")
        when { context.on_call };

        @id("admin only with an approved request or break-glass")
        permit(principal in Stint::Group::"admins", action == Stint::Action::"assume", resource == Stint::Role::"admin")
        when { context.approved_request || context.break_glass };

        @id("no humans at night for admin without break-glass")
        forbid(principal is Stint::Person, action, resource == Stint::Role::"admin")
        when { (context.hour_utc < 6 || context.hour_utc >= 22) && !context.break_glass };
    "#;
    let e = engine(team);
    let alice = person("alice", &[]);
    let root = person("root", &["admins"]);
    let mut ctx = AuthzContext::human("amr:otp", Timestamp(SATURDAY_3AM));
    assert!(!e.decide(&Principal::Person(&alice), &role("developer"), &ctx).unwrap().allowed, "not on call");
    ctx.on_call = true;
    let d = e.decide(&Principal::Person(&alice), &role("developer"), &ctx).unwrap();
    assert_eq!((d.allowed, d.policies.clone()), (true, vec!["on-call developers".to_owned()]));
    // At 3am the forbid wins over the group permit, and is named.
    let d = e.decide(&Principal::Person(&root), &role("admin"), &ctx).unwrap();
    assert_eq!((d.allowed, d.policies.clone()), (false, vec!["no humans at night for admin without break-glass".to_owned()]));
    ctx.break_glass = true;
    let d = e.decide(&Principal::Person(&root), &role("admin"), &ctx).unwrap();
    assert!(d.allowed);
    assert_eq!(d.policies, ["admin only with an approved request or break-glass", "admin: group admins"]);
    // Noon on a weekday: the group permit alone allows.
    let noon = AuthzContext::human("amr:otp", Timestamp(SATURDAY_3AM - 2 * 86_400 + 9 * 3600));
    assert!(e.decide(&Principal::Person(&root), &role("admin"), &noon).unwrap().allowed);
}

#[test]
fn the_clock_reaches_policies_as_utc_hour_and_weekday() {
    let e = engine(
        r#"@id("saturday 3am drills")
        permit(principal is Stint::Person, action == Stint::Action::"assume", resource == Stint::Role::"developer")
        when { context.weekday_utc == 5 && context.hour_utc == 3 };"#,
    );
    let alice = person("alice", &[]);
    let at = |t: i64| e.decide(&Principal::Person(&alice), &role("developer"), &AuthzContext::human("", Timestamp(t))).unwrap().allowed;
    assert!(at(SATURDAY_3AM));
    assert!(at(SATURDAY_3AM + 3599));
    assert!(!at(SATURDAY_3AM + 3600), "4am");
    assert!(!at(SATURDAY_3AM + 86_400), "Sunday");
    assert!(!at(SATURDAY_3AM - 7 * 86_400 + 86_400), "the Sunday before");
    assert!(at(SATURDAY_3AM - 7 * 86_400), "the Saturday before");
}

#[test]
fn remembered_decisions_still_follow_the_clock() {
    // Policies that read context.now are decided to the second, others to the hour.
    let e = engine(&format!(
        r#"@id("until the deadline")
        permit(principal is Stint::Person, action == Stint::Action::"assume", resource == Stint::Role::"developer")
        when {{ context.now < {} }};"#,
        SATURDAY_3AM + 10
    ));
    let alice = person("alice", &[]);
    let at = |t: i64| e.decide(&Principal::Person(&alice), &role("developer"), &AuthzContext::human("", Timestamp(t))).unwrap().allowed;
    assert!(at(SATURDAY_3AM + 9));
    assert!(!at(SATURDAY_3AM + 10), "a remembered decision from a second earlier is not reused");
    // And a change of groups is a different question.
    let dev = person("alice", &["developers"]);
    assert!(e.decide(&Principal::Person(&dev), &role("developer"), &AuthzContext::human("", Timestamp(SATURDAY_3AM + 10))).unwrap().allowed);
}

#[test]
fn a_policy_that_fails_to_evaluate_denies() {
    // Overflow: Cedar skips a policy whose evaluation errors; a skipped forbid must not allow.
    let e = engine(
        r#"@id("freeze")
        forbid(principal, action, resource == Stint::Role::"readonly")
        when { context.now * 9223372036854775807 > 0 };"#,
    );
    let d = e.decide(&Principal::Person(&person("alice", &[])), &role("readonly"), &AuthzContext::human("", Timestamp(SATURDAY_3AM))).unwrap();
    assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
}

#[test]
fn workloads_are_principals_too() {
    let team = r#"
        @id("pipelines of acme/infra deploy")
        permit(principal is Stint::Workload, action == Stint::Action::"assume", resource == Stint::Role::"readonly")
        when { principal.issuer == "github" && principal.subject like "repo:acme/infra:*" && context.source == "ci" };
    "#;
    let e = engine(team);
    let mut ctx = AuthzContext::human("", Timestamp(SATURDAY_3AM));
    ctx.source = Source::Ci;
    let ok = Principal::Workload { issuer: "github", subject: "repo:acme/infra:ref:refs/heads/main" };
    assert!(e.decide(&ok, &role("readonly"), &ctx).unwrap().allowed);
    let other = Principal::Workload { issuer: "github", subject: "repo:acme/web:ref:refs/heads/main" };
    assert!(!e.decide(&other, &role("readonly"), &ctx).unwrap().allowed, "the everyone default is for people only");
}

#[test]
fn invalid_policies_are_refused_with_file_and_line() {
    let err = |text: &str| Engine::new(&[defaults(), PolicySource { origin: "policies/team.cedar".into(), text: text.into() }]).unwrap_err().to_string();
    let e = err("\n\npermit(principal, action, resource) when { context.oncall };");
    assert!(e.starts_with("policies/team.cedar:3:"), "{e}");
    assert!(e.contains("oncall"), "an unknown context attribute: {e}");
    let e = err("permit(principal, action == Stint::Action::\"delete\", resource);");
    assert!(e.starts_with("policies/team.cedar:1:"), "an unknown action: {e}");
    let e = err("permit(principal,\n  action\n  resource);");
    assert!(e.starts_with("policies/team.cedar:3:"), "a syntax error: {e}");
    let e = err("@id(\"readonly: everyone\")\npermit(principal, action, resource);");
    assert!(e.contains("readonly: everyone"), "a duplicate id: {e}");
}
