//! Failure (forensic) report rows: the clear columns, the sealed sample beside them, and the
//! queries behind `dmarcpipe forensic list|show`.
//!
//! A report is deduplicated by the fingerprint of its mail body; what identifies people in it
//! (the original's subject, recipients, body, the report's unknown fields) is only ever in the
//! sealed sample.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::forensic::{ForensicReport, OriginalPart};
use ipnetwork::IpNetwork;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::error::StoreError;

/// A report sealed (or not) and ready to be written.
pub(crate) struct SealedReport<'a> {
    pub report: &'a ForensicReport,
    /// The sealed report mail, `None` when no recipient is configured.
    pub sealed: Option<Vec<u8>>,
}

/// Writes a report unless one with the same fingerprint exists; returns its id, or `None`
/// for a duplicate.
pub(crate) async fn insert_report(
    conn: &mut PgConnection,
    input: i64,
    received_at: DateTime<Utc>,
    item: &SealedReport<'_>,
) -> Result<Option<i64>, StoreError> {
    let report = item.report;
    let sealed_sha256 = item.sealed.as_deref().map(sha256);
    let original_part = report.original.map(|part| match part {
        OriginalPart::Message => "message",
        OriginalPart::Headers => "headers",
        OriginalPart::InText => "in_text",
    });
    let id = sqlx::query_scalar(
        "WITH report AS ( \
             INSERT INTO forensic_reports (input, fingerprint, received_at, format, feedback_type, version, \
                 user_agent, incidents, arrival_date, source_ip, source_port, reporting_mta, reported_domains, \
                 auth_failure, delivery_result, delivery_result_raw, dkim_domain, dkim_selector, \
                 identity_alignment, original_mail_from, original_part, warnings, sealed_sha256, sealed_size) \
             VALUES ($1, decode($2, 'hex'), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24) \
             ON CONFLICT (fingerprint) DO NOTHING \
             RETURNING id \
         ), sample AS ( \
             INSERT INTO forensic_samples (report, sealed) SELECT id, $25 FROM report WHERE $25::bytea IS NOT NULL \
         ) \
         SELECT id FROM report",
    )
    .bind(input)
    .bind(&report.fingerprint)
    .bind(received_at)
    .bind(report.format.as_str())
    .bind(&report.feedback_type)
    .bind(&report.version)
    .bind(&report.user_agent)
    .bind(i64::from(report.incidents))
    .bind(report.arrival_date)
    .bind(report.source_ip.map(IpNetwork::from))
    .bind(report.source_port.map(i32::from))
    .bind(&report.reporting_mta)
    .bind(&report.reported_domains)
    .bind(&report.auth_failure)
    .bind(&report.delivery_result)
    .bind(&report.delivery_result_raw)
    .bind(&report.dkim_domain)
    .bind(&report.dkim_selector)
    .bind(&report.identity_alignment)
    .bind(&report.original_mail_from)
    .bind(original_part)
    .bind(serde_json::to_value(&report.warnings).unwrap_or_default())
    .bind(sealed_sha256.as_ref().map(|hash| &hash[..]))
    .bind(item.sealed.as_ref().map(|sealed| sealed.len() as i32))
    .bind(item.sealed.as_deref())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// The report stored with this fingerprint, and the input that brought it.
pub(crate) async fn find_report(conn: &mut PgConnection, fingerprint: &str) -> Result<Option<(i64, i64)>, StoreError> {
    Ok(sqlx::query_as("SELECT id, input FROM forensic_reports WHERE fingerprint = decode($1, 'hex')")
        .bind(fingerprint)
        .fetch_optional(&mut *conn)
        .await?)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Which reports `dmarcpipe forensic list` shows.
#[derive(Debug, Default, Clone)]
pub struct ForensicFilter {
    /// Reports about this domain (any of their reported domains).
    pub domain: Option<String>,
    /// Arrived at or after.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

/// The clear metadata of a stored report: a row of `dmarc_forensic`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ForensicRow {
    pub id: i64,
    pub input: i64,
    pub received_at: DateTime<Utc>,
    pub arrival_date: Option<DateTime<Utc>>,
    #[serde(serialize_with = "serialize_ip")]
    pub source_ip: Option<IpNetwork>,
    pub source_port: Option<i32>,
    pub reporting_mta: Option<String>,
    pub reported_domain: Option<String>,
    pub reported_domains: Vec<String>,
    pub feedback_type: String,
    pub auth_failure: Option<String>,
    pub delivery_result: Option<String>,
    pub dkim_domain: Option<String>,
    pub dkim_selector: Option<String>,
    pub identity_alignment: Option<String>,
    pub original_mail_from: Option<String>,
    pub incidents: i64,
    pub format: String,
    pub sealed_sha256: Option<String>,
    pub sample_kept: bool,
}

fn serialize_ip<S: serde::Serializer>(ip: &Option<IpNetwork>, serializer: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(network) => serializer.serialize_str(&network.ip().to_string()),
        None => serializer.serialize_none(),
    }
}

const ROW_COLUMNS: &str = "id, input, received_at, arrival_date, source_ip, source_port, reporting_mta, \
    reported_domain, reported_domains, feedback_type, auth_failure, delivery_result, dkim_domain, dkim_selector, \
    identity_alignment, original_mail_from, incidents, format, sealed_sha256, sample_kept";

/// Reports matching `filter`, newest arrival first.
pub async fn list(pool: &PgPool, filter: &ForensicFilter) -> Result<Vec<ForensicRow>, StoreError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM dmarc_forensic \
         WHERE ($1::text IS NULL OR reported_domains @> ARRAY[lower($1)]) \
           AND ($2::timestamptz IS NULL OR coalesce(arrival_date, received_at) >= $2) \
           AND ($3::timestamptz IS NULL OR coalesce(arrival_date, received_at) < $3) \
         ORDER BY coalesce(arrival_date, received_at) DESC, id DESC \
         LIMIT $4"
    );
    // Only the constant column list is formatted in.
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(&filter.domain)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.limit)
        .fetch_all(pool)
        .await?)
}

