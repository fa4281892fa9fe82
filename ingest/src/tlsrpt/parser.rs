//! From a parsed JSON value to a [`TlsReport`], leniently.
//!
//! Every member of RFC 8460 §4.4 is read; what real reporters do instead is accepted with a
//! warning and the original kept in `raw` (CHECKLIST §6.5 rows T1–T6): members missing
//! (Microsoft omits `policy-string`, `mx-host`, `sending-mta-ip`, `receiving-mx-hostname`),
//! `null` (`contact-info`), numbers as strings, date-times without seconds or offset or with
//! an offset, `mx-host` as a string or an array, `policies` as a single object, a report
//! without policies, a `policy-string` holding a JSON array in one string (Microsoft's TLSA
//! policies), the prose names of members (`mx-host-pattern`, `additional-info-uri`) and the
//! pre-RFC `failure-error-code`, unregistered result and policy types, members nobody
//! defined. What a report cannot do without is an error: who sent it (`organization-name`
//! or `contact-info`), `report-id`, the date range, and a result type and a session count
//! in each failure detail; so is a count that is negative or not a number, and what the
//! database could not add up or index: counts beyond [`MAX_REPORT_SESSIONS`], and texts it
//! looks reports up by longer than a name can be.

use std::net::IpAddr;

use super::bounded::TlsLimits;
use super::model::{FailureDetail, PolicyType, ResultType, TlsPolicy, TlsReport};
use super::node::Node;
use super::values::{self, describe};
use crate::aggregate::MAX_KEY_BYTES;
use crate::error::IngestError;
use crate::model::{Parsed, Warnings};
use crate::normalize::{self, Normalized};

/// The most sessions one report may count, successful and failed together (and apart, in its
/// failure details): more than any reporter sees (the busiest report a day a few million), and
/// small enough that sums over millions of reports stay exact in 64 bits, as for the messages
/// of an aggregate report.
pub const MAX_REPORT_SESSIONS: i64 = 1 << 40;

/// The longest domain name (RFC 1035), for the policy domains and MX hosts reports are looked
/// up by.
const MAX_DOMAIN_BYTES: usize = 253;

/// Members whose presence at the root makes a JSON object a TLS report.
pub(crate) const REPORT_MEMBERS: &[&str] = &["organization-name", "report-id", "policies", "date-range"];

/// Original text of changed values and unknown members, by member path.
type Raw = Vec<(String, String)>;

/// `Organization_Name` and `organization-name` alike.
fn normalized_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', "-")
}

/// Whether an object has any member of a TLS report.
pub(crate) fn is_tls_report(object: &[(String, Node)]) -> bool {
    object.iter().any(|(key, _)| REPORT_MEMBERS.contains(&normalized_key(key).as_str()))
}

/// The members of one JSON object, taken one by one by their RFC 8460 names; whatever is
/// left at the end is unknown.
struct Members<'v> {
    left: Vec<(&'v str, &'v Node)>,
    /// `the report`, `a policy`, ...: for messages.
    context: &'static str,
}

impl<'v> Members<'v> {
    fn new(object: &'v [(String, Node)], context: &'static str) -> Self {
        Members { left: object.iter().map(|(key, value)| (key.as_str(), value)).collect(), context }
    }

    /// Member `name`, or one of its `aliases`, in that order of preference; also in another
    /// case or with `_` for `-`. Anything but the exact name is warned about.
    fn take(&mut self, name: &'static str, aliases: &[&'static str], warnings: &mut Warnings) -> Option<&'v Node> {
        let exact = self.left.iter().position(|(key, _)| *key == name);
        let position = exact
            .or_else(|| aliases.iter().find_map(|alias| self.left.iter().position(|(key, _)| key == alias)))
            .or_else(|| {
                self.left.iter().position(|(key, _)| {
                    let key = normalized_key(key);
                    key == name || aliases.contains(&key.as_str())
                })
            })?;
        let (key, value) = self.left.remove(position);
        if key != name {
            warnings.add("member_alias", format!("`{key}` read as `{name}` in {}", self.context));
        }
        Some(value)
    }

    /// Warns about the members nobody took and keeps them in `raw` under `prefix`.
    fn finish(self, prefix: &str, raw: &mut Raw, warnings: &mut Warnings) {
        for (key, value) in self.left {
            warnings.add("unknown_member", format!("unknown member `{key}` in {} kept in raw", self.context));
            raw.push((format!("{prefix}{key}"), value.json()));
        }
    }
}

