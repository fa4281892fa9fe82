//! The streaming aggregate report parser.
//!
//! [`AggregateParser::open`] reads up to the first `<record>` and yields the report header;
//! [`AggregateParser::next_record`] then hands out records one at a time, so a report of a
//! million records is stored while it is read, in constant memory. [`AggregateParser::finish`]
//! returns the totals and the warnings.
//!
//! The parser is a superset of RFC 7489 Appendix C and RFC 9990: order-insensitive, namespace
//! agnostic, every element optional except what a report cannot do without (reporter, report
//! id, date range, policy domain, and a count per record). Deviations are normalized and
//! recorded as warnings with stable codes; see the README for the list.

use std::collections::VecDeque;
use std::io::BufRead;

use chrono::{DateTime, Utc};

use super::xml::{Step, Tag, XmlCursor};
use crate::charset::Utf8Reader;
use crate::error::IngestError;
use crate::model::{
    Alignment, DiscoveryMethod, Disposition, DkimAuth, DkimResult, OVERRIDE_REASONS, OverrideReason, Parsed,
    PolicyPublished, Record, ReportHeader, ReportSummary, Schema, SpfAuth, SpfResult, SpfScope, Testing, Verdict,
    Warnings, WireEnum,
};
use crate::normalize::{self, Normalized};

/// The RFC 9990 namespace.
pub const DMARC_2_NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";
const KNOWN_NAMESPACES: &[&str] =
    &[DMARC_2_NAMESPACE, "http://dmarc.org/dmarc-xml/0.1", "http://dmarc.org/dmarc-xml/0.2"];

/// Records read before the report metadata and policy are known are held in memory; past this
/// many the document is refused (real reports put the metadata first).
const MAX_RECORDS_BEFORE_HEADER: usize = 100_000;

/// The most messages one report may count, records together: more than any reporter sees (the
/// largest real reports count tens of millions), and small enough that sums over millions of
/// reports stay exact in 64 bits.
pub const MAX_REPORT_MESSAGES: i64 = 1 << 40;

/// The most DKIM or SPF results of one record: real records have one to three; the database
/// counts them in a `smallint`.
pub const MAX_AUTH_RESULTS: usize = 1_000;

/// The longest reporter name and report id, in bytes: with the policy domain (at most 253
/// bytes, as in DNS) they form the natural key of a report, which must fit in an index entry.
pub const MAX_KEY_BYTES: usize = 512;

/// What the parser found at the root of a document.
#[derive(Debug)]
pub enum Opened<P> {
    /// A DMARC aggregate report.
    Report(P),
    /// Something else: HTML, another XML vocabulary, plain text. Says what it was.
    NotAggregate(String),
}

/// Raw header values as read, validated together once the header is complete.
#[derive(Debug, Default)]
struct HeaderDraft {
    metadata_seen: bool,
    policy_seen: bool,
    version: Option<String>,
    org_name: Option<String>,
    org_email: Option<String>,
    extra_contact_info: Option<String>,
    report_id: Option<String>,
    begin: Option<String>,
    end: Option<String>,
    errors: Vec<String>,
    generator: Option<String>,
    policy: PolicyPublished,
    policy_domain_seen: bool,
}

/// A pull parser over one aggregate report; see the module documentation.
#[derive(Debug)]
pub struct AggregateParser<R> {
    cursor: XmlCursor<Utf8Reader<R>>,
    namespace: Option<String>,
    draft: HeaderDraft,
    header: Option<ReportHeader>,
    warnings: Warnings,
    /// The first RFC 9990-only element seen, which makes the report an RFC 9990 one.
    rfc9990_evidence: Option<&'static str>,
    extensions: Vec<String>,
    buffered: VecDeque<Record>,
    records_read: u64,
    message_count: i64,
    /// `</feedback>` has been read.
    done: bool,
}

enum Item {
    Record(Box<Record>),
    End,
}

