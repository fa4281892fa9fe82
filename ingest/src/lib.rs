//! dmarcpipe-ingest: everything between the bytes of an input and the normalized reports in
//! it, without a database.
//!
//! # Layout
//! - [`envelope`]: an input as received (bytes or a file, where it came from, when).
//! - [`read`]: the one way from an input to the items in it (aggregate reports, failure
//!   reports, TLS reports, problems, parts that are not reports), for every consumer.
//! - [`inspect`]: all the items of an input in memory (`dmarcpipe parse`, the golden tests,
//!   and the store for every input that fits).
//! - [`unpack`]: sniffing, capped decompression (gzip, zip), MIME walking; finds the report
//!   documents inside an input.
//! - [`charset`]: whatever encoding a document is in, to UTF-8.
//! - [`enrich`]: what is known about a source IP (geolocation and network from MMDB files,
//!   known senders), off the ingest path.
//! - [`aggregate`]: the streaming RUA XML parser.
//! - [`forensic`]: failure (RUF) reports: ARF and plain text.
//! - [`tlsrpt`]: SMTP TLS reports (RFC 8460 JSON).
//! - [`model`]: the normalized report types, enumerations and warnings.
//! - [`outcome`]: what became of an input (decided by the store, acted on by the channels).
//! - [`intake`]: the channels inputs arrive by (files, mbox, maildir).
//! - [`limits`] and [`error`]: safety caps and the error type; [`budget`]: the memory budget
//!   of the whole process.
//! - `testkit` (feature `testkit`): report inputs made to order for tests and the benchmark.

pub mod aggregate;
pub mod budget;
pub mod charset;
pub mod enrich;
pub mod envelope;
pub mod error;
pub mod forensic;
pub mod inspect;
pub mod intake;
pub mod limits;
pub mod model;
pub(crate) mod normalize;
pub mod outcome;
pub mod read;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tlsrpt;
pub mod unpack;

pub use envelope::{Envelope, Origin, Payload};
pub use error::{IngestError, Stage};
pub use limits::Limits;
