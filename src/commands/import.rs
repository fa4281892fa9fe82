//! `dmarcpipe import`: files, directories, mbox files and maildirs in parallel, or one message
//! from stdin for an MTA pipe.
//!
//! A walker thread turns paths into envelopes; up to `--jobs` of them are stored at once, each
//! in its own transaction (safe to run twice at once: duplicates are recognised by content and
//! by natural key). A terminal gets a progress bar; `--json` prints a summary object; the exit
//! code says whether everything was handled (0), some inputs were rejected (1), or the run
//! failed (2). On stdin, a database that cannot be reached gives 75 (EX_TEMPFAIL) so the MTA
//! retries.
//!
//! At the end, the source addresses due for enrichment (those just stored among them) are
//! enriched (`enrich.rs`), unless `--no-enrich` or `DMARCPIPE_NO_ENRICH=1`; one message on
//! stdin leaves them queued, so that the MTA waits for the store only.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use dmarcpipe_ingest::budget::MemoryBudget;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::intake::files::{Walk, WalkError};
use dmarcpipe_ingest::limits::format_size;
use dmarcpipe_store::{Durability, InputResult, Outcome, StoreError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinError, JoinSet};

use super::{connect, connect_with, enrich};
use crate::cli::ImportArgs;
use crate::config::FileConfig;
use crate::exit;

/// What an import did, printed as text or (`--json`) as this object.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub inputs: u64,
    pub stored: u64,
    pub duplicate: u64,
    pub not_report: u64,
    pub rejected: u64,
    /// Paths that could not be read at all (not recorded in the database).
    pub unreadable: u64,
    /// Inputs the database did not take (the run stopped or a write failed).
    pub failed: u64,
    /// Reports stored, aggregate and failure.
    pub reports: u64,
    /// Of which failure (forensic) reports.
    pub forensic: u64,
    pub reports_duplicate: u64,
    pub records: u64,
    pub messages: i64,
    pub seconds: f64,
    /// Peak resident memory of this process (Linux), for the benchmark.
    pub peak_rss_bytes: Option<u64>,
}

impl Summary {
    fn add(&mut self, result: &InputResult) {
        self.inputs += 1;
        match result.outcome {
            Outcome::Stored => self.stored += 1,
            Outcome::Duplicate => self.duplicate += 1,
            Outcome::NotReport => self.not_report += 1,
            Outcome::Rejected => self.rejected += 1,
        }
        self.reports += u64::from(result.reports_stored);
        self.forensic += u64::from(result.forensic_stored);
        self.reports_duplicate += u64::from(result.reports_duplicate);
        self.records += result.records;
        self.messages += result.messages;
    }

    fn exit_code(&self) -> u8 {
        if self.rejected + self.unreadable + self.failed > 0 { exit::REJECTED } else { exit::OK }
    }

    fn text(&self) -> String {
        format!(
            "{} inputs in {:.1}s: {} stored ({} reports{}, {} records, {} messages), {} duplicate, {} not a report, {} rejected{}{}",
            self.inputs,
            self.seconds,
            self.stored,
            self.reports,
            if self.forensic > 0 { format!(" of which {} failure reports", self.forensic) } else { String::new() },
            self.records,
            self.messages,
            self.duplicate,
            self.not_report,
            self.rejected,
            if self.unreadable > 0 { format!(", {} unreadable", self.unreadable) } else { String::new() },
            if self.failed > 0 { format!(", {} not imported", self.failed) } else { String::new() },
        )
    }
}

/// Files up to this size are read by the walker thread, so the workers only parse them.
const SMALL_FILE: u64 = 64 * 1024;

