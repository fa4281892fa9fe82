//! A small, fast, streaming XML reader for documents of known shape.
//!
//! Input: any `BufRead` of UTF-8 text (see [`crate::charset`]). The cursor hands out element
//! starts as [`Tag`]s matched on local names only, so RFC 7489 (no namespace), RFC 9990
//! (default or prefixed `urn:ietf:params:xml:ns:dmarc-2.0`) and legacy namespaces all read the
//! same. Unknown elements can be skipped or captured as XML text (RFC 9990 extensions).
//!
//! Why our own tokenizer: aggregate reports are a dozen element types repeated a million times,
//! and a general-purpose XML library spent three quarters of the import time of a large report
//! in its event machinery. This one scans a 256 KiB window with `memchr` and hands out slices of
//! it; only leaf values become strings.
//!
//! What it enforces: well-formed nesting (every end tag matches its start tag), terminated
//! markup, known entity references, and a depth limit. What it refuses outright: any DTD, which
//! rules out external entities (XXE) and entity expansion (billion laughs) at once. What it
//! tolerates, counting each for a warning: bytes that are not UTF-8 (read as windows-1252),
//! control characters XML forbids (removed), and a bare `&` (kept literally).

use std::io::BufRead;
use std::ops::Range;

use memchr::{memchr, memchr3, memmem};

use crate::error::{IngestError, from_io};

/// The read window starts small (most reports are a few KiB, and a zeroed 256 KiB buffer per
/// document showed up in profiles), grows to [`WINDOW`] as a document turns out large, and
/// beyond that only for single tokens larger than it.
const FIRST_WINDOW: usize = 8 * 1024;
const WINDOW: usize = 256 * 1024;
/// No single tag, text node or comment may be larger than this.
const MAX_TOKEN: usize = 64 << 20;

/// Element local names of both aggregate schemas (and a few historic ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    DateRange,
    Begin,
    End,
    Error,
    Generator,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Extension,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    Identities,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    AuthResults,
    Selector,
    Result,
    HumanResult,
    Scope,
    /// `xs:schema`, which one reporter leaves unclosed before `<feedback>`.
    Schema,
    Other,
}

impl Tag {
    fn from_local(local: &[u8]) -> Tag {
        match local {
            b"feedback" => Tag::Feedback,
            b"version" => Tag::Version,
            b"report_metadata" => Tag::ReportMetadata,
            b"org_name" => Tag::OrgName,
            b"email" => Tag::Email,
            b"extra_contact_info" => Tag::ExtraContactInfo,
            b"report_id" => Tag::ReportId,
            b"date_range" => Tag::DateRange,
            b"begin" => Tag::Begin,
            b"end" => Tag::End,
            b"error" => Tag::Error,
            b"generator" => Tag::Generator,
            b"policy_published" => Tag::PolicyPublished,
            b"domain" => Tag::Domain,
            b"adkim" => Tag::Adkim,
            b"aspf" => Tag::Aspf,
            b"p" => Tag::P,
            b"sp" => Tag::Sp,
            b"np" => Tag::Np,
            b"pct" => Tag::Pct,
            b"fo" => Tag::Fo,
            b"testing" => Tag::Testing,
            b"discovery_method" => Tag::DiscoveryMethod,
            b"extension" => Tag::Extension,
            b"record" => Tag::Record,
            b"row" => Tag::Row,
            b"source_ip" => Tag::SourceIp,
            b"count" => Tag::Count,
            b"policy_evaluated" => Tag::PolicyEvaluated,
            b"disposition" => Tag::Disposition,
            b"dkim" => Tag::Dkim,
            b"spf" => Tag::Spf,
            b"reason" => Tag::Reason,
            b"type" => Tag::Type,
            b"comment" => Tag::Comment,
            b"identifiers" => Tag::Identifiers,
            b"identities" => Tag::Identities,
            b"header_from" => Tag::HeaderFrom,
            b"envelope_from" => Tag::EnvelopeFrom,
            b"envelope_to" => Tag::EnvelopeTo,
            b"auth_results" => Tag::AuthResults,
            b"selector" => Tag::Selector,
            b"result" => Tag::Result,
            b"human_result" => Tag::HumanResult,
            b"scope" => Tag::Scope,
            b"schema" => Tag::Schema,
            _ => Tag::Other,
        }
    }
}

