//! The route of an input too large to read whole: a report of a million records, an archive
//! of many reports.
//!
//! The input is read on a blocking thread ([`StreamSink`], a sink of `dmarcpipe_ingest::read`)
//! while this task writes what it finds, in the input's transaction: complete reports are
//! written a batch at a time; a report that outgrows [`Thresholds::STREAM_RECORDS`] is offered
//! by its header first, and when it is new its records go into `COPY` as they are parsed,
//! inside a savepoint, so that a failure in its middle undoes that report and nothing else.
//! TLS reports are written with the batches of complete reports (their failure details count
//! as records); failure reports are held and written at the end of the input.
//! The two sides talk over a bounded channel, so memory stays flat whatever the report's size;
//! the rollup sums of a report with very many sources are handed over part by part.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::Limits;
use std::sync::Arc;

use dmarcpipe_ingest::envelope::Envelope;
use dmarcpipe_ingest::forensic::ForensicReport;
use dmarcpipe_ingest::inspect::{ContainerWarning, Found, Inspection};
use dmarcpipe_ingest::model::{AggregateReport, ReportHeader, ReportSummary};
use dmarcpipe_ingest::read::{self, Item, Sink};
use dmarcpipe_ingest::tlsrpt::TlsReport;
use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use crate::aggregate::{self, RECORDS_COPY};
use crate::error::StoreError;
use crate::inputs::{self, Target};
use crate::ledger::{self, Closing, Ledger};
use crate::memory::sample_not_kept;
use crate::outcome::InputResult;
use crate::rollup::{RollupSums, SOURCES_COPY};
use crate::route::Thresholds;
use crate::rows::{RecordRow, Stamp};
use crate::seal::{SealError, Sealer};
use crate::write::{self, Claim, Tx, Wanted, timely};
use crate::{Store, single};

/// What the reading thread hands over.
enum Event {
    /// A complete report, written with the next batch of them.
    Report(Box<AggregateReport>),
    /// A report too large to hold: its header, offered first. The answer is its id when it is
    /// new (then its records follow), `None` when it was stored before (it is not read on).
    Large { header: Box<ReportHeader>, answer: oneshot::Sender<Option<i64>> },
    /// COPY rows of the records of the report being streamed.
    Records(Vec<u8>),
    /// COPY rows of its source rollups, handed over early.
    Sources(Vec<u8>),
    /// The streamed report is complete.
    End(Box<(ReportSummary, RollupSums)>),
    /// It broke part-way: undo it (the reason is among the input's problems).
    Broken,
    /// A failure report with its sealed mail.
    Forensic(Box<ForensicReport>, Option<Vec<u8>>),
    /// An SMTP TLS report.
    Tls(Box<TlsReport>),
}

/// The writer is gone (it failed, and says why): stop reading.
#[derive(Debug)]
struct Hung;

