//! Finds the report documents inside an input.
//!
//! Input: an [`Envelope`] (bytes or a file). Output: calls on a [`Visitor`] for every XML or
//! JSON document found (streamed, never fully in memory unless a container needs it), every
//! mail (which the visitor may take whole, as a failure report), every part that could not be
//! unpacked, and every part that is simply not a report. The only visitor is
//! [`crate::read`], which decides what each document is.
//!
//! Content is sniffed by its bytes, never by names or MIME types (reporters get those wrong):
//! gzip (every member), zip (every entry, directories and junk skipped, nothing ever written
//! to disk), MIME mail (every leaf part, forwarded `message/rfc822` included), XML, JSON.
//! Containers nest (zip in mail, gzip in zip) up to `limits.max_nesting`; every decompressed
//! byte counts against the input's budget (see [`decompress`]).

mod decompress;
pub(crate) mod mime;
mod mime_scan;
pub(crate) mod transfer;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, Write};
use std::path::Path;

use decompress::{Budget, Capped, CompressedSize, Counting, GzipMembers};

use crate::envelope::{Envelope, Payload};
use crate::error::{IngestError, from_io};
use crate::limits::{Limits, format_size};

const STREAM_BUFFER: usize = 64 * 1024;
const SNIFF_BYTES: usize = 1024;

/// What kind of document a [`Document`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Xml,
    Json,
}

/// A document found in an input, to be parsed by the visitor.
pub struct Document<'a> {
    /// Where in the input: `attachment part 2 (application/zip) > report.xml`.
    pub location: &'a str,
    pub kind: DocumentKind,
    /// The document's bytes, decompressed, streaming. Reading may fail with a limit or a
    /// corruption error from a decompressor below.
    pub reader: &'a mut dyn BufRead,
    /// How many more bytes the input may hold in memory while the document is read, for a
    /// visitor that holds it whole (a TLS report) rather than streaming it.
    pub memory: u64,
}

impl std::fmt::Debug for Document<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("location", &self.location).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// Receives what [`unpack`] finds. Returning an error stops the walk (for failures of the
/// visitor itself, such as the database going away; bad content is not an error here).
pub(crate) trait Visitor {
    type Error;

    /// A document that may be a report.
    fn document(&mut self, document: Document<'_>) -> Result<(), Self::Error>;

    /// A mail, before its parts are walked: `true` when the visitor took it whole (a failure
    /// report), `false` to have its parts walked. `base` is where the message's raw bytes start
    /// in the stream its part offsets refer to (see `mime`).
    fn message(&mut self, location: &str, message: &mail_parser::Message<'_>, base: usize)
    -> Result<bool, Self::Error>;

    /// A part that could not be unpacked (damaged archive, limit exceeded).
    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), Self::Error>;

    /// Something that is not a report (text, HTML, an image).
    fn skipped(&mut self, location: &str, what: &str) -> Result<(), Self::Error>;

    /// A tolerated oddity of the container (junk after gzip data, ...).
    fn warning(&mut self, code: &'static str, message: String);

    /// Holding the part at `location` in memory would take the input past what it may hold:
    /// `Err` to stop reading (for a reader that will read the input another way), `Ok` to
    /// have the part recorded as a problem and go on.
    fn over_memory(&mut self, location: &str) -> Result<(), Self::Error>;
}

/// Walks `envelope` and reports what it contains to `visitor`, holding at most `memory` bytes of
/// it in memory at once (see [`Unpacker::holding`]).
pub(crate) fn unpack<V: Visitor>(
    envelope: &Envelope,
    limits: &Limits,
    memory: u64,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let mut unpacker = Unpacker { visitor, limits, budget: Budget::new(limits), mime_parts: 0, held: 0, memory };
    let root = envelope.origin.root_label();
    match &envelope.payload {
        Payload::Bytes(bytes) => {
            unpacker.holding(bytes.len() as u64, &root, |unpacker| unpacker.bytes(bytes, &root, 0))
        }
        Payload::File(path) => unpacker.file(path, &root),
    }
}

/// What the first bytes of some content say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Empty,
    Gzip,
    Zip,
    Mail,
    Xml,
    Html,
    Json,
    Text,
    Binary,
}

fn sniff(head: &[u8]) -> Content {
    if head.is_empty() {
        return Content::Empty;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Content::Gzip;
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") || head.starts_with(b"PK\x07\x08") {
        return Content::Zip;
    }
    if crate::charset::utf16_xml(head).is_some() {
        return Content::Xml;
    }
    let text = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    let text = &text[text.iter().take_while(|b| b.is_ascii_whitespace()).count()..];
    match text.first() {
        Some(b'<') => {
            let lower: Vec<u8> = text.iter().take(16).map(u8::to_ascii_lowercase).collect();
            if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
                Content::Html
            } else {
                Content::Xml
            }
        }
        Some(b'{') | Some(b'[') => Content::Json,
        _ if looks_like_mail(head) => Content::Mail,
        _ if head.contains(&0) => Content::Binary,
        _ => Content::Text,
    }
}

