//! `dmarcpipe serve`: dmarcpipe as the mail server of the report mailbox, and the watcher of
//! the `[[imap]]` mailboxes (beside the listeners, or without any).
//!
//! Wires the SMTP/LMTP server of `dmarcpipe_ingest::intake::smtp` to the store: every message
//! goes through the same pipeline as `import` (same outcomes and provenance, origin = client
//! IP, HELO and MAIL FROM) with each commit waiting for the disk, and is acknowledged only
//! then; any failure to store gives `451`, so the sending MTA keeps the message and retries.
//! One log line per message (rollups are written with each report). Each IMAP mailbox gets a
//! poller (see `fetch.rs` and `dmarcpipe_ingest::intake::imap`) that IDLEs or polls and moves
//! each message after its commit. SIGTERM or Ctrl-C stops accepting, lets messages in progress
//! finish within the grace period (pollers store and move the batch in hand, then log out), and
//! exits 0. Every few minutes, the rollup rows appended meanwhile are compacted
//! (`dmarcpipe_store::compact`), so that reports stay fast however long serve runs. A task of
//! its own enriches the new source addresses (`enrich.rs`), woken when a message was stored
//! and every 30 seconds otherwise, never on the path of a message (`DMARCPIPE_NO_ENRICH=1`
//! leaves them queued).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::budget::MemoryBudget;
use dmarcpipe_ingest::envelope::{Envelope, Payload};
use dmarcpipe_ingest::intake::smtp::{Deliver, Delivery, Protocol, Recipients, Server, SmtpSettings, load_tls};
use dmarcpipe_store::{InputResult, Outcome, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::fetch::{MailboxDelivery, watch_mailboxes};
use super::{connect, enrich};
use crate::cli::ServeArgs;
use crate::config::FileConfig;
use crate::exit;

/// Database connections when the config does not say: messages stored at once.
const DEFAULT_CONNECTIONS: u32 = 16;

/// How long a message waits for the store before its sender is told `451`, unless configured:
/// well below the 10 minutes a sender waits for the reply to its data (RFC 5321 §4.5.3.2.6).
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the appended rollup rows are compacted (when enough wait).
const COMPACT_EVERY: Duration = Duration::from_secs(300);

/// How long pollers may take to finish after SIGTERM when there is no `[smtp]` to say.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Longest reason quoted back to the sender in a reply line (RFC 5321 caps lines at 512).
const MAX_REPLY_REASON: usize = 200;

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: ServeArgs) -> Result<u8> {
    let limits = config.limits(&args.limits);
    let mut mailboxes = config.mailboxes(&limits)?;
    // Without listen addresses, serve may still watch mailboxes.
    let smtp =
        if listens(config, &args) || mailboxes.is_empty() { Some(settings(config, &args, &limits)?) } else { None };
    // One memory budget for the messages arriving and the inputs being stored.
    let budget = MemoryBudget::new(limits.max_memory);
    for mailbox in &mut mailboxes {
        mailbox.budget = Some(budget.clone());
    }
    let (settings, addresses) = match smtp {
        Some((mut settings, addresses)) => {
            settings.budget = Some(budget.clone());
            (Some(settings), addresses)
        }
        None => (None, Vec::new()),
    };
    let section = &config.smtp;
    let connections = section.database_connections.unwrap_or(DEFAULT_CONNECTIONS).max(2) + mailboxes.len() as u32;
    // Opened first: a bad [enrich] setting stops serve before it listens.
    let enrichment = if enrich::skipped_by_environment() { None } else { Some(enrich::open(config, false)?) };
    let store = connect(config, database_url, connections).await?.with_memory_budget(budget);

    let mut listeners = Vec::new();
    for (address, protocol) in &addresses {
        let listener = TcpListener::bind(address.as_str()).await.with_context(|| {
            format!("cannot listen on {address} ({}; ports below 1024 need CAP_NET_BIND_SERVICE)", name(*protocol))
        })?;
        let bound = listener.local_addr().context("a listening socket has an address")?;
        tracing::info!("listening on {bound} ({})", name(*protocol));
        listeners.push((listener, *protocol));
    }
    let (stop, shutdown) = watch::channel(false);
    let stored = enrichment.as_ref().map(|_| Arc::new(Notify::new()));
    let mailbox_delivery = MailboxDelivery { store: store.clone(), limits: limits.clone(), stored: stored.clone() };
    let mut pollers = watch_mailboxes(mailboxes, mailbox_delivery, &shutdown)?;
    tokio::spawn(compact_periodically(store.clone(), shutdown.clone()));
    if let (Some((enricher, settings)), Some(stored)) = (enrichment, &stored) {
        let pool = store.pool().clone();
        tokio::spawn(enrich::in_background(pool, Arc::new(enricher), settings, stored.clone(), shutdown.clone()));
    }
    match &settings {
        Some(settings) => tracing::info!(
            hostname = %settings.hostname,
            starttls = settings.tls.is_some(),
            max_message_bytes = settings.max_message_bytes,
            mailboxes = pollers.len(),
            "dmarcpipe serve is ready"
        ),
        None => tracing::info!(mailboxes = pollers.len(), "dmarcpipe serve is ready (IMAP only)"),
    }

    let grace = settings
        .as_ref()
        .map_or(section.shutdown_grace_seconds.map_or(DEFAULT_GRACE, Duration::from_secs), |settings| {
            settings.shutdown_grace
        });
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutting down: no new connections; messages in progress get {}s to finish.", grace.as_secs());
        let _ = stop.send(true);
        // The pollers and the server watch this channel until they are done.
        std::future::pending::<()>().await;
    });
    let cut_off = match settings {
        Some(settings) => {
            let patience = section.store_timeout_seconds.map_or(DEFAULT_STORE_TIMEOUT, Duration::from_secs);
            let delivery = StoreDelivery { store: store.clone(), limits, patience, stored };
            Server::new(settings, delivery).run(listeners, shutdown.clone()).await
        }
        None => {
            let _ = shutdown.clone().wait_for(|stopping| *stopping).await;
            0
        }
    };
    // The pollers finish the batch in hand and log out; whatever is not moved by the end of the
    // grace period stays in its folder and is read again (a duplicate of itself) next time.
    let pollers_done = async { while pollers.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, pollers_done).await.is_err() {
        tracing::warn!("some mailboxes did not log out within the grace period");
    }
    if cut_off > 0 {
        tracing::warn!("{cut_off} sessions were cut off at the end of the grace period; their senders will retry");
    }
    tracing::info!("dmarcpipe serve stopped");
    Ok(exit::OK)
}

