//! Untrusted request bodies and the domain parsers behind them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stint_api::{AddUserRequest, AssumeRequest, BootstrapRequest, EnrollRequest, LoginRequest};
use stint_core::ids::{GroupName, RoleName, SessionId, Username};
use stint_core::Ttl;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<EnrollRequest>(data);
    let _ = serde_json::from_slice::<BootstrapRequest>(data);
    let _ = serde_json::from_slice::<AddUserRequest>(data);
    if let Ok(a) = serde_json::from_slice::<AssumeRequest>(data) {
        let _ = RoleName::parse(&a.role);
        if let Some(t) = a.ttl {
            if let Ok(t) = t.parse::<Ttl>() {
                assert!(t.as_secs() > 0 && t <= Ttl::MAX);
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Username::parse(s);
        let _ = GroupName::parse(s);
        let _ = SessionId::parse(s);
        let _ = s.parse::<Ttl>();
    }
});