/// A mail starts with a header field (`Name: value`), possibly after an mbox `From ` line
/// and blank lines (which [`mime`] skips with a warning).
fn looks_like_mail(head: &[u8]) -> bool {
    let head = skip_mbox_from_line(head);
    let head = &head[mime::blank_lines_before_headers(head)..];
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| b.is_ascii_graphic() && b != b':'),
        _ => false,
    }
}

/// Drops the `From sender date` line an mbox or a Postfix `pipe` puts before a message.
pub(crate) fn skip_mbox_from_line(bytes: &[u8]) -> &[u8] {
    if bytes.starts_with(b"From ") {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => &bytes[end + 1..],
            None => &[],
        }
    } else {
        bytes
    }
}

struct Unpacker<'a, V> {
    visitor: &'a mut V,
    limits: &'a Limits,
    budget: Budget,
    mime_parts: u32,
    /// Bytes of the input held in memory at this moment: the input itself when it came in
    /// memory, mails and small archives read from a stream, decoded MIME parts, and the parsed
    /// structure of each mail walked (counted as large as its text).
    held: u64,
    /// The most that may be held.
    memory: u64,
}

/// Archives read from a stream up to this size are held in memory; larger ones go to a
/// temporary file (a zip needs random access), so that nested archives never sit in memory.
const ZIP_IN_MEMORY: u64 = 1 << 20;