/// Reads one report; see the module documentation.
pub(crate) struct ReportReader<'l> {
    limits: &'l TlsLimits,
    warnings: Warnings,
    failure_details: usize,
}

impl<'l> ReportReader<'l> {
    pub fn new(limits: &'l TlsLimits, warnings: Warnings) -> Self {
        ReportReader { limits, warnings, failure_details: 0 }
    }

    pub fn report(mut self, object: &[(String, Node)]) -> Result<TlsReport, IngestError> {
        let mut members = Members::new(object, "the report");
        let mut raw = Raw::new();
        let w = &mut self.warnings;
        let organization = members.take("organization-name", &[], w);
        let date_range = members.take("date-range", &[], w);
        let contact = members.take("contact-info", &[], w);
        let report_id = members.take("report-id", &[], w);
        let policies = members.take("policies", &[], w);

        let contact_info = self.text(contact, "contact-info", &mut raw);
        if contact_info.is_none() {
            self.absent(contact, "contact-info", "the report");
        }
        let organization_name = match (self.text(organization, "organization-name", &mut raw), &contact_info) {
            (Some(name), _) => name,
            (None, Some(contact)) => {
                let derived = contact.rsplit('@').next().unwrap_or(contact).trim().to_lowercase();
                self.warnings
                    .add("org_name_derived", format!("no `organization-name`: `{derived}` taken from `contact-info`"));
                derived
            }
            (None, None) => {
                return Err(IngestError::invalid(
                    "no `organization-name` and no `contact-info`: the reporter is unknown",
                ));
            }
        };
        let report_id = self
            .text(report_id, "report-id", &mut raw)
            .ok_or_else(|| IngestError::invalid("no `report-id` in the TLS report"))?;

        let Some(Node::Object(range)) = date_range else {
            return Err(IngestError::invalid(match date_range {
                None => "no `date-range` in the TLS report".to_owned(),
                Some(other) => format!("`date-range` is {}, not an object", describe(other)),
            }));
        };
        let mut range_members = Members::new(range, "date-range");
        let start = range_members.take("start-datetime", &[], &mut self.warnings);
        let end = range_members.take("end-datetime", &[], &mut self.warnings);
        range_members.finish("date-range.", &mut raw, &mut self.warnings);
        let date_begin = self.datetime(start, "date-range.start-datetime", &mut raw)?;
        let date_end = self.datetime(end, "date-range.end-datetime", &mut raw)?;
        let period = normalize::period(date_begin, date_end, "the date range").map_err(IngestError::invalid)?;
        if let Some((code, why)) = period.note {
            self.warnings.add(code, why);
        }

        let entries: Vec<&Node> = match policies {
            Some(Node::Array(entries)) => entries.iter().collect(),
            Some(object @ Node::Object(_)) => {
                self.warnings.add(
                    "policies_not_array",
                    "`policies` is a single object, not an array (RFC 8460 §4.4): read as one",
                );
                vec![object]
            }
            None | Some(Node::Null) => Vec::new(),
            Some(other) => {
                return Err(IngestError::invalid(format!("`policies` is {}, not an array", describe(other))));
            }
        };
        if entries.is_empty() {
            self.warnings.add("no_policies", "the report has no policies");
        }
        if entries.len() > self.limits.max_policies {
            return Err(IngestError::limit(
                format!("TLS report of {} policies", entries.len()),
                format!("{} policies", self.limits.max_policies),
            ));
        }
        let mut read = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            read.push(self.policy(index, entry)?);
        }
        members.finish("", &mut raw, &mut self.warnings);

