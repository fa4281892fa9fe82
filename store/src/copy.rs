//! Encodes rows for `COPY ... FROM STDIN` in PostgreSQL's text format.
//!
//! Values are tab-separated, `\N` is NULL, backslash, tab, newline and carriage return are
//! escaped. Arrays are written as array literals with every element quoted, then escaped
//! again as one COPY field. This is the fastest way into PostgreSQL short of the binary format.

use std::fmt::Write as _;
use std::net::IpAddr;

/// Appends the fields of one row to a buffer.
#[derive(Debug)]
pub(crate) struct CopyRow<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CopyRow<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        CopyRow { out, first: true }
    }

    fn separator(&mut self) {
        if !self.first {
            self.out.push(b'\t');
        }
        self.first = false;
    }

    fn escaped(&mut self, text: &str) {
        let needs_escape = |byte: &u8| matches!(byte, b'\\' | b'\t' | b'\n' | b'\r' | 0);
        if !text.as_bytes().iter().any(needs_escape) {
            self.out.extend_from_slice(text.as_bytes());
            return;
        }
        for &byte in text.as_bytes() {
            match byte {
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                // NUL cannot be stored in text; the charset layer removes it already.
                0 => {}
                _ => self.out.push(byte),
            }
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.separator();
        self.out.extend_from_slice(b"\\N");
        self
    }

    pub fn text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            None => self.null(),
            Some(text) => {
                self.separator();
                self.escaped(text);
                self
            }
        }
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.separator();
        if value < 0 {
            self.out.push(b'-');
        }
        push_decimal(self.out, value.unsigned_abs());
        self
    }

    pub fn ip(&mut self, value: Option<IpAddr>) -> &mut Self {
        match value {
            None => self.null(),
            // The common case, formatted without going through `fmt`.
            Some(IpAddr::V4(ip)) => {
                self.separator();
                for (index, octet) in ip.octets().into_iter().enumerate() {
                    if index > 0 {
                        self.out.push(b'.');
                    }
                    push_decimal(self.out, u64::from(octet));
                }
                self
            }
            Some(ip) => {
                self.separator();
                let _ = write!(Utf8Sink(self.out), "{ip}");
                self
            }
        }
    }

    /// A `bytea` value, in hex form (`\\x` and two digits a byte; the backslash doubled for COPY).
    pub fn bytea(&mut self, bytes: &[u8]) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.separator();
        self.out.extend_from_slice(b"\\\\x");
        for &byte in bytes {
            self.out.push(HEX[usize::from(byte >> 4)]);
            self.out.push(HEX[usize::from(byte & 0x0f)]);
        }
        self
    }

    /// A value already in COPY text form (a shared timestamp: see `rows::Stamp`).
    pub fn preformatted(&mut self, text: &str) -> &mut Self {
        self.separator();
        self.out.extend_from_slice(text.as_bytes());
        self
    }

    /// A `text[]` value; `None` elements become SQL NULLs. An array of nothing but NULLs is
    /// written empty: the parallel arrays of a record are read with a multi-argument `unnest`,
    /// which pads shorter arrays with NULLs, and `{}` costs PostgreSQL less to parse.
    pub fn text_array<'s, I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = Option<&'s str>>,
        I::IntoIter: Clone,
    {
        let values = values.into_iter();
        self.separator();
        if values.clone().all(|value| value.is_none()) {
            self.out.extend_from_slice(b"{}");
            return self;
        }
        self.out.push(b'{');
        for (index, value) in values.enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            match value {
                None => self.out.extend_from_slice(b"NULL"),
                Some(text) => {
                    // Array-literal quoting (`"` and `\` get a backslash), then COPY escaping
                    // (every backslash doubled): `\` becomes `\\\\`, `"` becomes `\\"`.
                    self.out.push(b'"');
                    for &byte in text.as_bytes() {
                        match byte {
                            b'"' => self.out.extend_from_slice(b"\\\\\""),
                            b'\\' => self.out.extend_from_slice(b"\\\\\\\\"),
                            b'\t' => self.out.extend_from_slice(b"\\t"),
                            b'\n' => self.out.extend_from_slice(b"\\n"),
                            b'\r' => self.out.extend_from_slice(b"\\r"),
                            0 => {}
                            _ => self.out.push(byte),
                        }
                    }
                    self.out.push(b'"');
                }
            }
        }
        self.out.push(b'}');
        self
    }

    pub fn end(&mut self) {
        self.out.push(b'\n');
    }
}

/// Appends the decimal digits of `value`.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `fmt::Write` into a byte buffer.
struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped_for_copy_text_format() {
        let mut out = Vec::new();
        CopyRow::new(&mut out)
            .int(-7)
            .int(i64::MAX)
            .ip(Some("192.0.2.255".parse().expect("an address")))
            .text(Some("a\tb\\c\nd"))
            .text(None)
            .ip(Some("2001:db8::1".parse().expect("an address")))
            .text_array([Some("x,y"), None, Some("q\"uo\\te")])
            .text_array([None, None])
            .preformatted("2023-11-15 00:00:00+00")
            .bytea(&[0, 0xab])
            .end();
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "-7\t9223372036854775807\t192.0.2.255\ta\\tb\\\\c\\nd\t\\N\t2001:db8::1\t{\"x,y\",NULL,\"q\\\\\"uo\\\\\\\\te\"}\t{}\t2023-11-15 00:00:00+00\t\\\\x00ab\n"
        );
    }
}
