//! Administration commands: users, sessions, keys.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use stint_api::{AddUserRequest, EnrollmentCode, ExpiryRequest, LinkIdentityRequest, SetGroupsRequest};

use crate::client::Client;
use crate::ClientOpts;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user; prints their one-time enrollment code
    ///
    /// A contractor's or vendor's account ends by itself: give --expires and --sponsor. At the
    /// end the account is disabled and everything it holds ends; the sponsor is alerted
    /// `[users] expiry_alert` (7 days) before.
    Add {
        name: String,
        /// Group to join (repeatable), e.g. --group developers
        #[arg(long = "group", short = 'g')]
        groups: Vec<String>,
        /// When the account ends: a date (2026-12-31, through the end of that day, UTC) or an RFC 3339 time
        #[arg(long, requires = "sponsor")]
        expires: Option<String>,
        /// The person who vouches for the account (a user name); alerted before it ends
        #[arg(long, requires = "expires")]
        sponsor: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Set when an account ends and who sponsors it, or --never for one that does not end
    Expiry {
        name: String,
        /// When the account ends: a date (2026-12-31, through the end of that day, UTC) or an RFC 3339 time
        #[arg(long, requires = "sponsor", conflicts_with = "never")]
        expires: Option<String>,
        /// The person who vouches for the account (a user name)
        #[arg(long, requires = "expires", conflicts_with = "never")]
        sponsor: Option<String>,
        /// The account no longer ends
        #[arg(long, required_unless_present = "expires")]
        never: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List users
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Disable a user and revoke every session, token and lease they hold, at once
    Disable {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Enable a disabled user (their old sessions stay revoked)
    Enable {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Set a user's groups (the complete list); an SSO provider that sends groups replaces them at login
    Groups {
        name: String,
        /// Group (repeatable); none removes every group
        #[arg(long = "group", short = 'g')]
        groups: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Link a user to their identity at an SSO provider, so that sign-in is them from now on
    ///
    /// How a team moves from local users to SSO without recreating anyone: the person's next
    /// `stint login --provider NAME` logs in as this user, with their groups, grants and audit
    /// trail. SUBJECT is the provider's `sub` claim for the person (Okta's user id, Google's
    /// numeric id); the provider's admin console shows it.
    Link {
        name: String,
        /// The [[identity.oidc]] provider's name, as `stint login --provider` takes it
        #[arg(long)]
        provider: String,
        /// The person's `sub` at that provider
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Issue a new one-time enrollment code (expired code, lost authenticator)
    Reset {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Subcommand)]
pub enum SessionCmd {
    /// Revoke a session and every token derived from it
    Revoke {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Start signing with a new key; the old one stays published until its tokens expire
    Rotate {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List published signing keys
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn print_user(u: &Value) {
    print_user_among(u, &[]);
}

/// One user's line; `all` names the sponsor of an account that ends.
fn print_user_among(u: &Value, all: &[Value]) {
    let groups = u["groups"].as_array().map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let state = match (u["disabled"].as_bool(), u["enrolled"].as_bool()) {
        (Some(true), _) => "disabled",
        (_, Some(false)) => "not enrolled",
        _ => "active",
    };
    let ends = match (u["expires_at"].as_i64().map(|t| stint_core::Timestamp(t).to_rfc3339()), u["sponsor"].as_str()) {
        (Some(at), Some(sponsor)) => {
            let name = all.iter().find(|x| x["id"] == sponsor).and_then(|x| x["name"].as_str()).unwrap_or(sponsor);
            format!("{at} (sponsor {name})")
        }
        _ => "-".to_owned(),
    };
    println!("{:<20} {:<14} {:<30} {:<42} {}", u["name"].as_str().unwrap_or(""), state, groups, ends, u["id"].as_str().unwrap_or(""));
}

pub async fn user(cmd: UserCmd) -> Result<ExitCode> {
    match cmd {
        UserCmd::Add { name, groups, expires, sponsor, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let code: EnrollmentCode = c.post("/v1/users", &AddUserRequest { name, groups, expires, sponsor }).await?;
            super::auth::print_code(opts.output, &code, &c.server, "Created user")?;
        }
        UserCmd::List { opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let users: Vec<Value> = c.get("/v1/users").await?;
            opts.output.print(&users, |us| {
                println!("{:<20} {:<14} {:<30} {:<42} ID", "NAME", "STATE", "GROUPS", "ENDS");
                us.iter().for_each(|u| print_user_among(u, us));
            })?;
        }
        UserCmd::Expiry { name, expires, sponsor, never: _, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let u: Value = c.post(&format!("/v1/users/{}/expiry", urlencode(&name)), &ExpiryRequest { expires, sponsor }).await?;
            opts.output.print(&u, |u| match u["expires_at"].as_i64().map(|t| stint_core::Timestamp(t).to_rfc3339()) {
                Some(at) => println!("{}'s account ends at {at}.", u["name"].as_str().unwrap_or("")),
                None => println!("{}'s account no longer ends.", u["name"].as_str().unwrap_or("")),
            })?;
        }
        UserCmd::Disable { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let u: Value = c.post_empty(&format!("/v1/users/{}/disable", urlencode(&name))).await?;
            opts.output.print(&u, |u| println!("{}", disabled_text(u)))?;
        }
        UserCmd::Groups { name, groups, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let u: Value = c.put(&format!("/v1/users/{}/groups", urlencode(&name)), &SetGroupsRequest { groups }).await?;
            opts.output.print(&u, print_user)?;
        }
        UserCmd::Link { name, provider, subject, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let req = LinkIdentityRequest { provider: provider.clone(), subject };
            let u: Value = c.post(&format!("/v1/users/{}/identities", urlencode(&name)), &req).await?;
            opts.output.print(&u, |u| println!("Linked {} to their sign-in at {provider}.", u["name"].as_str().unwrap_or("")))?;
        }
        UserCmd::Reset { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let code: EnrollmentCode = c.post_empty(&format!("/v1/users/{}/enrollment", urlencode(&name))).await?;
            super::auth::print_code(opts.output, &code, &c.server, "New enrollment code for")?;
        }
        UserCmd::Enable { name, opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let u: Value = c.post_empty(&format!("/v1/users/{}/enable", urlencode(&name))).await?;
            opts.output.print(&u, |u| println!("Enabled {}.", u["name"].as_str().unwrap_or("")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn session(cmd: SessionCmd) -> Result<ExitCode> {
    let SessionCmd::Revoke { id, opts } = cmd;
    let c = Client::authenticated(opts.server.as_deref())?;
    let _: Value = c.post_empty(&format!("/v1/sessions/{}/revoke", urlencode(&id))).await?;
    opts.output.print(&serde_json::json!({ "revoked": id }), |_| println!("Revoked session {id} and every token derived from it."))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(cmd: KeysCmd) -> Result<ExitCode> {
    match cmd {
        KeysCmd::Rotate { opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let k: Value = c.post_empty("/v1/keys/rotate").await?;
            opts.output.print(&k, |k| {
                println!("Now signing with key {}; the previous key stays published until its last token expires.", k["kid"].as_str().unwrap_or(""))
            })?;
        }
        KeysCmd::List { opts } => {
            let c = Client::authenticated(opts.server.as_deref())?;
            let ks: Vec<Value> = c.get("/v1/keys").await?;
            opts.output.print(&ks, |ks| {
                for k in ks {
                    let state = if k["signing"].as_bool() == Some(true) {
                        "signing".to_owned()
                    } else {
                        format!("retired, published until {}", stint_core::Timestamp(k["published_until"].as_i64().unwrap_or(0)))
                    };
                    println!("{}  {}", k["kid"].as_str().unwrap_or(""), state);
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `stint user disable` says: what was revoked, leases counted.
fn disabled_text(u: &Value) -> String {
    let leases = match u["leases_revoked"].as_u64() {
        Some(1) => "1 lease".to_owned(),
        Some(n) => format!("{n} leases"),
        // A server from before the count: it revoked them all the same.
        None => "every lease".to_owned(),
    };
    let mut out = format!("Disabled {}; revoked every session and token they held, and {leases} on the backends.", u["name"].as_str().unwrap_or(""));
    let scim: Vec<&str> = u["scim_tokens_revoked"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if !scim.is_empty() {
        out.push_str(&format!(
            "\nAlso revoked the SCIM token{} they made: {}. Provisioning with {} stops until an administrator makes a new one \
             (`stint scim token create NAME`) and gives it to the identity provider.",
            if scim.len() == 1 { "" } else { "s" },
            scim.join(", "),
            if scim.len() == 1 { "it" } else { "them" },
        ));
    }
    out
}

/// Left as they are in a path segment: RFC 3986's unreserved characters (§2.3).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a path segment: a name with `/`, `?`, `#`, `%` or anything else outside the
/// unreserved set cannot reach another route.
pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::{disabled_text, urlencode};

    #[test]
    fn path_segments_keep_only_unreserved_characters() {
        assert_eq!(urlencode("alice-1_b.c~"), "alice-1_b.c~");
        assert_eq!(urlencode("a/b?c#d%e f&g=h+i"), "a%2Fb%3Fc%23d%25e%20f%26g%3Dh%2Bi");
        assert_eq!(urlencode("zoë"), "zo%C3%AB");
    }

    #[test]
    fn a_disable_says_what_it_revoked() {
        let plain = disabled_text(&serde_json::json!({ "name": "gil", "leases_revoked": 1, "scim_tokens_revoked": [] }));
        assert_eq!(plain, "Disabled gil; revoked every session and token they held, and 1 lease on the backends.");
        let admin = disabled_text(&serde_json::json!({ "name": "ann", "leases_revoked": 0, "scim_tokens_revoked": ["okta"] }));
        assert!(admin.contains("0 leases") && admin.contains("the SCIM token they made: okta") && admin.contains("stint scim token create"), "{admin}");
    }
}
