//! `dmarcpipe fetch`: every configured IMAP mailbox read once, for cron and systemd timers;
//! and the delivery of IMAP messages to the store, which `serve` uses for its pollers too.
//!
//! Each `[[imap]]` mailbox (or those named with `--mailbox`) gets a poller from
//! `dmarcpipe_ingest::intake::imap`; they run at once. Every message goes through the same
//! pipeline as `import` (channel `imap`; origin: account, folder, UIDVALIDITY and UID), small
//! ones together in one statement, each commit waiting for the disk, and is moved to the
//! folder of its outcome only then. A lost connection or a database outage is retried with
//! back-off for up to [`PATIENCE`]; a refused login is not retried. At the end: the outcome
//! counts per mailbox (stderr, or `--json` on stdout), and the exit code of `import`: 0 all handled, 1 some rejected, too large or not stored, 2 a mailbox
//! could not be read to its end (login refused, server or database away). Then the source
//! addresses due for enrichment are enriched (`enrich.rs`), unless `--no-enrich` or
//! `DMARCPIPE_NO_ENRICH=1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::budget::MemoryBudget;
use dmarcpipe_ingest::envelope::Envelope;
use dmarcpipe_ingest::intake::imap::{Deliver, Delivered, MailboxSettings, NotStored, Poller, Tally};
use dmarcpipe_store::Store;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{connect, enrich};
use crate::cli::FetchArgs;
use crate::config::FileConfig;
use crate::exit;

/// How long `fetch` keeps retrying a server or a database that went away.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Stores IMAP messages: small ones in one statement, each its own input and commit, every
/// commit on disk before the poller moves the message.
#[derive(Debug, Clone)]
pub struct MailboxDelivery {
    pub store: Store,
    pub limits: Limits,
    /// Told when messages were stored (`serve`'s background enricher).
    pub stored: Option<Arc<Notify>>,
}

impl Deliver for MailboxDelivery {
    async fn deliver(&self, envelopes: Vec<Envelope>) -> Vec<Result<Delivered, NotStored>> {
        let results = self.store.ingest_many(envelopes, &self.limits).await;
        if let Some(stored) = &self.stored
            && results.iter().any(Result::is_ok)
        {
            stored.notify_one();
        }
        results
            .into_iter()
            .map(|result| match result {
                Ok(result) => Ok(result),
                Err(err) => Err(NotStored { transient: err.is_transient(), reason: err.to_string() }),
            })
            .collect()
    }
}

/// One mailbox in the summary.
#[derive(Debug, Serialize)]
struct MailboxSummary {
    name: String,
    #[serde(flatten)]
    tally: Tally,
    /// Why the mailbox was not read to its end.
    error: Option<String>,
}

/// What `fetch --json` prints.
#[derive(Debug, Serialize)]
struct Summary {
    #[serde(flatten)]
    total: Tally,
    seconds: f64,
    /// Peak resident memory of this process (Linux), for the benchmark.
    peak_rss_bytes: Option<u64>,
    mailboxes: Vec<MailboxSummary>,
}

