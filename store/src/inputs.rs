//! Input provenance: one row per input with its origin, fingerprint and outcome, and the kept
//! bytes of rejected inputs.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::envelope::Fingerprint;
use serde::Serialize;
use sqlx::PgConnection;

use crate::error::StoreError;

/// The one outcome of every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// At least one new report was stored.
    Stored,
    /// Every report in it was stored before (or the very same bytes were).
    Duplicate,
    /// No report in it: a bounce, a human reply, a "[Preview]" mail.
    NotReport,
    /// Something in it could not be read; the reason is recorded and the bytes kept.
    Rejected,
}

impl Outcome {
    pub(crate) fn parse(text: &str) -> Option<Outcome> {
        match text {
            "stored" => Some(Outcome::Stored),
            "duplicate" => Some(Outcome::Duplicate),
            "not_report" => Some(Outcome::NotReport),
            "rejected" => Some(Outcome::Rejected),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::NotReport => "not_report",
            Outcome::Rejected => "rejected",
        }
    }
}

/// The row of an input as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputRow {
    pub outcome: Outcome,
    pub stage: Option<&'static str>,
    pub error: Option<String>,
    pub warnings: serde_json::Value,
    pub duplicate_of: Option<i64>,
    pub reports_stored: i32,
    pub reports_duplicate: i32,
    pub records: i64,
    pub messages: i64,
    /// How many of `reports_stored` are failure (forensic) reports.
    pub forensic_reports: i32,
}

impl InputRow {
    /// The row of an input whose very bytes arrived before as input `original`.
    pub(crate) fn duplicate_of(original: i64) -> Self {
        InputRow {
            outcome: Outcome::Duplicate,
            stage: None,
            error: None,
            warnings: serde_json::json!([]),
            duplicate_of: Some(original),
            reports_stored: 0,
            reports_duplicate: 0,
            records: 0,
            messages: 0,
            forensic_reports: 0,
        }
    }
}

/// Where and when an input arrived.
#[derive(Debug, Clone)]
pub(crate) struct Provenance {
    pub channel: &'static str,
    pub origin: String,
    pub fingerprint: Fingerprint,
    pub received_at: DateTime<Utc>,
}

/// The earliest input with the same bytes that was not rejected (rejected inputs are parsed
/// again: the parser may have improved since).
pub(crate) async fn find_identical(conn: &mut PgConnection, sha256: &[u8; 32]) -> Result<Option<i64>, StoreError> {
    // Not `min(id)`: the planner may answer that by walking the primary key until a row
    // matches, which reads the whole table when none does.
    Ok(sqlx::query_scalar("SELECT id FROM inputs WHERE sha256 = $1 AND outcome <> 'rejected' ORDER BY id LIMIT 1")
        .bind(&sha256[..])
        .fetch_optional(&mut *conn)
        .await?)
}

pub(crate) async fn insert_input(
    conn: &mut PgConnection,
    provenance: &Provenance,
    row: &InputRow,
    payload: Option<(&[u8], bool)>,
) -> Result<i64, StoreError> {
    // One statement, so that an input and its kept bytes are written together even outside
    // of a transaction.
    let id = sqlx::query_scalar(
        "WITH input AS ( \
             INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, stage, error, warnings, \
                 duplicate_of, reports_stored, reports_duplicate, records, messages, forensic_reports) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $17) \
             RETURNING id \
         ), kept AS ( \
             INSERT INTO input_payloads (input, sealed, payload) \
             SELECT id, $16, $15 FROM input WHERE $15::bytea IS NOT NULL \
         ) \
         SELECT id FROM input",
    )
    .bind(provenance.channel)
    .bind(&provenance.origin)
    .bind(&provenance.fingerprint.sha256[..])
    .bind(provenance.fingerprint.size as i64)
    .bind(provenance.received_at)
    .bind(row.outcome.as_str())
    .bind(row.stage)
    .bind(&row.error)
    .bind(&row.warnings)
    .bind(row.duplicate_of)
    .bind(row.reports_stored)
    .bind(row.reports_duplicate)
    .bind(row.records)
    .bind(row.messages)
    .bind(payload.map(|(bytes, _)| bytes))
    .bind(payload.is_some_and(|(_, sealed)| sealed))
    .bind(row.forensic_reports)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Rewrites the outcome of an input: after duplicates were found, or after `reprocess`.
pub(crate) async fn update_input(
    conn: &mut PgConnection,
    id: i64,
    row: &InputRow,
    reprocessed: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE inputs SET outcome = $2, stage = $3, error = $4, warnings = $5, duplicate_of = $6, \
             reports_stored = $7, reports_duplicate = $8, records = $9, messages = $10, \
             attempts = attempts + $11::integer, processed_at = now(), forensic_reports = $12 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(row.outcome.as_str())
    .bind(row.stage)
    .bind(&row.error)
    .bind(&row.warnings)
    .bind(row.duplicate_of)
    .bind(row.reports_stored)
    .bind(row.reports_duplicate)
    .bind(row.records)
    .bind(row.messages)
    .bind(i32::from(reprocessed))
    .bind(row.forensic_reports)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn keep_payload(
    conn: &mut PgConnection,
    input: i64,
    bytes: &[u8],
    sealed: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO input_payloads (input, sealed, payload) VALUES ($1, $2, $3) \
         ON CONFLICT (input) DO UPDATE SET sealed = excluded.sealed, payload = excluded.payload",
    )
    .bind(input)
    .bind(sealed)
    .bind(bytes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn drop_payload(conn: &mut PgConnection, input: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM input_payloads WHERE input = $1").bind(input).execute(&mut *conn).await?;
    Ok(())
}
