//! DMARC failure (RUF) reports and every other ARF feedback report: RFC 5965, RFC 6591,
//! RFC 7489 §7.3 and RFC 9991.
//!
//! Input: a parsed mail (the unpacker finds it, [`crate::read`] offers it here). Output: a
//! [`ForensicReport`] with every `message/feedback-report` field, normalized where the RFCs
//! give a vocabulary (the raw text kept beside it), with a warning for each tolerance.
//! Plain-text reports without a feedback part (Exim, cPanel and vendor formats, CHECKLIST
//! rows F1 and F6) are recognised by their wording and read heuristically.
//!
//! What a report says about the *original* message (its subject, recipients, body) is not in
//! [`ForensicReport`]: it stays in the report mail, which the store seals whole. [`Sample`]
//! takes such a mail apart again for display once it is opened.

mod fields;

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{Warning, Warnings};
use crate::normalize;
use crate::unpack::transfer::{self, decode_part};

/// How the report was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForensicFormat {
    /// An ARF `message/feedback-report` part.
    Arf,
    /// Free text, read heuristically (no feedback part).
    PlainText,
}

impl ForensicFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ForensicFormat::Arf => "arf",
            ForensicFormat::PlainText => "plain_text",
        }
    }
}

/// What of the original message the report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginalPart {
    /// `message/rfc822`: the whole message (possibly redacted).
    Message,
    /// `text/rfc822-headers`: its header section only.
    Headers,
    /// Quoted inside the text of a plain-text report.
    InText,
}

/// One feedback report, as normalized. Field names follow the ARF field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForensicReport {
    /// SHA-256 (hex) of the report mail's body: the same report is recognised when it arrives
    /// again by another path (whose header section differs: Received, Delivered-To, ...).
    pub fingerprint: String,
    pub format: ForensicFormat,
    /// `auth-failure` for DMARC, SPF and DKIM failure reports; `abuse`, `fraud`, `virus`,
    /// `other`, `not-spam` for the other ARF uses. Lower case.
    pub feedback_type: String,
    pub version: Option<String>,
    pub user_agent: Option<String>,
    /// How many incidents the report stands for (absent means 1).
    pub incidents: u32,
    /// `Arrival-Date`, the historic `Received-Date`, or (with a warning) the report's `Date`.
    pub arrival_date: Option<DateTime<Utc>>,
    pub source_ip: Option<std::net::IpAddr>,
    pub source_port: Option<u16>,
    /// The MTA name of `Reporting-MTA: dns; mx.example.net`.
    pub reporting_mta: Option<String>,
    pub reported_domains: Vec<String>,
    pub reported_uris: Vec<String>,
    pub authentication_results: Vec<String>,
    /// `dmarc`, `spf`, `signature`, `bodyhash`, `revoked`, `adsp` (lower case, comments dropped).
    pub auth_failure: Option<String>,
    /// `delivered`, `spam`, `policy`, `reject` or `other`.
    pub delivery_result: Option<String>,
    /// The `Delivery-Result` text when it was not one of the five words.
    pub delivery_result_raw: Option<String>,
    pub dkim_domain: Option<String>,
    pub dkim_identity: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_canonicalized_header: Option<String>,
    pub dkim_canonicalized_body: Option<String>,
    pub dkim_adsp_dns: Option<String>,
    pub dkim_selector_dns: Option<String>,
    pub spf_dns: Vec<String>,
    /// As sent: RFC 7489 lists the mechanisms that produced an aligned identifier, RFC 9991
    /// those that failed to, so no pass or fail is derived from it (CHECKLIST F8).
    pub identity_alignment: Option<String>,
    pub original_envelope_id: Option<String>,
    /// The envelope sender, angle brackets dropped (`""` for the null sender).
    pub original_mail_from: Option<String>,
    pub original_rcpt_to: Vec<String>,
    /// Fields this version does not know, as sent.
    pub other_fields: Vec<(String, String)>,
    pub original: Option<OriginalPart>,
    pub warnings: Vec<Warning>,
}

