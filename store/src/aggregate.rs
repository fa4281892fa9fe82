//! Writing aggregate reports: the report row (deduplicated by its natural key) and its
//! records, loaded with COPY.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::model::{AggregateReport, Record, ReportHeader, ReportSummary, Schema, Warning, WireEnum};
use serde::Serialize;
use sqlx::PgConnection;

use crate::copy::CopyRow;
pub(crate) use crate::copy::timestamp_text;
use crate::error::StoreError;

pub(crate) const RECORDS_COPY: &str = "COPY aggregate_records (report, record_no, date_begin, source_ip, \
     message_count, disposition, dkim_aligned, spf_aligned, override_reasons, override_comments, header_from, \
     envelope_from, envelope_to, dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count, \
     spf_domain, spf_scope, spf_result, spf_human_result, auth_more, raw, extensions) FROM STDIN";

/// Inserts the report row unless a report with the same natural key exists; returns the new
/// id, or `None` for a duplicate. `summary` is absent for a report still being streamed (its
/// totals are written by [`complete_streamed_report`]).
pub(crate) async fn insert_report(
    conn: &mut PgConnection,
    input: i64,
    header: &ReportHeader,
    summary: Option<&ReportSummary>,
    received_at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let policy = &header.policy;
    let warnings = summary.map(|s| warnings_json(&s.warnings)).unwrap_or_else(|| serde_json::json!([]));
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO aggregate_reports (input, org_name, org_email, extra_contact_info, report_id, policy_domain, \
             date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp, policy_np, \
             policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing, policy_discovery_method, extensions, \
             record_count, message_count, warnings, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26, $27) \
         ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING \
         RETURNING id",
    )
    .bind(input)
    .bind(&header.org_name)
    .bind(&header.org_email)
    .bind(&header.extra_contact_info)
    .bind(&header.report_id)
    .bind(&policy.domain)
    .bind(header.date_begin)
    .bind(header.date_end)
    .bind(&header.errors)
    .bind(&header.generator)
    .bind(summary.map_or(Schema::Rfc7489, |s| s.schema).as_str())
    .bind(&header.namespace)
    .bind(&header.version)
    .bind(policy.p.map(WireEnum::as_str))
    .bind(policy.sp.map(WireEnum::as_str))
    .bind(policy.np.map(WireEnum::as_str))
    .bind(policy.pct)
    .bind(policy.adkim.map(WireEnum::as_str))
    .bind(policy.aspf.map(WireEnum::as_str))
    .bind(&policy.fo)
    .bind(policy.testing.map(WireEnum::as_str))
    .bind(policy.discovery_method.map(WireEnum::as_str))
    .bind(summary.and_then(|s| s.extensions.as_deref()))
    .bind(summary.map_or(0, |s| s.record_count as i64))
    .bind(summary.map_or(0, |s| s.message_count))
    .bind(warnings)
    .bind(received_at)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

/// The id and input of the stored report with the same natural key as `header`.
pub(crate) async fn find_report(
    conn: &mut PgConnection,
    header: &ReportHeader,
) -> Result<Option<(i64, i64)>, StoreError> {
    let found = sqlx::query_as(
        "SELECT id, input FROM aggregate_reports \
         WHERE org_name = $1 AND report_id = $2 AND policy_domain = $3 AND date_begin = $4 AND date_end = $5",
    )
    .bind(&header.org_name)
    .bind(&header.report_id)
    .bind(&header.policy.domain)
    .bind(header.date_begin)
    .bind(header.date_end)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found)
}

/// Writes the totals, schema, extensions and warnings of a report whose records were streamed.
pub(crate) async fn complete_streamed_report(
    conn: &mut PgConnection,
    id: i64,
    summary: &ReportSummary,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE aggregate_reports SET record_count = $2, message_count = $3, schema = $4, extensions = $5, warnings = $6 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(summary.record_count as i64)
    .bind(summary.message_count)
    .bind(summary.schema.as_str())
    .bind(&summary.extensions)
    .bind(warnings_json(&summary.warnings))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) fn warnings_json(warnings: &[Warning]) -> serde_json::Value {
    serde_json::to_value(warnings).unwrap_or_else(|_| serde_json::json!([]))
}

