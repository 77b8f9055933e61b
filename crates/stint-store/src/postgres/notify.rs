//! Word between replicas through PostgreSQL `LISTEN`/`NOTIFY`: a change that makes something
//! stale in the replicas' memory ([`Stale`]) announces it inside its own transaction, so the
//! notice is delivered if and only if the change commits; each replica listens on a
//! connection of its own and reconnects by itself.
//!
//! Notices are a fast path, not the guarantee: one sent while a replica was not listening is
//! lost, so a replica reads everything again whenever it (re)connects ([`Stale::Everything`])
//! and the server re-reads periodically as well (`docs/replicas.md`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stint_core::error::Result;
use stint_core::store::{Invalidations, Stale};
use stint_pgtls::Target;
use tokio_postgres::AsyncMessage;

use super::pool::Db;
use crate::error::store;

/// One channel per database; the payload names the schema, since several stint deployments
/// (or tests) may share a database, one schema each.
pub(super) const CHANNEL: &str = "stint_changes";

/// Waits between attempts to reach an unreachable server, doubling up to the longest.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// Announces `stale` to every listening replica when the transaction on `db` commits.
pub(super) async fn announce(db: &mut Db<'_>, schema: &str, stale: &BTreeSet<Stale>) -> Result<()> {
    for s in stale {
        let payload = format!("{schema}:{}", s.as_str());
        db.query("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    }
    Ok(())
}

/// The notices received and not yet taken, merged.
#[derive(Default)]
struct Inbox {
    pending: Mutex<BTreeSet<Stale>>,
    wake: tokio::sync::Notify,
}

impl Inbox {
    fn push(&self, s: Stale) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(s);
        }
        self.wake.notify_one();
    }

    /// The next notice: everything at once if word may have been lost, else one kind.
    fn take(&self) -> Option<Stale> {
        let mut p = self.pending.lock().ok()?;
        if p.contains(&Stale::Everything) {
            p.clear();
            return Some(Stale::Everything);
        }
        p.pop_first()
    }
}

/// A replica's listener: a task holding its own connection, and the notices it received.
pub(super) struct Listener {
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Starts listening for the replicas of `schema` (`""`: the default schema). Must be
    /// called within a Tokio runtime.
    pub(super) fn start(runtime: &tokio::runtime::Handle, target: Target, schema: String) -> Listener {
        let inbox = Arc::new(Inbox::default());
        let task = runtime.spawn(follow(target, schema, inbox.clone()));
        Listener { inbox, task }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl Invalidations for Listener {
    async fn next(&mut self) -> Stale {
        loop {
            if let Some(s) = self.inbox.take() {
                return s;
            }
            // A notice pushed between `take` and here leaves a permit: this returns at once.
            self.inbox.wake.notified().await;
        }
    }
}

/// Listens, and after a lost connection listens again, for as long as the listener lives.
async fn follow(target: Target, schema: String, inbox: Arc<Inbox>) {
    let mut wait = RETRY_FIRST;
    loop {
        match listen(&target, &schema, &inbox).await {
            Ok(()) => {
                tracing::warn!("the change listener's connection to PostgreSQL closed; reconnecting");
                wait = RETRY_FIRST;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "the change listener cannot reach PostgreSQL; the periodic re-read stands in");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_LONGEST);
            }
        }
    }
}

/// One connection's life: `LISTEN`, then hand every notice for `schema` to the inbox until
/// the connection ends.
async fn listen(target: &Target, schema: &str, inbox: &Inbox) -> Result<()> {
    let (client, mut connection) = target.connect().await.map_err(store)?;
    // The connection must be polled for the LISTEN to complete, and its notices arrive the
    // same way: one future drives it while the other subscribes, then waits.
    let drive = async {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message.map_err(store)? {
                AsyncMessage::Notification(n) if n.channel() == CHANNEL => {
                    if let Some(s) = for_schema(n.payload(), schema) {
                        inbox.push(s);
                    }
                }
                _ => {}
            }
        }
        Ok::<(), stint_core::Error>(())
    };
    let subscribe = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(store)?;
        // Whatever committed before this point was not heard: read everything again.
        inbox.push(Stale::Everything);
        tracing::info!("listening for changes committed by other replicas");
        std::future::pending::<Result<()>>().await
    };
    tokio::select! {
        r = drive => r,
        r = subscribe => r,
    }
}

/// The notice in `payload` if it is for `schema`'s replicas.
fn for_schema(payload: &str, schema: &str) -> Option<Stale> {
    let (of, what) = payload.split_once(':')?;
    (of == schema).then(|| Stale::parse(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_for_other_schemas_are_ignored() {
        assert_eq!(for_schema("a:keys", "a"), Some(Stale::Keys));
        assert_eq!(for_schema(":keys", ""), Some(Stale::Keys));
        assert_eq!(for_schema("b:keys", "a"), None);
        assert_eq!(for_schema("keys", ""), None);
        // A newer replica's notice this one does not know: everything is read again.
        assert_eq!(for_schema("a:policies", "a"), Some(Stale::Everything));
    }

    #[test]
    fn the_inbox_merges_and_everything_wins() {
        let inbox = Inbox::default();
        assert_eq!(inbox.take(), None);
        inbox.push(Stale::Keys);
        inbox.push(Stale::Keys);
        assert_eq!(inbox.take(), Some(Stale::Keys));
        assert_eq!(inbox.take(), None);
        inbox.push(Stale::Keys);
        inbox.push(Stale::Everything);
        assert_eq!(inbox.take(), Some(Stale::Everything));
        assert_eq!(inbox.take(), None);
    }
}
