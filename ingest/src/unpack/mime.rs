//! Walks a MIME message (mail-parser for structure and headers) and hands every leaf part's
//! decoded bytes back to the sniffer.
//!
//! Leaf bytes are transfer-decoded here from the raw message rather than taken from
//! mail-parser, which decodes `text/*` parts through their charset: a gzip mislabelled
//! `text/plain` must reach the sniffer byte for byte. HTML parts (Microsoft's "[Preview]"
//! summaries) are skipped; forwarded messages are walked recursively; ARF feedback reports are
//! handed to the visitor parsed, with the raw mail. The MIME limits are checked by
//! [`super::mime_scan`] before mail-parser sees the mail.

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::{Unpacker, Visitor, mime_scan, transfer};
use crate::error::IngestError;
use crate::forensic;

pub(super) fn walk<V: Visitor>(
    unpacker: &mut Unpacker<'_, V>,
    raw: &[u8],
    location: &str,
    depth: u32,
) -> Result<(), V::Error> {
    // mail-parser builds the whole structure at once: refuse one beyond the limits first.
    if let Err(err) = mime_scan::check(raw, unpacker.limits, depth) {
        return unpacker.visitor.problem(location, err);
    }
    match MessageParser::default().parse(raw) {
        Some(message) => walk_message(unpacker, &message, 0, location, depth),
        None => unpacker.visitor.problem(
            location,
            IngestError::Corrupt { format: "mail", reason: "no header section could be parsed".into() },
        ),
    }
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
    if let Some(kind) = forensic::classify(message) {
        let report = forensic::parse(message, base, kind);
        return unpacker.visitor.forensic(location, report, message.raw_message());
    }
    for (index, part) in message.parts.iter().enumerate() {
        let label = describe(part, index);
        let part_location = format!("{location} > {label}");
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => {
                let nested_base = if part.encoding == Encoding::None { part.offset_body as usize } else { 0 };
                walk_message(
                    unpacker,
                    nested,
                    nested_base,
                    &format!("{part_location} > forwarded message"),
                    depth + 1,
                )?;
            }
            PartType::Html(_) => unpacker.visitor.skipped(&part_location, "HTML"),
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
                unpacker.bytes(&decoded, &part_location, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// `part 2 (application/gzip "report.xml.gz")`
fn describe(part: &MessagePart<'_>, index: usize) -> String {
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
        .to_ascii_lowercase();
    match part.attachment_name() {
        Some(name) => format!("part {index} ({content_type} \"{name}\")"),
        None => format!("part {index} ({content_type})"),
    }
}

/// The part's body, transfer-decoded from the raw message (see [`walk_message`] for `base`),
/// and whether the encoding needed repairs.
pub(crate) fn decode_part(message: &Message<'_>, base: usize, part: &MessagePart<'_>) -> (Vec<u8>, bool) {
    let raw = message.raw_message();
    let start = (part.offset_body as usize).checked_sub(base);
    let end = (part.offset_end as usize).checked_sub(base);
    let body = match (start, end) {
        (Some(start), Some(end)) if start <= end && end <= raw.len() => &raw[start..end],
        // Offsets we cannot map: take mail-parser's own decoding.
        _ => {
            let bytes = match &part.body {
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
                PartType::Text(text) | PartType::Html(text) => text.as_bytes().to_vec(),
                PartType::Message(_) | PartType::Multipart(_) => Vec::new(),
            };
            return (bytes, false);
        }
    };
    match part.encoding {
        Encoding::Base64 => transfer::base64(body),
        Encoding::QuotedPrintable => (transfer::quoted_printable(body), false),
        Encoding::None => (body.to_vec(), false),
    }
}