/// Where a raw value goes in [`Record::raw`]: `disposition`, `dkim[0].result`. Built only when
/// a value actually needed normalizing.
#[derive(Debug, Clone, Copy)]
enum RawKey {
    Field(&'static str),
    Indexed(&'static str, usize, &'static str),
}

impl RawKey {
    fn render(self) -> String {
        match self {
            RawKey::Field(name) => name.to_owned(),
            RawKey::Indexed(list, index, field) => format!("{list}[{index}].{field}"),
        }
    }
}

impl<R: BufRead> AggregateParser<R> {
    /// Reads the document up to its first record. Returns `NotAggregate` for documents that
    /// are not DMARC aggregate reports at all, and an error for reports that are broken.
    pub fn open(input: R, max_xml_depth: u32) -> Result<Opened<Self>, IngestError> {
        let mut cursor = XmlCursor::new(Utf8Reader::new(input), max_xml_depth);
        let mut warnings = Warnings::new();
        loop {
            match cursor.step()? {
                Step::Start(Tag::Feedback) => break,
                Step::Start(Tag::Schema) => {
                    warnings.add("stray_markup", format!("stray <{}> element around the report ignored", cursor.name()))
                }
                Step::Start(_) => {
                    return Ok(Opened::NotAggregate(format!("an XML document with root element <{}>", cursor.name())));
                }
                Step::End => {}
                Step::Eof => {
                    let what = if cursor.stray_text { "text, not XML" } else { "an empty document" };
                    return Ok(Opened::NotAggregate(what.into()));
                }
            }
        }
        let namespace_attribute = match cursor.prefix() {
            Some(prefix) => format!("xmlns:{prefix}"),
            None => "xmlns".to_owned(),
        };
        let namespace = cursor.attribute(&namespace_attribute).filter(|ns| !ns.is_empty());
        if let Some(ns) = &namespace
            && !KNOWN_NAMESPACES.contains(&ns.as_str())
        {
            warnings.add("namespace_unknown", format!("unknown XML namespace `{ns}` read as a DMARC report"));
        }
        let mut parser = AggregateParser {
            cursor,
            rfc9990_evidence: (namespace.as_deref() == Some(DMARC_2_NAMESPACE)).then_some("the dmarc-2.0 namespace"),
            namespace,
            draft: HeaderDraft::default(),
            header: None,
            warnings,
            extensions: Vec::new(),
            buffered: VecDeque::new(),
            records_read: 0,
            message_count: 0,
            done: false,
        };
        // Up to the first record, or further while the header is incomplete.
        while let Item::Record(record) = parser.next_item()? {
            parser.buffered.push_back(*record);
            if parser.draft.metadata_seen && parser.draft.policy_seen {
                break;
            }
            if parser.buffered.len() > MAX_RECORDS_BEFORE_HEADER {
                return Err(IngestError::limit(
                    "records before <report_metadata> and <policy_published>",
                    MAX_RECORDS_BEFORE_HEADER,
                ));
            }
        }
        parser.header = Some(parser.complete_header()?);
        Ok(Opened::Report(parser))
    }

    /// The report header (available as soon as the parser is open).
    pub fn header(&self) -> &ReportHeader {
        // Set by `open`, which is the only constructor.
        self.header.as_ref().expect("header is set by open")
    }

    /// Records read so far.
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// The next record, or `None` after the last one.
    pub fn next_record(&mut self) -> Result<Option<Record>, IngestError> {
        if let Some(record) = self.buffered.pop_front() {
            return Ok(Some(record));
        }
        if self.done {
            return Ok(None);
        }
        match self.next_item()? {
            Item::Record(record) => Ok(Some(*record)),
            Item::End => Ok(None),
        }
    }

    /// Checks the end of the document and returns totals and warnings. Call after
    /// `next_record` returned `None`.
    pub fn finish(mut self) -> Result<ReportSummary, IngestError> {
        while self.next_record()?.is_some() {}
        // Whatever follows `</feedback>` (the end of a stray wrapper, junk) is not ours.
        loop {
            match self.cursor.step() {
                Ok(Step::Eof) => break,
                Ok(Step::Start(_)) => {
                    self.warnings
                        .add("trailing_content", format!("<{}> after </feedback> ignored", self.cursor.name()));
                    if self.cursor.skip().is_err() {
                        break;
                    }
                }
                Ok(Step::End) => {}
                Err(err) => {
                    self.warnings
                        .add("trailing_content", format!("unreadable content after </feedback> ignored: {err}"));
                    break;
                }
            }
        }
        let charset = self.cursor.get_ref().report().clone();
        if charset.byte_order_mark {
            self.warnings.add("encoding", "byte order mark removed");
        }
        if let Some(from) = charset.transcoded_from {
            self.warnings.add("encoding", format!("transcoded from {from} to UTF-8"));
        }
        if let Some(what) = self.cursor.before_declaration {
            self.warnings.add("declaration_not_first", format!("{what} before the XML declaration ignored"));
        }
        if let Some(declared) = charset.unknown_declared {
            self.warnings.add("encoding", format!("unknown declared encoding `{declared}` read as UTF-8"));
        }
        if self.cursor.invalid_utf8_bytes > 0 {
            self.warnings.add(
                "invalid_utf8",
                format!("{} bytes that are not UTF-8 read as windows-1252", self.cursor.invalid_utf8_bytes),
            );
        }
        if charset.invalid_utf16_units > 0 {
            self.warnings
                .add("invalid_utf8", format!("{} invalid UTF-16 code units replaced", charset.invalid_utf16_units));
        }
        if self.cursor.bare_ampersands > 0 {
            self.warnings.add(
                "bare_ampersand",
                format!("{} `&` not starting an entity reference kept as is", self.cursor.bare_ampersands),
            );
        }
        if self.cursor.control_chars_removed > 0 {
            self.warnings.add(
                "control_characters",
                format!("{} control characters that XML forbids removed", self.cursor.control_chars_removed),
            );
        }
        if self.cursor.stray_text {
            self.warnings.add("stray_text", "text outside of any element ignored");
        }
        if self.records_read == 0 {
            self.warnings.add("zero_records", "the report has no records");
        }
        Ok(ReportSummary {
            schema: if self.rfc9990_evidence.is_some() { Schema::Rfc9990 } else { Schema::Rfc7489 },
            record_count: self.records_read,
            message_count: self.message_count,
            extensions: (!self.extensions.is_empty()).then(|| self.extensions.join("\n")),
            warnings: self.warnings.into_vec(),
        })
    }

