//! The statements that write inputs, each run inside the transaction of the inputs it writes.
//!
//! Every route into the database (a batch of small inputs, one large input streamed, an input
//! run again by `reprocess`) is made of the same four steps, in one transaction:
//!
//! 1. [`allocate`]: ids for the inputs and their reports, and for each new input the
//!    earliest input with the very same bytes (then it is a duplicate of that one and nothing
//!    else is written for it; a rejected input counts when its bytes were kept, since
//!    `reprocess` reads it again, and one whose bytes were not kept does not, since importing
//!    it again is then the only way to read it again);
//! 2. [`claim`] (aggregate, failure and TLS reports): each report is written unless one with
//!    its natural key exists, with its records (samples; policies and failure details) when it
//!    is new; what comes back is, for each report, whether it is new or which input holds it;
//! 3. records of large reports by `COPY` ([`copy`]), their rollup rows summed as they pass;
//! 4. [`finish`]: the input rows with the outcome the rule gives (`outcome`), the kept bytes
//!    of rejected inputs, the rollup rows of the reports written, and their new source
//!    addresses queued for enrichment (`source_ips`).
//!
//! Rows travel as arrays of the tables' own row types (see `rows`). Each function runs in a
//! [`Tx`]: the connection of an sqlx [`Transaction`](sqlx::Transaction) (or of a savepoint in
//! one), with the time the database may take to answer ([`timely`]), so that a database that
//! froze or vanished without closing the connection fails the input within that time instead
//! of holding it for ever.

use sqlx::postgres::{PgArguments, PgHasArrayType};
use sqlx::query::QueryAs;
use std::time::Duration;

use sqlx::{PgConnection, Postgres};

use crate::error::StoreError;
use crate::outcome::InputOutcome;
use crate::rows::{DailyRow, ForensicReportRow, InputRow, PayloadRow, ReportRow, SourceRow, TlsReportRow};

/// A connection inside a transaction, and how long the database may take to answer a statement.
#[derive(Debug)]
pub(crate) struct Tx<'c> {
    pub conn: &'c mut PgConnection,
    pub patience: Duration,
}

/// `future`, a round trip to the database, or [`StoreError::Timeout`] once `patience` has passed
/// without an answer.
pub(crate) async fn timely<T, E: Into<StoreError>>(
    patience: Duration,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(patience, future).await {
        Ok(answer) => answer.map_err(Into::into),
        Err(_) => Err(StoreError::Timeout(patience)),
    }
}

/// What [`allocate`] hands out for one input.
#[derive(Debug, Default, sqlx::FromRow)]
pub(crate) struct Allocation {
    /// The id of a new input.
    pub input: Option<i64>,
    /// The earliest input with the same bytes, unless it was rejected without its bytes kept:
    /// then no report ids.
    pub identical: Option<i64>,
    pub reports: Vec<i64>,
    pub forensic: Vec<i64>,
    pub tls: Vec<i64>,
}

/// How many report ids of each kind one input asks [`allocate`] for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wanted {
    /// Aggregate reports.
    pub reports: usize,
    /// Failure reports.
    pub forensic: usize,
    /// SMTP TLS reports.
    pub tls: usize,
}

/// What became of a report offered to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Written now.
    New,
    /// A report with the same natural key was there: stored by this input (`Some`), or by an
    /// input not visible yet to this transaction (`None`: a concurrent writer).
    Existing(Option<i64>),
}