impl<V: Visitor> Unpacker<'_, V> {
    /// Runs `work` with `bytes` more of the input held in memory; when that would take the
    /// input past what it may hold, the visitor is told and the part recorded as a problem.
    fn holding(
        &mut self,
        bytes: u64,
        location: &str,
        work: impl FnOnce(&mut Self) -> Result<(), V::Error>,
    ) -> Result<(), V::Error> {
        if self.held.saturating_add(bytes) > self.memory {
            self.visitor.over_memory(location)?;
            return self.visitor.problem(
                location,
                IngestError::limit(
                    format!("holding {} of one input in memory at once", format_size(self.held.saturating_add(bytes))),
                    format!("{} (half of limits.max_memory, less what streaming takes)", format_size(self.memory)),
                ),
            );
        }
        self.held += bytes;
        let done = work(self);
        self.held -= bytes;
        done
    }

    fn nested(&mut self, location: &str, depth: u32) -> Result<bool, V::Error> {
        if depth > self.limits.max_nesting {
            self.visitor.problem(
                location,
                IngestError::limit(
                    "container nesting",
                    format!("{} levels (limits.max_nesting)", self.limits.max_nesting),
                ),
            )?;
            return Ok(false);
        }
        Ok(true)
    }

    fn file(&mut self, path: &Path, location: &str) -> Result<(), V::Error> {
        let opened = File::open(path).and_then(|mut file| {
            let mut head = Vec::with_capacity(SNIFF_BYTES);
            (&mut file).take(SNIFF_BYTES as u64).read_to_end(&mut head)?;
            file.rewind()?;
            let size = file.metadata()?.len();
            Ok((file, head, size))
        });
        let (file, head, size) = match opened {
            Ok(opened) => opened,
            Err(err) => return self.visitor.problem(location, from_io(err, &path.display().to_string())),
        };
        match sniff(&head) {
            Content::Zip => self.zip(file, location, 0),
            Content::Mail => {
                if size > self.limits.max_message_bytes {
                    return self.visitor.problem(location, too_big("mail file", size, self.limits));
                }
                self.holding(size, location, |unpacker| {
                    let mut bytes = Vec::with_capacity(size as usize);
                    if let Err(err) = BufReader::new(file).read_to_end(&mut bytes) {
                        return unpacker.visitor.problem(location, from_io(err, &path.display().to_string()));
                    }
                    unpacker.bytes(&bytes, location, 0)
                })
            }
            _ => self.stream(&mut BufReader::with_capacity(STREAM_BUFFER, file), location, 0),
        }
    }

    fn bytes(&mut self, bytes: &[u8], location: &str, depth: u32) -> Result<(), V::Error> {
        if !self.nested(location, depth)? {
            return Ok(());
        }
        match sniff(&bytes[..bytes.len().min(SNIFF_BYTES)]) {
            Content::Zip => self.zip(Cursor::new(bytes), location, depth),
            Content::Mail => mime::walk(self, skip_mbox_from_line(bytes), location, depth),
            Content::Gzip => self.gzip(&mut &bytes[..], location, depth),
            content => self.leaf(content, &mut &bytes[..], location),
        }
    }

    fn stream(&mut self, reader: &mut dyn BufRead, location: &str, depth: u32) -> Result<(), V::Error> {
        if !self.nested(location, depth)? {
            return Ok(());
        }
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        if let Err(err) = (&mut *reader).take(SNIFF_BYTES as u64).read_to_end(&mut head) {
            return self.visitor.problem(location, from_io(err, location));
        }
        match sniff(&head) {
            // A mail needs its whole text: read it in, as far as the input may hold it.
            Content::Mail => {
                let cap = self.limits.max_message_bytes.min(self.memory.saturating_sub(self.held));
                let mut bytes = head;
                if let Err(err) =
                    (&mut *reader).take((cap + 1).saturating_sub(bytes.len() as u64)).read_to_end(&mut bytes)
                {
                    return self.visitor.problem(location, from_io(err, location));
                }
                let size = bytes.len() as u64;
                if size > self.limits.max_message_bytes {
                    return self.visitor.problem(location, too_big("mail", size, self.limits));
                }
                self.holding(size, location, |unpacker| unpacker.bytes(&bytes, location, depth))
            }
            // A zip needs random access: small ones are read in, larger ones written to a
            // temporary file.
            Content::Zip => {
                let mut bytes = head;
                let small = (ZIP_IN_MEMORY + 1).saturating_sub(bytes.len() as u64);
                if let Err(err) = (&mut *reader).take(small).read_to_end(&mut bytes) {
                    return self.visitor.problem(location, from_io(err, location));
                }
                if bytes.len() as u64 <= ZIP_IN_MEMORY {
                    let size = bytes.len() as u64;
                    return self.holding(size, location, |unpacker| unpacker.bytes(&bytes, location, depth));
                }
                match self.spill(bytes, reader, location) {
                    Ok(file) => self.zip(file, location, depth),
                    Err(err) => self.visitor.problem(location, err),
                }
            }
            content => {
                let mut joined = BufReader::with_capacity(STREAM_BUFFER, Cursor::new(head).chain(reader));
                match content {
                    Content::Gzip => self.gzip(&mut joined, location, depth),
                    _ => self.leaf(content, &mut joined, location),
                }
            }
        }
    }

    /// `head` and the rest of `reader` (an archive) in an anonymous temporary file, which is
    /// gone once closed. What comes from a stream here is decompressed, so the input's
    /// decompression budget bounds it (`limits.max_decompressed_bytes`).
    fn spill(&mut self, head: Vec<u8>, reader: &mut dyn BufRead, location: &str) -> Result<File, IngestError> {
        let temporary = "a temporary file for an archive";
        let mut file = tempfile::tempfile().map_err(|err| from_io(err, temporary))?;
        file.write_all(&head).map_err(|err| from_io(err, temporary))?;
        std::io::copy(reader, &mut file).map_err(|err| from_io(err, location))?;
        file.rewind().map_err(|err| from_io(err, temporary))?;
        Ok(file)
    }

    fn gzip(&mut self, compressed: &mut dyn BufRead, location: &str, depth: u32) -> Result<(), V::Error> {
        let (counting, count) = Counting::new(compressed);
        let capped = Capped::new(GzipMembers::new(counting), "gzip", CompressedSize::Counted(count), &self.budget);
        let mut reader = BufReader::with_capacity(STREAM_BUFFER, capped);
        let inner_location = format!("{location} > gunzip");
        self.stream(&mut reader, &inner_location, depth + 1)?;
        if reader.get_ref().get_ref().trailing_junk {
            self.visitor.warning("gzip_trailing_data", format!("{location}: data after the last gzip member ignored"));
        }
        Ok(())
    }

    fn zip<R: Read + Seek>(&mut self, source: R, location: &str, depth: u32) -> Result<(), V::Error> {
        let mut archive = match decompress::open_zip(source) {
            Ok(archive) => archive,
            Err(err) => return self.visitor.problem(location, err),
        };
        if archive.len() as u64 > self.limits.max_zip_entries {
            return self.visitor.problem(
                location,
                IngestError::limit(
                    format!("zip archive of {} entries", archive.len()),
                    format!("{} entries (limits.max_zip_entries)", self.limits.max_zip_entries),
                ),
            );
        }
        for index in 0..archive.len() {
            let entry = match decompress::zip_entry(&mut archive, index) {
                Ok(entry) => entry,
                Err(err) => {
                    self.visitor.problem(&format!("{location} > entry {index}"), err)?;
                    continue;
                }
            };
            let name = entry.name().map(|name| name.into_owned()).unwrap_or_else(|_| format!("entry {index}"));
            let entry_location = format!("{location} > {name}");
            if entry.is_dir() {
                continue;
            }
            if is_junk_entry(&name) {
                self.visitor.skipped(&entry_location, "archive metadata")?;
                continue;
            }
            if entry.encrypted() {
                self.visitor.problem(&entry_location, IngestError::Unsupported("encrypted zip entry".into()))?;
                continue;
            }
            if entry.size() > self.budget.remaining() {
                self.visitor.problem(
                    &entry_location,
                    IngestError::limit(
                        format!("zip entry of {}", format_size(entry.size())),
                        format!("{} left of limits.max_decompressed_bytes", format_size(self.budget.remaining())),
                    ),
                )?;
                continue;
            }
            if let Err(err) = decompress::check_declared(entry.size(), entry.compressed_size(), self.limits) {
                self.visitor.problem(&entry_location, err)?;
                continue;
            }
            let compressed = CompressedSize::Declared(entry.compressed_size());
            let capped = Capped::new(entry, "zip", compressed, &self.budget);
            let mut reader = BufReader::with_capacity(STREAM_BUFFER, capped);
            self.stream(&mut reader, &entry_location, depth + 1)?;
        }
        Ok(())
    }

    fn leaf(&mut self, content: Content, reader: &mut dyn BufRead, location: &str) -> Result<(), V::Error> {
        let kind = match content {
            Content::Xml => DocumentKind::Xml,
            Content::Json => DocumentKind::Json,
            Content::Empty => {
                self.visitor.skipped(location, "empty content")?;
                return Ok(());
            }
            Content::Html => {
                self.visitor.skipped(location, "HTML")?;
                return Ok(());
            }
            Content::Text => {
                self.visitor.skipped(location, "plain text")?;
                return Ok(());
            }
            Content::Binary | Content::Gzip | Content::Zip | Content::Mail => {
                self.visitor.skipped(location, "binary data of an unknown kind")?;
                return Ok(());
            }
        };
        let memory = self.memory.saturating_sub(self.held);
        self.visitor.document(Document { location, kind, reader, memory })
    }
}

