//! The one way from an input to what is in it.
//!
//! Input: an [`Envelope`] and the [`Limits`]. Output: calls on a [`Sink`], one per thing found,
//! in the order found: an aggregate report (opened, its records streamed to whoever reads
//! them), a failure report (parsed, with the raw mail to seal), an SMTP TLS report (parsed:
//! JSON, small and capped, see [`tlsrpt`](crate::tlsrpt)), a part that is not a report, a
//! problem (a part that could not be unpacked or parsed), and tolerated container oddities.
//!
//! [`unpack`](crate::unpack) finds the documents and mails inside the input; this module
//! decides what each one is and parses it, so every consumer (`dmarcpipe parse` and the golden
//! tests through [`inspect`](crate::inspect), and the store) sees exactly the same items. An
//! aggregate report reaches the sink as an [`AggregateDocument`] rather than a finished report,
//! because a report can hold a million records: the sink reads them one by one and keeps them or
//! streams them on. When reading it fails part-way, the sink sees the end of the records and
//! [`AggregateDocument::finish`] says so; the reason then follows as a [`Item::Problem`] of its
//! own, so that a problem is always reported the same way.

use std::io::BufRead;

use mail_parser::Message;

use crate::aggregate::{AggregateParser, Opened};
use crate::envelope::Envelope;
use crate::error::IngestError;
use crate::forensic::{self, ForensicReport};
use crate::limits::Limits;
use crate::model::{AggregateReport, Record, ReportHeader, ReportSummary};
use crate::tlsrpt::{self, TlsLimits, TlsReport};
use crate::unpack::{self, Document, DocumentKind, Visitor};

/// One thing found in an input.
#[derive(Debug)]
pub enum Item<'i, 'r> {
    /// A DMARC aggregate report; read its records from the document.
    Aggregate(&'i mut AggregateDocument<'r>),
    /// A failure (forensic) report, and the raw bytes of the report mail, which hold the
    /// original message and are to be sealed, never stored in clear.
    Forensic(Box<ForensicReport>, &'i [u8]),
    /// An SMTP TLS report (RFC 8460).
    Tls(Box<TlsReport>),
    /// Something that is not a report (text, HTML, another XML vocabulary), and what it is.
    NotReport(String),
    /// A part that could not be unpacked or parsed, and why.
    Problem(IngestError),
}

/// Receives what [`read`] finds. An error returned by the sink stops the reading (for failures
/// of the sink itself, such as the database going away; bad content is never an error here).
pub trait Sink {
    type Error;

    /// One item, found at `location` inside the input (`report.zip > a.xml`).
    fn item(&mut self, location: &str, item: Item<'_, '_>) -> Result<(), Self::Error>;