/// One report's clear metadata and its sealed sample, if one was kept.
pub async fn find(pool: &PgPool, id: i64) -> Result<Option<(ForensicRow, Option<Vec<u8>>)>, StoreError> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM dmarc_forensic WHERE id = $1");
    let Some(row) = sqlx::query_as::<_, ForensicRow>(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let sealed = sqlx::query_scalar("SELECT sealed FROM forensic_samples WHERE report = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(Some((row, sealed)))
}

/// What failure reports are counted by in `dmarcpipe report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountKey {
    /// Each reported domain.
    Domain,
    /// Source IP.
    Source,
    /// UTC day of arrival.
    Day,
}

impl CountKey {
    fn expression(self) -> &'static str {
        match self {
            CountKey::Domain => "unnest(reported_domains)",
            CountKey::Source => "coalesce(host(source_ip), 'unknown')",
            CountKey::Day => "to_char(coalesce(arrival_date, received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }
}

/// The filter part of the queries below: domain, days `[$2, $3)` of arrival (UTC).
const COUNT_FILTER: &str = "($1::text IS NULL OR reported_domains @> ARRAY[lower($1)]) \
    AND ($2::date IS NULL OR coalesce(arrival_date, received_at) >= $2::date::timestamp AT TIME ZONE 'UTC') \
    AND ($3::date IS NULL OR coalesce(arrival_date, received_at) < $3::date::timestamp AT TIME ZONE 'UTC')";

/// Failure reports per key, for the `forensic` column of the rollups.
pub async fn counts(
    pool: &PgPool,
    key: CountKey,
    filter: &crate::rollup::RollupFilter,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = format!(
        "SELECT key, count(*) FROM (SELECT {key} AS key, reported_domains FROM forensic_reports WHERE {COUNT_FILTER}) k \
         WHERE $1::text IS NULL OR key = lower($1) OR {not_domain} GROUP BY key",
        key = key.expression(),
        not_domain = if key == CountKey::Domain { "false" } else { "true" },
    );
    // Only constant expressions are formatted in.
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(&filter.domain)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(pool)
        .await?)
}

/// Failure reports of one Auth-Failure type (`dmarcpipe report --by auth-failure`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuthFailureRow {
    pub auth_failure: String,
    /// Incidents (a report may stand for several messages).
    pub messages: i64,
    pub reports: i64,
    pub domains: i64,
    pub sources: i64,
    pub first_arrival: Option<DateTime<Utc>>,
    pub last_arrival: Option<DateTime<Utc>>,
}

pub async fn by_auth_failure(
    pool: &PgPool,
    filter: &crate::rollup::RollupFilter,
) -> Result<Vec<AuthFailureRow>, StoreError> {
    let sql = format!(
        "SELECT coalesce(auth_failure, feedback_type) AS auth_failure, sum(incidents)::bigint AS messages, \
             count(*) AS reports, count(DISTINCT reported_domains[1]) AS domains, \
             count(DISTINCT source_ip) AS sources, min(arrival_date) AS first_arrival, \
             max(arrival_date) AS last_arrival \
         FROM forensic_reports WHERE {COUNT_FILTER} GROUP BY 1 ORDER BY messages DESC, 1"
    );
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(&filter.domain)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(pool)
        .await?)
}
