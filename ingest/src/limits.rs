//! Safety limits for unpacking and parsing untrusted input.
//!
//! Every byte we read comes from strangers on the Internet, so every expansion step is capped:
//! bytes read into memory, bytes produced by decompression, the compression ratio (bombs),
//! archive entries, nesting of archives and MIME, and XML depth. The defaults admit the largest
//! real reports (Google and ESP reports of tens of MB of XML, a 1,000,000-record report of
//! about 600 MB of XML when streamed) and stop bombs after a few MB of output.

use serde::Deserialize;

/// Caps applied to one input. Sizes are bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest input read into memory: a mail message, a zip archive, stdin. Plain and gzip
    /// files on disk are streamed and not bound by this.
    #[serde(deserialize_with = "size")]
    pub max_message_bytes: u64,
    /// Largest total output of decompression for one input, summed over all its members.
    #[serde(deserialize_with = "size")]
    pub max_decompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed bytes, checked once a stream has produced
    /// more than a megabyte (small files legitimately have high ratios).
    pub max_compression_ratio: u64,
    /// Most entries walked in one zip archive.
    pub max_zip_entries: u64,
    /// Deepest nesting of containers (gzip in zip in mail in a forwarded mail ...).
    pub max_nesting: u32,
    /// Deepest MIME nesting: every multipart and every forwarded message (`message/rfc822`,
    /// encoded or not) is a level, counted from the container nesting of the mail.
    pub max_mime_depth: u32,
    /// Most MIME parts in one message (containers included), and most leaf parts walked in
    /// one input.
    pub max_mime_parts: u32,
    /// Deepest element nesting accepted in report XML (real reports use 6).
    pub max_xml_depth: u32,
    /// Largest rejected input whose bytes are kept for `dmarcpipe reprocess`.
    #[serde(deserialize_with = "size")]
    pub max_kept_bytes: u64,
    /// The memory budget of the whole process for inputs in flight (see [`crate::budget`]):
    /// inputs wait for room beyond it, SMTP messages are answered `451`. One input may use
    /// half of it ([`Limits::memory_per_input`]).
    #[serde(deserialize_with = "size")]
    pub max_memory: u64,
}

/// What streaming an input takes beside what it holds (channel, flush buffer, rollup sums,
/// decompression and parser buffers), within [`Limits::memory_per_input`].
pub const STREAMING_BUFFERS: u64 = 64 << 20;

impl Limits {
    /// The most one input may take: half the budget, so that a large input leaves room for
    /// small ones.
    pub fn memory_per_input(&self) -> u64 {
        self.max_memory / 2
    }

    /// The most of one input that unpacking may hold in memory at once (the input itself,
    /// mails and archives read from a stream, decoded parts), beside its streaming buffers.
    pub fn held_per_input(&self) -> u64 {
        self.memory_per_input().saturating_sub(STREAMING_BUFFERS).max(1 << 20)
    }
}

/// Sizes in configuration files: a number of bytes or a string such as `"64MiB"`.
pub fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(bytes),
        Size::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

/// [`size`] for an optional key (use with `#[serde(default)]`).
pub fn optional_size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    size(deserializer).map(Some)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 << 20,
            max_decompressed_bytes: 2 << 30,
            max_compression_ratio: 250,
            max_zip_entries: 1000,
            max_nesting: 4,
            max_mime_depth: 10,
            max_mime_parts: 500,
            max_xml_depth: 32,
            max_kept_bytes: 64 << 20,
            max_memory: 512 << 20,
        }
    }
}

/// Parses a byte size such as `1048576`, `64K`, `256MiB`, `2G` (powers of two).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("`{text}` is not a size (e.g. 64MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit `{other}` in `{text}` (use K, M, G)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("size `{text}` is too large"))
}

/// Formats a byte count for messages: `64 MiB`, `1.5 GiB`, `900 bytes`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 { format!("{value:.0} {}", UNITS[unit]) } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size(" 2 G "), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn sizes_format_for_humans() {
        assert_eq!(format_size(900), "900 bytes");
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
    }
}
