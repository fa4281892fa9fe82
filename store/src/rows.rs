//! The rows the store writes, each declared once, in the order of its table's columns.
//!
//! From one declaration [`table_row!`] makes the struct, its COPY text encoding (for the
//! records and rollups of large reports, loaded with `COPY`) and its binary composite encoding
//! (for everything else, sent as one array parameter and read with `unnest($1::table[])`: the
//! type of a table's rows is a composite type of that name). So a column is spelled out in the
//! migration that creates it and in exactly one struct here; a test compares the two.
//!
//! Rows borrow what they can from the parsed reports: a million records are encoded without
//! copying their strings.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, Postgres};

use crate::copy::CopyRow;

/// Text as PostgreSQL can store it: no `text` or `jsonb` value may hold NUL, which becomes
/// U+FFFD. (Report text has none, the parsers remove it; error messages and warnings that quote
/// what an input holds may.)
pub(crate) fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(text) }
}

/// [`storable`] for every string of a JSON value.
pub(crate) fn storable_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Value::String(storable(&text).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(fields) => Value::Object(
            fields.into_iter().map(|(key, value)| (storable(&key).into_owned(), storable_json(value))).collect(),
        ),
        other => other,
    }
}

/// A JSON document already written out as text, for a `jsonb` column: COPY sends the text as
/// it is, and a composite row sends it as `jsonb` (its binary form is a version byte and the
/// text). Written straight from the value, without building a [`serde_json::Value`] first:
/// a million records with a dozen DKIM and SPF results each spend their time here otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonText(String);

impl JsonText {
    /// `value` as JSON, every string [`storable`]: the rare document with a NUL goes the long
    /// way, through [`storable_json`]. (The escape `\u0000` is looked for in the text; a
    /// backslash written before `u0000` looks the same, and only makes the long way taken.)
    pub(crate) fn of(value: &impl serde::Serialize) -> JsonText {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        if !text.contains("\\u0000") {
            return JsonText(text);
        }
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        JsonText(storable_json(value).to_string())
    }

    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl sqlx::Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        <serde_json::Value as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // jsonb's binary format: version 1, then the text.
        buf.push(1);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// A value in COPY text form.
pub(crate) trait CopyField {
    fn put(&self, row: &mut CopyRow<'_>);
}

/// Declares a table row: see the module documentation.
macro_rules! table_row {
    (
        $(#[$meta:meta])*
        struct $name:ident $(<$lt:lifetime>)? in $table:literal {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub(crate) struct $name $(<$lt>)? {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            /// The table, whose row type this is.
            #[allow(dead_code)]
            pub const TABLE: &'static str = $table;
            /// The columns, in table order.
            #[allow(dead_code)]
            pub const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Appends the row in COPY text format.
            #[allow(dead_code)]
            pub fn copy_text(&self, out: &mut Vec<u8>) {
                let mut row = CopyRow::new(out);
                $(CopyField::put(&self.$field, &mut row);)*
                row.end();
            }
        }

        impl $(<$lt>)? sqlx::Type<Postgres> for $name $(<$lt>)? {
            fn type_info() -> PgTypeInfo {
                PgTypeInfo::with_name($table)
            }
        }

        impl $(<$lt>)? PgHasArrayType for $name $(<$lt>)? {
            fn array_type_info() -> PgTypeInfo {
                PgTypeInfo::array_of($table)
            }
        }

        impl $(<$lt>)? sqlx::Encode<'_, Postgres> for $name $(<$lt>)? {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                let mut encoder = sqlx::postgres::types::PgRecordEncoder::new(buf);
                $(encoder.encode(&self.$field)?;)*
                encoder.finish();
                Ok(IsNull::No)
            }
        }
    };
}

/// `COPY table (columns) FROM STDIN` for a row type.
pub(crate) fn copy_statement(table: &str, columns: &[&str]) -> String {
    format!("COPY {table} ({}) FROM STDIN", columns.join(", "))
}

table_row! {
    /// One input and its outcome (`inputs`).
    struct InputRow<'a> in "inputs" {
        id: i64,
        channel: &'a str,
        origin: &'a str,
        sha256: &'a [u8],
        size: i64,
        received_at: DateTime<Utc>,
        processed_at: DateTime<Utc>,
        outcome: &'static str,
        stage: Option<&'static str>,
        error: Option<&'a str>,
        warnings: &'a serde_json::Value,
        duplicate_of: Option<i64>,
        reports_stored: i32,
        reports_duplicate: i32,
        records: i64,
        messages: i64,
        attempts: i32,
        forensic_reports: i32,
    }
}

table_row! {
    /// The sealed bytes of a rejected input, kept for `reprocess` (`input_payloads`).
    struct PayloadRow<'a> in "input_payloads" {
        input: i64,
        sealed: bool,
        payload: &'a [u8],
    }
}