    /// Reads children of `<feedback>` until the next record or the end of the report.
    fn next_item(&mut self) -> Result<Item, IngestError> {
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Record) => return Ok(Item::Record(Box::new(self.record()?))),
                Step::Start(Tag::Version) => {
                    let version = self.leaf()?;
                    if !matches!(version.as_str(), "1.0" | "1" | "") {
                        self.warnings.add("version_unexpected", format!("<version> is `{version}`, not 1.0"));
                    }
                    self.draft.version = Some(version).filter(|v| !v.is_empty());
                }
                Step::Start(Tag::ReportMetadata) => {
                    if self.draft.metadata_seen {
                        self.warnings.add("duplicate_element", "second <report_metadata> ignored");
                        self.cursor.skip()?;
                    } else {
                        self.draft.metadata_seen = true;
                        self.metadata()?;
                    }
                }
                Step::Start(Tag::PolicyPublished) => {
                    if self.draft.policy_seen {
                        self.warnings.add("duplicate_element", "second <policy_published> ignored, the first one kept");
                        self.cursor.skip()?;
                    } else {
                        self.draft.policy_seen = true;
                        self.policy()?;
                    }
                }
                Step::Start(Tag::Extension) => {
                    self.rfc9990_evidence.get_or_insert("<extension>");
                    self.extensions.push(self.cursor.capture()?);
                }
                Step::Start(_) => self.unknown_element("feedback")?,
                Step::End => {
                    self.done = true;
                    return Ok(Item::End);
                }
                Step::Eof => return Err(self.truncated("feedback")),
            }
        }
    }

    fn truncated(&self, inside: &str) -> IngestError {
        IngestError::Xml {
            position: self.cursor.position(),
            reason: format!("document ends inside <{inside}> (truncated?)"),
        }
    }

    fn unknown_element(&mut self, parent: &str) -> Result<(), IngestError> {
        let message = format!("unknown element <{}> in <{parent}> ignored", self.cursor.name());
        self.warnings.add_at("unknown_element", message, self.current_record());
        self.cursor.skip()
    }

    fn current_record(&self) -> Option<u64> {
        (self.header.is_some() || !self.buffered.is_empty()).then_some(self.records_read + 1)
    }

    /// Text of the element just started, trimmed.
    fn leaf(&mut self) -> Result<String, IngestError> {
        let (text, nested) = self.cursor.text()?;
        if nested {
            let name = self.cursor.name().to_owned();
            self.warnings.add("unexpected_markup", format!("markup inside <{name}> ignored"));
        }
        Ok(text)
    }

    /// Text of an optional element; empty means absent, with a warning.
    fn optional_leaf(&mut self, what: &str, record: Option<u64>) -> Result<Option<String>, IngestError> {
        let text = self.leaf()?;
        if text.is_empty() {
            self.warnings.add_at("empty_element", format!("empty <{what}> read as absent"), record);
            return Ok(None);
        }
        Ok(Some(text))
    }

    /// An enumeration leaf, normalized, with its raw text kept when it was not canonical.
    fn enum_leaf<T: WireEnum>(
        &mut self,
        what: &str,
        record: Option<u64>,
        raw: Option<(&mut Vec<(String, String)>, RawKey)>,
    ) -> Result<Option<T>, IngestError> {
        let Some(text) = self.optional_leaf(what, record)? else {
            return Ok(None);
        };
        let parsed = T::parse(&text);
        let (code, message) = match parsed {
            Parsed::Canonical(value) => return Ok(Some(value)),
            Parsed::Case(value) => ("enum_case", format!("`{text}` read as `{}` in <{what}>", value.as_str())),
            Parsed::Alias(value) => ("enum_alias", format!("`{text}` read as `{}` in <{what}>", value.as_str())),
            Parsed::Unknown => ("enum_unknown", format!("unknown value `{text}` in <{what}> kept as raw text only")),
        };
        self.warnings.add_at(code, message, record);
        if let Some((raw, key)) = raw {
            raw.push((key.render(), text));
        }
        Ok(parsed.value())
    }

    fn domain_leaf(
        &mut self,
        what: &str,
        record: Option<u64>,
        raw: Option<(&mut Vec<(String, String)>, RawKey)>,
    ) -> Result<Option<String>, IngestError> {
        let Some(text) = self.optional_leaf(what, record)? else {
            return Ok(None);
        };
        Ok(normalize::domain(&text).map(|Normalized { value, note }| {
            if let Some((code, why)) = note {
                self.warnings.add_at(code, format!("{why} in <{what}>"), record);
                if let Some((raw, key)) = raw {
                    raw.push((key.render(), text));
                }
            }
            value
        }))
    }

    fn metadata(&mut self) -> Result<(), IngestError> {
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::OrgName) => self.draft.org_name = self.optional_leaf("org_name", None)?,
                Step::Start(Tag::Email) => self.draft.org_email = self.optional_leaf("email", None)?,
                Step::Start(Tag::ExtraContactInfo) => {
                    self.draft.extra_contact_info = self.optional_leaf("extra_contact_info", None)?
                }
                Step::Start(Tag::ReportId) => self.draft.report_id = Some(self.leaf()?),
                Step::Start(Tag::DateRange) => self.date_range()?,
                Step::Start(Tag::Error) => {
                    let line = self.leaf()?;
                    if !line.is_empty() {
                        self.draft.errors.push(line);
                    }
                }
                Step::Start(Tag::Generator) => {
                    self.rfc9990_evidence.get_or_insert("<generator>");
                    self.draft.generator = self.optional_leaf("generator", None)?;
                }
                Step::Start(_) => self.unknown_element("report_metadata")?,
                Step::End => return Ok(()),
                Step::Eof => return Err(self.truncated("report_metadata")),
            }
        }
    }

    fn date_range(&mut self) -> Result<(), IngestError> {
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Begin) => self.draft.begin = Some(self.leaf()?),
                Step::Start(Tag::End) => self.draft.end = Some(self.leaf()?),
                Step::Start(_) => self.unknown_element("date_range")?,
                Step::End => return Ok(()),
                Step::Eof => return Err(self.truncated("date_range")),
            }
        }
    }

    fn policy(&mut self) -> Result<(), IngestError> {
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Domain) => {
                    self.draft.policy_domain_seen = true;
                    self.draft.policy.domain = self.domain_leaf("domain", None, None)?.unwrap_or_default();
                }
                Step::Start(Tag::Adkim) => {
                    self.draft.policy.adkim = self.enum_leaf::<Alignment>("adkim", None, None)?
                }
                Step::Start(Tag::Aspf) => self.draft.policy.aspf = self.enum_leaf::<Alignment>("aspf", None, None)?,
                Step::Start(Tag::P) => self.draft.policy.p = self.policy_leaf("p")?,
                Step::Start(Tag::Sp) => self.draft.policy.sp = self.policy_leaf("sp")?,
                Step::Start(Tag::Np) => {
                    self.rfc9990_evidence.get_or_insert("<np>");
                    self.draft.policy.np = self.policy_leaf("np")?;
                }
                Step::Start(Tag::Pct) => {
                    if let Some(text) = self.optional_leaf("pct", None)? {
                        match text.parse::<i32>() {
                            Ok(pct) if (0..=100).contains(&pct) => self.draft.policy.pct = Some(pct),
                            _ => self
                                .warnings
                                .add("value_invalid", format!("<pct> `{text}` is not a percentage, ignored")),
                        }
                    }
                }
                Step::Start(Tag::Fo) => self.draft.policy.fo = self.optional_leaf("fo", None)?,
                Step::Start(Tag::Testing) => {
                    self.rfc9990_evidence.get_or_insert("<testing>");
                    self.draft.policy.testing = self.enum_leaf::<Testing>("testing", None, None)?;
                }
                Step::Start(Tag::DiscoveryMethod) => {
                    self.rfc9990_evidence.get_or_insert("<discovery_method>");
                    self.draft.policy.discovery_method =
                        self.enum_leaf::<DiscoveryMethod>("discovery_method", None, None)?;
                }
                Step::Start(_) => self.unknown_element("policy_published")?,
                Step::End => return Ok(()),
                Step::Eof => return Err(self.truncated("policy_published")),
            }
        }
    }

    /// `p`, `sp`, `np`: a disposition, but `pass` is only an outcome, never a policy.
    fn policy_leaf(&mut self, what: &str) -> Result<Option<Disposition>, IngestError> {
        let value = self.enum_leaf::<Disposition>(what, None, None)?;
        if value == Some(Disposition::Pass) {
            self.warnings.add("value_invalid", format!("<{what}> `pass` is not a policy (kept as sent)"));
        }
        Ok(value)
    }

    /// Validates the header values once all of them have been read.
    fn complete_header(&mut self) -> Result<ReportHeader, IngestError> {
        let draft = std::mem::take(&mut self.draft);
        if !draft.metadata_seen {
            return Err(IngestError::invalid("no <report_metadata>"));
        }
        if !draft.policy_seen {
            return Err(IngestError::invalid("no <policy_published>"));
        }
        let org_name = match (draft.org_name, &draft.org_email) {
            (Some(org), _) => org,
            (None, Some(email)) => {
                let derived = email.rsplit('@').next().unwrap_or(email).trim().to_lowercase();
                self.warnings.add("org_name_derived", format!("no <org_name>: `{derived}` taken from <email>"));
                derived
            }
            (None, None) => return Err(IngestError::invalid("no <org_name> and no <email>: the reporter is unknown")),
        };
        let report_id =
            draft.report_id.filter(|id| !id.is_empty()).ok_or_else(|| IngestError::invalid("no <report_id>"))?;
        if !draft.policy_domain_seen || draft.policy.domain.is_empty() {
            return Err(IngestError::invalid("no <domain> in <policy_published>"));
        }
        for (what, text, max) in [
            ("<org_name>", &org_name, MAX_KEY_BYTES),
            ("<report_id>", &report_id, MAX_KEY_BYTES),
            ("<domain> of <policy_published>", &draft.policy.domain, 253),
        ] {
            if text.len() > max {
                return Err(IngestError::invalid(format!(
                    "{what} of {} bytes is longer than {max} (it is part of what identifies a report)",
                    text.len()
                )));
            }
        }
        let date_begin = self.date_bound("begin", draft.begin)?;
        let date_end = self.date_bound("end", draft.end)?;
        if let Some((code, why)) =
            normalize::period(date_begin, date_end, "date_range").map_err(IngestError::invalid)?.note
        {
            self.warnings.add(code, why);
        }
        if self.namespace.as_deref() == Some(DMARC_2_NAMESPACE) && draft.policy.pct.is_some() {
            self.warnings.add("removed_in_rfc9990", "<pct> in an RFC 9990 report (removed by DMARCbis)");
        }
        if draft.policy.p.is_none() {
            self.warnings.add("missing_element", "no <p> in <policy_published>");
        }
        Ok(ReportHeader {
            namespace: self.namespace.clone(),
            version: draft.version,
            org_name,
            org_email: draft.org_email,
            extra_contact_info: draft.extra_contact_info,
            report_id,
            date_begin,
            date_end,
            errors: draft.errors,
            generator: draft.generator,
            policy: draft.policy,
        })
    }

    fn date_bound(&mut self, which: &str, text: Option<String>) -> Result<DateTime<Utc>, IngestError> {
        let text = text.ok_or_else(|| IngestError::invalid(format!("no <{which}> in <date_range>")))?;
        let Normalized { value, note } =
            normalize::timestamp(&text).map_err(|why| IngestError::invalid(format!("date_range <{which}> {why}")))?;
        if let Some((code, why)) = note {
            self.warnings.add(code, format!("date_range <{which}>: {why}"));
        }
        Ok(value)
    }

    fn record(&mut self) -> Result<Record, IngestError> {
        let number = self.records_read + 1;
        let at = Some(number);
        let mut record = Record {
            source_ip: None,
            count: -1,
            disposition: None,
            dkim_aligned: None,
            spf_aligned: None,
            reasons: Vec::new(),
            header_from: None,
            envelope_from: None,
            envelope_to: None,
            dkim: Vec::new(),
            spf: Vec::new(),
            raw: Vec::new(),
            extensions: None,
        };
        let mut source_ip_seen = false;
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Row) => source_ip_seen |= self.row(&mut record, number)?,
                Step::Start(tag @ (Tag::Identifiers | Tag::Identities)) => {
                    if tag == Tag::Identities {
                        self.warnings.add_at("identities_alias", "<identities> read as <identifiers>", at);
                    }
                    self.identifiers(&mut record, number)?;
                }
                Step::Start(Tag::AuthResults) => self.auth_results(&mut record, number)?,
                Step::Start(_) => {
                    // RFC 9990 record extensions are namespaced; anything else is a stray
                    // element, kept all the same.
                    if self.cursor.prefix().is_some() || self.cursor.attribute("xmlns").is_some() {
                        self.rfc9990_evidence.get_or_insert("record extension");
                    } else {
                        let name = self.cursor.name().to_owned();
                        self.warnings.add_at(
                            "unknown_element",
                            format!("unknown element <{name}> in <record> kept as an extension"),
                            at,
                        );
                    }
                    let captured = self.cursor.capture()?;
                    match &mut record.extensions {
                        Some(existing) => {
                            existing.push('\n');
                            existing.push_str(&captured);
                        }
                        None => record.extensions = Some(captured),
                    }
                }
                Step::End => break,
                Step::Eof => return Err(self.truncated("record")),
            }
        }
        if record.count < 0 {
            return Err(IngestError::invalid(format!("record {number} has no <count>")));
        }
        if !source_ip_seen {
            self.warnings.add_at("missing_element", "record without <source_ip>", at);
        }
        if record.disposition.is_none() && !record.raw.iter().any(|(k, _)| k == "disposition") {
            self.warnings.add_at("missing_element", "record without <disposition>", at);
        }
        if record.header_from.is_none() {
            self.warnings.add_at("missing_element", "record without <header_from>", at);
        }
        if record.dkim.is_empty() && record.spf.is_empty() {
            self.warnings.add_at("missing_element", "record without any DKIM or SPF result", at);
        }
        if record.dkim.len() > 100 {
            self.warnings.add_at(
                "many_dkim_results",
                format!("{} DKIM results in one record (RFC 9990 asks for at most 100)", record.dkim.len()),
                at,
            );
        }
        for (what, results) in [("DKIM", record.dkim.len()), ("SPF", record.spf.len())] {
            if results > MAX_AUTH_RESULTS {
                return Err(IngestError::invalid(format!(
                    "record {number} has {results} {what} results; more than {MAX_AUTH_RESULTS} are refused"
                )));
            }
        }
        self.records_read = number;
        self.message_count = match self.message_count.checked_add(record.count) {
            Some(total) if total <= MAX_REPORT_MESSAGES => total,
            _ => {
                return Err(IngestError::invalid(format!(
                    "the message counts add up to more than {MAX_REPORT_MESSAGES} by record {number}, more than any \
                     reporter sees"
                )));
            }
        };
        Ok(record)
    }

    /// Reads `<row>`; returns whether it had a `<source_ip>`.
    fn row(&mut self, record: &mut Record, number: u64) -> Result<bool, IngestError> {
        let at = Some(number);
        let mut source_ip_seen = false;
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::SourceIp) => {
                    source_ip_seen = true;
                    let text = self.leaf()?;
                    match normalize::ip_address(&text) {
                        Some(Normalized { value, note }) => {
                            record.source_ip = Some(value);
                            if let Some((code, why)) = note {
                                self.warnings.add_at(code, why, at);
                                record.raw.push(("source_ip".into(), text));
                            }
                        }
                        None => {
                            let why = if text.is_empty() {
                                "empty <source_ip>: the record is kept without an address".to_owned()
                            } else {
                                format!("<source_ip> `{text}` is not an IP address: the record is kept without one")
                            };
                            self.warnings.add_at("ip_invalid", why, at);
                            record.raw.push(("source_ip".into(), text));
                        }
                    }
                }
                Step::Start(Tag::Count) => {
                    let text = self.leaf()?;
                    record.count = count(&text)
                        .map_err(|why| IngestError::invalid(format!("record {number}: <count> `{text}` {why}")))?;
                }
                Step::Start(Tag::PolicyEvaluated) => self.policy_evaluated(record, number)?,
                Step::Start(_) => self.unknown_element("row")?,
                Step::End => return Ok(source_ip_seen),
                Step::Eof => return Err(self.truncated("row")),
            }
        }
    }

    fn policy_evaluated(&mut self, record: &mut Record, number: u64) -> Result<(), IngestError> {
        let at = Some(number);
        let mut dkim_seen = false;
        let mut spf_seen = false;
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Disposition) => {
                    record.disposition = self.enum_leaf::<Disposition>(
                        "disposition",
                        at,
                        Some((&mut record.raw, RawKey::Field("disposition"))),
                    )?;
                    if record.disposition == Some(Disposition::Pass) {
                        self.rfc9990_evidence.get_or_insert("disposition `pass`");
                    }
                }
                Step::Start(Tag::Dkim) => {
                    dkim_seen = true;
                    record.dkim_aligned = self.enum_leaf::<Verdict>(
                        "policy_evaluated/dkim",
                        at,
                        Some((&mut record.raw, RawKey::Field("dkim_aligned"))),
                    )?;
                }
                Step::Start(Tag::Spf) => {
                    spf_seen = true;
                    record.spf_aligned = self.enum_leaf::<Verdict>(
                        "policy_evaluated/spf",
                        at,
                        Some((&mut record.raw, RawKey::Field("spf_aligned"))),
                    )?;
                }
                Step::Start(Tag::Reason) => {
                    if let Some(reason) = self.reason(number)? {
                        record.reasons.push(reason);
                    }
                }
                Step::Start(_) => self.unknown_element("policy_evaluated")?,
                Step::End => break,
                Step::Eof => return Err(self.truncated("policy_evaluated")),
            }
        }
        if !dkim_seen || !spf_seen {
            self.warnings.add_at("missing_element", "<policy_evaluated> without <dkim> or <spf>", at);
        }
        Ok(())
    }

    fn reason(&mut self, number: u64) -> Result<Option<OverrideReason>, IngestError> {
        let at = Some(number);
        let mut kind = None;
        let mut comment = None;
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Type) => kind = self.optional_leaf("reason/type", at)?,
                Step::Start(Tag::Comment) => comment = self.optional_leaf("reason/comment", at)?,
                Step::Start(_) => self.unknown_element("reason")?,
                Step::End => break,
                Step::Eof => return Err(self.truncated("reason")),
            }
        }
        let Some(raw_kind) = kind else {
            if comment.is_some() {
                self.warnings.add_at("missing_element", "override <reason> without <type> read as `other`", at);
                return Ok(Some(OverrideReason { kind: "other".into(), comment }));
            }
            self.warnings.add_at("empty_element", "empty override <reason> dropped", at);
            return Ok(None);
        };
        let lower = raw_kind.to_ascii_lowercase();
        if !OVERRIDE_REASONS.contains(&lower.as_str()) {
            self.warnings.add_at("enum_unknown", format!("unknown override reason `{raw_kind}` kept as sent"), at);
        } else if lower != raw_kind {
            self.warnings.add_at("enum_case", format!("`{raw_kind}` read as `{lower}` in <reason/type>"), at);
        }
        if lower == "policy_test_mode" {
            self.rfc9990_evidence.get_or_insert("reason `policy_test_mode`");
        }
        if matches!(lower.as_str(), "forwarded" | "sampled_out") && self.namespace.as_deref() == Some(DMARC_2_NAMESPACE)
        {
            self.warnings.add_at("removed_in_rfc9990", format!("override reason `{lower}` in an RFC 9990 report"), at);
        }
        Ok(Some(OverrideReason { kind: lower, comment }))
    }

    fn identifiers(&mut self, record: &mut Record, number: u64) -> Result<(), IngestError> {
        let at = Some(number);
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::HeaderFrom) => {
                    record.header_from =
                        self.domain_leaf("header_from", at, Some((&mut record.raw, RawKey::Field("header_from"))))?
                }
                Step::Start(Tag::EnvelopeFrom) => {
                    record.envelope_from =
                        self.domain_leaf("envelope_from", at, Some((&mut record.raw, RawKey::Field("envelope_from"))))?;
                    // Present but empty is a null reverse-path (a bounce, RFC 9990), not an
                    // omission: keep the difference.
                    if record.envelope_from.is_none() {
                        record.raw.push(("envelope_from".into(), String::new()));
                    }
                }
                Step::Start(Tag::EnvelopeTo) => {
                    record.envelope_to =
                        self.domain_leaf("envelope_to", at, Some((&mut record.raw, RawKey::Field("envelope_to"))))?
                }
                Step::Start(_) => self.unknown_element("identifiers")?,
                Step::End => return Ok(()),
                Step::Eof => return Err(self.truncated("identifiers")),
            }
        }
    }

    fn auth_results(&mut self, record: &mut Record, number: u64) -> Result<(), IngestError> {
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Dkim) => {
                    let dkim = self.dkim_result(record, number)?;
                    record.dkim.push(dkim);
                }
                Step::Start(Tag::Spf) => {
                    let spf = self.spf_result(record, number)?;
                    record.spf.push(spf);
                }
                Step::Start(_) => self.unknown_element("auth_results")?,
                Step::End => return Ok(()),
                Step::Eof => return Err(self.truncated("auth_results")),
            }
        }
    }

    fn dkim_result(&mut self, record: &mut Record, number: u64) -> Result<DkimAuth, IngestError> {
        let at = Some(number);
        let index = record.dkim.len();
        let mut auth = DkimAuth { domain: None, selector: None, result: None, human_result: None };
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Domain) => {
                    auth.domain = self.domain_leaf(
                        "dkim/domain",
                        at,
                        Some((&mut record.raw, RawKey::Indexed("dkim", index, "domain"))),
                    )?
                }
                Step::Start(Tag::Selector) => auth.selector = self.optional_leaf("dkim/selector", at)?,
                Step::Start(Tag::Result) => {
                    auth.result = self.enum_leaf::<DkimResult>(
                        "dkim/result",
                        at,
                        Some((&mut record.raw, RawKey::Indexed("dkim", index, "result"))),
                    )?
                }
                Step::Start(Tag::HumanResult) => auth.human_result = self.optional_leaf("dkim/human_result", at)?,
                Step::Start(_) => self.unknown_element("dkim")?,
                Step::End => return Ok(auth),
                Step::Eof => return Err(self.truncated("dkim")),
            }
        }
    }

    fn spf_result(&mut self, record: &mut Record, number: u64) -> Result<SpfAuth, IngestError> {
        let at = Some(number);
        let index = record.spf.len();
        let mut auth = SpfAuth { domain: None, scope: None, result: None, human_result: None };
        loop {
            match self.cursor.step()? {
                Step::Start(Tag::Domain) => {
                    auth.domain = self.domain_leaf(
                        "spf/domain",
                        at,
                        Some((&mut record.raw, RawKey::Indexed("spf", index, "domain"))),
                    )?
                }
                Step::Start(Tag::Scope) => {
                    auth.scope = self.enum_leaf::<SpfScope>(
                        "spf/scope",
                        at,
                        Some((&mut record.raw, RawKey::Indexed("spf", index, "scope"))),
                    )?;
                    if auth.scope == Some(SpfScope::Helo) && self.namespace.as_deref() == Some(DMARC_2_NAMESPACE) {
                        self.warnings.add_at("removed_in_rfc9990", "SPF scope `helo` in an RFC 9990 report", at);
                    }
                }
                Step::Start(Tag::Result) => {
                    auth.result = self.enum_leaf::<SpfResult>(
                        "spf/result",
                        at,
                        Some((&mut record.raw, RawKey::Indexed("spf", index, "result"))),
                    )?
                }
                Step::Start(Tag::HumanResult) => {
                    self.rfc9990_evidence.get_or_insert("SPF <human_result>");
                    auth.human_result = self.optional_leaf("spf/human_result", at)?;
                }
                Step::Start(_) => self.unknown_element("spf")?,
                Step::End => return Ok(auth),
                Step::Eof => return Err(self.truncated("spf")),
            }
        }
    }
}

