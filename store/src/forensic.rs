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
use sha2::Digest;
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::StoreError;
use crate::rows::{ForensicReportRow, storable_json};

/// The row of a failure report; `sealed` is its sealed mail (`None` when no recipient is
/// configured), of which the row keeps the hash and size.
pub(crate) fn report_row<'a>(
    id: i64,
    input: i64,
    received_at: DateTime<Utc>,
    report: &'a ForensicReport,
    sealed: Option<&[u8]>,
) -> ForensicReportRow<'a> {
    ForensicReportRow {
        id,
        input,
        fingerprint: hex_bytes(&report.fingerprint),
        received_at,
        format: report.format.as_str(),
        feedback_type: &report.feedback_type,
        version: report.version.as_deref(),
        user_agent: report.user_agent.as_deref(),
        incidents: i64::from(report.incidents),
        arrival_date: report.arrival_date,
        source_ip: report.source_ip,
        source_port: report.source_port.map(i32::from),
        reporting_mta: report.reporting_mta.as_deref(),
        reported_domains: &report.reported_domains,
        auth_failure: report.auth_failure.as_deref(),
        delivery_result: report.delivery_result.as_deref(),
        delivery_result_raw: report.delivery_result_raw.as_deref(),
        dkim_domain: report.dkim_domain.as_deref(),
        dkim_selector: report.dkim_selector.as_deref(),
        identity_alignment: report.identity_alignment.as_deref(),
        original_mail_from: report.original_mail_from.as_deref(),
        original_part: report.original.map(|part| match part {
            OriginalPart::Message => "message",
            OriginalPart::Headers => "headers",
            OriginalPart::InText => "in_text",
        }),
        warnings: storable_json(serde_json::to_value(&report.warnings).unwrap_or_default()),
        sealed_sha256: sealed.map(|sealed| sha2::Sha256::digest(sealed).to_vec()),
        sealed_size: sealed.map(|sealed| sealed.len() as i32),
    }
}

/// The bytes of a hexadecimal digest (the fingerprint is made by the parser: always valid).
fn hex_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok().and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
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

/// The columns of a [`ForensicRow`], in its order (which is also that of its JSON keys).
pub const ROW_COLUMNS: &str = "id, input, received_at, arrival_date, source_ip, source_port, reporting_mta, \
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
            // NULL for reports without a Source-IP, as for records without one in the rollups.
            CountKey::Source => "host(source_ip)",
            CountKey::Day => "to_char(coalesce(arrival_date, received_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }
}

/// The filter part of the queries below: domain, days `[$2, $3)` of arrival (UTC).
pub(crate) const COUNT_FILTER: &str = "($1::text IS NULL OR reported_domains @> ARRAY[lower($1)]) \
    AND ($2::date IS NULL OR coalesce(arrival_date, received_at) >= $2::date::timestamp AT TIME ZONE 'UTC') \
    AND ($3::date IS NULL OR coalesce(arrival_date, received_at) < $3::date::timestamp AT TIME ZONE 'UTC')";

/// Failure reports per key, for the `forensic` column of the rollups (`None`: reports without
/// a Source-IP).
pub async fn counts(
    pool: &PgPool,
    key: CountKey,
    filter: &crate::rollup::RollupFilter,
) -> Result<Vec<(Option<String>, i64)>, StoreError> {
    let sql = format!(
        "SELECT key, count(*) FROM (SELECT {key} AS key, reported_domains FROM forensic_reports WHERE {COUNT_FILTER}) k \
         WHERE $1::text IS NULL OR key = lower($1) OR {not_domain} GROUP BY key",
        key = key.expression(),
        not_domain = if key == CountKey::Domain { "false" } else { "true" },
    );
    // Only constant expressions are formatted in.
    filter.fetch_all(pool, sql).await
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
    filter.fetch_all(pool, sql).await
}
