//! Counters for `/metrics`, rendered in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use stint_core::broker::Observer;
use stint_core::inventory::{Inventory, Totals};
use stint_core::report::Active;
use stint_core::store::Store;
use stint_core::Timestamp;

/// How long the gauges read from the store (the inventory, the live credentials) are served
/// before the store is read again: `/metrics` takes no credential, so what a scrape makes
/// stint read stays bounded.
const GAUGES_REFRESH: Duration = Duration::from_secs(60);

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
    /// The gauges read from the store, and when they were read.
    gauges: tokio::sync::Mutex<Option<(std::time::Instant, Gauges)>>,
}

/// What the migration's dashboard shows: the long-lived keys left (the inventory) and the
/// short-lived credentials live now.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub inventory: Totals,
    pub live: Active,
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

    /// The gauges read from the store: at most once a minute, or at the next scrape after this
    /// replica kept a snapshot.
    pub async fn gauges(&self, store: &dyn Store, now: Timestamp) -> stint_core::error::Result<Gauges> {
        let mut cached = self.gauges.lock().await;
        if let Some((at, g)) = &*cached {
            if at.elapsed() < GAUGES_REFRESH {
                return Ok(g.clone());
            }
        }
        let inventory = Inventory::of(&store.inventory_snapshots(Timestamp(i64::MIN)).await?).totals;
        let leases = store.leases_during(now, now, stint_core::report::MAX_ROWS as u32).await?;
        let g = Gauges { inventory, live: Active::at(&leases, now) };
        *cached = Some((std::time::Instant::now(), g.clone()));
        Ok(g)
    }

    /// A snapshot was kept: the next scrape reads the store again.
    pub async fn inventory_changed(&self) {
        *self.gauges.lock().await = None;
    }

    pub fn render(&self, active_sessions: u64, gauges: &Gauges) -> String {
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
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let t = &gauges.inventory;
        gauge(&mut out, "stint_inventory_accounts", "AWS accounts with an inventory snapshot.", t.accounts.to_string());
        gauge(&mut out, "stint_inventory_active_keys", "Active long-lived access keys, in each account's newest snapshot.", t.figures.active_keys.to_string());
        gauge(&mut out, "stint_inventory_oldest_key_age_days", "Age of the oldest active access key, in days.", t.figures.oldest_key_age_days.to_string());
        gauge(&mut out, "stint_inventory_keys_older_than_90_days", "Active access keys older than 90 days.", t.figures.keys_older_than_90_days.to_string());
        gauge(&mut out, "stint_inventory_keys_unused_90_days", "Active access keys not used for 90 days.", t.figures.keys_unused_90_days.to_string());
        gauge(&mut out, "stint_inventory_root_keys_active", "Active access keys of root users.", t.figures.root_keys_active.to_string());
        gauge(&mut out, "stint_inventory_users_without_mfa", "Console users and root users without MFA.", t.figures.users_without_mfa.to_string());
        gauge(
            &mut out,
            "stint_inventory_snapshot_timestamp_seconds",
            "Generation time of the oldest of the newest snapshots (0: none).",
            t.as_of.map_or(0, |a| a.0).to_string(),
        );
        let live = |out: &mut String, name: &str, help: &str, label: &str, values: Vec<(&str, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (k, v) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {v}", k.replace('\\', "\\\\").replace('"', "\\\""));
            }
        };
        let l = &gauges.live;
        live(
            &mut out,
            "stint_credentials_live",
            "Backend credentials (AWS, PostgreSQL, SSH) live now: issued, neither expired, revoked nor ended; by holder: person, ci or workload.",
            "source",
            l.by_source.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
        );
        live(
            &mut out,
            "stint_credentials_live_by_backend",
            "Backend credentials live now, by backend.",
            "backend",
            l.by_backend.iter().map(|(b, n)| (b.as_str(), *n)).collect(),
        );
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
        let figures = stint_core::inventory::Figures { active_keys: 23, oldest_key_age_days: 400, ..Default::default() };
        let inventory = Totals { accounts: 1, as_of: Some(Timestamp(1_800_000_000)), figures };
        let live = Active {
            total: 3,
            by_source: [(stint_core::report::Source::Person, 2), (stint_core::report::Source::Ci, 1), (stint_core::report::Source::Workload, 0)].into(),
            by_backend: [("aws-\"prod\"".to_owned(), 3)].into(),
        };
        let t = m.render(7, &Gauges { inventory, live });
        assert!(t.contains("stint_credentials_issued_total{role=\"readonly\"} 1"), "{t}");
        assert!(t.contains("stint_auth_failures_total{reason=\"bad_totp\"} 2"));
        assert!(t.contains("stint_audit_appends_total 3"));
        assert!(t.contains("stint_active_sessions 7"));
        assert!(t.contains("stint_issuance_duration_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(t.contains("stint_issuance_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(t.contains("stint_issuance_duration_seconds_count 1"));
        assert!(t.contains("# TYPE stint_inventory_active_keys gauge\nstint_inventory_active_keys 23\n"), "{t}");
        assert!(t.contains("stint_inventory_oldest_key_age_days 400") && t.contains("stint_inventory_snapshot_timestamp_seconds 1800000000"));
        assert!(t.contains("stint_inventory_root_keys_active 0"));
        assert!(
            t.contains("# TYPE stint_credentials_live gauge\nstint_credentials_live{source=\"person\"} 2\nstint_credentials_live{source=\"ci\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("stint_credentials_live{source=\"workload\"} 0"), "every source, zero included: {t}");
        assert!(t.contains("stint_credentials_live_by_backend{backend=\"aws-\\\"prod\\\"\"} 3"), "label values escaped: {t}");
    }
}
