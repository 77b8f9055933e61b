//! Counters for `/metrics`, rendered in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use stint_core::broker::Observer;

/// Upper bounds of the issuance latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Default)]
pub struct Metrics {
    issued: Mutex<BTreeMap<String, u64>>,
    auth_failures: Mutex<BTreeMap<String, u64>>,
    audit_appends: AtomicU64,
    issue_buckets: [AtomicU64; BUCKETS.len()],
    issue_count: AtomicU64,
    issue_sum_micros: AtomicU64,
    pub(crate) audit_notify: tokio::sync::Notify,
    /// Alerts delivered and dropped (queue full, or every retry failed).
    pub alerts: std::sync::Arc<crate::webhooks::AlertCounts>,
    break_glass: AtomicU64,
    /// Requests refused by the rate limit (429), never audited.
    rate_limited: AtomicU64,
}

fn bump(m: &Mutex<BTreeMap<String, u64>>, key: &str) {
    if let Ok(mut m) = m.lock() {
        *m.entry(key.to_owned()).or_default() += 1;
    }
}

impl Observer for Metrics {
    fn auth_failed(&self, reason: &str) {
        bump(&self.auth_failures, reason);
    }
    fn issued(&self, role: &str) {
        bump(&self.issued, role);
    }
    fn break_glass(&self) {
        self.break_glass.fetch_add(1, Ordering::Relaxed);
    }
    fn audit_appended(&self, n: usize) {
        self.audit_appends.fetch_add(n as u64, Ordering::Relaxed);
        self.audit_notify.notify_waiters();
    }
}

impl Metrics {
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_issue_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.issue_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.issue_count.fetch_add(1, Ordering::Relaxed);
        self.issue_sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, active_sessions: u64) -> String {
        let mut out = String::new();
        let labelled = |out: &mut String, name: &str, help: &str, label: &str, m: &Mutex<BTreeMap<String, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = m.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", k.replace('\\', "\\\\").replace('"', "\\\""));
                }
            }
        };
        labelled(&mut out, "stint_credentials_issued_total", "Credentials issued, by role.", "role", &self.issued);
        labelled(&mut out, "stint_auth_failures_total", "Failed authentications, by reason.", "reason", &self.auth_failures);
        let _ = writeln!(out, "# HELP stint_audit_appends_total Audit records appended by this replica.\n# TYPE stint_audit_appends_total counter");
        let _ = writeln!(out, "stint_audit_appends_total {}", self.audit_appends.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP stint_break_glass_total Break-glass grants taken.\n# TYPE stint_break_glass_total counter");
        let _ = writeln!(out, "stint_break_glass_total {}", self.break_glass.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP stint_rate_limited_total Requests refused by the rate limit.\n# TYPE stint_rate_limited_total counter");
        let _ = writeln!(out, "stint_rate_limited_total {}", self.rate_limited.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP stint_alerts_sent_total Alerts delivered to a webhook.\n# TYPE stint_alerts_sent_total counter");
        let _ = writeln!(out, "stint_alerts_sent_total {}", self.alerts.sent.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP stint_alerts_dropped_total Alerts dropped: the queue was full or every retry failed.\n# TYPE stint_alerts_dropped_total counter"
        );
        let _ = writeln!(out, "stint_alerts_dropped_total {}", self.alerts.dropped.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP stint_active_sessions Sessions neither expired nor revoked.\n# TYPE stint_active_sessions gauge");
        let _ = writeln!(out, "stint_active_sessions {active_sessions}");
        let name = "stint_issuance_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to decide, record and sign a credential.\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.issue_buckets[i].load(Ordering::Relaxed));
        }
        let count = self.issue_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.issue_sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.issued("readonly");
        m.auth_failed("bad_totp");
        m.auth_failed("bad_totp");
        m.audit_appended(3);
        m.observe_issue_latency(Duration::from_micros(800));
        let t = m.render(7);
        assert!(t.contains("stint_credentials_issued_total{role=\"readonly\"} 1"), "{t}");
        assert!(t.contains("stint_auth_failures_total{reason=\"bad_totp\"} 2"));
        assert!(t.contains("stint_audit_appends_total 3"));
        assert!(t.contains("stint_active_sessions 7"));
        assert!(t.contains("stint_issuance_duration_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(t.contains("stint_issuance_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(t.contains("stint_issuance_duration_seconds_count 1"));
    }
}
