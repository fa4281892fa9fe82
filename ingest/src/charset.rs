//! Turns report bytes in whatever encoding the reporter used into UTF-8, streaming.
//!
//! Input: any `BufRead` positioned at the start of an XML (or JSON) document. Output: the
//! document without a byte-order mark, in UTF-8: UTF-16 (by BOM, or without one by the zero
//! bytes of its first characters, see [`utf16_xml`]),
//! ISO-8859-1 and windows-1252 (by declaration) are transcoded; UTF-8, the common case, passes
//! through untouched. Bytes that are not valid UTF-8 in a UTF-8 document are the XML reader's
//! business (it reads them as windows-1252, which is what the reporters who emit 0x91/0x92
//! "smart quotes" meant; see [`windows_1252`]).
//!
//! What was done is reported in [`CharsetReport`] so the parser can record a warning. Memory is
//! bounded by the chunk size, so a 600 MB report streams through in 64 KiB steps.

use std::io::{self, BufRead, Read};

const CHUNK: usize = 64 * 1024;

/// The source encoding as detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Latin1,
    Windows1252,
}

impl SourceEncoding {
    pub fn name(self) -> &'static str {
        match self {
            SourceEncoding::Utf8 => "UTF-8",
            SourceEncoding::Utf16Le => "UTF-16LE",
            SourceEncoding::Utf16Be => "UTF-16BE",
            SourceEncoding::Latin1 => "ISO-8859-1",
            SourceEncoding::Windows1252 => "windows-1252",
        }
    }
}

/// What the reader had to do to produce UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CharsetReport {
    pub byte_order_mark: bool,
    /// The encoding transcoded from, when it was not UTF-8.
    pub transcoded_from: Option<&'static str>,
    /// The encoding named by the XML declaration when we do not know it (read as UTF-8).
    pub unknown_declared: Option<String>,
    /// Code units of a UTF-16 document that were not valid UTF-16 (replaced with U+FFFD).
    pub invalid_utf16_units: u64,
}

/// A `BufRead` adapter producing UTF-8; see the module documentation.
#[derive(Debug)]
pub struct Utf8Reader<R> {
    inner: R,
    encoding: Option<SourceEncoding>,
    /// Undecoded bytes carried over between chunks (an incomplete sequence).
    pending: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    /// Past the detection bytes of a UTF-8 document: reads go straight to `inner`.
    passthrough: bool,
    eof: bool,
    report: CharsetReport,
}

impl<R: BufRead> Utf8Reader<R> {
    pub fn new(inner: R) -> Self {
        Utf8Reader {
            inner,
            encoding: None,
            pending: Vec::new(),
            out: Vec::with_capacity(CHUNK + 16),
            pos: 0,
            passthrough: false,
            eof: false,
            report: CharsetReport::default(),
        }
    }

    pub fn report(&self) -> &CharsetReport {
        &self.report
    }

