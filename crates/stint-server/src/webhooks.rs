//! Alert delivery to webhooks: Slack-compatible (`{"text": …}`, the incoming-webhook format)
//! or a generic JSON body signed with HMAC-SHA256.
//!
//! The broker's `send` only puts the alert in a bounded queue: a slow or dead receiver never
//! blocks issuance. One task delivers, with a timeout per attempt and retries with backoff;
//! an alert that cannot be queued or delivered is counted (`stint_alerts_dropped_total`) and
//! logged, never silently lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stint_core::alerts::{Alert, AlertKind, Alerter};
use stint_core::secret::SecretString;

/// Alerts waiting for delivery; more are dropped (and counted).
pub const QUEUE: usize = 1024;
/// Attempts per alert and channel, with 0.5 s, 1 s, 2 s… between them.
const ATTEMPTS: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Slack,
    Json,
}

/// One configured channel.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub format: Format,
    /// The HMAC key of `json` webhooks.
    pub secret: Option<SecretString>,
    /// The events it receives; all when empty.
    pub events: Vec<AlertKind>,
    pub timeout: Duration,
}

/// Counts for `/metrics`.
#[derive(Default)]
pub struct AlertCounts {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct WebhookAlerter {
    queue: tokio::sync::mpsc::Sender<Alert>,
    /// Break-glass alerts have a queue of their own, served first: a flood of other alerts
    /// (or a slow receiver) cannot crowd them out.
    urgent: tokio::sync::mpsc::Sender<Alert>,
    counts: Arc<AlertCounts>,
}

/// The signature header of `json` webhooks: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
/// with the timestamp in `X-Stint-Timestamp`, so a receiver can refuse replays.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{timestamp}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    format!("sha256={}", data_encoding::HEXLOWER.encode(tag.as_ref()))
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn body(hook: &Webhook, alert: &Alert) -> Vec<u8> {
    let v = match hook.format {
        // Slack reads <…> as mentions and links: people's text must not make them.
        Format::Slack => serde_json::json!({ "text": format!("stint: {}", slack_escape(&alert.summary)) }),
        Format::Json => serde_json::json!({ "event": alert.kind.as_str(), "at": alert.at.to_rfc3339(), "summary": alert.summary, "details": alert.details }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

async fn deliver(http: &reqwest::Client, hook: &Webhook, alert: &Alert) -> Result<(), String> {
    let body = body(hook, alert);
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
        }
        let mut req = http.post(&hook.url).timeout(hook.timeout).header("content-type", "application/json").body(body.clone());
        if let (Format::Json, Some(secret)) = (hook.format, &hook.secret) {
            // Signed at sending time, so a receiver's replay window holds after a backlog.
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(alert.at.0, |d| d.as_secs() as i64);
            req = req.header("x-stint-timestamp", ts.to_string()).header("x-stint-signature", signature(secret, ts, &body));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            // Without the URL: webhook URLs carry their secret (Slack's path).
            Err(e) => last = e.without_url().to_string(),
        }
    }
    Err(last)
}

impl WebhookAlerter {
    /// Starts the delivery task on the current runtime.
    pub fn start(hooks: Vec<Webhook>, counts: Arc<AlertCounts>) -> WebhookAlerter {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<Alert>(QUEUE);
        let (urgent, mut urgent_rx) = tokio::sync::mpsc::channel::<Alert>(QUEUE);
        let task_counts = counts.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
            loop {
                let alert = tokio::select! {
                    biased;
                    Some(a) = urgent_rx.recv() => a,
                    Some(a) = rx.recv() => a,
                    else => break,
                };
                for hook in hooks.iter().filter(|h| h.events.is_empty() || h.events.contains(&alert.kind)) {
                    match deliver(&http, hook, &alert).await {
                        Ok(()) => {
                            task_counts.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            task_counts.dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(url = %redact(&hook.url), event = alert.kind.as_str(), error = %e, "alert not delivered after retries; dropped");
                        }
                    }
                }
            }
        });
        WebhookAlerter { queue, urgent, counts }
    }
}

/// Webhook URLs often carry their secret in the path, the query or the userinfo (Slack's in
/// the path): log the scheme and host only.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

impl Alerter for WebhookAlerter {
    fn send(&self, alert: Alert) {
        let queue = if alert.kind == AlertKind::BreakGlass { &self.urgent } else { &self.queue };
        if let Err(e) = queue.try_send(alert) {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            let kind = match &e {
                tokio::sync::mpsc::error::TrySendError::Full(a) | tokio::sync::mpsc::error::TrySendError::Closed(a) => a.kind.as_str(),
            };
            tracing::warn!(event = kind, "alert queue full; alert dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn webhook_urls_are_logged_without_their_path() {
        assert_eq!(super::redact("https://hooks.slack.com/services/T0/B0/secret"), "https://hooks.slack.com/…");
        assert_eq!(super::redact("https://user:pass@hooks.example.com/x?token=secret"), "https://hooks.example.com/…");
        assert_eq!(super::slack_escape("<!channel> <https://evil|Approve> & co"), "&lt;!channel&gt; &lt;https://evil|Approve&gt; &amp; co");
    }

    #[test]
    fn the_signature_is_lowercase_hex_hmac_sha256() {
        // Python: hmac.new(b"whsec", b'1700000000.{"ok":true}', hashlib.sha256).hexdigest()
        let secret = stint_core::secret::SecretString::new("whsec".into());
        assert_eq!(super::signature(&secret, 1_700_000_000, br#"{"ok":true}"#), "sha256=8fff954f80a855c2adb24ba36c6f6d47d926481b848e42bd0cda22c562a7f436");
    }
}