/// Appends one record as a COPY row of [`RECORDS_COPY`]; `date_begin` is the report's, in
/// COPY form ([`timestamp_text`]).
pub(crate) fn encode_record(out: &mut Vec<u8>, report: i64, record_no: u64, date_begin: &str, record: &Record) {
    let mut row = CopyRow::new(out);
    let dkim = record.dkim.first();
    let spf = record.spf.first();
    row.int(report).int(record_no as i64).preformatted(date_begin).ip(record.source_ip).int(record.count);
    row.text(record.disposition.map(WireEnum::as_str))
        .text(record.dkim_aligned.map(WireEnum::as_str))
        .text(record.spf_aligned.map(WireEnum::as_str));
    if record.reasons.is_empty() {
        row.null().null();
    } else {
        row.text_array(record.reasons.iter().map(|r| Some(r.kind.as_str())))
            .text_array(record.reasons.iter().map(|r| r.comment.as_deref()));
    }
    row.text(record.header_from.as_deref()).text(record.envelope_from.as_deref()).text(record.envelope_to.as_deref());
    row.int(record.dkim.len() as i64)
        .text(dkim.and_then(|d| d.domain.as_deref()))
        .text(dkim.and_then(|d| d.selector.as_deref()))
        .text(dkim.and_then(|d| d.result.map(WireEnum::as_str)))
        .text(dkim.and_then(|d| d.human_result.as_deref()));
    row.int(record.spf.len() as i64)
        .text(spf.and_then(|s| s.domain.as_deref()))
        .text(spf.and_then(|s| s.scope.map(WireEnum::as_str)))
        .text(spf.and_then(|s| s.result.map(WireEnum::as_str)))
        .text(spf.and_then(|s| s.human_result.as_deref()));
    row.text(auth_more(record).map(|more| more.to_string()).as_deref());
    row.text(raw_json(record).map(|raw| raw.to_string()).as_deref());
    row.text(record.extensions.as_deref()).end();
}

/// The DKIM and SPF results after the first of each kind, for `auth_more`.
fn auth_more(record: &Record) -> Option<serde_json::Value> {
    if record.dkim.len() < 2 && record.spf.len() < 2 {
        return None;
    }
    let mut more = serde_json::Map::new();
    if record.dkim.len() > 1 {
        more.insert("dkim".into(), serde_json::to_value(&record.dkim[1..]).unwrap_or_default());
    }
    if record.spf.len() > 1 {
        more.insert("spf".into(), serde_json::to_value(&record.spf[1..]).unwrap_or_default());
    }
    Some(serde_json::Value::Object(more))
}

/// The original text of normalized values, keyed by field path.
fn raw_json(record: &Record) -> Option<serde_json::Value> {
    (!record.raw.is_empty()).then(|| {
        serde_json::Value::Object(
            record.raw.iter().map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone()))).collect(),
        )
    })
}