/// Compacts the rollups every [`COMPACT_EVERY`] until serve stops. A compaction that fails
/// is logged and tried again next time: the rollups are exact either way.
async fn compact_periodically(store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(COMPACT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        match dmarcpipe_store::compact::compact_if_due(store.pool()).await {
            Ok(Some(done)) => tracing::info!(rows = done.rows, held_back = done.held_back, "Rollups compacted."),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "Rollups not compacted; trying again later."),
        }
    }
}

/// Whether any SMTP or LMTP address is configured (flags or `[smtp]`).
fn listens(config: &FileConfig, args: &ServeArgs) -> bool {
    let section = &config.smtp;
    !(args.smtp_listen.is_empty()
        && args.lmtp_listen.is_empty()
        && section.listen.is_empty()
        && section.lmtp_listen.is_empty())
}

/// Session settings and listen addresses from flags over the `[smtp]` section.
fn settings(config: &FileConfig, args: &ServeArgs, limits: &Limits) -> Result<(SmtpSettings, Vec<(String, Protocol)>)> {
    let section = &config.smtp;
    let either = |flag: &Vec<String>, file: &Vec<String>| if flag.is_empty() { file.clone() } else { flag.clone() };
    let smtp = either(&args.smtp_listen, &section.listen);
    let lmtp = either(&args.lmtp_listen, &section.lmtp_listen);
    if smtp.is_empty() && lmtp.is_empty() {
        bail!(
            "nowhere to listen: pass --smtp-listen ADDR (or --lmtp-listen), set listen in [smtp] of the config file, or configure an [[imap]] mailbox"
        );
    }
    let recipients = either(&args.smtp_recipient, &section.recipients);
    let recipients = Recipients::parse(&recipients)
        .map_err(|reason| anyhow::anyhow!("recipients (--smtp-recipient or [smtp] recipients): {reason}"))?;
    let hostname = args.hostname.clone().or_else(|| section.hostname.clone()).unwrap_or_else(local_hostname);

    let mut settings = SmtpSettings::new(hostname, recipients);
    let max_message = args.smtp_max_message_bytes.or(section.max_message_bytes).unwrap_or(settings.max_message_bytes);
    // A message is held in memory and then unpacked under the import limits: never more than those.
    settings.max_message_bytes = max_message.min(limits.max_message_bytes);
    let seconds = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
    settings.command_timeout = seconds(section.command_timeout_seconds, settings.command_timeout);
    settings.data_timeout = seconds(section.data_timeout_seconds, settings.data_timeout);
    settings.session_timeout = seconds(section.session_timeout_seconds, settings.session_timeout);
    settings.data_min_rate = section.data_min_bytes_per_second.unwrap_or(settings.data_min_rate).max(1);
    settings.shutdown_grace = seconds(section.shutdown_grace_seconds, settings.shutdown_grace);
    settings.max_recipients = section.max_recipients.unwrap_or(settings.max_recipients).max(1);
    settings.max_sessions = section.max_sessions.unwrap_or(settings.max_sessions).max(1);
    settings.max_sessions_per_ip = section.max_sessions_per_ip.unwrap_or(settings.max_sessions_per_ip).max(1);

    let certificate =
        args.tls_certificate.clone().or_else(|| section.tls_certificate.as_deref().map(|p| config.relative_path(p)));
    let key = args.tls_key.clone().or_else(|| section.tls_key.as_deref().map(|p| config.relative_path(p)));
    settings.tls = match (certificate, key) {
        (Some(certificate), Some(key)) => Some(load_tls(&certificate, &key).context("cannot set up STARTTLS")?),
        (None, None) => None,
        _ => bail!(
            "STARTTLS needs both a certificate and a key (--tls-certificate and --tls-key, or [smtp] tls_certificate and tls_key)"
        ),
    };

    let addresses = smtp.into_iter().map(|a| (a, Protocol::Smtp)).chain(lmtp.into_iter().map(|a| (a, Protocol::Lmtp)));
    Ok((settings, addresses.collect()))
}

