//! `dmarcpipe reprocess`: runs rejected inputs again from their kept bytes, after an upgrade
//! fixed what rejected them. Each input's row is updated in place; concurrent runs skip inputs
//! another run is working on. Kept bytes are sealed with age: opening them takes the identity
//! (`-i FILE`).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::budget::MemoryBudget;
use dmarcpipe_store::Outcome;
use dmarcpipe_store::seal::Opener;
use serde::Serialize;

use super::connect;
use crate::cli::ReprocessArgs;
use crate::config::FileConfig;
use crate::exit;

#[derive(Debug, Default, Serialize)]
struct Summary {
    inputs: u64,
    stored: u64,
    duplicate: u64,
    not_report: u64,
    rejected: u64,
    skipped: u64,
    records: u64,
}

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: ReprocessArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    let opener = args.identity.as_deref().map(Opener::from_file).transpose()?.map(Arc::new);
    let store = connect(config, database_url, 4).await?.with_memory_budget(MemoryBudget::new(limits.max_memory));
    let candidates = store.kept_rejected_inputs(&args.inputs).await.context("cannot list rejected inputs")?;
    if opener.is_none() && store.kept_inputs_sealed(&args.inputs).await.context("cannot list rejected inputs")? {
        bail!("the kept bytes of rejected inputs are sealed: give the age identity that opens them (-i FILE)");
    }
    let mut summary = Summary::default();
    for input in candidates {
        let Some(result) = store
            .reprocess(input, &limits, opener.as_ref())
            .await
            .with_context(|| format!("reprocessing input {input}"))?
        else {
            summary.skipped += 1;
            continue;
        };
        summary.inputs += 1;
        summary.records += result.records;
        match result.outcome {
            Outcome::Stored => summary.stored += 1,
            Outcome::Duplicate => summary.duplicate += 1,
            Outcome::NotReport => summary.not_report += 1,
            Outcome::Rejected => {
                summary.rejected += 1;
                eprintln!("still rejected: input {input}: {}", result.error.as_deref().unwrap_or("rejected"));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        eprintln!(
            "{} inputs reprocessed: {} stored, {} duplicate, {} not a report, {} still rejected ({} records){}",
            summary.inputs,
            summary.stored,
            summary.duplicate,
            summary.not_report,
            summary.rejected,
            summary.records,
            if summary.skipped > 0 {
                format!(", {} skipped (in progress elsewhere)", summary.skipped)
            } else {
                String::new()
            }
        );
    }
    Ok(if summary.rejected > 0 { exit::REJECTED } else { exit::OK })
}