impl ForensicReport {
    fn empty(format: ForensicFormat) -> Self {
        ForensicReport {
            fingerprint: String::new(),
            format,
            feedback_type: String::new(),
            version: None,
            user_agent: None,
            incidents: 1,
            arrival_date: None,
            source_ip: None,
            source_port: None,
            reporting_mta: None,
            reported_domains: Vec::new(),
            reported_uris: Vec::new(),
            authentication_results: Vec::new(),
            auth_failure: None,
            delivery_result: None,
            delivery_result_raw: None,
            dkim_domain: None,
            dkim_identity: None,
            dkim_selector: None,
            dkim_canonicalized_header: None,
            dkim_canonicalized_body: None,
            dkim_adsp_dns: None,
            dkim_selector_dns: None,
            spf_dns: Vec::new(),
            identity_alignment: None,
            original_envelope_id: None,
            original_mail_from: None,
            original_rcpt_to: Vec::new(),
            other_fields: Vec::new(),
            original: None,
            warnings: Vec::new(),
        }
    }

    /// The first reported domain, which is the DMARC policy domain in DMARC reports.
    pub fn reported_domain(&self) -> Option<&str> {
        self.reported_domains.first().map(String::as_str)
    }
}

/// Feedback types registered for ARF (RFC 5965, RFC 6591, RFC 6430).
const FEEDBACK_TYPES: &[&str] = &["abuse", "auth-failure", "fraud", "not-spam", "other", "virus"];
/// Auth-Failure values (RFC 6591 and RFC 7489 §7.3.1).
const AUTH_FAILURES: &[&str] = &["adsp", "bodyhash", "dmarc", "revoked", "signature", "spf"];
/// Delivery-Result values (RFC 6591).
const DELIVERY_RESULTS: &[&str] = &["delivered", "spam", "policy", "reject", "other"];

/// The failure report `message` is, or `None` when it is not one. `base` is where the message's
/// raw bytes start in the stream its part offsets refer to (see `unpack::mime`).
pub(crate) fn read(message: &Message<'_>, base: usize) -> Option<ForensicReport> {
    classify(message).map(|kind| parse(message, base, kind))
}

/// What a mail is, as far as failure reports go.
enum Kind<'m, 'x> {
    /// It has a `message/feedback-report` part (with or without `report-type`).
    Arf(&'m MessagePart<'x>),
    /// Its text is a failure report in words.
    PlainText(&'m MessagePart<'x>),
}

/// Says whether `message` is a failure report. Only the message's own parts are looked at, not
/// those of messages forwarded inside it.
fn classify<'m, 'x>(message: &'m Message<'x>) -> Option<Kind<'m, 'x>> {
    if let Some(part) = message.parts.iter().find(|part| has_type(part, "message", "feedback-report")) {
        return Some(Kind::Arf(part));
    }
    // A mail forwarding another one is walked, not read as a report in words: the forwarded
    // message may be an ARF report, and a person's covering note may quote a report's wording.
    if message.parts.iter().any(|part| matches!(part.body, PartType::Message(_))) {
        return None;
    }
    let text = message.parts.iter().find(|part| matches!(part.body, PartType::Text(_)))?;
    let PartType::Text(body) = &text.body else { return None };
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    let has_attachments = message.parts.iter().any(|part| matches!(part.body, PartType::Binary(_)));
    let worded = body.contains("claiming to be from you has failed")
        || (body.contains("Sender Domain:") && body.contains("Sender IP Address:"))
        || (!has_attachments
            && (subject.contains("dmarc failure report") || subject.contains("dmarc forensic report")));
    worded.then_some(Kind::PlainText(text))
}

fn has_type(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype) && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

/// Reads the report `message` carries (see [`classify`]).
fn parse(message: &Message<'_>, base: usize, kind: Kind<'_, '_>) -> ForensicReport {
    let mut warnings = Warnings::new();
    let mut report = match kind {
        Kind::Arf(part) => {
            let mut report = ForensicReport::empty(ForensicFormat::Arf);
            let (bytes, _) = decode_part(message, base, part);
            let text = feedback_text(&bytes, &mut warnings);
            read_fields(&mut report, &fields::parse(&text), &mut warnings);
            report.original = original_part(message);
            if report.original.is_none() {
                warnings.add("original_missing", "no message/rfc822 or text/rfc822-headers part with the original");
            }
            report
        }
        Kind::PlainText(part) => {
            let (bytes, _) = decode_part(message, base, part);
            read_plain_text(&String::from_utf8_lossy(&bytes), &mut warnings)
        }
    };
    if report.arrival_date.is_none() {
        if let Some(date) = message.date().and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)) {
            report.arrival_date = Some(date);
            warnings.add("arrival_date_missing", "no Arrival-Date: the Date of the report mail is used");
        } else {
            warnings.add("arrival_date_missing", "no Arrival-Date and no Date header: arrival unknown");
        }
    }
    report.warnings = warnings.into_vec();
    report.fingerprint = body_fingerprint(message, base);
    report
}

