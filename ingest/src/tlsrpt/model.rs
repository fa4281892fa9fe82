//! The normalized SMTP TLS report (RFC 8460 §4): what the parser produces and the store
//! persists.
//!
//! As for aggregate reports, whatever normalization changed is kept twice: the reporter's
//! text in the `raw` list of the report, policy or failure detail it belongs to (keyed by
//! member path, such as `date-range.start-datetime` or `sending-mta-ip`), and a
//! [`Warning`] on the report. Members nobody defined are kept in `raw` too, as JSON text.
//! Result and policy types are open sets (IANA registries under Expert Review): a value we do
//! not know is kept as sent, with a warning, never dropped.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Parsed, Warning, WireEnum, wire_enum};

wire_enum! {
    /// `policy-type` (RFC 8460 §4.4).
    PolicyType { Sts = "sts", Tlsa = "tlsa", NoPolicyFound = "no-policy-found" }
    aliases {}
}

wire_enum! {
    /// `result-type`: the "STARTTLS Validation Result Types" registry (RFC 8460 §4.3), with
    /// `sts-policy-fetch-error`, which the final RFC added to the draft's list.
    ResultType {
        StarttlsNotSupported = "starttls-not-supported",
        CertificateHostMismatch = "certificate-host-mismatch",
        CertificateExpired = "certificate-expired",
        CertificateNotTrusted = "certificate-not-trusted",
        ValidationFailure = "validation-failure",
        TlsaInvalid = "tlsa-invalid",
        DnssecInvalid = "dnssec-invalid",
        DaneRequired = "dane-required",
        StsPolicyFetchError = "sts-policy-fetch-error",
        StsPolicyInvalid = "sts-policy-invalid",
        StsWebpkiInvalid = "sts-webpki-invalid",
    }
    aliases {}
}

/// One SMTP TLS report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsReport {
    /// `organization-name`, or the domain of `contact-info` when it is missing (warned).
    pub organization_name: String,
    /// `date-range.start-datetime`, in UTC.
    pub date_begin: DateTime<Utc>,
    /// `date-range.end-datetime`, in UTC.
    pub date_end: DateTime<Utc>,
    pub contact_info: Option<String>,
    /// As sent: the natural key uses it verbatim.
    pub report_id: String,
    pub policies: Vec<TlsPolicy>,
    /// Sum of the policies' `total-successful-session-count`.
    pub successful_sessions: i64,
    /// Sum of the policies' `total-failure-session-count` (not of the failure details, which
    /// may overlap or disagree: both are kept).
    pub failed_sessions: i64,
    /// Failure-details entries over all policies.
    pub failure_detail_count: u64,
    /// Original text of report-level members that were changed, and unknown members.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
}

/// One entry of `policies`: the policy applied, its session totals, its failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsPolicy {
    /// `sts`, `tlsa`, `no-policy-found`, or what the reporter sent when it is none of those.
    pub policy_type: Option<String>,
    /// `policy-string`: MTA-STS policy lines or TLSA records.
    pub policy_strings: Vec<String>,
    /// Lower case; absent in some `no-policy-found` entries (warned).
    pub policy_domain: Option<String>,
    /// `mx-host` patterns: RFC 8460 gives one string, most reporters send an array.
    pub mx_hosts: Vec<String>,
    /// `summary.total-successful-session-count`.
    pub successful_sessions: i64,
    /// `summary.total-failure-session-count`.
    pub failed_sessions: i64,
    pub failure_details: Vec<FailureDetail>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw: Vec<(String, String)>,
}

/// One entry of `failure-details`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureDetail {
    /// A registered result type in its canonical spelling, or what the reporter sent.
    pub result_type: String,
    pub sending_mta_ip: Option<IpAddr>,
    pub receiving_mx_hostname: Option<String>,
    pub receiving_mx_helo: Option<String>,
    pub receiving_ip: Option<IpAddr>,
    pub failed_sessions: i64,
    /// `additional-information` (a URI), also read from `additional-info-uri`.
    pub additional_information: Option<String>,
    pub failure_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw: Vec<(String, String)>,
}

impl TlsReport {
    /// The rows it takes in the database (the report, its policies, their failure details):
    /// what it weighs beside the records of aggregate reports, for what an input may hold.
    pub fn rows(&self) -> usize {
        1 + self.policies.len() + self.failure_detail_count as usize
    }
}

impl TlsPolicy {
    /// Sum of the failed-session-count of its failure details.
    pub fn detailed_failures(&self) -> i64 {
        self.failure_details.iter().map(|f| f.failed_sessions).fold(0i64, i64::saturating_add)
    }
}