table_row! {
    /// One aggregate report (`aggregate_reports`).
    struct ReportRow<'a> in "aggregate_reports" {
        id: i64,
        input: i64,
        org_name: &'a str,
        org_email: Option<&'a str>,
        extra_contact_info: Option<&'a str>,
        report_id: &'a str,
        policy_domain: &'a str,
        date_begin: DateTime<Utc>,
        date_end: DateTime<Utc>,
        errors: &'a [String],
        generator: Option<&'a str>,
        schema: &'static str,
        namespace: Option<&'a str>,
        xml_version: Option<&'a str>,
        policy_p: Option<&'static str>,
        policy_sp: Option<&'static str>,
        policy_np: Option<&'static str>,
        policy_pct: Option<i32>,
        policy_adkim: Option<&'static str>,
        policy_aspf: Option<&'static str>,
        policy_fo: Option<&'a str>,
        policy_testing: Option<&'static str>,
        policy_discovery_method: Option<&'static str>,
        extensions: Option<&'a str>,
        record_count: i64,
        message_count: i64,
        warnings: serde_json::Value,
        received_at: DateTime<Utc>,
    }
}

table_row! {
    /// One `<record>` of an aggregate report (`aggregate_records`). The first DKIM and SPF
    /// results are columns, further ones JSON in `auth_more` (see the migration for why).
    struct RecordRow<'a> in "aggregate_records" {
        report: i64,
        record_no: i32,
        date_begin: &'a Stamp,
        source_ip: Option<IpAddr>,
        message_count: i64,
        disposition: Option<&'static str>,
        dkim_aligned: Option<&'static str>,
        spf_aligned: Option<&'static str>,
        override_reasons: Option<Vec<&'a str>>,
        override_comments: Option<Vec<Option<&'a str>>>,
        header_from: Option<&'a str>,
        envelope_from: Option<&'a str>,
        envelope_to: Option<&'a str>,
        dkim_count: i16,
        dkim_domain: Option<&'a str>,
        dkim_selector: Option<&'a str>,
        dkim_result: Option<&'static str>,
        dkim_human_result: Option<&'a str>,
        spf_count: i16,
        spf_domain: Option<&'a str>,
        spf_scope: Option<&'static str>,
        spf_result: Option<&'static str>,
        spf_human_result: Option<&'a str>,
        auth_more: Option<JsonText>,
        raw: Option<serde_json::Value>,
        extensions: Option<&'a str>,
    }
}

table_row! {
    /// Messages per day, policy domain, reporter and result (`aggregate_rollup_daily`).
    struct DailyRow in "aggregate_rollup_daily" {
        day: NaiveDate,
        policy_domain: String,
        org_name: String,
        disposition: Option<&'static str>,
        dkim_aligned: Option<&'static str>,
        spf_aligned: Option<&'static str>,
        messages: i64,
        records: i64,
    }
}