/// For each input (`digests[i]` is the SHA-256 of a new input, `None` for one that has an
/// id already): an id when it is new, the identical input if its bytes came before, and the
/// report ids of `wanted[i]` unless its bytes came before.
pub(crate) async fn allocate(
    tx: &mut Tx<'_>,
    digests: &[Option<&[u8]>],
    wanted: &[Wanted],
) -> Result<Vec<Allocation>, StoreError> {
    let count = |kind: fn(&Wanted) -> usize| wanted.iter().map(|w| kind(w) as i32).collect::<Vec<i32>>();
    let query = sqlx::query_as(
        "WITH wanted AS ( \
                 SELECT w.n, w.sha256, w.reports, w.forensic, w.tls, \
                     (SELECT i.id FROM inputs i WHERE i.sha256 = w.sha256 \
                          AND (i.outcome <> 'rejected' OR EXISTS (SELECT 1 FROM input_payloads p WHERE p.input = i.id)) \
                      ORDER BY i.id LIMIT 1) AS identical \
                 FROM unnest($1::bytea[], $2::integer[], $3::integer[], $4::integer[]) WITH ORDINALITY \
                     AS w (sha256, reports, forensic, tls, n) \
             ) \
             SELECT CASE WHEN w.sha256 IS NOT NULL THEN nextval(pg_get_serial_sequence('inputs', 'id')) END AS input, \
                 w.identical, \
                 ARRAY(SELECT nextval(pg_get_serial_sequence('aggregate_reports', 'id')) \
                       FROM generate_series(1, w.reports) WHERE w.identical IS NULL) AS reports, \
                 ARRAY(SELECT nextval(pg_get_serial_sequence('forensic_reports', 'id')) \
                       FROM generate_series(1, w.forensic) WHERE w.identical IS NULL) AS forensic, \
                 ARRAY(SELECT nextval(pg_get_serial_sequence('tls_reports', 'id')) \
                       FROM generate_series(1, w.tls) WHERE w.identical IS NULL) AS tls \
             FROM wanted w ORDER BY w.n",
    )
    .bind(digests)
    .bind(count(|w| w.reports))
    .bind(count(|w| w.forensic))
    .bind(count(|w| w.tls));
    let allocated: Vec<Allocation> = timely(tx.patience, query.fetch_all(&mut *tx.conn)).await?;
    if allocated.len() != digests.len() {
        return Err(StoreError::Data(format!("{} allocations for {} inputs", allocated.len(), digests.len())));
    }
    Ok(allocated)
}

/// A kind of report that is written unless one with its natural key exists (see [`claim`]).
pub(crate) trait Claimable: sqlx::Type<Postgres> + PgHasArrayType + Sync {
    /// `$1`: the reports (the rows of a table); `$2`, ...: rows that belong to them (see
    /// [`Children`]), written only for those written. Gives each report's id, whether it was
    /// written, and otherwise the input of the report that holds its natural key, as far as
    /// this statement sees.
    const CLAIM: &'static str;
    /// `$1`: reports; gives the id of each and the input of the report that holds its key.
    const ORIGINALS: &'static str;

    fn id(&self) -> i64;
}

impl Claimable for ReportRow<'_> {
    const CLAIM: &'static str = "WITH claimed AS ( \
            INSERT INTO aggregate_reports OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::aggregate_reports[]) \
            ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING \
            RETURNING id \
        ), written AS ( \
            INSERT INTO aggregate_records \
            SELECT * FROM unnest($2::aggregate_records[]) AS r WHERE r.report IN (SELECT id FROM claimed) \
        ) \
        SELECT r.id, c.id IS NOT NULL, a.input \
        FROM unnest($1::aggregate_reports[]) AS r \
        LEFT JOIN claimed c ON c.id = r.id \
        LEFT JOIN aggregate_reports a ON c.id IS NULL AND a.org_name = r.org_name AND a.report_id = r.report_id \
            AND a.policy_domain = r.policy_domain AND a.date_begin = r.date_begin AND a.date_end = r.date_end";
    const ORIGINALS: &'static str = "SELECT r.id, a.input FROM unnest($1::aggregate_reports[]) AS r \
        JOIN aggregate_reports a ON a.org_name = r.org_name AND a.report_id = r.report_id \
            AND a.policy_domain = r.policy_domain AND a.date_begin = r.date_begin AND a.date_end = r.date_end";

    fn id(&self) -> i64 {
        self.id
    }
}

impl Claimable for ForensicReportRow<'_> {
    const CLAIM: &'static str = "WITH claimed AS ( \
            INSERT INTO forensic_reports OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::forensic_reports[]) \
            ON CONFLICT ON CONSTRAINT forensic_reports_fingerprint_key DO NOTHING \
            RETURNING id \
        ), written AS ( \
            INSERT INTO forensic_samples \
            SELECT * FROM unnest($2::forensic_samples[]) AS s WHERE s.report IN (SELECT id FROM claimed) \
        ) \
        SELECT r.id, c.id IS NOT NULL, f.input \
        FROM unnest($1::forensic_reports[]) AS r \
        LEFT JOIN claimed c ON c.id = r.id \
        LEFT JOIN forensic_reports f ON c.id IS NULL AND f.fingerprint = r.fingerprint";
    const ORIGINALS: &'static str = "SELECT r.id, f.input FROM unnest($1::forensic_reports[]) AS r \
        JOIN forensic_reports f ON f.fingerprint = r.fingerprint";

    fn id(&self) -> i64 {
        self.id
    }
}

