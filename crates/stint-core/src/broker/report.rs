//! Reads what the before-and-after report needs ([`crate::report`]) from the store and the
//! configuration.

use std::collections::BTreeMap;

use crate::authz::AuthzContext;
use crate::error::Result;
use crate::ids::RoleName;
use crate::model::User;
use crate::report::{Eligible, Facts, Period, PersonFacts, PipelineFacts, Report, WorkloadFacts, MAX_ROWS};
use crate::time::Timestamp;

use super::admin::Admin;
use super::Broker;

/// Audit records read per store call.
const PAGE: u32 = 10_000;

/// The MFA a password login shows: the review asks what a person could assume signed in with it.
const REVIEW_MFA: &str = "password+totp";

impl Broker {
    /// The report of `period` (see [`crate::report`]).
    pub async fn report(&self, _admin: &Admin<'_>, period: Period) -> Result<Report> {
        let store = &self.store;
        let snapshots = store.inventory_snapshots(Timestamp(i64::MIN)).await?;
        let limit = MAX_ROWS as u32 + 1;
        let mut leases = store.leases_during(period.since, period.as_of, limit).await?;
        let mut partial = leases.len() > MAX_ROWS;
        leases.truncate(MAX_ROWS);
        let mut records = Vec::new();
        loop {
            let after = records.last().map_or(0, |r: &crate::audit::Record| r.seq);
            let page = store.audit_during(period.since, period.as_of, after, PAGE).await?;
            let done = page.len() < PAGE as usize;
            records.extend(page);
            if records.len() > MAX_ROWS {
                records.truncate(MAX_ROWS);
                partial = true;
                break;
            }
            if done {
                break;
            }
        }
        // A request granted in the period was made at most its pending time before it.
        let pending = self.cfg.approvals.as_ref().map_or(0, |a| a.pending_ttl.as_secs() as i64);
        let requests = store.requests(Timestamp(period.since.0.saturating_sub(pending)), MAX_ROWS as u32).await?;
        let users = store.users().await?;
        let names: BTreeMap<&str, &str> = users.iter().map(|u| (u.id.as_str(), u.name.as_str())).collect();
        let people = users
            .iter()
            .map(|u| PersonFacts {
                user: u,
                eligible: if u.disabled { Eligible::default() } else { self.eligible(u, period.as_of) },
                sponsor: u.sponsor.as_ref().map(|s| names.get(s.as_str()).map_or_else(|| s.to_string(), |n| (*n).to_owned())),
            })
            .collect();
        let workloads =
            store.workloads().await?.into_iter().map(|w| WorkloadFacts { name: w.name.to_string(), disabled: w.disabled, roles: w.roles }).collect();
        let pipelines = self
            .cfg
            .ci
            .trust
            .iter()
            .map(|(role, t)| PipelineFacts { role: role.clone(), trust: t.policy.statements.iter().map(|s| s.describe()).collect() })
            .collect();
        let facts = Facts {
            period,
            generated_at: self.now(),
            snapshots: &snapshots,
            leases: &leases,
            records: &records,
            requests: &requests,
            people,
            workloads,
            pipelines,
            partial,
        };
        Ok(Report::build(&facts))
    }

    /// The roles `user` could assume at `at`: whenever they ask, when on call on a schedule
    /// that lists them, with an approved request, and through break-glass.
    fn eligible(&self, user: &User, at: Timestamp) -> Eligible {
        let roles = &self.cfg.roles;
        let base = AuthzContext::human(REVIEW_MFA, at);
        let allows = |ctx: &AuthzContext| -> Vec<RoleName> { roles.eligible(user, ctx).into_iter().map(|(d, _)| d.name.clone()).collect() };
        let standing = allows(&base);
        let beyond = |ctx: AuthzContext, only: &dyn Fn(&RoleName) -> bool| -> Vec<RoleName> {
            allows(&ctx).into_iter().filter(|r| !standing.contains(r) && only(r)).collect()
        };
        let schedules: Vec<String> =
            self.oncall.read().map(|all| all.iter().filter(|s| s.lists(&user.name)).map(|s| s.name.clone()).collect()).unwrap_or_default();
        let on_call =
            if schedules.is_empty() { vec![] } else { beyond(AuthzContext { on_call: true, on_call_schedules: schedules, ..base.clone() }, &|_| true) };
        let on_request = match &self.cfg.approvals {
            Some(a) => beyond(AuthzContext { approved_request: true, ..base.clone() }, &|r| a.roles.contains(r)),
            None => vec![],
        };
        let break_glass = match &self.cfg.break_glass {
            Some(b) if user.in_group(&b.group) => beyond(AuthzContext { break_glass: true, ..base.clone() }, &|r| *r == b.role),
            _ => vec![],
        };
        Eligible { standing, on_call, on_request, break_glass }
    }
}
