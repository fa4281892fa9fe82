//! Aggregate reports as rows: the report row (whose natural key makes a second arrival a
//! duplicate) and its records, from the normalized model of `dmarcpipe_ingest`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::model::{DkimAuth, Record, ReportHeader, ReportSummary, Schema, SpfAuth, Warning, WireEnum};

use crate::error::StoreError;
use crate::rows::{JsonText, RecordRow, ReportRow, Stamp, copy_statement, storable, storable_json};
use crate::write::{Tx, timely};

/// `COPY aggregate_records (...) FROM STDIN`, for the records of large reports.
pub(crate) static RECORDS_COPY: LazyLock<String> =
    LazyLock::new(|| copy_statement(RecordRow::TABLE, RecordRow::COLUMNS));

/// What identifies a report whoever sends it again: reporter, report id, domain, period.
pub(crate) type NaturalKey<'a> = (&'a str, &'a str, &'a str, DateTime<Utc>, DateTime<Utc>);

pub(crate) fn natural_key(header: &ReportHeader) -> NaturalKey<'_> {
    (&header.org_name, &header.report_id, &header.policy.domain, header.date_begin, header.date_end)
}

/// The row of a report. `summary` is absent for a report whose records are still being
/// streamed: its totals are written by [`complete_streamed_report`].
pub(crate) fn report_row<'a>(
    id: i64,
    input: i64,
    header: &'a ReportHeader,
    summary: Option<&'a ReportSummary>,
    received_at: DateTime<Utc>,
) -> ReportRow<'a> {
    let policy = &header.policy;
    ReportRow {
        id,
        input,
        org_name: &header.org_name,
        org_email: header.org_email.as_deref(),
        extra_contact_info: header.extra_contact_info.as_deref(),
        report_id: &header.report_id,
        policy_domain: &policy.domain,
        date_begin: header.date_begin,
        date_end: header.date_end,
        errors: &header.errors,
        generator: header.generator.as_deref(),
        schema: summary.map_or(Schema::Rfc7489, |s| s.schema).as_str(),
        namespace: header.namespace.as_deref(),
        xml_version: header.version.as_deref(),
        policy_p: policy.p.map(WireEnum::as_str),
        policy_sp: policy.sp.map(WireEnum::as_str),
        policy_np: policy.np.map(WireEnum::as_str),
        policy_pct: policy.pct,
        policy_adkim: policy.adkim.map(WireEnum::as_str),
        policy_aspf: policy.aspf.map(WireEnum::as_str),
        policy_fo: policy.fo.as_deref(),
        policy_testing: policy.testing.map(WireEnum::as_str),
        policy_discovery_method: policy.discovery_method.map(WireEnum::as_str),
        extensions: summary.and_then(|s| s.extensions.as_deref()),
        record_count: summary.map_or(0, |s| s.record_count as i64),
        message_count: summary.map_or(0, |s| s.message_count),
        warnings: summary.map_or_else(|| serde_json::json!([]), |s| warnings_json(&s.warnings)),
        received_at,
    }
}

/// The row of record number `record_no` (from 1) of report `report`, which began at
/// `date_begin`.
pub(crate) fn record_row<'a>(report: i64, record_no: u64, date_begin: &'a Stamp, record: &'a Record) -> RecordRow<'a> {
    let dkim = record.dkim.first();
    let spf = record.spf.first();
    let reasons = !record.reasons.is_empty();
    RecordRow {
        report,
        record_no: record_no as i32,
        date_begin,
        source_ip: record.source_ip,
        message_count: record.count,
        disposition: record.disposition.map(WireEnum::as_str),
        dkim_aligned: record.dkim_aligned.map(WireEnum::as_str),
        spf_aligned: record.spf_aligned.map(WireEnum::as_str),
        override_reasons: reasons.then(|| record.reasons.iter().map(|r| r.kind.as_str()).collect()),
        // No comment at all is an empty list rather than a list of NULLs.
        override_comments: reasons.then(|| {
            if record.reasons.iter().all(|r| r.comment.is_none()) {
                Vec::new()
            } else {
                record.reasons.iter().map(|r| r.comment.as_deref()).collect()
            }
        }),
        header_from: record.header_from.as_deref(),
        envelope_from: record.envelope_from.as_deref(),
        envelope_to: record.envelope_to.as_deref(),
        dkim_count: record.dkim.len().min(i16::MAX as usize) as i16,
        dkim_domain: dkim.and_then(|d| d.domain.as_deref()),
        dkim_selector: dkim.and_then(|d| d.selector.as_deref()),
        dkim_result: dkim.and_then(|d| d.result.map(WireEnum::as_str)),
        dkim_human_result: dkim.and_then(|d| d.human_result.as_deref()),
        spf_count: record.spf.len().min(i16::MAX as usize) as i16,
        spf_domain: spf.and_then(|s| s.domain.as_deref()),
        spf_scope: spf.and_then(|s| s.scope.map(WireEnum::as_str)),
        spf_result: spf.and_then(|s| s.result.map(WireEnum::as_str)),
        spf_human_result: spf.and_then(|s| s.human_result.as_deref()),
        auth_more: auth_more(record),
        raw: raw_json(&record.raw),
        extensions: record.extensions.as_deref(),
    }
}

/// Writes the totals, schema, extensions and warnings of a report whose records were streamed.
pub(crate) async fn complete_streamed_report(
    tx: &mut Tx<'_>,
    id: i64,
    summary: &ReportSummary,
) -> Result<(), StoreError> {
    let query = sqlx::query(
        "UPDATE aggregate_reports SET record_count = $2, message_count = $3, schema = $4, extensions = $5, warnings = $6 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(summary.record_count as i64)
    .bind(summary.message_count)
    .bind(summary.schema.as_str())
    .bind(&summary.extensions)
    .bind(warnings_json(&summary.warnings));
    timely(tx.patience, query.execute(&mut *tx.conn)).await?;
    Ok(())
}

/// A report's warnings as JSON (aggregate and TLS reports).
pub(crate) fn warnings_json(warnings: &[Warning]) -> serde_json::Value {
    storable_json(serde_json::to_value(warnings).unwrap_or_else(|_| serde_json::json!([])))
}

/// The DKIM and SPF results after the first of each kind, for `auth_more`: `{"dkim": [...],
/// "spf": [...]}`, each key only when there are such results.
fn auth_more(record: &Record) -> Option<JsonText> {
    #[derive(serde::Serialize)]
    struct AuthMore<'a> {
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        dkim: &'a [DkimAuth],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        spf: &'a [SpfAuth],
    }
    let more =
        AuthMore { dkim: record.dkim.get(1..).unwrap_or_default(), spf: record.spf.get(1..).unwrap_or_default() };
    (!more.dkim.is_empty() || !more.spf.is_empty()).then(|| JsonText::of(&more))
}

/// The original text of normalized values, keyed by field path (of records, and of TLS
/// reports, policies and failure details); `None` when nothing was changed.
pub(crate) fn raw_json(raw: &[(String, String)]) -> Option<serde_json::Value> {
    (!raw.is_empty()).then(|| {
        serde_json::Value::Object(
            raw.iter()
                .map(|(key, value)| (key.clone(), serde_json::Value::String(storable(value).into_owned())))
                .collect(),
        )
    })
}