/// A message count: a non-negative integer (`3.0` is tolerated, `3.5` is not) that fits in a
/// signed 64-bit integer.
fn count(text: &str) -> Result<i64, &'static str> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if fraction.bytes().all(|b| b == b'0') => whole,
        Some(_) => return Err("is not a whole number"),
        None => text,
    };
    let value = whole.parse::<i64>().map_err(|err| match err.kind() {
        std::num::IntErrorKind::PosOverflow => "is too large (more than 9223372036854775807)",
        std::num::IntErrorKind::NegOverflow => "is negative",
        _ => "is not a whole number",
    })?;
    if value < 0 {
        return Err("is negative");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_non_negative_and_not_too_large() {
        assert_eq!(count("3"), Ok(3));
        assert_eq!(count("3.0"), Ok(3));
        assert_eq!(count("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(count("3.5"), Err("is not a whole number"));
        assert_eq!(count("three"), Err("is not a whole number"));
        assert_eq!(count("-5"), Err("is negative"));
        assert_eq!(count("-99999999999999999999"), Err("is negative"));
        assert_eq!(count("9223372036854775808"), Err("is too large (more than 9223372036854775807)"));
        assert_eq!(count("99999999999999999999"), Err("is too large (more than 9223372036854775807)"));
        assert_eq!(count("99999999999999999999.0"), Err("is too large (more than 9223372036854775807)"));
    }

    /// A report with `records` (already XML) under a header with these key values.
    fn report(org: &str, id: &str, domain: &str, records: &str) -> String {
        format!(
            "<feedback><report_metadata><org_name>{org}</org_name><email>d@r.example</email>\
             <report_id>{id}</report_id><date_range><begin>1793577600</begin><end>1793663999</end></date_range>\
             </report_metadata><policy_published><domain>{domain}</domain><p>none</p></policy_published>\
             {records}</feedback>"
        )
    }

    fn record(count: &str, dkim_results: usize) -> String {
        let dkim = "<dkim><domain>example.com</domain><result>pass</result></dkim>".repeat(dkim_results);
        format!(
            "<record><row><source_ip>192.0.2.1</source_ip><count>{count}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>\
             <identifiers><header_from>example.com</header_from></identifiers>\
             <auth_results>{dkim}<spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>"
        )
    }

    fn error_of(xml: &str) -> String {
        match crate::aggregate::parse(xml.as_bytes(), 32) {
            Ok(Opened::Report(report)) => panic!("read as a report of {} records", report.records.len()),
            Ok(Opened::NotAggregate(what)) => panic!("not a report: {what}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn counts_that_cannot_be_summed_safely_are_refused() {
        let max = MAX_REPORT_MESSAGES.to_string();
        let fine = report("r.example", "1", "example.com", &format!("{}{}", record(&max, 1), record("0", 1)));
        assert!(matches!(crate::aggregate::parse(fine.as_bytes(), 32), Ok(Opened::Report(_))));
        let two_max = report("r.example", "1", "example.com", &format!("{}{}", record(&max, 1), record("1", 1)));
        assert!(error_of(&two_max).contains("add up to more than 1099511627776 by record 2"), "{}", error_of(&two_max));
        let saturating = report("r.example", "1", "example.com", &record("9223372036854775807", 1).repeat(2));
        assert!(error_of(&saturating).contains("add up to more than"));
    }

    #[test]
    fn keys_too_long_for_an_index_are_refused_with_their_length() {
        let long = "x".repeat(2_700);
        let record = record("1", 1);
        for (xml, what) in [
            (report(&long, "1", "example.com", &record), "<org_name> of 2700 bytes"),
            (report("r.example", &long, "example.com", &record), "<report_id> of 2700 bytes"),
            (report("r.example", "1", &format!("{long}.example"), &record), "<domain> of <policy_published> of 2708"),
        ] {
            assert!(error_of(&xml).contains(what), "{what}: {}", error_of(&xml));
        }
    }

    #[test]
    fn records_with_absurdly_many_results_are_refused() {
        let fine = report("r.example", "1", "example.com", &record("1", MAX_AUTH_RESULTS));
        assert!(matches!(crate::aggregate::parse(fine.as_bytes(), 32), Ok(Opened::Report(_))));
        let absurd = report("r.example", "1", "example.com", &record("1", 32_768));
        assert!(error_of(&absurd).contains("record 1 has 32768 DKIM results"), "{}", error_of(&absurd));
    }
}
