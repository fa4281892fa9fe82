//! The normalized report model: what the parsers produce and the store persists.
//!
//! Reporters deviate from the schemas in many small ways (case, aliases, empty elements, odd
//! IP forms). The parsers accept those and produce these types, in which every enumeration is
//! one of its canonical values. Whatever was changed on the way is kept twice: the original
//! text in the record's `raw` map, and a [`Warning`] on the report, so that no normalization
//! is silent and an analyst can always see what the reporter actually sent.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Declares an enumeration of the report schemas: canonical spellings, accepted aliases, and
/// the conversions every one of them needs. Parsing is case-insensitive and reports whether
/// the text was canonical, so that callers can warn about what they changed.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($variant:ident = $text:literal),+ $(,)? }
        aliases { $($alias:literal => $target:ident),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every canonical spelling, in schema order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling, as stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses reporter text: canonical values in any case, then the aliases.
            pub fn parse(text: &str) -> Parsed<Self> {
                let lower = text.trim().to_ascii_lowercase();
                match lower.as_str() {
                    $($text => {
                        if text.trim() == $text { Parsed::Canonical($name::$variant) } else { Parsed::Case($name::$variant) }
                    })+
                    $($alias => Parsed::Alias($name::$target),)*
                    _ => Parsed::Unknown,
                }
            }
        }

        impl WireEnum for $name {
            fn parse(text: &str) -> Parsed<Self> {
                $name::parse(text)
            }
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// For the enumerations of the other report kinds (`tlsrpt::model`).
pub(crate) use wire_enum;

/// The enumerations of the report schemas, for code that handles all of them alike.
pub trait WireEnum: Copy + fmt::Debug {
    fn parse(text: &str) -> Parsed<Self>;
    fn as_str(self) -> &'static str;
}

/// How a reporter's text mapped onto an enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Exactly the canonical spelling.
    Canonical(T),
    /// The canonical value in another case or with surrounding blanks (`Pass`, `FAIL`).
    Case(T),
    /// A known alias (`hardfail`, `unknown`, `error`).
    Alias(T),
    /// Nothing we know.
    Unknown,
}

impl<T: Copy> Parsed<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Parsed::Canonical(v) | Parsed::Case(v) | Parsed::Alias(v) => Some(v),
            Parsed::Unknown => None,
        }
    }
}

wire_enum! {
    /// Which schema a report follows: RFC 7489 Appendix C or RFC 9990 (DMARCbis).
    Schema { Rfc7489 = "rfc7489", Rfc9990 = "rfc9990" }
    aliases {}
}

wire_enum! {
    /// Policy (`p`, `sp`, `np`) and applied disposition. `pass` is RFC 9990's "no action,
    /// passing DMARC with an enforcing policy" and only meaningful as a disposition.
    Disposition { None = "none", Pass = "pass", Quarantine = "quarantine", Reject = "reject" }
    aliases {}
}

wire_enum! {
    /// The DMARC-aligned result of DKIM or SPF in `policy_evaluated`.
    Verdict { Pass = "pass", Fail = "fail" }
    aliases {
        "hardfail" => Fail, "softfail" => Fail, "neutral" => Fail, "none" => Fail,
        "temperror" => Fail, "permerror" => Fail, "policy" => Fail,
    }
}

wire_enum! {
    /// A DKIM result (RFC 8601 section 2.7.1).
    DkimResult {
        None = "none", Pass = "pass", Fail = "fail", Policy = "policy", Neutral = "neutral",
        TempError = "temperror", PermError = "permerror",
    }
    aliases { "hardfail" => Fail, "unknown" => TempError, "error" => PermError }
}

wire_enum! {
    /// An SPF result (RFC 8601 section 2.7.2). The RFC 7489 schema itself notes that
    /// `temperror` is "commonly implemented as unknown" and `permerror` as "error".
    SpfResult {
        None = "none", Neutral = "neutral", Pass = "pass", Fail = "fail", SoftFail = "softfail",
        TempError = "temperror", PermError = "permerror", Policy = "policy",
    }
    aliases { "hardfail" => Fail, "unknown" => TempError, "error" => PermError }
}

