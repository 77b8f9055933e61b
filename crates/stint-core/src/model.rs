//! The records stint keeps: users, sessions, one-time codes.

use crate::ids::{GroupName, SessionId, UserId, Username};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub name: Username,
    pub groups: Vec<GroupName>,
    pub disabled: bool,
    /// argon2id PHC string; `None` until the user enrolls.
    pub password_hash: Option<String>,
    /// TOTP secret sealed with the master key; `None` until the user enrolls.
    pub totp_sealed: Option<String>,
    /// The last TOTP time step accepted, so no code is accepted twice.
    pub totp_last_step: i64,
    pub created_at: Timestamp,
}

impl User {
    pub fn in_group(&self, g: &GroupName) -> bool {
        self.groups.iter().any(|x| x == g)
    }
    pub fn enrolled(&self) -> bool {
        self.password_hash.is_some() && self.totp_sealed.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: SessionId,
    /// The public lookup half of the session bearer.
    pub lookup: String,
    /// SHA-256 of the secret half of the session bearer.
    pub secret_hash: Vec<u8>,
    pub user_id: UserId,
    pub created_at: Timestamp,
    /// Absolute: never extended by activity.
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Session {
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What a one-time code (enrollment or bootstrap) is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePurpose {
    /// Sets the password and TOTP of the user it names.
    Enrollment,
    /// Creates the first administrator.
    Bootstrap,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Enrollment => "enrollment",
            CodePurpose::Bootstrap => "bootstrap",
        }
    }
    pub fn parse(s: &str) -> Option<CodePurpose> {
        match s {
            "enrollment" => Some(CodePurpose::Enrollment),
            "bootstrap" => Some(CodePurpose::Bootstrap),
            _ => None,
        }
    }
}

/// A single-use code, stored as lookup + hash like every bearer secret.
#[derive(Clone, Debug)]
pub struct OneTimeCode {
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub purpose: CodePurpose,
    /// The user an enrollment code enrolls; `None` for bootstrap.
    pub user_id: Option<UserId>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}
