//! The MIME limits, checked before a mail is parsed: nesting (`limits.max_mime_depth`) and
//! parts (`limits.max_mime_parts`), over every kind of nesting (multipart in multipart,
//! `message/rfc822` and `message/global`, encoded or not, the messages of a digest).
//!
//! Input: the raw bytes of one mail. Output: `Ok` when its structure is within the limits,
//! else the limit error that rejects the mail. Why a separate pass: mail-parser 0.11 builds
//! the whole structure of a message before we see any of it, and has no limit of its own on
//! multipart nesting (only encoded `message/rfc822` recursion stops, at 3 levels), so a
//! 15 MB mail of 200,000 nested multiparts cost 245 MB and was walked to the report inside.
//!
//! How it stays faithful: it drives mail-parser's own [`MessageStream`] primitives (header
//! parser, boundary search, part decoders) through the same control flow as
//! `MessageParser::parse`, but keeps only the stack of open containers (kind and boundary)
//! and two counters, and stops at the first level or part beyond a limit. So it sees exactly
//! the structure the parser would build, for every quirk of boundary matching. Its cost
//! before a limit trips: one pass over the bytes up to that point, at most `max_mime_depth + 1`
//! boundaries held, the header fields of one part at a time, and the decoded bytes of one
//! encoded part at a time (encoded forwarded messages nest at most 3 deep, as in the parser).
//!
//! Levels are counted from `depth`, the nesting of the mail among containers (a mail in a zip
//! starts at 1): every multipart and every forwarded message is one more. Parts count every
//! header section the parser would read, containers included.

use mail_parser::parsers::MessageStream;
use mail_parser::{GetHeader, HeaderName, HeaderValue, MessageParser};

use crate::error::IngestError;
use crate::limits::Limits;

/// Encoded `message/rfc822` parts mail-parser parses recursively (its `MAX_NESTED_ENCODED`).
const ENCODED_MESSAGE_RECURSION: usize = 3;

/// Checks the nesting and the number of parts of the mail `raw` against `limits`.
pub(super) fn check(raw: &[u8], limits: &Limits, depth: u32) -> Result<(), IngestError> {
    let mut scan = Scan { parser: MessageParser::default(), limits, parts: 0, deepest: 0 };
    scan.message(raw, depth, ENCODED_MESSAGE_RECURSION)
}

/// What mail-parser's `mime_type` makes of a part, as far as structure goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Multipart { digest: bool },
    Message,
    Leaf,
}

/// A container being read: what it is and the boundary its parts end at.
#[derive(Debug)]
struct Level {
    kind: Kind,
    boundary: Option<Vec<u8>>,
}

struct Scan<'l> {
    parser: MessageParser,
    limits: &'l Limits,
    parts: u32,
    /// The deepest level a part was found at so far.
    deepest: u32,
}

