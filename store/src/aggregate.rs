//! Writing aggregate reports: the report row (deduplicated by its natural key) and its
//! records, loaded with COPY.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::model::{AggregateReport, Record, ReportHeader, ReportSummary, Schema, Warning, WireEnum};
use sqlx::PgConnection;
use sqlx::postgres::{PgArguments, Postgres};

use crate::copy::CopyRow;
pub(crate) use crate::copy::timestamp_text;
use crate::error::StoreError;
use crate::inputs::{InputRow, Outcome, Provenance};
use crate::rollup::{DAILY_COPY, RollupSums, SOURCES_COPY};

pub(crate) const RECORDS_COPY: &str = "COPY aggregate_records (report, record_no, date_begin, source_ip, \
     message_count, disposition, dkim_aligned, spf_aligned, override_reasons, override_comments, header_from, \
     envelope_from, envelope_to, dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count, \
     spf_domain, spf_scope, spf_result, spf_human_result, auth_more, raw, extensions) FROM STDIN";

/// Inserts the report row unless a report with the same natural key exists; returns the new
/// id, or `None` for a duplicate. `summary` is absent for a report still being streamed (its
/// totals are written by [`complete_streamed_report`]). The caller writes the report's rollup
/// rows (it is not queued for the refresh).
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
        "WITH inserted AS ( \
             INSERT INTO aggregate_reports (input, org_name, org_email, extra_contact_info, report_id, policy_domain, \
                 date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp, \
                 policy_np, policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing, \
                 policy_discovery_method, extensions, record_count, message_count, warnings, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $21, $22, $23, $24, $25, $26, $27) \
             ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING \
             RETURNING id \
         ) \
         SELECT id FROM inserted",
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

/// Writes the totals, schema, extensions and warnings of a report whose records were streamed,
/// and its rollup rows (summed as it streamed, so it is not queued for the refresh).
pub(crate) async fn complete_streamed_report(
    conn: &mut PgConnection,
    id: i64,
    summary: &ReportSummary,
    sums: &RollupSums,
) -> Result<(), StoreError> {
    for (statement, rows) in [(DAILY_COPY, sums.daily_rows()), (SOURCES_COPY, sums.source_rows())] {
        if !rows.is_empty() {
            let mut copy = conn.copy_in_raw(statement).await?;
            copy.send(rows).await?;
            copy.finish().await?;
        }
    }
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

/// What `dmarcpipe_store_input(s)` returns for an input: id, outcome, reports stored and
/// duplicate, records, messages, duplicate of.
type StoredRow = (i64, String, i32, i32, i64, i64, Option<i64>);

/// The input row as stored, from the function's answer and the row as written.
fn stored_row(
    (id, outcome, reports_stored, reports_duplicate, records, messages, duplicate_of): StoredRow,
    row: &InputRow,
) -> Result<(i64, InputRow), StoreError> {
    let outcome =
        Outcome::parse(&outcome).ok_or_else(|| StoreError::Data(format!("input {id} has outcome `{outcome}`")))?;
    let stored =
        InputRow { outcome, reports_stored, reports_duplicate, records, messages, duplicate_of, ..row.clone() };
    Ok((id, stored))
}

/// Binds the report and record columns, the arguments that follow the input's.
fn bind_reports<'q, O>(
    query: sqlx::query::QueryAs<'q, Postgres, O, PgArguments>,
    r: ReportColumns<'q>,
    c: RecordColumns<'q>,
) -> sqlx::query::QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(r.org_name)
        .bind(r.org_email)
        .bind(r.extra_contact_info)
        .bind(r.report_id)
        .bind(r.policy_domain)
        .bind(r.date_begin)
        .bind(r.date_end)
        .bind(r.errors)
        .bind(r.generator)
        .bind(r.schema)
        .bind(r.namespace)
        .bind(r.xml_version)
        .bind(r.policy_p)
        .bind(r.policy_sp)
        .bind(r.policy_np)
        .bind(r.policy_pct)
        .bind(r.policy_adkim)
        .bind(r.policy_aspf)
        .bind(r.policy_fo)
        .bind(r.policy_testing)
        .bind(r.policy_discovery_method)
        .bind(r.extensions)
        .bind(r.record_count)
        .bind(r.message_count)
        .bind(r.warnings)
        .bind(c.report)
        .bind(c.record_no)
        .bind(c.source_ip)
        .bind(c.message_count)
        .bind(c.disposition)
        .bind(c.dkim_aligned)
        .bind(c.spf_aligned)
        .bind(c.override_reasons)
        .bind(c.override_comments)
        .bind(c.header_from)
        .bind(c.envelope_from)
        .bind(c.envelope_to)
        .bind(c.dkim_count)
        .bind(c.dkim_domain)
        .bind(c.dkim_selector)
        .bind(c.dkim_result)
        .bind(c.dkim_human_result)
        .bind(c.spf_count)
        .bind(c.spf_domain)
        .bind(c.spf_scope)
        .bind(c.spf_result)
        .bind(c.spf_human_result)
        .bind(c.auth_more)
        .bind(c.raw)
        .bind(c.extensions)
}