fn body_fingerprint(message: &Message<'_>, base: usize) -> String {
    let raw = message.raw_message();
    let start = message.parts.first().and_then(|root| (root.offset_body as usize).checked_sub(base));
    let body = match start {
        Some(start) if start <= raw.len() => &raw[start..],
        _ => raw,
    };
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// The feedback part as text. A part that is base64 without saying so (CHECKLIST F3) is decoded.
fn feedback_text(bytes: &[u8], warnings: &mut Warnings) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.to_ascii_lowercase().contains("feedback-type") {
        return text.into_owned();
    }
    let (decoded, _) = transfer::base64(bytes);
    let decoded = String::from_utf8_lossy(&decoded);
    if decoded.to_ascii_lowercase().contains("feedback-type") {
        warnings.add("transfer_encoding", "feedback part is base64 without a Content-Transfer-Encoding: decoded");
        return decoded.into_owned();
    }
    text.into_owned()
}

fn original_part(message: &Message<'_>) -> Option<OriginalPart> {
    message.parts.iter().skip(1).find_map(|part| match &part.body {
        PartType::Message(_) => Some(OriginalPart::Message),
        _ if has_type(part, "text", "rfc822-headers") => Some(OriginalPart::Headers),
        _ if has_type(part, "message", "rfc822-headers") => Some(OriginalPart::Headers),
        _ => None,
    })
}

/// Keeps the first value of a field that may appear once; later ones are a warning.
fn set_once(slot: &mut Option<String>, name: &str, value: String, warnings: &mut Warnings) {
    if slot.is_some() {
        warnings.add("field_repeated", format!("{name} appears more than once: the first is kept"));
    } else if !value.is_empty() {
        *slot = Some(value);
    }
}

