//! Which route an input takes into the database, and the memory it reserves for it, decided
//! once, here, by the thresholds below.
//!
//! - **Memory** (`memory`): the input is read whole ([`inspect_up_to`]) and written with the
//!   other inputs of its batch in one transaction. Nearly every report mail and file is a few
//!   KiB with a handful of records. It reserves [`Thresholds::memory_reservation`] of the
//!   process's memory budget, a multiple of its size, and may hold no more records and bytes
//!   than that pays for ([`Thresholds::memory_route`]).
//! - **Stream** (`stream`): the input is read on a blocking thread while it is written in a
//!   transaction of its own, large reports through `COPY`. Inputs larger than
//!   [`Thresholds::MEMORY_INPUT`], and those that turn out to hold more than the memory route
//!   allows (a small gzip can hold a large report). It reserves what one input may use
//!   (`Limits::memory_per_input`, half the budget), whatever its size: its buffers are bounded.
//!
//! Reservations are taken before the work and given back after it, never one while holding
//! another, so that inputs waiting for memory never wait on each other.

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::budget::Reservation;
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

impl Thresholds {
    /// What an input of `size` bytes read whole may hold: bytes of it in memory at once (the
    /// input, mails and archives inside it, decoded parts), and records.
    pub fn memory_route(size: u64) -> (u64, usize) {
        let held = 8 * size + (256 << 10);
        (held, (held >> 10) as usize)
    }

    /// What an input of `size` bytes read whole reserves of the memory budget: what it may hold
    /// (above), its records as parsed (about 1.5 KiB each) and as rows for the database.
    pub fn memory_reservation(size: u64) -> u64 {
        24 * size + (1 << 20)
    }
}

/// An input on one of the two routes.
#[derive(Debug)]
pub(crate) enum Route {
    Memory(Box<Prepared>),
    Stream(Box<(Target, Envelope)>),
}

impl Route {
    /// Reserves memory for the input, hashes it and, if it belongs on the memory route, reads
    /// it. The reservation goes with the route and is given back when it is dropped.
    pub async fn plan(store: &Store, envelope: Envelope, limits: &Limits) -> Result<(Route, Reservation), StoreError> {
        let size = envelope.size();
        if size <= Thresholds::MEMORY_INPUT {
            let reservation = store.budget().reserve(Thresholds::memory_reservation(size)).await;
            return match Route::read_here_or_blocking(store, envelope, limits, size).await? {
                memory @ Route::Memory(_) => Ok((memory, reservation)),
                // More inside than the memory route allows: streamed, with the reservation of
                // a large input (taken after this one is given back).
                stream @ Route::Stream(_) => {
                    drop(reservation);
                    Ok((stream, store.budget().reserve(limits.memory_per_input()).await))
                }
            };
        }
        let reservation = store.budget().reserve(limits.memory_per_input()).await;
        let (provenance, envelope) = provenance(envelope).await?;
        Ok((Route::Stream(Box::new((Target::New(provenance), envelope))), reservation))
    }

    /// Reads an input of at most [`Thresholds::MEMORY_INPUT`] bytes for the memory route (its
    /// memory reserved by the caller): the input read, or its target and envelope when it holds
    /// more than that route allows.
    pub async fn read_small(
        store: &Store,
        envelope: Envelope,
        limits: &Limits,
    ) -> Result<Result<Box<Prepared>, (Target, Envelope)>, StoreError> {
        let size = envelope.size();
        Ok(match Route::read_here_or_blocking(store, envelope, limits, size).await? {
            Route::Memory(prepared) => Ok(prepared),
            Route::Stream(streamed) => Err(*streamed),
        })
    }

    async fn read_here_or_blocking(
        store: &Store,
        envelope: Envelope,
        limits: &Limits,
        size: u64,
    ) -> Result<Route, StoreError> {
        let inline = matches!(&envelope.payload, Payload::Bytes(_)) && size <= Thresholds::INLINE_INPUT;
        if inline {
            return Route::read_new(store, envelope, limits);
        }
        let (store, limits, span) = (store.clone(), limits.clone(), tracing::Span::current());
        tokio::task::spawn_blocking(move || span.in_scope(|| Route::read_new(&store, envelope, &limits)))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))?
    }

    fn read_new(store: &Store, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        let envelope = envelope.loaded_if_smaller_than(Thresholds::MEMORY_INPUT)?;
        let target = Target::New(Provenance::of(&envelope)?);
        Route::read(store, target, envelope, limits)
    }

    /// The route of the kept bytes of a recorded input, run again by `reprocess` (which
    /// reserves what a large input may use: kept bytes can be large).
    pub fn again(store: &Store, input: i64, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        Route::read(store, Target::Existing { input }, envelope, limits)
    }

    /// Reads the input for the memory route; [`Route::Stream`] when it holds more than that
    /// route allows, or is too large for it to begin with.
    fn read(store: &Store, target: Target, envelope: Envelope, limits: &Limits) -> Result<Route, StoreError> {
        let size = envelope.size();
        if !matches!(envelope.payload, Payload::Bytes(_)) || size > Thresholds::MEMORY_INPUT {
            return Ok(Route::Stream(Box::new((target, envelope))));
        }
        let (memory, records) = Thresholds::memory_route(size);
        match inspect_up_to(&envelope, limits, records, memory) {
            Ok(found) => Ok(Route::Memory(Box::new(Prepared::new(target, found, envelope, limits, store.sealer())?))),
            Err(Outgrown) => Ok(Route::Stream(Box::new((target, envelope)))),
        }
    }
}

/// The provenance of a large input, hashed on a blocking thread (a file is read for it).
async fn provenance(envelope: Envelope) -> Result<(Provenance, Envelope), StoreError> {
    let span = tracing::Span::current();
    let (provenance, envelope) =
        tokio::task::spawn_blocking(move || span.in_scope(|| (Provenance::of(&envelope), envelope)))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))?;
    Ok((provenance?, envelope))
}