fn too_big(what: &str, size: u64, limits: &Limits) -> IngestError {
    IngestError::limit(
        format!("{what} of {}", format_size(size)),
        format!("{} (limits.max_message_bytes)", format_size(limits.max_message_bytes)),
    )
}

/// Entries archivers add that are never reports (`__MACOSX/`, `._name`, `.DS_Store`).
fn is_junk_entry(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("__MACOSX/") || file.starts_with("._") || file == ".DS_Store" || file == "Thumbs.db"
}

/// A gzip stream (every member) decompressed under `limits`' caps on total size and ratio,
/// for readers of compressed files outside the report path (the `.tgz` packages of
/// `dmarcpipe geoip fetch`). Decoder failures read as [`IngestError::Corrupt`] inside the
/// `io::Error`.
pub fn capped_gzip<'a>(compressed: impl BufRead + 'a, limits: &Limits) -> impl Read + 'a {
    let (counting, count) = Counting::new(compressed);
    Capped::new(GzipMembers::new(counting), "gzip", CompressedSize::Counted(count), &Budget::new(limits))
}

/// Reads a whole stream into memory for callers that need it (small inputs, tests).
pub fn read_capped(reader: &mut dyn Read, cap: u64, what: &str) -> Result<Vec<u8>, IngestError> {
    let mut bytes = Vec::new();
    reader.take(cap + 1).read_to_end(&mut bytes).map_err(|err| from_io(err, what))?;
    if bytes.len() as u64 > cap {
        return Err(IngestError::limit(format!("{what} larger than {}", format_size(cap)), format_size(cap)));
    }
    Ok(bytes)
}

