//! The path of one input into the database: fingerprint, unpack, parse, persist, with exactly
//! one outcome at the end.
//!
//! Runs on a blocking thread (parsing is CPU work, reading a file is blocking I/O) and drives
//! its database connection with `Handle::block_on`, so that the unpacker's visitor can write
//! while it reads: a report of a million records goes from the decompressor through the
//! parser into `COPY` in batches, never whole in memory.
//!
//! Transactions: everything an input produces (its provenance row, its reports, their
//! records, its kept bytes) is committed in one transaction, so an input is either fully
//! recorded or not at all, and the source is acknowledged only after the commit. Small reports
//! are collected and written at the end (one round trip each, records of all of them in one
//! COPY); a report that grows past [`STREAM_THRESHOLD`] records is streamed inside a savepoint,
//! so that a failure in its middle undoes that report and nothing else.

use std::collections::BTreeSet;

use chrono::Datelike;
use dmarcpipe_ingest::aggregate::{AggregateParser, Opened};
use dmarcpipe_ingest::envelope::Envelope;
use dmarcpipe_ingest::inspect::{Found, Inspection, Verdict};
use dmarcpipe_ingest::model::{AggregateReport, Record, ReportHeader};
use dmarcpipe_ingest::unpack::{self, Document, DocumentKind, Visitor};
use dmarcpipe_ingest::{IngestError, Limits};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio::runtime::Handle;

use crate::Store;
use crate::aggregate::{self, RECORDS_COPY};
use crate::error::StoreError;
use crate::inputs::{self, InputRow, Outcome, Provenance};

/// Reports with more records than this are streamed into the database as they are parsed.
const STREAM_THRESHOLD: usize = 5_000;
/// Small reports are written once this many of their records are waiting.
const FLUSH_THRESHOLD: usize = 20_000;
/// COPY data is sent in chunks of about this size.
const COPY_CHUNK: usize = 1 << 20;
/// Problems listed in an input's error text.
const MAX_LISTED_PROBLEMS: usize = 5;

/// Which input row the outcome goes to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A new arrival: a new row.
    New(Provenance),
    /// `reprocess` of a stored input: its row is updated.
    Existing { input: i64 },
}

/// What became of one input.
#[derive(Debug, Clone, Serialize)]
pub struct InputResult {
    pub input: i64,
    pub outcome: Outcome,
    pub reports_stored: u32,
    pub reports_duplicate: u32,
    pub records: u64,
    pub messages: i64,
    /// The input this one repeats (same bytes, or the same reports).
    pub duplicate_of: Option<i64>,
    /// Why it was rejected.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    reports_seen: u32,
    reports_stored: u32,
    reports_duplicate: u32,
    records: u64,
    messages: i64,
    duplicate_of: Option<i64>,
}

pub(crate) struct Ingest<'a> {
    store: &'a Store,
    handle: &'a Handle,
    limits: &'a Limits,
    envelope: &'a Envelope,
    target: Target,
    conn: PoolConnection<Postgres>,
    input: Option<i64>,
    tx_open: bool,
    /// The input row as first written (provisionally) in the transaction.
    written: Option<InputRow>,
    pending: Vec<AggregateReport>,
    pending_records: usize,
    tally: Tally,
    problems: Vec<Found<IngestError>>,
    skipped: Vec<Found<String>>,
    warnings: Vec<serde_json::Value>,
}

impl<'a> Ingest<'a> {
    /// Runs the whole path of a new input. On error (the database failed) nothing of the
    /// input is committed and the caller must not acknowledge it.
    pub(crate) fn run(
        store: &'a Store,
        handle: &'a Handle,
        envelope: &'a Envelope,
        limits: &'a Limits,
        provenance: Provenance,
    ) -> Result<InputResult, StoreError> {
        let mut conn = handle.block_on(store.pool().acquire())?;
        if let Some(original) = handle.block_on(inputs::find_identical(&mut conn, &provenance.fingerprint.sha256))? {
            let row = InputRow {
                outcome: Outcome::Duplicate,
                stage: None,
                error: None,
                warnings: serde_json::json!([]),
                duplicate_of: Some(original),
                reports_stored: 0,
                reports_duplicate: 0,
                records: 0,
                messages: 0,
            };
            let input = handle.block_on(inputs::insert_input(&mut conn, &provenance, &row, None))?;
            return Ok(InputResult::from_row(input, &row));
        }
        Ingest::new(store, handle, envelope, limits, Target::New(provenance), conn, None).execute()
    }