table_row! {
    /// Messages per day, policy domain and source, with the results as columns
    /// (`aggregate_rollup_sources`).
    struct SourceRow in "aggregate_rollup_sources" {
        day: NaiveDate,
        policy_domain: String,
        source_ip: Option<IpAddr>,
        messages: i64,
        dmarc_pass: i64,
        dmarc_fail: i64,
        disposition_none: i64,
        disposition_quarantine: i64,
        disposition_reject: i64,
        dkim_aligned: i64,
        spf_aligned: i64,
        records: i64,
        forwarded_reason: i64,
        dkim_unaligned: i64,
    }
}

table_row! {
    /// The clear metadata of a failure report (`forensic_reports`).
    struct ForensicReportRow<'a> in "forensic_reports" {
        id: i64,
        input: i64,
        fingerprint: Vec<u8>,
        received_at: DateTime<Utc>,
        format: &'static str,
        feedback_type: &'a str,
        version: Option<&'a str>,
        user_agent: Option<&'a str>,
        incidents: i64,
        arrival_date: Option<DateTime<Utc>>,
        source_ip: Option<IpAddr>,
        source_port: Option<i32>,
        reporting_mta: Option<&'a str>,
        reported_domains: &'a [String],
        auth_failure: Option<&'a str>,
        delivery_result: Option<&'a str>,
        delivery_result_raw: Option<&'a str>,
        dkim_domain: Option<&'a str>,
        dkim_selector: Option<&'a str>,
        identity_alignment: Option<&'a str>,
        original_mail_from: Option<&'a str>,
        original_part: Option<&'static str>,
        warnings: serde_json::Value,
        sealed_sha256: Option<Vec<u8>>,
        sealed_size: Option<i32>,
    }
}

table_row! {
    /// The sealed mail of a failure report (`forensic_samples`).
    struct SampleRow<'a> in "forensic_samples" {
        report: i64,
        sealed: &'a [u8],
    }
}

table_row! {
    /// One SMTP TLS report (`tls_reports`).
    struct TlsReportRow<'a> in "tls_reports" {
        id: i64,
        input: i64,
        organization_name: &'a str,
        report_id: &'a str,
        date_begin: DateTime<Utc>,
        date_end: DateTime<Utc>,
        contact_info: Option<&'a str>,
        policy_count: i32,
        failure_detail_count: i32,
        successful_sessions: i64,
        failed_sessions: i64,
        raw: Option<serde_json::Value>,
        warnings: serde_json::Value,
        received_at: DateTime<Utc>,
    }
}

table_row! {
    /// One policy of a TLS report, with its session totals (`tls_policies`).
    struct TlsPolicyRow<'a> in "tls_policies" {
        report: i64,
        policy_no: i32,
        policy_type: Option<&'a str>,
        policy_strings: &'a [String],
        policy_domain: Option<&'a str>,
        mx_hosts: &'a [String],
        successful_sessions: i64,
        failed_sessions: i64,
        failure_detail_count: i32,
        raw: Option<serde_json::Value>,
    }
}

table_row! {
    /// One failure detail of a TLS report's policy (`tls_failures`).
    struct TlsFailureRow<'a> in "tls_failures" {
        report: i64,
        policy_no: i32,
        failure_no: i32,
        result_type: &'a str,
        sending_mta_ip: Option<IpAddr>,
        receiving_mx_hostname: Option<&'a str>,
        receiving_mx_helo: Option<&'a str>,
        receiving_ip: Option<IpAddr>,
        failed_sessions: i64,
        additional_information: Option<&'a str>,
        failure_reason_code: Option<&'a str>,
        raw: Option<serde_json::Value>,
    }
}

/// A timestamp shared by many rows (a report's start, on each of its records), formatted for
/// COPY once rather than once per row.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub value: DateTime<Utc>,
    text: String,
}

impl Stamp {
    pub fn new(value: DateTime<Utc>) -> Self {
        Stamp { value, text: value.format("%Y-%m-%d %H:%M:%S%.f+00").to_string() }
    }
}

