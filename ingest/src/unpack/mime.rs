//! Walks a MIME message (mail-parser for structure and headers) and hands every leaf part's
//! decoded bytes back to the sniffer.
//!
//! Leaf bytes are transfer-decoded here from the raw message rather than taken from
//! mail-parser, which decodes `text/*` parts through their charset: a gzip mislabelled
//! `text/plain` must reach the sniffer byte for byte. HTML parts (Microsoft's "[Preview]"
//! summaries) are skipped; forwarded messages are walked recursively; every message is first
//! offered whole to the visitor, which takes failure reports that way. The MIME limits are
//! checked by [`super::mime_scan`] before mail-parser sees the mail.
//!
//! A part that the mail presents as a report ([`presented_as_report`]: a zip, gzip or XML
//! type or name, or, when nothing else in the mail can be read, an attachment of a mail whose
//! subject is a report's) must hold a container or a document: when its bytes are none of
//! these, it is a problem naming the part (the input is rejected and kept), not a part that is
//! simply not a report. Blank lines before
//! the header section (mail saved by some tools) are skipped with a warning.

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::transfer::decode_part;
use super::{Content, SNIFF_BYTES, Unpacker, Visitor, mime_scan, sniff};
use crate::error::IngestError;

pub(super) fn walk<V: Visitor>(
    unpacker: &mut Unpacker<'_, V>,
    raw: &[u8],
    location: &str,
    depth: u32,
) -> Result<(), V::Error> {
    let repaired = cr_line_endings_to_crlf(raw);
    if repaired.is_some() {
        unpacker.visitor.warning("line_endings", format!("{location}: lines end in CR alone, read as CRLF"));
    }
    let raw = repaired.as_deref().unwrap_or(raw);
    let blank = blank_lines_before_headers(raw);
    if blank > 0 {
        unpacker.visitor.warning(
            "blank_lines_before_headers",
            format!("{location}: blank lines before the header section skipped"),
        );
    }
    let raw = &raw[blank..];
    // mail-parser builds the whole structure at once: refuse one beyond the limits first.
    if let Err(err) = mime_scan::check(raw, unpacker.limits, depth) {
        return unpacker.visitor.problem(location, err);
    }
    // mail-parser's structure (and the bodies it decodes) counts as large as the text.
    unpacker.holding(raw.len() as u64, location, |unpacker| match MessageParser::default().parse(raw) {
        Some(message) => walk_message(unpacker, &message, 0, location, depth),
        None => unpacker.visitor.problem(
            location,
            IngestError::Corrupt { format: "mail", reason: "no header section could be parsed".into() },
        ),
    })
}

/// How many bytes of blank lines (nothing but spaces and tabs) come before a mail's first
/// header line. mail-parser would take the first of them for the end of an empty header
/// section, and the whole mail for a body.
pub(super) fn blank_lines_before_headers(raw: &[u8]) -> usize {
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &raw[start..]) {
        if !raw[start..start + end].iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r')) {
            break;
        }
        start += end + 1;
    }
    start
}

/// A mail whose lines end in CR alone (old Mac OS), with every CR made CRLF; `None` for any
/// other mail. mail-parser finds lines by their LF, so without this such a mail is one long
/// header line. Told apart by its header section: CRs and not a single LF up to the first
/// empty line (or in the first 64 KiB without one).
fn cr_line_endings_to_crlf(raw: &[u8]) -> Option<Vec<u8>> {
    let head = &raw[..raw.len().min(64 << 10)];
    let header_end = memchr::memmem::find(head, b"\r\r").unwrap_or(head.len());
    let header = &head[..header_end];
    if memchr::memchr(b'\n', header).is_some() || memchr::memchr(b'\r', header).is_none() {
        return None;
    }
    let mut crlf = Vec::with_capacity(raw.len() + raw.len() / 32);
    for (index, &byte) in raw.iter().enumerate() {
        crlf.push(byte);
        if byte == b'\r' && raw.get(index + 1) != Some(&b'\n') {
            crlf.push(b'\n');
        }
    }
    Some(crlf)
}