/// What the cursor found next among the children of the current element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A child element started; its qualified name is in [`XmlCursor::name`].
    Start(Tag),
    /// The current element ended.
    End,
    /// The document ended.
    Eof,
}

/// A token: ranges into the window, valid until the next call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `<name attributes>`; `raw` is the whole tag including `<` and `>`.
    Start {
        name: Range<usize>,
        content: Range<usize>,
        empty: bool,
        raw: Range<usize>,
    },
    End {
        raw: Range<usize>,
    },
    Text(Range<usize>),
    CData {
        inner: Range<usize>,
        raw: Range<usize>,
    },
    Eof,
}

pub(crate) struct XmlCursor<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Bytes dropped from the front of the window so far (for error positions).
    consumed: u64,
    /// Names of the open elements, concatenated; `open_ends[i]` is where name `i` ends.
    open_names: Vec<u8>,
    open_ends: Vec<usize>,
    /// An empty element `<x/>` was handed out as a start; its end comes next.
    pending_end: bool,
    max_depth: u32,
    /// The qualified name and attributes of the last start tag, as written.
    start: String,
    name_len: usize,
    /// Text outside of any known leaf element was seen (and ignored).
    pub stray_text: bool,
    /// Control characters XML 1.0 forbids (BEL in a Yahoo comment, NUL) removed from text.
    pub control_chars_removed: u64,
    /// Bytes of text that were not UTF-8, read as windows-1252.
    pub invalid_utf8_bytes: u64,
    /// `&` not starting an entity reference, kept as a literal ampersand.
    pub bare_ampersands: u64,
    /// What came before the XML declaration when it was not at the very start: `whitespace`,
    /// `a comment` or `text` (XML wants the declaration first; we read on).
    pub before_declaration: Option<&'static str>,
    /// A comment was skipped before the first declaration or element.
    prolog_comment: bool,
    /// The first declaration or element was seen: the prolog is over.
    prolog_done: bool,
}

impl<R> std::fmt::Debug for XmlCursor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlCursor").field("depth", &self.open_ends.len()).finish_non_exhaustive()
    }
}

impl<R: BufRead> XmlCursor<R> {
    pub fn new(input: R, max_depth: u32) -> Self {
        XmlCursor {
            input,
            buf: vec![0; FIRST_WINDOW],
            pos: 0,
            end: 0,
            eof: false,
            consumed: 0,
            open_names: Vec::with_capacity(256),
            open_ends: Vec::with_capacity(16),
            pending_end: false,
            max_depth,
            start: String::new(),
            name_len: 0,
            stray_text: false,
            control_chars_removed: 0,
            invalid_utf8_bytes: 0,
            bare_ampersands: 0,
            before_declaration: None,
            prolog_comment: false,
            prolog_done: false,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.input
    }

    /// Qualified name of the last element started (`d:record`, `record`).
    pub fn name(&self) -> &str {
        &self.start[..self.name_len]
    }

    /// Prefix of the last element started, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.name().split_once(':').map(|(prefix, _)| prefix)
    }