/// Writes `envelope` as `target` in the transaction of `conn`, streaming it.
pub(crate) async fn write(
    store: &Store,
    tx: &mut Tx<'_>,
    target: &Target,
    envelope: Arc<Envelope>,
    limits: &Limits,
) -> Result<InputResult, StoreError> {
    let (ledger, _) = Ledger::open(tx, &[target], &[Wanted::default()]).await?;
    let received_at = ledger::received_at(target);
    if ledger.entries[0].identical.is_some() {
        // The very same bytes came before: no need to read them again.
        let found = Inspection::default();
        return single(ledger.finish(tx, &[Closing { target, found: &found, notes: &[], payload: None }]).await?);
    }

    let (sender, mut events) = mpsc::channel(Thresholds::STREAM_QUEUE);
    let sealer = store.sealer().cloned();
    let (reading_limits, span) = (limits.clone(), tracing::Span::current());
    let reader = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut sink = StreamSink { events: sender, sealer, found: Inspection::default(), seal_failure: None };
        let _ = read::read(&envelope, &reading_limits, &mut sink);
        // The sender goes with the sink: the writer sees the end of the input.
        let StreamSink { found, seal_failure, .. } = sink;
        (envelope, found, seal_failure)
    });

    let mut writer = Writer {
        store,
        ledger,
        received_at,
        reports: Vec::new(),
        held_records: 0,
        forensic: Vec::new(),
        tls: Vec::new(),
    };
    let written = writer.run(tx, &mut events).await;
    // Whatever happened, the reader stops at its next event once `events` is gone.
    drop(events);
    let (envelope, found, seal_failure) = reader.await.map_err(|err| StoreError::Task(err.to_string()))?;
    written?;
    if let Some(err) = seal_failure {
        return Err(err.into());
    }
    writer.flush(tx).await?;
    let Writer { mut ledger, forensic, .. } = writer;
    if !forensic.is_empty() {
        ledger_forensic(&mut ledger, tx, &forensic, received_at).await?;
    }

    let mut notes = Vec::new();
    if store.sealer().is_none() && !forensic.is_empty() {
        notes.push(sample_not_kept());
    }
    let payload = match (target, found.problems.is_empty()) {
        (Target::New(_), false) => {
            let (limits, sealer) = (limits.clone(), store.sealer().cloned());
            let kept =
                tokio::task::spawn_blocking(move || inputs::payload_to_keep(&envelope, &limits, sealer.as_ref()))
                    .await
                    .map_err(|err| StoreError::Task(err.to_string()))?;
            kept.map_err(|note| notes.push(note)).ok()
        }
        _ => None,
    };
    let closing = Closing { target, found: &found, notes: &notes, payload: payload.as_deref() };
    single(ledger.finish(tx, &[closing]).await?)
}

async fn ledger_forensic(
    ledger: &mut Ledger,
    tx: &mut Tx<'_>,
    forensic: &[(Box<ForensicReport>, Option<Vec<u8>>)],
    received_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let wanted = Wanted { forensic: forensic.len(), ..Wanted::default() };
    let allocated = write::allocate(tx, &[None], &[wanted]).await?;
    let ids = allocated.into_iter().next().map(|slot| slot.forensic).unwrap_or_default();
    let offered: Vec<_> =
        forensic.iter().zip(ids).map(|((report, sealed), id)| (0, &**report, id, sealed.as_deref())).collect();
    ledger.write_forensic(tx, &offered, &[received_at]).await
}

/// The writing side.
struct Writer<'s> {
    store: &'s Store,
    ledger: Ledger,
    received_at: DateTime<Utc>,
    /// Complete reports waiting to be written, and their records (with the rows of TLS
    /// reports).
    reports: Vec<AggregateReport>,
    tls: Vec<TlsReport>,
    held_records: usize,
    forensic: Vec<(Box<ForensicReport>, Option<Vec<u8>>)>,
}