/// Most inputs handed to one task (and, when small, stored in one statement).
const BATCH: usize = 32;

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 3
}

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: ImportArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    if args.reads_stdin() {
        return import_stdin(config, database_url, &args, &limits).await;
    }
    // Opened first: a bad [enrich] setting stops the import before anything is stored.
    let enrichment = if enrich::skipped(args.enrich) { None } else { Some(enrich::open(config, false)?) };
    let jobs = args.jobs.or(config.import.jobs).unwrap_or_else(default_jobs).max(1);
    // Files stay where they are until the run ends: commit each input without waiting for the
    // disk, and make everything durable once at the end (before the summary and exit code).
    let store = connect_with(config, database_url, jobs as u32 + 2, Durability::EndOfBatch)
        .await?
        .with_memory_budget(MemoryBudget::new(limits.max_memory));
    let started = Instant::now();
    let progress = Progress::new(!args.quiet && std::io::stderr().is_terminal(), started);

    let (sender, mut receiver) = mpsc::channel::<Result<Envelope, WalkError>>(jobs * BATCH);
    let paths = args.paths.clone();
    let excluded = args.exclude.clone();
    let max_message_bytes = limits.max_message_bytes;
    let walker = tokio::task::spawn_blocking(move || {
        for item in Walk::new(paths, max_message_bytes).read_files_up_to(SMALL_FILE).excluding(excluded) {
            if sender.blocking_send(item).is_err() {
                break;
            }
        }
    });

    let summary = Arc::new(Mutex::new(Summary::default()));
    let slots = Arc::new(Semaphore::new(jobs));
    let mut running = Running::default();
    let mut received = Vec::with_capacity(BATCH);
    // Whatever the walker has ready, up to a batch, goes to one task (see Store::ingest_many).
    'walk: while receiver.recv_many(&mut received, BATCH).await > 0 {
        let mut envelopes = Vec::with_capacity(received.len());
        for item in received.drain(..) {
            match item {
                Ok(envelope) => envelopes.push(envelope),
                Err(err) => {
                    progress.line(&format!("unreadable: {err}"));
                    lock(&summary).unreadable += 1;
                }
            }
        }
        // Files read into memory go together; each larger one gets a task of its own, so
        // that they are parsed in parallel.
        let (in_memory, on_disk): (Vec<Envelope>, Vec<Envelope>) =
            envelopes.into_iter().partition(|envelope| matches!(envelope.payload, Payload::Bytes(_)));
        let groups = std::iter::once(in_memory).chain(on_disk.into_iter().map(|envelope| vec![envelope]));
        for group in groups.filter(|group| !group.is_empty()) {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            // A task that found the database away stops the import: no new work, and the
            // inputs in flight are given up (a second run stores them; what was committed is
            // then a duplicate).
            if running.collect_finished(&summary) {
                lock(&summary).failed += group.len() as u64;
                break 'walk;
            }
            let (store, limits, summary, progress) = (store.clone(), limits.clone(), summary.clone(), progress.clone());
            let inputs = group.len() as u64;
            running.spawn(inputs, async move {
                let _slot = slot;
                let origins: Vec<String> = group.iter().map(|envelope| envelope.origin.to_string()).collect();
                let mut outcome = Ok(());
                for (origin, result) in origins.iter().zip(store.ingest_many(group, &limits).await) {
                    if let Err(err) = account(result, origin, &summary, &progress) {
                        outcome = Err(err);
                    }
                }
                outcome
            });
        }
    }
    // Stops the walker (no more files read once the import stopped).
    drop(receiver);
    let fatal = running.finish(&summary).await;
    let _ = walker.await;
    progress.finish();

    // Every input handled committed something (its row at least); with none, there is nothing
    // to flush and no statement to send.
    let handled = lock(&summary).inputs > 0;
    if fatal.is_none()
        && handled
        && let Err(err) = store.make_durable().await
    {
        eprintln!("dmarcpipe: cannot confirm that the imported inputs reached the disk: {err}; run the import again");
        return Ok(exit::FATAL);
    }
    let mut summary = lock(&summary).clone();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_bytes = peak_rss_bytes();
    tracing::info!(
        inputs = summary.inputs,
        stored = summary.stored,
        rejected = summary.rejected,
        records = summary.records,
        "Import finished."
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        eprintln!("{}", summary.text());
    }
    if let (None, Some((enricher, settings))) = (&fatal, &enrichment) {
        enrich::after_storing(store.pool(), enricher, settings, args.quiet).await;
    }
    if let Some(err) = fatal {
        eprintln!(
            "dmarcpipe: import stopped: {err}; {} inputs were not imported: run the import again",
            summary.failed
        );
        return Ok(exit::FATAL);
    }
    Ok(summary.exit_code())
}

/// The import's tasks, and how many inputs each holds: a task given up counts its inputs as
/// not imported.
#[derive(Default)]
struct Running {
    tasks: JoinSet<Result<(), StoreError>>,
    inputs: HashMap<tokio::task::Id, u64>,
    fatal: Option<StoreError>,
}

impl Running {
    fn spawn(&mut self, inputs: u64, task: impl Future<Output = Result<(), StoreError>> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.inputs.insert(handle.id(), inputs);
    }