impl Claimable for TlsReportRow<'_> {
    const CLAIM: &'static str = "WITH claimed AS ( \
            INSERT INTO tls_reports OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::tls_reports[]) \
            ON CONFLICT ON CONSTRAINT tls_reports_natural_key DO NOTHING \
            RETURNING id \
        ), policies AS ( \
            INSERT INTO tls_policies \
            SELECT * FROM unnest($2::tls_policies[]) AS p WHERE p.report IN (SELECT id FROM claimed) \
        ), failures AS ( \
            INSERT INTO tls_failures \
            SELECT * FROM unnest($3::tls_failures[]) AS f WHERE f.report IN (SELECT id FROM claimed) \
        ) \
        SELECT r.id, c.id IS NOT NULL, t.input \
        FROM unnest($1::tls_reports[]) AS r \
        LEFT JOIN claimed c ON c.id = r.id \
        LEFT JOIN tls_reports t ON c.id IS NULL AND t.organization_name = r.organization_name \
            AND t.report_id = r.report_id AND t.date_begin = r.date_begin AND t.date_end = r.date_end";
    const ORIGINALS: &'static str = "SELECT r.id, t.input FROM unnest($1::tls_reports[]) AS r \
        JOIN tls_reports t ON t.organization_name = r.organization_name AND t.report_id = r.report_id \
            AND t.date_begin = r.date_begin AND t.date_end = r.date_end";

    fn id(&self) -> i64 {
        self.id
    }
}

/// The rows written with the reports of a [`claim`], for those written only: one array of a
/// table's rows (records, sealed samples), bound as `$2`, or a pair of them (a TLS report's
/// policies and failure details), bound as `$2` and `$3`.
pub(crate) trait Children<'r> {
    fn bind<O>(self, query: QueryAs<'r, Postgres, O, PgArguments>) -> QueryAs<'r, Postgres, O, PgArguments>;
}

