//! OpenSSH user certificates and key revocation lists (KRLs), signed by stint's Ed25519 key.
//!
//! stint hands out short-lived SSH access the way OpenSSH intends it: servers trust one CA
//! key (`TrustedUserCAKeys`, written by [`ca_public_key_line`]), users present their own
//! public key ([`PublicKey::parse`]), and stint signs a user certificate for it
//! ([`sign_user_certificate`]) naming who may log in, as whom, and until when. A certificate
//! that must die before it expires is listed by serial in a KRL ([`krl`]) that sshd reads
//! through `RevokedKeys`.
//!
//! The formats are OpenSSH's `PROTOCOL.certkeys` and `PROTOCOL.krl`, built on the RFC 4251
//! wire types (big-endian integers, `uint32`-length-prefixed strings). Everything here is
//! pure: the caller passes the nonce, serial and timestamps, and writes the results wherever
//! they go.
//!
//! Parsing refuses what sshd would refuse or what stint should not certify: DSA, RSA under
//! 2048 bits, certificates in place of keys, and blobs that do not say what the line says.

use std::net::IpAddr;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::crypto;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// The longest public key line accepted. A 16384-bit RSA key is about 2.8 KiB of text.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus OpenSSH accepts, in bits.
const MAX_RSA_BITS: usize = 16384;

/// The user certificate extensions OpenSSH defines, in the order the spec requires.
pub const STANDARD_EXTENSIONS: [&str; 6] =
    ["no-touch-required", "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"];

/// The user certificate critical options OpenSSH defines. Both carry a string.
pub const CRITICAL_OPTIONS: [&str; 2] = ["force-command", "source-address"];

/// `SSH_CERT_TYPE_USER` in PROTOCOL.certkeys.
const CERT_TYPE_USER: u32 = 1;

const KRL_MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;

/// Key data in a `.pub` line: standard alphabet, padding optional.
const B64_LENIENT: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// The user key types stint certifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    /// A FIDO security key holding an Ed25519 key.
    SkEd25519,
    /// A FIDO security key holding a NIST P-256 key.
    SkEcdsaP256,
}

impl KeyType {
    const ALL: [KeyType; 7] =
        [KeyType::Ed25519, KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::EcdsaP521, KeyType::Rsa, KeyType::SkEd25519, KeyType::SkEcdsaP256];

    /// The OpenSSH key type name, as it starts a `.pub` line.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
            KeyType::Rsa => "ssh-rsa",
            KeyType::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            KeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    /// The type name of a certificate for a key of this type.
    pub fn cert_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ssh-ed25519-cert-v01@openssh.com",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384-cert-v01@openssh.com",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521-cert-v01@openssh.com",
            KeyType::Rsa => "ssh-rsa-cert-v01@openssh.com",
            KeyType::SkEd25519 => "sk-ssh-ed25519-cert-v01@openssh.com",
            KeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
        }
    }

    fn from_name(name: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// A user's SSH public key, parsed from one `.pub` / `authorized_keys` line and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key_type: KeyType,
    blob: Vec<u8>,
    comment: String,
}

impl PublicKey {
    /// Parses `type base64 [comment]`, as `ssh-keygen` writes it to `id_*.pub`.
    ///
    /// `authorized_keys` options before the type are not accepted: pass the key alone.
    pub fn parse(line: &str) -> Result<PublicKey> {
        if line.len() > MAX_LINE_BYTES {
            return Err(Error::invalid(
                "public_key_too_large",
                format!("a public key line is at most {MAX_LINE_BYTES} bytes; paste the one line of your .pub file"),
            ));
        }
        let line = line.trim();
        if line.contains(['\n', '\r']) {
            return Err(invalid_key("several lines were given; paste exactly one line of your .pub file"));
        }
        let (name, rest) = split_token(line);
        let (data, comment) = split_token(rest);
        if name.is_empty() {
            return Err(invalid_key("the public key is empty; paste the line of your .pub file, e.g. ~/.ssh/id_ed25519.pub"));
        }
        let key_type = key_type_of(name)?;
        if data.is_empty() {
            return Err(invalid_key(format!("the {name} key has no key data after its type; paste the whole line of your .pub file")));
        }
        let blob = B64_LENIENT.decode(data).map_err(|_| invalid_key("the key data is not valid base64; paste the line of your .pub file unchanged"))?;
        check_blob(key_type, &blob)?;
        Ok(PublicKey { key_type, blob, comment: comment.to_owned() })
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key in SSH wire format (the decoded base64 of the line).
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The comment after the key data, empty if there was none.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// `SHA256:…`, as `ssh-keygen -l` and sshd's logs print it.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.blob)
    }