    /// Takes in the tasks that are done; whether one found the database away.
    fn collect_finished(&mut self, summary: &Mutex<Summary>) -> bool {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.record(done, summary);
        }
        self.fatal.is_some()
    }

    /// Waits for the tasks left, or gives them up once one found the database away; returns
    /// that failure.
    async fn finish(mut self, summary: &Mutex<Summary>) -> Option<StoreError> {
        loop {
            if self.fatal.is_some() {
                self.tasks.abort_all();
            }
            match self.tasks.join_next_with_id().await {
                Some(done) => self.record(done, summary),
                None => return self.fatal,
            }
        }
    }

    fn record(&mut self, done: Result<(tokio::task::Id, Result<(), StoreError>), JoinError>, summary: &Mutex<Summary>) {
        match done {
            Ok((id, outcome)) => {
                self.inputs.remove(&id);
                if let Err(err) = outcome {
                    self.fatal.get_or_insert(err);
                }
            }
            Err(err) => {
                // Given up (or panicked): none of its inputs was accounted for.
                lock(summary).failed += self.inputs.remove(&err.id()).unwrap_or(0);
                if err.is_panic() {
                    self.fatal.get_or_insert(StoreError::Task(err.to_string()));
                }
            }
        }
    }
}

/// Counts what became of one input and names it when it was rejected or not imported. A
/// transient database error comes back: the import stops taking new work.
fn account(
    result: Result<InputResult, StoreError>,
    origin: &str,
    summary: &Mutex<Summary>,
    progress: &Progress,
) -> Result<(), StoreError> {
    match result {
        Ok(result) => {
            let snapshot = {
                let mut summary = lock(summary);
                summary.add(&result);
                summary.clone()
            };
            if result.outcome == Outcome::Rejected {
                let why = result.error.as_deref().unwrap_or("rejected");
                progress.line(&format!("rejected: {origin}: {why} (input {})", result.input));
            }
            progress.update(&snapshot);
            Ok(())
        }
        Err(err) if err.is_transient() => {
            lock(summary).failed += 1;
            Err(err)
        }
        Err(err) => {
            // The database refused this input for a reason of its own: report it and go on
            // with the others (nothing of it was committed).
            progress.line(&format!("not imported: {origin}: {err}"));
            lock(summary).failed += 1;
            Ok(())
        }
    }
}

/// One message on stdin, as an MTA `pipe` delivers it.
async fn import_stdin(
    config: &FileConfig,
    database_url: Option<&str>,
    args: &ImportArgs,
    limits: &dmarcpipe_ingest::Limits,
) -> Result<u8> {
    let cap = limits.max_message_bytes;
    let read = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        std::io::stdin().lock().take(cap + 1).read_to_end(&mut bytes).map(|_| bytes)
    })
    .await?;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("dmarcpipe: cannot read stdin: {err}");
            return Ok(exit::TEMPFAIL);
        }
    };
    if bytes.len() as u64 > cap {
        eprintln!("dmarcpipe: message on stdin is larger than limits.max_message_bytes ({})", format_size(cap));
        return Ok(exit::REJECTED);
    }
    let store = match connect(config, database_url, 2).await {
        Ok(store) => store.with_memory_budget(MemoryBudget::new(limits.max_memory)),
        Err(err) => {
            eprintln!("dmarcpipe: {}; the message was not accepted, try again later", crate::describe(&err));
            return Ok(exit::TEMPFAIL);
        }
    };
    let started = Instant::now();
    let envelope = Envelope::new(Origin::Stdin, Payload::Bytes(bytes));
    match store.ingest_alone(envelope, limits).await {
        Ok(result) => {
            let mut summary = Summary::default();
            summary.add(&result);
            summary.seconds = started.elapsed().as_secs_f64();
            if let Some(error) = &result.error {
                eprintln!("dmarcpipe: rejected: stdin: {error} (input {})", result.input);
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else if !args.quiet {
                eprintln!("{}", summary.text());
            }
            Ok(summary.exit_code())
        }
        // Nothing was committed: the MTA keeps the message and retries, whatever the cause.
        Err(err) => {
            eprintln!("dmarcpipe: {err}; the message was not accepted, try again later");
            Ok(exit::TEMPFAIL)
        }
    }
}

/// `VmHWM` of /proc/self/status: the most memory this process has held.
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The progress bar (on a terminal) or nothing.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    fn new(visible: bool, started: Instant) -> Self {
        let bar = visible.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, started }
    }

    fn update(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            let seconds = self.started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} files · {} reports · {} records · {:.0} reports/s · {:.0} records/s",
                summary.inputs,
                summary.reports,
                summary.records,
                summary.reports as f64 / seconds,
                summary.records as f64 / seconds
            ));
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
