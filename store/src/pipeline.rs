//! The path of one input into the database: fingerprint, unpack, parse, persist, with exactly
//! one outcome at the end.
//!
//! Two routes, one result:
//! - **Small inputs** (up to [`SMALL_INPUT`] bytes, nearly every report mail and file) are read,
//!   hashed and parsed on a blocking thread without touching the database, then stored in a
//!   single round trip by `dmarcpipe_store_input` (which also recognises byte-identical inputs
//!   by SHA-256 and reports already stored by natural key): one statement, one transaction.
//!   Several of them may go together through [`store_small_batch`] (`dmarcpipe_store_inputs`,
//!   for `import`): one statement and one transaction for the batch.
//! - **Large inputs** are first looked up by SHA-256 (no point reading 600 MB again), then
//!   unpacked on a blocking thread that drives its own connection with `Handle::block_on`: a
//!   report that outgrows [`STREAM_THRESHOLD`] records is streamed through `COPY` while it is
//!   parsed, inside a savepoint, so that a failure in its middle undoes that report and nothing
//!   else, and a million records never sit in memory.
//!
//! Either way, everything an input produces (its provenance row, its reports, their records,
//! its kept bytes) is committed in one transaction, so an input is fully recorded or not at
//! all, and the source is acknowledged only after the commit.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::aggregate::{AggregateParser, Opened};
use dmarcpipe_ingest::envelope::Envelope;
use dmarcpipe_ingest::forensic::ForensicReport;
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
use crate::forensic::{self, SealedReport};
use crate::inputs::{self, InputRow, Outcome, Provenance};
use crate::rollup::{DAILY_COPY, RollupSums, SOURCES_COPY};
use crate::seal::Sealer;

/// Inputs up to this size take the one-round-trip route...
pub(crate) const SMALL_INPUT: u64 = 1 << 20;
/// ...unless their reports have more records than this: those are loaded with COPY, which
/// costs PostgreSQL a fraction per record of the single statement.
pub(crate) const COPY_RECORDS: usize = 1_000;
/// On the large route, reports with more records than this are streamed as they are parsed.
const STREAM_THRESHOLD: usize = 2_000;
/// On the large route, small reports are written once this many of their records wait.
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
    /// Reports stored, aggregate and forensic.
    pub reports_stored: u32,
    pub reports_duplicate: u32,
    /// How many of the reports stored are failure (forensic) reports.
    pub forensic_stored: u32,
    pub records: u64,
    pub messages: i64,
    /// The input this one repeats (same bytes, or the same reports).
    pub duplicate_of: Option<i64>,
    /// Why it was rejected.
    pub error: Option<String>,
}

impl InputResult {
    pub(crate) fn from_row(input: i64, row: &InputRow) -> Self {
        InputResult {
            input,
            outcome: row.outcome,
            reports_stored: row.reports_stored as u32,
            reports_duplicate: row.reports_duplicate as u32,
            forensic_stored: row.forensic_reports as u32,
            records: row.records as u64,
            messages: row.messages,
            duplicate_of: row.duplicate_of,
            error: row.error.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    reports_seen: u32,
    reports_stored: u32,
    reports_duplicate: u32,
    forensic_stored: u32,
    records: u64,
    messages: i64,
    duplicate_of: Option<i64>,
}

impl Tally {
    /// Counts a report that was already stored by input `origin`.
    fn count_duplicate(&mut self, origin: Option<i64>, this_input: Option<i64>) {
        match origin {
            // Our own report (a reprocessed input that was partly stored before).
            Some(origin) if Some(origin) == this_input => self.reports_stored += 1,
            other => {
                self.reports_duplicate += 1;
                if self.duplicate_of.is_none() {
                    self.duplicate_of = other;
                }
            }
        }
    }
}

/// A failure report found in an input, with the raw mail that is to be sealed.
#[derive(Debug)]
struct PendingForensic {
    report: ForensicReport,
    raw: Vec<u8>,
}

/// What the unpacker found in an input: complete reports not yet written, what was written
/// already (streamed), problems, parts that are not reports, container warnings.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Records of the complete reports not yet written.
    pub(crate) pending_records: usize,
    pending: Vec<AggregateReport>,
    pending_forensic: Vec<PendingForensic>,
    tally: Tally,
    problems: Vec<Found<IngestError>>,
    skipped: Vec<Found<String>>,
    warnings: Vec<serde_json::Value>,
}

impl Findings {
    /// The input row as things stand, counting reports not yet written as new.
    pub(crate) fn row(&self) -> InputRow {
        let forensic_waiting = self.pending_forensic.len() as u32;
        let reports_waiting = self.pending.len() as u32 + forensic_waiting;
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
            forensic_reports: (self.tally.forensic_stored + forensic_waiting) as i32,
        }
    }

