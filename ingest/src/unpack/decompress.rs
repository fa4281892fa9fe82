//! All decompression goes through here, with caps (the only module allowed to name the raw
//! decoders; `clippy.toml` bans them elsewhere).
//!
//! [`Budget`] is shared by every stream of one input and caps the total decompressed bytes;
//! each [`Capped`] stream also checks its own compression ratio once it has produced more than
//! a megabyte, so a bomb stops after a few MB of output whatever its headers claim.
//! [`GzipMembers`] reads every gzip member (`GzDecoder` alone stops after the first) and stops
//! quietly at trailing junk after a complete member, which some archivers append.

// The one place allowed to name the raw decoders (see clippy.toml).
#![allow(clippy::disallowed_types)]

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use crate::error::{IngestError, to_io};
use crate::limits::{Limits, format_size};

/// Ratio checks start after this many output bytes: small files compress extremely well.
const RATIO_GRACE: u64 = 1 << 20;

/// The decompression allowance of one input.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    used: Rc<Cell<u64>>,
    max_total: u64,
    max_ratio: u64,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Budget {
            used: Rc::new(Cell::new(0)),
            max_total: limits.max_decompressed_bytes,
            max_ratio: limits.max_compression_ratio,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.max_total.saturating_sub(self.used.get())
    }
}

/// Counts the compressed bytes a decoder pulls from its source.
#[derive(Debug)]
pub(crate) struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R> Counting<R> {
    pub fn new(inner: R) -> (Self, Rc<Cell<u64>>) {
        let count = Rc::new(Cell::new(0));
        (Counting { inner, count: count.clone() }, count)
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.count.set(self.count.get() + amount as u64);
        self.inner.consume(amount);
    }
}

/// Where the compressed size of a stream comes from.
#[derive(Debug)]
pub(crate) enum CompressedSize {
    /// Counted as the decoder reads (gzip).
    Counted(Rc<Cell<u64>>),
    /// Declared by the archive (zip entries); a lie only makes the ratio check stricter or
    /// leaves the total budget to stop the stream.
    Declared(u64),
}

/// A decompressed stream held to the input's budget and to a ratio.
#[derive(Debug)]
pub(crate) struct Capped<R> {
    inner: R,
    format: &'static str,
    produced: u64,
    compressed: CompressedSize,
    budget: Budget,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, format: &'static str, compressed: CompressedSize, budget: &Budget) -> Self {
        Capped { inner, format, produced: 0, compressed, budget: budget.clone() }
    }
}

impl<R> Capped<R> {
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|err| corrupt(self.format, err))?;
        self.produced += n as u64;
        let used = self.budget.used.get() + n as u64;
        self.budget.used.set(used);
        if used > self.budget.max_total {
            return Err(to_io(IngestError::limit(
                "decompressed size",
                format!("{} (configure limits.max_decompressed_bytes)", format_size(self.budget.max_total)),
            )));
        }
        if self.produced > RATIO_GRACE {
            let compressed = match &self.compressed {
                CompressedSize::Counted(count) => count.get(),
                CompressedSize::Declared(size) => *size,
            }
            .max(1);
            if self.produced / compressed > self.budget.max_ratio {
                return Err(to_io(IngestError::limit(
                    format!(
                        "{} compression ratio ({} from {})",
                        self.format,
                        format_size(self.produced),
                        format_size(compressed)
                    ),
                    format!("{}:1 (a decompression bomb?)", self.budget.max_ratio),
                )));
            }
        }
        Ok(n)
    }
}

/// Refuses an archive entry whose own header declares a bomb, before reading any of it (the
/// running checks of [`Capped`] still apply to entries whose headers lie).
pub(crate) fn check_declared(size: u64, compressed: u64, limits: &Limits) -> Result<(), IngestError> {
    if size > RATIO_GRACE && size / compressed.max(1) > limits.max_compression_ratio {
        return Err(IngestError::limit(
            format!("zip entry declaring {} from {}", format_size(size), format_size(compressed)),
            format!("{}:1 (a decompression bomb?)", limits.max_compression_ratio),
        ));
    }
    Ok(())
}

