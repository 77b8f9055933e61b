//! RFC 6238 time-based one-time passwords (HMAC-SHA1, 6 digits, 30 s steps), RFC 4226 truncation.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::secret::SecretBytes;
use crate::time::Timestamp;

pub const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Steps accepted either side of now, for clock drift between phone and server.
const WINDOW: i64 = 1;

/// A fresh 160-bit secret (RFC 4226 §4 recommends 160 bits).
pub fn generate_secret(rng: &mut dyn rand_core::CryptoRngCore) -> SecretBytes {
    let mut b = vec![0u8; 20];
    rng.fill_bytes(&mut b);
    SecretBytes::new(b)
}

/// Left as they are in the URI's label and issuer: RFC 3986's unreserved characters (§2.3).
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The `otpauth://` URI authenticator apps scan (Key Uri Format).
pub fn otpauth_uri(secret: &SecretBytes, issuer: &str, account: &str) -> String {
    let b32 = data_encoding::BASE32_NOPAD.encode(secret.expose());
    let esc = |s: &str| percent_encoding::utf8_percent_encode(s, URI_COMPONENT).to_string();
    format!("otpauth://totp/{}:{}?secret={b32}&issuer={}&algorithm=SHA1&digits=6&period=30", esc(issuer), esc(account), esc(issuer))
}

/// The code for a given time step.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:0width$}", bin % 10u32.pow(DIGITS), width = DIGITS as usize)
}

pub fn step_of(now: Timestamp) -> i64 {
    now.0.div_euclid(STEP_SECS)
}

/// The code an authenticator shows at `now`.
pub fn code_at(secret: &[u8], now: Timestamp) -> String {
    code_at_step(secret, step_of(now))
}

/// Checks `code` within the drift window and returns the step it matched. Each candidate
/// is compared in constant time and all are tried, so timing does not reveal which matched.
/// The caller must refuse a step at or below the last one used (replay, RFC 6238 §5.2).
pub fn verify(secret: &[u8], code: &str, now: Timestamp) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = step_of(now);
    let mut found = None;
    for step in base - WINDOW..=base + WINDOW {
        if bool::from(code_at_step(secret, step).as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 key, truncated to 6 digits.
    #[test]
    fn rfc6238_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in
            [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924"), (2000000000, "279037"), (20000000000, "353130")]
        {
            assert_eq!(code_at(key, Timestamp(t)), want, "t={t}");
        }
    }

    #[test]
    fn window_and_format() {
        let key = b"12345678901234567890";
        let now = Timestamp(1111111109);
        let code = code_at(key, now);
        assert_eq!(verify(key, &code, now), Some(step_of(now)));
        assert_eq!(verify(key, &code, Timestamp(now.0 + 30)), Some(step_of(now)));
        assert_eq!(verify(key, &code, Timestamp(now.0 + 90)), None);
        assert_eq!(verify(key, "12345", now), None);
        assert_eq!(verify(key, "abcdef", now), None);
    }

    #[test]
    fn otpauth_uri_shape() {
        let s = SecretBytes::new(b"12345678901234567890".to_vec());
        let uri = otpauth_uri(&s, "stint", "alice");
        assert!(uri.starts_with("otpauth://totp/stint:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=stint"), "{uri}");
        let uri = otpauth_uri(&s, "ACME Co", "al ice@x.io+1/é&=~");
        assert!(uri.starts_with("otpauth://totp/ACME%20Co:al%20ice%40x.io%2B1%2F%C3%A9%26%3D~?secret="), "{uri}");
        assert!(uri.contains("&issuer=ACME%20Co&"), "{uri}");
    }
}