impl Writer<'_> {
    async fn run(&mut self, tx: &mut Tx<'_>, events: &mut mpsc::Receiver<Event>) -> Result<(), StoreError> {
        while let Some(event) = events.recv().await {
            match event {
                Event::Report(report) => {
                    self.held_records += report.records.len();
                    self.reports.push(*report);
                    self.flush_when_full(tx).await?;
                }
                Event::Large { header, answer } => {
                    self.flush(tx).await?;
                    self.stream_report(tx, &header, answer, events).await?;
                }
                Event::Forensic(report, sealed) => self.forensic.push((report, sealed)),
                Event::Tls(report) => {
                    self.held_records += report.rows();
                    self.tls.push(*report);
                    self.flush_when_full(tx).await?;
                }
                Event::Records(_) | Event::Sources(_) | Event::End(_) | Event::Broken => {
                    return Err(StoreError::Task("records of a report that was not offered".into()));
                }
            }
        }
        Ok(())
    }

    /// Writes the complete reports waiting (aggregate and TLS).
    async fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.reports.is_empty() && self.tls.is_empty() {
            return Ok(());
        }
        let (reports, tls) = (std::mem::take(&mut self.reports), std::mem::take(&mut self.tls));
        self.held_records = 0;
        let wanted = Wanted { reports: reports.len(), tls: tls.len(), ..Wanted::default() };
        let ids = write::allocate(tx, &[None], &[wanted]).await?.pop().unwrap_or_default();
        let offered: Vec<_> = reports.iter().zip(ids.reports).map(|(report, id)| (0, report, id)).collect();
        self.ledger.write_reports(tx, self.store, &offered, &[self.received_at]).await?;
        let offered: Vec<_> = tls.iter().zip(ids.tls).map(|(report, id)| (0, report, id)).collect();
        self.ledger.write_tls(tx, &offered, &[self.received_at]).await
    }

    /// Writes the complete reports waiting once their records are many.
    async fn flush_when_full(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.held_records > Thresholds::FLUSH_RECORDS { self.flush(tx).await } else { Ok(()) }
    }

    /// Offers a large report and, when it is new, loads its records as they come, inside a
    /// savepoint: a report that breaks part-way is undone, and nothing else.
    async fn stream_report(
        &mut self,
        tx: &mut Tx<'_>,
        header: &ReportHeader,
        answer: oneshot::Sender<Option<i64>>,
        events: &mut mpsc::Receiver<Event>,
    ) -> Result<(), StoreError> {
        self.store.ensure_partitions([header.date_begin]).await?;
        let allocated = write::allocate(tx, &[None], &[Wanted { reports: 1, ..Wanted::default() }]).await?;
        let id = allocated.first().and_then(|slot| slot.reports.first().copied());
        let id = id.ok_or_else(|| StoreError::Data("no id for a report".into()))?;
        let row = aggregate::report_row(id, self.ledger.entries[0].id, header, None, self.received_at);
        let patience = tx.patience;
        let mut savepoint = timely(patience, tx.conn.begin()).await?;
        let streamed = {
            let mut inner = Tx { conn: &mut savepoint, patience };
            match write::claim::<_, &[RecordRow<'_>]>(&mut inner, &[row], &[]).await?.pop() {
                // Stored before: the rest of the document need not be read.
                Some(Claim::Existing(original)) => {
                    let _ = answer.send(None);
                    Streamed::Before(original)
                }
                _ => {
                    let _ = answer.send(Some(id));
                    load_records(&mut inner, id, events).await?
                }
            }
        };
        match streamed {
            Streamed::Before(original) => {
                timely(patience, savepoint.commit()).await?;
                self.ledger.count(0, Claim::Existing(original), 0, 0, None);
            }
            Streamed::Whole(summary, sums) => {
                timely(patience, savepoint.commit()).await?;
                self.ledger.count(0, Claim::New, summary.record_count, summary.message_count, Some(*sums));
            }
            Streamed::Broken => timely(patience, savepoint.rollback()).await?,
        }
        Ok(())
    }
}

/// What became of a large report offered to the database.
enum Streamed {
    /// Stored before, by this input.
    Before(Option<i64>),
    /// Loaded whole, with its totals and rollup sums.
    Whole(Box<ReportSummary>, Box<RollupSums>),
    /// It broke part-way: to be undone.
    Broken,
}

/// Loads the records of report `id` as they come, up to its end.
async fn load_records(tx: &mut Tx<'_>, id: i64, events: &mut mpsc::Receiver<Event>) -> Result<Streamed, StoreError> {
    let mut next = events.recv().await;
    loop {
        match next {
            Some(Event::Records(rows)) => next = copy_records(tx, rows, events).await?,
            Some(Event::Sources(rows)) => {
                write::copy(tx, &SOURCES_COPY, rows).await?;
                next = events.recv().await;
            }
            Some(Event::End(end)) => {
                let (summary, sums) = *end;
                aggregate::complete_streamed_report(tx, id, &summary).await?;
                return Ok(Streamed::Whole(Box::new(summary), Box::new(sums)));
            }
            Some(Event::Broken) => return Ok(Streamed::Broken),
            Some(Event::Report(_) | Event::Large { .. } | Event::Forensic(..) | Event::Tls(_)) => {
                return Err(StoreError::Task("a report began inside another".into()));
            }
            None => return Err(StoreError::Task("the reading of a report stopped without an end".into())),
        }
    }
}

