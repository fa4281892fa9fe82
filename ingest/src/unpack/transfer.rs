//! Lenient MIME transfer decoding (base64, quoted-printable), and the decoded body of a part
//! of a parsed mail.
//!
//! Reporters' base64 comes with 76-, 78- and 80-column lines, CRLF and LF mixed, missing `=`
//! padding and stray characters; we skip anything outside the alphabet and decode what is
//! there. The content is validated afterwards by sniffing its magic bytes, not here.

use mail_parser::{Encoding, Message, MessagePart, PartType};

/// Decodes base64, ignoring non-alphabet bytes and missing padding; the flag says whether
/// either had to be ignored (for a warning).
pub(crate) fn base64(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut stray = false;
    for &byte in input {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                // Padding ends a quantum; anything after it starts afresh (concatenated
                // base64 blocks happen).
                symbols += 1;
                acc = 0;
                bits = 0;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => {
                stray = true;
                continue;
            }
        };
        symbols += 1;
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (out, stray || !symbols.is_multiple_of(4))
}

/// Decodes quoted-printable; malformed escapes are kept literally.
pub(crate) fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    while at < input.len() {
        let byte = input[at];
        if byte != b'=' {
            out.push(byte);
            at += 1;
            continue;
        }
        let rest = &input[at + 1..];
        if rest.starts_with(b"\r\n") {
            at += 3;
        } else if rest.starts_with(b"\n") {
            at += 2;
        } else if let (Some(high), Some(low)) = (rest.first().and_then(hex), rest.get(1).and_then(hex)) {
            out.push(high << 4 | low);
            at += 3;
        } else {
            // Soft line break with trailing blanks, or a stray `=`.
            let blanks = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            if rest[blanks..].starts_with(b"\r\n") {
                at += 1 + blanks + 2;
            } else if rest[blanks..].starts_with(b"\n") {
                at += 1 + blanks + 1;
            } else {
                out.push(b'=');
                at += 1;
            }
        }
    }
    out
}

fn hex(byte: &u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The part's body, transfer-decoded from the raw message (`base` is where `message.raw_message()` starts in the stream its part offsets refer to:
/// see `unpack::mime`),
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
        Encoding::Base64 => base64(body),
        Encoding::QuotedPrintable => (quoted_printable(body), false),
        Encoding::None => (body.to_vec(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_tolerates_line_lengths_padding_and_junk() {
        assert_eq!(base64(b"aGVsbG8gd29ybGQ="), (b"hello world".to_vec(), false));
        assert_eq!(base64(b"aGVsbG8gd29ybGQ"), (b"hello world".to_vec(), true));
        assert_eq!(base64(b"aGVs\r\nbG8g\nd29y*bGQ="), (b"hello world".to_vec(), true));
        assert_eq!(base64(b"aGk=aGk="), (b"hihi".to_vec(), false));
    }

    #[test]
    fn quoted_printable_soft_breaks_and_escapes() {
        assert_eq!(quoted_printable(b"a=3Db=\r\nc=\nd"), b"a=bcd");
        assert_eq!(quoted_printable(b"caf=C3=A9 = x=  \r\ny"), "café = xy".as_bytes());
    }
}
