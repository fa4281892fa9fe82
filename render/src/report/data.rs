//! The figures of the visual report (`dmarcpipe report --format html|pdf`), as the store
//! gathers them and the page shows them.
//!
//! These are plain data: the store (`dmarcpipe_store::report`) fills them from the rollups in a
//! few queries, and [`super::page`] formats them. They live here, in the pure crate, so that
//! both can use them without the renderer knowing anything of the database. Counts are `i128`
//! because sums of counts may pass 64 bits (see `dmarcpipe_store::rollup::Count`).

use serde::Serialize;

pub use crate::digest::{DomainStanding, Totals};

/// The traffic classes, in the order they are shown (see the README, "Traffic classes").
pub const CLASSES: [&str; 4] = ["compliant", "forwarded", "misconfigured", "unknown"];

/// Messages of one key split by traffic class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub compliant: i128,
    pub forwarded: i128,
    pub misconfigured: i128,
    pub unknown: i128,
}

impl ClassCounts {
    pub fn total(&self) -> i128 {
        self.compliant + self.forwarded + self.misconfigured + self.unknown
    }

    /// The counts in the order of [`CLASSES`].
    pub fn values(&self) -> [i128; 4] {
        [self.compliant, self.forwarded, self.misconfigured, self.unknown]
    }

    /// The class with the most messages (the first of [`CLASSES`] on a tie).
    pub fn main_class(&self) -> &'static str {
        let values = self.values();
        let mut best = 0;
        for (index, value) in values.iter().enumerate() {
            if *value > values[best] {
                best = index;
            }
        }
        CLASSES[best]
    }
}

/// One UTC day's messages by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayClasses {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub classes: ClassCounts,
}

/// Messages per DMARC result and disposition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResultRow {
    /// `pass`, `fail` or `unknown` (no DMARC evaluation reported).
    pub result: String,
    /// `none`, `quarantine`, `reject`, or `unknown` (not reported).
    pub disposition: String,
    pub messages: i128,
}

/// A sending source (one address) over the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    /// `None`: records without a source address.
    pub ip: Option<String>,
    pub host: Option<String>,
    pub sender: Option<String>,
    pub sender_kind: Option<String>,
    pub country_code: Option<String>,
    pub asn: Option<i64>,
    pub as_org: Option<String>,
    pub messages: i128,
    pub dmarc_pass: i128,
    pub dkim_aligned: i128,
    pub spf_aligned: i128,
    pub classes: ClassCounts,
}

/// A group of sources (a reporter, a host domain, a sending service, a country).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupRow {
    /// `None`: not known (sources not enriched, or nothing found).
    pub key: Option<String>,
    /// A second column where the group has one: the sender's kind, the country's name, the
    /// reporter's last report day.
    pub detail: Option<String>,
    pub messages: i128,
    pub dmarc_pass: i128,
    pub dkim_aligned: i128,
    pub spf_aligned: i128,
    /// Distinct source addresses (reports, for reporters).
    pub count: i64,
    /// Messages not passing DMARC.
    pub failing: i128,
}

/// Detailed statistics: messages per domain, result, disposition and alignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DetailRow {
    pub domain: String,
    pub result: String,
    pub disposition: String,
    /// `pass`, `fail` or `unknown`.
    pub dkim_aligned: String,
    pub spf_aligned: String,
    pub messages: i128,
}

/// Failure (forensic) reports of the period, by clear metadata only (never sealed payloads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForensicRow {
    pub domain: Option<String>,
    pub auth_failure: Option<String>,
    pub source: Option<String>,
    pub reports: i64,
    /// Latest arrival (or receipt) of these reports, `YYYY-MM-DD HH:MM`.
    pub last: Option<String>,
}

/// A known service that sends for a domain without aligning: what fails and the fix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceFix {
    pub domain: String,
    /// The sending service, or the source's host when no service is known.
    pub service: String,
    /// Misconfigured messages (not passing, not forwarded).
    pub failing: i128,
    pub messages: i128,
    pub dkim_aligned: i128,
    pub spf_aligned: i128,
    pub sources: i64,
}

/// A source that fails and is neither known nor ever compliant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnknownSource {
    pub domain: String,
    pub ip: Option<String>,
    pub host: Option<String>,
    pub country_code: Option<String>,
    pub asn: Option<i64>,
    pub as_org: Option<String>,
    pub messages: i128,
}

/// Everything the visual report shows.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// `example.org`, or `all domains`.
    pub scope: String,
    /// First and last day of the period (UTC, `YYYY-MM-DD`); `None` when there is no data.
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    /// The period of the same length before it, for the deltas.
    pub previous_first_day: Option<String>,
    pub previous_last_day: Option<String>,
    /// When the report was made (UTC, `YYYY-MM-DD HH:MM`).
    pub generated: String,
    pub current: Totals,
    pub previous: Totals,
    /// Messages by class over the period.
    pub classes: ClassCounts,
    pub previous_classes: ClassCounts,
    /// Every day of the period, in order (days without reports have zero messages).
    pub days: Vec<DayClasses>,
    pub results: Vec<ResultRow>,
    /// The sources with the most messages.
    pub sources: Vec<SourceRow>,
    pub orgs: Vec<GroupRow>,
    pub hosts: Vec<GroupRow>,
    pub senders: Vec<GroupRow>,
    pub countries: Vec<GroupRow>,
    pub details: Vec<DetailRow>,
    pub forensic: Vec<ForensicRow>,
    pub services_to_align: Vec<ServiceFix>,
    pub unknown_sources: Vec<UnknownSource>,
    pub domains: Vec<DomainStanding>,
    /// Misconfigured messages per domain (readiness: none may be left before `p=reject`).
    pub misconfigured_by_domain: Vec<(String, i128)>,
    /// Credits the geolocation data's licence asks for, shown with the map.
    pub attributions: Vec<String>,
}