/// A report and its records as the JSON `dmarcpipe_store_input` reads (column names as keys).
pub(crate) fn report_json(report: &AggregateReport, received_at: DateTime<Utc>) -> serde_json::Value {
    let header = &report.header;
    let policy = &header.policy;
    let summary = &report.summary;
    let columns = serde_json::json!({
        "org_name": header.org_name,
        "org_email": header.org_email,
        "extra_contact_info": header.extra_contact_info,
        "report_id": header.report_id,
        "policy_domain": policy.domain,
        "date_begin": header.date_begin,
        "date_end": header.date_end,
        "errors": header.errors,
        "generator": header.generator,
        "schema": summary.schema.as_str(),
        "namespace": header.namespace,
        "xml_version": header.version,
        "policy_p": policy.p.map(WireEnum::as_str),
        "policy_sp": policy.sp.map(WireEnum::as_str),
        "policy_np": policy.np.map(WireEnum::as_str),
        "policy_pct": policy.pct,
        "policy_adkim": policy.adkim.map(WireEnum::as_str),
        "policy_aspf": policy.aspf.map(WireEnum::as_str),
        "policy_fo": policy.fo,
        "policy_testing": policy.testing.map(WireEnum::as_str),
        "policy_discovery_method": policy.discovery_method.map(WireEnum::as_str),
        "extensions": summary.extensions,
        "record_count": summary.record_count,
        "message_count": summary.message_count,
        "warnings": warnings_json(&summary.warnings),
        "received_at": received_at,
    });
    let records: Vec<RecordRow<'_>> = report
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| RecordRow::new(index as u64 + 1, header.date_begin, record))
        .collect();
    serde_json::json!({ "report": columns, "records": records })
}

/// One `aggregate_records` row, keyed by column name.
#[derive(Serialize)]
struct RecordRow<'a> {
    record_no: u64,
    date_begin: DateTime<Utc>,
    source_ip: Option<std::net::IpAddr>,
    message_count: i64,
    disposition: Option<&'static str>,
    dkim_aligned: Option<&'static str>,
    spf_aligned: Option<&'static str>,
    override_reasons: Option<Vec<&'a str>>,
    override_comments: Option<Vec<Option<&'a str>>>,
    header_from: Option<&'a str>,
    envelope_from: Option<&'a str>,
    envelope_to: Option<&'a str>,
    dkim_count: usize,
    dkim_domain: Option<&'a str>,
    dkim_selector: Option<&'a str>,
    dkim_result: Option<&'static str>,
    dkim_human_result: Option<&'a str>,
    spf_count: usize,
    spf_domain: Option<&'a str>,
    spf_scope: Option<&'static str>,
    spf_result: Option<&'static str>,
    spf_human_result: Option<&'a str>,
    auth_more: Option<serde_json::Value>,
    raw: Option<serde_json::Value>,
    extensions: Option<&'a str>,
}

impl<'a> RecordRow<'a> {
    fn new(record_no: u64, date_begin: DateTime<Utc>, record: &'a Record) -> Self {
        let dkim = record.dkim.first();
        let spf = record.spf.first();
        let reasons = !record.reasons.is_empty();
        RecordRow {
            record_no,
            date_begin,
            source_ip: record.source_ip,
            message_count: record.count,
            disposition: record.disposition.map(WireEnum::as_str),
            dkim_aligned: record.dkim_aligned.map(WireEnum::as_str),
            spf_aligned: record.spf_aligned.map(WireEnum::as_str),
            override_reasons: reasons.then(|| record.reasons.iter().map(|r| r.kind.as_str()).collect()),
            override_comments: reasons.then(|| record.reasons.iter().map(|r| r.comment.as_deref()).collect()),
            header_from: record.header_from.as_deref(),
            envelope_from: record.envelope_from.as_deref(),
            envelope_to: record.envelope_to.as_deref(),
            dkim_count: record.dkim.len(),
            dkim_domain: dkim.and_then(|d| d.domain.as_deref()),
            dkim_selector: dkim.and_then(|d| d.selector.as_deref()),
            dkim_result: dkim.and_then(|d| d.result.map(WireEnum::as_str)),
            dkim_human_result: dkim.and_then(|d| d.human_result.as_deref()),
            spf_count: record.spf.len(),
            spf_domain: spf.and_then(|s| s.domain.as_deref()),
            spf_scope: spf.and_then(|s| s.scope.map(WireEnum::as_str)),
            spf_result: spf.and_then(|s| s.result.map(WireEnum::as_str)),
            spf_human_result: spf.and_then(|s| s.human_result.as_deref()),
            auth_more: auth_more(record),
            raw: raw_json(record),
            extensions: record.extensions.as_deref(),
        }
    }
}
