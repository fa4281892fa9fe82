//! DMARC aggregate (RUA) reports: RFC 7489 Appendix C and RFC 9990 XML.
//!
//! Input: the UTF-8-or-otherwise bytes of one XML document, as a `BufRead` (after
//! decompression). Output: a [`ReportHeader`](crate::model::ReportHeader), then records one by
//! one, then a [`ReportSummary`](crate::model::ReportSummary) with totals and warnings.
//! [`AggregateParser`] streams; [`parse`] collects a whole report for small inputs and tests.

mod parser;
mod xml;

use std::io::BufRead;

pub use parser::{AggregateParser, DMARC_2_NAMESPACE, Opened};
// The TLS report parser applies the same cap to the text of its natural key.
pub(crate) use parser::MAX_KEY_BYTES;

use crate::error::IngestError;
use crate::model::AggregateReport;

/// Parses a whole report into memory.
pub fn parse<R: BufRead>(input: R, max_xml_depth: u32) -> Result<Opened<AggregateReport>, IngestError> {
    let mut parser = match AggregateParser::open(input, max_xml_depth)? {
        Opened::Report(parser) => parser,
        Opened::NotAggregate(what) => return Ok(Opened::NotAggregate(what)),
    };
    let header = parser.header().clone();
    let mut records = Vec::new();
    while let Some(record) = parser.next_record()? {
        records.push(record);
    }
    let summary = parser.finish()?;
    Ok(Opened::Report(AggregateReport { header, summary, records }))
}
