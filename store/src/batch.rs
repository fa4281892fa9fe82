//! Inputs read whole go to the database together: one transaction for many inputs.
//!
//! `import` hands over its small files in groups ([`write_together`]), and `import -` its one
//! message alone; sources that store one input at a time (`serve`, the IMAP pollers) go
//! through a [`Batcher`], whose writers take whatever inputs are waiting when they are free.
//! Under load many messages share a transaction, and with it the round trips and the flush to
//! disk that each would otherwise pay alone; when the load is light an input is written at
//! once, as before. Every input still gets its own outcome, and a batch that the database
//! refuses for a reason of the data is written again one input at a time, so that the error
//! belongs to its own input.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::StoreError;
use crate::memory::{self, Prepared};
use crate::outcome::InputResult;
use crate::{Store, single};

/// Most inputs written in one transaction.
pub(crate) const MAX_BATCH: usize = 32;

/// Writes inputs read whole: together in one transaction, or one by one when that fails for a
/// reason of the data. Inputs with the same bytes go in separate transactions (the second is a
/// duplicate of the first). One result per input, in order.
pub(crate) async fn write_together(store: &Store, inputs: Vec<Prepared>) -> Vec<Result<InputResult, StoreError>> {
    let mut results: Vec<Option<Result<InputResult, StoreError>>> = Vec::new();
    results.resize_with(inputs.len(), || None);
    let mut digests = HashSet::new();
    let (mut together, mut alone): (Vec<_>, Vec<_>) = inputs
        .into_iter()
        .enumerate()
        .partition(|(_, prepared)| prepared.digest().is_none_or(|digest| digests.insert(digest)));
    if together.len() > 1 {
        let refs: Vec<&Prepared> = together.iter().map(|(_, prepared)| prepared).collect();
        match write(store, &refs).await {
            Ok(written) => {
                for ((position, _), result) in together.drain(..).zip(written) {
                    results[position] = Some(Ok(result));
                }
            }
            Err(err) if err.is_transient() => {
                for (position, _) in together.drain(..) {
                    results[position] = Some(Err(err.shared()));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, inputs = together.len(), "batch not stored; storing its inputs one by one");
            }
        }
    }
    together.append(&mut alone);
    for (position, prepared) in together {
        let written = write(store, &[&prepared]).await.and_then(single);
        let result = store.refused_if_permanent(written, &prepared.target, &prepared.envelope, &prepared.limits).await;
        results[position] = Some(result);
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(StoreError::Task("input not handled".into()))))
        .collect()
}

/// Writes inputs read whole, in one transaction.
async fn write(store: &Store, inputs: &[&Prepared]) -> Result<Vec<InputResult>, StoreError> {
    store.in_transaction(async |tx| memory::write(store, tx, inputs).await).await
}

/// One input waiting for a writer, and where its result goes.
struct Job {
    prepared: Box<Prepared>,
    done: oneshot::Sender<Result<InputResult, StoreError>>,
}

/// Writers that take the inputs waiting and write them together.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts `writers` writers for `store` (each holds a connection while it writes).
    pub fn start(store: &Store, writers: usize) -> Batcher {
        let (jobs, waiting) = mpsc::channel::<Job>(writers * MAX_BATCH);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..writers.max(1) {
            let (store, waiting) = (store.downgrade(), waiting.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                loop {
                    // One writer at a time takes what is waiting; the others write meanwhile.
                    if waiting.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
                        return;
                    }
                    let Some(store) = store.upgrade() else { return };
                    let (inputs, replies): (Vec<_>, Vec<_>) =
                        batch.drain(..).map(|job| (*job.prepared, job.done)).unzip();
                    for (reply, result) in replies.into_iter().zip(write_together(&store, inputs).await) {
                        // A caller that gave up (a client that went away) no longer listens.
                        let _ = reply.send(result);
                    }
                }
            });
        }
        Batcher { jobs }
    }

    /// Writes one input with whatever else is waiting; returns once it is committed.
    pub async fn write(&self, prepared: Box<Prepared>) -> Result<InputResult, StoreError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { prepared, done })
            .await
            .map_err(|_| StoreError::Task("the store's writers have stopped".into()))?;
        result.await.map_err(|_| StoreError::Task("the store's writer stopped".into()))?
    }
}