impl sqlx::Type<Postgres> for Stamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for Stamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as sqlx::Encode<'_, Postgres>>::encode_by_ref(&self.value, buf)
    }
}

impl CopyField for Stamp {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.preformatted(&self.text);
    }
}

impl<T: CopyField + ?Sized> CopyField for &T {
    fn put(&self, row: &mut CopyRow<'_>) {
        (**self).put(row);
    }
}

impl<T: CopyField> CopyField for Option<T> {
    fn put(&self, row: &mut CopyRow<'_>) {
        match self {
            Some(value) => value.put(row),
            None => {
                row.null();
            }
        }
    }
}

impl CopyField for i64 {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.int(*self);
    }
}

impl CopyField for i32 {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.int(i64::from(*self));
    }
}

impl CopyField for i16 {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.int(i64::from(*self));
    }
}

impl CopyField for bool {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.preformatted(if *self { "t" } else { "f" });
    }
}

impl CopyField for str {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text(Some(self));
    }
}

impl CopyField for String {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text(Some(self));
    }
}

impl CopyField for IpAddr {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.ip(Some(*self));
    }
}

impl CopyField for DateTime<Utc> {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.preformatted(&Stamp::new(*self).text);
    }
}

impl CopyField for NaiveDate {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.preformatted(&self.format("%Y-%m-%d").to_string());
    }
}

impl CopyField for serde_json::Value {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text(Some(&self.to_string()));
    }
}

impl CopyField for JsonText {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text(Some(&self.0));
    }
}

impl CopyField for [u8] {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.bytea(self);
    }
}

impl CopyField for Vec<u8> {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.bytea(self);
    }
}

impl CopyField for [String] {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text_array(self.iter().map(|text| Some(text.as_str())));
    }
}

impl CopyField for Vec<&str> {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text_array(self.iter().map(|text| Some(*text)));
    }
}

impl CopyField for Vec<Option<&str>> {
    fn put(&self, row: &mut CopyRow<'_>) {
        row.text_array(self.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    /// PostgreSQL refuses NUL in `jsonb`: it becomes U+FFFD, while text that only looks like
    /// its escape stays as it is.
    #[test]
    fn json_text_has_no_nul() {
        assert_eq!(JsonText::of(&["a\0b"]).as_str(), "[\"a\u{FFFD}b\"]");
        assert_eq!(JsonText::of(&["a\\u0000b"]).as_str(), r#"["a\\u0000b"]"#);
        assert_eq!(JsonText::of(&serde_json::json!({"k": 1})).as_str(), r#"{"k":1}"#);
    }

    /// Every row declared here has the columns of its table, in the table's order: the
    /// composite encoding depends on it, and a migration that adds a column must add it here.
    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn every_row_matches_its_table(pool: PgPool) {
        let declared: [(&str, &[&str]); 11] = [
            (InputRow::TABLE, InputRow::COLUMNS),
            (PayloadRow::TABLE, PayloadRow::COLUMNS),
            (ReportRow::TABLE, ReportRow::COLUMNS),
            (RecordRow::TABLE, RecordRow::COLUMNS),
            (DailyRow::TABLE, DailyRow::COLUMNS),
            (SourceRow::TABLE, SourceRow::COLUMNS),
            (ForensicReportRow::TABLE, ForensicReportRow::COLUMNS),
            (SampleRow::TABLE, SampleRow::COLUMNS),
            (TlsReportRow::TABLE, TlsReportRow::COLUMNS),
            (TlsPolicyRow::TABLE, TlsPolicyRow::COLUMNS),
            (TlsFailureRow::TABLE, TlsFailureRow::COLUMNS),
        ];
        for (table, columns) in declared {
            let actual: Vec<String> = sqlx::query_scalar(
                "SELECT attname::text FROM pg_attribute \
                 WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .expect("the table exists");
            assert_eq!(actual, columns, "the columns of {table}");
        }
    }
}
