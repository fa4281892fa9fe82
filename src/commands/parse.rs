//! `dmarcpipe parse`: what dmarcpipe finds in inputs, as JSON, without a database. Useful to
//! check a file before importing it; its objects are those of the golden files of `samples/`.
//!
//! Output: one JSON document, an array with an object per input (a file, or a message of an
//! mbox or maildir), written as each input is read so that a large directory is never held in
//! memory; or, with `--jsonl`, one object per line (JSON Lines). Exit code 1 when an input
//! holds a problem or cannot be read, as for `import`.

use std::io::Write;

use anyhow::Result;
use dmarcpipe_ingest::inspect::{Contents, Inspection, inspect};
use dmarcpipe_ingest::intake::files::Walk;
use serde::Serialize;

use crate::cli::ParseArgs;
use crate::config::FileConfig;
use crate::exit;

#[derive(Serialize)]
struct Parsed<'a> {
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inspection: Option<&'a Inspection>,
}

pub fn run(config: &FileConfig, args: ParseArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    let mut code = exit::OK;
    let mut out = std::io::stdout().lock();
    let mut first = true;
    for item in Walk::new(args.paths, limits.max_message_bytes).excluding(args.exclude) {
        let inspection;
        let parsed = match item {
            Ok(envelope) => {
                inspection = inspect(&envelope, &limits);
                if inspection.verdict == Contents::Rejected {
                    code = exit::REJECTED;
                }
                Parsed { input: envelope.origin.to_string(), error: None, inspection: Some(&inspection) }
            }
            Err(err) => {
                code = exit::REJECTED;
                Parsed { input: err.path.display().to_string(), error: Some(err.source.to_string()), inspection: None }
            }
        };
        if args.jsonl {
            serde_json::to_writer(&mut out, &parsed)?;
            out.write_all(b"\n")?;
        } else {
            out.write_all(if first { b"[\n" } else { b",\n" })?;
            serde_json::to_writer_pretty(&mut out, &parsed)?;
        }
        first = false;
    }
    if !args.jsonl {
        out.write_all(if first { b"[]\n" } else { b"\n]\n" })?;
    }
    out.flush()?;
    Ok(code)
}