impl Scan<'_> {
    /// One message (the mail itself, or the decoded body of an encoded forwarded message)
    /// whose own root is at level `base`. Mirrors `MessageParser::parse_` step by step.
    fn message(&mut self, raw: &[u8], base: u32, recursion: usize) -> Result<(), IngestError> {
        let mut stream = MessageStream::new(raw);
        let mut level = Level { kind: Kind::Message, boundary: None };
        // The enclosing levels, and for each whether it was entered by a nested message.
        let mut stack: Vec<(Level, bool)> = Vec::new();
        let mut headers = Vec::new();
        let mut first = true;
        'outer: loop {
            headers.clear();
            if !stream.parse_headers(&self.parser, &mut headers) {
                // A header section without a body is still a part.
                if first && !headers.is_empty() {
                    self.part(base)?;
                }
                break;
            }
            first = false;
            self.part(base.saturating_add(stack.len() as u32))?;
            let content_type = headers.header_value(&HeaderName::ContentType).and_then(|c| c.as_content_type());
            let mut kind = match content_type {
                Some(ct) if ct.ctype() == "multipart" => Kind::Multipart { digest: ct.subtype() == Some("digest") },
                Some(ct) if ct.ctype() == "message" && matches!(ct.subtype(), Some("rfc822" | "global")) => {
                    Kind::Message
                }
                Some(_) => Kind::Leaf,
                None if level.kind == (Kind::Multipart { digest: true }) => Kind::Message,
                None => Kind::Leaf,
            };
            if matches!(kind, Kind::Multipart { .. })
                && let Some(boundary) = content_type.and_then(|ct| ct.attribute("boundary"))
            {
                if stream.seek_next_part(boundary.as_bytes()) {
                    let inner = Level { kind, boundary: Some(boundary.as_bytes().to_vec()) };
                    stack.push((std::mem::replace(&mut level, inner), false));
                    stream.skip_crlf();
                    continue;
                }
                kind = Kind::Leaf;
            }
            let encoding = match headers.header_value(&HeaderName::ContentTransferEncoding) {
                Some(HeaderValue::Text(name)) if name.eq_ignore_ascii_case("base64") => Encoding::Base64,
                Some(HeaderValue::Text(name)) if name.eq_ignore_ascii_case("quoted-printable") => {
                    Encoding::QuotedPrintable
                }
                _ => Encoding::None,
            };
            if kind == Kind::Message && encoding == Encoding::None {
                // The forwarded message is read in place: its headers come next.
                let inner = Level { kind: Kind::Message, boundary: level.boundary.take() };
                stack.push((std::mem::replace(&mut level, inner), true));
                continue;
            }
            let boundary = level.boundary.as_deref().unwrap_or_default();
            let (end, body) = match encoding {
                Encoding::Base64 => stream.decode_base64_mime(boundary),
                Encoding::QuotedPrintable => stream.decode_quoted_printable_mime(boundary),
                Encoding::None => stream.mime_part(boundary),
            };
            if end == usize::MAX {
                // The parser's recovery: the part is raw text up to the next boundary.
                let (_, found) = stream.seek_part_end(level.boundary.as_deref());
                if !found {
                    level.boundary = None;
                }
            } else if kind == Kind::Message && recursion > 0 {
                // An encoded forwarded message, parsed from its decoded bytes: one level
                // deeper, as if it were read in place.
                let inner = base.saturating_add(stack.len() as u32).saturating_add(1);
                self.message(&body, inner, recursion - 1)?;
            }
            drop(body);
            if level.boundary.is_some() {
                loop {
                    if level.kind == Kind::Message {
                        // The end of a nested message's only part: back to its parent.
                        match stack.pop() {
                            Some((mut parent, true)) => {
                                parent.boundary = level.boundary.take();
                                level = parent;
                            }
                            _ => break 'outer,
                        }
                    }
                    if !stream.is_multipart_end() {
                        break; // the headers of the next part follow
                    }
                    // The end of a multipart: back to its parent, and on to the parent's
                    // next boundary if it has one.
                    if let Some((parent, _)) = stack.pop() {
                        level = parent;
                        if let Some(boundary) = level.boundary.as_deref()
                            && stream.seek_next_part_offset(boundary).is_some()
                        {
                            continue;
                        }
                    }
                    break 'outer;
                }
            } else if stream.offset() >= raw.len() {
                break;
            }
        }
        Ok(())
    }

    /// Counts one part (header section) found at `level`. A container is opened only after
    /// its own part was counted, and its first part is counted next, so the stack never holds
    /// more than one level beyond the limit.
    fn part(&mut self, level: u32) -> Result<(), IngestError> {
        self.parts += 1;
        self.deepest = self.deepest.max(level);
        if level > self.limits.max_mime_depth {
            return Err(IngestError::limit(
                "MIME nesting",
                format!("{} levels (limits.max_mime_depth)", self.limits.max_mime_depth),
            ));
        }
        if self.parts > self.limits.max_mime_parts {
            return Err(too_many_parts("message", self.limits));
        }
        Ok(())
    }
}