    /// The key's public fields: its blob after the leading type string.
    fn public_fields(&self) -> &[u8] {
        self.blob.get(4 + self.key_type.name().len()..).unwrap_or_default()
    }
}

/// The key type for a line's type name, or why it is refused.
fn key_type_of(name: &str) -> Result<KeyType> {
    if let Some(t) = KeyType::from_name(name) {
        return Ok(t);
    }
    let why = if name.ends_with("-cert-v01@openssh.com") {
        format!("{name} is a certificate, not a key; give the plain public key (the .pub file without -cert)")
    } else if name == "ssh-dss" {
        "DSA keys are not accepted (OpenSSH disabled them); make an Ed25519 key with `ssh-keygen -t ed25519`".to_owned()
    } else {
        let supported: Vec<&str> = KeyType::ALL.iter().map(|t| t.name()).collect();
        format!("unsupported key type {:?}; use one of {}", crate::ids::truncate(name), supported.join(", "))
    };
    Err(Error::invalid("unsupported_key_type", why))
}

/// Checks that `blob` is a well-formed public key of type `key_type`, and nothing more.
fn check_blob(key_type: KeyType, blob: &[u8]) -> Result<()> {
    let mut r = Reader(blob);
    let embedded = r.string()?;
    if embedded != key_type.name().as_bytes() {
        return Err(invalid_key(format!(
            "the key data is a {:?} key but the line says {}; paste the line of your .pub file unchanged",
            crate::ids::truncate(&String::from_utf8_lossy(embedded)),
            key_type.name()
        )));
    }
    match key_type {
        KeyType::Ed25519 | KeyType::SkEd25519 => {
            let pk: [u8; 32] = r.string()?.try_into().map_err(|_| invalid_key("the Ed25519 key is not 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&pk).map_err(|_| invalid_key("the Ed25519 key is not a valid curve point"))?;
        }
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 | KeyType::SkEcdsaP256 => {
            let (curve, coordinate_len) = match key_type {
                KeyType::EcdsaP384 => ("nistp384", 48),
                KeyType::EcdsaP521 => ("nistp521", 66),
                _ => ("nistp256", 32),
            };
            if r.string()? != curve.as_bytes() {
                return Err(invalid_key(format!("the {} key does not name curve {curve}", key_type.name())));
            }
            let point = r.string()?;
            if point.len() != 1 + 2 * coordinate_len || point.first() != Some(&0x04) {
                return Err(invalid_key(format!("the {curve} public point is not an uncompressed point")));
            }
        }
        KeyType::Rsa => {
            let e = mpint_bits(r.string()?)?;
            let n = mpint_bits(r.string()?)?;
            if e == 0 {
                return Err(invalid_key("the RSA public exponent is zero"));
            }
            if n < MIN_RSA_BITS {
                return Err(Error::invalid(
                    "weak_rsa_key",
                    format!("the RSA key has {n} bits; at least {MIN_RSA_BITS} are required: make a new key with `ssh-keygen -t ed25519`"),
                ));
            }
            if n > MAX_RSA_BITS {
                return Err(invalid_key(format!("the RSA key has {n} bits; OpenSSH accepts at most {MAX_RSA_BITS}")));
            }
        }
    }
    if matches!(key_type, KeyType::SkEd25519 | KeyType::SkEcdsaP256) {
        r.string()?; // application, e.g. "ssh:"
    }
    if !r.0.is_empty() {
        return Err(invalid_key("the key data has trailing bytes after the key; paste the line of your .pub file unchanged"));
    }
    Ok(())
}

/// The size in bits of a non-negative mpint (RFC 4251 §5).
fn mpint_bits(b: &[u8]) -> Result<usize> {
    if b.first().is_some_and(|x| x & 0x80 != 0) {
        return Err(invalid_key("the RSA key holds a negative number"));
    }
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    Ok(match b.get(first..) {
        Some([top, rest @ ..]) => rest.len() * 8 + (8 - top.leading_zeros() as usize),
        _ => 0,
    })
}

fn invalid_key(message: impl Into<String>) -> Error {
    Error::invalid("invalid_public_key", message)
}

/// The first whitespace-separated token of `s`, and the trimmed rest.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

fn fingerprint_of(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// stint's Ed25519 key in SSH wire format.
fn ca_blob(ca: &crypto::PublicKey) -> Vec<u8> {
    let mut b = Vec::with_capacity(51);
    put_string(&mut b, KeyType::Ed25519.name().as_bytes());
    put_string(&mut b, &ca.bytes());
    b
}

/// `ssh-ed25519 AAAA… comment`: the line for sshd's `TrustedUserCAKeys` file.
///
/// Control characters in `comment` become spaces so the result stays one line.
pub fn ca_public_key_line(ca: &crypto::PublicKey, comment: &str) -> String {
    let comment: String = comment.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let line = format!("{} {} {}", KeyType::Ed25519.name(), STANDARD.encode(ca_blob(ca)), comment.trim());
    line.trim_end().to_owned()
}

/// The CA's fingerprint, as `ssh-keygen -L` prints it under "Signing CA".
pub fn ca_fingerprint(ca: &crypto::PublicKey) -> String {
    fingerprint_of(&ca_blob(ca))
}

/// What a user certificate says. [`CertSpec::validate`] states the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSpec {
    /// Non-zero: OpenSSH reads 0 as "unnumbered", and KRLs cannot revoke it.
    pub serial: u64,
    /// Free text sshd logs on every login with the certificate, e.g. who and which grant.
    pub key_id: String,
    /// The user names the certificate may log in as. Never empty: OpenSSH reads an empty
    /// list as "any user".
    pub principals: Vec<String>,
    /// Valid from this instant (inclusive)…
    pub valid_after: Timestamp,
    /// …until this one (exclusive).
    pub valid_before: Timestamp,
    /// `(name, value)` from [`CRITICAL_OPTIONS`], e.g. `("force-command", "/usr/bin/backup")`.
    /// Any order; they are written sorted by name.
    pub critical_options: Vec<(String, String)>,
    /// Names from [`STANDARD_EXTENSIONS`], e.g. `permit-pty`. Any order; written sorted.
    pub extensions: Vec<String>,
}

impl CertSpec {
    /// Checks the spec against what OpenSSH accepts and what stint allows.
    pub fn validate(&self) -> Result<()> {
        if self.serial == 0 {
            return Err(Error::invalid("invalid_serial", "the certificate serial must not be 0: OpenSSH reads 0 as unnumbered, so it could not be revoked"));
        }
        if self.key_id.is_empty() || self.key_id.chars().any(char::is_control) {
            return Err(Error::invalid("invalid_key_id", "the certificate key id must be non-empty text without control characters"));
        }
        if self.principals.is_empty() {
            return Err(Error::invalid(
                "missing_principals",
                "name at least one principal (user name): a certificate without principals is valid for any user",
            ));
        }
        for (i, p) in self.principals.iter().enumerate() {
            if p.is_empty() || p.chars().any(|c| c.is_control() || c.is_whitespace() || c == ',') {
                return Err(Error::invalid(
                    "invalid_principal",
                    format!("principal {:?} must be a non-empty name without spaces, commas or control characters", crate::ids::truncate(p)),
                ));
            }
            if self.principals[..i].contains(p) {
                return Err(Error::invalid("invalid_principal", format!("principal {:?} is listed twice", crate::ids::truncate(p))));
            }
        }
        if self.valid_after.0 < 0 || self.valid_before <= self.valid_after {
            return Err(Error::invalid("invalid_validity", "the certificate must start at or after 1970 and end after it starts (valid_after < valid_before)"));
        }
        for (i, (name, value)) in self.critical_options.iter().enumerate() {
            if !CRITICAL_OPTIONS.contains(&name.as_str()) {
                return Err(Error::invalid(
                    "unsupported_critical_option",
                    format!("critical option {:?} is not supported; use {}", crate::ids::truncate(name), CRITICAL_OPTIONS.join(" or ")),
                ));
            }
            if self.critical_options[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::invalid("invalid_critical_option", format!("critical option {name} is given twice; give it once")));
            }
            if value.is_empty() || value.contains('\0') {
                return Err(Error::invalid("invalid_critical_option", format!("critical option {name} needs a non-empty value without NUL characters")));
            }
            if name == "source-address" {
                check_source_address(value)?;
            }
        }
        for (i, name) in self.extensions.iter().enumerate() {
            if !STANDARD_EXTENSIONS.contains(&name.as_str()) {
                return Err(Error::invalid(
                    "unsupported_extension",
                    format!("extension {:?} is not supported; use any of {}", crate::ids::truncate(name), STANDARD_EXTENSIONS.join(", ")),
                ));
            }
            if self.extensions[..i].contains(name) {
                return Err(Error::invalid("invalid_extension", format!("extension {name} is given twice; give it once")));
            }
        }
        Ok(())
    }
}

/// A `source-address` value: comma-separated addresses or CIDR networks without host bits,
/// e.g. `10.0.0.0/8,2001:db8::/32,192.0.2.7`.
fn check_source_address(list: &str) -> Result<()> {
    let bad = |entry: &str| {
        Error::invalid(
            "invalid_source_address",
            format!("source-address entry {:?} is not an IP address or a network like 10.0.0.0/8 (no spaces, host bits zero)", crate::ids::truncate(entry)),
        )
    };
    for entry in list.split(',') {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad(entry))?;
        let Some(prefix) = prefix else { continue };
        let prefix: u32 = prefix.parse().map_err(|_| bad(entry))?;
        let host_bits_zero = match addr {
            IpAddr::V4(a) => prefix <= 32 && u32::from(a).checked_shl(prefix).unwrap_or(0) == 0,
            IpAddr::V6(a) => prefix <= 128 && u128::from(a).checked_shl(prefix).unwrap_or(0) == 0,
        };
        if !host_bits_zero {
            return Err(bad(entry));
        }
    }
    Ok(())
}

