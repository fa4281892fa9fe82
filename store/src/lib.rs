//! dmarcpipe-store: the PostgreSQL side of dmarcpipe.
//!
//! # Layout
//! - [`Store`]: the connection pool, migrations, and [`Store::ingest`], the path of one input
//!   from bytes to committed rows (in `pipeline`).
//! - `inputs`: provenance rows and kept bytes of rejected inputs.
//! - `aggregate`: report rows (deduplicated by natural key) and COPY of records.
//! - [`forensic`]: failure report rows (clear columns) and their sealed samples.
//! - [`seal`]: age encryption of everything that holds mail content.
//! - [`rollup`]: the incrementally maintained daily rollup and its queries.
//! - `copy`: the COPY text-format encoder.
//!
//! The schema lives in `../migrations`, embedded here and applied by [`Store::connect`].

mod aggregate;
mod copy;
mod error;
pub mod forensic;
mod inputs;
mod pipeline;
pub mod rollup;
pub mod seal;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use error::StoreError;
pub use inputs::Outcome;
pub use pipeline::InputResult;

use inputs::Provenance;
use pipeline::{Collector, Findings, Ingest, SMALL_INPUT};
use seal::{Opener, Sealer};

/// Inputs in memory up to this size are parsed on the async task itself.
const INLINE_INPUT: u64 = 64 * 1024;

/// What the blocking part of [`Store::ingest`] hands back.
enum Prepared {
    Done(InputResult),
    Small(Box<(Envelope, Provenance, Findings, Limits)>),
}

/// When commits are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every input's commit waits for the disk: for sources that delete a message once it is
    /// acknowledged (SMTP, IMAP, an MTA pipe).
    EachInput,
    /// Commits return before the disk write (PostgreSQL's `synchronous_commit = off`) and
    /// [`Store::make_durable`] flushes them all at the end: for imports of files, which stay
    /// where they are, so a crash loses nothing that a second run will not store. It saves a
    /// disk flush per input.
    EndOfBatch,
}

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Seals forensic samples and kept inputs; without it, they are not kept at all.
    sealer: Option<Arc<Sealer>>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// Months (year * 12 + month0) whose record partition is known to exist.
    partitions: Mutex<HashSet<i32>>,
}

impl Store {
    /// Connects and applies pending migrations. `connections` should exceed the number of
    /// inputs processed at once by one or two (partition creation uses its own connection).
    pub async fn connect(url: &str, connections: u32) -> Result<Store, StoreError> {
        Store::connect_with(url, connections, Durability::EachInput).await
    }

    /// [`Store::connect`] with a choice of when commits reach the disk.
    pub async fn connect_with(url: &str, connections: u32, durability: Durability) -> Result<Store, StoreError> {
        let mut options: PgConnectOptions = url.parse()?;
        if durability == Durability::EndOfBatch {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2))
            .acquire_timeout(Duration::from_secs(15))
            // Sources that acknowledge each input (SMTP, IMAP, a pipe) run for long and see the
            // database restart: a ping before use finds a connection that broke meanwhile, so
            // that it is not the next message that fails. Batch imports are short-lived; for
            // them the ping would cost a round trip per input, and a broken connection fails
            // only inputs that the next run stores.
            .test_before_acquire(durability == Durability::EachInput)
            .connect_with(options)
            .await?;
        let store = Store::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Waits until every commit made so far is on disk. With [`Durability::EndOfBatch`], call it
    /// before reporting a batch done: one synchronous commit flushes the log up to it, and with
    /// it every asynchronous commit before.
    pub async fn make_durable(&self) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = on").execute(&mut *tx).await?;
        sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Wraps an existing pool (tests); does not migrate.
    pub fn from_pool(pool: PgPool) -> Store {
        Store { inner: Arc::new(Inner { pool, partitions: Mutex::new(HashSet::new()) }), sealer: None }
    }

    /// Seals what holds mail content to these recipients from now on. Without a sealer,
    /// forensic samples and the bytes of rejected inputs are not stored (never in clear).
    pub fn with_sealer(mut self, sealer: Option<Sealer>) -> Store {
        self.sealer = sealer.map(Arc::new);
        self
    }

