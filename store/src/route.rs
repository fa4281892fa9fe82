//! Which route an input takes into the database, decided once, here, by the thresholds below.
//!
//! - **Memory** (`memory`): the input is read whole ([`inspect_up_to`]) and written with the
//!   other inputs of its batch in one transaction. Nearly every report mail and file is a few
//!   KiB with a handful of records.
//! - **Stream** (`stream`): the input is read on a blocking thread while it is written in a
//!   transaction of its own, large reports through `COPY`. Inputs larger than
//!   [`Thresholds::MEMORY_INPUT`], and those whose reports turn out to hold more than
//!   [`Thresholds::MEMORY_RECORDS`] records (a small gzip can hold a large report).

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Payload};
use dmarcpipe_ingest::inspect::{Outgrown, inspect_up_to};

use crate::Store;
use crate::error::StoreError;
use crate::inputs::{Provenance, Target};
use crate::memory::Prepared;

/// The thresholds of the routes.
#[derive(Debug)]
pub(crate) struct Thresholds;

impl Thresholds {
    /// Inputs up to this size are parsed on the async task itself: a few KiB parse in less time
    /// than handing them to another thread takes.
    pub const INLINE_INPUT: u64 = 64 * 1024;
    /// Inputs up to this size are read into memory...
    pub const MEMORY_INPUT: u64 = 1 << 20;
    /// ...unless their reports hold more records than this (a small gzip can hold a large
    /// report): those are streamed.
    pub const MEMORY_RECORDS: usize = 20_000;
    /// Reports written together whose records are more than this go by `COPY`, which costs
    /// PostgreSQL a fraction per record of an insert; fewer travel with their reports.
    pub const COPY_RECORDS: usize = 1_000;
    /// On the streaming route, a report with more records than this is streamed as it is
    /// parsed; smaller ones are held and written a batch at a time...
    pub const STREAM_RECORDS: usize = 2_000;
    /// ...once this many of their records wait.
    pub const FLUSH_RECORDS: usize = 20_000;
    /// COPY data is handed over in chunks of about this size...
    pub const COPY_CHUNK: usize = 1 << 20;
    /// ...with at most this many chunks (or reports) waiting between reader and writer.
    pub const STREAM_QUEUE: usize = 4;
    /// A streamed report hands over its source rollups once it sums this many sources.
    pub const SOURCES_HELD: usize = 100_000;
}

/// An input on one of the two routes.
#[derive(Debug)]
pub(crate) enum Route {
    Memory(Box<Prepared>),
    Stream(Box<(Target, Envelope)>),
}

impl Route {
    /// Hashes the input and, if it belongs on the memory route, reads it.
    pub async fn plan(store: &Store, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        let inline =
            matches!(&envelope.payload, Payload::Bytes(bytes) if bytes.len() as u64 <= Thresholds::INLINE_INPUT);
        if inline {
            return Route::plan_here(store, envelope, limits);
        }
        let (store, limits, span) = (store.clone(), limits.clone(), tracing::Span::current());
        tokio::task::spawn_blocking(move || span.in_scope(|| Route::plan_here(&store, envelope, &limits)))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }

    fn plan_here(store: &Store, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        let envelope = envelope.loaded_if_smaller_than(Thresholds::MEMORY_INPUT)?;
        let target = Target::New(Provenance::of(&envelope)?);
        Route::read(store, target, envelope, limits)
    }

    /// The route of the kept bytes of a recorded input, run again by `reprocess`.
    pub fn again(store: &Store, input: i64, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        Route::read(store, Target::Existing { input }, envelope, limits)
    }

    fn read(store: &Store, target: Target, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        if !matches!(envelope.payload, Payload::Bytes(_)) {
            return Ok(Route::Stream(Box::new((target, envelope))));
        }
        match inspect_up_to(&envelope, limits, Thresholds::MEMORY_RECORDS) {
            Ok(found) => Ok(Route::Memory(Box::new(Prepared::new(target, found, &envelope, limits, store.sealer())?))),
            Err(Outgrown) => Ok(Route::Stream(Box::new((target, envelope)))),
        }
    }
}
