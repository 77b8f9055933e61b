//! Text for people, JSON for scripts.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl Output {
    /// Prints `value` as JSON, or calls `text` for people.
    pub fn print<T: Serialize>(self, value: &T, text: impl FnOnce(&T)) -> anyhow::Result<()> {
        match self {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Text => text(value),
        }
        Ok(())
    }
}
