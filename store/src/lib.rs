//! dmarcpipe-store: the PostgreSQL side of dmarcpipe.
//!
//! # Layout
//! - [`Store`]: the connection pool, migrations, and [`Store::ingest`], the path of one input
//!   from bytes to committed rows (in `pipeline`).
//! - `inputs`: provenance rows and kept bytes of rejected inputs.
//! - `aggregate`: report rows (deduplicated by natural key) and COPY of records.
//! - [`rollup`]: the incrementally maintained daily rollup and its queries.
//! - `copy`: the COPY text-format encoder.
//!
//! The schema lives in `../migrations`, embedded here and applied by [`Store::connect`].

mod aggregate;
mod copy;
mod error;
mod inputs;
mod pipeline;
pub mod rollup;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use error::StoreError;
pub use inputs::Outcome;
pub use pipeline::InputResult;

use inputs::Provenance;
use pipeline::Ingest;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
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
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2))
            .acquire_timeout(Duration::from_secs(15))
            .connect(url)
            .await?;
        let store = Store::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps an existing pool (tests); does not migrate.
    pub fn from_pool(pool: PgPool) -> Store {
        Store { inner: Arc::new(Inner { pool, partitions: Mutex::new(HashSet::new()) }) }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Applies pending migrations (idempotent, safe to run concurrently).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool()).await?;
        Ok(())
    }

    fn partition_known(&self, month: i32) -> bool {
        self.inner.partitions.lock().is_ok_and(|known| known.contains(&month))
    }

    fn remember_partition(&self, month: i32) {
        if let Ok(mut known) = self.inner.partitions.lock() {
            known.insert(month);
        }
    }

    /// Stores one input: its reports, its provenance, exactly one outcome. Returns only once
    /// everything is committed; an error means nothing was (and the source must retry,
    /// see [`StoreError::is_transient`]).
    pub async fn ingest(&self, envelope: Envelope, limits: &Limits) -> Result<InputResult, StoreError> {
        let store = self.clone();
        let limits = limits.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let fingerprint = envelope.fingerprint()?;
            let provenance = Provenance {
                channel: envelope.origin.channel(),
                origin: envelope.origin.to_string(),
                fingerprint,
                received_at: envelope.received_at,
            };
            Ingest::run(&store, &handle, &envelope, &limits, provenance)
        })
        .await
        .map_err(|err| StoreError::Task(err.to_string()))?
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

    /// Runs a rejected input again from its kept bytes and updates its row. Returns `None`
    /// when the input is no longer rejected, has no kept bytes, or another process is on it.
    pub async fn reprocess(&self, input: i64, limits: &Limits) -> Result<Option<InputResult>, StoreError> {
        let store = self.clone();
        let limits = limits.clone();
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
            let Some((payload, _sealed)) = claimed else {
                handle.block_on(sqlx::query("ROLLBACK").execute(&mut *conn))?;
                return Ok(None);
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
