//! Role assumption, the token backend, and what verifiers need (JWKS, introspection).

use crate::audit::{Draft, Event, Outcome};
use crate::error::{Error, Result};
use crate::ids::{RoleName, Username};
use crate::jwt::{self, Claims};
use crate::policy::{GrantReason, Permit};
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};

use std::sync::Arc;

use super::issue::What;
use super::{Broker, Caller};

/// A role the caller may assume, and why.
#[derive(Debug, serde::Serialize)]
pub struct RoleChoice {
    pub role: RoleName,
    pub max_ttl: Ttl,
    pub reasons: Vec<GrantReason>,
    /// Where its credentials are issued besides the role token (`stint creds --backend`).
    pub backends: Vec<super::BackendChoice>,
}

#[derive(Debug, serde::Serialize)]
pub struct WhoAmI {
    pub user_id: String,
    pub username: Username,
    pub groups: Vec<String>,
    pub admin: bool,
    pub session_id: String,
    pub session_expires_at: Timestamp,
    pub roles: Vec<RoleChoice>,
}

/// A signed role token. `token` is the credential; the rest is safe to print.
pub struct Issued {
    pub token: crate::secret::SecretString,
    pub claims: Claims,
}

/// RFC 7662 §2.2 response.
#[derive(Debug, serde::Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
}

impl Introspection {
    fn inactive() -> Self {
        Introspection { active: false, claims: None }
    }
}

use crate::policy::CI_SUBJECT_PREFIX;

/// Tokens whose verified claims are remembered; past this the cache starts over.
const VERIFIED_CACHE_MAX: usize = 65_536;

/// How often an unknown `kid` may trigger a reload of keys from the store.
const KEY_RELOAD_INTERVAL_SECS: i64 = 1;

impl Broker {
    pub async fn whoami(&self, caller: &Caller) -> Result<WhoAmI> {
        let now = self.now();
        let ctx = self.authz_context(caller, now);
        let mut roles = Vec::new();
        for d in self.cfg.roles.iter() {
            let reasons = match self.cfg.roles.reasons(d, &caller.user, &ctx) {
                Ok(r) => Some(r),
                // Not otherwise eligible: an approved request may cover the role now.
                Err(_) => match self.current_grant(&caller.user.id, &d.name, now).await? {
                    Some(g) => self.cfg.roles.reasons(d, &caller.user, &Self::with_grant(&ctx, &g)).ok(),
                    None => None,
                },
            };
            if let Some(reasons) = reasons {
                roles.push(RoleChoice { role: d.name.clone(), max_ttl: d.max_ttl, reasons, backends: self.backends_of(&d.name) });
            }
        }
        Ok(WhoAmI {
            user_id: caller.user.id.to_string(),
            username: caller.user.name.clone(),
            groups: caller.user.groups.iter().map(ToString::to_string).collect(),
            admin: caller.user.in_group(&self.cfg.admin_group),
            session_id: caller.session.id.to_string(),
            session_expires_at: caller.session.expires_at,
            roles,
        })
    }

    fn with_grant(ctx: &crate::authz::AuthzContext, grant: &crate::model::RoleRequest) -> crate::authz::AuthzContext {
        let mut c = ctx.clone();
        if grant.break_glass {
            c.break_glass = true;
        } else {
            c.approved_request = true;
        }
        c.not_after = grant.granted_until;
        c
    }

    /// What the policies see about a person's request now.
    /// Checked at each issuance: when a shift ends (and its grace), so does what it granted.
    fn authz_context(&self, caller: &Caller, now: Timestamp) -> crate::authz::AuthzContext {
        let mut ctx = crate::authz::AuthzContext::human(&caller.session.mfa, now);
        ctx.on_call_schedules = self.on_call(&caller.user.name, now);
        ctx.on_call = !ctx.on_call_schedules.is_empty();
        ctx
    }

