//! dmarcpipe-store: the PostgreSQL side of dmarcpipe.
//!
//! # Layout
//! - [`Store`]: the connection pool, migrations, and [`Store::ingest`] /
//!   [`Store::ingest_many`], the path of inputs from bytes to committed rows.
//! - `route`: which way an input goes (read whole, or streamed), and the thresholds.
//! - `memory` and `stream`: the two routes; `ledger`: what storing each report came to, for
//!   both; `outcome`: the one rule that gives an input its outcome.
//! - `write`: the statements, run in the input's transaction; `rows`: every row written,
//!   declared once (COPY and composite encodings); `copy`: the COPY text encoder.
//! - `inputs`, `aggregate`, [`forensic`]: rows from provenance and from the parsed reports;
//!   [`forensic`] also has the queries of `dmarcpipe forensic`.
//! - [`seal`]: age encryption of everything that holds mail content.
//! - [`rollup`]: the rollup sums and their queries; [`compact`]: merging the appended rollup
//!   rows into one per key.
//! - [`tlsrpt`]: SMTP TLS report rows and the queries of `dmarcpipe report --tls`.
//! - [`enrich`]: the enrichment queue of the source addresses (`source_ips`): claiming due
//!   addresses, recording what was found, backfill and refresh.
//!
//! The schema lives in `../migrations`, embedded here, checked by [`Store::connect`] in one
//! round trip and applied when the database lacks some of it (`schema`). `connection` makes the
//! connect options (plain text to a server on this machine unless TLS is asked for).

mod aggregate;
mod batch;
pub mod compact;
mod connection;
mod copy;
pub mod digest;
pub mod enrich;
mod error;
pub mod forensic;
mod inputs;
mod ledger;
mod memory;
mod outcome;
pub mod report;
pub mod rollup;
mod route;
mod rows;
mod schema;
pub mod seal;
mod stream;
pub mod tlsrpt;
mod write;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::budget::MemoryBudget;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use error::StoreError;
pub use outcome::{InputResult, Outcome};

use batch::Batcher;
use route::Route;
use seal::{Opener, Sealer};
use write::{Tx, timely};

/// How long the database may take to answer one statement unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an input waits for a pooled connection before its source is told to retry.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle for longer than this is pinged before use ([`Durability::EachInput`]).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

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
    /// How long the database may take to answer one statement (see [`Store::with_timeout`]).
    patience: Duration,
    /// Seals forensic samples and kept inputs; without it, they are not kept at all.
    sealer: Option<Arc<Sealer>>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    /// One connection of its own for creating record partitions, which inputs ask for in the
    /// middle of their transactions: taken from `pool`, it could wait for a connection that
    /// every other input holds while waiting the same way.
    partition_pool: PgPool,
    /// Months (year * 12 + month0) whose record partition is known to exist.
    partitions: Mutex<HashSet<i32>>,
    /// The writers of [`Store::ingest`], started by its first call.
    batcher: OnceLock<Batcher>,
    /// The memory budget every input reserves from (see `route`).
    budget: OnceLock<MemoryBudget>,
}

/// A [`Store`] that does not keep it alive (for its own writers).
#[derive(Debug, Clone)]
pub(crate) struct WeakStore {
    inner: Weak<Inner>,
    sealer: Option<Arc<Sealer>>,
    patience: Duration,
}

impl WeakStore {
    pub fn upgrade(&self) -> Option<Store> {
        self.inner.upgrade().map(|inner| Store { inner, sealer: self.sealer.clone(), patience: self.patience })
    }
}

impl Store {
    /// Connects, checks the schema and applies pending migrations. `connections` should exceed
    /// the number of inputs processed at once by one or two (partition creation uses its own
    /// connection).
    pub async fn connect(url: &str, connections: u32) -> Result<Store, StoreError> {
        Store::connect_with(url, connections, Durability::EachInput).await
    }