wire_enum! {
    /// The identity SPF checked. RFC 9990 keeps only `mfrom`.
    SpfScope { Helo = "helo", Mfrom = "mfrom" }
    aliases { "mailfrom" => Mfrom, "mail_from" => Mfrom }
}

wire_enum! {
    /// DKIM or SPF identifier alignment mode.
    Alignment { Relaxed = "r", Strict = "s" }
    aliases { "relaxed" => Relaxed, "strict" => Strict }
}

wire_enum! {
    /// RFC 9990 `testing`: the value of the policy's `t` tag.
    Testing { No = "n", Yes = "y" }
    aliases {}
}

wire_enum! {
    /// RFC 9990 `discovery_method`: how the policy record was found.
    DiscoveryMethod { Psl = "psl", Treewalk = "treewalk" }
    aliases {}
}

/// Policy override reasons of RFC 7489 and RFC 9990 together. Others are kept as sent.
pub const OVERRIDE_REASONS: &[&str] =
    &["forwarded", "sampled_out", "trusted_forwarder", "mailing_list", "local_policy", "other", "policy_test_mode"];

/// The policy the report says was published in DNS.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: Option<Alignment>,
    pub aspf: Option<Alignment>,
    pub p: Option<Disposition>,
    pub sp: Option<Disposition>,
    pub np: Option<Disposition>,
    pub pct: Option<i32>,
    pub fo: Option<String>,
    pub testing: Option<Testing>,
    pub discovery_method: Option<DiscoveryMethod>,
}

/// Everything about an aggregate report except its records, known before the first record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportHeader {
    /// XML namespace of the root element, if any.
    pub namespace: Option<String>,
    /// `<version>` as sent.
    pub version: Option<String>,
    pub org_name: String,
    pub org_email: Option<String>,
    pub extra_contact_info: Option<String>,
    /// As sent (angle brackets and all): the natural key uses it verbatim.
    pub report_id: String,
    pub date_begin: DateTime<Utc>,
    pub date_end: DateTime<Utc>,
    /// `<error>` lines of the report metadata.
    pub errors: Vec<String>,
    pub generator: Option<String>,
    pub policy: PolicyPublished,
}

/// A policy override reason of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideReason {
    /// Lower-cased reason type; one of [`OVERRIDE_REASONS`] unless the reporter invented one.
    pub kind: String,
    pub comment: Option<String>,
}

/// One DKIM result of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimAuth {
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub result: Option<DkimResult>,
    pub human_result: Option<String>,
}

/// One SPF result of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfAuth {
    pub domain: Option<String>,
    pub scope: Option<SpfScope>,
    pub result: Option<SpfResult>,
    pub human_result: Option<String>,
}

/// One `<record>`: a count of messages sharing source IP, results and identifiers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// `None` when the reporter sent an empty or unparsable address (the text is in `raw`).
    pub source_ip: Option<IpAddr>,
    pub count: i64,
    pub disposition: Option<Disposition>,
    pub dkim_aligned: Option<Verdict>,
    pub spf_aligned: Option<Verdict>,
    pub reasons: Vec<OverrideReason>,
    pub header_from: Option<String>,
    pub envelope_from: Option<String>,
    pub envelope_to: Option<String>,
    pub dkim: Vec<DkimAuth>,
    pub spf: Vec<SpfAuth>,
    /// Original text of every value that normalization changed, by field path
    /// (`source_ip`, `disposition`, `dkim[0].result`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw: Vec<(String, String)>,
    /// Record-level extension elements (RFC 9990), as XML text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extensions: Option<String>,
}

impl Record {
    /// DMARC passes when either aligned result passes; unknown when neither was reported.
    pub fn dmarc_result(&self) -> Option<Verdict> {
        match (self.dkim_aligned, self.spf_aligned) {
            (Some(Verdict::Pass), _) | (_, Some(Verdict::Pass)) => Some(Verdict::Pass),
            (None, None) => None,
            _ => Some(Verdict::Fail),
        }
    }
}

