//! One module per command family.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod server;
