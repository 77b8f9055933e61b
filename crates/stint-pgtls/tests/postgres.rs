//! Against the local PostgreSQL, made to serve a certificate for 127.0.0.1 signed by a test
//! CA: each `sslmode` negotiates and checks what libpq's does.
#![allow(clippy::unwrap_used)]

use stint_pgtls::Target;
use stint_testkit::tls::{postgres_serving_test_certificate, TestCa};

fn base_url() -> String {
    std::env::var("STINT_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `base` with its host replaced and libpq parameters appended.
fn url(host: &str, params: &str) -> String {
    let base = base_url().replace("@127.0.0.1", &format!("@{host}")).replace("@localhost", &format!("@{host}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// Whether the session `target` opens is encrypted, as the server sees it.
async fn encrypted(target: &Target) -> Result<bool, String> {
    let (client, conn) = target.connect().await.map_err(|e| format!("{e:?}"))?;
    tokio::spawn(conn);
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn each_sslmode_negotiates_and_checks_as_libpq_does() {
    let ca = postgres_serving_test_certificate(&base_url());
    let ca = ca.display();

    let full = Target::parse(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    assert_eq!(encrypted(&full).await, Ok(true), "verify-full with the CA that signed the server's certificate");
    let require = Target::parse(&url("127.0.0.1", "sslmode=require")).unwrap();
    assert_eq!(encrypted(&require).await, Ok(true), "require encrypts without checking");
    let prefer = Target::parse(&base_url()).unwrap();
    assert_eq!(encrypted(&prefer).await, Ok(true), "prefer (the default) encrypts when the server offers TLS");
    let disable = Target::parse(&url("127.0.0.1", "sslmode=disable")).unwrap();
    assert_eq!(encrypted(&disable).await, Ok(false));

    // The certificate names 127.0.0.1 only: reached as localhost, verify-full refuses it and
    // verify-ca (the CA vouches, the name is not compared) accepts it.
    let by_name = Target::parse(&url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    let refused = encrypted(&by_name).await.unwrap_err();
    assert!(refused.contains("NotValidForName"), "{refused}");
    let ca_only = Target::parse(&url("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}"))).unwrap();
    assert_eq!(encrypted(&ca_only).await, Ok(true));

    // Another CA's certificate is not trusted, in either verifying mode.
    let dir = std::env::temp_dir().join(format!("stint-pgtls-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong-ca.pem");
    std::fs::write(&wrong, TestCa::new("not the server's CA").pem()).unwrap();
    for mode in ["verify-full", "verify-ca"] {
        let t = Target::parse(&url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={}", wrong.display()))).unwrap();
        let e = encrypted(&t).await.unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