/// The error of `limits.max_mime_parts`, for one `scope` (a message, or a whole input).
pub(super) fn too_many_parts(scope: &str, limits: &Limits) -> IngestError {
    IngestError::limit(
        format!("the number of MIME parts in one {scope}"),
        format!("{} (limits.max_mime_parts)", limits.max_mime_parts),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    None,
    Base64,
    QuotedPrintable,
}

#[cfg(test)]
mod tests {
    use mail_parser::{Message, PartType};

    use super::*;

    /// (parts, deepest level) as the scan sees them, with no limit in the way.
    fn measure(raw: &[u8]) -> (u32, u32) {
        let limits = Limits { max_mime_depth: u32::MAX, max_mime_parts: u32::MAX, ..Limits::default() };
        let mut scan = Scan { parser: MessageParser::default(), limits: &limits, parts: 0, deepest: 0 };
        scan.message(raw, 0, ENCODED_MESSAGE_RECURSION).expect("no limit");
        (scan.parts, scan.deepest)
    }

    /// (parts, deepest level) of what mail-parser builds.
    fn parsed(message: &Message<'_>, root: u32) -> (u32, u32) {
        let mut levels = vec![root; message.parts.len()];
        let (mut parts, mut deepest) = (message.parts.len() as u32, root);
        for (index, part) in message.parts.iter().enumerate() {
            deepest = deepest.max(levels[index]);
            match &part.body {
                PartType::Multipart(children) => {
                    let inner = levels[index] + 1;
                    for &child in children {
                        if let Some(level) = levels.get_mut(child as usize) {
                            *level = inner;
                        }
                    }
                }
                PartType::Message(nested) => {
                    let (nested_parts, nested_deepest) = parsed(nested, levels[index] + 1);
                    parts += nested_parts;
                    deepest = deepest.max(nested_deepest);
                }
                _ => {}
            }
        }
        (parts, deepest)
    }

    const REPORT_PART: &str = "Content-Type: application/gzip; name=\"r.xml.gz\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA7OxL8pMSS1SyEvMTbVVSi1JzVOyAwCfMhhRFgAAAA==\r\n";

    fn nested_multiparts(depth: usize, same_boundary: bool) -> Vec<u8> {
        crate::testkit::nested_multiparts(REPORT_PART, depth, same_boundary)
    }

    /// `mail` forwarded as an attachment (`message/rfc822`), base64-encoded or not: two
    /// levels more, the forwarding multipart and the forwarded message.
    fn forward(mail: &[u8], encoded: bool, tag: usize) -> Vec<u8> {
        let body = if encoded { crate::testkit::base64(mail) } else { String::from_utf8_lossy(mail).into_owned() };
        let encoding = if encoded { "Content-Transfer-Encoding: base64\r\n" } else { "" };
        format!(
            "From: fwd{tag}@b.example\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"f{tag}\"\r\n\r\n--f{tag}\r\n\
             Content-Type: text/plain\r\n\r\nsee attached\r\n--f{tag}\r\n\
             Content-Type: message/rfc822\r\n{encoding}\r\n{body}\r\n--f{tag}--\r\n"
        )
        .into_bytes()
    }

    /// A report mail forwarded `depth` times.
    fn forwarded(depth: usize, encoded: bool) -> Vec<u8> {
        let report = format!("From: a@b.example\r\nSubject: report\r\nMIME-Version: 1.0\r\n{REPORT_PART}");
        (0..depth).fold(report.into_bytes(), |mail, tag| forward(&mail, encoded, tag))
    }

    /// A mail of `count` sibling parts.
    fn wide(count: usize) -> Vec<u8> {
        let mut mail =
            b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n".to_vec();
        for n in 0..count {
            mail.extend_from_slice(format!("--w\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n").as_bytes());
        }
        mail.extend_from_slice(b"--w--\r\n");
        mail
    }

    /// A digest whose parts have no Content-Type (so each is a message), nested `depth` times.
    fn digests(depth: usize) -> Vec<u8> {
        let mut mail = format!("From: a@b.example\r\n{REPORT_PART}").into_bytes();
        for level in 0..depth {
            let body = String::from_utf8_lossy(&mail).into_owned();
            mail = format!(
                "From: d{level}@b.example\r\nContent-Type: multipart/digest; boundary=d{level}\r\n\r\n\
                 --d{level}\r\n\r\n{body}\r\n--d{level}--\r\n"
            )
            .into_bytes();
        }
        mail
    }

    fn refusal(raw: &[u8]) -> Option<String> {
        check(raw, &Limits::default(), 0).err().map(|err| err.to_string())
    }

    const TOO_DEEP: &str = "MIME nesting exceeds the limit of 10 levels (limits.max_mime_depth)";
    const TOO_WIDE: &str = "the number of MIME parts in one message exceeds the limit of 500 (limits.max_mime_parts)";

    #[test]
    fn nested_multiparts_are_held_to_the_depth_limit() {
        assert_eq!(refusal(&nested_multiparts(5, false)), None);
        assert_eq!(refusal(&nested_multiparts(10, false)), None);
        for depth in [11, 1000, 200_000] {
            assert_eq!(refusal(&nested_multiparts(depth, false)).as_deref(), Some(TOO_DEEP), "depth {depth}");
        }
        assert_eq!(refusal(&nested_multiparts(1000, true)).as_deref(), Some(TOO_DEEP), "one boundary for all");
    }

    #[test]
    fn the_depth_counts_from_the_containers_around_the_mail() {
        let mail = nested_multiparts(10, false);
        assert!(check(&mail, &Limits::default(), 0).is_ok());
        assert!(check(&mail, &Limits::default(), 1).is_err(), "the same mail inside a zip");
    }

    #[test]
    fn forwarded_messages_and_digests_are_levels_too() {
        // Each forward is two levels: the forwarding multipart and the forwarded message.
        assert_eq!(refusal(&forwarded(5, false)), None);
        assert_eq!(refusal(&forwarded(6, false)).as_deref(), Some(TOO_DEEP));
        assert_eq!(refusal(&forwarded(3, true)), None);
        for encoded in [false, true] {
            assert_eq!(refusal(&forward(&nested_multiparts(8, false), encoded, 0)), None);
            let too_deep = forward(&nested_multiparts(9, false), encoded, 0);
            assert_eq!(refusal(&too_deep).as_deref(), Some(TOO_DEEP), "encoded: {encoded}");
        }
        assert_eq!(refusal(&digests(5)), None);
        assert_eq!(refusal(&digests(6)).as_deref(), Some(TOO_DEEP));
    }

    #[test]
    fn parts_are_held_to_the_parts_limit() {
        assert_eq!(refusal(&wide(499)), None, "499 parts and their multipart");
        assert_eq!(refusal(&wide(500)).as_deref(), Some(TOO_WIDE));
        assert_eq!(refusal(&wide(100_000)).as_deref(), Some(TOO_WIDE));
    }

    /// Every `.eml` of `samples/`.
    fn sample_mails() -> Vec<Vec<u8>> {
        let mut mails = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "eml") {
                    mails.push(std::fs::read(&path).expect("readable"));
                }
            }
        }
        mails.sort();
        assert!(mails.len() > 20, "the sample mails are found");
        mails
    }

    fn agrees(mail: &[u8]) {
        // mail-parser checks an invariant of its own with `debug_assert!` ("Invalid part ID")
        // that some mangled mails trip in a debug build; a release build parses on. There is
        // nothing to compare with then.
        let expected = std::panic::catch_unwind(|| {
            MessageParser::default().parse(mail).map_or((0, 0), |message| parsed(&message, 0))
        });
        let Ok(expected) = expected else { return };
        assert_eq!(measure(mail), expected, "{}", String::from_utf8_lossy(&mail[..mail.len().min(600)]));
    }

    /// The scan sees the structure mail-parser builds, part for part and level for level.
    #[test]
    fn the_scan_agrees_with_mail_parser() {
        let generated = [
            nested_multiparts(7, false),
            nested_multiparts(7, true),
            forwarded(3, false),
            forwarded(3, true),
            forwarded(5, true),
            digests(3),
            wide(40),
            // A boundary found in the middle of a line, and a multipart never closed.
            b"From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\nxx--y\r\n\r\none\r\n--y\r\n\r\ntwo\r\n--x--\r\n".to_vec(),
            // No boundary parameter, and a boundary that never appears.
            b"From: a@b\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n".to_vec(),
            b"From: a@b\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nno parts\r\n".to_vec(),
            // Broken base64 inside a multipart.
            b"From: a@b\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--z\r\n\r\nlast\r\n--z--\r\n".to_vec(),
            b"Subject: only headers\r\n".to_vec(),
        ];
        for mail in generated.iter().chain(&sample_mails()) {
            agrees(mail);
        }
    }

    /// The same on mails mangled where MIME structure lives: lines repeated, dropped and
    /// moved, boundaries cut short, line ends removed.
    #[test]
    fn the_scan_agrees_with_mail_parser_on_mangled_mails() {
        let mails = sample_mails();
        let mut rng = crate::testkit::Rng(0x6d69_6d65);
        for _ in 0..3000 {
            let mail = &mails[rng.below(mails.len() as u64) as usize];
            let mut lines: Vec<Vec<u8>> = mail.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            for _ in 0..=rng.below(6) {
                let at = rng.below(lines.len() as u64) as usize;
                let other = rng.below(lines.len() as u64) as usize;
                match rng.below(6) {
                    0 => {
                        let copy = lines[other].clone();
                        lines.insert(at, copy);
                    }
                    1 => drop(lines.remove(at)),
                    2 => lines.swap(at, other),
                    3 => {
                        let keep = rng.below(lines[at].len() as u64 + 1) as usize;
                        lines[at].truncate(keep);
                    }
                    4 => lines[at].retain(|&b| b != b'\n' && b != b'\r'),
                    _ => lines.insert(at, b"--\r\n".to_vec()),
                }
                if lines.is_empty() {
                    lines.push(b"From: a@b\r\n".to_vec());
                }
            }
            agrees(&lines.concat());
        }
    }
}