fn read_fields(report: &mut ForensicReport, fields: &fields::Fields, warnings: &mut Warnings) {
    if fields.stray_lines > 0 {
        warnings.add("stray_lines", format!("{} lines of the feedback part are not fields", fields.stray_lines));
    }
    let mut feedback_type = None;
    let mut arrival = None;
    let mut received = None;
    let mut source_ip = None;
    let mut source_port = None;
    let mut incidents = None;
    let mut reporting_mta = None;
    let mut auth_failure = None;
    let mut delivery_result = None;
    let mut original_mail_from = None;
    for (name, value) in &fields.list {
        let value = value.clone();
        match name.to_ascii_lowercase().as_str() {
            "feedback-type" => set_once(&mut feedback_type, name, value, warnings),
            "user-agent" => set_once(&mut report.user_agent, name, value, warnings),
            "version" => set_once(&mut report.version, name, value, warnings),
            "original-envelope-id" => set_once(&mut report.original_envelope_id, name, value, warnings),
            "original-mail-from" => set_once(&mut original_mail_from, name, value, warnings),
            "original-rcpt-to" => report.original_rcpt_to.push(fields::address(&value)),
            "arrival-date" => set_once(&mut arrival, name, value, warnings),
            "received-date" => set_once(&mut received, name, value, warnings),
            "reporting-mta" => set_once(&mut reporting_mta, name, value, warnings),
            "source-ip" => set_once(&mut source_ip, name, value, warnings),
            "source-port" => set_once(&mut source_port, name, value, warnings),
            "incidents" => set_once(&mut incidents, name, value, warnings),
            "reported-domain" => match normalize::domain(&fields::without_comments(&value)) {
                Some(domain) => {
                    note(warnings, domain.note);
                    report.reported_domains.push(domain.value);
                }
                None => warnings.add("value_invalid", "empty Reported-Domain ignored"),
            },
            "reported-uri" => report.reported_uris.push(value),
            "authentication-results" => report.authentication_results.push(value),
            "auth-failure" => set_once(&mut auth_failure, name, value, warnings),
            "delivery-result" => set_once(&mut delivery_result, name, value, warnings),
            "dkim-domain" => set_once(&mut report.dkim_domain, name, value.to_ascii_lowercase(), warnings),
            "dkim-identity" => set_once(&mut report.dkim_identity, name, value, warnings),
            "dkim-selector" => set_once(&mut report.dkim_selector, name, value, warnings),
            "dkim-canonicalized-header" => {
                set_once(&mut report.dkim_canonicalized_header, name, fields::without_blanks(&value), warnings)
            }
            "dkim-canonicalized-body" => {
                set_once(&mut report.dkim_canonicalized_body, name, fields::without_blanks(&value), warnings)
            }
            "dkim-adsp-dns" => set_once(&mut report.dkim_adsp_dns, name, value, warnings),
            "dkim-selector-dns" => set_once(&mut report.dkim_selector_dns, name, value, warnings),
            "spf-dns" => report.spf_dns.push(value),
            "identity-alignment" => set_once(&mut report.identity_alignment, name, value, warnings),
            _ => report.other_fields.push((name.clone(), value)),
        }
    }

    report.feedback_type = match feedback_type {
        Some(value) => {
            let (token, _) = fields::first_token(&value);
            let lower = token.to_ascii_lowercase();
            if !FEEDBACK_TYPES.contains(&lower.as_str()) {
                warnings.add("value_unknown", format!("Feedback-Type `{value}` is not a registered type: kept"));
            }
            lower
        }
        None => {
            let inferred = if auth_failure.is_some() { "auth-failure" } else { "other" };
            warnings.add("field_missing", format!("no Feedback-Type: read as `{inferred}`"));
            inferred.to_owned()
        }
    };
    for (present, field) in [(report.user_agent.is_some(), "User-Agent"), (report.version.is_some(), "Version")] {
        if !present {
            warnings.add("field_missing", format!("no {field} (required by RFC 5965)"));
        }
    }
    if let Some(version) = &report.version
        && !version.bytes().all(|b| b.is_ascii_digit())
    {
        warnings.add("value_invalid", format!("Version `{version}` is not a number: kept"));
    }
    if report.feedback_type == "auth-failure" {
        for (present, field) in [
            (auth_failure.is_some(), "Auth-Failure"),
            (!report.authentication_results.is_empty(), "Authentication-Results"),
            (!report.reported_domains.is_empty(), "Reported-Domain"),
        ] {
            if !present {
                warnings.add("field_missing", format!("no {field} (required in authentication failure reports)"));
            }
        }
        let dmarc = auth_failure.as_deref().is_some_and(|v| v.to_ascii_lowercase().contains("dmarc"));
        if dmarc && report.identity_alignment.is_none() {
            warnings.add("field_missing", "no Identity-Alignment (required in DMARC failure reports)");
        }
    }

    report.arrival_date = match (arrival, received) {
        (Some(arrival), Some(_)) => {
            warnings.add("field_repeated", "both Arrival-Date and the historic Received-Date: Arrival-Date is used");
            date(&arrival, "Arrival-Date", warnings)
        }
        (Some(arrival), None) => date(&arrival, "Arrival-Date", warnings),
        (None, Some(received)) => {
            warnings.add("field_historic", "Received-Date (historic name) read as Arrival-Date");
            date(&received, "Received-Date", warnings)
        }
        (None, None) => None,
    };
    report.source_ip = source_ip.and_then(|value| ip(&value, warnings));
    report.source_port = source_port.and_then(|value| match fields::without_comments(&value).parse() {
        Ok(port) => Some(port),
        Err(_) => {
            warnings.add("value_invalid", format!("Source-Port `{value}` is not a port number: ignored"));
            None
        }
    });
    if let Some(value) = incidents {
        match fields::without_comments(&value).parse::<u32>() {
            Ok(count) => report.incidents = count,
            Err(_) => warnings.add("value_invalid", format!("Incidents `{value}` is not a count: read as 1")),
        }
    }
    report.reporting_mta = reporting_mta.map(|value| {
        let clean = fields::without_comments(&value);
        match clean.split_once(';') {
            Some((_, name)) => name.trim().to_owned(),
            None => clean,
        }
    });
    report.auth_failure = auth_failure.map(|value| {
        let (token, _) = fields::first_token(&value);
        let lower = token.to_ascii_lowercase();
        if !AUTH_FAILURES.contains(&lower.as_str()) {
            warnings.add("value_unknown", format!("Auth-Failure `{value}` is not a registered value: kept"));
        }
        lower
    });
    if let Some(value) = delivery_result {
        set_delivery_result(report, &value, warnings);
    }
    report.original_mail_from = original_mail_from.map(|value| fields::address(&value));
}

