//! Roles through approval: a person requests a role (admin, say) with a reason; approvers (a
//! configured group, never the requester; N of them) approve or deny; an approved request is
//! a time-boxed grant that policies see as `context.approved_request`, and revoking it refuses
//! every token issued under it from then on. Each step is audited and alerted.

use crate::alerts::{Alert, AlertKind};
use crate::audit::{Draft, Event, Outcome};
use crate::error::{Error, Result};
use crate::ids::{truncate, GroupName, RoleName, UserId};
use crate::model::{RequestStatus, RoleRequest};
use crate::reason::Reason;
use crate::store::{Change, Mutation};
use crate::time::{Timestamp, Ttl};

use super::{Broker, Caller};

/// Requests one person may have waiting at once.
const MAX_PENDING_PER_PERSON: usize = 3;

/// How requests for roles are decided.
#[derive(Clone, Debug)]
pub struct ApprovalConfig {
    /// Roles that can be requested.
    pub roles: Vec<RoleName>,
    /// Members may approve or deny (never their own request).
    pub approvers: GroupName,
    /// Distinct approvals a request needs.
    pub required: usize,
    /// The longest grant.
    pub max_duration: Ttl,
    /// A request not decided within this expires.
    pub pending_ttl: Ttl,
}

/// A request as shown to people.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RequestView {
    pub id: String,
    pub requester: String,
    pub role: String,
    pub reason: String,
    pub duration_secs: i64,
    /// `pending`, `approved`, `denied`, `revoked`, or `expired`/`ended` once past their time.
    pub status: &'static str,
    pub approvals: Vec<String>,
    pub approvals_required: usize,
    pub created_at: Timestamp,
    pub pending_until: Timestamp,
    pub granted_from: Option<Timestamp>,
    pub granted_until: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub break_glass: bool,
}

fn unknown_request(id: &str) -> Error {
    Error::not_found("unknown_request", format!("no request {:?}", truncate(id)))
}

impl Broker {
    fn approvals(&self) -> Result<&ApprovalConfig> {
        self.cfg
            .approvals
            .as_ref()
            .ok_or_else(|| Error::not_found("approvals_not_configured", "this server takes no requests for roles; see [approvals] in the configuration"))
    }

    fn view(&self, q: &RoleRequest, now: Timestamp) -> RequestView {
        RequestView {
            id: q.id.clone(),
            requester: q.requester_name.to_string(),
            role: q.role.to_string(),
            reason: q.reason.clone(),
            duration_secs: q.duration_secs,
            status: q.shown_status(now),
            approvals: q.approvals.iter().map(ToString::to_string).collect(),
            approvals_required: self.cfg.approvals.as_ref().map_or(1, |a| a.required),
            created_at: q.created_at,
            pending_until: q.pending_until,
            granted_from: q.granted_from,
            granted_until: q.granted_until,
            decided_by: q.decided_by.as_ref().map(ToString::to_string),
            decision_reason: q.decision_reason.clone(),
            break_glass: q.break_glass,
        }
    }

    /// A new request id: `req_…` for requests, `bg_…` for break-glass grants.
    fn request_id(&self, prefix: &str) -> String {
        let mut b = [0u8; 10];
        self.rng().fill_bytes(&mut b);
        format!("{prefix}_{}", data_encoding::BASE32_NOPAD.encode(&b).to_lowercase())
    }

    async fn find_request(&self, id: &str) -> Result<RoleRequest> {
        self.store.request(id).await?.ok_or_else(|| unknown_request(id))
    }

    /// The approved (or break-glass) grant of `user` for `role` covering `now`, if any.
    pub(super) async fn current_grant(&self, user: &UserId, role: &RoleName, now: Timestamp) -> Result<Option<RoleRequest>> {
        let requestable = self.cfg.approvals.as_ref().is_some_and(|a| a.roles.contains(role));
        let glass = self.cfg.break_glass.as_ref().is_some_and(|b| &b.role == role);
        if !requestable && !glass {
            return Ok(None);
        }
        Ok(self.store.grants(user, role).await?.into_iter().find(|g| g.grants_at(now)))
    }