/// Loads `first` and the records that follow it with one `COPY`; returns the event after them.
/// The `COPY` is undone when that event says the report broke.
async fn copy_records(
    tx: &mut Tx<'_>,
    first: Vec<u8>,
    events: &mut mpsc::Receiver<Event>,
) -> Result<Option<Event>, StoreError> {
    let patience = tx.patience;
    let mut copy = timely(patience, tx.conn.copy_in_raw(&RECORDS_COPY)).await?;
    timely(patience, copy.send(first)).await?;
    loop {
        match events.recv().await {
            Some(Event::Records(rows)) => {
                timely(patience, copy.send(rows)).await?;
            }
            Some(Event::Broken) => {
                timely(patience, copy.abort("the report broke part-way")).await?;
                return Ok(Some(Event::Broken));
            }
            next => {
                timely(patience, copy.finish()).await?;
                return Ok(next);
            }
        }
    }
}

/// The reading side: what it finds goes to the writer, or into the input's findings.
struct StreamSink {
    events: mpsc::Sender<Event>,
    sealer: Option<Sealer>,
    /// Problems, parts that are not reports, container warnings.
    found: Inspection,
    seal_failure: Option<SealError>,
}

impl StreamSink {
    fn send(&self, event: Event) -> Result<(), Hung> {
        self.events.blocking_send(event).map_err(|_| Hung)
    }

    /// Reads an aggregate report: held whole when it is small, streamed when it grows.
    fn aggregate(&mut self, document: &mut read::AggregateDocument<'_>) -> Result<(), Hung> {
        let mut records = Vec::new();
        while records.len() <= Thresholds::STREAM_RECORDS {
            match document.next_record() {
                Some(record) => records.push(record),
                None => {
                    if let Some(summary) = document.finish() {
                        let header = document.header().clone();
                        self.send(Event::Report(Box::new(AggregateReport { header, summary, records })))?;
                    }
                    return Ok(());
                }
            }
        }
        let (answer, answered) = oneshot::channel();
        self.send(Event::Large { header: Box::new(document.header().clone()), answer })?;
        let Some(id) = answered.blocking_recv().map_err(|_| Hung)? else {
            return Ok(());
        };
        let stamp = Stamp::new(document.header().date_begin);
        let mut sums = RollupSums::new(document.header());
        let mut rows = Vec::with_capacity(Thresholds::COPY_CHUNK + 4096);
        let mut number = 0u64;
        let mut pending = records.into_iter();
        loop {
            let record = match pending.next() {
                Some(record) => record,
                None => match document.next_record() {
                    Some(record) => record,
                    None => break,
                },
            };
            number += 1;
            aggregate::record_row(id, number, &stamp, &record).copy_text(&mut rows);
            sums.add(&record);
            if rows.len() >= Thresholds::COPY_CHUNK {
                self.send(Event::Records(std::mem::replace(
                    &mut rows,
                    Vec::with_capacity(Thresholds::COPY_CHUNK + 4096),
                )))?;
            }
            if sums.sources_held() >= Thresholds::SOURCES_HELD {
                if !rows.is_empty() {
                    self.send(Event::Records(std::mem::take(&mut rows)))?;
                }
                let mut sources = Vec::new();
                sums.take_source_rows().iter().for_each(|row| row.copy_text(&mut sources));
                self.send(Event::Sources(sources))?;
            }
        }
        if !rows.is_empty() {
            self.send(Event::Records(rows))?;
        }
        match document.finish() {
            Some(summary) => self.send(Event::End(Box::new((summary, sums)))),
            None => self.send(Event::Broken),
        }
    }
}

impl Sink for StreamSink {
    type Error = Hung;

    fn item(&mut self, location: &str, item: Item<'_, '_>) -> Result<(), Hung> {
        match item {
            Item::Aggregate(document) => self.aggregate(document),
            Item::Forensic(report, raw) => {
                let sealed = match &self.sealer {
                    Some(sealer) => match sealer.seal(raw) {
                        Ok(sealed) => Some(sealed),
                        Err(err) => {
                            self.seal_failure = Some(err);
                            return Err(Hung);
                        }
                    },
                    None => None,
                };
                self.send(Event::Forensic(report, sealed))
            }
            Item::Tls(report) => self.send(Event::Tls(report)),
            Item::NotReport(what) => {
                self.found.skipped.push(Found { location: location.to_owned(), content: what });
                Ok(())
            }
            Item::Problem(error) => {
                self.found.problems.push(Found { location: location.to_owned(), content: error });
                Ok(())
            }
        }
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.found.warnings.push(ContainerWarning { code, message });
    }
}