/// `Delivery-Result` mapped onto its five words; free text (CHECKLIST F5) by the word in it.
fn set_delivery_result(report: &mut ForensicReport, value: &str, warnings: &mut Warnings) {
    let lower = fields::without_comments(value).to_ascii_lowercase();
    if DELIVERY_RESULTS.contains(&lower.as_str()) {
        report.delivery_result = Some(lower);
        return;
    }
    let mapped =
        [("reject", "reject"), ("policy", "policy"), ("spam", "spam"), ("junk", "spam"), ("deliver", "delivered")]
            .iter()
            .find(|(word, _)| lower.contains(word))
            .map_or("other", |(_, result)| result);
    warnings.add("value_normalized", format!("Delivery-Result `{value}` read as `{mapped}`"));
    report.delivery_result = Some(mapped.to_owned());
    report.delivery_result_raw = Some(value.to_owned());
}

fn date(value: &str, field: &str, warnings: &mut Warnings) -> Option<DateTime<Utc>> {
    let parsed = mail_parser::DateTime::parse_rfc822(value)
        .filter(|d| d.is_valid())
        .or_else(|| mail_parser::DateTime::parse_rfc3339(value).filter(|d| d.is_valid()))
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    if parsed.is_none() {
        warnings.add("value_invalid", format!("{field} `{value}` is not a date: ignored"));
    }
    parsed
}

/// `Source-IP`, tolerating a trailing host name (CHECKLIST F4) and the SMTP literal forms.
fn ip(value: &str, warnings: &mut Warnings) -> Option<std::net::IpAddr> {
    let (token, more) = fields::first_token(value);
    match normalize::ip_address(&token) {
        Some(ip) => {
            note(warnings, ip.note);
            if more {
                warnings.add("value_normalized", format!("Source-IP `{value}`: the text after the address ignored"));
            }
            Some(ip.value)
        }
        None => {
            warnings.add("value_invalid", format!("Source-IP `{value}` is not an IP address: ignored"));
            None
        }
    }
}

fn note(warnings: &mut Warnings, note: Option<(&'static str, String)>) {
    if let Some((code, message)) = note {
        warnings.add(code, message);
    }
}

/// A plain-text failure report: the `Label: value` lines Exim and cPanel write, the rest left
/// to the sealed sample.
fn read_plain_text(text: &str, warnings: &mut Warnings) -> ForensicReport {
    let mut report = ForensicReport::empty(ForensicFormat::PlainText);
    report.feedback_type = "auth-failure".into();
    report.auth_failure = Some("dmarc".into());
    warnings.add("not_arf", "a failure report in plain text, without a feedback part: fields read from its wording");
    for line in text.lines() {
        let Some((label, value)) = line.trim().split_once(':') else { continue };
        let value = value.trim();
        match label.trim().to_ascii_lowercase().as_str() {
            "sender domain" | "reported domain" => {
                if let Some(domain) = normalize::domain(value)
                    && !report.reported_domains.contains(&domain.value)
                {
                    report.reported_domains.push(domain.value);
                }
            }
            "sender ip address" | "source ip" | "sender ip" if report.source_ip.is_none() => {
                report.source_ip = ip(value, warnings);
            }
            "received date" | "arrival date" if report.arrival_date.is_none() => {
                report.arrival_date = date(value, "Received Date", warnings);
            }
            "dmarc results" | "dmarc result" if report.delivery_result.is_none() => {
                set_delivery_result(&mut report, value, warnings);
            }
            _ => {}
        }
    }
    if text.contains("copy of the headers") || text.contains("original headers") {
        report.original = Some(OriginalPart::InText);
    }
    if report.reported_domains.is_empty() {
        warnings.add("field_missing", "no sender domain found in the text");
    }
    report
}

/// A sealed report mail taken apart for reading: the original's header section and body, and
/// the human-readable part.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// The original's header section (or the whole text of a plain-text report).
    pub headers: String,
    /// The original's body as sent, when the report carries it.
    pub body: Option<String>,
    /// The report's own description for people.
    pub description: Option<String>,
}