    fn problem(&mut self, location: &str, error: IngestError) {
        self.problems.push(Found { location: location.to_owned(), content: error });
    }

    fn skip(&mut self, location: &str, what: String) {
        self.skipped.push(Found { location: location.to_owned(), content: what });
    }

    fn warn(&mut self, code: &'static str, message: String) {
        self.warnings.push(serde_json::json!({ "code": code, "message": message }));
    }

    fn add_forensic(&mut self, report: ForensicReport, raw: &[u8]) {
        self.pending_forensic.push(PendingForensic { report, raw: raw.to_vec() });
    }

    /// Whether anything waits to be written.
    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_forensic.is_empty()
    }

    /// Whether the input must take the transactional route.
    pub(crate) fn needs_transaction(&self) -> bool {
        self.pending_records > COPY_RECORDS || !self.pending_forensic.is_empty()
    }

    /// The input's bytes to keep when it is rejected, sealed, or a warning saying why they are
    /// not kept. Rejected inputs may be mail: they are never kept in clear.
    fn payload_to_keep(&mut self, envelope: &Envelope, limits: &Limits, sealer: Option<&Sealer>) -> Option<Vec<u8>> {
        let Some(sealer) = sealer else {
            self.warn(
                "payload_not_kept",
                "no age recipients configured ([forensic] recipients): the bytes of a rejected input are never \
                 stored in clear; re-import it from its origin after a fix"
                    .into(),
            );
            return None;
        };
        match envelope.bytes_up_to(limits.max_kept_bytes) {
            Ok(Some(bytes)) => match sealer.seal(&bytes) {
                Ok(sealed) => Some(sealed),
                Err(err) => {
                    self.warn("payload_not_kept", err.to_string());
                    None
                }
            },
            Ok(None) => {
                self.warn(
                    "payload_not_kept",
                    format!(
                        "input larger than limits.max_kept_bytes ({} bytes): re-import it from its origin after a fix",
                        limits.max_kept_bytes
                    ),
                );
                None
            }
            Err(err) => {
                self.warn("payload_not_kept", err.to_string());
                None
            }
        }
    }
}

/// A document's reading, as far as it went.
enum Read<'r> {
    /// Complete reports were added to the findings (or the document was not a report).
    Done,
    /// A report outgrew the threshold: its parser and the records read so far.
    Outgrew(Box<AggregateParser<&'r mut dyn std::io::BufRead>>, Vec<Record>),
}

/// Reads one document into `findings`; with `stream_after`, hands back a report that grows
/// beyond that many records so the caller can stream it.
fn read_document<'r>(
    findings: &mut Findings,
    document: Document<'r>,
    limits: &Limits,
    stream_after: Option<usize>,
) -> Read<'r> {
    let location = document.location;
    if document.kind == DocumentKind::Json {
        match unpack::classify_json(document.reader) {
            Some(err) => findings.problem(location, err),
            None => findings.skip(location, "JSON, not a report".into()),
        }
        return Read::Done;
    }
    let mut parser = match AggregateParser::open(document.reader, limits.max_xml_depth) {
        Ok(Opened::Report(parser)) => parser,
        Ok(Opened::NotAggregate(what)) => {
            findings.skip(location, what);
            return Read::Done;
        }
        Err(err) => {
            findings.problem(location, err);
            return Read::Done;
        }
    };
    let mut records = Vec::new();
    loop {
        match parser.next_record() {
            Ok(Some(record)) => {
                records.push(record);
                if stream_after.is_some_and(|threshold| records.len() > threshold) {
                    return Read::Outgrew(Box::new(parser), records);
                }
            }
            Ok(None) => break,
            Err(err) => {
                findings.problem(location, err);
                return Read::Done;
            }
        }
    }
    let header = parser.header().clone();
    match parser.finish() {
        Ok(summary) => {
            findings.pending_records += records.len();
            findings.pending.push(AggregateReport { header, summary, records });
        }
        Err(err) => findings.problem(location, err),
    }
    Read::Done
}