    /// A tolerated oddity of the container (junk after gzip data, lenient base64), with a
    /// stable code and a message naming where it was.
    fn warning(&mut self, code: &'static str, message: String);

    /// Reading on would hold more of the input in memory than the reader allows
    /// ([`read_within`]): `Err` to stop (the input is to be read another way), `Ok` to have the
    /// part recorded as a problem (a limit) and go on.
    fn over_memory(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Reads `envelope` and hands everything in it to `sink`, holding at most
/// [`Limits::held_per_input`] of it in memory.
pub fn read<S: Sink>(envelope: &Envelope, limits: &Limits, sink: &mut S) -> Result<(), S::Error> {
    read_within(envelope, limits, limits.held_per_input(), sink)
}

/// [`read`], holding at most `memory` bytes of the input in memory at once (the input itself,
/// mails and small archives inside it, decoded parts).
pub fn read_within<S: Sink>(envelope: &Envelope, limits: &Limits, memory: u64, sink: &mut S) -> Result<(), S::Error> {
    unpack::unpack(envelope, limits, memory.min(limits.held_per_input()), &mut Dispatch { sink, limits })
}

/// An aggregate report being read: its header is known, its records come one by one.
pub struct AggregateDocument<'r> {
    parser: Option<AggregateParser<&'r mut dyn BufRead>>,
    header: ReportHeader,
    /// Why reading stopped early, until [`read`] reports it.
    failure: Option<IngestError>,
    summary: Option<ReportSummary>,
}

impl std::fmt::Debug for AggregateDocument<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateDocument")
            .field("header", &self.header)
            .field("reading", &self.parser.is_some())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl<'r> AggregateDocument<'r> {
    fn new(parser: AggregateParser<&'r mut dyn BufRead>) -> Self {
        let header = parser.header().clone();
        AggregateDocument { parser: Some(parser), header, failure: None, summary: None }
    }

    pub fn header(&self) -> &ReportHeader {
        &self.header
    }

    /// The next record; `None` after the last one, or when the document turned out broken
    /// (then [`finish`](Self::finish) gives `None` too).
    pub fn next_record(&mut self) -> Option<Record> {
        let parser = self.parser.as_mut()?;
        match parser.next_record() {
            Ok(Some(record)) => Some(record),
            Ok(None) => {
                let parser = self.parser.take()?;
                match parser.finish() {
                    Ok(summary) => self.summary = Some(summary),
                    Err(err) => self.failure = Some(err),
                }
                None
            }
            Err(err) => {
                self.parser = None;
                self.failure = Some(err);
                None
            }
        }
    }

    /// Totals and warnings once every record has been read; `None` while records remain, or
    /// when the report is broken (the reason is reported as a problem after the sink returns).
    pub fn finish(&mut self) -> Option<ReportSummary> {
        self.summary.take()
    }

    /// The whole report in memory, or `None` when it is broken.
    pub fn read_all(&mut self) -> Option<AggregateReport> {
        let mut records = Vec::new();
        while let Some(record) = self.next_record() {
            records.push(record);
        }
        let summary = self.finish()?;
        Some(AggregateReport { header: self.header.clone(), summary, records })
    }
}

/// Turns what unpack finds into items.
struct Dispatch<'s, S> {
    sink: &'s mut S,
    limits: &'s Limits,
}

impl<S: Sink> Visitor for Dispatch<'_, S> {
    type Error = S::Error;

    fn document(&mut self, document: Document<'_>) -> Result<(), S::Error> {
        let location = document.location;
        match document.kind {
            DocumentKind::Xml => match AggregateParser::open(document.reader, self.limits.max_xml_depth) {
                Ok(Opened::Report(parser)) => {
                    let mut aggregate = AggregateDocument::new(parser);
                    self.sink.item(location, Item::Aggregate(&mut aggregate))?;
                    // A sink that stopped reading (a report stored before) leaves no failure.
                    match aggregate.failure.take() {
                        Some(err) => self.sink.item(location, Item::Problem(err)),
                        None => Ok(()),
                    }
                }
                Ok(Opened::NotAggregate(what)) => self.sink.item(location, Item::NotReport(what)),
                Err(err) => self.sink.item(location, Item::Problem(err)),
            },
            DocumentKind::Json => match tlsrpt::parse(document.reader, &TlsLimits::default(), document.memory) {
                Ok(tlsrpt::Opened::Report(report)) => self.sink.item(location, Item::Tls(report)),
                Ok(tlsrpt::Opened::NotTlsReport(what)) => self.sink.item(location, Item::NotReport(what)),
                Ok(tlsrpt::Opened::OverMemory(error)) => {
                    self.sink.over_memory()?;
                    self.sink.item(location, Item::Problem(error))
                }
                Err(err) => self.sink.item(location, Item::Problem(err)),
            },
        }
    }

    fn message(&mut self, location: &str, message: &Message<'_>, base: usize) -> Result<bool, S::Error> {
        match forensic::read(message, base) {
            Some(report) => {
                self.sink.item(location, Item::Forensic(Box::new(report), message.raw_message()))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), S::Error> {
        self.sink.item(location, Item::Problem(error))
    }

    fn skipped(&mut self, location: &str, what: &str) -> Result<(), S::Error> {
        self.sink.item(location, Item::NotReport(what.to_owned()))
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.sink.warning(code, message);
    }

    fn over_memory(&mut self, _location: &str) -> Result<(), S::Error> {
        self.sink.over_memory()
    }
}