        for policy in &read {
            if !policy.failure_details.is_empty() && policy.detailed_failures() != policy.failed_sessions {
                self.warnings.add(
                    "failure_totals_mismatch",
                    "the failure details of a policy add up to another number than its total-failure-session-count \
                     (both kept)",
                );
            }
        }
        check_sizes(&organization_name, &report_id, &read)?;
        // Within the cap that check_sizes applies, these sums cannot overflow.
        let successful_sessions = read.iter().map(|p| p.successful_sessions).sum();
        let failed_sessions = read.iter().map(|p| p.failed_sessions).sum();
        Ok(TlsReport {
            organization_name,
            date_begin,
            date_end,
            contact_info,
            report_id,
            successful_sessions,
            failed_sessions,
            failure_detail_count: self.failure_details as u64,
            policies: read,
            raw,
            warnings: self.warnings.into_vec(),
        })
    }

    fn policy(&mut self, index: usize, entry: &Node) -> Result<TlsPolicy, IngestError> {
        let Node::Object(entry) = entry else {
            return Err(IngestError::invalid(format!("policies[{index}] is {}, not an object", describe(entry))));
        };
        let mut policy = TlsPolicy::default();
        let mut raw = Raw::new();
        let mut members = Members::new(entry, "a policies entry");
        let applied = members.take("policy", &[], &mut self.warnings);
        let summary = members.take("summary", &[], &mut self.warnings);
        let details = members.take("failure-details", &[], &mut self.warnings);

        match applied {
            Some(Node::Object(applied)) => self.applied_policy(applied, &mut policy, &mut raw),
            other => self.absent(other, "policy", "a policies entry"),
        }

        match summary {
            Some(Node::Object(summary)) => {
                let mut members = Members::new(summary, "a summary");
                let successful = members.take("total-successful-session-count", &[], &mut self.warnings);
                let failed = members.take("total-failure-session-count", &[], &mut self.warnings);
                members.finish("summary.", &mut raw, &mut self.warnings);
                policy.successful_sessions = self.count(
                    successful,
                    &format!("policies[{index}].summary.total-successful-session-count"),
                    "summary.total-successful-session-count",
                    &mut raw,
                )?;
                policy.failed_sessions = self.count(
                    failed,
                    &format!("policies[{index}].summary.total-failure-session-count"),
                    "summary.total-failure-session-count",
                    &mut raw,
                )?;
            }
            other => self.absent(other, "summary", "a policies entry"),
        }

        let details: Vec<&Node> = match details {
            None | Some(Node::Null) => Vec::new(),
            Some(Node::Array(details)) => details.iter().collect(),
            Some(object @ Node::Object(_)) => {
                self.warnings.add("failure_details_not_array", "`failure-details` is a single object: read as one");
                vec![object]
            }
            Some(other) => {
                return Err(IngestError::invalid(format!(
                    "policies[{index}].failure-details is {}, not an array",
                    describe(other)
                )));
            }
        };
        self.failure_details += details.len();
        if self.failure_details > self.limits.max_failure_details {
            return Err(IngestError::limit(
                format!("TLS report of more than {} failure details", self.limits.max_failure_details),
                format!("{} failure details", self.limits.max_failure_details),
            ));
        }
        for (number, detail) in details.into_iter().enumerate() {
            let path = format!("policies[{index}].failure-details[{number}]");
            policy.failure_details.push(self.failure_detail(&path, detail)?);
        }
        members.finish("", &mut raw, &mut self.warnings);
        policy.raw = raw;
        Ok(policy)
    }

    /// The `policy` object: type, policy strings, domain, MX host patterns.
    fn applied_policy(&mut self, applied: &[(String, Node)], policy: &mut TlsPolicy, raw: &mut Raw) {
        let mut members = Members::new(applied, "a policy");
        let kind = members.take("policy-type", &[], &mut self.warnings);
        let strings = members.take("policy-string", &[], &mut self.warnings);
        let domain = members.take("policy-domain", &[], &mut self.warnings);
        let mx = members.take("mx-host", &["mx-host-pattern"], &mut self.warnings);
        members.finish("policy.", raw, &mut self.warnings);

        policy.policy_type = self.text(kind, "policy.policy-type", raw).map(|text| match PolicyType::parse(&text) {
            Parsed::Canonical(kind) => kind.as_str().to_owned(),
            Parsed::Case(kind) | Parsed::Alias(kind) => {
                self.warnings.add("enum_case", format!("`{text}` read as `{kind}` in policy-type"));
                raw.push(("policy.policy-type".into(), text));
                kind.as_str().to_owned()
            }
            Parsed::Unknown => {
                self.warnings.add("policy_type_unknown", format!("unknown policy-type `{text}` kept as sent"));
                text
            }
        });
        if policy.policy_type.is_none() {
            self.absent(kind, "policy-type", "a policy");
        }
        // A policy that was not found has no policy text and no MX patterns to report.
        let has_policy = policy.policy_type.as_deref() != Some(PolicyType::NoPolicyFound.as_str());

        policy.policy_strings = self.policy_strings(strings, raw);
        if policy.policy_strings.is_empty() && has_policy {
            self.absent(strings, "policy-string", "a policy");
        }
        policy.policy_domain = self.domain(domain, "policy.policy-domain", raw);
        if policy.policy_domain.is_none() {
            self.absent(domain, "policy-domain", "a policy");
        }
        policy.mx_hosts = self.mx_hosts(mx, raw);
        if mx.is_none() && has_policy {
            self.absent(mx, "mx-host", "a policy");
        }
    }

    /// `policy-string`: an array of strings; also one string that holds a JSON array
    /// (Microsoft's TLSA policies) or lines.
    fn policy_strings(&mut self, value: Option<&Node>, raw: &mut Raw) -> Vec<String> {
        let nested = |text: &str| -> Option<Vec<String>> {
            let text = text.trim();
            if !text.starts_with('[') {
                return None;
            }
            serde_json::from_str::<Vec<String>>(text).ok()
        };
        match value {
            None | Some(Node::Null) => Vec::new(),
            Some(Node::Array(items)) => {
                if let [Node::String(only)] = items.as_slice()
                    && let Some(lines) = nested(only)
                {
                    self.warnings.add(
                        "policy_string_nested",
                        "a policy-string holding a JSON array in one string read as its items",
                    );
                    raw.push(("policy.policy-string".into(), Node::Array(items.clone()).json()));
                    return lines;
                }
                items.iter().filter_map(|item| self.coerced_text(item, "policy.policy-string", raw)).collect()
            }
            Some(Node::String(text)) => {
                raw.push(("policy.policy-string".into(), text.clone()));
                if let Some(lines) = nested(text) {
                    self.warnings.add(
                        "policy_string_nested",
                        "a policy-string holding a JSON array in one string read as its items",
                    );
                    return lines;
                }
                self.warnings.add("policy_string_not_array", "a policy-string sent as one string read line by line");
                text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_owned).collect()
            }
            Some(other) => {
                self.warnings.add("type_invalid", format!("policy-string is {}, kept in raw only", describe(other)));
                raw.push(("policy.policy-string".into(), other.json()));
                Vec::new()
            }
        }
    }

    /// `mx-host`: RFC 8460 gives one pattern as a string; most reporters send an array.
    /// Entries written as a policy line (`mx: mx.example.com`) lose the `mx:`.
    fn mx_hosts(&mut self, value: Option<&Node>, raw: &mut Raw) -> Vec<String> {
        let items: Vec<&Node> = match value {
            None | Some(Node::Null) => return Vec::new(),
            Some(Node::Array(items)) => {
                self.warnings.add(
                    "mx_host_array",
                    "mx-host sent as an array of patterns (RFC 8460 §4.4 gives one string): every pattern kept",
                );
                items.iter().collect()
            }
            Some(single) => vec![single],
        };
        let mut hosts = Vec::with_capacity(items.len());
        let mut changed = false;
        for item in items {
            let Some(text) = self.coerced_text(item, "policy.mx-host", raw) else { continue };
            let pattern = match text.get(..3).filter(|head| head.eq_ignore_ascii_case("mx:")) {
                Some(_) => {
                    self.warnings
                        .add("mx_host_prefixed", "mx-host written as a policy line (`mx: …`): the `mx:` dropped");
                    changed = true;
                    text[3..].trim()
                }
                None => text.as_str(),
            };
            if let Some(Normalized { value, note }) = normalize::domain(pattern) {
                if let Some((code, why)) = note {
                    self.warnings.add(code, format!("{why} in mx-host"));
                    changed = true;
                }
                hosts.push(value);
            }
        }
        if changed && let Some(value) = value {
            raw.push(("policy.mx-host".into(), value.json()));
        }
        hosts
    }

    fn failure_detail(&mut self, path: &str, detail: &Node) -> Result<FailureDetail, IngestError> {
        let Node::Object(detail) = detail else {
            return Err(IngestError::invalid(format!("{path} is {}, not an object", describe(detail))));
        };
        let mut raw = Raw::new();
        let mut members = Members::new(detail, "a failure detail");
        let w = &mut self.warnings;
        let result = members.take("result-type", &[], w);
        let sending = members.take("sending-mta-ip", &[], w);
        let mx_hostname = members.take("receiving-mx-hostname", &[], w);
        let mx_helo = members.take("receiving-mx-helo", &[], w);
        let receiving = members.take("receiving-ip", &[], w);
        let count = members.take("failed-session-count", &[], w);
        let information = members.take("additional-information", &["additional-info-uri"], w);
        let reason = members.take("failure-reason-code", &["failure-error-code"], w);
        members.finish("", &mut raw, &mut self.warnings);

        let result_type = self
            .text(result, "result-type", &mut raw)
            .ok_or_else(|| IngestError::invalid(format!("no `result-type` in {path}")))?;
        let result_type = match ResultType::parse(&result_type) {
            Parsed::Canonical(kind) => kind.as_str().to_owned(),
            Parsed::Case(kind) | Parsed::Alias(kind) => {
                self.warnings.add("enum_case", format!("`{result_type}` read as `{kind}` in result-type"));
                raw.push(("result-type".into(), result_type));
                kind.as_str().to_owned()
            }
            Parsed::Unknown => {
                self.warnings
                    .add("result_type_unknown", format!("unregistered result-type `{result_type}` kept as sent"));
                result_type
            }
        };
        if count.is_none_or(Node::is_null) {
            return Err(IngestError::invalid(format!("no `failed-session-count` in {path}")));
        }
        let failed_sessions =
            self.count(count, &format!("{path}.failed-session-count"), "failed-session-count", &mut raw)?;
        let sending_mta_ip = self.ip(sending, "sending-mta-ip", &mut raw);
        if sending_mta_ip.is_none() && sending.is_none_or(Node::is_null) {
            self.absent(sending, "sending-mta-ip", "a failure detail");
        }
        let receiving_mx_hostname = self.domain(mx_hostname, "receiving-mx-hostname", &mut raw);
        if receiving_mx_hostname.is_none() {
            self.absent(mx_hostname, "receiving-mx-hostname", "a failure detail");
        }
        let receiving_ip = self.ip(receiving, "receiving-ip", &mut raw);
        if receiving_ip.is_none() && receiving.is_none_or(Node::is_null) {
            self.absent(receiving, "receiving-ip", "a failure detail");
        }
        Ok(FailureDetail {
            result_type,
            sending_mta_ip,
            receiving_mx_hostname,
            receiving_mx_helo: self.text(mx_helo, "receiving-mx-helo", &mut raw),
            receiving_ip,
            failed_sessions,
            additional_information: self.text(information, "additional-information", &mut raw),
            failure_reason_code: self.text(reason, "failure-reason-code", &mut raw),
            raw,
        })
    }

    /// A member RFC 8460 requires (or real reports always have) is missing, null or empty.
    fn absent(&mut self, value: Option<&Node>, member: &str, context: &str) {
        let message = match value {
            None => format!("no `{member}` in {context}"),
            Some(Node::Null) => format!("`{member}` is null in {context}"),
            Some(_) => format!("`{member}` is empty in {context}"),
        };
        self.warnings.add("member_missing", message);
    }

    /// A text member, trimmed; empty means absent. Numbers and booleans are read as their
    /// text (warned); arrays and objects are kept in `raw` only.
    fn text(&mut self, value: Option<&Node>, path: &str, raw: &mut Raw) -> Option<String> {
        self.coerced_text(value?, path, raw)
    }

    fn coerced_text(&mut self, value: &Node, path: &str, raw: &mut Raw) -> Option<String> {
        match value {
            Node::Null => None,
            Node::String(text) => Some(text.trim()).filter(|t| !t.is_empty()).map(str::to_owned),
            Node::Number(_) | Node::Bool(_) => {
                self.warnings.add("type_coerced", format!("{path} sent as {} read as text", describe(value)));
                Some(value.json())
            }
            Node::Array(_) | Node::Object(_) => {
                self.warnings.add("type_invalid", format!("{path} is {}, kept in raw only", describe(value)));
                raw.push((path.to_owned(), value.json()));
                None
            }
        }
    }

    /// A domain (lower case, no trailing dot).
    fn domain(&mut self, value: Option<&Node>, path: &str, raw: &mut Raw) -> Option<String> {
        let text = self.text(value, path, raw)?;
        let Normalized { value, note } = normalize::domain(&text)?;
        if let Some((code, why)) = note {
            self.warnings.add(code, format!("{why} in {}", member_name(path)));
            raw.push((path.to_owned(), text));
        }
        Some(value)
    }

    /// An IP address in any of the forms of the wild; unreadable text is kept in `raw`.
    fn ip(&mut self, value: Option<&Node>, path: &str, raw: &mut Raw) -> Option<IpAddr> {
        let text = self.text(value, path, raw)?;
        match normalize::ip_address(&text) {
            Some(Normalized { value, note }) => {
                if let Some((code, why)) = note {
                    self.warnings.add(code, format!("{why} in {path}"));
                    raw.push((path.to_owned(), text));
                }
                Some(value)
            }
            None => {
                self.warnings.add("ip_invalid", format!("{path} that is not an IP address kept in raw only"));
                raw.push((path.to_owned(), text));
                None
            }
        }
    }

    /// A session count; absent is 0 (warned). `path` is the full path for errors, `key` the
    /// path within its entity for `raw`.
    fn count(&mut self, value: Option<&Node>, path: &str, key: &str, raw: &mut Raw) -> Result<i64, IngestError> {
        match value {
            None | Some(Node::Null) => {
                self.absent(value, member_name(key), "a summary");
                Ok(0)
            }
            Some(value) => {
                let (count, note) = values::count(value, path).map_err(IngestError::invalid)?;
                if let Some((code, why)) = note {
                    self.warnings.add(code, why);
                    raw.push((key.to_owned(), value.json()));
                }
                Ok(count)
            }
        }
    }

    fn datetime(
        &mut self,
        value: Option<&Node>,
        path: &str,
        raw: &mut Raw,
    ) -> Result<chrono::DateTime<chrono::Utc>, IngestError> {
        let text = match value {
            None | Some(Node::Null) => return Err(IngestError::invalid(format!("no `{path}` in the TLS report"))),
            Some(Node::String(text)) => text.clone(),
            Some(Node::Number(number)) => number.to_string(),
            Some(other) => {
                return Err(IngestError::invalid(format!("`{path}` is {}, not a date-time", describe(other))));
            }
        };
        let (moment, note) = values::datetime(&text).map_err(|why| IngestError::invalid(format!("`{path}`: {why}")))?;
        if let Some((code, why)) = note {
            self.warnings.add(code, format!("{why} in {path}"));
            raw.push((path.to_owned(), text));
        }
        Ok(moment)
    }
}