/// What is known about a report once all its records have been read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSummary {
    pub schema: Schema,
    pub record_count: u64,
    pub message_count: i64,
    /// Report-level `<extension>` elements (RFC 9990), as XML text.
    pub extensions: Option<String>,
    pub warnings: Vec<Warning>,
}

/// A complete aggregate report held in memory (small reports, tests, golden files).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateReport {
    pub header: ReportHeader,
    pub summary: ReportSummary,
    pub records: Vec<Record>,
}

/// A normalization or tolerance applied to a report, recorded instead of failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable identifier, documented in the README (`enum_case`, `ip_normalized`, ...).
    pub code: &'static str,
    pub message: String,
    /// How many times it occurred (records with the same quirk share one warning).
    pub count: u64,
    /// The first record (1-based) it occurred in, for record-level warnings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_record: Option<u64>,
}

/// Collects warnings, merging repeats so a report whose million records all say `Pass`
/// yields one warning with a count, not a million.
#[derive(Debug, Default)]
pub struct Warnings {
    list: Vec<Warning>,
    index: HashMap<(&'static str, String), usize>,
    dropped: u64,
}

impl Warnings {
    /// Distinct warnings kept per report; further distinct ones are only counted.
    pub const MAX_DISTINCT: usize = 200;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, code: &'static str, message: impl Into<String>) {
        self.add_at(code, message, None);
    }

    pub fn add_at(&mut self, code: &'static str, message: impl Into<String>, record: Option<u64>) {
        let message = message.into();
        if let Some(&at) = self.index.get(&(code, message.clone())) {
            self.list[at].count += 1;
            return;
        }
        if self.list.len() >= Self::MAX_DISTINCT {
            self.dropped += 1;
            return;
        }
        self.index.insert((code, message.clone()), self.list.len());
        self.list.push(Warning { code, message, count: 1, first_record: record });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn codes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.list.iter().map(|w| w.code)
    }

    pub fn into_vec(mut self) -> Vec<Warning> {
        if self.dropped > 0 {
            self.list.push(Warning {
                code: "warnings_truncated",
                message: format!("{} more distinct warnings were not kept", self.dropped),
                count: self.dropped,
                first_record: None,
            });
        }
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_case_and_aliases() {
        assert_eq!(SpfResult::parse("pass"), Parsed::Canonical(SpfResult::Pass));
        assert_eq!(SpfResult::parse("SoftFail"), Parsed::Case(SpfResult::SoftFail));
        assert_eq!(SpfResult::parse("hardfail"), Parsed::Alias(SpfResult::Fail));
        assert_eq!(SpfResult::parse("unknown"), Parsed::Alias(SpfResult::TempError));
        assert_eq!(DkimResult::parse("error"), Parsed::Alias(DkimResult::PermError));
        assert_eq!(Disposition::parse("bounce"), Parsed::Unknown);
        assert_eq!(Alignment::parse("r").value().map(Alignment::as_str), Some("r"));
    }

    #[test]
    fn dmarc_result_is_pass_when_either_aligned_result_passes() {
        let mut record = Record {
            source_ip: None,
            count: 1,
            disposition: None,
            dkim_aligned: Some(Verdict::Fail),
            spf_aligned: Some(Verdict::Pass),
            reasons: vec![],
            header_from: None,
            envelope_from: None,
            envelope_to: None,
            dkim: vec![],
            spf: vec![],
            raw: vec![],
            extensions: None,
        };
        assert_eq!(record.dmarc_result(), Some(Verdict::Pass));
        record.spf_aligned = None;
        assert_eq!(record.dmarc_result(), Some(Verdict::Fail));
        record.dkim_aligned = None;
        assert_eq!(record.dmarc_result(), None);
    }

    #[test]
    fn repeated_warnings_are_merged_and_counted() {
        let mut warnings = Warnings::new();
        warnings.add_at("enum_case", "`Pass` read as `pass`", Some(3));
        warnings.add_at("enum_case", "`Pass` read as `pass`", Some(9));
        warnings.add("zero_records", "no records");
        let list = warnings.into_vec();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].count, 2);
        assert_eq!(list[0].first_record, Some(3));
    }
}
