//! The one error type of the ingest crate.
//!
//! Every variant says which stage failed and why, in words an operator can act on; the
//! caller adds the name of the input (file, mailbox uid, SMTP peer). `stage()` tells where
//! in the pipeline the input was stopped, which is what `dmarc_inputs.stage` records.

use std::fmt;

/// Where in the pipeline an input was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading, MIME decoding, decompression, archive walking.
    Unpack,
    /// XML or ARF parsing and validation of the report content.
    Parse,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Unpack => "unpack",
            Stage::Parse => "parse",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an input, or one report inside it, could not be accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// A configured safety limit was exceeded (bombs, absurd nesting).
    #[error("{what} exceeds the limit of {limit}")]
    Limit { what: String, limit: String },

    /// A compressed stream or archive is damaged or truncated.
    #[error("corrupt {format}: {reason}")]
    Corrupt { format: &'static str, reason: String },

    /// The XML is not well-formed, or uses a DTD (XXE, entity expansion), which we refuse.
    #[error("malformed XML at byte {position}: {reason}")]
    Xml { position: u64, reason: String },

    /// The report is well-formed but lacks data we cannot do without, or contradicts itself.
    #[error("invalid report: {0}")]
    Invalid(String),

    /// The content is a report of a kind this version does not store.
    #[error("unsupported report: {0}")]
    Unsupported(String),

    /// Reading the input failed (file vanished, permission denied, ...).
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl IngestError {
    pub fn stage(&self) -> Stage {
        match self {
            IngestError::Limit { .. } | IngestError::Corrupt { .. } | IngestError::Io { .. } => Stage::Unpack,
            IngestError::Xml { .. } | IngestError::Invalid(_) | IngestError::Unsupported(_) => Stage::Parse,
        }
    }

    /// True when retrying the same input later may succeed (the file system hiccuped), as
    /// opposed to the content being bad, which no retry fixes.
    pub fn is_transient(&self) -> bool {
        matches!(self, IngestError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    }

    /// A copy of this error, for errors that must be reported from behind a shared reference
    /// (quick-xml keeps I/O errors in an `Arc`).
    pub fn duplicate(&self) -> IngestError {
        match self {
            IngestError::Limit { what, limit } => IngestError::Limit { what: what.clone(), limit: limit.clone() },
            IngestError::Corrupt { format, reason } => IngestError::Corrupt { format, reason: reason.clone() },
            IngestError::Xml { position, reason } => IngestError::Xml { position: *position, reason: reason.clone() },
            IngestError::Invalid(reason) => IngestError::Invalid(reason.clone()),
            IngestError::Unsupported(reason) => IngestError::Unsupported(reason.clone()),
            IngestError::Io { what, source } => {
                IngestError::Io { what: what.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
        }
    }

    pub(crate) fn limit(what: impl Into<String>, limit: impl fmt::Display) -> Self {
        IngestError::Limit { what: what.into(), limit: limit.to_string() }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        IngestError::Invalid(reason.into())
    }
}

/// Shown as its message (in `dmarcpipe parse` output and the golden files).
impl serde::Serialize for IngestError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Errors surface from `std::io::Read` adapters (decompressors, limit counters) as
/// `io::Error`s; this recovers the original `IngestError` that the adapter wrapped.
pub(crate) fn from_io(err: std::io::Error, what: &str) -> IngestError {
    if !err.get_ref().is_some_and(|inner| inner.is::<IngestError>()) {
        return IngestError::Io { what: what.to_owned(), source: err };
    }
    let kind = err.kind();
    match err.into_inner().map(|inner| inner.downcast::<IngestError>()) {
        Some(Ok(ingest)) => *ingest,
        Some(Err(other)) => IngestError::Io { what: what.to_owned(), source: std::io::Error::new(kind, other) },
        None => IngestError::Io { what: what.to_owned(), source: kind.into() },
    }
}

/// Wraps an `IngestError` so it can travel through `std::io::Read`.
pub(crate) fn to_io(err: IngestError) -> std::io::Error {
    std::io::Error::other(err)
}