/// The mailboxes to read: all, or those named.
fn chosen(config: &FileConfig, limits: &Limits, names: &[String]) -> Result<Vec<MailboxSettings>> {
    let mailboxes = config.mailboxes(limits)?;
    if mailboxes.is_empty() {
        bail!("no IMAP mailbox configured: add an [[imap]] section to the config file (--config FILE)");
    }
    for name in names {
        if !mailboxes.iter().any(|m| &m.name == name) {
            let known: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
            bail!("no [[imap]] mailbox is named `{name}` (there are: {})", known.join(", "));
        }
    }
    Ok(mailboxes.into_iter().filter(|m| names.is_empty() || names.contains(&m.name)).collect())
}

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: FetchArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    let mut mailboxes = chosen(config, &limits, &args.mailboxes)?;
    // One memory budget for the messages fetched and the inputs being stored.
    let budget = MemoryBudget::new(limits.max_memory);
    for mailbox in &mut mailboxes {
        mailbox.budget = Some(budget.clone());
    }
    // Opened first: a bad [enrich] setting stops the fetch before anything is stored.
    let enrichment = if enrich::skipped(args.enrich) { None } else { Some(enrich::open(config, false)?) };
    let store = connect(config, database_url, (mailboxes.len() as u32 + 1).max(2)).await?.with_memory_budget(budget);
    let pool = store.pool().clone();
    let delivery = Arc::new(MailboxDelivery { store, limits, stored: None });
    let mut pollers = Vec::with_capacity(mailboxes.len());
    for settings in mailboxes {
        let name = settings.name.clone();
        pollers.push(Poller::new(settings, delivery.clone()).map_err(|err| anyhow::anyhow!("mailbox {name}: {err}"))?);
    }

    let (stop, shutdown) = watch::channel(false);
    let signals = tokio::spawn(async move {
        super::serve::wait_for_signal().await;
        tracing::info!("Stopping: the messages in hand are stored and moved, then each mailbox logs out.");
        let _ = stop.send(true);
        // Keep the sender until the process ends, so that pollers never see it dropped.
        std::future::pending::<()>().await;
    });
    let started = Instant::now();
    let mut running = JoinSet::new();
    for (position, mut poller) in pollers.into_iter().enumerate() {
        let shutdown = shutdown.clone();
        running.spawn(async move {
            let ended = poller.fetch_once(PATIENCE, shutdown).await;
            let name = poller.settings().name.clone();
            (
                position,
                MailboxSummary { name, tally: poller.tally().clone(), error: ended.err().map(|e| e.to_string()) },
            )
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = running.join_next().await {
        done.push(joined?);
    }
    signals.abort();
    done.sort_by_key(|(position, _)| *position);
    let mailboxes: Vec<MailboxSummary> = done.into_iter().map(|(_, summary)| summary).collect();

    let mut total = Tally::default();
    for mailbox in &mailboxes {
        total.merge(&mailbox.tally);
        tracing::info!(
            mailbox = %mailbox.name,
            inputs = mailbox.tally.inputs,
            stored = mailbox.tally.stored,
            duplicate = mailbox.tally.duplicate,
            not_report = mailbox.tally.not_report,
            rejected = mailbox.tally.rejected,
            oversized = mailbox.tally.oversized,
            failed = mailbox.tally.failed,
            "Fetch of mailbox {} finished.",
            mailbox.name
        );
    }
    let summary = Summary {
        total,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: super::import::peak_rss_bytes(),
        mailboxes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        for mailbox in &summary.mailboxes {
            eprintln!("{}", text(mailbox));
        }
    }
    for mailbox in &summary.mailboxes {
        if let Some(error) = &mailbox.error {
            eprintln!("dmarcpipe: mailbox {}: {error}", mailbox.name);
        }
    }
    if let Some((enricher, settings)) = &enrichment {
        enrich::after_storing(&pool, enricher, settings, args.quiet).await;
    }
    Ok(exit_code(&summary))
}

fn exit_code(summary: &Summary) -> u8 {
    let total = &summary.total;
    if summary.mailboxes.iter().any(|m| m.error.is_some()) {
        exit::FATAL
    } else if total.rejected + total.oversized + total.failed > 0 {
        exit::REJECTED
    } else {
        exit::OK
    }
}

/// `reports: 12 messages: 10 stored (11 reports, 40 records, 2210 messages), ...`
fn text(mailbox: &MailboxSummary) -> String {
    let t = &mailbox.tally;
    let mut line = format!(
        "{}: {} messages: {} stored ({} reports{}, {} records, {} messages), {} duplicate, {} not a report, {} rejected",
        mailbox.name,
        t.inputs,
        t.stored,
        t.reports,
        if t.forensic > 0 { format!(" of which {} failure reports", t.forensic) } else { String::new() },
        t.records,
        t.messages,
        t.duplicate,
        t.not_report,
        t.rejected
    );
    if t.oversized > 0 {
        line.push_str(&format!(", {} over the size cap", t.oversized));
    }
    if t.failed > 0 {
        line.push_str(&format!(", {} not stored", t.failed));
    }
    if t.not_moved > 0 {
        line.push_str(&format!(", {} stored but not moved", t.not_moved));
    }
    line
}

/// `serve`: one poller per mailbox, each until `shutdown`.
pub fn watch_mailboxes(
    mailboxes: Vec<MailboxSettings>,
    delivery: MailboxDelivery,
    shutdown: &watch::Receiver<bool>,
) -> Result<JoinSet<()>> {
    let delivery = Arc::new(delivery);
    let mut running = JoinSet::new();
    for settings in mailboxes {
        let name = settings.name.clone();
        let mut poller =
            Poller::new(settings, delivery.clone()).map_err(|err| anyhow::anyhow!("mailbox {name}: {err}"))?;
        let shutdown = shutdown.clone();
        running.spawn(async move { poller.watch(shutdown).await });
    }
    Ok(running)
}
