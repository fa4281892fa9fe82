//! SMTP TLS reports (RFC 8460) as rows, and the rollups behind `dmarcpipe report --tls`.
//!
//! Writing: a report's row, its policies and their failure details come from the normalized
//! model of `dmarcpipe_ingest::tlsrpt`; the ledger offers them to the database with the other
//! reports of the transaction (`write::claim`): they are written unless a report with the same
//! natural key (organization, report id, date range; constraint `tls_reports_natural_key`)
//! exists, and then the input counts a duplicate, as for aggregate reports. TLS reports are
//! small (a few policies, rarely more than hundreds of failure details, at most 50,000), so
//! they are always written whole, with no rollup rows of their own: the rollups are computed
//! from the tables at query time.
//!
//! Rollups, by policy domain, organization or day: sessions (successful plus failed, from
//! the policies' summaries), successful, failed, and the failure share. By result type or
//! MX host (the `receiving-mx-hostname` of failure details), `failed` sums the failure
//! details with that key, and `sessions` and `successful` are those of the policies in which
//! such failures were reported: TLS reports count successes per policy only, never per MX
//! host or result type.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::tlsrpt::TlsReport;
use serde::Serialize;
use sqlx::{FromRow, PgPool};

use crate::aggregate::{raw_json, warnings_json};
use crate::error::StoreError;
use crate::rollup::{Count, RollupFilter};
use crate::rows::{TlsFailureRow, TlsPolicyRow, TlsReportRow};

/// What identifies a TLS report whoever sends it again: organization, report id, period.
pub(crate) type NaturalKey<'a> = (&'a str, &'a str, DateTime<Utc>, DateTime<Utc>);

pub(crate) fn natural_key(report: &TlsReport) -> NaturalKey<'_> {
    (&report.organization_name, &report.report_id, report.date_begin, report.date_end)
}

/// The row of a report.
pub(crate) fn report_row(id: i64, input: i64, received_at: DateTime<Utc>, report: &TlsReport) -> TlsReportRow<'_> {
    TlsReportRow {
        id,
        input,
        organization_name: &report.organization_name,
        report_id: &report.report_id,
        date_begin: report.date_begin,
        date_end: report.date_end,
        contact_info: report.contact_info.as_deref(),
        policy_count: count(report.policies.len()),
        failure_detail_count: count(report.failure_detail_count as usize),
        successful_sessions: report.successful_sessions,
        failed_sessions: report.failed_sessions,
        raw: raw_json(&report.raw),
        warnings: warnings_json(&report.warnings),
        received_at,
    }
}

/// Appends the rows of the policies and failure details of report `id`, numbered from 1 in
/// the order of the report.
pub(crate) fn child_rows<'a>(
    id: i64,
    report: &'a TlsReport,
    policies: &mut Vec<TlsPolicyRow<'a>>,
    failures: &mut Vec<TlsFailureRow<'a>>,
) {
    for (policy_no, policy) in (1..).zip(&report.policies) {
        policies.push(TlsPolicyRow {
            report: id,
            policy_no,
            policy_type: policy.policy_type.as_deref(),
            policy_strings: &policy.policy_strings,
            policy_domain: policy.policy_domain.as_deref(),
            mx_hosts: &policy.mx_hosts,
            successful_sessions: policy.successful_sessions,
            failed_sessions: policy.failed_sessions,
            failure_detail_count: count(policy.failure_details.len()),
            raw: raw_json(&policy.raw),
        });
        for (failure_no, failure) in (1..).zip(&policy.failure_details) {
            failures.push(TlsFailureRow {
                report: id,
                policy_no,
                failure_no,
                result_type: &failure.result_type,
                sending_mta_ip: failure.sending_mta_ip,
                receiving_mx_hostname: failure.receiving_mx_hostname.as_deref(),
                receiving_mx_helo: failure.receiving_mx_helo.as_deref(),
                receiving_ip: failure.receiving_ip,
                failed_sessions: failure.failed_sessions,
                additional_information: failure.additional_information.as_deref(),
                failure_reason_code: failure.failure_reason_code.as_deref(),
                raw: raw_json(&failure.raw),
            });
        }
    }
}