    pub(crate) fn sealer(&self) -> Option<&Sealer> {
        self.sealer.as_deref()
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Applies pending migrations (idempotent, safe to run concurrently).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool()).await?;
        Ok(())
    }

    /// Makes sure the record partitions for these report start dates exist. Runs on its own
    /// connection, outside any input's transaction (see the migration for why that is safe);
    /// known months are remembered, so this costs nothing after the first report of a month.
    pub(crate) async fn ensure_partitions(
        &self,
        starts: impl IntoIterator<Item = DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut months: Vec<(i32, DateTime<Utc>)> =
            starts.into_iter().map(|start| (start.year() * 12 + start.month0() as i32, start)).collect();
        months.sort_by_key(|(month, _)| *month);
        months.dedup_by_key(|(month, _)| *month);
        for (month, start) in months {
            if self.inner.partitions.lock().is_ok_and(|known| known.contains(&month)) {
                continue;
            }
            sqlx::query("SELECT dmarcpipe_ensure_record_partition($1)").bind(start).execute(self.pool()).await?;
            if let Ok(mut known) = self.inner.partitions.lock() {
                known.insert(month);
            }
        }
        Ok(())
    }

    /// Stores one input: its reports, its provenance, exactly one outcome. Returns only once
    /// everything is committed; an error means nothing was (and the source must retry,
    /// see [`StoreError::is_transient`]).
    pub async fn ingest(&self, envelope: Envelope, limits: &Limits) -> Result<InputResult, StoreError> {
        let prepared = self.prepare_anywhere(envelope, limits).await?;
        self.store_prepared(prepared).await
    }

    /// Stores several inputs, each as [`Store::ingest`] would, with one result per input in
    /// the order given. Small inputs complete in memory go to the database together, in one
    /// statement and one transaction (for `import`, whose files are mostly a few KiB: the
    /// database then starts its statements once per batch rather than once per input). Should
    /// that fail, they are stored one by one, so that an error belongs to its own input.
    pub async fn ingest_many(&self, envelopes: Vec<Envelope>, limits: &Limits) -> Vec<Result<InputResult, StoreError>> {
        let mut prepared = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            prepared.push(self.prepare_anywhere(envelope, limits).await);
        }
        // Inputs with the same bytes must meet in separate statements (the second is a
        // duplicate of the first); rejected inputs keep their bytes and go one by one.
        let mut digests = HashSet::new();
        let mut together = Vec::new();
        let mut alone = Vec::new();
        for (position, item) in prepared.into_iter().enumerate() {
            match item {
                Ok(Prepared::Small(small))
                    if !small.2.needs_transaction()
                        && small.2.row().outcome != Outcome::Rejected
                        && digests.insert(small.1.fingerprint.sha256) =>
                {
                    together.push((position, small));
                }
                other => alone.push((position, other)),
            }
        }
        let mut results: Vec<Option<Result<InputResult, StoreError>>> = Vec::new();
        results.resize_with(together.len() + alone.len(), || None);
        if together.len() > 1 {
            let items: Vec<&(Envelope, Provenance, Findings, Limits)> =
                together.iter().map(|(_, small)| &**small).collect();
            match pipeline::store_small_batch(self, &items).await {
                Ok(stored) => {
                    for ((position, _), result) in together.drain(..).zip(stored) {
                        results[position] = Some(Ok(result));
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, inputs = together.len(), "batch not stored; storing its inputs one by one")
                }
            }
        }
        for (position, small) in together {
            alone.push((position, Ok(Prepared::Small(small))));
        }
        for (position, item) in alone {
            results[position] = Some(match item {
                Ok(prepared) => self.store_prepared(prepared).await,
                Err(err) => Err(err),
            });
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(StoreError::Task("input not handled".into()))))
            .collect()
    }

    /// Reads, hashes and parses an input: small ones on this task, others on a blocking
    /// thread (where large inputs are also written, as they are read).
    async fn prepare_anywhere(&self, envelope: Envelope, limits: &Limits) -> Result<Prepared, StoreError> {
        let inline = matches!(&envelope.payload, Payload::Bytes(bytes) if bytes.len() as u64 <= INLINE_INPUT);
        if inline {
            // A few KiB parse in less time than handing them to another thread takes.
            return self.prepare(envelope, limits.clone(), None);
        }
        let store = self.clone();
        let limits = limits.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || store.prepare(envelope, limits, Some(&handle)))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }

    /// Writes what [`Store::prepare`] found.
    async fn store_prepared(&self, prepared: Prepared) -> Result<InputResult, StoreError> {
        match prepared {
            Prepared::Done(result) => Ok(result),
            Prepared::Small(small) if small.2.needs_transaction() => {
                let (envelope, provenance, findings, limits) = *small;
                let store = self.clone();
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    Ingest::write_findings(&store, &handle, &envelope, &limits, provenance, findings)
                })
                .await
                .map_err(|err| StoreError::Task(err.to_string()))?
            }
            Prepared::Small(small) => {
                let (envelope, provenance, findings, limits) = *small;
                pipeline::store_small(self, &envelope, &limits, provenance, findings).await
            }
        }
    }

    /// The part of [`Store::ingest`] that may block: reads, hashes and parses a small input
    /// (no database), or runs the whole large route (which needs `handle`).
    fn prepare(
        &self,
        envelope: Envelope,
        limits: Limits,
        handle: Option<&tokio::runtime::Handle>,
    ) -> Result<Prepared, StoreError> {
        let envelope = envelope.loaded_if_smaller_than(SMALL_INPUT)?;
        let fingerprint = envelope.fingerprint()?;
        let provenance = Provenance {
            channel: envelope.origin.channel(),
            origin: envelope.origin.to_string(),
            fingerprint,
            received_at: envelope.received_at,
        };
        match handle {
            Some(handle) if fingerprint.size > SMALL_INPUT => {
                Ingest::run(self, handle, &envelope, &limits, provenance).map(Prepared::Done)
            }
            _ => {
                let findings = Collector::collect(&envelope, &limits);
                Ok(Prepared::Small(Box::new((envelope, provenance, findings, limits))))
            }
        }
    }

    /// Rejected inputs whose bytes were kept, oldest first; `only` restricts to these ids.
    pub async fn kept_rejected_inputs(&self, only: &[i64]) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT i.id FROM inputs i JOIN input_payloads p ON p.input = i.id \
             WHERE i.outcome = 'rejected' AND (cardinality($1::bigint[]) = 0 OR i.id = ANY($1)) ORDER BY i.id",
        )
        .bind(only)
        .fetch_all(self.pool())
        .await?)
    }

    /// Whether any of these kept inputs (all when `only` is empty) is sealed, so that
    /// `reprocess` needs an identity.
    pub async fn kept_inputs_sealed(&self, only: &[i64]) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM inputs i JOIN input_payloads p ON p.input = i.id \
             WHERE i.outcome = 'rejected' AND p.sealed AND (cardinality($1::bigint[]) = 0 OR i.id = ANY($1)))",
        )
        .bind(only)
        .fetch_one(self.pool())
        .await?)
    }

    /// Runs a rejected input again from its kept bytes and updates its row. Returns `None`
    /// when the input is no longer rejected, has no kept bytes, or another process is on it.
    /// Sealed bytes are opened with `opener`.
    pub async fn reprocess(
        &self,
        input: i64,
        limits: &Limits,
        opener: Option<&Arc<Opener>>,
    ) -> Result<Option<InputResult>, StoreError> {
        let store = self.clone();
        let limits = limits.clone();
        let opener = opener.cloned();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut conn = handle.block_on(store.pool().acquire())?;
            handle.block_on(sqlx::query("BEGIN").execute(&mut *conn))?;
            let claimed: Option<(Vec<u8>, bool)> = handle.block_on(
                sqlx::query_as(
                    "SELECT p.payload, p.sealed FROM inputs i JOIN input_payloads p ON p.input = i.id \
                     WHERE i.id = $1 AND i.outcome = 'rejected' FOR UPDATE OF i SKIP LOCKED",
                )
                .bind(input)
                .fetch_optional(&mut *conn),
            )?;
            let Some((payload, sealed)) = claimed else {
                handle.block_on(sqlx::query("ROLLBACK").execute(&mut *conn))?;
                return Ok(None);
            };
            let payload = match (sealed, &opener) {
                (false, _) => payload,
                (true, Some(opener)) => match opener.open(&payload) {
                    Ok(payload) => payload,
                    Err(err) => {
                        handle.block_on(sqlx::query("ROLLBACK").execute(&mut *conn))?;
                        return Err(err.into());
                    }
                },
                (true, None) => {
                    handle.block_on(sqlx::query("ROLLBACK").execute(&mut *conn))?;
                    return Err(seal::SealError::Identity {
                        path: "(none given)".into(),
                        reason: format!("the kept bytes of input {input} are sealed: give an identity (-i FILE)"),
                    }
                    .into());
                }
            };
            let envelope = Envelope::new(Origin::Kept { input }, Payload::Bytes(payload));
            Ingest::rerun(&store, &handle, &envelope, &limits, input, conn).map(Some)
        })
        .await
        .map_err(|err| StoreError::Task(err.to_string()))?
    }

    /// Adds new reports to the rollup table; returns how many.
    pub async fn refresh_rollups(&self) -> Result<u64, StoreError> {
        rollup::refresh(self.pool()).await
    }
}
