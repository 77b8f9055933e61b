//! Single sign-on through OpenID Connect providers.
//!
//! stint is the provider's client (a confidential one: the client secret never leaves the
//! server). Two ways in, one attempt record:
//!
//! - **Browser**: the CLI listens on a loopback port and begins with its own PKCE challenge.
//!   stint sends the browser to the provider (Authorization Code + PKCE, `state`, `nonce`),
//!   verifies what comes back, and redirects the browser to the CLI's loopback URL with a
//!   one-time login code. The CLI redeems that code with its PKCE verifier. The login code
//!   only ever travels to the loopback address of the machine whose browser logged in, and
//!   only the CLI that began holds the verifier, so a sign-in link sent to someone else
//!   yields nothing to whoever sent it.
//! - **Device** (RFC 8628): the CLI shows a user code; the person enters it on stint's
//!   verification page, which sends them through the provider; the CLI polls.
//!
//! A login counts only when the provider asserts MFA (`amr`/`acr`), or, where configured,
//! after stint's own TOTP as a step-up. The person is the provider's (issuer, `sub`), never
//! an email; the first login creates the user, each login refreshes email and groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use data_encoding::HEXLOWER;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{Draft, Event, Outcome};
use crate::bearer::{self, BearerKind};
use crate::error::{Error, Result};
use crate::fold::FoldKey;
use crate::ids::{truncate, GroupName, UserId, Username};
use crate::model::{Identity, SsoAttempt, SsoMode, SsoStatus, User};
use crate::oidc::{self, Expected, IdToken};
use crate::secret::SecretString;
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};
use crate::totp;

use super::auth::{NewSession, BAD_TOTP};
use super::Broker;

/// How long a login may take from start to redemption.
pub const ATTEMPT_TTL_SECS: i64 = 600;
/// The least seconds between device-flow polls; `slow_down` adds 5 (RFC 8628 §3.5).
pub const DEVICE_INTERVAL_SECS: i64 = 5;
/// User codes: 8 characters without vowels or look-alikes (RFC 8628 §6.1), about 34 bits.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// Finished attempts are kept a day for inspection, then purged.
pub(super) const KEEP_FINISHED_SECS: i64 = 24 * 3600;

/// One configured OpenID Provider and the rules its logins must pass.
#[derive(Clone, Debug)]
pub struct SsoProvider {
    /// The name people pass to `stint login --provider`.
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// The claims carrying the email address and the group list.
    pub email_claim: String,
    pub groups_claim: String,
    /// Lowercase email domains allowed to log in; empty allows any.
    pub allowed_domains: Vec<String>,
    /// Count an email as verified when the ID token has no `email_verified` claim at all
    /// (providers that only hand out addresses they verified and never say so).
    pub insecure_assume_email_verified: bool,
    /// `amr` values that count as MFA (RFC 8176), and `acr` values that do.
    pub mfa_amr: Vec<String>,
    pub mfa_acr: Vec<String>,
    /// Accept a login without provider MFA if the person then enters stint's TOTP.
    pub step_up_totp: bool,
    /// Provider group → the stint groups (hence roles) it makes the person eligible for.
    pub groups: BTreeMap<String, Vec<GroupName>>,
    /// The SSO session's absolute length.
    pub session_ttl: Ttl,
    /// The provider's own session length, counted from `auth_time`; the stint session ends
    /// no later than the provider's.
    pub provider_session: Option<Ttl>,
    /// Tolerated clock difference with the provider, seconds.
    pub skew_secs: i64,
}

/// What a verified ID token says about the person under a provider's rules, before stint
/// looks anyone up.
#[derive(Debug)]
pub struct ClaimedPerson {
    /// The email claim (at most 254 characters), verified or not.
    pub email: Option<String>,
    pub email_verified: bool,
    /// How the provider asserted MFA (`amr:…` or `acr:…`), if it did.
    pub mfa: Option<String>,
    /// The stint groups the provider's groups map to; `None` keeps those set in stint.
    pub groups: Option<Vec<GroupName>>,
}

impl SsoProvider {
    /// The login rules that need only the token: an allowed email domain (verified), and MFA
    /// unless TOTP step-up may stand in for it. Pure, so the claims anyone at the provider
    /// shapes can be fuzzed (fuzz/fuzz_targets/id_token_claims.rs).
    pub fn claimed_person(&self, token: &IdToken) -> Result<ClaimedPerson> {
        let email = string_claim(token, &self.email_claim).map(|e| e.chars().take(254).collect::<String>());
        let verified = email_verified(token, self);
        if !self.allowed_domains.is_empty() {
            let domain = email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
            if !verified || !domain.is_some_and(|d| self.allowed_domains.contains(&d)) {
                return Err(Error::forbidden("email_domain_not_allowed", "your account's email domain may not sign in to this stint server"));
            }
        }
        let mfa = oidc::asserted_mfa(token, &self.mfa_amr, &self.mfa_acr);
        if mfa.is_none() && !self.step_up_totp {
            return Err(Error::forbidden(
                "mfa_required",
                "the identity provider did not report multi-factor authentication for this sign-in (amr/acr); \
                 sign in with MFA at the provider, or ask an administrator to enable TOTP step-up",
            ));
        }
        let groups = claimed_groups(token, &self.groups_claim).map(|claimed| {
            let mut groups: Vec<GroupName> = claimed.iter().filter_map(|g| self.groups.get(*g)).flatten().cloned().collect();
            groups.sort();
            groups.dedup();
            groups
        });
        Ok(ClaimedPerson { email, email_verified: verified, mfa, groups })
    }
}