/// Stores a new input with its complete reports in one round trip (`dmarcpipe_store_input`,
/// see its migration): byte-identical inputs and reports stored before are recognised there.
/// `row` assumes every report is new; the returned row is what was stored.
pub(crate) async fn store_with_input(
    conn: &mut PgConnection,
    provenance: &Provenance,
    row: &InputRow,
    reports: &[AggregateReport],
    payload: Option<(&[u8], bool)>,
) -> Result<(i64, InputRow), StoreError> {
    let query = sqlx::query_as::<_, StoredRow>(
        "SELECT * FROM dmarcpipe_store_input($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, \
         $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, \
         $55, $56, $57, $58, $59, $60, $61, $62, $63, $64, $65)",
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
    .bind(row.reports_stored)
    .bind(row.reports_duplicate)
    .bind(row.records)
    .bind(row.messages)
    .bind(payload.map(|(bytes, _)| bytes))
    .bind(payload.is_some_and(|(_, sealed)| sealed));
    let answer =
        bind_reports(query, ReportColumns::new(reports), RecordColumns::new(reports)).fetch_one(&mut *conn).await?;
    stored_row(answer, row)
}

/// A new small input for [`store_batch`]: its provenance, its row as if every report were
/// new, and its reports. (Rejected inputs, whose bytes are kept, are stored one by one.)
pub(crate) struct BatchInput<'a> {
    pub provenance: &'a Provenance,
    pub row: InputRow,
    pub reports: &'a [AggregateReport],
}

/// Stores several new inputs with their complete reports in one round trip
/// (`dmarcpipe_store_inputs`): as [`store_with_input`] for each, in one transaction. The
/// inputs must have distinct SHA-256 digests. Returns the stored rows in the order given.
pub(crate) async fn store_batch(
    conn: &mut PgConnection,
    inputs: &[BatchInput<'_>],
) -> Result<Vec<(i64, InputRow)>, StoreError> {
    let column = |f: &dyn Fn(&BatchInput<'_>) -> i64| inputs.iter().map(f).collect::<Vec<i64>>();
    let reports = || inputs.iter().flat_map(|input| input.reports.iter());
    let report_input: Vec<i32> = inputs
        .iter()
        .enumerate()
        .flat_map(|(position, input)| std::iter::repeat_n(position as i32 + 1, input.reports.len()))
        .collect();
    let query = sqlx::query_as::<_, StoredRow>(
        "SELECT input_id, outcome, reports_stored, reports_duplicate, records, messages, duplicate_of FROM \
         dmarcpipe_store_inputs($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, \
         $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, \
         $58, $59, $60, $61, $62, $63, $64, $65, $66)",
    )
    .bind(inputs.iter().map(|i| i.provenance.channel).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.provenance.origin.as_str()).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| &i.provenance.fingerprint.sha256[..]).collect::<Vec<_>>())
    .bind(column(&|i| i.provenance.fingerprint.size as i64))
    .bind(inputs.iter().map(|i| i.provenance.received_at).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.row.outcome.as_str()).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.row.stage).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.row.error.as_deref()).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| &i.row.warnings).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.row.reports_stored).collect::<Vec<_>>())
    .bind(inputs.iter().map(|i| i.row.reports_duplicate).collect::<Vec<_>>())
    .bind(column(&|i| i.row.records))
    .bind(column(&|i| i.row.messages))
    .bind(vec![None::<&[u8]>; inputs.len()])
    .bind(vec![false; inputs.len()])
    .bind(report_input);
    let answers =
        bind_reports(query, ReportColumns::new(reports()), RecordColumns::new(reports())).fetch_all(&mut *conn).await?;
    if answers.len() != inputs.len() {
        return Err(StoreError::Data(format!("{} rows for a batch of {} inputs", answers.len(), inputs.len())));
    }
    answers.into_iter().zip(inputs).map(|(answer, input)| stored_row(answer, &input.row)).collect()
}

