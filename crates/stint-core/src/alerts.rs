//! Alerts: what people must hear about at once (break-glass, requests for admin, repeated
//! login failures, a disabled user trying to log in, an on-call calendar that cannot be
//! read). The broker hands each alert to an [`Alerter`] without waiting; delivery
//! (webhooks, retries, a bounded queue) is the host's.

use std::collections::BTreeMap;

use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    BreakGlass,
    RequestCreated,
    RequestApproved,
    RequestDenied,
    /// A user's logins failed `login.free_failures` times in a window.
    RepeatedLoginFailures,
    /// Someone logged in (or tried) as a disabled user.
    DisabledUserLogin,
    /// An on-call calendar feed could not be read; its last shifts stay in force.
    OnCallFeedFailed,
    /// An account that expires (a contractor's) ends within `[users] expiry_alert`: its
    /// sponsor extends it (`stint user expiry`) or lets it end.
    AccountExpiring,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BreakGlass => "break_glass",
            AlertKind::RequestCreated => "request_created",
            AlertKind::RequestApproved => "request_approved",
            AlertKind::RequestDenied => "request_denied",
            AlertKind::RepeatedLoginFailures => "repeated_login_failures",
            AlertKind::DisabledUserLogin => "disabled_user_login",
            AlertKind::OnCallFeedFailed => "oncall_feed_failed",
            AlertKind::AccountExpiring => "account_expiring",
        }
    }
    pub const ALL: [AlertKind; 8] = [
        AlertKind::BreakGlass,
        AlertKind::RequestCreated,
        AlertKind::RequestApproved,
        AlertKind::RequestDenied,
        AlertKind::RepeatedLoginFailures,
        AlertKind::DisabledUserLogin,
        AlertKind::OnCallFeedFailed,
        AlertKind::AccountExpiring,
    ];
    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One alert. Never carries a secret: names, addresses, reasons.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub at: Timestamp,
    /// One line for people (Slack's `text`).
    pub summary: String,
    pub details: BTreeMap<String, String>,
}

impl Alert {
    pub fn new(kind: AlertKind, at: Timestamp, summary: impl Into<String>) -> Alert {
        Alert { kind, at, summary: summary.into(), details: BTreeMap::new() }
    }
    pub fn detail(mut self, k: &str, v: impl std::fmt::Display) -> Alert {
        self.details.insert(k.to_owned(), crate::ids::truncate(&v.to_string()));
        self
    }
}

/// Where alerts go. `send` must not block: a slow or dead receiver never delays issuance.
pub trait Alerter: Send + Sync {
    fn send(&self, alert: Alert);
}

/// Alerts go nowhere (no channel configured).
pub struct NoAlerts;

impl Alerter for NoAlerts {
    fn send(&self, _: Alert) {}
}