/// An OpenID Provider as the broker sees it; `stint-oidc` implements it over HTTP.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The authorization request to send the browser to.
    async fn authorization_url(&self, state: &str, nonce: &str, code_challenge: &str) -> Result<String>;
    /// Whether the provider's discovery advertises `authorization_response_iss_parameter_supported`
    /// (RFC 9207 §3): its authorization responses then always carry `iss`.
    async fn iss_required(&self) -> Result<bool>;
    /// Redeems an authorization code and verifies the ID token against `expect`.
    async fn redeem(&self, code: &str, verifier: &SecretString, expect: &Expected<'_>) -> Result<Redeemed>;
    /// Uses a refresh token (RFC 6749 §6) to ask whether the provider still vouches for the
    /// person, verifying the ID token it may send along against `expect` (OpenID Connect Core
    /// §12.2). `Err` when it could not answer (unreachable, a 5xx, an answer stint cannot read):
    /// that says nothing about the person.
    async fn refresh(&self, refresh_token: &SecretString, expect: &Expected<'_>) -> Result<Refreshed>;
}

/// What a redeemed authorization code gave.
pub struct Redeemed {
    pub id_token: IdToken,
    /// When the provider issued one: stint keeps it, sealed, for the session's revalidation.
    pub refresh_token: Option<SecretString>,
}

/// The provider's answer to a refresh.
pub enum Refreshed {
    /// It still vouches for the person: a new refresh token when it rotates them (the old one
    /// is then spent), and the ID token it sent, verified.
    Granted { refresh_token: Option<SecretString>, id_token: Option<IdToken> },
    /// It refused the grant (RFC 6749 §5.2 `invalid_grant`: the account was disabled or
    /// deleted, the password reset, consent or the provider's session revoked). `error` is
    /// the provider's error code, for the audit record.
    Refused { error: String },
}

/// Which flow a login uses, with what the browser flow needs.
pub enum SsoFlow {
    /// `redirect_uri`: the CLI's loopback listener; `code_challenge`: S256 of its verifier.
    Browser {
        redirect_uri: String,
        code_challenge: String,
    },
    Device,
}

pub struct SsoBegin {
    /// The provider's name; `None` picks the first configured.
    pub provider: Option<String>,
    pub flow: SsoFlow,
    pub addr: String,
}

/// What the CLI gets back when a login begins.
pub struct SsoStarted {
    pub provider: String,
    pub expires_at: Timestamp,
    /// Browser flow: where to send the browser.
    pub authorization_url: Option<String>,
    /// Device flow: what to show the person, and the code to poll with.
    pub device: Option<DeviceCodes>,
}

pub struct DeviceCodes {
    pub device_code: SecretString,
    /// As shown to the person, `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub interval_secs: i64,
}

/// The only client that starts device logins; the verification page names it.
pub const DEVICE_CLIENT: &str = "stint CLI";

/// A device login waiting for its person, as the verification page shows it.
pub struct DeviceRequest {
    /// As the terminal shows it, `XXXX-XXXX`.
    pub user_code: String,
    pub provider: String,
    pub client: &'static str,
    /// The address the login began from.
    pub addr: String,
    pub created_at: Timestamp,
}

/// What the provider sent back to stint's callback.
pub struct SsoCallback {
    pub state: String,
    pub code: Option<String>,
    pub error: Option<String>,
    /// RFC 9207 `iss`: when the provider sends it, it must be the provider's issuer.
    pub iss: Option<String>,
    pub addr: String,
}

/// Where the browser goes after the provider (or the TOTP step-up) returned.
#[derive(Debug)]
pub enum SsoOutcome {
    /// Browser flow: back to the CLI's loopback listener, with a login code or an error.
    Redirect(String),
    /// Device flow: signed in; the terminal picks the session up.
    Done { username: Username },
    /// The provider asserted no MFA: stint's TOTP is needed, posted back with `state`.
    StepUp { state: String, username: Username },
}

fn hex(b: &[u8]) -> String {
    HEXLOWER.encode(b)
}

/// Whether a presented bearer matches a hex-encoded stored hash, in constant time.
fn matches(presented: &bearer::PresentedBearer, stored_hex: &str) -> bool {
    HEXLOWER.decode(stored_hex.as_bytes()).is_ok_and(|h| presented.matches(&h))
}

/// `http://127.0.0.1:<port>/…`, `http://[::1]:<port>/…` or `http://localhost:<port>/…`
/// (RFC 8252 §7.3), short and without a fragment.
fn check_loopback(uri: &str) -> Result<()> {
    let bad = || Error::invalid("invalid_redirect_uri", "redirect_uri must be a loopback URL such as http://127.0.0.1:PORT/callback");
    if uri.len() > 200 || uri.contains('#') || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let rest = ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"].iter().find_map(|p| uri.strip_prefix(p)).ok_or_else(bad)?;
    let (port, path) = rest.split_once('/').unwrap_or((rest, ""));
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) || path.contains('?') {
        return Err(bad());
    }
    Ok(())
}

/// An S256 challenge is 43 characters of base64url.
fn check_challenge(c: &str) -> Result<()> {
    if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Ok(());
    }
    Err(Error::invalid("invalid_code_challenge", "code_challenge must be the S256 challenge of a PKCE verifier (43 characters)"))
}

fn new_user_code(rng: &mut dyn rand_core::CryptoRngCore) -> String {
    // 20 divides 240, so `b % 20` is uniform over bytes below 240.
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        if b[0] < 240 {
            out.push(USER_CODE_ALPHABET[usize::from(b[0] % 20)] as char);
        }
    }
    out
}

/// Uppercases and drops separators; `None` unless 8 characters of the alphabet remain.
fn normalize_user_code(s: &str) -> Option<String> {
    if s.len() > 32 {
        return None;
    }
    let code: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

fn user_code_hash(code: &str) -> String {
    hex(&Sha256::digest(code.as_bytes()))
}

fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// A name for a user created at first login: a verified email's local part, else a neutral
/// name from the provider and the subject, made to fit [`Username`]. An unverified address
/// never names anyone: whoever can set their own email at the provider would choose a name.
fn base_username(provider: &str, verified_email: Option<&str>, subject: &str) -> String {
    let neutral = || format!("{provider}-{subject}");
    let raw = verified_email.and_then(|e| e.split('@').next()).filter(|l| !l.is_empty()).map_or_else(neutral, str::to_owned);
    let mut name: String =
        raw.chars().map(|c| c.to_ascii_lowercase()).map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    name = name.trim_start_matches(['-', '_', '.']).chars().take(48).collect();
    if name.is_empty() {
        name = "user".into();
    }
    name
}

/// Whether the provider verified the email: only `true` (or the string `"true"`, as some
/// providers send it) does; a missing claim does when the provider is configured to say so.
fn email_verified(t: &IdToken, p: &SsoProvider) -> bool {
    match t.claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        None => p.insecure_assume_email_verified,
        Some(_) => false,
    }
}

fn string_claim<'a>(t: &'a IdToken, name: &str) -> Option<&'a str> {
    t.claims.get(name).and_then(Value::as_str)
}

/// The provider's groups claim: a list of strings, or one string; `None` when the provider
/// sends none (Google, say), so that groups stay as administrators set them in stint.
fn claimed_groups<'a>(t: &'a IdToken, name: &str) -> Option<Vec<&'a str>> {
    match t.claims.get(name)? {
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        Value::String(s) => Some(vec![s.as_str()]),
        _ => Some(vec![]),
    }
}

/// Why an SSO login was refused: the stable code, and the error the person sees.
struct Refusal {
    reason: String,
    error: Error,
}

impl Refusal {
    fn new(error: Error) -> Refusal {
        Refusal { reason: error.code().to_owned(), error }
    }
}

impl Broker {
    pub(super) fn provider(&self, name: Option<&str>) -> Result<(&SsoProvider, &Arc<dyn IdentityProvider>)> {
        let found = match name {
            Some(n) => self.cfg.sso.iter().find(|p| p.name == n),
            None => self.cfg.sso.first(),
        };
        let p = found.ok_or_else(|| match name {
            Some(n) => Error::not_found("unknown_provider", format!("no identity provider named {:?} is configured", truncate(n))),
            None => Error::not_found("sso_not_configured", "this stint server has no identity provider configured; log in with `stint login --password`"),
        })?;
        let idp = self.idps.get(&p.name).ok_or_else(|| Error::Internal(format!("identity provider {} is configured but not wired", p.name)))?;
        Ok((p, idp))
    }