impl Sample {
    /// Takes apart the raw report mail a forensic payload holds.
    pub fn from_report_mail(raw: &[u8]) -> Sample {
        let Some(message) = MessageParser::default().parse(raw) else {
            return Sample { headers: String::from_utf8_lossy(raw).into_owned(), ..Sample::default() };
        };
        let kind = classify(&message);
        let text_part =
            |part: &MessagePart<'_>| String::from_utf8_lossy(&decode_part(&message, 0, part).0).into_owned();
        let description = message
            .parts
            .iter()
            .find(|part| matches!(part.body, PartType::Text(_)) && !has_type(part, "text", "rfc822-headers"))
            .map(text_part);
        let original = message.parts.iter().skip(1).find(|part| {
            matches!(part.body, PartType::Message(_))
                || has_type(part, "text", "rfc822-headers")
                || has_type(part, "message", "rfc822-headers")
        });
        match (kind, original) {
            (Some(Kind::Arf(_)), Some(part)) => {
                let bytes = match &part.body {
                    PartType::Message(nested) => nested.raw_message().to_vec(),
                    _ => decode_part(&message, 0, part).0,
                };
                let text = String::from_utf8_lossy(&bytes);
                let (headers, body) = split_header_section(&text);
                let body = matches!(part.body, PartType::Message(_)).then(|| body.to_owned());
                Sample { headers: headers.to_owned(), body, description }
            }
            _ => Sample { headers: description.clone().unwrap_or_default(), body: None, description },
        }
    }
}