/// Unpacks and parses a small input entirely in memory, touching no database.
pub(crate) struct Collector<'a> {
    limits: &'a Limits,
    findings: Findings,
}

impl<'a> Collector<'a> {
    pub(crate) fn collect(envelope: &Envelope, limits: &'a Limits) -> Findings {
        let mut collector = Collector { limits, findings: Findings::default() };
        let Ok(()) = unpack::unpack(envelope, limits, &mut collector);
        collector.findings
    }
}

impl Visitor for Collector<'_> {
    type Error = std::convert::Infallible;

    fn document(&mut self, document: Document<'_>) -> Result<(), Self::Error> {
        read_document(&mut self.findings, document, self.limits, None);
        Ok(())
    }

    fn forensic(&mut self, _location: &str, report: ForensicReport, raw: &[u8]) -> Result<(), Self::Error> {
        self.findings.add_forensic(report, raw);
        Ok(())
    }

    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), Self::Error> {
        self.findings.problem(location, error);
        Ok(())
    }

    fn skipped(&mut self, location: &str, what: &str) {
        self.findings.skip(location, what.to_owned());
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.findings.warn(code, message);
    }
}

/// Stores a small input whose findings are complete, in one round trip.
pub(crate) async fn store_small(
    store: &Store,
    envelope: &Envelope,
    limits: &Limits,
    provenance: Provenance,
    mut findings: Findings,
) -> Result<InputResult, StoreError> {
    store.ensure_partitions(findings.pending.iter().map(|r| r.header.date_begin)).await?;
    let payload = if findings.row().outcome == Outcome::Rejected {
        findings.payload_to_keep(envelope, limits, store.sealer())
    } else {
        None
    };
    let row = findings.row();
    let mut conn = store.pool().acquire().await?;
    let (input, stored) = aggregate::store_with_input(
        &mut conn,
        &provenance,
        &row,
        &findings.pending,
        payload.as_deref().map(|p| (p, true)),
    )
    .await?;
    Ok(InputResult::from_row(input, &stored))
}

/// Several small inputs, complete in memory, none rejected and none with failure reports, in
/// one statement and one transaction ([`aggregate::store_batch`]). Their digests must differ.
pub(crate) async fn store_small_batch(
    store: &Store,
    items: &[&(Envelope, Provenance, Findings, Limits)],
) -> Result<Vec<InputResult>, StoreError> {
    let starts: Vec<DateTime<Utc>> =
        items.iter().flat_map(|(_, _, findings, _)| findings.pending.iter().map(|r| r.header.date_begin)).collect();
    store.ensure_partitions(starts).await?;
    let inputs: Vec<aggregate::BatchInput<'_>> = items
        .iter()
        .map(|(_, provenance, findings, _)| aggregate::BatchInput {
            provenance,
            row: findings.row(),
            reports: &findings.pending,
        })
        .collect();
    let mut conn = store.pool().acquire().await?;
    let stored = aggregate::store_batch(&mut conn, &inputs).await?;
    Ok(stored.iter().map(|(input, row)| InputResult::from_row(*input, row)).collect())
}

/// The large route: writes as it reads, on a blocking thread, with its own connection.
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
    findings: Findings,
}