/// Keeps our own errors (limits) and turns decoder failures into `Corrupt`.
fn corrupt(format: &'static str, err: io::Error) -> io::Error {
    if err.get_ref().is_some_and(|inner| inner.is::<IngestError>()) {
        return err;
    }
    let reason = match err.kind() {
        io::ErrorKind::UnexpectedEof => "truncated (unexpected end of data)".to_owned(),
        _ => err.to_string(),
    };
    to_io(IngestError::Corrupt { format, reason })
}

/// Reads every member of a gzip stream; see the module documentation.
#[derive(Debug)]
pub(crate) struct GzipMembers<R: BufRead> {
    decoder: Option<flate2::bufread::GzDecoder<R>>,
    members: u32,
    /// Bytes after the last complete member that are not another member.
    pub trailing_junk: bool,
}

impl<R: BufRead> GzipMembers<R> {
    pub fn new(inner: R) -> Self {
        GzipMembers { decoder: Some(flate2::bufread::GzDecoder::new(inner)), members: 1, trailing_junk: false }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // End of a member: another one, the end, or junk.
            let Some(decoder) = self.decoder.take() else {
                return Ok(0);
            };
            let mut inner = decoder.into_inner();
            let next = inner.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next.starts_with(&[0x1f, 0x8b]) {
                self.members += 1;
                self.decoder = Some(flate2::bufread::GzDecoder::new(inner));
            } else {
                self.trailing_junk = true;
                return Ok(0);
            }
        }
    }
}

/// Opens a zip archive over a seekable source.
pub(crate) fn open_zip<R: Read + io::Seek>(source: R) -> Result<zip::ZipArchive<R>, IngestError> {
    zip::ZipArchive::new(source).map_err(|err| IngestError::Corrupt { format: "zip", reason: err.to_string() })
}

/// The type of one zip entry reader.
pub(crate) type ZipEntry<'a, R> = zip::read::ZipFile<'a, R>;

/// Opens entry `index` of `archive`.
pub(crate) fn zip_entry<R: Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
) -> Result<ZipEntry<'_, R>, IngestError> {
    archive.by_index(index).map_err(|err| IngestError::Corrupt { format: "zip", reason: err.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }

    fn read_all(reader: &mut dyn Read) -> Result<Vec<u8>, IngestError> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|err| crate::error::from_io(err, "test"))?;
        Ok(out)
    }

    #[test]
    fn every_gzip_member_is_read_and_trailing_junk_tolerated() {
        let mut data = gzip(b"first ");
        data.extend(gzip(b"second"));
        data.extend(b"\0\0\0junk");
        let mut members = GzipMembers::new(&data[..]);
        assert_eq!(read_all(&mut members).expect("readable"), b"first second");
        assert!(members.trailing_junk);
        assert_eq!(members.members, 2);
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        let data = gzip(&[b'x'; 10_000]);
        let budget = Budget::new(&Limits::default());
        let (counting, count) = Counting::new(&data[..data.len() / 2]);
        let mut capped = Capped::new(GzipMembers::new(counting), "gzip", CompressedSize::Counted(count), &budget);
        let err = read_all(&mut capped).expect_err("truncated");
        assert!(matches!(err, IngestError::Corrupt { format: "gzip", .. }), "{err}");
    }

    #[test]
    fn bombs_stop_at_the_ratio_and_the_total() {
        let data = gzip(&vec![0u8; 50 << 20]);
        let limits = Limits::default();
        let budget = Budget::new(&limits);
        let (counting, count) = Counting::new(&data[..]);
        let mut capped = Capped::new(GzipMembers::new(counting), "gzip", CompressedSize::Counted(count), &budget);
        let err = read_all(&mut capped).expect_err("a bomb");
        assert!(err.to_string().contains("compression ratio"), "{err}");
        assert!(budget.used.get() < 4 << 20, "stopped early, after {} bytes", budget.used.get());

        let small = Limits { max_decompressed_bytes: 1000, ..Limits::default() };
        let budget = Budget::new(&small);
        let text = gzip(&[b'a'; 5000]);
        let (counting, count) = Counting::new(&text[..]);
        let mut capped = Capped::new(GzipMembers::new(counting), "gzip", CompressedSize::Counted(count), &budget);
        let err = read_all(&mut capped).expect_err("over the total");
        assert!(err.to_string().contains("decompressed size"), "{err}");
    }
}
