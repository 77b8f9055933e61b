//! The inventory routes: the report upload is read only for an administrator, and what is kept
//! shows in the Prometheus gauges a dashboard follows down to zero.
#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn_app, Backend};
use reqwest::StatusCode;

const REPORT: &str = include_str!("../../stint-core/tests/fixtures/credential-report/aws.csv");

fn upload(app: &common::TestApp, bearer: Option<&str>, body: Vec<u8>) -> reqwest::RequestBuilder {
    let url = app.url("/v1/inventory/snapshots?format=aws-credential-report&generated_at=2026-11-30T12:00:00Z");
    // A server that answers without reading a body closes the connection: none is reused.
    let req = app.http.post(url).header("content-type", "text/csv").header("connection", "close").body(body);
    match bearer {
        Some(b) => req.bearer_auth(b),
        None => req,
    }
}

fn gauge(metrics: &str, name: &str) -> Option<i64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_report_shows_in_the_gauges() {
    let app = spawn_app(Backend::Sqlite).await;
    let metrics = || async { app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let before = metrics().await;
    assert_eq!((gauge(&before, "stint_inventory_accounts"), gauge(&before, "stint_inventory_active_keys")), (Some(0), Some(0)), "{before}");

    let admin = app.admin().await;
    let r = upload(&app, Some(&admin.session), REPORT.as_bytes().to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The replica that kept it shows it at the next scrape, not a minute later.
    let after = metrics().await;
    assert_eq!(gauge(&after, "stint_inventory_accounts"), Some(1), "{after}");
    assert_eq!(gauge(&after, "stint_inventory_active_keys"), Some(4));
    assert_eq!(gauge(&after, "stint_inventory_root_keys_active"), Some(1));
    assert_eq!(gauge(&after, "stint_inventory_users_without_mfa"), Some(2));
    assert_eq!(gauge(&after, "stint_inventory_keys_older_than_90_days"), Some(2));
    assert_eq!(gauge(&after, "stint_inventory_snapshot_timestamp_seconds"), stint_core::Timestamp::parse_rfc3339("2026-11-30T12:00:00Z").map(|t| t.0));
    assert!(gauge(&after, "stint_inventory_oldest_key_age_days").unwrap() > 2_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_but_an_administrator_makes_stint_read_a_report() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    let dev = app.person(&admin, "dev", &["developers"]).await;
    let head = app.audit_head().await;
    // 128 KiB: over every other route's 64 KiB, so only this route's reader could take it, and
    // it is reached only by an administrator. (Small enough that the socket buffers take it
    // whole: a server that answers without reading a larger body may reset the connection
    // before the client has sent it.)
    let mib = vec![b'a'; 128 << 10];
    let anon = upload(&app, None, mib.clone()).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED, "refused on the missing credential, before the body");
    let (s, body) = common::body(upload(&app, Some(&dev.session), mib).send().await.unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{body}");
    let big = vec![b'a'; (16 << 20) + 1];
    let (s, body) = common::body(upload(&app, Some(&admin.session), big).send().await.unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("report_too_large")), "{body}");
    let (s, body) = common::body(upload(&app, Some(&admin.session), b"user,arn\nalice,x\n".to_vec()).send().await.unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_report")), "{body}");
    let wrong_type =
        app.http.post(app.url("/v1/inventory/snapshots?format=aws-credential-report&generated_at=2026-11-30T12:00:00Z")).bearer_auth(&admin.session);
    let (s, body) = common::body(wrong_type.header("content-type", "application/json").body("{}").send().await.unwrap()).await;
    assert_eq!((s, body["error"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")), "{body}");
    let (s, inv) = app.get("/v1/inventory", Some(&admin.session)).await;
    assert_eq!((s, inv["totals"]["accounts"].as_u64()), (StatusCode::OK, Some(0)), "nothing refused was kept");
    let written: Vec<String> = app.audit_events_after(head).await.into_iter().map(|(e, _, reason)| format!("{e}:{reason}")).collect();
    assert!(!written.iter().any(|e| e.starts_with("inventory.")), "{written:?}");
}
