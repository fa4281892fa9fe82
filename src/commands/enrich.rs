//! `dmarcpipe enrich [--all | --stale]`, and the enrichment that `import` and `fetch` run at
//! their end and `serve` runs in the background.
//!
//! Every one of them takes due addresses from the queue in `source_ips` in batches
//! (`dmarcpipe_store::enrich::claim_due`: several enrichers, on one host or many, never take
//! the same address), hands each batch to the enricher (`dmarcpipe_ingest::enrich::enricher`:
//! reverse DNS, geolocation databases, known senders) and records what it found
//! (`dmarcpipe_store::enrich::record`; a batch is written while the next is looked up), until
//! nothing is due or `--limit` is reached. It never runs on the path of an input: `import`
//! and `fetch` enrich after their inputs are stored, `serve` in a task of its own, woken when
//! a message was stored and every [`BACKGROUND_EVERY`] otherwise. `--no-enrich` or
//! `DMARCPIPE_NO_ENRICH=1` leaves the addresses queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dmarcpipe_ingest::enrich::enricher::{Enricher, Tally};
use dmarcpipe_store::StoreError;
use dmarcpipe_store::enrich::{
    Schedule, Staleness, claim_due, count_due, mark_all_due, mark_stale_due, queue_all_sources, record,
};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::connect;
use crate::cli::{EnrichArgs, NoEnrichArg};
use crate::config::{EnrichConfig, FileConfig};
use crate::exit;

/// Addresses taken at once when reverse DNS is looked up (their lookups run concurrently).
const DNS_BATCH: u64 = 1_000;
/// Addresses taken at once without DNS (in-memory lookups only: larger batches, fewer
/// statements).
const OFFLINE_BATCH: u64 = 10_000;

/// How often `serve` looks for due addresses when no message woke it.
pub const BACKGROUND_EVERY: Duration = Duration::from_secs(30);

/// What a run did, printed as text or (`--json`) as this object.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub tally: Tally,
    /// Addresses queued first (`--all`: sources of records stored before the queue).
    pub queued: u64,
    /// Whether reverse DNS was looked up.
    pub dns: bool,
    /// The geolocation databases open (type or package, and build).
    pub geolocation: Vec<String>,
    /// What the licences of those databases ask to be shown with the data.
    pub attribution: Vec<String>,
    /// Addresses still due at the end (`--limit`, or queued meanwhile).
    pub still_due: i64,
    pub seconds: f64,
}

impl Summary {
    pub fn text(&self) -> String {
        let tally = &self.tally;
        let ptr = if self.dns {
            format!(
                "PTR {} found ({} confirmed), {} nxdomain, {} no answer, {} timeout, {} error",
                tally.ptr_found,
                tally.ptr_confirmed,
                tally.ptr_nxdomain,
                tally.ptr_no_answer,
                tally.ptr_timeout,
                tally.ptr_error
            )
        } else {
            "no PTR lookups (DNS off)".to_owned()
        };
        let mut text = format!(
            "enriched {} source addresses in {:.1}s: {ptr}; {} with a country, {} with an ASN, {} with a known sender",
            tally.ips, self.seconds, tally.with_country, tally.with_asn, tally.with_sender
        );
        if tally.ptr_timeout + tally.ptr_error > 0 {
            text.push_str(&format!(
                " ({} retried later)",
                if tally.ptr_timeout + tally.ptr_error == 1 { "the failed lookup is" } else { "failed lookups are" }
            ));
        }
        if self.queued > 0 {
            text.push_str(&format!("; {} addresses queued from the stored records", self.queued));
        }
        if self.still_due > 0 {
            text.push_str(&format!("; {} still due", self.still_due));
        }
        if !self.geolocation.is_empty() {
            text.push_str(&format!("\ngeolocation: {}", self.geolocation.join(", ")));
        }
        for line in &self.attribution {
            text.push('\n');
            text.push_str(line);
        }
        text
    }
}

/// Whether enrichment at the end of `import` and `fetch` (and in `serve`) is skipped:
/// `--no-enrich`, or `DMARCPIPE_NO_ENRICH` set to anything but empty, `0`, `false` or `no`.
pub fn skipped(flag: NoEnrichArg) -> bool {
    flag.no_enrich || skipped_by_environment()
}

pub fn skipped_by_environment() -> bool {
    std::env::var("DMARCPIPE_NO_ENRICH")
        .is_ok_and(|value| !matches!(value.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
}

/// The enricher of the configuration: databases opened, catalog read, resolver set up. Called
/// before anything is stored, so that a bad setting stops the command at once.
pub fn open(config: &FileConfig, no_dns: bool) -> Result<(Enricher, EnrichConfig)> {
    let settings = config.enrich(no_dns)?;
    let file = config.path.as_ref().map_or("the configuration".into(), |path| path.display().to_string());
    let enricher =
        Enricher::new(&settings.enricher).with_context(|| format!("cannot start the enricher ({file} [enrich])"))?;
    Ok((enricher, settings))
}

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: EnrichArgs) -> Result<u8> {
    let (enricher, settings) = open(config, args.no_dns)?;
    let store = connect(config, database_url, 2).await?;
    let pool = store.pool();
    let started = Instant::now();
    let schedule = Schedule { refresh: settings.refresh, ..Schedule::default() };
    let mut queued = 0;
    if args.all {
        queued = queue_all_sources(pool).await.context("cannot queue the sources of the stored records")?;
        mark_all_due(pool).await.context("cannot make every address due")?;
    } else if args.stale {
        let staleness =
            Staleness { dns: enricher.has_dns(), geo_sources: enricher.geo().sources(), refresh: settings.refresh };
        mark_stale_due(pool, &staleness).await.context("cannot find the stale addresses")?;
    }
    let tally = enrich_due(pool, &enricher, &schedule, args.limit).await.context("enrichment stopped")?;
    let summary = summarize(pool, &enricher, tally, queued, started).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.text());
    }
    Ok(exit::OK)
}