/// A count of policies or failure details as a column (the parser caps both far below).
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What `dmarcpipe report --tls` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsKey {
    /// The policy domain of each policy.
    PolicyDomain,
    /// The reporting organization.
    Org,
    /// UTC day the report period begins.
    Day,
    /// The result type of failure details.
    ResultType,
    /// The `receiving-mx-hostname` of failure details.
    MxHost,
}

impl TlsKey {
    pub fn name(self) -> &'static str {
        match self {
            TlsKey::PolicyDomain => "policy_domain",
            TlsKey::Org => "org",
            TlsKey::Day => "day",
            TlsKey::ResultType => "result_type",
            TlsKey::MxHost => "mx_host",
        }
    }

    fn expression(self) -> &'static str {
        match self {
            TlsKey::PolicyDomain => "coalesce(p.policy_domain, 'unknown')",
            TlsKey::Org => "r.organization_name",
            TlsKey::Day => "to_char(r.date_begin AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            TlsKey::ResultType => "f.result_type",
            TlsKey::MxHost => "coalesce(f.receiving_mx_hostname, 'unknown')",
        }
    }

    /// Keys of failure details rather than of policies.
    fn of_failures(self) -> bool {
        matches!(self, TlsKey::ResultType | TlsKey::MxHost)
    }
}

/// One row of a TLS rollup; see the module documentation for what the counts mean.
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct TlsRollupRow {
    pub key: String,
    pub reports: i64,
    pub policies: i64,
    /// Sums, exact however many reports they add up (see [`Count`]).
    pub sessions: Count,
    pub successful: Count,
    pub failed: Count,
    /// `failed / sessions`, rounded to 4 decimals; `None` without sessions.
    pub failure_share: Option<f64>,
}

/// Policies of reports whose period begins in `[$2, $3)` (UTC days), of domain `$1`.
const FILTER: &str = "($1::text IS NULL OR p.policy_domain = lower($1)) \
    AND ($2::date IS NULL OR r.date_begin >= $2::date::timestamp AT TIME ZONE 'UTC') \
    AND ($3::date IS NULL OR r.date_begin < $3::date::timestamp AT TIME ZONE 'UTC')";

/// The TLS rollup by `key`, most failed sessions first (days in order).
pub async fn query(pool: &PgPool, key: TlsKey, filter: &RollupFilter) -> Result<Vec<TlsRollupRow>, StoreError> {
    // Per key, the policies it concerns with the failed sessions counted for it.
    let counted = if key.of_failures() {
        format!(
            "SELECT {key} AS key, p.report, p.policy_no, p.successful_sessions, p.failed_sessions AS policy_failed, \
                 sum(f.failed_sessions) AS failed \
             FROM tls_failures f \
             JOIN tls_policies p ON p.report = f.report AND p.policy_no = f.policy_no \
             JOIN tls_reports r ON r.id = p.report \
             WHERE {FILTER} GROUP BY 1, 2, 3",
            key = key.expression()
        )
    } else {
        format!(
            "SELECT {key} AS key, p.report, p.policy_no, p.successful_sessions, p.failed_sessions AS policy_failed, \
                 p.failed_sessions AS failed \
             FROM tls_policies p JOIN tls_reports r ON r.id = p.report WHERE {FILTER}",
            key = key.expression()
        )
    };
    let sql = format!(
        "SELECT key, count(DISTINCT report) AS reports, count(*) AS policies, \
             sum(successful_sessions + policy_failed)::text AS sessions, \
             sum(successful_sessions)::text AS successful, sum(failed)::text AS failed, \
             round(sum(failed) / nullif(sum(successful_sessions + policy_failed), 0), 4)::float8 AS failure_share \
         FROM ({counted}) counted GROUP BY key ORDER BY {order}",
        order = if key == TlsKey::Day { "key" } else { "sum(failed) DESC, key" },
    );
    filter.fetch_all(pool, sql).await
}