/// `base` is where `message.raw_message()` starts in the stream its part offsets refer to:
/// mail-parser parses an unencoded `message/rfc822` in the stream of its parent (offsets stay
/// those of the parent, the nested raw message is a slice of it), and an encoded one from its
/// decoded bytes (offsets start again at 0).
fn walk_message<V: Visitor>(
    unpacker: &mut Unpacker<'_, V>,
    message: &Message<'_>,
    base: usize,
    location: &str,
    depth: u32,
) -> Result<(), V::Error> {
    // Its depth is within limits.max_mime_depth: `mime_scan` counted every level of it.
    if unpacker.visitor.message(location, message, base)? {
        return Ok(());
    }
    let report_subject = message.subject().is_some_and(is_report_subject);
    // Parts presented as a report by the subject alone, unreadable: a problem only when nothing
    // else in the mail could be read either (see `Presented::BySubject`).
    let mut by_subject: Vec<(String, String, &'static str)> = Vec::new();
    let mut readable = false;
    for (index, part) in message.parts.iter().enumerate() {
        let label = describe(part, index);
        let part_location = format!("{location} > {label}");
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => {
                readable = true;
                let nested_base = if part.encoding == Encoding::None { part.offset_body as usize } else { 0 };
                walk_message(
                    unpacker,
                    nested,
                    nested_base,
                    &format!("{part_location} > forwarded message"),
                    depth + 1,
                )?;
            }
            PartType::Html(_) => unpacker.visitor.skipped(&part_location, "HTML")?,
            PartType::Text(_) | PartType::Binary(_) | PartType::InlineBinary(_) => {
                unpacker.mime_parts += 1;
                if unpacker.mime_parts > unpacker.limits.max_mime_parts {
                    return unpacker.visitor.problem(location, mime_scan::too_many_parts("input", unpacker.limits));
                }
                let (decoded, repaired) = decode_part(message, base, part);
                if repaired {
                    unpacker.visitor.warning(
                        "transfer_encoding",
                        format!("{part_location}: base64 with missing padding or stray characters decoded leniently"),
                    );
                }
                match (unreadable(&decoded), presented_as_report(part, report_subject)) {
                    (Some(content), Some(Presented::Itself(why))) => {
                        unpacker.visitor.problem(&part_location, not_a_report(&why, content))?;
                        continue;
                    }
                    (Some(content), Some(Presented::BySubject(why))) => {
                        by_subject.push((part_location, why, content));
                        continue;
                    }
                    (Some(_), None) => {}
                    (None, _) => readable = true,
                }
                unpacker.holding(decoded.len() as u64, &part_location, |unpacker| {
                    unpacker.bytes(&decoded, &part_location, depth + 1)
                })?;
            }
        }
    }
    for (part_location, why, content) in by_subject {
        if readable {
            unpacker.visitor.skipped(&part_location, content)?;
        } else {
            unpacker.visitor.problem(&part_location, not_a_report(&why, content))?;
        }
    }
    Ok(())
}

/// The problem of a part presented as a report (`why`) that holds `content`.
fn not_a_report(why: &str, content: &str) -> IngestError {
    let reason = format!("presented as a report {why}, but it holds {content}, not zip, gzip or XML");
    IngestError::Corrupt { format: "report attachment", reason }
}

/// Why a part is presented as a report.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presented {
    /// By its own type or name: when it cannot be read, that is a problem.
    Itself(String),
    /// By the subject of its mail alone: a problem only when nothing else in the mail can be
    /// read either, since a report mail may carry a signature or a PDF summary beside the
    /// report.
    BySubject(String),
}

/// Content types reporters give zip, gzip and XML reports.
const REPORT_TYPES: &[&str] = &[
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/gzip-compressed",
    "application/x-gzip-compressed",
    "application/x-gunzip",
    "application/xml",
    "text/xml",
];

/// Why a part is presented as a report, if it is: by its type, by its name (`.zip`, `.gz`,
/// `.xml`, or Google's `org!domain!begin!end`), or, for an `application/*` part, by the
/// subject of its mail (`report_subject`, see [`is_report_subject`]). Text and HTML parts of
/// a report mail are its human-readable summary, and signatures sign it: never presented as
/// the report by the subject.
fn presented_as_report(part: &MessagePart<'_>, report_subject: bool) -> Option<Presented> {
    let content_type = content_type(part);
    let name = part.attachment_name().filter(|name| is_report_name(name));
    match (REPORT_TYPES.contains(&content_type.as_str()), name) {
        (true, Some(name)) => Some(Presented::Itself(format!("by its type {content_type} and its name \"{name}\""))),
        (true, None) => Some(Presented::Itself(format!("by its type {content_type}"))),
        (false, Some(name)) => Some(Presented::Itself(format!("by its name \"{name}\""))),
        (false, None)
            if report_subject && content_type.starts_with("application/") && !content_type.ends_with("-signature") =>
        {
            Some(Presented::BySubject(format!("by the subject of its mail, as its {content_type} attachment")))
        }
        (false, None) => None,
    }
}