async fn summarize(
    pool: &PgPool,
    enricher: &Enricher,
    tally: Tally,
    queued: u64,
    started: Instant,
) -> Result<Summary, StoreError> {
    Ok(Summary {
        tally,
        queued,
        dns: enricher.has_dns(),
        geolocation: enricher.geo().sources(),
        attribution: enricher.geo().attributions(),
        still_due: count_due(pool).await?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Enriches due addresses, batch by batch, until none is due or `limit` are done.
///
/// The writing of a batch overlaps the claim and lookups of the next: the lookups are CPU
/// (or DNS) work of this process, the writes PostgreSQL's, so both proceed at once. At most
/// one batch is being written while the next is looked up, and a batch is recorded before the
/// one after it; an error of either stops the run (what was claimed and not recorded is due
/// again when its lease is over). `RUST_LOG=dmarcpipe=debug` logs the time of each phase.
pub async fn enrich_due(
    pool: &PgPool,
    enricher: &Enricher,
    schedule: &Schedule,
    limit: Option<u64>,
) -> Result<Tally, StoreError> {
    let batch = if enricher.has_dns() { DNS_BATCH } else { OFFLINE_BATCH };
    let mut tally = Tally::default();
    let mut writing: Option<JoinHandle<Result<u64, StoreError>>> = None;
    loop {
        let wanted = limit.map_or(batch, |limit| batch.min(limit.saturating_sub(tally.ips)));
        if wanted == 0 {
            break;
        }
        let started = Instant::now();
        let tasks = claim_due(pool, wanted as i64, schedule.lease).await?;
        if tasks.is_empty() {
            break;
        }
        let claimed = started.elapsed();
        let found = enricher.enrich(&tasks).await;
        let looked_up = started.elapsed() - claimed;
        tally.add(&found);
        if let Some(previous) = writing.take() {
            written(previous).await?;
        }
        tracing::debug!(
            ips = found.len(),
            claim_seconds = claimed.as_secs_f64(),
            lookup_seconds = looked_up.as_secs_f64(),
            previous_write_wait_seconds = (started.elapsed() - claimed - looked_up).as_secs_f64(),
            "Batch claimed and looked up."
        );
        let (pool, schedule) = (pool.clone(), *schedule);
        writing = Some(tokio::spawn(async move {
            let started = Instant::now();
            let rows = record(&pool, &found, &schedule).await?;
            tracing::debug!(rows, record_seconds = started.elapsed().as_secs_f64(), "Batch recorded.");
            Ok(rows)
        }));
    }
    if let Some(last) = writing {
        written(last).await?;
    }
    Ok(tally)
}

/// The outcome of a batch's writing task (whose panic, if any, goes on here).
async fn written(task: JoinHandle<Result<u64, StoreError>>) -> Result<u64, StoreError> {
    match task.await {
        Ok(outcome) => outcome,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

/// The enrichment at the end of `import` and `fetch`: what is due now (the addresses just
/// stored among them). Its summary goes to stderr unless `quiet`; a failure is reported and
/// leaves the addresses queued, without changing the command's outcome (its inputs are stored).
pub async fn after_storing(pool: &PgPool, enricher: &Enricher, settings: &EnrichConfig, quiet: bool) {
    let started = Instant::now();
    let schedule = Schedule { refresh: settings.refresh, ..Schedule::default() };
    let done = match enrich_due(pool, enricher, &schedule, None).await {
        Ok(tally) => summarize(pool, enricher, tally, 0, started).await,
        Err(err) => Err(err),
    };
    match done {
        Ok(summary) if !quiet => eprintln!("{}", summary.text()),
        Ok(_) => {}
        Err(err) => eprintln!(
            "dmarcpipe: enrichment stopped: {err}; the source addresses stay queued for `dmarcpipe enrich` or `serve`"
        ),
    }
}

/// `serve`'s enricher: enriches what is due whenever `wake` is notified (a message was stored)
/// or [`BACKGROUND_EVERY`] has passed, until `shutdown`. Failures are logged and tried again
/// next time.
pub async fn in_background(
    pool: PgPool,
    enricher: Arc<Enricher>,
    settings: EnrichConfig,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let schedule = Schedule { refresh: settings.refresh, ..Schedule::default() };
    loop {
        let started = Instant::now();
        let work = enrich_due(&pool, &enricher, &schedule, None);
        tokio::select! {
            done = work => match done {
                Ok(tally) if tally.ips > 0 => tracing::info!(
                    ips = tally.ips,
                    ptr_found = tally.ptr_found,
                    ptr_timeout = tally.ptr_timeout,
                    with_country = tally.with_country,
                    with_sender = tally.with_sender,
                    seconds = started.elapsed().as_secs_f64(),
                    "Source addresses enriched."
                ),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "Enrichment stopped; trying again later."),
            },
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(BACKGROUND_EVERY) => {}
            _ = wake.notified() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}