/// Signs a user certificate for `key` with stint's CA key.
///
/// Returns the `-cert.pub` line, `<type>-cert-v01@openssh.com BASE64 <key id>`. `nonce` must
/// be fresh random bytes (PROTOCOL.certkeys: it defeats chosen-prefix hash collisions).
pub fn sign_user_certificate(ca: &crypto::SigningKey, key: &PublicKey, spec: &CertSpec, nonce: [u8; 32]) -> Result<String> {
    spec.validate()?;
    let mut principals = Vec::new();
    for p in &spec.principals {
        put_string(&mut principals, p.as_bytes());
    }
    let mut options: Vec<&(String, String)> = spec.critical_options.iter().collect();
    options.sort_by(|a, b| a.0.cmp(&b.0));
    let mut critical = Vec::new();
    for (name, value) in options {
        let mut data = Vec::new();
        put_string(&mut data, value.as_bytes());
        put_string(&mut critical, name.as_bytes());
        put_string(&mut critical, &data);
    }
    let mut names: Vec<&String> = spec.extensions.iter().collect();
    names.sort();
    let mut extensions = Vec::new();
    for name in names {
        put_string(&mut extensions, name.as_bytes());
        put_string(&mut extensions, b"");
    }

    let mut cert = Vec::new();
    put_string(&mut cert, key.key_type.cert_name().as_bytes());
    put_string(&mut cert, &nonce);
    cert.extend_from_slice(key.public_fields());
    cert.extend_from_slice(&spec.serial.to_be_bytes());
    cert.extend_from_slice(&CERT_TYPE_USER.to_be_bytes());
    put_string(&mut cert, spec.key_id.as_bytes());
    put_string(&mut cert, &principals);
    // validate() has checked 0 <= valid_after < valid_before.
    cert.extend_from_slice(&(spec.valid_after.0 as u64).to_be_bytes());
    cert.extend_from_slice(&(spec.valid_before.0 as u64).to_be_bytes());
    put_string(&mut cert, &critical);
    put_string(&mut cert, &extensions);
    put_string(&mut cert, b""); // reserved
    put_string(&mut cert, &ca_blob(&ca.public()));

    let mut signature = Vec::with_capacity(83);
    put_string(&mut signature, KeyType::Ed25519.name().as_bytes());
    put_string(&mut signature, &ca.sign(&cert));
    put_string(&mut cert, &signature);
    Ok(format!("{} {} {}", key.key_type.cert_name(), STANDARD.encode(cert), spec.key_id))
}

