//! Parses a (gzip) aggregate report as the pipeline does and prints records per second:
//! `cargo run --release -p dmarcpipe-ingest --example parse_speed FILE`.
use std::io::BufReader;
use std::time::Instant;

use dmarcpipe_ingest::aggregate::{AggregateParser, Opened};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: parse_speed FILE")?;
    let file = std::fs::File::open(&path)?;
    let started = Instant::now();
    #[allow(clippy::disallowed_types)] // measures the parser alone, on a trusted file
    let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, file));
    let reader = BufReader::with_capacity(64 * 1024, decoder);
    let Opened::Report(mut parser) = AggregateParser::open(reader, 32)? else {
        return Err("not a report".into());
    };
    let mut messages = 0i64;
    while let Some(record) = parser.next_record()? {
        messages += record.count;
    }
    let summary = parser.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} records, {messages} messages in {seconds:.2}s: {:.0} records/s",
        summary.record_count,
        summary.record_count as f64 / seconds
    );
    Ok(())
}