impl From<io::Error> for IngestError {
    fn from(err: io::Error) -> Self {
        from_io(err, "input")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_sniffed_by_its_bytes() {
        assert_eq!(sniff(b""), Content::Empty);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Content::Gzip);
        assert_eq!(sniff(b"PK\x03\x04rest"), Content::Zip);
        assert_eq!(sniff(b"\xEF\xBB\xBF  <?xml version='1.0'?>"), Content::Xml);
        assert_eq!(sniff(b"<feedback>"), Content::Xml);
        assert_eq!(sniff(b"<!DOCTYPE html><html>"), Content::Html);
        assert_eq!(sniff(b"<!DOCTYPE feedback [<!ENTITY x 'y'>]>"), Content::Xml);
        assert_eq!(sniff(b"{\"organization-name\": 1}"), Content::Json);
        assert_eq!(sniff(b"From: a@b.example\r\nTo: c@d.example\r\n"), Content::Mail);
        assert_eq!(sniff(b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nReturn-Path: <>\n"), Content::Mail);
        assert_eq!(sniff(b"\nReceived: by mx.example.com\r\nFrom: a@b.example\r\n"), Content::Mail);
        assert_eq!(sniff(b" \t\r\n\r\nFrom: a@b.example\r\n"), Content::Mail);
        assert_eq!(sniff(b"\n\nnot a header\n"), Content::Text);
        assert_eq!(sniff(b"unused"), Content::Text);
        // UTF-16 XML, big- and little-endian, with and without a byte order mark.
        assert_eq!(sniff(b"\0<\0?\0x\0m\0l"), Content::Xml);
        assert_eq!(sniff(b"\0\n\0<\0f\0e\0e\0d"), Content::Xml);
        assert_eq!(sniff(b"<\0?\0x\0m\0l\0"), Content::Xml);
        assert_eq!(sniff(b"\xFE\xFF\0<\0?"), Content::Xml);
        assert_eq!(sniff(b"\xFF\xFE<\0?\0"), Content::Xml);
        assert_eq!(sniff(b"\x00\x01\x02"), Content::Binary);
    }

    #[test]
    fn junk_entries_are_recognised() {
        assert!(is_junk_entry("__MACOSX/._report.xml"));
        assert!(is_junk_entry("dir/.DS_Store"));
        assert!(!is_junk_entry("google.com!example.com!1!2.xml"));
    }
}
