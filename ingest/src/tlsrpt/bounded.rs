//! Reads a JSON document into memory under hard limits, before any JSON parser sees it.
//!
//! Input: a `BufRead` (already decompressed and held to the input's decompression budget).
//! Output: the document's bytes, or a [`IngestError::Limit`] as soon as the stream breaks a
//! limit: its size, its nesting depth, the members of one array or object, the number of
//! values or of objects in the whole document; or `None` as soon as it is larger than what the
//! input may still hold in memory (then it is to be read another way, or refused by the
//! caller). The check runs on the bytes as they arrive, so a bomb of
//! deep nesting (`[[[[…`) stops at the first bracket past the depth limit and a huge array
//! at its first member past the cap, after reading only that far.
//!
//! Why not let serde_json find out: its own recursion limit (128) is fixed, and nothing
//! bounds the memory of a tree built from a document of millions of tiny values (`[0,0,…]`
//! is 2 bytes per value as text, 32 as a `Node`; `{}` far more). With the default caps, the
//! tree of the worst document stays under about 60 MB (measured figures in the README). The
//! scan holds one counter per open container (at most `max_depth`), so it runs in constant
//! memory beside the buffer.
//!
//! The scan is not a validator: it tracks only strings (so that brackets and commas inside
//! them do not count), brackets and commas. Malformed JSON is left to serde_json, which
//! says where.

use std::io::BufRead;

use crate::error::{IngestError, from_io};
use crate::limits::format_size;

/// Caps on one TLS report document. The defaults are far above real reports (a few KB; a
/// busy reporter's day with thousands of failure details is under a megabyte: the caps admit
/// about 50,000) and keep the memory of a hostile document to tens of megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsLimits {
    /// Largest document, in bytes.
    pub max_bytes: u64,
    /// Deepest nesting of arrays and objects (a TLS report uses 5).
    pub max_depth: usize,
    /// Most members of one array or object.
    pub max_items: u64,
    /// Most values in the whole document (strings, keys and containers counted, and every
    /// comma for the numbers and literals between them).
    pub max_values: u64,
    /// Most objects in the whole document (the costliest values: a failure detail is one).
    pub max_objects: u64,
    /// Most policies in one report.
    pub max_policies: usize,
    /// Most failure-details entries in one report, over all its policies.
    pub max_failure_details: usize,
}

impl Default for TlsLimits {
    fn default() -> Self {
        TlsLimits {
            max_bytes: 16 << 20,
            max_depth: 16,
            max_items: 100_000,
            max_values: 1_000_000,
            max_objects: 100_000,
            max_policies: 10_000,
            max_failure_details: 50_000,
        }
    }
}

/// The state of the scan between two chunks of input.
#[derive(Debug, Default)]
struct Scan {
    in_string: bool,
    escaped: bool,
    /// Members counted so far in each open container, innermost last.
    open: Vec<u64>,
    values: u64,
    objects: u64,
}

