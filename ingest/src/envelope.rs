//! An input as received: its bytes (or the file that holds them), where it came from, when.
//!
//! Every channel (files, stdin, SMTP, IMAP) produces envelopes; the pipeline turns each into
//! exactly one outcome. The origin is recorded with the input for provenance.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::{IngestError, from_io};

/// Where an input came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A file given to `import` (or found in a directory given to it).
    File { path: PathBuf },
    /// The `index`-th message (1-based) of an mbox file.
    Mbox { path: PathBuf, index: usize },
    /// One message on standard input (an MTA pipe).
    Stdin,
    /// Delivered to our SMTP or LMTP server: the client's address, its HELO name, the
    /// envelope sender, and whether the session was LMTP and ran over TLS.
    Smtp { peer: String, helo: String, mail_from: String, lmtp: bool, tls: bool },
    /// Fetched from an IMAP mailbox: the account as the authority of an IMAP URL (RFC 5092:
    /// the user, percent-encoded, `@` the server, `:port` unless 143), the folder as
    /// configured, and the message's UIDVALIDITY and UID, which name it for good.
    Imap { account: String, folder: String, uid_validity: u32, uid: u32 },
    /// The kept bytes of an input already recorded, run again by `reprocess` (which updates
    /// that input's row; this origin is never written).
    Kept { input: i64 },
}

impl Origin {
    /// The channel name stored with the input.
    pub fn channel(&self) -> &'static str {
        match self {
            Origin::File { .. } | Origin::Mbox { .. } => "file",
            Origin::Stdin => "stdin",
            Origin::Smtp { lmtp: false, .. } => "smtp",
            Origin::Smtp { lmtp: true, .. } => "lmtp",
            Origin::Imap { .. } => "imap",
            Origin::Kept { .. } => "file",
        }
    }
}

impl Origin {
    /// How the input itself is named at the start of locations inside it
    /// (`report.zip > a.xml`, `message > part 2`).
    pub fn root_label(&self) -> String {
        match self {
            Origin::File { path } => {
                path.file_name().map_or_else(|| "file".to_owned(), |name| name.to_string_lossy().into_owned())
            }
            _ => "message".to_owned(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path } => write!(f, "{}", path.display()),
            Origin::Mbox { path, index } => write!(f, "{} (message {index})", path.display()),
            Origin::Stdin => f.write_str("stdin"),
            Origin::Smtp { peer, helo, mail_from, tls, .. } => {
                write!(f, "{peer} helo={helo} from=<{mail_from}>{}", if *tls { " tls" } else { "" })
            }
            Origin::Imap { account, folder, uid_validity, uid } => {
                write!(f, "imap://{account}/{};UIDVALIDITY={uid_validity}/;UID={uid}", percent_encode(folder, "/"))
            }
            Origin::Kept { input } => write!(f, "kept bytes of input {input}"),
        }
    }
}

/// `text` with every byte but unreserved characters (RFC 3986) and those of `keep`
/// percent-encoded, as in the parts of an IMAP URL.
pub fn percent_encode(text: &str, keep: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.as_bytes().contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The bytes of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// Large files are streamed from disk rather than read into memory.
    File(PathBuf),
}

/// One input.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub origin: Origin,
    pub payload: Payload,
    pub received_at: DateTime<Utc>,
}

/// Size and SHA-256 of an input, which recognise byte-identical inputs before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    pub sha256: [u8; 32],
}

impl Envelope {
    pub fn new(origin: Origin, payload: Payload) -> Self {
        Envelope { origin, payload, received_at: Utc::now() }
    }

    /// The tracing span of this input: every log line about it carries its channel, its origin
    /// and, once the store has recorded it, its id (`span.record("input", id)`).
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("input", channel = self.origin.channel(), origin = %self.origin, input = tracing::field::Empty)
    }

    /// The input's size in bytes (0 for a file that cannot be read: reading it reports why).
    pub fn size(&self) -> u64 {
        match &self.payload {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::File(path) => std::fs::metadata(path).map_or(0, |metadata| metadata.len()),
        }
    }

    /// Hashes the input (reading a file payload once, in 256 KiB steps).
    pub fn fingerprint(&self) -> Result<Fingerprint, IngestError> {
        let mut hasher = Sha256::new();
        let size = match &self.payload {
            Payload::Bytes(bytes) => {
                hasher.update(bytes);
                bytes.len() as u64
            }
            Payload::File(path) => {
                let what = path.display().to_string();
                let mut file = std::fs::File::open(path).map_err(|err| from_io(err, &what))?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut size = 0u64;
                loop {
                    let n = file.read(&mut buf).map_err(|err| from_io(err, &what))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                size
            }
        };
        Ok(Fingerprint { size, sha256: hasher.finalize().into() })
    }

    /// The envelope with a file payload read into memory when the file is at most `cap`
    /// bytes (small inputs are then read once, not once to hash and once to parse).
    pub fn loaded_if_smaller_than(self, cap: u64) -> Result<Envelope, IngestError> {
        let Payload::File(path) = &self.payload else {
            return Ok(self);
        };
        let what = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|err| from_io(err, &what))?;
        if file.metadata().map_err(|err| from_io(err, &what))?.len() > cap {
            return Ok(self);
        }
        let mut bytes = Vec::new();
        file.take(cap + 1).read_to_end(&mut bytes).map_err(|err| from_io(err, &what))?;
        if bytes.len() as u64 > cap {
            return Ok(self);
        }
        Ok(Envelope { payload: Payload::Bytes(bytes), ..self })
    }

    /// The whole input in memory, for keeping a rejected input; `None` when it is larger
    /// than `cap`.
    pub fn bytes_up_to(&self, cap: u64) -> Result<Option<Vec<u8>>, IngestError> {
        match &self.payload {
            Payload::Bytes(bytes) => Ok((bytes.len() as u64 <= cap).then(|| bytes.clone())),
            Payload::File(path) => {
                let what = path.display().to_string();
                let file = std::fs::File::open(path).map_err(|err| from_io(err, &what))?;
                let mut bytes = Vec::new();
                file.take(cap + 1).read_to_end(&mut bytes).map_err(|err| from_io(err, &what))?;
                Ok((bytes.len() as u64 <= cap).then_some(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_origins_are_imap_urls() {
        let origin = Origin::Imap {
            account: format!("{}@imap.example.com:993", percent_encode("dmarc@example.com", "")),
            folder: "Reports/DMARC 2026".into(),
            uid_validity: 1_796_108_078,
            uid: 42,
        };
        assert_eq!(origin.channel(), "imap");
        assert_eq!(
            origin.to_string(),
            "imap://dmarc%40example.com@imap.example.com:993/Reports/DMARC%202026;UIDVALIDITY=1796108078/;UID=42"
        );
    }
}