/// An OpenSSH KRL revoking the certificates `ca` signed with the given `serials`, for sshd's
/// `RevokedKeys`.
///
/// Serials are sorted and deduplicated; serial 0 is dropped (it means "unnumbered"). With no
/// serials the KRL is valid and revokes nothing. `krl_version` should grow with every KRL
/// published. The KRL is not signed: sshd does not check KRL signatures.
pub fn krl(ca: &crypto::PublicKey, serials: &[u64], krl_version: u64, generated_at: Timestamp, comment: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(KRL_MAGIC);
    out.extend_from_slice(&KRL_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&krl_version.to_be_bytes());
    out.extend_from_slice(&(generated_at.0.max(0) as u64).to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes()); // flags
    put_string(&mut out, b""); // reserved
    put_string(&mut out, comment.as_bytes());

    let mut serials: Vec<u64> = serials.iter().copied().filter(|&s| s != 0).collect();
    serials.sort_unstable();
    serials.dedup();
    if serials.is_empty() {
        return out;
    }
    let mut list = Vec::with_capacity(serials.len() * 8);
    for s in serials {
        list.extend_from_slice(&s.to_be_bytes());
    }
    let mut section = Vec::new();
    put_string(&mut section, &ca_blob(ca));
    put_string(&mut section, b""); // reserved
    section.push(KRL_SECTION_CERT_SERIAL_LIST);
    put_string(&mut section, &list);
    out.push(KRL_SECTION_CERTIFICATES);
    put_string(&mut out, &section);
    out
}