/// The reports of an input, column by column, as `dmarcpipe_store_input` takes them.
#[derive(Default)]
struct ReportColumns<'a> {
    org_name: Vec<&'a str>,
    org_email: Vec<Option<&'a str>>,
    extra_contact_info: Vec<Option<&'a str>>,
    report_id: Vec<&'a str>,
    policy_domain: Vec<&'a str>,
    date_begin: Vec<DateTime<Utc>>,
    date_end: Vec<DateTime<Utc>>,
    errors: Vec<Option<serde_json::Value>>,
    generator: Vec<Option<&'a str>>,
    schema: Vec<&'static str>,
    namespace: Vec<Option<&'a str>>,
    xml_version: Vec<Option<&'a str>>,
    policy_p: Vec<Option<&'static str>>,
    policy_sp: Vec<Option<&'static str>>,
    policy_np: Vec<Option<&'static str>>,
    policy_pct: Vec<Option<i32>>,
    policy_adkim: Vec<Option<&'static str>>,
    policy_aspf: Vec<Option<&'static str>>,
    policy_fo: Vec<Option<&'a str>>,
    policy_testing: Vec<Option<&'static str>>,
    policy_discovery_method: Vec<Option<&'static str>>,
    extensions: Vec<Option<&'a str>>,
    record_count: Vec<i64>,
    message_count: Vec<i64>,
    warnings: Vec<serde_json::Value>,
}

impl<'a> ReportColumns<'a> {
    fn new(reports: impl IntoIterator<Item = &'a AggregateReport>) -> Self {
        let mut c = ReportColumns::default();
        for report in reports {
            let (header, summary, policy) = (&report.header, &report.summary, &report.header.policy);
            c.org_name.push(&header.org_name);
            c.org_email.push(header.org_email.as_deref());
            c.extra_contact_info.push(header.extra_contact_info.as_deref());
            c.report_id.push(&header.report_id);
            c.policy_domain.push(&policy.domain);
            c.date_begin.push(header.date_begin);
            c.date_end.push(header.date_end);
            c.errors.push((!header.errors.is_empty()).then(|| serde_json::json!(header.errors)));
            c.generator.push(header.generator.as_deref());
            c.schema.push(summary.schema.as_str());
            c.namespace.push(header.namespace.as_deref());
            c.xml_version.push(header.version.as_deref());
            c.policy_p.push(policy.p.map(WireEnum::as_str));
            c.policy_sp.push(policy.sp.map(WireEnum::as_str));
            c.policy_np.push(policy.np.map(WireEnum::as_str));
            c.policy_pct.push(policy.pct);
            c.policy_adkim.push(policy.adkim.map(WireEnum::as_str));
            c.policy_aspf.push(policy.aspf.map(WireEnum::as_str));
            c.policy_fo.push(policy.fo.as_deref());
            c.policy_testing.push(policy.testing.map(WireEnum::as_str));
            c.policy_discovery_method.push(policy.discovery_method.map(WireEnum::as_str));
            c.extensions.push(summary.extensions.as_deref());
            c.record_count.push(summary.record_count as i64);
            c.message_count.push(summary.message_count);
            c.warnings.push(warnings_json(&summary.warnings));
        }
        c
    }
}

