//! `stint server` serving HTTPS itself: real `curl --cacert` and the CLI verify it, another
//! CA is refused, and a new certificate is taken (on change and on SIGHUP) without dropping
//! the connections already open.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ok_json, run, start_server_on, totp_now, PASSWORD};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use stint_testkit::free_port;
use stint_testkit::tls::{write_atomically, TestCa};

fn curl(args: &[&str]) -> Output {
    Command::new("curl").args(["--silent", "--show-error", "--max-time", "10"]).args(args).output().expect("curl must be installed")
}

/// Polls `f` until true, failing with `what` after 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kept-alive HTTPS connection, trusting only `ca`.
struct Conn(rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl Conn {
    fn open(port: u16, ca: &str) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(tls, TcpStream::connect(("127.0.0.1", port)).unwrap());
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        Conn(s)
    }

    /// `GET /healthz` on this connection; the status line and body.
    fn health(&mut self) -> String {
        self.0.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).ends_with("ok\n") {
            let n = self.0.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed the connection: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    fn peer_certificate(&self) -> Vec<u8> {
        self.0.conn.peer_certificates().unwrap()[0].as_ref().to_vec()
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec()
}

fn reloads(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("TLS certificate reloaded").count()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_server_serves_https_that_curl_and_the_cli_verify_and_reloads_its_certificate() {
    let root = std::env::temp_dir().join(format!("stint-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let file = |name: &str, text: &str| -> PathBuf {
        let p = root.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca1, ca2) = (TestCa::new("stint test CA one"), TestCa::new("stint test CA two"));
    let (ca1_file, ca2_file) = (file("ca1.pem", &ca1.pem()), file("ca2.pem", &ca2.pem()));
    let first = ca1.issue(&["127.0.0.1", "localhost"]);
    let (cert, key) = (file("cert.pem", &first.cert_pem), file("key.pem", &first.key_pem));
    let port = free_port();
    let extra = ["--tls-cert-file", cert.to_str().unwrap(), "--tls-key-file", key.to_str().unwrap()];
    let (server, bootstrap) = start_server_on(port, &root.join("data"), &extra, "info");
    let url = format!("https://127.0.0.1:{port}");
    let (ca1_path, ca2_path) = (ca1_file.to_str().unwrap(), ca2_file.to_str().unwrap());

    // curl trusts it with the CA that signed it; the issuer is the https URL.
    let ok = curl(&["--cacert", ca1_path, &format!("{url}/.well-known/openid-configuration")]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let discovery: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(discovery["issuer"], url.as_str());
    // Another CA: curl refuses the certificate (exit 60). Plain HTTP and TLS 1.1 get nothing.
    let wrong = curl(&["--cacert", ca2_path, &format!("{url}/healthz")]);
    assert_eq!(wrong.status.code(), Some(60), "{}", stderr(&wrong));
    assert!(!curl(&[&format!("http://127.0.0.1:{port}/healthz")]).status.success(), "no plain HTTP on the TLS port");
    let old = curl(&["--cacert", ca1_path, "--tlsv1.0", "--tls-max", "1.1", &format!("{url}/healthz")]);
    assert!(!old.status.success(), "TLS below 1.2 is refused");

    // The CLI: verified with --ca-file, which the session remembers for later commands.
    let admin = root.join("admin");
    let b = ok_json(&admin, &["bootstrap", "--server", &url, "--ca-file", ca1_path, "--token", &bootstrap, "--username", "root", "-o", "json"], None);
    let code = b["enrollment_code"].as_str().unwrap();
    let e = ok_json(&admin, &["enroll", "--server", &url, "--ca-file", ca1_path, "--code", code, "--password-stdin", "-o", "json"], Some(PASSWORD));
    let totp = totp_now(e["totp_secret"].as_str().unwrap());
    ok_json(&admin, &["login", "--server", &url, "--ca-file", ca1_path, "--user", "root", "--password-stdin", "--totp", &totp, "-o", "json"], Some(PASSWORD));
    assert_eq!(ok_json(&admin, &["whoami", "-o", "json"], None)["username"], "root", "later commands verify with the CA saved at login");
    // Without the CA (the system's roots), or with another, the CLI refuses and says what to do.
    let stranger = root.join("stranger");
    for args in [vec!["bootstrap", "--server", &url, "--token", "x", "--username", "x"], vec!["whoami", "--ca-file", ca2_path]] {
        let home = if args[0] == "whoami" { &admin } else { &stranger };
        let out = run(home, &args, None);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("does not trust") && stderr(&out).contains("--ca-file"), "{args:?}: {}", stderr(&out));
    }

    // A connection opened now survives the certificate's replacement.
    let mut kept = Conn::open(port, &ca1.pem());
    assert!(kept.health().starts_with("HTTP/1.1 200"));
    assert_eq!(kept.peer_certificate(), der(&first.cert_pem));

    // New files (another CA's certificate): taken without a signal, for new connections.
    let second = ca2.issue(&["127.0.0.1"]);
    write_atomically(&key, &second.key_pem);
    write_atomically(&cert, &second.cert_pem);
    eventually("the changed certificate is served", || curl(&["--cacert", ca2_path, &format!("{url}/healthz")]).status.success());
    assert_eq!(Conn::open(port, &ca2.pem()).peer_certificate(), der(&second.cert_pem));
    assert!(kept.health().starts_with("HTTP/1.1 200"), "the connection opened before the reload still works");

    // SIGHUP reloads at once, even with unchanged files.
    let before = reloads(&server.log);
    assert!(Command::new("kill").args(["-HUP", &server.process.0.id().to_string()]).status().unwrap().success());
    eventually("SIGHUP reloads the certificate", || reloads(&server.log) > before);

    // A broken file is not taken: the previous certificate keeps serving.
    write_atomically(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    eventually("the broken certificate is reported", || std::fs::read_to_string(&server.log).unwrap().contains("was not taken"));
    let still = curl(&["--cacert", ca2_path, &format!("{url}/healthz")]);
    assert!(still.status.success(), "{}", stderr(&still));
    drop(server);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Plain HTTP off loopback is refused at start, with what to do; `tls = "proxy"` is the way
/// to say a proxy in front ends TLS.
#[test]
fn plain_http_off_loopback_is_refused() {
    let root = std::env::temp_dir().join(format!("stint-tls-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let out = common::stint().args(["config", "check", "--listen", "0.0.0.0:7807", "--data"]).arg(root.join("data")).output().unwrap();
    assert!(!out.status.success());
    let says = stderr(&out);
    assert!(says.contains("clear text") && says.contains("tls_cert_file") && says.contains("tls = \"proxy\""), "{says}");
    let cfg = root.join("stint.toml");
    std::fs::write(
        &cfg,
        "listen = \"0.0.0.0:7807\"\ntls = \"proxy\"\npublic_url = \"https://stint.example.com\"\n[limits]\ntrusted_proxies = [\"10.0.0.5\"]\n",
    )
    .unwrap();
    let out = common::stint().args(["config", "check", "-o", "json", "--config"]).arg(&cfg).arg("--data").arg(root.join("data")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["tls"], "proxy");
    assert_eq!(shown["limits"]["trusted_proxy_header"], "x-forwarded-for", "a proxy that ends TLS names the client");
    std::fs::remove_dir_all(&root).unwrap();
}