/// `.zip`, `.gz`, `.xml` (and so `.xml.gz`), or Google's `org!domain!begin!end[!id]` with
/// or without an extension.
fn is_report_name(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    if [".zip", ".gz", ".xml"].iter().any(|extension| lower.ends_with(extension)) {
        return true;
    }
    let fields: Vec<&str> = lower.split('!').collect();
    fields.len() >= 4
        && !fields[2].is_empty()
        && fields[2].bytes().all(|b| b.is_ascii_digit())
        && fields[3].bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// RFC 7489's subject of a report mail, `Report Domain: ... Submitter: ... Report-ID: ...`
/// (in any case, folded or not), that is not a reply: a person answering a report mail quotes
/// its subject, and what they attach is not a report.
fn is_report_subject(subject: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    let words: Vec<&str> = subject.split_whitespace().collect();
    let is_reply = words.first().is_some_and(|first| ["re:", "aw:", "sv:", "antw:", "vs:", "odp:"].contains(first));
    let joined = words.join(" ");
    !is_reply && joined.contains("report domain:") && joined.contains("report-id:")
}

/// What content that cannot be a report is, by its first bytes (in the words of
/// `Unpacker::leaf`, which skips it); `None` for a container or a document (gzip, zip, mail,
/// XML, JSON), which are read as usual.
fn unreadable(bytes: &[u8]) -> Option<&'static str> {
    match sniff(&bytes[..bytes.len().min(SNIFF_BYTES)]) {
        Content::Empty => Some("empty content"),
        Content::Text => Some("plain text"),
        Content::Html => Some("HTML"),
        Content::Binary => Some("binary data of an unknown kind"),
        Content::Gzip | Content::Zip | Content::Mail | Content::Xml | Content::Json => None,
    }
}

/// A part's content type in lower case, `text/plain` when it has none.
fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase()
}

/// `part 2 (application/gzip "report.xml.gz")`
fn describe(part: &MessagePart<'_>, index: usize) -> String {
    let content_type = content_type(part);
    match part.attachment_name() {
        Some(name) => format!("part {index} ({content_type} \"{name}\")"),
        None => format!("part {index} ({content_type})"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mails_whose_lines_end_in_cr_alone_are_repaired() {
        assert_eq!(
            cr_line_endings_to_crlf(b"From: a@b\rSubject: x\r\rbody\rend").as_deref(),
            Some(&b"From: a@b\r\nSubject: x\r\n\r\nbody\r\nend"[..])
        );
        assert_eq!(cr_line_endings_to_crlf(b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n"), None);
        assert_eq!(cr_line_endings_to_crlf(b"From: a@b\nSubject: x\n\nbody with a \r in it\n"), None);
        assert_eq!(cr_line_endings_to_crlf(b"From: a@b"), None);
    }

    #[test]
    fn blank_lines_before_the_headers_are_measured() {
        assert_eq!(blank_lines_before_headers(b"From: a@b\n\nbody"), 0);
        assert_eq!(blank_lines_before_headers(b"\nFrom: a@b\n"), 1);
        assert_eq!(blank_lines_before_headers(b" \t \r\n\r\nFrom: a@b\r\n"), 7);
        assert_eq!(blank_lines_before_headers(b"   "), 0);
    }

    #[test]
    fn report_names_and_subjects_are_recognised() {
        for name in ["report.zip", "a.XML.GZ", "x.xml", "google.com!example.net!1793491200!1793577599", "a!b!1!2!id"] {
            assert!(is_report_name(name), "{name}");
        }
        for name in ["logo.png", "invoice.pdf", "a!b!c!d", "report"] {
            assert!(!is_report_name(name), "{name}");
        }
        assert!(is_report_subject("Report Domain: example.com Submitter: google.com Report-ID: 123"));
        assert!(is_report_subject("report domain: example.com\n    Submitter: x\n    report-id: <1@x>"));
        assert!(is_report_subject("[Preview] Report Domain: example.com Submitter: x Report-ID: <2>"));
        assert!(is_report_subject("Fwd: Report Domain: example.com Submitter: x Report-ID: 3"));
        assert!(!is_report_subject("Re: Report Domain: example.com Submitter: x Report-ID: 3"));
        assert!(!is_report_subject("Report Domain: example.com"));
    }
}