    /// The names of the configured providers, in configuration order.
    pub fn sso_providers(&self) -> Vec<String> {
        self.cfg.sso.iter().map(|p| p.name.clone()).collect()
    }

    fn verifier_context(id: &str) -> String {
        format!("sso-verifier:{id}")
    }

    /// Mints the values that travel through the provider for one trip there: a fresh state,
    /// nonce and PKCE verifier, written into `a`. Returns the state and the challenge.
    fn outbound(&self, a: &mut SsoAttempt) -> (SecretString, String) {
        let state = bearer::mint(BearerKind::SsoState, &mut *self.rng());
        let verifier = oidc::pkce_verifier(&mut *self.rng());
        let mut nonce = [0u8; 24];
        self.rng().fill_bytes(&mut nonce);
        a.state_lookup = state.lookup;
        a.state_hash = hex(&state.hash);
        a.nonce = data_encoding::BASE64URL_NOPAD.encode(&nonce);
        a.verifier_sealed = self.kek.seal(&Self::verifier_context(&a.id), verifier.expose().as_bytes(), &mut *self.rng());
        (state.value, oidc::pkce_challenge(&verifier))
    }

    /// Counts an unauthenticated SSO request against its address (it creates or probes
    /// stored state); a finished login takes back one count. A refusal is audited.
    async fn sso_throttle(&self, addr: &str, now: Timestamp) -> Result<()> {
        let counted = self.addr_throttle.lock().map_err(|_| Error::Internal("throttle lock poisoned".into()))?.attempt(&[format!("sso:{addr}")], now);
        let Err(secs) = counted else { return Ok(()) };
        self.sso_failed(None, addr, "throttled", None, now).await?;
        Err(Error::Throttled { retry_after_secs: secs.max(1) })
    }

    /// A login finished: the request that began it no longer counts against `addr`, but
    /// what else the address tried (user codes it guessed) still does.
    fn sso_throttle_clear(&self, addr: &str) {
        if let Ok(mut t) = self.addr_throttle.lock() {
            t.refund(&format!("sso:{addr}"));
        }
    }

    /// Begins a login: stores the attempt and says where the person goes next.
    pub async fn sso_begin(&self, req: SsoBegin) -> Result<SsoStarted> {
        let now = self.now();
        let (p, idp) = self.provider(req.provider.as_deref())?;
        self.sso_throttle(&req.addr, now).await?;
        let mut a = SsoAttempt {
            id: format!("sso_{}", data_encoding::BASE32_NOPAD.encode(&UserId::random(&mut *self.rng()).as_str().as_bytes()[2..]).to_lowercase()),
            provider: p.name.clone(),
            mode: SsoMode::Browser,
            status: SsoStatus::Pending,
            state_lookup: String::new(),
            state_hash: String::new(),
            nonce: String::new(),
            verifier_sealed: String::new(),
            client_challenge: None,
            redirect_uri: None,
            code_lookup: None,
            code_hash: None,
            user_code_hash: None,
            user_id: None,
            subject: None,
            mfa: None,
            reason: None,
            session_expires_at: None,
            addr: truncate(&req.addr),
            created_at: now,
            expires_at: Timestamp(now.0 + ATTEMPT_TTL_SECS),
            interval_secs: DEVICE_INTERVAL_SECS,
            last_poll_at: None,
            refresh_sealed: None,
        };
        let (state, challenge) = self.outbound(&mut a);
        let mut started = SsoStarted { provider: p.name.clone(), expires_at: a.expires_at, authorization_url: None, device: None };
        match req.flow {
            SsoFlow::Browser { redirect_uri, code_challenge } => {
                check_loopback(&redirect_uri)?;
                check_challenge(&code_challenge)?;
                // Asked before anything is stored: an unreachable provider leaves nothing behind.
                match idp.authorization_url(state.expose(), &a.nonce, &challenge).await {
                    Ok(url) => started.authorization_url = Some(url),
                    Err(e) => {
                        self.sso_failed(Some(&a), &req.addr, e.code(), None, now).await?;
                        return Err(e);
                    }
                }
                a.client_challenge = Some(code_challenge);
                a.redirect_uri = Some(redirect_uri);
            }
            SsoFlow::Device => {
                let device = bearer::mint(BearerKind::DeviceCode, &mut *self.rng());
                let user_code = new_user_code(&mut *self.rng());
                a.mode = SsoMode::Device;
                a.code_lookup = Some(device.lookup);
                a.code_hash = Some(hex(&device.hash));
                a.user_code_hash = Some(user_code_hash(&user_code));
                let verification_uri = format!("{}/v1/sso/device", self.cfg.issuer);
                started.device = Some(DeviceCodes {
                    device_code: device.value,
                    verification_uri_complete: format!("{verification_uri}?user_code={}", display_user_code(&user_code)),
                    user_code: display_user_code(&user_code),
                    verification_uri,
                    interval_secs: a.interval_secs,
                });
            }
        }
        let purge = Mutation::PurgeSsoAttempts { before: Timestamp(now.0 - KEEP_FINISHED_SECS) };
        self.commit(Change::default().with(purge).with(Mutation::InsertSsoAttempt(a))).await?;
        Ok(started)
    }

    /// The device login a user code names, as the verification page shows it before the
    /// person goes on to the provider (RFC 8628 §5.4): a link someone else sent must not take
    /// a person with a live provider session through in one click, unseen.
    pub async fn sso_device_request(&self, user_code: &str, addr: &str) -> Result<DeviceRequest> {
        let a = self.device_attempt(user_code, addr).await?;
        let code = normalize_user_code(user_code).map(|c| display_user_code(&c)).unwrap_or_default();
        Ok(DeviceRequest { user_code: code, provider: a.provider, client: DEVICE_CLIENT, addr: a.addr, created_at: a.created_at })
    }

    /// The pending device attempt a user code names; an unknown code is audited and tells
    /// nothing of any other attempt.
    async fn device_attempt(&self, user_code: &str, addr: &str) -> Result<SsoAttempt> {
        let now = self.now();
        self.sso_throttle(addr, now).await?;
        let found = match normalize_user_code(user_code) {
            Some(code) => self.store.sso_attempt_by_user_code(&user_code_hash(&code), now).await?,
            None => None,
        };
        let Some(a) = found else {
            self.sso_failed(None, addr, "unknown_user_code", None, now).await?;
            return Err(Error::invalid(
                "invalid_user_code",
                "this code is unknown or has expired; check the code your terminal shows, or run `stint login --device` again",
            ));
        };
        Ok(a)
    }

    /// The device verification page, confirmed: a user code → the provider's authorization URL.
    pub async fn sso_device_authorize(&self, user_code: &str, addr: &str) -> Result<String> {
        let now = self.now();
        let mut a = self.device_attempt(user_code, addr).await?;
        let (_, idp) = self.provider(Some(&a.provider))?;
        // A fresh state for this trip: a second visit to this page supersedes the first.
        let (state, challenge) = self.outbound(&mut a);
        let url = match idp.authorization_url(state.expose(), &a.nonce, &challenge).await {
            Ok(url) => url,
            Err(e) => {
                self.sso_failed(Some(&a), addr, e.code(), None, now).await?;
                return Err(e);
            }
        };
        self.commit(Change::default().with(Mutation::UpdateSsoAttempt { attempt: a, expect: SsoStatus::Pending })).await?;
        Ok(url)
    }

