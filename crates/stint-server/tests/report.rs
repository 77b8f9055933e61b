//! `GET /v1/report`: administrators only, every bad parameter refused with its code, the HTML
//! page served as a document that runs nothing; and the live credentials in the gauges a
//! migration dashboard follows.
#![allow(clippy::unwrap_used)]

mod common;

use common::{spawn_app_with, Backend};
use reqwest::StatusCode;
use serde_json::json;

const SSH: &str = "[[backends.ssh]]\nname = \"servers\"\n[backends.ssh.roles]\ndeveloper = [\"deploy\"]\n";
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN99sZ2dHHPKWn7Ek1foR6saHUOHpZFgclrRCKIs2StY report-test";

fn gauge(metrics: &str, series: &str) -> Option<i64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_for_administrators_and_refuses_bad_parameters() {
    let app = spawn_app_with(Backend::Sqlite, SSH).await;
    let admin = app.admin().await;
    let dev = app.person(&admin, "dev", &["developers"]).await;

    let (s, v) = app.get("/v1/report", None).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("missing_credentials")), "{v}");
    let (s, v) = app.get("/v1/report", Some(&dev.session)).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("admin_required")), "{v}");
    let refused = [
        ("/v1/report?format=pdf", "unknown_format"),
        ("/v1/report?since=yesterday", "invalid_time"),
        ("/v1/report?as_of=2026-13-01T00:00:00Z", "invalid_time"),
        ("/v1/report?since=2026-12-02T00:00:00Z&as_of=2026-12-01T00:00:00Z", "invalid_period"),
        ("/v1/report?since=2020-01-01T00:00:00Z&as_of=2026-12-01T00:00:00Z", "invalid_period"),
        ("/v1/report?limit=5", "invalid_query"),
    ];
    for (path, code) in refused {
        let (s, v) = app.get(path, Some(&admin.session)).await;
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{path}: {v}");
    }

    // A credential of the developer's: in the report and in the gauges.
    let (s, v) = app.post("/v1/creds", Some(&dev.session), json!({ "role": "developer", "backend": "servers", "public_key": PUBLIC_KEY })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.token(&dev, "developer").await;
    let (s, r) = app.get("/v1/report", Some(&admin.session)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["after"]["active"]["total"], 2, "the SSH certificate and the role token: {r}");
    assert_eq!((r["after"]["active"]["by_backend"]["servers"].as_u64(), r["after"]["active"]["by_backend"]["token"].as_u64()), (Some(1), Some(1)));
    assert_eq!(r["after"]["issued_total"], 2, "the certificate and the role token: {r}");
    assert_eq!(r["period"]["as_of"].as_i64().unwrap() - r["period"]["since"].as_i64().unwrap(), 30 * 86_400, "30 days by default");
    let people = r["review"]["people"].as_array().unwrap();
    let dev_row = people.iter().find(|p| p["name"] == "dev").unwrap();
    assert_eq!(dev_row["held"][0]["role"], "developer");
    assert_eq!(dev_row["held"][0]["credentials"], 2);
    assert!(dev_row["could"]["standing"].as_array().unwrap().iter().any(|r| r == "developer"), "{dev_row}");

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(gauge(&metrics, "stint_credentials_live{source=\"person\"}"), Some(1), "the backend credential: {metrics}");
    assert_eq!(gauge(&metrics, "stint_credentials_live{source=\"ci\"}"), Some(0));
    assert_eq!(gauge(&metrics, "stint_credentials_live_by_backend{backend=\"servers\"}"), Some(1));

    // The page: a document that runs nothing and loads nothing.
    let resp = app.http.get(app.url("/v1/report?format=html")).bearer_auth(&admin.session).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let page = resp.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("<svg") && page.contains(">dev<"), "{page}");
    for external in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!page.contains(external), "the page is self-contained: found {external:?}");
    }
}

/// The access review names the roles a shift would grant, for the people a rotation lists
/// and no one else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_shows_on_call_roles_only_for_people_on_the_rotation() {
    let rotation = "[[oncall.schedule]]\nname = \"primary\"\ngrants = [\"developer\"]\npeople = [\"alice\", \"bob\"]\n\
                    first_day = \"2026-01-05\"\nhandoff = \"09:00\"\nevery = \"7d\"\ntimezone = \"Europe/Berlin\"\n";
    let app = spawn_app_with(Backend::Sqlite, rotation).await;
    let admin = app.admin().await;
    for name in ["alice", "carol"] {
        app.person(&admin, name, &[]).await;
    }
    let (s, r) = app.get("/v1/report", Some(&admin.session)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let could = |name: &str| r["review"]["people"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["could"].clone();
    assert_eq!(could("alice")["on_call"], json!(["developer"]), "{r}");
    assert!(!could("alice")["standing"].as_array().unwrap().iter().any(|r| r == "developer"));
    assert_eq!(could("carol")["on_call"], json!([]), "carol takes no shifts");
}
