//! Certificates for tests of TLS: a throwaway CA that signs server certificates, and the
//! local PostgreSQL set up to serve one of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate authority that exists for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (host names, or IP addresses as text).
    pub fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("server params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("server certificate");
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// Writes `contents` to `path` through a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes the PostgreSQL at `url` (the test server, reached as 127.0.0.1) serve a certificate
/// for `127.0.0.1` only, signed by a test CA; returns the CA's PEM file.
///
/// This changes the server's configuration (`ALTER SYSTEM`: `ssl`, `ssl_cert_file`,
/// `ssl_key_file`) and leaves it so: the files stay in `stint-test-tls` in its data directory,
/// where a restart finds them. Test processes running at once take turns on a lock file, and
/// reuse what an earlier one set up. Needs to write to the data directory (root, or the
/// server's own user).
pub fn postgres_serving_test_certificate(url: &str) -> PathBuf {
    let data = PathBuf::from(psql(url, "SHOW data_directory").expect("PostgreSQL answers"));
    let dir = data.join("stint-test-tls");
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("server.crt"), dir.join("server.key"));
    let lock = std::fs::File::create(std::env::temp_dir().join("stint-test-postgres-tls.lock")).expect("lock file");
    lock.lock().expect("lock");
    let serving = || psql(url, "SHOW ssl_cert_file").ok().as_deref() == Some(&*cert.to_string_lossy()) && psql(url, "SHOW ssl").ok().as_deref() == Some("on");
    if ca.exists() && key.exists() && serving() {
        return ca;
    }
    let test_ca = TestCa::new("stint test CA for PostgreSQL");
    let issued = test_ca.issue(&["127.0.0.1"]);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {} (run the tests as root or as PostgreSQL's user): {e}", dir.display()));
    write_atomically(&cert, &issued.cert_pem);
    write_atomically(&key, &issued.key_pem);
    write_atomically(&ca, &test_ca.pem());
    // PostgreSQL reads the key only if it is its own and private.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(&data).expect("data directory");
    for f in [&dir, &cert, &key, &ca] {
        std::os::unix::fs::chown(f, Some(owner.uid()), Some(owner.gid())).expect("chown");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let quoted = |p: &Path| p.to_string_lossy().replace('\'', "''");
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", quoted(&cert)),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", quoted(&key)),
        "ALTER SYSTEM SET ssl = on".into(),
    ] {
        psql(url, &sql).expect("ALTER SYSTEM");
    }
    psql(url, "SELECT pg_reload_conf()").expect("reload");
    // The postmaster applies the reload asynchronously; new sessions show when it has.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !serving() {
        assert!(Instant::now() < deadline, "PostgreSQL did not take the test certificate within 20s; see its log");
        std::thread::sleep(Duration::from_millis(50));
    }
    ca
}