    /// Runs a kept input again, on a connection whose open transaction holds the lock on its
    /// row.
    pub(crate) fn rerun(
        store: &'a Store,
        handle: &'a Handle,
        envelope: &'a Envelope,
        limits: &'a Limits,
        input: i64,
        conn: PoolConnection<Postgres>,
    ) -> Result<InputResult, StoreError> {
        Ingest::new(store, handle, envelope, limits, Target::Existing { input }, conn, Some(input)).execute()
    }

    fn new(
        store: &'a Store,
        handle: &'a Handle,
        envelope: &'a Envelope,
        limits: &'a Limits,
        target: Target,
        conn: PoolConnection<Postgres>,
        open_for: Option<i64>,
    ) -> Self {
        Ingest {
            store,
            handle,
            limits,
            envelope,
            target,
            conn,
            input: open_for,
            tx_open: open_for.is_some(),
            written: None,
            pending: Vec::new(),
            pending_records: 0,
            tally: Tally::default(),
            problems: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn execute(mut self) -> Result<InputResult, StoreError> {
        let result = unpack::unpack(self.envelope, self.limits, &mut self).and_then(|()| self.complete());
        if result.is_err() && self.tx_open {
            self.abandon();
        }
        result
    }

    /// Rolls back after a failure; a connection that cannot even do that is closed rather
    /// than returned to the pool with a transaction open.
    fn abandon(self) {
        let Ingest { handle, mut conn, .. } = self;
        let rolled_back = handle.block_on(sqlx::query("ROLLBACK").execute(&mut *conn));
        if rolled_back.is_err() {
            let _ = handle.block_on(conn.close());
        }
    }

    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// The input row as things stand.
    fn row(&self) -> InputRow {
        let reports_waiting = self.pending.len() as u32;
        let verdict = Verdict::of((self.tally.reports_seen + reports_waiting) as usize, self.problems.len());
        let stored = self.tally.reports_stored + reports_waiting;
        let outcome = match verdict {
            Verdict::Rejected => Outcome::Rejected,
            Verdict::Reports if stored > 0 => Outcome::Stored,
            Verdict::Reports => Outcome::Duplicate,
            Verdict::NotReport => Outcome::NotReport,
        };
        let mut warnings = self.warnings.clone();
        if outcome == Outcome::NotReport {
            warnings.push(serde_json::json!({
                "code": "not_report",
                "message": Inspection::not_report_reason(&self.skipped),
            }));
        }
        let error = (!self.problems.is_empty()).then(|| {
            let mut listed: Vec<String> = self
                .problems
                .iter()
                .take(MAX_LISTED_PROBLEMS)
                .map(|p| format!("{}: {}", p.location, p.content))
                .collect();
            if self.problems.len() > MAX_LISTED_PROBLEMS {
                listed.push(format!("and {} more", self.problems.len() - MAX_LISTED_PROBLEMS));
            }
            listed.join("; ")
        });
        let records_waiting: u64 = self.pending.iter().map(|r| r.summary.record_count).sum();
        let messages_waiting: i64 = self.pending.iter().map(|r| r.summary.message_count).sum();
        InputRow {
            outcome,
            stage: self.problems.first().map(|p| p.content.stage().as_str()),
            error,
            warnings: serde_json::Value::Array(warnings),
            duplicate_of: if outcome == Outcome::Duplicate { self.tally.duplicate_of } else { None },
            reports_stored: stored as i32,
            reports_duplicate: self.tally.reports_duplicate as i32,
            records: (self.tally.records + records_waiting) as i64,
            messages: self.tally.messages + messages_waiting,
        }
    }

    /// The input's bytes to keep when it is rejected, or a warning saying why they are not.
    fn payload_to_keep(&mut self) -> Option<Vec<u8>> {
        match self.envelope.bytes_up_to(self.limits.max_kept_bytes) {
            Ok(Some(bytes)) => Some(bytes),
            Ok(None) => {
                self.warnings.push(serde_json::json!({
                    "code": "payload_not_kept",
                    "message": format!("input larger than limits.max_kept_bytes ({} bytes): re-import it from its origin after a fix", self.limits.max_kept_bytes),
                }));
                None
            }
            Err(err) => {
                self.warnings.push(serde_json::json!({"code": "payload_not_kept", "message": err.to_string()}));
                None
            }
        }
    }

    /// Opens the input's transaction and writes its row provisionally.
    fn begin(&mut self) -> Result<i64, StoreError> {
        if let (true, Some(input)) = (self.tx_open, self.input) {
            return Ok(input);
        }
        let handle = self.handle;
        handle.block_on(sqlx::query("BEGIN").execute(self.conn()))?;
        self.tx_open = true;
        let input = match self.target.clone() {
            Target::New(provenance) => {
                let row = self.row();
                let id = handle.block_on(inputs::insert_input(self.conn(), &provenance, &row, None))?;
                self.written = Some(row);
                id
            }
            Target::Existing { input } => input,
        };
        self.input = Some(input);
        Ok(input)
    }

    /// Makes sure the record partitions for these report start dates exist. Runs on another
    /// connection, outside this input's transaction (see the migration for why that is safe).
    fn ensure_partitions(
        &self,
        starts: impl IntoIterator<Item = chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        for start in starts.into_iter().collect::<BTreeSet<_>>() {
            let month = start.year() * 12 + start.month0() as i32;
            if self.store.partition_known(month) {
                continue;
            }
            self.handle.block_on(
                sqlx::query("SELECT dmarcpipe_ensure_record_partition($1)").bind(start).execute(self.store.pool()),
            )?;
            self.store.remember_partition(month);
        }
        Ok(())
    }

    /// Records a report found to be a duplicate of a stored one.
    fn count_duplicate(&mut self, header: &ReportHeader) -> Result<(), StoreError> {
        let handle = self.handle;
        let original = handle.block_on(aggregate::find_report(self.conn(), header))?;
        match original {
            // Our own report (a reprocessed input that was partly stored before).
            Some((_, origin_input)) if Some(origin_input) == self.input => {
                self.tally.reports_stored += 1;
            }
            other => {
                self.tally.reports_duplicate += 1;
                if self.tally.duplicate_of.is_none() {
                    self.tally.duplicate_of = other.map(|(_, input)| input);
                }
            }
        }
        Ok(())
    }

    /// Writes the complete reports collected so far.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.ensure_partitions(self.pending.iter().map(|r| r.header.date_begin))?;
        let input = self.begin()?;
        let handle = self.handle;
        let received_at = self.envelope.received_at;
        let mut copy_data = Vec::new();
        for report in std::mem::take(&mut self.pending) {
            self.tally.reports_seen += 1;
            let inserted = handle.block_on(aggregate::insert_report(
                self.conn(),
                input,
                &report.header,
                Some(&report.summary),
                received_at,
            ))?;
            match inserted {
                Some(id) => {
                    let date_begin = aggregate::timestamp_text(report.header.date_begin);
                    for (index, record) in report.records.iter().enumerate() {
                        aggregate::encode_record(&mut copy_data, id, index as u64 + 1, &date_begin, record);
                    }
                    self.tally.reports_stored += 1;
                    self.tally.records += report.summary.record_count;
                    self.tally.messages += report.summary.message_count;
                }
                None => self.count_duplicate(&report.header)?,
            }
        }
        self.pending_records = 0;
        if !copy_data.is_empty() {
            let conn = &mut *self.conn;
            handle.block_on(async {
                let mut copy = conn.copy_in_raw(RECORDS_COPY).await?;
                copy.send(copy_data).await?;
                copy.finish().await?;
                Ok::<_, sqlx::Error>(())
            })?;
        }
        Ok(())
    }

    /// Streams a large report into the database while the rest of it is parsed.
    fn stream_report<R: std::io::BufRead>(
        &mut self,
        location: &str,
        mut parser: AggregateParser<R>,
        first_records: Vec<Record>,
    ) -> Result<(), StoreError> {
        let header = parser.header().clone();
        self.ensure_partitions([header.date_begin])?;
        let input = self.begin()?;
        let handle = self.handle;
        handle.block_on(sqlx::query("SAVEPOINT streamed_report").execute(self.conn()))?;
        self.tally.reports_seen += 1;
        let received_at = self.envelope.received_at;
        let Some(report) = handle.block_on(aggregate::insert_report(self.conn(), input, &header, None, received_at))?
        else {
            // Already stored: the rest of the document need not be read.
            handle.block_on(sqlx::query("RELEASE SAVEPOINT streamed_report").execute(self.conn()))?;
            return self.count_duplicate(&header);
        };

        let conn = &mut *self.conn;
        let date_begin = aggregate::timestamp_text(header.date_begin);
        let streamed: Result<Result<_, IngestError>, sqlx::Error> = handle.block_on(async {
            let mut copy = conn.copy_in_raw(RECORDS_COPY).await?;
            let mut data = Vec::with_capacity(COPY_CHUNK + 4096);
            let mut number = 0u64;
            for record in &first_records {
                number += 1;
                aggregate::encode_record(&mut data, report, number, &date_begin, record);
            }
            drop(first_records);
            loop {
                // Parsing is synchronous; it runs between sends while PostgreSQL works.
                match parser.next_record() {
                    Ok(Some(record)) => {
                        number += 1;
                        aggregate::encode_record(&mut data, report, number, &date_begin, &record);
                        if data.len() >= COPY_CHUNK {
                            copy.send(std::mem::take(&mut data)).await?;
                            data.reserve(COPY_CHUNK + 4096);
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        copy.abort(format!("report parse failed: {err}")).await.ok();
                        return Ok(Err(err));
                    }
                }
            }
            if !data.is_empty() {
                copy.send(data).await?;
            }
            copy.finish().await?;
            Ok(parser.finish())
        });
        let summary = match streamed {
            Ok(Ok(summary)) => summary,
            Ok(Err(err)) => {
                handle.block_on(sqlx::query("ROLLBACK TO SAVEPOINT streamed_report").execute(self.conn()))?;
                self.problems.push(Found { location: location.to_owned(), content: err });
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        handle.block_on(aggregate::complete_streamed_report(self.conn(), report, &summary))?;
        handle.block_on(sqlx::query("RELEASE SAVEPOINT streamed_report").execute(self.conn()))?;
        self.tally.reports_stored += 1;
        self.tally.records += summary.record_count;
        self.tally.messages += summary.message_count;
        Ok(())
    }

    /// Writes the input's outcome and commits.
    fn complete(&mut self) -> Result<InputResult, StoreError> {
        let handle = self.handle;
        let keep = self.row().outcome == Outcome::Rejected;
        let payload = if keep { self.payload_to_keep() } else { None };
        let sealed = false;

        if !self.tx_open
            && !self.pending.is_empty()
            && let Target::New(provenance) = &self.target
        {
            // Everything fits in memory and nothing is written yet: one round trip.
            let provenance = provenance.clone();
            self.ensure_partitions(self.pending.iter().map(|r| r.header.date_begin))?;
            let row = self.row();
            let reports: Vec<serde_json::Value> =
                self.pending.iter().map(|report| aggregate::report_json(report, self.envelope.received_at)).collect();
            let (input, stored) = handle.block_on(inputs::store_input_with_reports(
                self.conn(),
                &provenance,
                &row,
                serde_json::Value::Array(reports),
                payload.as_deref().map(|p| (p, sealed)),
            ))?;
            return Ok(InputResult::from_row(input, &stored));
        }

        if !self.tx_open && self.pending.is_empty() {
            // Nothing written yet (not a report, rejected, byte-identical): one statement.
            let row = self.row();
            let input = match &self.target {
                Target::New(provenance) => {
                    let provenance = provenance.clone();
                    handle.block_on(inputs::insert_input(
                        self.conn(),
                        &provenance,
                        &row,
                        payload.as_deref().map(|p| (p, sealed)),
                    ))?
                }
                Target::Existing { input } => {
                    let input = *input;
                    handle.block_on(inputs::update_input(self.conn(), input, &row, true))?;
                    if !keep {
                        handle.block_on(inputs::drop_payload(self.conn(), input))?;
                    }
                    input
                }
            };
            return Ok(InputResult::from_row(input, &row));
        }

        self.flush()?;
        let input = self.begin()?;
        let row = self.row();
        match &self.target {
            Target::New(_) => {
                if self.written.as_ref() != Some(&row) {
                    handle.block_on(inputs::update_input(self.conn(), input, &row, false))?;
                }
                if let Some(payload) = &payload {
                    handle.block_on(inputs::keep_payload(self.conn(), input, payload, sealed))?;
                }
            }
            Target::Existing { .. } => {
                handle.block_on(inputs::update_input(self.conn(), input, &row, true))?;
                if !keep {
                    handle.block_on(inputs::drop_payload(self.conn(), input))?;
                }
            }
        }
        handle.block_on(sqlx::query("COMMIT").execute(self.conn()))?;
        self.tx_open = false;
        Ok(InputResult::from_row(input, &row))
    }
}

impl InputResult {
    fn from_row(input: i64, row: &InputRow) -> Self {
        InputResult {
            input,
            outcome: row.outcome,
            reports_stored: row.reports_stored as u32,
            reports_duplicate: row.reports_duplicate as u32,
            records: row.records as u64,
            messages: row.messages,
            duplicate_of: row.duplicate_of,
            error: row.error.clone(),
        }
    }
}

impl Visitor for Ingest<'_> {
    type Error = StoreError;

    fn document(&mut self, document: Document<'_>) -> Result<(), StoreError> {
        let location = document.location.to_owned();
        if document.kind == DocumentKind::Json {
            match unpack::classify_json(document.reader) {
                Some(err) => self.problems.push(Found { location, content: err }),
                None => self.skipped.push(Found { location, content: "JSON, not a report".into() }),
            }
            return Ok(());
        }
        let mut parser = match AggregateParser::open(document.reader, self.limits.max_xml_depth) {
            Ok(Opened::Report(parser)) => parser,
            Ok(Opened::NotAggregate(what)) => {
                self.skipped.push(Found { location, content: what });
                return Ok(());
            }
            Err(err) => {
                self.problems.push(Found { location, content: err });
                return Ok(());
            }
        };
        let mut records = Vec::new();
        loop {
            match parser.next_record() {
                Ok(Some(record)) => {
                    records.push(record);
                    if records.len() > STREAM_THRESHOLD {
                        return self.stream_report(&location, parser, records);
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    self.problems.push(Found { location, content: err });
                    return Ok(());
                }
            }
        }
        let header = parser.header().clone();
        match parser.finish() {
            Ok(summary) => {
                self.pending_records += records.len();
                self.pending.push(AggregateReport { header, summary, records });
                if self.pending_records > FLUSH_THRESHOLD {
                    self.flush()?;
                }
            }
            Err(err) => self.problems.push(Found { location, content: err }),
        }
        Ok(())
    }

    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), StoreError> {
        self.problems.push(Found { location: location.to_owned(), content: error });
        Ok(())
    }

    fn skipped(&mut self, location: &str, what: &str) {
        self.skipped.push(Found { location: location.to_owned(), content: what.to_owned() });
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.warnings.push(serde_json::json!({ "code": code, "message": message }));
    }
}
