//! SMTP TLS reports (RFC 8460): the JSON reports that senders enforcing MTA-STS or DANE send
//! to the `rua=` of a domain's `_smtp._tls` record, often the DMARC report mailbox.
//!
//! Input: one JSON document as a `BufRead`, as the unpacker finds it (plain, gzip, in any
//! part of a mail, in a file, mbox, maildir or SMTP message: content decides, never names or
//! types). Output: [`Opened::Report`] with a normalized [`TlsReport`] and its warnings,
//! [`Opened::NotTlsReport`] for JSON (or text that merely starts like JSON) that is not a TLS
//! report, or an [`IngestError`] for a TLS report that cannot be read, saying why.
//!
//! Memory: the document and its tree are held while it is read, up to [`HELD_PER_BYTE`] bytes
//! per byte of it; a document for which what the input may still hold in memory does not
//! suffice is [`Opened::OverMemory`] (the store then streams the input, with more room).
//!
//! Limits ([`TlsLimits`]): the document is read into memory only up to a size cap, and
//! refused as soon as its nesting, the members of one array or object, or its number of values
//! exceed their caps (module `bounded`), so that a JSON bomb stops early in bounded memory;
//! the numbers of policies and of failure details are capped too. A document over a limit is
//! an error whatever it claims to be, as a decompression bomb is.
//!
//! Invariants: a report has an organization, a report id and a date range with begin <= end
//! (its natural key, of at most 512 bytes of text each, as for aggregate reports); every count
//! is a non-negative integer, and the sessions of one report add up to at most
//! [`MAX_REPORT_SESSIONS`], so that sums over any number of reports stay exact; no text holds
//! NUL (PostgreSQL stores none); whatever was normalized or not understood is in the `raw`
//! lists beside the values, and a warning says so.

mod bounded;
mod model;
mod node;
mod parser;
#[cfg(test)]
mod tests;
mod values;

use std::io::BufRead;

pub use bounded::TlsLimits;
pub use model::{FailureDetail, PolicyType, ResultType, TlsPolicy, TlsReport};
pub use parser::MAX_REPORT_SESSIONS;

use crate::error::IngestError;
use crate::limits::format_size;
use crate::model::Warnings;
use node::Node;

/// What a JSON document turned out to be.
#[derive(Debug)]
pub enum Opened {
    /// An SMTP TLS report.
    Report(Box<TlsReport>),
    /// Something else; says what.
    NotTlsReport(String),
    /// Larger than what the input may still hold in memory allows: not read on. The error says
    /// so, for a reader that cannot read the input another way.
    OverMemory(IngestError),
}

/// The most memory reading a TLS report holds per byte of its document: the bytes, the tree
/// (measured: under 4 bytes per byte for the costliest documents within the caps), and the
/// report being built.
pub const HELD_PER_BYTE: u64 = 5;

/// Reads one JSON document, holding at most `memory` bytes for it; see the module
/// documentation.
pub fn parse(reader: &mut dyn BufRead, limits: &TlsLimits, memory: u64) -> Result<Opened, IngestError> {
    let mut warnings = Warnings::new();
    let Some(bytes) = bounded::read_json(reader, limits, memory / HELD_PER_BYTE)? else {
        return Ok(Opened::OverMemory(IngestError::limit(
            format!("a JSON document of more than {}", format_size(memory / HELD_PER_BYTE)),
            format!(
                "{} of memory left for the input, held {HELD_PER_BYTE} times over while a TLS report is read",
                format_size(memory)
            ),
        )));
    };
    // The bytes are dropped once the JSON value is built, before the report is: the three
    // never sit in memory together.
    let value = match json_value(bytes, &mut warnings)? {
        Ok(value) => value,
        Err(what) => return Ok(Opened::NotTlsReport(what)),
    };
    let object = match value {
        Node::Object(object) if parser::is_tls_report(&object) => object,
        Node::Object(_) => return Ok(Opened::NotTlsReport("JSON, not a report".into())),
        _ => return Ok(Opened::NotTlsReport("JSON, not a report (not an object)".into())),
    };
    parser::ReportReader::new(limits, warnings).report(&object).map(|report| Opened::Report(Box::new(report)))
}

/// The document as a JSON value; `Ok(Err(what))` for text that is not JSON and not meant
/// to be a TLS report either.
fn json_value(mut bytes: Vec<u8>, warnings: &mut Warnings) -> Result<Result<Node, String>, IngestError> {
    let replaced = replace_nul_escapes(&mut bytes);
    if replaced > 0 {
        warnings.add("nul_replaced", format!("{replaced} NUL characters (`\\u0000`) replaced by U+FFFD"));
    }
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => {
            warnings.add("encoding", "byte order mark removed");
            rest
        }
        None => &bytes[..],
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => {
            // I-JSON is UTF-8; a stray byte in a free-text member is not worth a report.
            let text = String::from_utf8_lossy(bytes);
            let replaced = text.chars().filter(|&c| c == char::REPLACEMENT_CHARACTER).count();
            warnings.add("invalid_utf8", format!("{replaced} byte sequences that are not UTF-8 replaced"));
            text
        }
    };
    match serde_json::from_str(&text) {
        Ok(value) => Ok(Ok(value)),
        Err(err) if looks_like_tls_report(&text) => Err(IngestError::invalid(format!(
            "the TLS report is not valid JSON (line {}, column {}): {}",
            err.line(),
            err.column(),
            reason(&err)
        ))),
        Err(_) => {
            let first = text.trim_start().chars().next().unwrap_or(' ');
            Ok(Err(format!("text starting with `{first}` that is not JSON")))
        }
    }
}

/// Replaces every `\u0000` escape of JSON text by `\ufffd`, in place: PostgreSQL stores no NUL
/// in text or jsonb, and a JSON string can hold one only as that escape (a raw control
/// character is not JSON). Same length, so that positions in error messages stay true.
/// Returns how many were replaced.
fn replace_nul_escapes(bytes: &mut [u8]) -> usize {
    let mut replaced = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&byte| byte == b'\\') {
        let escape = at + offset;
        if bytes[escape + 1..].starts_with(b"u0000") {
            bytes[escape + 2..escape + 6].copy_from_slice(b"fffd");
            replaced += 1;
        }
        // Past the escaped character, an escaped backslash included.
        at = (escape + 2).min(bytes.len());
    }
    replaced
}

/// Whether text that is not valid JSON was meant to be a TLS report.
fn looks_like_tls_report(text: &str) -> bool {
    parser::REPORT_MEMBERS.iter().any(|member| text.contains(&format!("\"{member}\"")))
}

/// serde_json's message without its own position suffix (we give line and column).
fn reason(err: &serde_json::Error) -> String {
    let message = err.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}