/// The records of all the reports of an input, column by column; `report` is the 1-based
/// position of the record's report.
#[derive(Default)]
struct RecordColumns<'a> {
    report: Vec<i32>,
    record_no: Vec<i32>,
    source_ip: Vec<Option<std::net::IpAddr>>,
    message_count: Vec<i64>,
    disposition: Vec<Option<&'static str>>,
    dkim_aligned: Vec<Option<&'static str>>,
    spf_aligned: Vec<Option<&'static str>>,
    override_reasons: Vec<Option<serde_json::Value>>,
    override_comments: Vec<Option<serde_json::Value>>,
    header_from: Vec<Option<&'a str>>,
    envelope_from: Vec<Option<&'a str>>,
    envelope_to: Vec<Option<&'a str>>,
    dkim_count: Vec<i16>,
    dkim_domain: Vec<Option<&'a str>>,
    dkim_selector: Vec<Option<&'a str>>,
    dkim_result: Vec<Option<&'static str>>,
    dkim_human_result: Vec<Option<&'a str>>,
    spf_count: Vec<i16>,
    spf_domain: Vec<Option<&'a str>>,
    spf_scope: Vec<Option<&'static str>>,
    spf_result: Vec<Option<&'static str>>,
    spf_human_result: Vec<Option<&'a str>>,
    auth_more: Vec<Option<serde_json::Value>>,
    raw: Vec<Option<serde_json::Value>>,
    extensions: Vec<Option<&'a str>>,
}

impl<'a> RecordColumns<'a> {
    fn new(reports: impl IntoIterator<Item = &'a AggregateReport>) -> Self {
        let mut c = RecordColumns::default();
        for (position, report) in reports.into_iter().enumerate() {
            for (index, record) in report.records.iter().enumerate() {
                let dkim = record.dkim.first();
                let spf = record.spf.first();
                c.report.push(position as i32 + 1);
                c.record_no.push(index as i32 + 1);
                c.source_ip.push(record.source_ip);
                c.message_count.push(record.count);
                c.disposition.push(record.disposition.map(WireEnum::as_str));
                c.dkim_aligned.push(record.dkim_aligned.map(WireEnum::as_str));
                c.spf_aligned.push(record.spf_aligned.map(WireEnum::as_str));
                let reasons = !record.reasons.is_empty();
                c.override_reasons.push(
                    reasons.then(|| serde_json::json!(record.reasons.iter().map(|r| &r.kind).collect::<Vec<_>>())),
                );
                c.override_comments.push(
                    reasons.then(|| serde_json::json!(record.reasons.iter().map(|r| [&r.comment]).collect::<Vec<_>>())),
                );
                c.header_from.push(record.header_from.as_deref());
                c.envelope_from.push(record.envelope_from.as_deref());
                c.envelope_to.push(record.envelope_to.as_deref());
                c.dkim_count.push(record.dkim.len().min(i16::MAX as usize) as i16);
                c.dkim_domain.push(dkim.and_then(|d| d.domain.as_deref()));
                c.dkim_selector.push(dkim.and_then(|d| d.selector.as_deref()));
                c.dkim_result.push(dkim.and_then(|d| d.result.map(WireEnum::as_str)));
                c.dkim_human_result.push(dkim.and_then(|d| d.human_result.as_deref()));
                c.spf_count.push(record.spf.len().min(i16::MAX as usize) as i16);
                c.spf_domain.push(spf.and_then(|s| s.domain.as_deref()));
                c.spf_scope.push(spf.and_then(|s| s.scope.map(WireEnum::as_str)));
                c.spf_result.push(spf.and_then(|s| s.result.map(WireEnum::as_str)));
                c.spf_human_result.push(spf.and_then(|s| s.human_result.as_deref()));
                c.auth_more.push(auth_more(record));
                c.raw.push(raw_json(record));
                c.extensions.push(record.extensions.as_deref());
            }
        }
        c
    }
}