/// Appends an RFC 4251 `string`: a `uint32` length, then the bytes.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Everything written here is far below 4 GiB: public keys are bounded, spec fields are short.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads RFC 4251 wire types from a key blob.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<&'a [u8]> {
        let truncated = || invalid_key("the key data is truncated; paste the line of your .pub file unchanged");
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(truncated());
        }
        let (s, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, blob: &[u8]) -> String {
        format!("{name} {} test@example", STANDARD.encode(blob))
    }

    fn blob(fields: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for f in fields {
            put_string(&mut b, f);
        }
        b
    }

    fn ed25519_blob() -> Vec<u8> {
        let pk = crypto::SigningKey::from_seed(&[1u8; 32]).unwrap().public().bytes();
        blob(&[b"ssh-ed25519", &pk])
    }

    /// An RSA blob whose modulus has exactly `bits` bits.
    fn rsa_blob(bits: usize) -> Vec<u8> {
        let mut n = vec![0xffu8; bits.div_ceil(8)];
        n[0] = 0xff >> ((8 - bits % 8) % 8);
        n.insert(0, 0); // the top bit is set: mpint needs a leading zero to stay positive
        blob(&[b"ssh-rsa", &[1, 0, 1], &n])
    }

    fn p256_point() -> Vec<u8> {
        let mut q = vec![4u8];
        q.extend_from_slice(&[9u8; 64]);
        q
    }

    fn code(r: Result<PublicKey>) -> &'static str {
        r.unwrap_err().code()
    }

    fn spec() -> CertSpec {
        CertSpec {
            serial: 7,
            key_id: "alice via stint".into(),
            principals: vec!["alice".into()],
            valid_after: Timestamp(1_700_000_000),
            valid_before: Timestamp(1_700_003_600),
            critical_options: vec![],
            extensions: vec!["permit-pty".into()],
        }
    }

    #[test]
    fn parses_ed25519_and_fingerprints_it() {
        let b = ed25519_blob();
        let k = PublicKey::parse(&format!("  {}\n", line("ssh-ed25519", &b))).unwrap();
        assert_eq!(k.key_type(), KeyType::Ed25519);
        assert_eq!(k.blob(), &b[..]);
        assert_eq!(k.comment(), "test@example");
        let fp = k.fingerprint();
        assert_eq!(fp, format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&b))));
        assert_eq!(fp.len(), 7 + 43);
        assert!(!fp.ends_with('='));
        // No comment, and unpadded base64, are fine.
        let bare = PublicKey::parse(&format!("ssh-ed25519 {}", STANDARD_NO_PAD.encode(&b))).unwrap();
        assert_eq!(bare.comment(), "");
        assert_eq!(bare.fingerprint(), fp);
    }

    #[test]
    fn parses_ecdsa_rsa_and_security_keys() {
        let q = p256_point();
        let k = PublicKey::parse(&line("ecdsa-sha2-nistp256", &blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &q]))).unwrap();
        assert_eq!(k.key_type(), KeyType::EcdsaP256);
        let mut q384 = vec![4u8];
        q384.extend_from_slice(&[9u8; 96]);
        assert!(PublicKey::parse(&line("ecdsa-sha2-nistp384", &blob(&[b"ecdsa-sha2-nistp384", b"nistp384", &q384]))).is_ok());
        let mut q521 = vec![4u8];
        q521.extend_from_slice(&[1u8; 132]);
        assert!(PublicKey::parse(&line("ecdsa-sha2-nistp521", &blob(&[b"ecdsa-sha2-nistp521", b"nistp521", &q521]))).is_ok());
        assert_eq!(PublicKey::parse(&line("ssh-rsa", &rsa_blob(2048))).unwrap().key_type(), KeyType::Rsa);
        let pk = crypto::SigningKey::from_seed(&[2u8; 32]).unwrap().public().bytes();
        let sk = PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &blob(&[b"sk-ssh-ed25519@openssh.com", &pk, b"ssh:"]))).unwrap();
        assert_eq!(sk.key_type(), KeyType::SkEd25519);
        let sk = blob(&[b"sk-ecdsa-sha2-nistp256@openssh.com", b"nistp256", &q, b"ssh:"]);
        assert_eq!(PublicKey::parse(&line("sk-ecdsa-sha2-nistp256@openssh.com", &sk)).unwrap().key_type(), KeyType::SkEcdsaP256);
    }

    #[test]
    fn refuses_oversized_input() {
        let long = format!("ssh-ed25519 {} {}", STANDARD.encode(ed25519_blob()), "x".repeat(MAX_LINE_BYTES));
        assert_eq!(code(PublicKey::parse(&long)), "public_key_too_large");
    }

    #[test]
    fn refuses_unsupported_types() {
        assert_eq!(code(PublicKey::parse(&line("ssh-dss", &blob(&[b"ssh-dss", b"p", b"q", b"g", b"y"])))), "unsupported_key_type");
        assert_eq!(code(PublicKey::parse(&line("ssh-foo", &blob(&[b"ssh-foo"])))), "unsupported_key_type");
        let cert = line("ssh-ed25519-cert-v01@openssh.com", &blob(&[b"ssh-ed25519-cert-v01@openssh.com", &[0u8; 32]]));
        let e = PublicKey::parse(&cert).unwrap_err();
        assert_eq!(e.code(), "unsupported_key_type");
        assert!(e.to_string().contains("certificate"), "{e}");
        // authorized_keys options before the type are not a type.
        assert_eq!(code(PublicKey::parse(&format!("no-pty {}", line("ssh-ed25519", &ed25519_blob())))), "unsupported_key_type");
    }

    #[test]
    fn refuses_short_rsa_and_accepts_the_minimum() {
        let e = PublicKey::parse(&line("ssh-rsa", &rsa_blob(2047))).unwrap_err();
        assert_eq!(e.code(), "weak_rsa_key");
        assert!(e.to_string().contains("2047"), "{e}");
        assert_eq!(code(PublicKey::parse(&line("ssh-rsa", &rsa_blob(1024)))), "weak_rsa_key");
        assert!(PublicKey::parse(&line("ssh-rsa", &rsa_blob(2048))).is_ok());
        // Leading zero bytes do not count as bits.
        let mut padded = vec![0u8; 64];
        padded.extend_from_slice(&[0x7f; 200]);
        assert_eq!(code(PublicKey::parse(&line("ssh-rsa", &blob(&[b"ssh-rsa", &[3], &padded])))), "weak_rsa_key");
        // A negative modulus or a zero exponent is malformed.
        assert_eq!(code(PublicKey::parse(&line("ssh-rsa", &blob(&[b"ssh-rsa", &[3], &[0xff; 300]])))), "invalid_public_key");
        assert_eq!(code(PublicKey::parse(&line("ssh-rsa", &blob(&[b"ssh-rsa", &[], &[0x7f; 300]])))), "invalid_public_key");
    }

    #[test]
    fn refuses_mismatched_embedded_type() {
        let e = PublicKey::parse(&line("ssh-rsa", &ed25519_blob())).unwrap_err();
        assert_eq!(e.code(), "invalid_public_key");
        assert!(e.to_string().contains("ssh-ed25519"), "{e}");
        let q = p256_point();
        let wrong_curve = blob(&[b"ecdsa-sha2-nistp384", b"nistp256", &q]);
        assert_eq!(code(PublicKey::parse(&line("ecdsa-sha2-nistp384", &wrong_curve))), "invalid_public_key");
    }

    #[test]
    fn refuses_trailing_garbage_and_truncation() {
        let mut b = ed25519_blob();
        b.push(0);
        let e = PublicKey::parse(&line("ssh-ed25519", &b)).unwrap_err();
        assert_eq!(e.code(), "invalid_public_key");
        assert!(e.to_string().contains("trailing"), "{e}");
        let b = ed25519_blob();
        assert_eq!(code(PublicKey::parse(&line("ssh-ed25519", &b[..b.len() - 1]))), "invalid_public_key");
        assert_eq!(code(PublicKey::parse(&line("ssh-ed25519", &b[..3]))), "invalid_public_key");
        // A security key without its application string is truncated.
        let pk = crypto::SigningKey::from_seed(&[2u8; 32]).unwrap().public().bytes();
        assert_eq!(code(PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &blob(&[b"sk-ssh-ed25519@openssh.com", &pk])))), "invalid_public_key");
        // An ECDSA point of the wrong size.
        let short = blob(&[b"ecdsa-sha2-nistp256", b"nistp256", &[4u8; 33]]);
        assert_eq!(code(PublicKey::parse(&line("ecdsa-sha2-nistp256", &short))), "invalid_public_key");
        // An Ed25519 key of the wrong size.
        assert_eq!(code(PublicKey::parse(&line("ssh-ed25519", &blob(&[b"ssh-ed25519", &[1u8; 31]])))), "invalid_public_key");
    }

    #[test]
    fn refuses_malformed_lines() {
        assert_eq!(code(PublicKey::parse("ssh-ed25519 AAAA!!!! me")), "invalid_public_key");
        assert_eq!(code(PublicKey::parse("ssh-ed25519")), "invalid_public_key");
        assert_eq!(code(PublicKey::parse("   ")), "invalid_public_key");
        let two = format!("{}\n{}", line("ssh-ed25519", &ed25519_blob()), line("ssh-ed25519", &ed25519_blob()));
        assert_eq!(code(PublicKey::parse(&two)), "invalid_public_key");
    }

    #[test]
    fn ca_line_round_trips_through_the_parser() {
        let ca = crypto::SigningKey::from_seed(&[7u8; 32]).unwrap();
        let text = ca_public_key_line(&ca.public(), "stint CA\n");
        assert!(text.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"), "{text}");
        assert!(text.ends_with(" stint CA"), "{text}");
        let parsed = PublicKey::parse(&text).unwrap();
        assert_eq!(parsed.comment(), "stint CA");
        assert_eq!(parsed.fingerprint(), ca_fingerprint(&ca.public()));
        assert!(!ca_public_key_line(&ca.public(), "").ends_with(' '));
    }

    #[test]
    fn certificate_layout_and_signature() {
        let ca = crypto::SigningKey::from_seed(&[7u8; 32]).unwrap();
        let key = PublicKey::parse(&line("ssh-ed25519", &ed25519_blob())).unwrap();
        let mut s = spec();
        s.critical_options = vec![("source-address".into(), "10.0.0.0/8".into()), ("force-command".into(), "/bin/true".into())];
        s.extensions = vec!["permit-pty".into(), "permit-agent-forwarding".into()];
        let text = sign_user_certificate(&ca, &key, &s, [5u8; 32]).unwrap();
        let (name, rest) = split_token(&text);
        let (data, comment) = split_token(rest);
        assert_eq!(name, "ssh-ed25519-cert-v01@openssh.com");
        assert_eq!(comment, "alice via stint");
        let cert = STANDARD.decode(data).unwrap();
        let mut r = Reader(&cert);
        assert_eq!(r.string().unwrap(), name.as_bytes());
        assert_eq!(r.string().unwrap(), &[5u8; 32]);
        assert_eq!(r.string().unwrap(), &key.blob()[4 + 11 + 4..]);
        let take = |r: &mut Reader, n: usize| {
            let (a, b) = r.0.split_at(n);
            r.0 = b;
            a.to_vec()
        };
        assert_eq!(take(&mut r, 8), 7u64.to_be_bytes());
        assert_eq!(take(&mut r, 4), 1u32.to_be_bytes());
        assert_eq!(r.string().unwrap(), b"alice via stint");
        assert_eq!(r.string().unwrap(), blob(&[b"alice"]));
        assert_eq!(take(&mut r, 8), 1_700_000_000u64.to_be_bytes());
        assert_eq!(take(&mut r, 8), 1_700_003_600u64.to_be_bytes());
        let fc = blob(&[b"/bin/true"]);
        let sa = blob(&[b"10.0.0.0/8"]);
        assert_eq!(r.string().unwrap(), blob(&[b"force-command", &fc, b"source-address", &sa]));
        assert_eq!(r.string().unwrap(), blob(&[b"permit-agent-forwarding", b"", b"permit-pty", b""]));
        assert_eq!(r.string().unwrap(), b"");
        assert_eq!(r.string().unwrap(), ca_blob(&ca.public()));
        let signed_len = cert.len() - r.0.len();
        let mut sig = Reader(r.string().unwrap());
        assert!(r.0.is_empty());
        assert_eq!(sig.string().unwrap(), b"ssh-ed25519");
        assert!(ca.public().verify(&cert[..signed_len], sig.string().unwrap()));
        assert!(sig.0.is_empty());
    }

    #[test]
    fn certificate_spec_refusals() {
        let ca = crypto::SigningKey::from_seed(&[7u8; 32]).unwrap();
        let key = PublicKey::parse(&line("ssh-ed25519", &ed25519_blob())).unwrap();
        let refused = |f: &dyn Fn(&mut CertSpec)| {
            let mut s = spec();
            f(&mut s);
            sign_user_certificate(&ca, &key, &s, [0; 32]).unwrap_err().code()
        };
        assert!(sign_user_certificate(&ca, &key, &spec(), [0; 32]).is_ok());
        assert_eq!(refused(&|s| s.principals.clear()), "missing_principals");
        assert_eq!(refused(&|s| s.principals = vec!["".into()]), "invalid_principal");
        assert_eq!(refused(&|s| s.principals = vec!["a,b".into()]), "invalid_principal");
        assert_eq!(refused(&|s| s.principals = vec!["a b".into()]), "invalid_principal");
        assert_eq!(refused(&|s| s.principals = vec!["a".into(), "a".into()]), "invalid_principal");
        assert_eq!(refused(&|s| s.serial = 0), "invalid_serial");
        assert_eq!(refused(&|s| s.key_id = String::new()), "invalid_key_id");
        assert_eq!(refused(&|s| s.key_id = "a\nb".into()), "invalid_key_id");
        assert_eq!(refused(&|s| s.valid_before = s.valid_after), "invalid_validity");
        assert_eq!(refused(&|s| s.valid_after = Timestamp(-1)), "invalid_validity");
        assert_eq!(refused(&|s| s.extensions = vec!["permit-everything".into()]), "unsupported_extension");
        assert_eq!(refused(&|s| s.extensions = vec!["permit-pty".into(), "permit-pty".into()]), "invalid_extension");
        let opt = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert_eq!(refused(&|s| s.critical_options = opt("verify-required", "")), "unsupported_critical_option");
        assert_eq!(refused(&|s| s.critical_options = opt("force-command", "")), "invalid_critical_option");
        let twice = vec![("force-command".to_owned(), "a".to_owned()), ("force-command".to_owned(), "b".to_owned())];
        assert_eq!(refused(&|s| s.critical_options = twice.clone()), "invalid_critical_option");
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/8, 1.2.3.4", "*", "host.example", "::1/129", "10.0.0.0/8,"] {
            assert_eq!(refused(&|s| s.critical_options = opt("source-address", bad)), "invalid_source_address", "{bad}");
        }
        for good in ["10.0.0.0/8", "192.0.2.7", "10.0.0.0/8,2001:db8::/32,::1", "0.0.0.0/0", "192.0.2.7/32"] {
            let mut s = spec();
            s.critical_options = opt("source-address", good);
            assert!(s.validate().is_ok(), "{good}");
        }
    }

    #[test]
    fn krl_layout() {
        let ca = crypto::SigningKey::from_seed(&[7u8; 32]).unwrap().public();
        let k = krl(&ca, &[9, 3, 0, 9], 4, Timestamp(1_700_000_000), "hi");
        let mut head = Vec::new();
        head.extend_from_slice(b"SSHKRL\n\0");
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(&4u64.to_be_bytes());
        head.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        head.extend_from_slice(&0u64.to_be_bytes());
        put_string(&mut head, b"");
        put_string(&mut head, b"hi");
        assert_eq!(&k[..head.len()], &head[..]);
        assert_eq!(k[head.len()], 1);
        let mut r = Reader(&k[head.len() + 1..]);
        let mut section = Reader(r.string().unwrap());
        assert!(r.0.is_empty());
        assert_eq!(section.string().unwrap(), ca_blob(&ca));
        assert_eq!(section.string().unwrap(), b"");
        assert_eq!(section.0[0], 0x20);
        section.0 = &section.0[1..];
        let list = section.string().unwrap();
        assert_eq!(list, [3u64.to_be_bytes(), 9u64.to_be_bytes()].concat());
        assert!(section.0.is_empty());

        assert_eq!(krl(&ca, &[], 4, Timestamp(1_700_000_000), "hi"), head);
        assert_eq!(krl(&ca, &[0], 4, Timestamp(1_700_000_000), "hi"), head);
    }
}