/// Splits a message at its first empty line.
fn split_header_section(text: &str) -> (&str, &str) {
    for separator in ["\r\n\r\n", "\n\n"] {
        if let Some(at) = text.find(separator) {
            return (&text[..at + separator.len() / 2], &text[at + separator.len()..]);
        }
    }
    (text, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(raw: &str) -> ForensicReport {
        let message = MessageParser::default().parse(raw.as_bytes()).expect("a mail");
        let kind = classify(&message).expect("a failure report");
        parse(&message, 0, kind)
    }

    fn codes(report: &ForensicReport) -> Vec<&'static str> {
        report.warnings.iter().map(|w| w.code).collect()
    }

    const ARF: &str = "From: ruf@receiver.example\r\nDate: Wed, 15 Nov 2023 11:00:05 +0000\r\n\
        Subject: FW: original\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=feedback-report; boundary=\"B\"\r\n\r\n\
        --B\r\nContent-Type: text/plain\r\n\r\nA failure report.\r\n\
        --B\r\nContent-Type: message/feedback-report\r\n\r\n\
        Feedback-Type: auth-failure\r\nUser-Agent: Test/1\r\nVersion: 1\r\nAuth-Failure: dmarc (policy)\r\n\
        Authentication-Results: receiver.example; dmarc=fail header.from=example.com\r\n\
        Identity-Alignment: dkim , spf\r\nSource-IP: 192.0.2.99 (host99.sender.example)\r\n\
        Reporting-MTA: dns; mx.receiver.example\r\nReported-Domain: Example.COM\r\n\
        Original-Mail-From: <bounce@example.com>\r\nOriginal-Rcpt-To: <user@receiver.example>\r\n\
        Original-Rcpt-To: <other@receiver.example>\r\nDelivery-Result: Rejected by policy\r\n\
        X-Vendor-Score: 7\r\n\r\n\
        --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: someone@example.com\r\nSubject: original\r\n\r\n\
        --B--\r\n";

    #[test]
    fn every_field_of_an_arf_report_is_read() {
        let report = report_of(ARF);
        assert_eq!(report.format, ForensicFormat::Arf);
        assert_eq!(report.feedback_type, "auth-failure");
        assert_eq!(report.auth_failure.as_deref(), Some("dmarc"));
        assert_eq!(report.source_ip, Some("192.0.2.99".parse().expect("ip")));
        assert_eq!(report.reporting_mta.as_deref(), Some("mx.receiver.example"));
        assert_eq!(report.reported_domains, vec!["example.com".to_owned()]);
        assert_eq!(report.identity_alignment.as_deref(), Some("dkim , spf"));
        assert_eq!(report.original_mail_from.as_deref(), Some("bounce@example.com"));
        assert_eq!(report.original_rcpt_to, vec!["user@receiver.example", "other@receiver.example"]);
        assert_eq!(report.delivery_result.as_deref(), Some("reject"));
        assert_eq!(report.delivery_result_raw.as_deref(), Some("Rejected by policy"));
        assert_eq!(report.other_fields, vec![("X-Vendor-Score".to_owned(), "7".to_owned())]);
        assert_eq!(report.original, Some(OriginalPart::Headers));
        assert_eq!(report.arrival_date.map(|d| d.timestamp()), Some(1_700_046_005));
        let codes = codes(&report);
        assert!(codes.contains(&"arrival_date_missing"), "{codes:?}");
        assert!(codes.contains(&"domain_normalized"), "{codes:?}");
        assert!(codes.contains(&"value_normalized"), "{codes:?}");
    }

    #[test]
    fn missing_required_fields_are_warnings_not_rejections() {
        let raw = ARF
            .replace("Feedback-Type: auth-failure\r\n", "")
            .replace("User-Agent: Test/1\r\n", "")
            .replace("Identity-Alignment: dkim , spf\r\n", "");
        let report = report_of(&raw);
        assert_eq!(report.feedback_type, "auth-failure");
        let missing: Vec<&str> =
            report.warnings.iter().filter(|w| w.code == "field_missing").map(|w| w.message.as_str()).collect();
        assert_eq!(missing.len(), 3, "{missing:?}");
    }

    #[test]
    fn plain_text_reports_are_read_from_their_wording() {
        let raw = "From: mailer@receiver.example\r\nSubject: DMARC Failure Report for example.com\r\n\r\n\
            A message claiming to be from you has failed the published DMARC\r\npolicy for your domain.\r\n\r\n\
            \x20 Sender Domain: example.com\r\n  Sender IP Address: 192.0.2.98\r\n\
            \x20 Received Date: Wed, 15 Nov 2023 11:00:00 +0000\r\n  DMARC Results: Reject\r\n\r\n\
            ------ This is a copy of the headers that were received before the error\r\n\r\nFrom: a@example.com\r\n";
        let report = report_of(raw);
        assert_eq!(report.format, ForensicFormat::PlainText);
        assert_eq!(report.reported_domains, vec!["example.com".to_owned()]);
        assert_eq!(report.source_ip, Some("192.0.2.98".parse().expect("ip")));
        assert_eq!(report.arrival_date.map(|d| d.timestamp()), Some(1_700_046_000));
        assert_eq!(report.delivery_result.as_deref(), Some("reject"));
        assert_eq!(report.original, Some(OriginalPart::InText));
        assert_eq!(codes(&report), vec!["not_arf"]);
    }

    #[test]
    fn a_forwarded_failure_report_is_found_inside_the_forward() {
        let raw = format!(
            "From: alice@example.net\r\nSubject: Fwd: DMARC failure report for example.com\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\n\
             See below.\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n{ARF}\r\n--F--\r\n"
        );
        let message = MessageParser::default().parse(raw.as_bytes()).expect("a mail");
        assert!(classify(&message).is_none(), "the forward itself is not the report");
        let PartType::Message(inner) = &message.parts[2].body else { panic!("a forwarded message") };
        assert!(matches!(classify(inner), Some(Kind::Arf(_))));
    }

    #[test]
    fn ordinary_mail_is_not_a_failure_report() {
        let message = MessageParser::default()
            .parse(b"From: a@example.com\r\nSubject: lunch?\r\n\r\nSee you at noon.\r\n".as_slice())
            .expect("a mail");
        assert!(classify(&message).is_none());
    }

    #[test]
    fn a_sample_shows_the_original_headers_and_body() {
        let sample = Sample::from_report_mail(ARF.as_bytes());
        assert_eq!(sample.headers, "From: someone@example.com\r\nSubject: original\r\n");
        assert_eq!(sample.body, None);
        assert_eq!(sample.description.as_deref().map(str::trim), Some("A failure report."));
    }
}