impl Scan {
    fn feed(&mut self, chunk: &[u8], limits: &TlsLimits) -> Result<(), IngestError> {
        for &byte in chunk {
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => {
                    self.in_string = true;
                    self.value(limits)?;
                }
                b'[' | b'{' => {
                    self.value(limits)?;
                    if byte == b'{' {
                        self.objects += 1;
                        if self.objects > limits.max_objects {
                            return Err(IngestError::limit(
                                "JSON document",
                                format!("{} objects (a JSON bomb?)", limits.max_objects),
                            ));
                        }
                    }
                    self.open.push(1);
                    if self.open.len() > limits.max_depth {
                        return Err(IngestError::limit(
                            "JSON nesting",
                            format!("{} levels of arrays and objects (a JSON bomb?)", limits.max_depth),
                        ));
                    }
                }
                b']' | b'}' => {
                    self.open.pop();
                }
                b',' => {
                    self.value(limits)?;
                    if let Some(members) = self.open.last_mut() {
                        *members += 1;
                        if *members > limits.max_items {
                            return Err(IngestError::limit(
                                "JSON array or object",
                                format!("{} members (a JSON bomb?)", limits.max_items),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn value(&mut self, limits: &TlsLimits) -> Result<(), IngestError> {
        self.values += 1;
        if self.values > limits.max_values {
            return Err(IngestError::limit("JSON document", format!("{} values (a JSON bomb?)", limits.max_values)));
        }
        Ok(())
    }
}

/// Reads `reader` to its end under `limits`, or up to `hold` bytes (`None` past them); see the
/// module documentation.
pub(crate) fn read_json(
    reader: &mut dyn BufRead,
    limits: &TlsLimits,
    hold: u64,
) -> Result<Option<Vec<u8>>, IngestError> {
    let mut bytes = Vec::new();
    let mut scan = Scan::default();
    loop {
        let chunk = reader.fill_buf().map_err(|err| from_io(err, "JSON document"))?;
        if chunk.is_empty() {
            return Ok(Some(bytes));
        }
        let taken = chunk.len();
        if (bytes.len() + taken) as u64 > limits.max_bytes {
            return Err(IngestError::limit(
                format!("JSON document of more than {}", format_size(limits.max_bytes)),
                format!("{} for a TLS report", format_size(limits.max_bytes)),
            ));
        }
        if (bytes.len() + taken) as u64 > hold {
            return Ok(None);
        }
        scan.feed(chunk, limits)?;
        bytes.extend_from_slice(chunk);
        reader.consume(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8], limits: &TlsLimits) -> Result<Vec<u8>, IngestError> {
        read_json(&mut &text[..], limits, u64::MAX).map(|bytes| bytes.expect("no memory cap"))
    }

    #[test]
    fn ordinary_documents_pass_whole() {
        let text = br#"{"a": [1, 2, {"b": "x,y]]]]{{{"}], "c": "\"[,"}"#;
        assert_eq!(read(text, &TlsLimits::default()).expect("within the limits"), text);
    }

    #[test]
    fn deep_nesting_stops_at_the_limit_without_reading_on() {
        let limits = TlsLimits { max_depth: 4, ..TlsLimits::default() };
        assert!(read(b"[[[[1]]]]", &limits).is_ok());
        // A reader that would go on for ever: the scan must stop it.
        let mut endless = std::io::BufReader::with_capacity(64, std::io::repeat(b'['));
        let err = read_json(&mut endless, &limits, u64::MAX).expect_err("a bomb");
        assert!(err.to_string().contains("JSON nesting exceeds the limit of 4 levels"), "{err}");
    }

    #[test]
    fn brackets_inside_strings_do_not_nest() {
        let limits = TlsLimits { max_depth: 2, ..TlsLimits::default() };
        assert!(read(br#"[["[[[[[[", "\\", "\"[[[["]]"#, &limits).is_ok());
    }

    #[test]
    fn huge_arrays_and_many_values_stop_at_their_limits() {
        let limits = TlsLimits { max_items: 3, ..TlsLimits::default() };
        assert!(read(b"[1,2,3]", &limits).is_ok());
        let err = read(b"[1,2,3,4]", &limits).expect_err("too many members");
        assert!(err.to_string().contains("3 members"), "{err}");

        let limits = TlsLimits { max_values: 10, ..TlsLimits::default() };
        let err = read(b"[[1,2,3],[1,2,3],[1,2,3],[1,2,3]]", &limits).expect_err("too many values");
        assert!(err.to_string().contains("10 values"), "{err}");

        let limits = TlsLimits { max_objects: 3, ..TlsLimits::default() };
        assert!(read(br#"[{},{},{"a":"{{{{"}]"#, &limits).is_ok());
        let err = read(b"[{},{},{},{}]", &limits).expect_err("too many objects");
        assert!(err.to_string().contains("3 objects"), "{err}");
    }

    #[test]
    fn documents_larger_than_the_input_may_hold_are_not_read_on() {
        assert_eq!(read_json(&mut &b"[1,2,3]"[..], &TlsLimits::default(), 7).expect("read"), Some(b"[1,2,3]".to_vec()));
        assert_eq!(read_json(&mut &b"[1,2,3,4]"[..], &TlsLimits::default(), 7).expect("read"), None);
        // The size cap is a refusal whatever the input may hold.
        let limits = TlsLimits { max_bytes: 4, ..TlsLimits::default() };
        assert!(read_json(&mut &b"[1,2,3,4]"[..], &limits, 7).is_err());
    }

    #[test]
    fn size_is_capped() {
        let limits = TlsLimits { max_bytes: 8, ..TlsLimits::default() };
        assert!(read(b"[1,2,3]", &limits).is_ok());
        let err = read(b"[1,2,3,4,5]", &limits).expect_err("too large");
        assert!(matches!(err, IngestError::Limit { .. }), "{err}");
    }
}
