//! On-call grants against the running server, with the clock moved by the test: a rotation
//! grants `developer` during a shift and its grace period, and stops at the next issuance
//! after that; a calendar feed does the same and is re-read while the server runs; recurring
//! calendar shifts grant months after they were first read; a feed that breaks or grows too
//! large keeps the last good shifts and is audited and alerted once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{spawn_app_with, Backend, Person, TestApp};
use reqwest::StatusCode;
use stint_core::Timestamp;

/// The harness's clock starts at 2027-01-15T08:00:00Z, a Friday.
const MONDAY_HANDOFF: i64 = 1_800_259_200; // 2027-01-18T08:00:00Z = 09:00 in Berlin

const ROTATION: &str = r#"
[[oncall.schedule]]
name = "primary"
grants = ["developer"]
grace = "30m"
people = ["alice", "bob"]
first_day = "2027-01-11"
handoff = "09:00"
every = "7d"
timezone = "Europe/Berlin"
"#;

async fn people(app: &TestApp) -> (Person, Person, Person) {
    let admin = app.admin().await;
    let alice = app.person(&admin, "alice", &[]).await;
    let bob = app.person(&admin, "bob", &[]).await;
    (admin, alice, bob)
}

async fn may_deploy(app: &TestApp, p: &Person) -> Result<String, String> {
    let (s, v) = app.assume(p, "developer", Some("15m")).await;
    if s == StatusCode::OK {
        let record = app.store.audit_after(0, 10_000).await.unwrap().into_iter().rev().find(|r| r.event == "credential.issued").unwrap();
        Ok(record.details["reasons"].clone())
    } else {
        Err(v["error"].as_str().unwrap_or("").to_owned())
    }
}

async fn a_rotation_grants_developer_during_the_shift_and_its_grace(app: TestApp) {
    let (_, alice, bob) = people(&app).await;
    // Friday of alice's week.
    assert_eq!(may_deploy(&app, &alice).await, Ok("policy \"on call (primary): developer\"".into()));
    assert_eq!(may_deploy(&app, &bob).await, Err("role_not_granted".into()));
    let (_, me) = app.get("/v1/whoami", Some(&alice.session)).await;
    assert!(me["roles"].as_array().unwrap().iter().any(|r| r["role"] == "developer"), "{me}");

    // Monday 09:00 Berlin: bob takes over; alice keeps 30 minutes of grace.
    app.clock.set(Timestamp(MONDAY_HANDOFF + 29 * 60 - 30));
    let alice = app.login(&alice.name, &alice.secret).await;
    let bob = app.login(&bob.name, &bob.secret).await;
    assert!(may_deploy(&app, &alice).await.is_ok(), "within the grace period");
    assert!(may_deploy(&app, &bob).await.is_ok());
    app.clock.advance(30);
    assert_eq!(may_deploy(&app, &alice).await, Err("role_not_granted".into()), "checked at each issuance");
    assert!(may_deploy(&app, &bob).await.is_ok());
}