impl<'r, C> Children<'r> for &'r [C]
where
    C: sqlx::Type<Postgres> + PgHasArrayType + sqlx::Encode<'r, Postgres> + Sync,
{
    fn bind<O>(self, query: QueryAs<'r, Postgres, O, PgArguments>) -> QueryAs<'r, Postgres, O, PgArguments> {
        query.bind(self)
    }
}

impl<'r, A: Children<'r>, B: Children<'r>> Children<'r> for (A, B) {
    fn bind<O>(self, query: QueryAs<'r, Postgres, O, PgArguments>) -> QueryAs<'r, Postgres, O, PgArguments> {
        self.1.bind(self.0.bind(query))
    }
}

/// Writes each report unless its natural key is taken, and the `children` of those written
/// (records, sealed samples, policies and failure details); returns what became of each report,
/// in order. The reports' natural keys must differ.
pub(crate) async fn claim<'r, R, C>(tx: &mut Tx<'_>, reports: &'r [R], children: C) -> Result<Vec<Claim>, StoreError>
where
    R: Claimable + sqlx::Encode<'r, Postgres>,
    C: Children<'r>,
{
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let answers: Vec<(i64, bool, Option<i64>)> =
        timely(tx.patience, children.bind(sqlx::query_as(R::CLAIM).bind(reports)).fetch_all(&mut *tx.conn)).await?;
    let mut claims = claims(reports.iter().map(R::id), answers)?;
    if claims.contains(&Claim::Existing(None)) {
        // Written by a transaction that committed after the statement began: a new statement
        // sees it.
        let originals: Vec<(i64, i64)> =
            timely(tx.patience, sqlx::query_as(R::ORIGINALS).bind(reports).fetch_all(&mut *tx.conn)).await?;
        fill_originals(reports.iter().map(R::id), &mut claims, originals);
    }
    Ok(claims)
}

/// Loads COPY text rows (see `rows`) into `table`.
pub(crate) async fn copy(tx: &mut Tx<'_>, statement: &str, data: Vec<u8>) -> Result<(), StoreError> {
    if data.is_empty() {
        return Ok(());
    }
    let mut copy = timely(tx.patience, tx.conn.copy_in_raw(statement)).await?;
    timely(tx.patience, copy.send(data)).await?;
    timely(tx.patience, copy.finish()).await?;
    Ok(())
}

/// Writes new inputs, the kept bytes of rejected ones, and rollup rows, and queues the source
/// addresses of the records for enrichment: one `source_ips` row per address not known yet (due
/// at once), from the rollup rows as they are inserted (`RETURNING`: the array of rows is
/// decoded once), which name every distinct address of the reports written.
/// In address order, so that two transactions queueing the same new addresses wait for each
/// other instead of deadlocking.
pub(crate) async fn finish(
    tx: &mut Tx<'_>,
    inputs: &[InputRow<'_>],
    payloads: &[PayloadRow<'_>],
    daily: &[DailyRow],
    sources: &[SourceRow],
) -> Result<(), StoreError> {
    let query = sqlx::query(
        "WITH inputs AS ( \
                 INSERT INTO inputs OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::inputs[]) \
             ), payloads AS ( \
                 INSERT INTO input_payloads SELECT * FROM unnest($2::input_payloads[]) \
             ), daily AS ( \
                 INSERT INTO aggregate_rollup_daily SELECT * FROM unnest($3::aggregate_rollup_daily[]) \
             ), sources AS ( \
                 INSERT INTO aggregate_rollup_sources SELECT * FROM unnest($4::aggregate_rollup_sources[]) \
                 RETURNING source_ip \
             ) \
             INSERT INTO source_ips (ip) \
             SELECT DISTINCT source_ip FROM sources WHERE source_ip IS NOT NULL ORDER BY 1 \
             ON CONFLICT (ip) DO NOTHING",
    )
    .bind(inputs)
    .bind(payloads)
    .bind(daily)
    .bind(sources);
    timely(tx.patience, query.execute(&mut *tx.conn)).await?;
    Ok(())
}

/// Rewrites the outcome of input `input`, run again by `reprocess` (one more attempt), and
/// keeps its bytes only while it is still rejected.
pub(crate) async fn finish_again(tx: &mut Tx<'_>, input: i64, outcome: &InputOutcome) -> Result<(), StoreError> {
    let query = sqlx::query(
        "WITH updated AS ( \
                 UPDATE inputs SET outcome = $2, stage = $3, error = $4, warnings = $5, duplicate_of = $6, \
                     reports_stored = $7, reports_duplicate = $8, records = $9, messages = $10, \
                     forensic_reports = $11, attempts = attempts + 1, processed_at = now() \
                 WHERE id = $1 \
             ) \
             DELETE FROM input_payloads WHERE input = $1 AND $2 <> 'rejected'",
    )
    .bind(input)
    .bind(outcome.outcome.as_str())
    .bind(outcome.stage)
    .bind(&outcome.error)
    .bind(&outcome.warnings)
    .bind(outcome.duplicate_of)
    .bind(outcome.reports_stored)
    .bind(outcome.reports_duplicate)
    .bind(outcome.records)
    .bind(outcome.messages)
    .bind(outcome.forensic_reports);
    timely(tx.patience, query.execute(&mut *tx.conn)).await?;
    Ok(())
}

/// Pairs the database's answers with the reports offered (by id).
fn claims(
    offered: impl Iterator<Item = i64>,
    answers: Vec<(i64, bool, Option<i64>)>,
) -> Result<Vec<Claim>, StoreError> {
    let answers: std::collections::HashMap<i64, Claim> = answers
        .into_iter()
        .map(|(id, new, original)| (id, if new { Claim::New } else { Claim::Existing(original) }))
        .collect();
    offered
        .map(|id| answers.get(&id).copied().ok_or_else(|| StoreError::Data(format!("no answer for report {id}"))))
        .collect()
}

/// Completes `Claim::Existing(None)` answers from a later look-up of `(offered id, input)`.
fn fill_originals(offered: impl Iterator<Item = i64>, claims: &mut [Claim], originals: Vec<(i64, i64)>) {
    let originals: std::collections::HashMap<i64, i64> = originals.into_iter().collect();
    for (id, claim) in offered.zip(claims.iter_mut()) {
        if *claim == Claim::Existing(None) {
            *claim = Claim::Existing(originals.get(&id).copied());
        }
    }
}