    /// Value of an attribute of the last element started, by qualified name.
    pub fn attribute(&self, wanted: &str) -> Option<String> {
        let mut rest = self.start[self.name_len..].trim_start();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            let value_end = after[1..].find(quote)? + 1;
            if key.trim() == wanted {
                return Some(decode_attribute(&after[1..value_end]));
            }
            rest = after[value_end + 1..].trim_start();
        }
        None
    }

    /// Byte offset of the cursor in the document.
    pub fn position(&self) -> u64 {
        self.consumed + self.pos as u64
    }

    fn malformed(&self, reason: impl Into<String>) -> IngestError {
        IngestError::Xml { position: self.position(), reason: reason.into() }
    }

    /// Moves the unread bytes to the front of the window and reads more; grows the window for
    /// tokens larger than it. Returns false at the end of the input.
    fn fill(&mut self) -> Result<bool, IngestError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.consumed += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let large_document = self.consumed > 4 * self.buf.len() as u64 && self.buf.len() < WINDOW;
        if self.end == self.buf.len() || large_document {
            if self.buf.len() >= MAX_TOKEN {
                return Err(IngestError::limit("a single XML tag or text", "64 MiB"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(from_io(err, "report document")),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    /// Offset (from `pos`) of the first occurrence of `needle` at or after `from`, reading
    /// more input as needed; `None` at the end of the input.
    fn find(&mut self, needle: &[u8], mut from: usize) -> Result<Option<usize>, IngestError> {
        loop {
            // `from` may lie beyond what has been read so far (a document cut short).
            let window = &self.buf[(self.pos + from).min(self.end)..self.end];
            let found = if needle.len() == 1 { memchr(needle[0], window) } else { memmem::find(window, needle) };
            if let Some(at) = found {
                return Ok(Some(from + at));
            }
            from = (self.end - self.pos).saturating_sub(needle.len() - 1).max(from);
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Offset (from `pos`) of the `>` closing the start tag at `pos`, skipping quoted values.
    fn find_tag_end(&mut self) -> Result<Option<usize>, IngestError> {
        let mut at = 1;
        let mut quote: Option<u8> = None;
        loop {
            let window = &self.buf[self.pos + at..self.end];
            let hit = match quote {
                Some(q) => memchr(q, window).map(|i| (i, q)),
                None => memchr3(b'>', b'"', b'\'', window).map(|i| (i, window[i])),
            };
            match hit {
                Some((i, b'>')) if quote.is_none() => return Ok(Some(at + i)),
                Some((i, q)) => {
                    quote = if quote.is_some() { None } else { Some(q) };
                    at += i + 1;
                }
                None => {
                    at = self.end - self.pos;
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn need(&mut self, bytes: usize) -> Result<bool, IngestError> {
        while self.end - self.pos < bytes {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.buf[self.pos..self.end].starts_with(prefix)
    }

    /// The next token, with comments, processing instructions and the declaration skipped.
    fn token(&mut self) -> Result<Token, IngestError> {
        loop {
            if self.pos >= self.end && !self.fill()? {
                return Ok(Token::Eof);
            }
            if self.buf[self.pos] != b'<' {
                let stop = self.find(b"<", 0)?.unwrap_or(self.end - self.pos);
                let text = self.pos..self.pos + stop;
                self.pos += stop;
                return Ok(Token::Text(text));
            }
            self.need(2)?;
            match self.buf.get(self.pos + 1).copied() {
                Some(b'/') => {
                    let close = self
                        .find(b">", 2)?
                        .ok_or_else(|| self.malformed("document ends inside an end tag (truncated?)"))?;
                    let raw = self.pos..self.pos + close + 1;
                    self.pos += close + 1;
                    return Ok(Token::End { raw });
                }
                Some(b'?') => {
                    if !self.prolog_done {
                        self.prolog_done = true;
                        self.need(6)?;
                        let declaration = self.starts_with(b"<?xml")
                            && self.buf.get(self.pos + 5).is_some_and(|&b| b.is_ascii_whitespace() || b == b'?');
                        if declaration && self.position() > 0 {
                            self.before_declaration = Some(if self.stray_text {
                                "text"
                            } else if self.prolog_comment {
                                "a comment"
                            } else {
                                "whitespace"
                            });
                        }
                    }
                    let close = self
                        .find(b"?>", 2)?
                        .ok_or_else(|| self.malformed("document ends inside a processing instruction (truncated?)"))?;
                    self.pos += close + 2;
                }
                Some(b'!') => {
                    self.need(9)?;
                    if self.starts_with(b"<!--") {
                        let close = self
                            .find(b"-->", 4)?
                            .ok_or_else(|| self.malformed("document ends inside a comment (truncated?)"))?;
                        self.pos += close + 3;
                        self.prolog_comment |= !self.prolog_done;
                    } else if self.starts_with(b"<![CDATA[") {
                        let close = self
                            .find(b"]]>", 9)?
                            .ok_or_else(|| self.malformed("document ends inside a CDATA section (truncated?)"))?;
                        let (inner, raw) = (self.pos + 9..self.pos + close, self.pos..self.pos + close + 3);
                        self.pos += close + 3;
                        return Ok(Token::CData { inner, raw });
                    } else if self.buf[self.pos..self.end.min(self.pos + 9)].eq_ignore_ascii_case(b"<!DOCTYPE") {
                        return Err(self.malformed(
                            "document type declarations (DTDs) are refused: they enable external entities (XXE) \
                             and entity expansion bombs",
                        ));
                    } else {
                        return Err(self.malformed("unknown markup declaration"));
                    }
                }
                Some(_) => {
                    let close = self
                        .find_tag_end()?
                        .ok_or_else(|| self.malformed("document ends inside a start tag (truncated?)"))?;
                    let raw = self.pos..self.pos + close + 1;
                    let inner = &self.buf[self.pos + 1..self.pos + close];
                    let empty = inner.last() == Some(&b'/');
                    let content = self.pos + 1..self.pos + close - usize::from(empty);
                    let name_len =
                        inner.iter().position(|b| b.is_ascii_whitespace() || *b == b'/').unwrap_or(inner.len());
                    if name_len == 0 || inner[0].is_ascii_digit() || matches!(inner[0], b'-' | b'.') {
                        return Err(self.malformed("invalid element name"));
                    }
                    let name = self.pos + 1..self.pos + 1 + name_len;
                    self.pos += close + 1;
                    self.prolog_done = true;
                    return Ok(Token::Start { name, content, empty, raw });
                }
                None => return Err(self.malformed("document ends with `<`")),
            }
        }
    }

    /// Records the element just started as open; checks the depth limit.
    fn open(&mut self, name: Range<usize>) -> Result<(), IngestError> {
        if self.open_ends.len() as u32 >= self.max_depth {
            return Err(IngestError::limit("XML element nesting", format!("{} levels", self.max_depth)));
        }
        self.open_names.extend_from_slice(&self.buf[name]);
        self.open_ends.push(self.open_names.len());
        Ok(())
    }

    /// Checks an end tag against the innermost open element and closes it.
    fn close(&mut self, raw: Option<Range<usize>>) -> Result<(), IngestError> {
        let Some(&name_end) = self.open_ends.last() else {
            return Err(self.malformed("end tag without a start tag"));
        };
        let name_start = self.open_ends.len().checked_sub(2).map_or(0, |i| self.open_ends[i]);
        if let Some(raw) = raw {
            let found = trim_ascii(&self.buf[raw.start + 2..raw.end - 1]);
            if found != &self.open_names[name_start..name_end] {
                return Err(IngestError::Xml {
                    position: self.consumed + raw.start as u64,
                    reason: format!(
                        "expected </{}>, found </{}>",
                        String::from_utf8_lossy(&self.open_names[name_start..name_end]),
                        String::from_utf8_lossy(found)
                    ),
                });
            }
        }
        self.open_ends.pop();
        self.open_names.truncate(name_start);
        Ok(())
    }

    /// Advances to the next child element start, the end of the current element, or EOF.
    /// Text, comments and processing instructions between elements are skipped.
    pub fn step(&mut self) -> Result<Step, IngestError> {
        if self.pending_end {
            self.pending_end = false;
            self.close(None)?;
            return Ok(Step::End);
        }
        loop {
            match self.token()? {
                Token::Start { name, content, empty, .. } => {
                    let qualified = &self.buf[name.clone()];
                    let local = qualified.iter().rposition(|&b| b == b':').map_or(qualified, |at| &qualified[at + 1..]);
                    let tag = Tag::from_local(local);
                    self.start.clear();
                    match std::str::from_utf8(&self.buf[content.clone()]) {
                        Ok(text) => self.start.push_str(text),
                        Err(_) => self.start.push_str(&String::from_utf8_lossy(&self.buf[content])),
                    }
                    self.name_len =
                        self.start.find(|c: char| c.is_ascii_whitespace() || c == '/').unwrap_or(self.start.len());
                    self.open(name)?;
                    self.pending_end = empty;
                    return Ok(Step::Start(tag));
                }
                Token::End { raw } => {
                    self.close(Some(raw))?;
                    return Ok(Step::End);
                }
                Token::Eof => return Ok(Step::Eof),
                Token::Text(range) => {
                    if !self.buf[range].iter().all(u8::is_ascii_whitespace) {
                        self.stray_text = true;
                    }
                }
                Token::CData { .. } => self.stray_text = true,
            }
        }
    }

    /// Reads the text content of the element just started, up to and including its end
    /// tag, trimmed. Child elements inside a leaf are skipped; `true` in the result says so.
    pub fn text(&mut self) -> Result<(String, bool), IngestError> {
        let mut out = String::new();
        if self.pending_end {
            self.pending_end = false;
            self.close(None)?;
            return Ok((out, false));
        }
        let mut nested = false;
        loop {
            match self.token()? {
                Token::Text(range) => self.decode_text(range, &mut out)?,
                Token::CData { inner, .. } => self.push_utf8(inner, &mut out),
                Token::End { raw } => {
                    self.close(Some(raw))?;
                    let trimmed = out.trim();
                    if trimmed.len() != out.len() {
                        out = trimmed.to_owned();
                    }
                    if out.contains('\r') {
                        out = out.replace("\r\n", "\n").replace('\r', "\n");
                    }
                    return Ok((out, nested));
                }
                Token::Start { name, empty, .. } => {
                    nested = true;
                    self.open(name)?;
                    if empty {
                        self.close(None)?;
                    } else {
                        self.skip()?;
                    }
                }
                Token::Eof => {
                    return Err(self.malformed(format!("document ends inside <{}> (truncated?)", self.name())));
                }
            }
        }
    }

    /// Appends a text token, resolving entity references.
    fn decode_text(&mut self, range: Range<usize>, out: &mut String) -> Result<(), IngestError> {
        let mut at = range.start;
        while let Some(amp) = memchr(b'&', &self.buf[at..range.end]) {
            self.push_utf8(at..at + amp, out);
            let reference_start = at + amp + 1;
            let semicolon = memchr(b';', &self.buf[reference_start..range.end]).filter(|&len| len <= 32);
            match semicolon {
                Some(len) => {
                    let reference = &self.buf[reference_start..reference_start + len];
                    let resolved = resolve_reference(reference).map_err(|reason| self.malformed(reason))?;
                    out.push(resolved);
                    at = reference_start + len + 1;
                }
                None => {
                    self.bare_ampersands += 1;
                    out.push('&');
                    at = reference_start;
                }
            }
        }
        self.push_utf8(at..range.end, out);
        Ok(())
    }

    /// Appends bytes as text: UTF-8 as is, other bytes read as windows-1252, forbidden control
    /// characters removed.
    fn push_utf8(&mut self, range: Range<usize>, out: &mut String) {
        let mut bytes = &self.buf[range];
        loop {
            match std::str::from_utf8(bytes) {
                Ok(valid) => {
                    push_without_controls(valid, out, &mut self.control_chars_removed);
                    return;
                }
                Err(err) => {
                    let (valid, rest) = bytes.split_at(err.valid_up_to());
                    push_without_controls(
                        std::str::from_utf8(valid).unwrap_or_default(),
                        out,
                        &mut self.control_chars_removed,
                    );
                    let bad = err.error_len().unwrap_or(rest.len());
                    for &byte in &rest[..bad] {
                        out.push(crate::charset::windows_1252(byte));
                    }
                    self.invalid_utf8_bytes += bad as u64;
                    bytes = &rest[bad..];
                }
            }
        }
    }

    /// Skips the rest of the element just started.
    pub fn skip(&mut self) -> Result<(), IngestError> {
        self.capture_into(None)
    }

    /// Reads the element just started, with everything inside it, back out as XML text.
    pub fn capture(&mut self) -> Result<String, IngestError> {
        let mut out = String::new();
        out.push('<');
        out.push_str(&self.start);
        if self.pending_end {
            out.push_str("/>");
        } else {
            out.push('>');
        }
        self.capture_into(Some(&mut out))?;
        Ok(out)
    }

    fn capture_into(&mut self, mut out: Option<&mut String>) -> Result<(), IngestError> {
        if self.pending_end {
            self.pending_end = false;
            return self.close(None);
        }
        let base = self.open_ends.len();
        loop {
            let token = self.token()?;
            if let Some(out) = out.as_deref_mut() {
                let raw = match &token {
                    Token::Start { raw, .. } | Token::End { raw } | Token::CData { raw, .. } => raw.clone(),
                    Token::Text(range) => range.clone(),
                    Token::Eof => 0..0,
                };
                out.push_str(&String::from_utf8_lossy(&self.buf[raw]));
            }
            match token {
                Token::Start { name, empty, .. } => {
                    self.open(name)?;
                    if empty {
                        self.close(None)?;
                    }
                }
                Token::End { raw } => {
                    self.close(Some(raw))?;
                    if self.open_ends.len() < base {
                        return Ok(());
                    }
                }
                Token::Text(_) | Token::CData { .. } => {}
                Token::Eof => return Err(self.malformed("document ends inside an element (truncated?)")),
            }
        }
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The C0 controls XML 1.0 forbids: all but tab, line feed and carriage return.
fn is_forbidden_control(byte: u8) -> bool {
    byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r')
}

fn push_without_controls(text: &str, out: &mut String, removed: &mut u64) {
    if !text.bytes().any(is_forbidden_control) {
        out.push_str(text);
        return;
    }
    for ch in text.chars() {
        if ch.is_ascii() && is_forbidden_control(ch as u8) {
            *removed += 1;
        } else {
            out.push(ch);
        }
    }
}

/// Resolves the reference between `&` and `;`: the five predefined entities and character
/// references. Anything else would need a DTD, which we never read.
fn resolve_reference(reference: &[u8]) -> Result<char, String> {
    match reference {
        b"lt" => return Ok('<'),
        b"gt" => return Ok('>'),
        b"amp" => return Ok('&'),
        b"apos" => return Ok('\''),
        b"quot" => return Ok('"'),
        _ => {}
    }
    let text = String::from_utf8_lossy(reference);
    let number = match text.strip_prefix("#x").or_else(|| text.strip_prefix("#X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.strip_prefix('#').and_then(|dec| dec.parse::<u32>().ok()),
    };
    match number {
        Some(code) => {
            char::from_u32(code).filter(|&c| c != '\0').ok_or_else(|| format!("invalid character reference &{text};"))
        }
        None => Err(format!("undefined entity &{text}; (no DTD is read, so only the predefined entities exist)")),
    }
}

/// Attribute values: the predefined entities and character references.
fn decode_attribute(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match after.find(';').and_then(|len| resolve_reference(&after.as_bytes()[..len]).ok().map(|c| (c, len))) {
            Some((ch, len)) => {
                out.push(ch);
                rest = &after[len + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(text: &str) -> XmlCursor<std::io::BufReader<&[u8]>> {
        // A tiny window size is not configurable; a one-byte reader exercises refills instead.
        XmlCursor::new(std::io::BufReader::with_capacity(1, text.as_bytes()), 8)
    }

    #[test]
    fn elements_text_and_entities() -> Result<(), IngestError> {
        let mut xml = cursor(
            "<?xml version='1.0'?><!-- hi --><a x='1>2' y=\"&amp;\"><b> one &amp; &#x41;&#66; <![CDATA[<c>]]> </b><end/></a>",
        );
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.name(), "a");
        assert_eq!(xml.attribute("x").as_deref(), Some("1>2"));
        assert_eq!(xml.attribute("y").as_deref(), Some("&"));
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.text()?, ("one & AB <c>".to_owned(), false));
        assert_eq!(xml.step()?, Step::Start(Tag::End));
        assert_eq!(xml.step()?, Step::End);
        assert_eq!(xml.step()?, Step::End);
        assert_eq!(xml.step()?, Step::Eof);
        Ok(())
    }

    #[test]
    fn what_comes_before_the_declaration_is_noticed() -> Result<(), IngestError> {
        for (text, expected) in [
            ("<?xml version='1.0'?><!-- after --><a/>", None),
            ("<a/>", None),
            ("\r\n  <?xml version='1.0'?><a/>", Some("whitespace")),
            ("<!-- made by a tool -->\n<?xml version='1.0'?><a/>", Some("a comment")),
            ("junk <?xml version='1.0'?><a/>", Some("text")),
        ] {
            let mut xml = cursor(text);
            assert_eq!(xml.step()?, Step::Start(Tag::Other), "{text}");
            assert_eq!(xml.before_declaration, expected, "{text}");
        }
        Ok(())
    }

    #[test]
    fn mismatched_and_unterminated_markup_is_refused() {
        let mut xml = cursor("<a><b></a>");
        assert!(xml.step().is_ok() && xml.step().is_ok());
        let err = xml.step().expect_err("mismatched");
        assert!(err.to_string().contains("expected </b>, found </a>"), "{err}");
        let mut xml = cursor("<a><b attr='x");
        let _ = xml.step();
        assert!(xml.step().is_err());
        let mut xml = cursor("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>");
        assert!(xml.step().expect_err("DTD").to_string().contains("DTD"));
        let mut xml = cursor("<a>&unknown;</a>");
        let _ = xml.step();
        assert!(xml.text().expect_err("entity").to_string().contains("undefined entity"));
    }

    #[test]
    fn repairs_are_counted() -> Result<(), IngestError> {
        let mut xml = XmlCursor::new(&b"<a>\x91q\x92 \x07 fish & chips</a>"[..], 8);
        xml.step()?;
        assert_eq!(xml.text()?.0, "\u{2018}q\u{2019}  fish & chips");
        assert_eq!((xml.invalid_utf8_bytes, xml.control_chars_removed, xml.bare_ampersands), (2, 1, 1));
        Ok(())
    }

    #[test]
    fn capture_keeps_the_markup() -> Result<(), IngestError> {
        let mut xml = cursor("<r><ext:a xmlns:ext='urn:x'>v<ext:b/></ext:a><n/></r>");
        xml.step()?;
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.prefix(), Some("ext"));
        assert_eq!(xml.capture()?, "<ext:a xmlns:ext='urn:x'>v<ext:b/></ext:a>");
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.capture()?, "<n/>");
        assert_eq!(xml.step()?, Step::End);
        Ok(())
    }

    #[test]
    fn lines_ending_in_cr_alone_are_blanks_and_line_breaks() -> Result<(), IngestError> {
        let mut xml = cursor("<?xml version=\"1.0\"?>\r<a>\r\t<b>one\rtwo\r</b>\r</a>\r");
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.step()?, Step::Start(Tag::Other));
        assert_eq!(xml.text()?, ("one\ntwo".to_owned(), false));
        assert_eq!(xml.step()?, Step::End);
        assert_eq!(xml.step()?, Step::Eof);
        assert!(!xml.stray_text);
        Ok(())
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!("{}{}", "<a>".repeat(20), "</a>".repeat(20));
        let mut xml = cursor(&deep);
        let err = (0..20).find_map(|_| xml.step().err()).expect("too deep");
        assert!(err.to_string().contains("nesting"), "{err}");
    }
}