fn ics(events: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//stint test//EN\r\n");
    for (who, start, end) in events {
        out.push_str(&format!("BEGIN:VEVENT\r\nSUMMARY:On call\r\nATTENDEE:mailto:{who}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nEND:VEVENT\r\n"));
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_feed_grants_and_is_re_read() {
    let dir = std::env::temp_dir().join(format!("stint-oncall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let feed = dir.join("pagerduty.ics");
    // Alice's shift covers the harness's clock (the 15th, 08:00Z); bob's address differs from his name.
    std::fs::write(
        &feed,
        ics(&[("alice@example.com", "20270115T000000Z", "20270116T000000Z"), ("robert@example.com", "20270116T000000Z", "20270117T000000Z")]),
    )
    .unwrap();
    let toml = format!(
        "[[oncall.schedule]]\nname = \"pagerduty\"\ngrants = [\"developer\"]\nical_file = {:?}\nrefresh = \"1s\"\nemail_domain = \"example.com\"\n[oncall.schedule.people_map]\n\"robert@example.com\" = \"bob\"\n",
        feed.display().to_string()
    );
    let app = spawn_app_with(Backend::Sqlite, &toml).await;
    let (_, alice, bob) = people(&app).await;
    assert_eq!(may_deploy(&app, &alice).await, Ok("policy \"on call (pagerduty): developer\"".into()));
    assert_eq!(may_deploy(&app, &bob).await, Err("role_not_granted".into()));
    app.clock.set(Timestamp(1_800_000_000 + 18 * 3600));
    let bob = app.login(&bob.name, &bob.secret).await;
    assert!(may_deploy(&app, &bob).await.is_ok(), "bob, through people_map");

    // The schedule changes at the source: the server re-reads it while running.
    std::fs::write(&feed, ics(&[])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while may_deploy(&app, &bob).await.is_ok() {
        assert!(Instant::now() < deadline, "the feed was not re-read within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_validated_at_start() {
    let refused = common::config_refused;
    refused(&ROTATION.replace("Europe/Berlin", "Mars/Olympus"), "unknown time zone");
    refused(&ROTATION.replace("\"developer\"]", "\"superuser\"]"), "no role named superuser");
    refused(&ROTATION.replace("every = \"7d\"", "every = \"36h\""), "whole days");
    refused(&format!("{ROTATION}ical_url = \"https://example.com/x.ics\"\n"), "not both");
    refused(&ROTATION.replace("first_day = \"2027-01-11\"", "first_day = \"next monday\""), "not a date");
    let calendar = "[[oncall.schedule]]\nname = \"feed\"\nical_url = \"https://example.com/x.ics\"\n";
    refused(&format!("{calendar}max_feed_size = \"5 parsecs\"\n"), "not a size");
    refused(&format!("{calendar}max_feed_size = \"0\"\n"), "more than 0 bytes");
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_grants_developer_during_the_shift_and_its_grace() {
        super::a_rotation_grants_developer_during_the_shift_and_its_grace(super::spawn_app_with(super::Backend::Sqlite, super::ROTATION).await).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_grants_developer_during_the_shift_and_its_grace() {
        super::a_rotation_grants_developer_during_the_shift_and_its_grace(super::spawn_app_with(super::Backend::Postgres, super::ROTATION).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_url_is_fetched_and_refetched() {
    // A calendar server (PagerDuty's feed, here on loopback) whose content the test changes.
    let body = std::sync::Arc::new(std::sync::Mutex::new(ics(&[("alice@example.com", "20270115T000000Z", "20270116T000000Z")])));
    let served = body.clone();
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = fetches.clone();
    let app_feed = axum::Router::new().route(
        "/feed.ics",
        axum::routing::get(move || {
            let (served, counted) = (served.clone(), counted.clone());
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                served.lock().unwrap().clone()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/feed.ics", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app_feed).await.unwrap() });
    let toml = format!(
        "[[oncall.schedule]]\nname = \"pagerduty\"\ngrants = [\"developer\"]\nical_url = \"{url}\"\nrefresh = \"1s\"\nemail_domain = \"example.com\"\n"
    );
    let app = spawn_app_with(Backend::Sqlite, &toml).await;
    let (_, alice, _) = people(&app).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while may_deploy(&app, &alice).await.is_err() {
        assert!(Instant::now() < deadline, "the calendar URL was not fetched within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The shift is taken off the calendar: the next fetch ends the grant.
    *body.lock().unwrap() = ics(&[]);
    while may_deploy(&app, &alice).await.is_ok() {
        assert!(Instant::now() < deadline, "the calendar URL was not refetched within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A feed that breaks leaves the last shifts in force.
    *body.lock().unwrap() = ics(&[("alice@example.com", "20270115T000000Z", "20270116T000000Z")]);
    while may_deploy(&app, &alice).await.is_err() {
        assert!(Instant::now() < deadline, "the restored calendar was not fetched within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    *body.lock().unwrap() = "not a calendar".into();
    let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
    // Two fetches of the broken feed later, the last good shifts are still in force.
    while fetches.load(std::sync::atomic::Ordering::SeqCst) < before + 2 {
        assert!(Instant::now() < deadline, "the broken feed was not fetched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(may_deploy(&app, &alice).await.is_ok(), "a broken feed keeps the last good shifts");
}

/// A weekly rotation kept as two recurring events every other week, as Google Calendar
/// exports it: alice from Monday 11 January 2027, bob from the 18th, 09:00 Berlin time.
const ROTATING: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
BEGIN:VEVENT\r\nUID:alice@google.com\r\nDTSTART;TZID=Europe/Berlin:20270111T090000\r\nDTEND;TZID=Europe/Berlin:20270118T090000\r\n\
RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:bob@google.com\r\nDTSTART;TZID=Europe/Berlin:20270118T090000\r\nDTEND;TZID=Europe/Berlin:20270125T090000\r\n\
RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurring_calendar_shifts_grant_in_every_occurrence() {
    let dir = std::env::temp_dir().join(format!("stint-oncall-rrule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let feed = dir.join("rotation.ics");
    std::fs::write(&feed, ROTATING).unwrap();
    let toml = format!(
        "[[oncall.schedule]]\nname = \"google\"\ngrants = [\"developer\"]\nical_file = {:?}\nrefresh = \"1h\"\nemail_domain = \"example.com\"\n",
        feed.display().to_string()
    );
    let app = spawn_app_with(Backend::Sqlite, &toml).await;
    let (_, alice, bob) = people(&app).await;
    assert!(may_deploy(&app, &alice).await.is_ok(), "alice's first week");
    assert_eq!(may_deploy(&app, &bob).await, Err("role_not_granted".into()));
    // Monday 12 April 2027, 09:30 CEST (after the change to summer time): week 13, bob's.
    // The feed is not re-read within the hour: the occurrence comes from the calendar read.
    app.clock.set(Timestamp(1_807_515_000));
    let (alice, bob) = (app.login(&alice.name, &alice.secret).await, app.login(&bob.name, &bob.secret).await);
    assert_eq!(may_deploy(&app, &alice).await, Err("role_not_granted".into()));
    assert_eq!(may_deploy(&app, &bob).await, Ok("policy \"on call (google): developer\"".into()));
    // 08:59 CEST on the 19th is still bob's; 09:00 is alice's again (each login moves the
    // clock 30 s).
    app.clock.set(Timestamp(1_808_117_880));
    let (alice, bob) = (app.login(&alice.name, &alice.secret).await, app.login(&bob.name, &bob.secret).await);
    assert_eq!(may_deploy(&app, &bob).await, Ok("policy \"on call (google): developer\"".into()));
    app.clock.advance(60);
    assert_eq!(may_deploy(&app, &bob).await, Err("role_not_granted".into()));
    assert!(may_deploy(&app, &alice).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits until `fetches` has grown by `n` (each fetch starts after the last was handled).
async fn fetched(fetches: &std::sync::atomic::AtomicUsize, n: usize) {
    let target = fetches.load(std::sync::atomic::Ordering::SeqCst) + n;
    let deadline = Instant::now() + Duration::from_secs(20);
    while fetches.load(std::sync::atomic::Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "the feed was not fetched {n} more times within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_oversized_feed_keeps_the_last_shifts_and_is_audited_and_alerted() {
    let good = ics(&[("alice@example.com", "20270115T000000Z", "20270116T000000Z")]);
    let body = std::sync::Arc::new(std::sync::Mutex::new(good.clone()));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (served, counted) = (body.clone(), fetches.clone());
    let alerts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let heard = alerts.clone();
    let feed_server = axum::Router::new()
        .route(
            "/feed.ics",
            axum::routing::get(move || {
                let (served, counted) = (served.clone(), counted.clone());
                async move {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    served.lock().unwrap().clone()
                }
            }),
        )
        .route(
            "/hook",
            axum::routing::post(move |body: String| {
                let heard = heard.clone();
                async move {
                    heard.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, feed_server).await.unwrap() });
    let toml = format!(
        "[[oncall.schedule]]\nname = \"pagerduty\"\ngrants = [\"developer\"]\nical_url = \"{base}/feed.ics\"\nrefresh = \"1s\"\nmax_feed_size = \"1KiB\"\nemail_domain = \"example.com\"\n\n\
         [[alerts.webhook]]\nurl = \"{base}/hook\"\nformat = \"slack\"\nevents = [\"oncall_feed_failed\"]\n"
    );
    let app = spawn_app_with(Backend::Sqlite, &toml).await;
    let (_, alice, bob) = people(&app).await;
    fetched(&fetches, 2).await;
    assert!(may_deploy(&app, &alice).await.is_ok());
    let failures = |app: &TestApp| {
        let store = app.store.clone();
        async move { store.audit_after(0, 10_000).await.unwrap().into_iter().filter(|r| r.event == "oncall.feed_failed").collect::<Vec<_>>() }
    };
    assert!(failures(&app).await.is_empty());

    // Larger than max_feed_size: refused, though it is a readable calendar taking alice off.
    let padding = format!("X-PADDING:{}\r\nEND:VCALENDAR\r\n", "x".repeat(1100));
    *body.lock().unwrap() = ics(&[]).replace("END:VCALENDAR\r\n", &padding);
    fetched(&fetches, 3).await;
    assert!(may_deploy(&app, &alice).await.is_ok(), "the last good shifts stay in force");
    let failed = failures(&app).await;
    assert_eq!(failed.len(), 1, "audited once, not at every refresh: {failed:?}");
    assert_eq!((failed[0].subject.as_str(), failed[0].reason.as_str()), ("pagerduty", "calendar_too_large"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while alerts.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no alert within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alert = alerts.lock().unwrap()[0].clone();
    assert!(alert.contains("pagerduty") && alert.contains("last shifts stay in force"), "{alert}");
    assert!(!alert.contains("/feed.ics"), "the feed URL (its secret) is not in the alert: {alert}");

    // Good again, then cut off mid-transfer: the half-read feed grants bob nothing.
    *body.lock().unwrap() = good.clone();
    fetched(&fetches, 2).await;
    let whole = ics(&[("alice@example.com", "20270115T000000Z", "20270116T000000Z"), ("bob@example.com", "20270115T000000Z", "20270116T000000Z")]);
    *body.lock().unwrap() = whole[..whole.find("END:VCALENDAR").unwrap()].to_owned();
    fetched(&fetches, 2).await;
    assert_eq!(may_deploy(&app, &bob).await, Err("role_not_granted".into()), "a half-read feed never grants");
    assert!(may_deploy(&app, &alice).await.is_ok());
    let failed = failures(&app).await;
    assert_eq!(failed.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(), ["calendar_too_large", "invalid_calendar"]);
    // The whole feed is taken.
    *body.lock().unwrap() = whole;
    fetched(&fetches, 2).await;
    assert!(may_deploy(&app, &bob).await.is_ok());
}