    /// Looks at the first bytes: BOM, UTF-16 shape, or the declaration's `encoding`.
    fn detect(&mut self) -> io::Result<()> {
        // Gather enough bytes to see the XML declaration.
        while self.pending.len() < 512 {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min(512 - self.pending.len());
            self.pending.extend_from_slice(&chunk[..take]);
            self.inner.consume(take);
        }
        let head = &self.pending;
        let (encoding, bom_len) = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            (SourceEncoding::Utf8, 3)
        } else if head.starts_with(&[0xFF, 0xFE]) {
            (SourceEncoding::Utf16Le, 2)
        } else if head.starts_with(&[0xFE, 0xFF]) {
            (SourceEncoding::Utf16Be, 2)
        } else if let Some(encoding) = utf16_xml(head) {
            (encoding, 0)
        } else {
            (self.declared_single_byte_encoding(), 0)
        };
        self.report.byte_order_mark = bom_len > 0;
        if encoding != SourceEncoding::Utf8 {
            self.report.transcoded_from = Some(encoding.name());
        }
        self.pending.drain(..bom_len);
        self.encoding = Some(encoding);
        Ok(())
    }

    fn declared_single_byte_encoding(&mut self) -> SourceEncoding {
        let head = String::from_utf8_lossy(&self.pending);
        let Some(decl) = head.trim_start().strip_prefix("<?xml") else {
            return SourceEncoding::Utf8;
        };
        let decl = decl.split("?>").next().unwrap_or_default();
        let Some(at) = decl.find("encoding") else {
            return SourceEncoding::Utf8;
        };
        let value: String = decl[at + "encoding".len()..]
            .trim_start()
            .trim_start_matches('=')
            .trim_start()
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            .collect();
        match value.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" | "" => SourceEncoding::Utf8,
            // Declared UTF-16 without UTF-16 bytes: the declaration lies, the bytes don't.
            "utf-16" | "utf-16le" | "utf-16be" => SourceEncoding::Utf8,
            "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1" | "iso-8859-15" => SourceEncoding::Latin1,
            "windows-1252" | "cp1252" => SourceEncoding::Windows1252,
            _ => {
                self.report.unknown_declared = Some(value);
                SourceEncoding::Utf8
            }
        }
    }

    /// Decodes as much of `pending` as possible into `out`.
    fn decode_pending(&mut self) {
        let encoding = self.encoding.unwrap_or(SourceEncoding::Utf8);
        let consumed = match encoding {
            SourceEncoding::Utf8 => {
                self.out.extend_from_slice(&self.pending);
                self.pending.len()
            }
            SourceEncoding::Latin1 | SourceEncoding::Windows1252 => {
                let cp1252 = encoding == SourceEncoding::Windows1252;
                let mut buf = [0u8; 4];
                for &b in &self.pending {
                    let ch = if b < 0x80 {
                        b as char
                    } else if cp1252 {
                        windows_1252(b)
                    } else {
                        b as char
                    };
                    self.out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                self.pending.len()
            }
            SourceEncoding::Utf16Le | SourceEncoding::Utf16Be => self.decode_utf16(encoding),
        };
        self.pending.drain(..consumed);
    }

    fn decode_utf16(&mut self, encoding: SourceEncoding) -> usize {
        let usable = if self.eof { self.pending.len() } else { self.pending.len() & !1 };
        let units = self.pending[..usable & !1].chunks_exact(2).map(|pair| match encoding {
            SourceEncoding::Utf16Be => u16::from_be_bytes([pair[0], pair[1]]),
            _ => u16::from_le_bytes([pair[0], pair[1]]),
        });
        let mut units: Vec<u16> = units.collect();
        // Keep a trailing high surrogate for the next chunk.
        let mut keep = 0;
        if !self.eof && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            units.pop();
            keep = 2;
        }
        let mut buf = [0u8; 4];
        for ch in char::decode_utf16(units) {
            let ch = ch.unwrap_or_else(|_| {
                self.report.invalid_utf16_units += 1;
                char::REPLACEMENT_CHARACTER
            });
            self.out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        if self.eof && usable % 2 == 1 {
            self.report.invalid_utf16_units += 1;
        }
        (usable & !1) - keep + if self.eof { usable % 2 } else { 0 }
    }
}

impl<R: BufRead> Read for Utf8Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Utf8Reader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.encoding.is_none() {
            self.detect()?;
        }
        // UTF-8 passes through once the bytes read for detection are served.
        if self.encoding == Some(SourceEncoding::Utf8) && self.pending.is_empty() && self.pos >= self.out.len() {
            self.passthrough = true;
            return self.inner.fill_buf();
        }
        while self.pos >= self.out.len() {
            self.out.clear();
            self.pos = 0;
            if self.eof && self.pending.is_empty() {
                break;
            }
            if !self.eof {
                let chunk = self.inner.fill_buf()?;
                if chunk.is_empty() {
                    self.eof = true;
                } else {
                    let take = chunk.len().min(CHUNK);
                    self.pending.extend_from_slice(&chunk[..take]);
                    self.inner.consume(take);
                }
            }
            self.decode_pending();
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        if self.passthrough {
            self.inner.consume(amount);
        } else {
            self.pos = (self.pos + amount).min(self.out.len());
        }
    }
}