    /// Audits a refused SSO step (`auth.login.failed`, method `sso`).
    async fn sso_failed(&self, a: Option<&SsoAttempt>, addr: &str, reason: &str, user: Option<&UserId>, now: Timestamp) -> Result<()> {
        self.observer.auth_failed(reason);
        let mut d = Draft::new(now, Event::LoginFailed, Outcome::Failure).actor(addr).reason(reason).detail("method", "sso");
        if let Some(a) = a {
            d = d.detail("provider", &a.provider).detail("flow", if a.mode == SsoMode::Browser { "browser" } else { "device" });
            if let Some(s) = &a.subject {
                d = d.detail("idp_subject", truncate(s));
            }
        }
        if let Some(u) = user {
            d = d.subject(u);
        }
        // Folded like other refusals: the scope keeps the provider for `stint audit failures`.
        let scope = a.map_or_else(|| "sso".to_owned(), |a| format!("sso:{}", a.provider));
        self.audit_refusal(FoldKey::of(&d, &scope, addr), d).await
    }

    /// Finds the attempt a presented `state` belongs to, in status `want`.
    async fn attempt_by_state(&self, state: &str, addr: &str, want: SsoStatus, now: Timestamp) -> Result<SsoAttempt> {
        let found = match bearer::parse(BearerKind::SsoState, state, "sso_state_mismatch") {
            Ok(p) => self.store.sso_attempt_by_state(&p.lookup).await?.filter(|a| matches(&p, &a.state_hash)),
            Err(_) => None,
        };
        let Some(a) = found else {
            self.sso_failed(None, addr, "state_mismatch", None, now).await?;
            return Err(Error::invalid("sso_state_mismatch", "this sign-in link is unknown or was already used; start again with `stint login`"));
        };
        if a.status != want {
            return Err(self.attempt_done(&a, addr, now).await);
        }
        Ok(a)
    }

    /// The refusal of a step on an attempt that has moved on, audited; the same whether the
    /// step came late or lost a race for the attempt.
    async fn attempt_done(&self, a: &SsoAttempt, addr: &str, now: Timestamp) -> Error {
        if let Err(e) = self.sso_failed(Some(a), addr, "attempt_done", a.user_id.as_ref(), now).await {
            return e;
        }
        Error::conflict("sso_attempt_done", "this sign-in has already finished; start again with `stint login`")
    }

    /// Takes the attempt from `Pending` to `Redeeming`, so that exactly one callback redeems
    /// the provider's single-use code (a second one would be refused by the provider, and
    /// could make the first fail).
    async fn claim_for_redeem(&self, mut a: SsoAttempt, addr: &str, now: Timestamp) -> Result<SsoAttempt> {
        a.status = SsoStatus::Redeeming;
        match self.commit(Change::default().with(Mutation::UpdateSsoAttempt { attempt: a.clone(), expect: SsoStatus::Pending })).await {
            Ok(_) => Ok(a),
            Err(e) if e.code() == "sso_attempt_done" => Err(self.attempt_done(&a, addr, now).await),
            Err(e) => Err(e),
        }
    }

    /// Marks the attempt denied (with `extra`, e.g. a just-created user) and audits why;
    /// `addr` is the browser's, at this step (the actor is the address the login began from).
    /// Browser flows get a redirect carrying the error to the CLI; device flows the error.
    async fn sso_deny(&self, mut a: SsoAttempt, expect: SsoStatus, refusal: Refusal, extra: Change, addr: &str, now: Timestamp) -> Result<SsoOutcome> {
        self.observer.auth_failed(&refusal.reason);
        let mut d = Draft::new(now, Event::LoginFailed, Outcome::Failure)
            .actor(&a.addr)
            .reason(&refusal.reason)
            .detail("method", "sso")
            .detail("provider", &a.provider)
            .detail("flow", if a.mode == SsoMode::Browser { "browser" } else { "device" })
            .detail("browser_addr", truncate(addr));
        if let Some(s) = &a.subject {
            d = d.detail("idp_subject", truncate(s));
        }
        if let Some(u) = &a.user_id {
            d = d.subject(u);
        }
        a.status = SsoStatus::Denied;
        a.reason = Some(refusal.reason.clone());
        a.refresh_sealed = None;
        let redirect = a.redirect_uri.clone();
        self.commit(extra.with(Mutation::UpdateSsoAttempt { attempt: a, expect }).record(d)).await?;
        match redirect {
            Some(uri) => {
                let q = form_urlencoded(&[("error", refusal.error.code()), ("error_description", &refusal.error.to_string())]);
                Ok(SsoOutcome::Redirect(format!("{uri}?{q}")))
            }
            None => Err(refusal.error),
        }
    }

