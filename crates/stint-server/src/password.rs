//! Argon2 on a few dedicated threads, each reusing its own 19 MiB of memory.
//!
//! Password work is deliberately slow (tens of milliseconds) and memory-hard, so it runs
//! off the async workers, at most one job per core at a time, with a bounded queue: a
//! flood of logins waits its turn instead of exhausting memory.

use std::sync::{Arc, Mutex};

use stint_core::broker::{self, PasswordWork};
use stint_core::error::{Error, Result};
use stint_core::password::{NewPassword, Worker};
use stint_core::secret::SecretString;
use tokio::sync::{mpsc, oneshot};

enum Job {
    Hash(NewPassword, oneshot::Sender<Result<String>>),
    Verify(SecretString, Option<String>, oneshot::Sender<bool>),
}

pub struct PasswordPool {
    jobs: mpsc::Sender<Job>,
}

/// Jobs waiting for a worker before callers are made to wait for queue space.
const QUEUE: usize = 256;

impl PasswordPool {
    /// Starts one worker per available core.
    pub fn start() -> Result<PasswordPool> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy = Arc::new(broker::dummy_hash(&mut rand_core::OsRng)?);
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let (rx, dummy) = (rx.clone(), dummy.clone());
            std::thread::Builder::new()
                .name(format!("stint-argon2-{i}"))
                .spawn(move || work(&rx, &dummy))
                .map_err(|e| Error::Internal(format!("cannot start password worker: {e}")))?;
        }
        Ok(PasswordPool { jobs: tx })
    }
}

fn work(rx: &Mutex<mpsc::Receiver<Job>>, dummy: &str) {
    let mut worker = Worker::default();
    loop {
        // Hold the lock only while waiting for the next job; the queue closes when the pool drops.
        let job = match rx.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        };
        match job {
            Some(Job::Hash(p, reply)) => {
                let _ = reply.send(worker.hash(&p, &mut rand_core::OsRng));
            }
            Some(Job::Verify(p, phc, reply)) => {
                let _ = reply.send(worker.verify(&p, phc.as_deref(), dummy));
            }
            None => return,
        }
    }
}

fn gone() -> Error {
    Error::Internal("password workers stopped".into())
}

#[async_trait::async_trait]
impl PasswordWork for PasswordPool {
    async fn hash(&self, password: NewPassword) -> Result<String> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Hash(password, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    async fn verify(&self, password: SecretString, phc: Option<String>) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Verify(password, phc, tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}
