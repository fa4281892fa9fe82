//! `dmarcpipe parse`: what dmarcpipe finds in inputs, as JSON, without a database. Useful to
//! check a file before importing it, and what the golden tests of `samples/` compare.

use anyhow::Result;
use dmarcpipe_ingest::inspect::{Contents, inspect};
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
    inspection: Option<&'a dmarcpipe_ingest::inspect::Inspection>,
}

pub fn run(config: &FileConfig, args: ParseArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    let mut code = exit::OK;
    for item in Walk::new(args.paths, limits.max_message_bytes).excluding(args.exclude) {
        let text = match item {
            Ok(envelope) => {
                let inspection = inspect(&envelope, &limits);
                if inspection.verdict == Contents::Rejected {
                    code = exit::REJECTED;
                }
                let parsed = Parsed { input: envelope.origin.to_string(), error: None, inspection: Some(&inspection) };
                serde_json::to_string_pretty(&parsed)?
            }
            Err(err) => {
                code = exit::REJECTED;
                let parsed = Parsed {
                    input: err.path.display().to_string(),
                    error: Some(err.source.to_string()),
                    inspection: None,
                };
                serde_json::to_string_pretty(&parsed)?
            }
        };
        println!("{text}");
    }
    Ok(code)
}