    /// `stint break-glass --reason …`: members of the break-glass group grant themselves its
    /// role at once, for at most its duration, after a fresh login; every channel is alerted
    /// and the records are flagged.
    pub async fn break_glass(&self, caller: &Caller, reason: &str, duration: Option<Ttl>) -> Result<RequestView> {
        let cfg = self
            .cfg
            .break_glass
            .as_ref()
            .ok_or_else(|| Error::not_found("break_glass_not_configured", "this server has no break-glass; see [break_glass] in the configuration"))?;
        let now = self.now();
        let refuse = |code: &'static str, e: Error| async move {
            let d = Draft::new(now, Event::BreakGlass, Outcome::Failure).actor(&caller.user.id).reason(code).detail("break_glass", "true");
            self.commit(Change::audit_only(d)).await?;
            Err::<RequestView, Error>(e)
        };
        if !caller.user.in_group(&cfg.group) {
            return refuse(
                "not_break_glass_member",
                Error::forbidden("not_break_glass_member", format!("break-glass is for members of the {} group", cfg.group)),
            )
            .await;
        }
        // Times are whole seconds: a session that looks N seconds old may be nearly N + 1, so
        // it is fresh only while even that is within the limit (fail closed at the boundary).
        if now.0 - caller.session.created_at.0 >= cfg.fresh_login.as_secs() as i64 {
            return refuse(
                "fresh_login_required",
                Error::forbidden(
                    "fresh_login_required",
                    format!("break-glass needs a login with MFA in the last {}: run `stint login`, then break-glass", cfg.fresh_login),
                ),
            )
            .await;
        }
        let reason = match Reason::parse(reason, self.cfg.reason_min_chars) {
            Ok(r) => r,
            Err(e) => return refuse("reason_required", e).await,
        };
        let duration = duration.unwrap_or(cfg.max_duration);
        if duration > cfg.max_duration {
            return Err(Error::invalid("duration_too_long", format!("break-glass lasts at most {}; asked for {duration}", cfg.max_duration)));
        }
        let q = RoleRequest {
            id: self.request_id("bg"),
            requester: caller.user.id.clone(),
            requester_name: caller.user.name.clone(),
            role: cfg.role.clone(),
            reason: reason.into_string(),
            duration_secs: duration.as_secs() as i64,
            status: RequestStatus::Approved,
            created_at: now,
            pending_until: now,
            approvals: vec![],
            granted_from: Some(now),
            granted_until: Some(now.plus(duration)),
            decided_by: None,
            decision_reason: None,
            break_glass: true,
        };
        let d = Draft::new(now, Event::BreakGlass, Outcome::Success)
            .actor(&caller.user.id)
            .subject(&q.id)
            .detail("break_glass", "true")
            .detail("role", &cfg.role)
            .detail("duration", duration)
            .detail("reason", &q.reason);
        self.commit(Self::still_live(&caller.user.id, &caller.session.id, now).with(Mutation::InsertRequest(q.clone())).record(d)).await?;
        self.observer.break_glass();
        let alert = Alert::new(AlertKind::BreakGlass, now, format!("BREAK-GLASS: {} took {} for {duration}: {}", caller.user.name, cfg.role, q.reason))
            .detail("user", &caller.user.name)
            .detail("role", &cfg.role)
            .detail("grant", &q.id)
            .detail("until", now.plus(duration));
        self.alerter.send(alert);
        Ok(self.view(&q, now))
    }

    /// `stint request ROLE --reason … [--for 1h]`.
    pub async fn request_role(&self, caller: &Caller, role: &str, reason: &str, duration: Option<Ttl>) -> Result<RequestView> {
        let cfg = self.approvals()?;
        let now = self.now();
        let role = RoleName::parse(role)?;
        if !cfg.roles.contains(&role) {
            return Err(Error::invalid(
                "not_requestable",
                format!("role {role} cannot be requested; requestable: {}", cfg.roles.iter().map(RoleName::as_str).collect::<Vec<_>>().join(", ")),
            ));
        }
        let duration = duration.unwrap_or(cfg.max_duration);
        if duration > cfg.max_duration {
            return Err(Error::invalid("duration_too_long", format!("grants of {role} last at most {}; asked for {duration}", cfg.max_duration)));
        }
        let reason = Reason::parse(reason, self.cfg.reason_min_chars)?;
        // Each request alerts the approvers: a person may have only a few waiting.
        let waiting = self.store.requests(Timestamp(now.0 - cfg.pending_ttl.as_secs() as i64), 500).await?;
        let mine = waiting.iter().filter(|q| q.requester == caller.user.id && q.status == RequestStatus::Pending && now < q.pending_until).count();
        if mine >= MAX_PENDING_PER_PERSON {
            return Err(Error::Throttled { retry_after_secs: 60 });
        }
        let q = RoleRequest {
            id: self.request_id("req"),
            requester: caller.user.id.clone(),
            requester_name: caller.user.name.clone(),
            role: role.clone(),
            reason: reason.into_string(),
            duration_secs: duration.as_secs() as i64,
            status: RequestStatus::Pending,
            created_at: now,
            pending_until: now.plus(cfg.pending_ttl),
            approvals: vec![],
            granted_from: None,
            granted_until: None,
            decided_by: None,
            decision_reason: None,
            break_glass: false,
        };
        let d = Draft::new(now, Event::RequestCreated, Outcome::Success)
            .actor(&caller.user.id)
            .subject(&q.id)
            .detail("role", &role)
            .detail("duration", duration)
            .detail("reason", &q.reason);
        self.commit(Self::still_live(&caller.user.id, &caller.session.id, now).with(Mutation::InsertRequest(q.clone())).record(d)).await?;
        let alert = Alert::new(AlertKind::RequestCreated, now, format!("{} requests {role} for {duration}: {}", caller.user.name, q.reason))
            .detail("request", &q.id)
            .detail("user", &caller.user.name)
            .detail("role", &role);
        self.alerter.send(alert);
        Ok(self.view(&q, now))
    }

    /// Approvers and administrators see every request of the last week; others their own.
    pub async fn list_requests(&self, caller: &Caller) -> Result<Vec<RequestView>> {
        let cfg = self.approvals()?;
        let now = self.now();
        let all = caller.user.in_group(&cfg.approvers) || caller.user.in_group(&self.cfg.admin_group);
        let qs = self.store.requests(Timestamp(now.0 - 7 * 86_400), 500).await?;
        Ok(qs.iter().filter(|q| all || q.requester == caller.user.id).map(|q| self.view(q, now)).collect())
    }

    async fn request_for_decision(&self, caller: &Caller, id: &str, action: &str) -> Result<(RoleRequest, &ApprovalConfig)> {
        let cfg = self.approvals()?;
        let now = self.now();
        if !caller.user.in_group(&cfg.approvers) {
            let d = Draft::new(now, Event::RequestRefused, Outcome::Failure).actor(&caller.user.id).reason("approver_required").detail("action", action);
            self.commit(Change::audit_only(d)).await?;
            return Err(Error::forbidden("approver_required", format!("this needs a member of the {} group", cfg.approvers)));
        }
        let q = self.find_request(id).await?;
        Ok((q, cfg))
    }

    /// One approval; with enough of them the request becomes a grant from now on.
    pub async fn approve(&self, caller: &Caller, id: &str) -> Result<RequestView> {
        let now = self.now();
        let (q, cfg) = self.request_for_decision(caller, id, "request.approve").await?;
        if q.requester == caller.user.id {
            let d = Draft::new(now, Event::RequestApproved, Outcome::Failure).actor(&caller.user.id).subject(&q.id).reason("self_approval");
            self.commit(Change::audit_only(d)).await?;
            return Err(Error::forbidden("self_approval", "you cannot approve your own request; ask another approver"));
        }
        if q.status != RequestStatus::Pending {
            return Err(Error::conflict("request_not_pending", format!("request {} is {}", q.id, q.shown_status(now))));
        }
        if now >= q.pending_until {
            return Err(Error::conflict("request_expired", format!("request {} expired at {}; ask for a new one", q.id, q.pending_until)));
        }
        if q.approvals.contains(&caller.user.name) {
            return Err(Error::conflict("already_approved", "you already approved this request; it needs another approver"));
        }
        // A disabled person's request is void (disabling denied it); this refuses the rest.
        if self.store.user_by_id(&q.requester).await?.is_none_or(|u| u.disabled || u.expired_at(now)) {
            return Err(requester_disabled(&q));
        }
        let before = q.approvals.len();
        let mut next = q.clone();
        next.approvals.push(caller.user.name.clone());
        let granted = next.approvals.len() >= cfg.required;
        if granted {
            next.status = RequestStatus::Approved;
            next.granted_from = Some(now);
            next.granted_until = Some(Timestamp(now.0 + q.duration_secs));
        }
        let mut d = Draft::new(now, Event::RequestApproved, Outcome::Success)
            .actor(&caller.user.id)
            .subject(&q.id)
            .detail("role", &q.role)
            .detail("approvals", format!("{}/{}", next.approvals.len(), cfg.required));
        if let Some(until) = next.granted_until.filter(|_| granted) {
            d = d.detail("granted_until", until);
        }
        // The requester is re-checked in the same transaction: a disable committing first wins.
        let change = Change::default()
            .with(Mutation::RequireEnabledUser { user: q.requester.clone() })
            .with(Mutation::UpdateRequest { request: next.clone(), expect: RequestStatus::Pending, approvals: before })
            .record(d);
        self.commit(change).await.map_err(|e| if e.code() == "user_disabled" { requester_disabled(&q) } else { e })?;
        let summary = if granted {
            format!("{} approved {}'s request for {} (until {})", caller.user.name, q.requester_name, q.role, next.granted_until.unwrap_or(now))
        } else {
            format!("{} approved {}'s request for {} ({}/{} approvals)", caller.user.name, q.requester_name, q.role, next.approvals.len(), cfg.required)
        };
        self.alerter.send(Alert::new(AlertKind::RequestApproved, now, summary).detail("request", &q.id).detail("approver", &caller.user.name));
        Ok(self.view(&next, now))
    }

    /// Denies a pending request, with a reason.
    pub async fn deny(&self, caller: &Caller, id: &str, reason: &str) -> Result<RequestView> {
        let now = self.now();
        let (q, _) = self.request_for_decision(caller, id, "request.deny").await?;
        if q.status != RequestStatus::Pending {
            return Err(Error::conflict("request_not_pending", format!("request {} is {}", q.id, q.shown_status(now))));
        }
        let reason = Reason::parse(reason, self.cfg.reason_min_chars)?;
        let next = RoleRequest {
            status: RequestStatus::Denied,
            decided_by: Some(caller.user.name.to_string()),
            decision_reason: Some(reason.to_string()),
            ..q.clone()
        };
        let d = Draft::new(now, Event::RequestDenied, Outcome::Success).actor(&caller.user.id).subject(&q.id).detail("reason", &reason);
        self.commit(
            Change::default().with(Mutation::UpdateRequest { request: next.clone(), expect: RequestStatus::Pending, approvals: q.approvals.len() }).record(d),
        )
        .await?;
        self.alerter.send(
            Alert::new(AlertKind::RequestDenied, now, format!("{} denied {}'s request for {}: {reason}", caller.user.name, q.requester_name, q.role))
                .detail("request", &q.id),
        );
        Ok(self.view(&next, now))
    }

    /// Revokes an approved grant: tokens issued under it are refused from now on. Approvers,
    /// administrators and the requester may revoke.
    pub async fn revoke_grant(&self, caller: &Caller, id: &str, reason: &str) -> Result<RequestView> {
        let now = self.now();
        // Break-glass grants exist without [approvals]: administrators revoke them then.
        let approvers = self.cfg.approvals.as_ref().map_or(&self.cfg.admin_group, |a| &a.approvers);
        let decider = caller.user.in_group(approvers) || caller.user.in_group(&self.cfg.admin_group);
        let found = self.store.request(id).await?;
        // Someone else's grant and an unknown id get the same refusal, so a caller who may not
        // revoke learns nothing of which ids exist; the refusal is recorded like every other.
        let own = found.as_ref().is_some_and(|q| q.requester == caller.user.id);
        if !decider && !own {
            let d = Draft::new(now, Event::RequestRefused, Outcome::Failure)
                .actor(&caller.user.id)
                .reason("approver_required")
                .detail("action", "grant.revoke")
                .detail("request", truncate(id));
            self.commit(Change::audit_only(d)).await?;
            return Err(Error::forbidden("approver_required", format!("this needs a member of the {approvers} group, or the requester")));
        }
        let q = found.ok_or_else(|| unknown_request(id))?;
        let reason = Reason::parse_optional(reason, self.cfg.reason_min_chars)?;
        if q.status != RequestStatus::Approved {
            return Err(Error::conflict("not_granted", format!("request {} is {}, not an approved grant", q.id, q.shown_status(now))));
        }
        let next = RoleRequest {
            status: RequestStatus::Revoked,
            decided_by: Some(caller.user.name.to_string()),
            decision_reason: reason.as_ref().map(ToString::to_string),
            ..q.clone()
        };
        let d = Draft::new(now, Event::GrantRevoked, Outcome::Success)
            .actor(&caller.user.id)
            .subject(&q.id)
            .detail("role", &q.role)
            .detail("reason", reason.as_ref().map_or("", Reason::as_str));
        let change =
            Change::default().with(Mutation::UpdateRequest { request: next.clone(), expect: RequestStatus::Approved, approvals: q.approvals.len() }).record(d);
        let scope = crate::model::LeaseScope::Grant(q.id.clone());
        self.commit(self.revocation(change, &caller.user.id, scope, "grant revoked")).await?;
        self.reap_now().await;
        // Whoever heard of the grant hears of its end: break-glass channels for break-glass.
        let kind = if q.break_glass { AlertKind::BreakGlass } else { AlertKind::RequestApproved };
        let summary = format!("{} revoked {}'s grant of {} ({})", caller.user.name, q.requester_name, q.role, q.id);
        self.alerter.send(Alert::new(kind, now, summary).detail("request", &q.id).detail("revoked_by", &caller.user.name));
        Ok(self.view(&next, now))
    }
}

fn requester_disabled(q: &RoleRequest) -> Error {
    Error::forbidden("requester_disabled", format!("{} is disabled; their requests and grants ended with it", q.requester_name))
}