/// The byte order of XML written in UTF-16, with or without a byte order mark, recognised by
/// its first characters: blanks, then `<` and a name start (`<?xml`, `<feedback`, `<!--`).
/// Each is ASCII, so one of its two bytes is zero: `00 3C` is big-endian, `3C 00` little.
/// UTF-8 text never matches (its `<` would pair with the next byte).
pub fn utf16_xml(head: &[u8]) -> Option<SourceEncoding> {
    let (body, orders): (&[u8], &[SourceEncoding]) = if let Some(rest) = head.strip_prefix(&[0xFF, 0xFE]) {
        (rest, &[SourceEncoding::Utf16Le])
    } else if let Some(rest) = head.strip_prefix(&[0xFE, 0xFF]) {
        (rest, &[SourceEncoding::Utf16Be])
    } else {
        (head, &[SourceEncoding::Utf16Le, SourceEncoding::Utf16Be])
    };
    orders.iter().copied().find(|&order| {
        let mut units = body.chunks_exact(2).map(|pair| match order {
            SourceEncoding::Utf16Be => u16::from_be_bytes([pair[0], pair[1]]),
            _ => u16::from_le_bytes([pair[0], pair[1]]),
        });
        let first = units.find(|&unit| !matches!(unit, 0x20 | 0x09 | 0x0A | 0x0D));
        let second = units.next().and_then(|unit| u8::try_from(unit).ok());
        first == Some(u16::from(b'<'))
            && second.is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'?' | b'!' | b'_'))
    })
}

/// windows-1252 for one byte; 0x80..=0x9F differ from ISO-8859-1.
pub(crate) fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{02C6}',
        '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}', '\u{017D}', '\u{FFFD}', '\u{FFFD}', '\u{2018}',
        '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}',
        '\u{203A}', '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(bytes: &[u8]) -> (String, CharsetReport) {
        // A one-byte buffer exercises every chunk boundary.
        let mut reader = Utf8Reader::new(io::BufReader::with_capacity(1, bytes));
        let mut out = String::new();
        reader.read_to_string(&mut out).expect("utf-8 output");
        (out, reader.report().clone())
    }

    #[test]
    fn utf8_passes_through_and_bom_is_dropped() {
        let (out, report) = convert("\u{feff}<a>é€</a>".as_bytes());
        assert_eq!(out, "<a>é€</a>");
        assert!(report.byte_order_mark);
        assert_eq!(report.transcoded_from, None);
    }

    #[test]
    fn utf16_with_and_without_bom() {
        let text = "<?xml version=\"1.0\"?><a>ü😀</a>";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(convert(&le).0, text);
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let (out, report) = convert(&be);
        assert_eq!(out, text);
        assert_eq!(report.transcoded_from, Some("UTF-16BE"));
    }

    #[test]
    fn utf16_without_bom_is_recognised_in_both_byte_orders() {
        let encode = |text: &str, order: SourceEncoding| -> Vec<u8> {
            text.encode_utf16()
                .flat_map(|unit| if order == SourceEncoding::Utf16Be { unit.to_be_bytes() } else { unit.to_le_bytes() })
                .collect()
        };
        for order in [SourceEncoding::Utf16Be, SourceEncoding::Utf16Le] {
            for text in ["<?xml version=\"1.0\"?><a>ä</a>", "<feedback><a>ü</a></feedback>", "\r\n <!-- x --><a/>"] {
                let bytes = encode(text, order);
                assert_eq!(utf16_xml(&bytes), Some(order), "{text}");
                let (out, report) = convert(&bytes);
                assert_eq!(out, text);
                assert_eq!(report.transcoded_from, Some(order.name()));
                assert!(!report.byte_order_mark);
            }
        }
        assert_eq!(utf16_xml(b"<?xml version='1.0'?>"), None, "UTF-8");
        assert_eq!(utf16_xml(b"  <feedback>"), None);
        assert_eq!(utf16_xml(&[0, b'x', 0, b'<']), None, "text, not XML");
        assert_eq!(utf16_xml(&[0xFE, 0xFF, 0, b'\n', 0, b'<', 0, b'f']), Some(SourceEncoding::Utf16Be));
    }

    #[test]
    fn declared_latin1_is_transcoded() {
        let (out, report) = convert(b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xE9</a>");
        assert!(out.ends_with("<a>é</a>"));
        assert_eq!(report.transcoded_from, Some("ISO-8859-1"));
    }

    #[test]
    fn utf8_is_passed_through_byte_for_byte() {
        let mut text = vec![b'x'; 100_000];
        text.extend_from_slice(b"\x92\xC3\xA9");
        let mut reader = Utf8Reader::new(io::BufReader::with_capacity(8192, &text[..]));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("readable");
        assert_eq!(out, text);
    }
}
