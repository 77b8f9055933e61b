//! `stint_core::sshcert` checked by the real OpenSSH: `ssh-keygen` makes the user keys,
//! stint signs certificates and KRLs, and `ssh-keygen -L`, `-l` and `-Q` read them back.
//! These tests fail, not skip, when ssh-keygen is missing.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use stint_core::crypto::SigningKey;
use stint_core::sshcert::{ca_fingerprint, ca_public_key_line, krl, sign_user_certificate, CertSpec, KeyType, PublicKey};
use stint_core::Timestamp;

const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// A directory of its own under the system temp dir, removed when dropped (also on panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("stint-sshcert-{tag}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs ssh-keygen in UTC (so `-L` prints validity times in UTC) and returns its output.
fn ssh_keygen(args: &[&str]) -> Output {
    assert!(Path::new(SSH_KEYGEN).exists(), "{SSH_KEYGEN} is required for these tests (install openssh-client)");
    Command::new(SSH_KEYGEN).args(args).env("TZ", "UTC").output().unwrap_or_else(|e| panic!("cannot run {SSH_KEYGEN}: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(args: &[&str]) -> String {
    let o = ssh_keygen(args);
    assert!(o.status.success(), "ssh-keygen {args:?} failed: {}", text(&o));
    text(&o)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Makes a user key with ssh-keygen; returns the path of its private half.
fn user_key(dir: &TempDir, name: &str, kind: &[&str]) -> PathBuf {
    let key = dir.path(name);
    let mut args = vec!["-q", "-N", "", "-C", "user@test", "-f", p(&key)];
    args.extend_from_slice(kind);
    ok(&args);
    key
}

/// The SHA256 fingerprint `ssh-keygen -l` prints for a key file.
fn keygen_fingerprint(pub_file: &Path) -> String {
    let out = ok(&["-l", "-E", "sha256", "-f", p(pub_file)]);
    out.split_whitespace().find(|w| w.starts_with("SHA256:")).unwrap_or_else(|| panic!("no fingerprint in {out}")).to_owned()
}

fn ca() -> SigningKey {
    SigningKey::from_seed(&[7u8; 32]).unwrap()
}

fn spec(serial: u64) -> CertSpec {
    CertSpec {
        serial,
        key_id: "alice@example.com grant 42".into(),
        principals: vec!["alice".into(), "deploy".into()],
        valid_after: Timestamp(1_700_000_000),  // 2023-11-14T22:13:20Z
        valid_before: Timestamp(1_700_003_600), // 2023-11-14T23:13:20Z
        critical_options: vec![("source-address".into(), "10.0.0.0/8,192.0.2.7".into()), ("force-command".into(), "/usr/bin/uptime".into())],
        extensions: vec!["permit-pty".into(), "permit-agent-forwarding".into()],
    }
}

/// Signs `spec` for the `.pub` next to `key` and writes `<key>-cert.pub`; returns its path.
fn certify(key: &Path, spec: &CertSpec, nonce: u8) -> PathBuf {
    let line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let user = PublicKey::parse(&line).unwrap();
    let cert = sign_user_certificate(&ca(), &user, spec, [nonce; 32]).unwrap();
    let path = PathBuf::from(format!("{}-cert.pub", p(key)));
    std::fs::write(&path, format!("{cert}\n")).unwrap();
    path
}

/// The indented lines under `heading` in `ssh-keygen -L` output.
fn section(listing: &str, heading: &str) -> Vec<String> {
    let mut lines = listing.lines().skip_while(|l| !l.trim_start().starts_with(heading));
    let first = lines.next().unwrap_or_else(|| panic!("no {heading} in {listing}"));
    let inline = first.trim_start().trim_start_matches(heading).trim();
    if !inline.is_empty() {
        return vec![inline.to_owned()];
    }
    lines.take_while(|l| l.starts_with("                ")).map(|l| l.trim().to_owned()).collect()
}

#[test]
fn ssh_keygen_reads_certificates_for_each_key_type() {
    let dir = TempDir::new("certs");
    let ca_pub = dir.path("ca.pub");
    std::fs::write(&ca_pub, format!("{}\n", ca_public_key_line(&ca().public(), "stint test CA"))).unwrap();
    let ca_fp = keygen_fingerprint(&ca_pub);
    assert_eq!(ca_fp, ca_fingerprint(&ca().public()));

    let cases: [(&str, &[&str], KeyType, &str); 3] = [
        ("ed25519", &["-t", "ed25519"], KeyType::Ed25519, "ssh-ed25519-cert-v01@openssh.com"),
        ("ecdsa", &["-t", "ecdsa", "-b", "256"], KeyType::EcdsaP256, "ecdsa-sha2-nistp256-cert-v01@openssh.com"),
        ("rsa", &["-t", "rsa", "-b", "3072"], KeyType::Rsa, "ssh-rsa-cert-v01@openssh.com"),
    ];
    for (i, (name, kind, key_type, cert_type)) in cases.into_iter().enumerate() {
        let key = user_key(&dir, name, kind);
        let user_pub = key.with_extension("pub");
        let user = PublicKey::parse(&std::fs::read_to_string(&user_pub).unwrap()).unwrap();
        assert_eq!(user.key_type(), key_type);
        assert_eq!(user.comment(), "user@test");
        assert_eq!(user.fingerprint(), keygen_fingerprint(&user_pub), "{name}");

        let serial = 1000 + i as u64;
        let cert = certify(&key, &spec(serial), i as u8);
        let listing = ok(&["-L", "-f", p(&cert)]);
        let field = |label: &str| section(&listing, label).join("|");
        assert_eq!(field("Type:"), format!("{cert_type} user certificate"), "{listing}");
        assert_eq!(field("Public key:").split_whitespace().last(), Some(user.fingerprint().as_str()), "{listing}");
        assert_eq!(field("Signing CA:"), format!("ED25519 {ca_fp} (using ssh-ed25519)"), "{listing}");
        assert_eq!(field("Key ID:"), "\"alice@example.com grant 42\"", "{listing}");
        assert_eq!(field("Serial:"), serial.to_string(), "{listing}");
        assert_eq!(field("Valid:"), "from 2023-11-14T22:13:20 to 2023-11-14T23:13:20", "{listing}");
        assert_eq!(section(&listing, "Principals:"), ["alice", "deploy"], "{listing}");
        assert_eq!(section(&listing, "Critical Options:"), ["force-command /usr/bin/uptime", "source-address 10.0.0.0/8,192.0.2.7"], "{listing}");
        assert_eq!(section(&listing, "Extensions:"), ["permit-agent-forwarding", "permit-pty"], "{listing}");

        // The certificate line names the user key's type and carries the key id as its comment.
        let line = std::fs::read_to_string(&cert).unwrap();
        assert!(line.starts_with(&format!("{cert_type} AAAA")), "{line}");
        assert!(line.trim_end().ends_with(" alice@example.com grant 42"), "{line}");
        // And it is refused where a plain key is expected.
        assert_eq!(PublicKey::parse(&line).unwrap_err().code(), "unsupported_key_type");
    }
}

#[test]
fn ssh_keygen_checks_the_ca_signature() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    let dir = TempDir::new("tamper");
    let key = user_key(&dir, "ed25519", &["-t", "ed25519"]);
    let cert = certify(&key, &spec(0x0102), 4);
    ok(&["-L", "-f", p(&cert)]);
    let line = std::fs::read_to_string(&cert).unwrap();
    let mut fields = line.split_whitespace();
    let (name, data) = (fields.next().unwrap(), fields.next().unwrap());
    let mut blob = STANDARD.decode(data).unwrap();
    // type (4+32), nonce (4+32), key (4+32): the serial's last byte is at 115.
    assert_eq!(blob[114..116], [0x01, 0x02]);
    blob[115] = 0x03;
    std::fs::write(&cert, format!("{name} {} tampered\n", STANDARD.encode(&blob))).unwrap();
    let o = ssh_keygen(&["-L", "-f", p(&cert)]);
    assert!(!o.status.success(), "a certificate with a changed serial must fail its signature check: {}", text(&o));
    assert!(text(&o).contains("incorrect signature"), "{}", text(&o));
}

#[test]
fn ssh_keygen_lists_no_options_as_none() {
    let dir = TempDir::new("bare");
    let key = user_key(&dir, "ed25519", &["-t", "ed25519"]);
    let mut bare = spec(5);
    bare.principals = vec!["bob".into()];
    bare.critical_options.clear();
    bare.extensions.clear();
    let listing = ok(&["-L", "-f", p(&certify(&key, &bare, 9))]);
    assert_eq!(section(&listing, "Principals:"), ["bob"], "{listing}");
    assert_eq!(section(&listing, "Critical Options:"), ["(none)"], "{listing}");
    assert_eq!(section(&listing, "Extensions:"), ["(none)"], "{listing}");
}

#[test]
fn ssh_keygen_refuses_rsa_keys_stint_refuses() {
    let dir = TempDir::new("weak");
    let key = user_key(&dir, "rsa1024", &["-t", "rsa", "-b", "1024"]);
    let line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert_eq!(PublicKey::parse(&line).unwrap_err().code(), "weak_rsa_key");
}

#[test]
fn krl_revokes_listed_serials_only() {
    let dir = TempDir::new("krl");
    let key = user_key(&dir, "ed25519", &["-t", "ed25519"]);
    let rsa = user_key(&dir, "rsa", &["-t", "rsa", "-b", "3072"]);
    let revoked = certify(&key, &spec(17), 1);
    let kept = certify(&rsa, &spec(18), 2);
    let krl_file = dir.path("revoked.krl");
    std::fs::write(&krl_file, krl(&ca().public(), &[99, 17, 3, 17, 0], 12, Timestamp(1_700_000_000), "stint test KRL")).unwrap();

    let o = ssh_keygen(&["-Q", "-f", p(&krl_file), p(&revoked)]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("REVOKED"), "{}", text(&o));
    let o = ssh_keygen(&["-Q", "-f", p(&krl_file), p(&kept)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(": ok"), "{}", text(&o));

    // ssh-keygen reads the whole KRL back: version, comment, CA and serials.
    let dump = ok(&["-Q", "-l", "-f", p(&krl_file)]);
    assert!(dump.contains("# KRL version 12"), "{dump}");
    assert!(dump.contains("# Comment: stint test KRL"), "{dump}");
    assert!(dump.contains(&format!("# CA key ssh-ed25519 {}", ca_fingerprint(&ca().public()))), "{dump}");
    let serials: Vec<&str> = dump.lines().filter(|l| l.starts_with("serial:")).collect();
    assert_eq!(serials, ["serial: 3", "serial: 17", "serial: 99"], "{dump}");

    // A KRL for another CA revokes none of these serials.
    let other = SigningKey::from_seed(&[8u8; 32]).unwrap().public();
    std::fs::write(&krl_file, krl(&other, &[17, 18], 13, Timestamp(1_700_000_000), "")).unwrap();
    let o = ssh_keygen(&["-Q", "-f", p(&krl_file), p(&revoked), p(&kept)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn empty_krl_revokes_nothing() {
    let dir = TempDir::new("empty-krl");
    let key = user_key(&dir, "ecdsa", &["-t", "ecdsa", "-b", "256"]);
    let cert = certify(&key, &spec(1), 3);
    let krl_file = dir.path("empty.krl");
    std::fs::write(&krl_file, krl(&ca().public(), &[], 1, Timestamp(1_700_000_000), "nothing revoked")).unwrap();
    let o = ssh_keygen(&["-Q", "-f", p(&krl_file), p(&cert), p(&key.with_extension("pub"))]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("REVOKED"), "{}", text(&o));
    let dump = ok(&["-Q", "-l", "-f", p(&krl_file)]);
    assert!(dump.contains("# KRL version 1"), "{dump}");
    assert!(!dump.contains("serial:"), "{dump}");
}