    /// Decides, records, then signs. The token leaves only after its audit record committed.
    pub async fn assume(&self, caller: &Caller, role: &str, ttl: Option<Ttl>) -> Result<Issued> {
        let now = self.now();
        let permit = self.decide(caller, role, ttl, now).await?;
        self.issue(permit, What::Token, now).await?.token()
    }

    /// Whether the caller may have `role` for `ttl` now; the permit names the grant it is
    /// issued under if an approved request (or break-glass) is what allows it. A refusal is
    /// audited.
    pub(super) async fn decide(&self, caller: &Caller, role: &str, ttl: Option<Ttl>, now: Timestamp) -> Result<Permit> {
        let ctx = self.authz_context(caller, now);
        let mut decided = RoleName::parse(role).and_then(|r| self.cfg.roles.decide(&caller.user, &caller.session, &r, ttl, &ctx));
        // Refused on its own: an approved request may cover the role, until its grant ends.
        if let (Err(e), Ok(r)) = (&decided, RoleName::parse(role)) {
            if e.code() == "role_not_granted" {
                if let Some(g) = self.current_grant(&caller.user.id, &r, now).await? {
                    decided = self.cfg.roles.decide(&caller.user, &caller.session, &r, ttl, &Self::with_grant(&ctx, &g)).map(|p| p.under_grant(g.id));
                }
            }
        }
        if let Err(e) = &decided {
            let d = Draft::new(now, Event::AssumeDenied, Outcome::Failure)
                .actor(&caller.user.id)
                .subject(crate::ids::truncate(role))
                .reason(e.code())
                .detail("session", &caller.session.id)
                .detail("why", e.to_string().chars().take(500).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect::<String>());
            // Folded per person: a stolen session spinning on a role it may not have grows the
            // log by a bounded number of records, every refusal written or counted.
            self.audit_refusal(crate::fold::FoldKey::of(&d, "assume", caller.user.id.as_str()), d).await?;
        }
        decided
    }

    /// The person is enabled and the session live when the change commits (see [`Self::entitled`]).
    pub(super) fn still_live(user: &crate::ids::UserId, session: &crate::ids::SessionId, now: Timestamp) -> Change {
        Change::default().with(Mutation::RequireEnabledUser { user: user.clone() }).with(Mutation::RequireLiveSession { session: session.clone(), at: now })
    }

    /// Active only if the signature, issuer, audience and times hold, the session is live
    /// and its owner enabled. Never an error for a bad token (RFC 7662 §2.2).
    pub async fn introspect(&self, token: &str) -> Result<Introspection> {
        let now = self.now();
        let mut ring = self.keyring()?;
        if let Ok(kid) = jwt::peek_kid(token) {
            let unknown = !ring.public.iter().any(|k| k.kid() == kid);
            if unknown && now.0 - ring.loaded_at.0 >= KEY_RELOAD_INTERVAL_SECS {
                // Another replica may have rotated keys.
                self.reload_keys().await?;
                ring = self.keyring()?;
            }
        }
        let Some(claims) = self.verified(token, &ring.public, now) else {
            return Ok(Introspection::inactive());
        };
        // A CI credential has no session: it lives its few minutes (and only CI subjects may
        // lack a session).
        let Some(sid) = &claims.sid else {
            // A workload's token lives while the agent key that asked for it is live and the
            // workload enabled: a disable revokes its keys, and enabling it again revives no
            // key, so none of its tokens. Read on every call, as a session is.
            if let Some(name) = claims.sub.strip_prefix(crate::workload::WORKLOAD_SUBJECT_PREFIX) {
                let live = match &claims.agent_key {
                    Some(kid) => self.store.workload_key(kid).await?.is_some_and(|(k, w)| k.live() && !w.disabled && w.name.as_str() == name),
                    None => false,
                };
                return Ok(if live { Introspection { active: true, claims: Some((*claims).clone()) } } else { Introspection::inactive() });
            }
            let ci = claims.sub.starts_with(CI_SUBJECT_PREFIX);
            return Ok(if ci { Introspection { active: true, claims: Some((*claims).clone()) } } else { Introspection::inactive() });
        };
        // Revocation is never cached: the session and its owner are read on every call.
        let Some((session, user)) = self.store.session(sid).await? else {
            return Ok(Introspection::inactive());
        };
        if !session.active_at(now) || user.disabled || user.expired_at(now) || user.id.as_str() != claims.sub {
            return Ok(Introspection::inactive());
        }
        // A token issued under a grant lives only while the grant is not revoked.
        if let Some(id) = &claims.grant {
            let live = self.store.request(id).await?.is_some_and(|g| g.status == crate::model::RequestStatus::Approved);
            if !live {
                return Ok(Introspection::inactive());
            }
        }
        Ok(Introspection { active: true, claims: Some((*claims).clone()) })
    }