fn name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Smtp => "smtp",
        Protocol::Lmtp => "lmtp",
    }
}

/// This machine's name, for the greeting when none is configured.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Hands each message to the store; `250` only once it is committed.
struct StoreDelivery {
    store: Store,
    limits: Limits,
    /// The longest a message waits for the store before its sender is told to retry.
    patience: Duration,
    /// Told when a message was stored (the background enricher), if there is one.
    stored: Option<Arc<Notify>>,
}

impl Deliver for StoreDelivery {
    async fn deliver(&self, envelope: Envelope) -> Delivery {
        let bytes = match &envelope.payload {
            Payload::Bytes(bytes) => bytes.len(),
            Payload::File(_) => 0,
        };
        let span = envelope.span();
        async move {
            let stored = tokio::time::timeout(self.patience, self.store.ingest(envelope, &self.limits)).await;
            // Past the deadline the message may still be committed: its retry is then a duplicate.
            let stored = stored.unwrap_or(Err(StoreError::Timeout(self.patience)));
            match stored {
                Ok(result) => {
                    if let Some(stored) = &self.stored
                        && result.records > 0
                    {
                        stored.notify_one();
                    }
                    tracing::Span::current().record("input", result.input);
                    tracing::info!(
                        outcome = result.outcome.as_str(),
                        reports = result.reports_stored,
                        forensic = result.forensic_stored,
                        duplicate_reports = result.reports_duplicate,
                        records = result.records,
                        messages = result.messages,
                        bytes,
                        error = result.error.as_deref().unwrap_or(""),
                        "Message handled."
                    );
                    Delivery::Accepted(acknowledgement(&result))
                }
                Err(err) => {
                    if err.is_transient() {
                        tracing::warn!(error = %err, bytes, "Message not stored; the sender is told to retry.");
                    } else {
                        tracing::error!(error = %err, bytes, "Message not stored; the sender is told to retry.");
                    }
                    Delivery::TryLater("Cannot store the message now, try again later".into())
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// The text of the `250` reply: what became of the message.
fn acknowledgement(result: &InputResult) -> String {
    let input = result.input;
    match result.outcome {
        Outcome::Stored => format!(
            "Stored as input {input}: {} report{}, {} record{}",
            result.reports_stored,
            plural(result.reports_stored as u64),
            result.records,
            plural(result.records)
        ),
        // The original may be a stored input or a rejected one kept for `reprocess`: the same
        // bytes again are acknowledged alike, so the sender does not send them again.
        Outcome::Duplicate => match result.duplicate_of {
            Some(original) => format!("A duplicate of input {original}; recorded as input {input}"),
            None => format!("A duplicate of a report stored before; recorded as input {input}"),
        },
        Outcome::NotReport => format!("Not a DMARC report; recorded as input {input}"),
        Outcome::Rejected => {
            let mut reason = result.error.clone().unwrap_or_default();
            if reason.len() > MAX_REPLY_REASON {
                let mut end = MAX_REPLY_REASON;
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
                reason.push_str("...");
            }
            format!("Kept as input {input}, but not readable as a report: {reason}")
        }
    }
}

fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Ctrl-C or SIGTERM (systemd's stop).
pub async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