/// Refuses what the database could not add up exactly or index: session counts over
/// [`MAX_REPORT_SESSIONS`] for the report, and texts it looks reports up by (the natural key; a
/// policy's domain, a failure's MX host and result type) longer than any real one. An index
/// entry must fit in a third of a page.
fn check_sizes(organization: &str, report_id: &str, policies: &[TlsPolicy]) -> Result<(), IngestError> {
    let sessions = policies
        .iter()
        .try_fold(0i64, |sum, policy| sum.checked_add(policy.successful_sessions)?.checked_add(policy.failed_sessions));
    let details = policies
        .iter()
        .flat_map(|policy| &policy.failure_details)
        .try_fold(0i64, |sum, failure| sum.checked_add(failure.failed_sessions));
    for (what, total) in [("the session counts", sessions), ("the failure details' session counts", details)] {
        if total.is_none_or(|total| total > MAX_REPORT_SESSIONS) {
            return Err(IngestError::invalid(format!(
                "{what} add up to more than {MAX_REPORT_SESSIONS}, more than any reporter sees"
            )));
        }
    }
    let key = [("organization-name", organization, MAX_KEY_BYTES), ("report-id", report_id, MAX_KEY_BYTES)];
    let looked_up = policies.iter().flat_map(|policy| {
        let domain = policy.policy_domain.as_deref().map(|domain| ("policy-domain", domain, MAX_DOMAIN_BYTES));
        let failures = policy.failure_details.iter().flat_map(|failure| {
            let host = failure.receiving_mx_hostname.as_deref();
            [
                ("result-type", Some(failure.result_type.as_str()), MAX_KEY_BYTES),
                ("receiving-mx-hostname", host, MAX_DOMAIN_BYTES),
            ]
            .into_iter()
            .filter_map(|(what, text, max)| Some((what, text?, max)))
        });
        domain.into_iter().chain(failures)
    });
    match key.into_iter().chain(looked_up).find(|(_, text, max)| text.len() > *max) {
        Some((what, text, max)) => Err(IngestError::invalid(format!(
            "`{what}` of {} bytes is longer than {max} (the database looks reports up by it)",
            text.len()
        ))),
        None => Ok(()),
    }
}

/// `failed-session-count` of `summary.failed-session-count`.
fn member_name(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