    /// The claims of a token whose signature verified, from the cache when this exact token
    /// verified before. A signature check is the most expensive step of introspection and
    /// services present the same token again and again. Expiry is re-checked on every hit;
    /// a cached token's key cannot leave the JWKS before the token expires.
    fn verified(&self, token: &str, keys: &[crate::crypto::PublicKey], now: Timestamp) -> Option<Arc<Claims>> {
        use sha2::Digest;
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return None;
        }
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(c) = self.verified_cache.read().ok().and_then(|m| m.get(&key).cloned()) {
            return (now < c.exp).then_some(c);
        }
        let claims = Arc::new(jwt::verify(token, keys, &self.cfg.issuer, &self.cfg.audience, now).ok()?.claims);
        if let Ok(mut m) = self.verified_cache.write() {
            if m.len() >= VERIFIED_CACHE_MAX {
                // Crude but bounded: start over rather than track recency on the hot path.
                m.clear();
            }
            m.insert(key, claims.clone());
        }
        Some(claims)
    }

    /// The RFC 7517 key set of every key a live token may be signed with.
    pub fn jwks(&self) -> Result<serde_json::Value> {
        let ring = self.keyring()?;
        Ok(serde_json::json!({ "keys": ring.public.iter().map(|k| k.jwk()).collect::<Vec<_>>() }))
    }

    /// Reloads keys when the store's differ from ours: another replica rotated, or a retired
    /// key's last token expired and it leaves the JWKS. Runs periodically, without a restart.
    pub async fn refresh_keys(&self) -> Result<()> {
        let ring = self.keyring()?;
        let now = self.now();
        let keys = self.store.signing_keys().await?;
        let mut published: Vec<&str> = keys.iter().filter(|k| k.publishable(now)).map(|k| k.kid.as_str()).collect();
        let mut ours: Vec<&str> = ring.public.iter().map(|k| k.kid()).collect();
        published.sort_unstable();
        ours.sort_unstable();
        let active = keys.iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| (k.created_at, k.kid.clone())).map(|k| k.kid.as_str());
        if published != ours || active != Some(ring.signer.kid()) {
            self.reload_keys().await?;
        }
        Ok(())
    }

    /// OpenID Connect Discovery 1.0 §3 metadata.
    pub fn discovery(&self) -> serde_json::Value {
        let iss = self.cfg.issuer.trim_end_matches('/');
        serde_json::json!({
            "issuer": self.cfg.issuer,
            "jwks_uri": format!("{iss}/v1/jwks"),
            "introspection_endpoint": format!("{iss}/v1/introspect"),
            "token_endpoint": format!("{iss}/v1/token"),
            "grant_types_supported": ["urn:ietf:params:oauth:grant-type:token-exchange"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["none"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "role", "preferred_username", "grant", "agent_key"],
        })
    }

    /// Refuses role tokens presented where a session bearer is expected, with a useful message.
    pub fn refuse_role_token_as_session() -> Error {
        Error::unauthenticated("invalid_session", "a role token cannot authenticate to the stint API; use your session (`stint login`)")
    }
}