impl<'a> Ingest<'a> {
    /// Runs the large route for a new input. On error (the database failed) nothing of the
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
            let row = InputRow::duplicate_of(original);
            let input = handle.block_on(inputs::insert_input(&mut conn, &provenance, &row, None))?;
            return Ok(InputResult::from_row(input, &row));
        }
        Ingest::new(store, handle, envelope, limits, Target::New(provenance), conn, None).execute()
    }

    /// Writes an input parsed in memory whose reports are too many records for the single
    /// statement: through the transactional route, with COPY.
    pub(crate) fn write_findings(
        store: &'a Store,
        handle: &'a Handle,
        envelope: &'a Envelope,
        limits: &'a Limits,
        provenance: Provenance,
        findings: Findings,
    ) -> Result<InputResult, StoreError> {
        let mut conn = handle.block_on(store.pool().acquire())?;
        if let Some(original) = handle.block_on(inputs::find_identical(&mut conn, &provenance.fingerprint.sha256))? {
            let row = InputRow::duplicate_of(original);
            let input = handle.block_on(inputs::insert_input(&mut conn, &provenance, &row, None))?;
            return Ok(InputResult::from_row(input, &row));
        }
        let mut ingest = Ingest::new(store, handle, envelope, limits, Target::New(provenance), conn, None);
        ingest.findings = findings;
        let result = ingest.complete();
        if result.is_err() && ingest.tx_open {
            ingest.abandon();
        }
        result
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
            findings: Findings::default(),
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
                let row = self.findings.row();
                let id = handle.block_on(inputs::insert_input(self.conn(), &provenance, &row, None))?;
                self.written = Some(row);
                id
            }
            Target::Existing { input } => input,
        };
        self.input = Some(input);
        Ok(input)
    }

    fn ensure_partitions(&self, starts: impl IntoIterator<Item = DateTime<Utc>>) -> Result<(), StoreError> {
        self.handle.block_on(self.store.ensure_partitions(starts))
    }

    /// Records a report found to be a duplicate of a stored one.
    fn count_duplicate(&mut self, header: &ReportHeader) -> Result<(), StoreError> {
        let handle = self.handle;
        let original = handle.block_on(aggregate::find_report(self.conn(), header))?;
        self.findings.tally.count_duplicate(original.map(|(_, origin)| origin), self.input);
        Ok(())
    }

    /// Writes the complete reports collected so far.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.flush_forensic()?;
        if self.findings.pending.is_empty() {
            return Ok(());
        }
        self.ensure_partitions(self.findings.pending.iter().map(|r| r.header.date_begin))?;
        let input = self.begin()?;
        let handle = self.handle;
        let received_at = self.envelope.received_at;
        let mut copy_data = Vec::new();
        // Their rollup rows are summed here, as those of streamed reports are: the refresh
        // would read every record back.
        let (mut daily, mut sources) = (Vec::new(), Vec::new());
        for report in std::mem::take(&mut self.findings.pending) {
            self.findings.tally.reports_seen += 1;
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
                    let mut sums = RollupSums::new(&report.header);
                    for (index, record) in report.records.iter().enumerate() {
                        aggregate::encode_record(&mut copy_data, id, index as u64 + 1, &date_begin, record);
                        sums.add(record);
                    }
                    daily.extend_from_slice(&sums.daily_rows());
                    sources.extend_from_slice(&sums.source_rows());
                    let tally = &mut self.findings.tally;
                    tally.reports_stored += 1;
                    tally.records += report.summary.record_count;
                    tally.messages += report.summary.message_count;
                }
                None => self.count_duplicate(&report.header)?,
            }
        }
        self.findings.pending_records = 0;
        let conn = &mut *self.conn;
        handle.block_on(async {
            for (statement, rows) in [(RECORDS_COPY, copy_data), (DAILY_COPY, daily), (SOURCES_COPY, sources)] {
                if !rows.is_empty() {
                    let mut copy = conn.copy_in_raw(statement).await?;
                    copy.send(rows).await?;
                    copy.finish().await?;
                }
            }
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Seals and writes the failure reports collected so far.
    fn flush_forensic(&mut self) -> Result<(), StoreError> {
        if self.findings.pending_forensic.is_empty() {
            return Ok(());
        }
        let input = self.begin()?;
        let handle = self.handle;
        let received_at = self.envelope.received_at;
        let sealer = self.store.sealer();
        if sealer.is_none() {
            self.findings.warn(
                "sample_not_kept",
                "no age recipients configured ([forensic] recipients): the report mail is not stored, only its \
                 clear fields"
                    .into(),
            );
        }
        for pending in std::mem::take(&mut self.findings.pending_forensic) {
            self.findings.tally.reports_seen += 1;
            let sealed = sealer.map(|sealer| sealer.seal(&pending.raw)).transpose().map_err(StoreError::Seal)?;
            let item = SealedReport { report: &pending.report, sealed };
            match handle.block_on(forensic::insert_report(self.conn(), input, received_at, &item))? {
                Some(_) => {
                    self.findings.tally.reports_stored += 1;
                    self.findings.tally.forensic_stored += 1;
                }
                None => {
                    let original = handle.block_on(forensic::find_report(self.conn(), &pending.report.fingerprint))?;
                    self.findings.tally.count_duplicate(original.map(|(_, origin)| origin), self.input);
                }
            }
        }
        Ok(())
    }

    /// Streams a large report into the database while the rest of it is parsed.
    fn stream_report(
        &mut self,
        location: &str,
        mut parser: Box<AggregateParser<&mut dyn std::io::BufRead>>,
        first_records: Vec<Record>,
    ) -> Result<(), StoreError> {
        let header = parser.header().clone();
        self.ensure_partitions([header.date_begin])?;
        let input = self.begin()?;
        let handle = self.handle;
        handle.block_on(sqlx::query("SAVEPOINT streamed_report").execute(self.conn()))?;
        self.findings.tally.reports_seen += 1;
        let received_at = self.envelope.received_at;
        let Some(report) = handle.block_on(aggregate::insert_report(self.conn(), input, &header, None, received_at))?
        else {
            // Already stored: the rest of the document need not be read.
            handle.block_on(sqlx::query("RELEASE SAVEPOINT streamed_report").execute(self.conn()))?;
            return self.count_duplicate(&header);
        };

        let conn = &mut *self.conn;
        let date_begin = aggregate::timestamp_text(header.date_begin);
        let mut sums = RollupSums::new(&header);
        let streamed: Result<Result<_, IngestError>, sqlx::Error> = handle.block_on(async {
            let mut copy = conn.copy_in_raw(RECORDS_COPY).await?;
            let mut data = Vec::with_capacity(COPY_CHUNK + 4096);
            let mut number = 0u64;
            for record in &first_records {
                number += 1;
                aggregate::encode_record(&mut data, report, number, &date_begin, record);
                sums.add(record);
            }
            drop(first_records);
            loop {
                // Parsing is synchronous; it runs between sends while PostgreSQL works.
                match parser.next_record() {
                    Ok(Some(record)) => {
                        number += 1;
                        aggregate::encode_record(&mut data, report, number, &date_begin, &record);
                        sums.add(&record);
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
                self.findings.problem(location, err);
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        handle.block_on(aggregate::complete_streamed_report(self.conn(), report, &summary, &sums))?;
        handle.block_on(sqlx::query("RELEASE SAVEPOINT streamed_report").execute(self.conn()))?;
        let tally = &mut self.findings.tally;
        tally.reports_stored += 1;
        tally.records += summary.record_count;
        tally.messages += summary.message_count;
        Ok(())
    }

    /// Writes the input's outcome and commits.
    fn complete(&mut self) -> Result<InputResult, StoreError> {
        let handle = self.handle;
        let keep = self.findings.row().outcome == Outcome::Rejected;
        let payload = match self.target {
            Target::New(_) if keep => self.findings.payload_to_keep(self.envelope, self.limits, self.store.sealer()),
            _ => None,
        };
        let sealed = true;

        if !self.tx_open && !self.findings.has_pending() {
            // Nothing written yet (not a report, rejected): one statement.
            let row = self.findings.row();
            let input = match self.target.clone() {
                Target::New(provenance) => handle.block_on(inputs::insert_input(
                    self.conn(),
                    &provenance,
                    &row,
                    payload.as_deref().map(|p| (p, sealed)),
                ))?,
                Target::Existing { input } => {
                    handle.block_on(inputs::update_input(self.conn(), input, &row, true))?;
                    input
                }
            };
            return Ok(InputResult::from_row(input, &row));
        }

        self.flush()?;
        let input = self.begin()?;
        let row = self.findings.row();
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

impl Visitor for Ingest<'_> {
    type Error = StoreError;

    fn document(&mut self, document: Document<'_>) -> Result<(), StoreError> {
        let location = document.location.to_owned();
        match read_document(&mut self.findings, document, self.limits, Some(STREAM_THRESHOLD)) {
            Read::Outgrew(parser, records) => self.stream_report(&location, parser, records),
            Read::Done if self.findings.pending_records > FLUSH_THRESHOLD => self.flush(),
            Read::Done => Ok(()),
        }
    }

    fn forensic(&mut self, _location: &str, report: ForensicReport, raw: &[u8]) -> Result<(), StoreError> {
        self.findings.add_forensic(report, raw);
        Ok(())
    }

    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), StoreError> {
        self.findings.problem(location, error);
        Ok(())
    }

    fn skipped(&mut self, location: &str, what: &str) {
        self.findings.skip(location, what.to_owned());
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.findings.warn(code, message);
    }
}