    /// The provider sent the browser back: verify, check MFA, find or create the user.
    pub async fn sso_callback(&self, cb: SsoCallback) -> Result<SsoOutcome> {
        let now = self.now();
        let a = self.attempt_by_state(&cb.state, &cb.addr, SsoStatus::Pending, now).await?;
        let browser = a.redirect_uri.is_some();
        match self.callback_steps(a.clone(), &cb, now).await {
            // The CLI waits at its loopback listener: tell it (a conflict, say) rather than
            // leave it waiting. Faults of stint itself stay out of the redirect.
            Err(e) if browser && !matches!(e, Error::Store(_) | Error::Internal(_)) => {
                let current = self.store.sso_attempt_by_state(&a.state_lookup).await?.filter(|x| matches!(x.status, SsoStatus::Pending | SsoStatus::Redeeming));
                match current {
                    // A conflict means another callback holds the attempt: it answers the CLI.
                    Some(a) if e.code() != "sso_attempt_done" => {
                        let from = a.status;
                        self.sso_deny(a, from, Refusal::new(e), Change::default(), &cb.addr, now).await
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    async fn callback_steps(&self, a: SsoAttempt, cb: &SsoCallback, now: Timestamp) -> Result<SsoOutcome> {
        let none = Change::default();
        if now >= a.expires_at {
            let e = Error::unauthenticated("sso_expired", "this sign-in took too long; start again with `stint login`");
            return self.sso_deny(a, SsoStatus::Pending, Refusal::new(e), none, &cb.addr, now).await;
        }
        let (p, idp) = self.provider(Some(&a.provider))?;
        if cb.iss.as_deref().is_some_and(|iss| iss != p.issuer) {
            let e = Error::unauthenticated("issuer_mismatch", "the sign-in response came from another identity provider than the one it was sent to");
            return self.sso_deny(a, SsoStatus::Pending, Refusal::new(e), none, &cb.addr, now).await;
        }
        // RFC 9207 §2.4: a provider that promises `iss` and a response without it is a mix-up.
        if cb.iss.is_none() && idp.iss_required().await? {
            let e =
                Error::unauthenticated("issuer_missing", "the sign-in response did not say which identity provider sent it, though this provider always does");
            return self.sso_deny(a, SsoStatus::Pending, Refusal::new(e), none, &cb.addr, now).await;
        }
        if let Some(err) = cb.error.as_deref() {
            let e = Error::forbidden("access_denied", format!("the identity provider did not sign you in ({})", truncate(err)));
            return self.sso_deny(a, SsoStatus::Pending, Refusal { reason: "provider_denied".into(), error: e }, none, &cb.addr, now).await;
        }
        let Some(code) = cb.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 2048) else {
            let e = Error::invalid("invalid_callback", "the identity provider returned neither a code nor an error");
            return self.sso_deny(a, SsoStatus::Pending, Refusal::new(e), none, &cb.addr, now).await;
        };
        let mut a = self.claim_for_redeem(a, &cb.addr, now).await?;
        let verifier = self.kek.open(&Self::verifier_context(&a.id), &a.verifier_sealed)?;
        let verifier = SecretString::new(String::from_utf8(verifier.expose().to_vec()).map_err(|_| Error::Internal("sealed verifier is not text".into()))?);
        let expect = Expected { issuer: &p.issuer, client_id: &p.client_id, nonce: Some(&a.nonce), now, skew_secs: p.skew_secs };
        let Redeemed { id_token, refresh_token } = match idp.redeem(code, &verifier, &expect).await {
            Ok(r) => r,
            Err(e) => return self.sso_deny(a, SsoStatus::Redeeming, Refusal::new(e), none, &cb.addr, now).await,
        };
        a.refresh_sealed = refresh_token.map(|t| self.kek.seal(&super::revalidate::attempt_refresh_context(&a.id), t.expose().as_bytes(), &mut *self.rng()));
        self.admit(a, p, id_token, cb, now).await
    }

    /// Applies the login rules to a verified ID token.
    async fn admit(&self, mut a: SsoAttempt, p: &SsoProvider, token: IdToken, cb: &SsoCallback, now: Timestamp) -> Result<SsoOutcome> {
        a.subject = Some(token.subject.clone());
        let ClaimedPerson { email, email_verified: verified, mfa, groups } = match p.claimed_person(&token) {
            Ok(person) => person,
            Err(e) => return self.sso_deny(a, SsoStatus::Redeeming, Refusal::new(e), Change::default(), &cb.addr, now).await,
        };
        let (user, change) = match self.sso_user(p, &token, email, verified, groups, now).await {
            Ok(found) => found,
            Err(e @ (Error::Store(_) | Error::Internal(_))) => return Err(e),
            Err(e) => return self.sso_deny(a, SsoStatus::Redeeming, Refusal::new(e), Change::default(), &cb.addr, now).await,
        };
        a.user_id = Some(user.id.clone());
        if user.disabled || user.expired_at(now) {
            return self.sso_deny_disabled(a, SsoStatus::Redeeming, &user, change, &cb.addr, now).await;
        }
        let mut end = now.plus(p.session_ttl);
        if let Some(ps) = p.provider_session {
            let auth_time = token.claims.get("auth_time").and_then(Value::as_i64).or_else(|| token.claims.get("iat").and_then(Value::as_i64)).unwrap_or(now.0);
            end = end.min(Timestamp(auth_time).plus(ps));
        }
        if end <= now {
            let e = Error::unauthenticated("provider_session_ended", "your session at the identity provider has ended; sign in there again");
            return self.sso_deny(a, SsoStatus::Redeeming, Refusal::new(e), change, &cb.addr, now).await;
        }
        a.session_expires_at = Some(end);
        match mfa {
            Some(m) => {
                a.mfa = Some(m);
                self.sso_approve(a, SsoStatus::Redeeming, change, &user, &cb.addr, now).await
            }
            None if user.totp_sealed.is_none() => {
                let e = Error::forbidden(
                    "totp_enrollment_required",
                    format!(
                        "this provider does not report MFA, so stint asks for its own one-time code, but {} has none yet; \
                         ask an administrator for an enrollment code (`stint user reset {}`)",
                        user.name, user.name
                    ),
                );
                self.sso_deny(a, SsoStatus::Redeeming, Refusal::new(e), change, &cb.addr, now).await
            }
            None => {
                let next = SsoAttempt { status: SsoStatus::StepUp, ..a.clone() };
                let denied = self.sso_advance(a, next, SsoStatus::Redeeming, change, &user, &cb.addr, now).await?;
                Ok(denied.unwrap_or(SsoOutcome::StepUp { state: cb.state.clone(), username: user.name }))
            }
        }
    }

    /// The user an identity logs in as, with the changes that refresh (or create) it.
    /// `groups`: from the provider's claim, or `None` to keep the groups set in stint.
    async fn sso_user(
        &self,
        p: &SsoProvider,
        token: &IdToken,
        email: Option<String>,
        email_verified: bool,
        groups: Option<Vec<GroupName>>,
        now: Timestamp,
    ) -> Result<(User, Change)> {
        let mut change = Change::default();
        if let Some((_, user)) = self.store.identity(&token.issuer, &token.subject).await? {
            let touch = Mutation::TouchIdentity { issuer: token.issuer.clone(), subject: token.subject.clone(), email, at: now };
            return Ok(with_claimed_groups(p, user, groups, change.with(touch), now));
        }
        let verified_email = email.as_deref().filter(|_| email_verified);
        if let Some(user) = self.provisioned_person(&p.name, &token.subject, verified_email).await? {
            // Provisioned through SCIM: this sign-in is that person from now on.
            let identity =
                Identity { issuer: token.issuer.clone(), subject: token.subject.clone(), user_id: user.id.clone(), email, created_at: now, last_login_at: now };
            let d = Draft::new(now, Event::IdentityLinked, Outcome::Success)
                .actor(format!("sso:{}", p.name))
                .subject(&user.id)
                .detail("provider", &p.name)
                .detail("idp_subject", truncate(&token.subject))
                .detail("matched", "scim");
            return Ok(with_claimed_groups(p, user, groups, change.with(Mutation::LinkIdentity(identity)).record(d), now));
        }
        let groups = groups.unwrap_or_default();
        let name = self.first_login_name(&base_username(&p.name, verified_email, &token.subject), p, &token.subject).await?;
        let user = User {
            id: UserId::random(&mut *self.rng()),
            name: name.clone(),
            groups: groups.clone(),
            disabled: false,
            password_hash: None,
            totp_sealed: None,
            totp_last_step: 0,
            expires_at: None,
            sponsor: None,
            created_at: now,
        };
        let identity =
            Identity { issuer: token.issuer.clone(), subject: token.subject.clone(), user_id: user.id.clone(), email, created_at: now, last_login_at: now };
        let list: Vec<&str> = groups.iter().map(GroupName::as_str).collect();
        let d = Draft::new(now, Event::UserCreated, Outcome::Success)
            .actor(format!("sso:{}", p.name))
            .subject(&user.id)
            .detail("name", &name)
            .detail("groups", list.join(","))
            .detail("idp_subject", truncate(&token.subject));
        change = change.with(Mutation::InsertUser(user.clone())).with(Mutation::LinkIdentity(identity)).record(d);
        Ok((user, change))
    }

    /// The name a first login takes: `base`, else `base-2`, `base-3`… when a person holds it.
    /// A name the configuration or the policies refer to, and that no person holds, grants
    /// whatever they give it: a login never takes it, an administrator links it.
    async fn first_login_name(&self, base: &str, p: &SsoProvider, subject: &str) -> Result<Username> {
        for n in 1..100 {
            let candidate = Username::parse(&if n == 1 { base.to_owned() } else { format!("{base}-{n}") })?;
            if self.store.user_by_name(&candidate).await?.is_some() {
                continue;
            }
            if self.named_elsewhere(&candidate) {
                return Err(Error::forbidden(
                    "sso_name_reserved",
                    format!(
                        "the user name {candidate} is named in this server's configuration or policies and no stint user holds it, \
                         so a sign-in cannot take it; ask an administrator to create {candidate} and link this sign-in to it \
                         (provider {}, subject {:?})",
                        p.name,
                        truncate(subject)
                    ),
                ));
            }
            return Ok(candidate);
        }
        Err(Error::conflict("user_exists", format!("no free user name near {base}; ask an administrator")))
    }

    /// Whether the configuration or the policies name `name`: on-call rotations and the
    /// calendar shifts read, calendar `people_map`s, and Cedar policy text quoting it (as
    /// `Stint::Person::"name"` or `principal.name == "name"` do).
    fn named_elsewhere(&self, name: &Username) -> bool {
        use crate::oncall::ScheduleSource;
        let quoted = format!("\"{name}\"");
        let on_call = |s: &crate::oncall::Schedule| match &s.source {
            ScheduleSource::Rotation(r) => r.people.contains(name),
            ScheduleSource::Calendar(calendar) => calendar.shifts().any(|x| &x.person == name),
        };
        // A poisoned lock cannot tell: count the name as taken (fail closed).
        self.cfg.named_people.contains(name)
            || self.cfg.roles.engine().policies().iter().any(|(_, text)| text.contains(&quoted))
            || self.oncall.read().map_or(true, |all| all.iter().any(on_call))
    }

    /// `POST /v1/users/{name}/identities`: an administrator links a provider identity (its
    /// issuer and `sub`) to an existing user, who then logs in through it. This is how a name
    /// a login may not take (see [`Broker::named_elsewhere`]) gets its person.
    pub async fn link_identity(&self, admin: &super::admin::Admin<'_>, name: &str, provider: &str, subject: &str) -> Result<super::UserInfo> {
        let now = self.now();
        let (p, _) = self.provider(Some(provider))?;
        if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
            return Err(Error::invalid("invalid_subject", "subject must be the provider's `sub` for the person: 1-255 characters"));
        }
        let user = self.target_user(name).await?;
        let identity =
            Identity { issuer: p.issuer.clone(), subject: subject.to_owned(), user_id: user.id.clone(), email: None, created_at: now, last_login_at: now };
        let d = Draft::new(now, Event::IdentityLinked, Outcome::Success)
            .actor(admin.id())
            .subject(&user.id)
            .detail("provider", &p.name)
            .detail("idp_subject", truncate(subject));
        self.commit(Change::default().with(Mutation::LinkIdentity(identity)).record(d)).await?;
        Ok(super::UserInfo::from(&user))
    }

    /// Approves the attempt. A browser login gets a one-time login code for the CLI.
    async fn sso_approve(&self, a: SsoAttempt, expect: SsoStatus, change: Change, user: &User, addr: &str, now: Timestamp) -> Result<SsoOutcome> {
        let mut next = SsoAttempt { status: SsoStatus::Approved, ..a.clone() };
        let mut outcome = SsoOutcome::Done { username: user.name.clone() };
        if let Some(uri) = &next.redirect_uri {
            let login = bearer::mint(BearerKind::SsoLogin, &mut *self.rng());
            next.code_lookup = Some(login.lookup);
            next.code_hash = Some(hex(&login.hash));
            outcome = SsoOutcome::Redirect(format!("{uri}?{}", form_urlencoded(&[("code", login.value.expose())])));
        }
        self.sso_advance(a, next, expect, change, user, addr, now).await.map(|denied| denied.unwrap_or(outcome))
    }

    /// Moves attempt `a` from `expect` to `next` with `change`, while its person is enabled.
    /// The disable that committed while the provider was redeeming the code could not deny
    /// this attempt (it named nobody yet, see [`SsoAttempt::denied_for`]), so the person is
    /// re-checked in this transaction; a disabled one gets the attempt denied (`user_disabled`)
    /// instead: `Some` of where the browser goes then.
    #[allow(clippy::too_many_arguments)]
    async fn sso_advance(
        &self,
        a: SsoAttempt,
        next: SsoAttempt,
        expect: SsoStatus,
        change: Change,
        user: &User,
        addr: &str,
        now: Timestamp,
    ) -> Result<Option<SsoOutcome>> {
        let change = change.with(Mutation::UpdateSsoAttempt { attempt: next, expect }).with(Mutation::RequireEnabledUser { user: user.id.clone() });
        match self.commit(change).await {
            Ok(_) => Ok(None),
            Err(e) if e.code() == "user_disabled" => self.sso_deny_disabled(a, expect, user, Change::default(), addr, now).await.map(Some),
            Err(e) => Err(e),
        }
    }

    /// Denies the attempt of a disabled person (with `extra`), and alerts.
    async fn sso_deny_disabled(&self, a: SsoAttempt, expect: SsoStatus, user: &User, extra: Change, addr: &str, now: Timestamp) -> Result<SsoOutcome> {
        self.alert_login_failure(user, "user_disabled", addr, &format!("sso:{}", a.provider), now);
        let e = disabled_in_stint();
        self.sso_deny(a, expect, Refusal::new(e), extra, addr, now).await
    }

    /// stint's own TOTP after a provider login without MFA.
    pub async fn sso_step_up(&self, state: &str, code: SecretString, addr: &str) -> Result<SsoOutcome> {
        let now = self.now();
        let mut a = self.attempt_by_state(state, addr, SsoStatus::StepUp, now).await?;
        if now >= a.expires_at {
            let e = Error::unauthenticated("sso_expired", "this sign-in took too long; start again with `stint login`");
            return self.sso_deny(a, SsoStatus::StepUp, Refusal::new(e), Change::default(), addr, now).await;
        }
        let user_id = a.user_id.clone().ok_or_else(|| Error::Internal("step-up attempt without user".into()))?;
        let user = self.store.user_by_id(&user_id).await?.ok_or_else(|| Error::Internal("step-up attempt for a missing user".into()))?;
        let sealed = user.totp_sealed.clone().ok_or_else(|| Error::Internal("step-up for a user without TOTP".into()))?;
        let counted = self.throttle.lock().map_err(|_| Error::Internal("throttle lock poisoned".into()))?.attempt(&[format!("totp:{}", user.id)], now);
        if let Err(secs) = counted {
            self.sso_failed(Some(&a), addr, "throttled_second_factor", Some(&user.id), now).await?;
            return Err(Error::Throttled { retry_after_secs: secs.max(1) });
        }
        let secret = self.kek.open(&super::auth::totp_context(&user.id), &sealed)?;
        let step = match totp::verify(secret.expose(), code.expose(), now) {
            Some(step) if step > user.totp_last_step => step,
            Some(_) => {
                self.sso_failed(Some(&a), addr, "totp_replayed", Some(&user.id), now).await?;
                return Err(Error::unauthenticated("totp_replayed", "this one-time code was already used; wait for the next one"));
            }
            None => {
                self.sso_failed(Some(&a), addr, "bad_totp", Some(&user.id), now).await?;
                return Err(Error::unauthenticated("invalid_totp", BAD_TOTP));
            }
        };
        if let Ok(mut t) = self.throttle.lock() {
            t.success(&format!("totp:{}", user.id));
        }
        a.mfa = Some("stint_totp".into());
        let change = Change::default().with(Mutation::AdvanceTotp { user: user.id.clone(), step });
        self.sso_approve(a, SsoStatus::StepUp, change, &user, addr, now).await
    }

    /// Browser flow, last step: the CLI redeems the login code with its PKCE verifier.
    pub async fn sso_redeem(&self, code: &str, code_verifier: &str, addr: &str) -> Result<NewSession> {
        let a = self.redeemable_login(code, code_verifier, addr).await?;
        match self.sso_session(a, addr).await {
            // Another redemption took the attempt since our read: answer as to a later one.
            Err(e) if e.code() == "sso_attempt_done" => {
                self.redeemable_login(code, code_verifier, addr).await?;
                Err(already_used())
            }
            other => other,
        }
    }

    /// The approved browser attempt a login code and verifier redeem, or the refusal, audited.
    async fn redeemable_login(&self, code: &str, code_verifier: &str, addr: &str) -> Result<SsoAttempt> {
        let now = self.now();
        let found = match bearer::parse(BearerKind::SsoLogin, code, "invalid_grant") {
            Ok(p) => self
                .store
                .sso_attempt_by_code(&p.lookup)
                .await?
                .filter(|a| a.mode == SsoMode::Browser && a.code_hash.as_deref().is_some_and(|h| matches(&p, h))),
            Err(_) => None,
        };
        // RFC 6749 §5.2: invalid_grant is a 400.
        let refuse = |why: &str| Error::invalid("invalid_grant", format!("{why}; start again with `stint login`"));
        let Some(a) = found else {
            self.sso_failed(None, addr, "unknown_login_code", None, now).await?;
            return Err(refuse("this login code is unknown"));
        };
        let challenge = oidc::pkce_challenge(&SecretString::new(code_verifier.to_owned()));
        let pkce_ok = a.client_challenge.as_deref().is_some_and(|c| bool::from(c.as_bytes().ct_eq(challenge.as_bytes())));
        let reason = match a.status {
            _ if !pkce_ok => Some("pkce_mismatch"),
            SsoStatus::Consumed => Some("code_used"),
            SsoStatus::Approved if now >= a.expires_at => Some("sso_expired"),
            SsoStatus::Approved => None,
            _ => Some("not_approved"),
        };
        if let Some(reason) = reason {
            self.sso_failed(Some(&a), addr, reason, a.user_id.as_ref(), now).await?;
            return Err(refuse("this login code does not match this sign-in, was already used or has expired"));
        }
        Ok(a)
    }

    /// Device flow: one poll (RFC 8628 §3.4–3.5).
    pub async fn sso_poll(&self, device_code: &str, addr: &str) -> Result<NewSession> {
        let now = self.now();
        let mut a = self.pollable_device(device_code, addr).await?;
        let expect = a.status;
        let too_soon = a.last_poll_at.is_some_and(|last| now.0 - last.0 < a.interval_secs);
        a.last_poll_at = Some(now);
        if too_soon {
            a.interval_secs += 5;
            let secs = a.interval_secs;
            // A lost race with the callback only means this poll's bookkeeping is dropped.
            let _ = self.commit(Change::default().with(Mutation::UpdateSsoAttempt { attempt: a, expect })).await;
            return Err(Error::invalid("slow_down", format!("polling too fast; wait {secs} seconds between polls")));
        }
        if expect != SsoStatus::Approved {
            let _ = self.commit(Change::default().with(Mutation::UpdateSsoAttempt { attempt: a, expect })).await;
            return Err(Error::invalid("authorization_pending", "waiting for you to sign in in the browser"));
        }
        match self.sso_session(a, addr).await {
            // Another poll took the attempt since our read: answer as to a later one.
            Err(e) if e.code() == "sso_attempt_done" => {
                self.pollable_device(device_code, addr).await?;
                Err(already_used())
            }
            other => other,
        }
    }

    /// The device attempt a device code names while it may still become a session, or the
    /// final answer (RFC 8628 §3.5); a code already redeemed is refused and audited.
    async fn pollable_device(&self, device_code: &str, addr: &str) -> Result<SsoAttempt> {
        let now = self.now();
        let found = match bearer::parse(BearerKind::DeviceCode, device_code, "invalid_grant") {
            Ok(p) => {
                self.store.sso_attempt_by_code(&p.lookup).await?.filter(|a| a.mode == SsoMode::Device && a.code_hash.as_deref().is_some_and(|h| matches(&p, h)))
            }
            Err(_) => None,
        };
        let Some(a) = found else {
            self.sso_failed(None, addr, "unknown_device_code", None, now).await?;
            return Err(Error::invalid("invalid_grant", "this device code is unknown; run `stint login --device` again"));
        };
        match a.status {
            SsoStatus::Consumed => {
                self.sso_failed(Some(&a), addr, "code_used", a.user_id.as_ref(), now).await?;
                Err(Error::invalid("invalid_grant", "this device code was already used; run `stint login --device` again"))
            }
            SsoStatus::Denied => {
                let why = a.reason.clone().unwrap_or_else(|| "denied".into());
                Err(Error::invalid("access_denied", format!("the sign-in was refused ({why}); run `stint login --device` again")))
            }
            _ if now >= a.expires_at => Err(Error::invalid("expired_token", "the code expired before anyone signed in; run `stint login --device` again")),
            _ => Ok(a),
        }
    }

    /// Turns an approved attempt into a session, once.
    /// Fails with the store's `sso_attempt_done` when another redemption took it first.
    async fn sso_session(&self, mut a: SsoAttempt, addr: &str) -> Result<NewSession> {
        let now = self.now();
        let user_id = a.user_id.clone().ok_or_else(|| Error::Internal("approved attempt without user".into()))?;
        let user = self.store.user_by_id(&user_id).await?.ok_or_else(|| Error::Internal("approved attempt for a missing user".into()))?;
        // Approved while the account lived, redeemed after its end (and before housekeeping
        // disabled it): refused as the approval would have been. A disable is re-checked in
        // the transaction below.
        if user.expired_at(now) {
            self.sso_failed(Some(&a), addr, "user_disabled", Some(&user.id), now).await?;
            return Err(disabled_in_stint());
        }
        let expires_at = a.session_expires_at.unwrap_or_else(|| now.plus(self.cfg.session_ttl));
        let (session, out) = self.mint_session(&user, expires_at, a.mfa.as_deref().unwrap_or(""), now);
        let ok = Draft::new(now, Event::LoginSucceeded, Outcome::Success)
            .actor(&user.id)
            .subject(&user.id)
            .detail("method", "sso")
            .detail("provider", &a.provider)
            .detail("idp_subject", truncate(a.subject.as_deref().unwrap_or("")))
            .detail("mfa", a.mfa.as_deref().unwrap_or(""))
            .detail("addr", addr);
        let started = Draft::new(now, Event::SessionStarted, Outcome::Success).actor(&user.id).subject(&session.id).detail("expires_at", session.expires_at);
        let refresh = self.bind_refresh(&mut a, &session.id, now)?;
        let expect = a.status;
        a.status = SsoStatus::Consumed;
        let change = Change::default()
            .with(Mutation::RequireEnabledUser { user: user.id.clone() })
            .with(Mutation::UpdateSsoAttempt { attempt: a.clone(), expect })
            .with(Mutation::RequireSessionRoom { user: user.id.clone(), at: now, max: self.cfg.caps.sessions_per_person })
            .with(Mutation::InsertSession(session))
            .record(ok)
            .record(started);
        let change = match refresh {
            Some(r) => change.with(Mutation::InsertSsoRefresh(r)),
            None => change,
        };
        match self.commit(change).await {
            Ok(_) => {
                self.sso_throttle_clear(&a.addr);
                if addr != a.addr {
                    self.sso_throttle_clear(addr);
                }
                Ok(out)
            }
            Err(e) if e.code() == "user_disabled" => {
                self.sso_failed(Some(&a), addr, "user_disabled", Some(&user.id), now).await?;
                Err(disabled_in_stint())
            }
            // The person holds as many sessions as allowed (the transaction changed nothing):
            // refused, and audited, folded.
            Err(e) if e.code() == "too_many_sessions" => {
                self.sso_failed(Some(&a), addr, "too_many_sessions", Some(&user.id), now).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// The refusal of a login for a person stint has disabled (or whose account has ended).
fn disabled_in_stint() -> Error {
    Error::forbidden("user_disabled", "this user is disabled in stint; ask an administrator")
}

/// The answer to a redemption that lost its race yet passed a second look (it cannot: the
/// attempt that moved on is final).
fn already_used() -> Error {
    Error::invalid("invalid_grant", "this sign-in was already used; start again with `stint login`")
}

/// `application/x-www-form-urlencoded` for a query string.
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_else(|_| unreachable!("pairs of strings are a form"))
}

/// A signed-in person's groups as the provider's claim says (`None`: as set in stint), with the
/// change that records it. A disabled person's groups are left alone.
fn with_claimed_groups(p: &SsoProvider, user: User, groups: Option<Vec<GroupName>>, mut change: Change, now: Timestamp) -> (User, Change) {
    let Some(groups) = groups else { return (user, change) };
    if user.groups != groups && !user.disabled {
        let list: Vec<&str> = groups.iter().map(GroupName::as_str).collect();
        let d = Draft::new(now, Event::UserGroupsChanged, Outcome::Success).actor(format!("sso:{}", p.name)).subject(&user.id).detail("groups", list.join(","));
        change = change.with(Mutation::SetUserGroups { user: user.id.clone(), groups: groups.clone() }).record(d);
    }
    (User { groups, ..user }, change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_only() {
        for ok in ["http://127.0.0.1:5000/callback", "http://[::1]:5000/", "http://localhost:49152/cb", "http://127.0.0.1:8080"] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example/cb",
            "http://127.0.0.1.evil.example:80/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://127.0.0.1:80@evil.example/",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:5000/cb?x=1",
            "http://127.0.0.1:5000/cb#frag",
            "http://127.0.0.1:5000/c b",
            "http://127.0.0.1:123456/",
        ] {
            assert_eq!(check_loopback(bad).unwrap_err().code(), "invalid_redirect_uri", "{bad}");
        }
    }

    #[test]
    fn user_codes_are_uniform_over_the_alphabet_and_normalize() {
        let mut rng = rand_core::OsRng;
        let code = new_user_code(&mut rng);
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        let shown = display_user_code(&code);
        assert_eq!(normalize_user_code(&shown.to_lowercase()), Some(code.clone()));
        assert_eq!(normalize_user_code(&format!(" {shown} ")), Some(code));
        for bad in ["", "BCDF-GHJ", "BCDF-GHJA", "BCDFGHJKL", &"B".repeat(40)] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn first_login_names_fit_usernames() {
        assert_eq!(base_username("corp", Some("Alice.Smith@example.com"), "x"), "alice.smith");
        assert_eq!(base_username("corp", Some("o'brien+ops@example.com"), "x"), "o-brien-ops");
        assert_eq!(base_username("corp", None, "1234567890"), "corp-1234567890", "no verified email: a neutral name");
        assert_eq!(base_username("corp", Some("@example.com"), "__"), "corp-__");
        assert_eq!(base_username("corp", None, &"a".repeat(300)).len(), 48);
        assert!(Username::parse(&base_username("corp", Some("Ωmega@example.com"), "s")).is_ok());
    }

    fn provider(assume: bool) -> SsoProvider {
        SsoProvider {
            name: "corp".into(),
            issuer: "https://idp.example".into(),
            client_id: "stint".into(),
            email_claim: "email".into(),
            groups_claim: "groups".into(),
            allowed_domains: vec![],
            insecure_assume_email_verified: assume,
            mfa_amr: vec![],
            mfa_acr: vec![],
            step_up_totp: false,
            groups: BTreeMap::new(),
            session_ttl: Ttl::from_secs(3600).unwrap(),
            provider_session: None,
            skew_secs: 60,
        }
    }

    #[test]
    fn only_true_verifies_an_email() {
        let token = |v: Option<Value>| {
            let mut claims = BTreeMap::new();
            if let Some(v) = v {
                claims.insert("email_verified".into(), v);
            }
            IdToken { issuer: "https://idp.example".into(), subject: "s".into(), claims, expires_at: Timestamp(0) }
        };
        for yes in [Value::Bool(true), Value::String("true".into())] {
            assert!(email_verified(&token(Some(yes.clone())), &provider(false)), "{yes}");
        }
        for no in [Value::Bool(false), Value::String("false".into()), Value::String("TRUE".into()), Value::Null, Value::from(1), serde_json::json!([true])] {
            assert!(!email_verified(&token(Some(no.clone())), &provider(true)), "{no}");
        }
        assert!(!email_verified(&token(None), &provider(false)), "a missing claim does not verify by default");
        assert!(email_verified(&token(None), &provider(true)), "unless the provider is configured to assume it");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(form_urlencoded(&[("error", "mfa_required"), ("error_description", "a b&c=d")]), "error=mfa_required&error_description=a+b%26c%3Dd");
        assert_eq!(form_urlencoded(&[("q", "1+1=2 ü?#/%")]), "q=1%2B1%3D2+%C3%BC%3F%23%2F%25");
    }
}
