//! Walks a MIME message (mail-parser for structure and headers) and hands every leaf part's
//! decoded bytes back to the sniffer.
//!
//! Leaf bytes are transfer-decoded here from the raw message rather than taken from
//! mail-parser, which decodes `text/*` parts through their charset: a gzip mislabelled
//! `text/plain` must reach the sniffer byte for byte. HTML parts (Microsoft's "[Preview]"
//! summaries) are skipped; forwarded messages are walked recursively; every message is first
//! offered whole to the visitor, which takes failure reports that way. The MIME limits are
//! checked by [`super::mime_scan`] before mail-parser sees the mail.

use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::transfer::decode_part;
use super::{Unpacker, Visitor, mime_scan};
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
                unpacker.holding(decoded.len() as u64, &part_location, |unpacker| {
                    unpacker.bytes(&decoded, &part_location, depth + 1)
                })?;
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
}