    /// [`Store::connect`] with a choice of when commits reach the disk. Connections are opened
    /// when first needed (none is kept open beyond those in use); the schema check takes the
    /// first and gives it back to the pool for the first input.
    pub async fn connect_with(url: &str, connections: u32, durability: Durability) -> Result<Store, StoreError> {
        let mut options = connection::options(url)?;
        if durability == Durability::EndOfBatch {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2))
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Sources that acknowledge each input (SMTP, IMAP) run for long and see the database
            // restart: a ping before use finds a connection that broke while it sat idle, so that
            // it is not the next message that fails. Only a connection idle for longer than
            // `PING_AFTER_IDLE` is pinged: one given back a moment ago (the schema check's, taken
            // again by the one input of `import -`; a busy server's) was answering then, and the
            // ping would cost a round trip per input. Batch imports are short-lived and never
            // ping: a broken connection fails only inputs that the next run stores.
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if durability == Durability::EachInput && meta.idle_for > PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        let store = Store::from_pool(pool);
        store.check_schema().await?;
        Ok(store)
    }

    /// Checks the schema in one round trip (see `schema`), learning the record partitions
    /// that exist, and runs the migrator only when some migration is not applied yet.
    async fn check_schema(&self) -> Result<(), StoreError> {
        let found = {
            let mut conn = self.pool().acquire().await?;
            timely(self.patience, schema::check(&mut conn)).await?
        };
        if let Ok(mut known) = self.inner.partitions.lock() {
            known.extend(found.partition_months);
        }
        let verdict = match &found.applied {
            Some(applied) => schema::judge(&MIGRATOR, applied)?,
            None => schema::Verdict::Pending,
        };
        if verdict == schema::Verdict::Pending {
            self.migrate().await?;
        }
        Ok(())
    }

    /// Waits until every commit made so far is on disk. With [`Durability::EndOfBatch`], call it
    /// before reporting a batch done: one synchronous commit flushes the log up to it, and with
    /// it every asynchronous commit before.
    pub async fn make_durable(&self) -> Result<(), StoreError> {
        self.in_transaction(async |tx| {
            timely(tx.patience, sqlx::query("SET LOCAL synchronous_commit = on").execute(&mut *tx.conn)).await?;
            timely(tx.patience, sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx.conn)).await?;
            Ok(())
        })
        .await
    }

    /// Wraps an existing pool (tests); does not migrate.
    pub fn from_pool(pool: PgPool) -> Store {
        let partition_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with((*pool.connect_options()).clone());
        Store {
            inner: Arc::new(Inner {
                pool,
                partition_pool,
                partitions: Mutex::new(HashSet::new()),
                batcher: OnceLock::new(),
                budget: OnceLock::new(),
            }),
            sealer: None,
            patience: DEFAULT_TIMEOUT,
        }
    }

    /// Shares `budget` (`[limits] max_memory`) with the inputs stored from now on; without it
    /// they reserve from a budget of the default size. Set it before the first input.
    pub fn with_memory_budget(self, budget: MemoryBudget) -> Store {
        let _ = self.inner.budget.set(budget);
        self
    }

    pub(crate) fn budget(&self) -> &MemoryBudget {
        self.inner.budget.get_or_init(|| MemoryBudget::new(Limits::default().max_memory))
    }

    /// How long the database may take to answer any one statement of an input (default 20
    /// seconds). Past it the database is taken to be away (frozen, or gone without closing the
    /// connection): the input fails with a transient error and its source retries, rather than
    /// waiting for ever.
    pub fn with_timeout(mut self, timeout: Duration) -> Store {
        self.patience = timeout;
        self
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
            let query = sqlx::query("SELECT dmarcpipe_ensure_record_partition($1)").bind(start);
            timely(self.patience, query.execute(&self.inner.partition_pool)).await?;
            if let Ok(mut known) = self.inner.partitions.lock() {
                known.insert(month);
            }
        }
        Ok(())
    }

    /// Stores one input: its reports, its provenance, exactly one outcome. Returns only once
    /// everything is committed; an error means nothing was (and the source must retry,
    /// see [`StoreError::is_transient`]). Inputs read whole are written together with the others
    /// that wait at the same moment (see `batch`).
    pub async fn ingest(&self, envelope: Envelope, limits: &Limits) -> Result<InputResult, StoreError> {
        let (route, _reservation) = Route::plan(self, envelope, limits).await?;
        match route {
            Route::Memory(prepared) => self.batcher().write(prepared).await,
            Route::Stream(streamed) => {
                let (target, envelope) = *streamed;
                self.write_streamed(target, envelope, limits).await
            }
        }
    }

    /// Stores one input as [`Store::ingest`] does, but on the calling task rather than through
    /// the writers that batch inputs arriving together: for a process that stores one input
    /// and exits (`import -`, run by an MTA for each message), which has nothing to batch it
    /// with and would only pay the hand-over to a writer task.
    pub async fn ingest_alone(&self, envelope: Envelope, limits: &Limits) -> Result<InputResult, StoreError> {
        self.ingest_many(vec![envelope], limits)
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Task("input not handled".into())))
    }

    /// Stores several inputs, each as [`Store::ingest`] would, with one result per input in
    /// the order given. Inputs read whole go to the database together, in one transaction (for
    /// `import`, whose files are mostly a few KiB: the database then does its work once per
    /// batch rather than once per input). Should that fail for a reason of the data, they are
    /// stored one by one, so that an error belongs to its own input; when the database is
    /// away, every input gets that error.
    pub async fn ingest_many(&self, envelopes: Vec<Envelope>, limits: &Limits) -> Vec<Result<InputResult, StoreError>> {
        let mut results: Vec<Option<Result<InputResult, StoreError>>> = Vec::new();
        results.resize_with(envelopes.len(), || None);
        // The small inputs reserve their memory together, and give it back before the large
        // ones reserve theirs one at a time: no reservation is ever waited for while another
        // is held.
        let (small, large): (Vec<_>, Vec<_>) = envelopes
            .into_iter()
            .enumerate()
            .partition(|(_, envelope)| envelope.size() <= route::Thresholds::MEMORY_INPUT);
        let mut streamed: Vec<(usize, Option<inputs::Target>, Envelope)> =
            large.into_iter().map(|(position, envelope)| (position, None, envelope)).collect();
        {
            let memory = small.iter().map(|(_, envelope)| route::Thresholds::memory_reservation(envelope.size())).sum();
            let _reservation = self.budget().reserve(memory).await;
            let mut in_memory = Vec::new();
            for (position, envelope) in small {
                match Route::read_small(self, envelope, limits).await {
                    Ok(Ok(prepared)) => in_memory.push((position, *prepared)),
                    Ok(Err((target, envelope))) => streamed.push((position, Some(target), envelope)),
                    Err(err) => results[position] = Some(Err(err)),
                }
            }
            let (positions, inputs): (Vec<usize>, Vec<_>) = in_memory.into_iter().unzip();
            for (position, result) in positions.into_iter().zip(batch::write_together(self, inputs).await) {
                results[position] = Some(result);
            }
        }
        streamed.sort_by_key(|(position, ..)| *position);
        for (position, target, envelope) in streamed {
            results[position] = Some(match target {
                // Read once already: streamed with the reservation of a large input.
                Some(target) => {
                    let _reservation = self.budget().reserve(limits.memory_per_input()).await;
                    self.write_streamed(target, envelope, limits).await
                }
                None => self.ingest(envelope, limits).await,
            });
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(StoreError::Task("input not handled".into()))))
            .collect()
    }

    /// The writers of [`Store::ingest`]: one per core, as the pool allows. More writers would
    /// each take fewer of the inputs waiting: PostgreSQL, not the waiting, is what they share,
    /// and its work per input falls as batches grow (measured with `make bench-smtp`: 2 writers
    /// on 2 cores stored twice as many messages per second as 14).
    fn batcher(&self) -> &Batcher {
        self.inner.batcher.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
            let spare = (self.pool().options().get_max_connections() as usize).saturating_sub(1);
            Batcher::start(self, cores.clamp(1, spare.max(1)))
        })
    }

    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore { inner: Arc::downgrade(&self.inner), sealer: self.sealer.clone(), patience: self.patience }
    }

    /// Writes an input on the streaming route, in a transaction of its own.
    async fn write_streamed(
        &self,
        target: inputs::Target,
        envelope: Envelope,
        limits: &Limits,
    ) -> Result<InputResult, StoreError> {
        let envelope = Arc::new(envelope);
        let written =
            self.in_transaction(async |tx| stream::write(self, tx, &target, envelope.clone(), limits).await).await;
        self.refused_if_permanent(written, &target, &envelope, limits).await
    }

    /// An input whose writing failed for a reason of its data (the database refused a value, a
    /// limit of its own) is recorded as rejected with that reason and its bytes kept: retrying
    /// it would fail the same way for ever. Transient failures are returned as they are.
    pub(crate) async fn refused_if_permanent(
        &self,
        written: Result<InputResult, StoreError>,
        target: &inputs::Target,
        envelope: &Envelope,
        limits: &Limits,
    ) -> Result<InputResult, StoreError> {
        let (Err(err), inputs::Target::New(provenance)) = (&written, target) else {
            return written;
        };
        if err.is_transient() {
            return written;
        }
        tracing::warn!(error = %err, "The database refused the input; it is recorded as rejected.");
        let reason = err.to_string();
        self.in_transaction(async |tx| {
            inputs::record_refused(tx, provenance, envelope, limits, self.sealer(), &reason).await
        })
        .await
    }

    /// Runs `work` in a transaction: committed when it succeeds, rolled back at once when it
    /// fails (so that the rows and locks it took are released before the connection is idle
    /// in the pool again, not when it is next used).
    ///
    /// Every statement gets [`Store::with_timeout`] to answer. A connection whose database did
    /// not answer, or whose rollback failed, is closed rather than returned to the pool: a
    /// statement may still be running on it.
    pub(crate) async fn in_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let patience = self.patience;
        let mut pooled = self.pool().acquire().await?;
        let (result, close) = async {
            let mut transaction = match timely(patience, sqlx::Connection::begin(&mut *pooled)).await {
                Ok(transaction) => transaction,
                Err(err) => return (Err(err), true),
            };
            let done = work(&mut Tx { conn: &mut transaction, patience }).await;
            let ended = match &done {
                Ok(_) => timely(patience, transaction.commit()).await,
                Err(_) => timely(patience, transaction.rollback()).await,
            };
            let close = matches!(done, Err(StoreError::Timeout(_))) || ended.is_err();
            let result = match (done, ended) {
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(err)) => Err(err),
                (Err(err), ended) => {
                    if let Err(rollback) = ended {
                        tracing::debug!(error = %rollback, "rollback failed; the connection is closed");
                    }
                    Err(err)
                }
            };
            (result, close)
        }
        .await;
        if close {
            pooled.close_on_drop();
        }
        result
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
        // Kept bytes may be large: the reservation of a large input.
        let _reservation = self.budget().reserve(limits.memory_per_input()).await;
        self.in_transaction(async |tx| {
            let Some((payload, sealed)) = inputs::take_kept(tx, input).await? else {
                return Ok(None);
            };
            let payload = match (sealed, opener) {
                (false, _) => payload,
                (true, Some(opener)) => opener.open(&payload)?,
                (true, None) => {
                    return Err(seal::SealError::Identity {
                        path: "(none given)".into(),
                        reason: format!("the kept bytes of input {input} are sealed: give an identity (-i FILE)"),
                    }
                    .into());
                }
            };
            let envelope = Envelope::new(Origin::Kept { input }, Payload::Bytes(payload));
            let (store, reading_limits, span) = (self.clone(), limits.clone(), tracing::Span::current());
            let route = tokio::task::spawn_blocking(move || {
                span.in_scope(|| Route::again(&store, input, envelope, &reading_limits))
            })
            .await
            .map_err(|err| StoreError::Task(err.to_string()))??;
            let result = match route {
                Route::Memory(prepared) => memory::write(self, tx, &[&prepared]).await.and_then(single)?,
                Route::Stream(streamed) => {
                    let (target, envelope) = *streamed;
                    stream::write(self, tx, &target, Arc::new(envelope), limits).await?
                }
            };
            Ok(Some(result))
        })
        .await
    }
}

/// The one result of a one-input write.
fn single(mut results: Vec<InputResult>) -> Result<InputResult, StoreError> {
    results.pop().ok_or_else(|| StoreError::Task("no result for an input".into()))
}
