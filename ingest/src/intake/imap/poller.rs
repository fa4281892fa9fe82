//! The poller of one mailbox: what `fetch` runs once and `serve` runs until SIGTERM.
//!
//! A pass: SELECT the folder (a new UIDVALIDITY is logged and forgets what was known of the
//! old UIDs), `UID SEARCH UNDELETED`, then in ascending UID order and in chunks: sizes
//! (`RFC822.SIZE`, only a hint: the partial fetch enforces the cap), the bodies of up to
//! [`BATCH_MESSAGES`] small messages at once or of one larger message, delivery, and only
//! then the move of each committed message to the folder of its outcome. A message over the
//! cap is not fetched: it is moved to the rejected folder (or left, warned about once). A
//! message the store cannot take now stays untouched; the pass ends and is run again after a
//! back-off. Between passes: IDLE (renewed every `poll_interval`, at most 29 minutes) or
//! polling; a broken connection is opened again with exponential back-off and jitter; a login
//! refused is retried only after a long and growing wait. Shutdown is looked at between
//! batches: the batch in hand is stored and moved, then the session logs out.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_rustls::rustls::ClientConfig;

use super::auth::Tokens;
use super::backoff::Backoff;
use super::connection::{self, Destination, Folder, Session, Woken};
use super::folders::{self, Hierarchy};
use super::{
    BATCH_MESSAGE_BYTES, BATCH_MESSAGES, Credentials, Deliver, Delivered, ImapError, MailboxSettings, Outcome, Tally,
};
use crate::budget::Reservation;
use crate::envelope::{Envelope, Origin, Payload, percent_encode};

/// UIDs whose sizes are asked for at once.
const SIZE_CHUNK: usize = 256;

/// IDLE is renewed at least this often (RFC 2177 asks for less than 29 minutes).
const MAX_IDLE: Duration = Duration::from_secs(29 * 60);

/// Why a poller stopped before its work was done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunEnd {
    /// The store could not take messages for longer than the run was willing to wait.
    #[error("the database cannot take messages: {0}")]
    Database(String),
    #[error(transparent)]
    Imap(#[from] ImapError),
}

/// A logged-in session and the folders it works with.
#[derive(Debug)]
struct Connected {
    session: Session,
    source: Folder,
    archive: Folder,
    not_report: Folder,
    rejected: Folder,
}

/// One mailbox's poller.
#[derive(Debug)]
pub struct Poller<D> {
    settings: MailboxSettings,
    deliver: Arc<D>,
    tls: Option<Arc<ClientConfig>>,
    tokens: Option<Tokens>,
    /// The IMAP URL authority of origins.
    account: String,
    uid_validity: Option<u32>,
    /// UIDs (of `uid_validity`) warned about and left in the folder: too large with
    /// `leave_oversized`, or refused by the store for a reason of its own.
    left: HashSet<u32>,
    /// UIDs (of `uid_validity`) committed whose move failed (the connection broke): moved on
    /// the next pass without being read and stored again.
    unmoved: BTreeMap<u32, Destination>,
    tally: Tally,
    connection_backoff: Backoff,
    login_backoff: Backoff,
    database_backoff: Backoff,
}

impl<D: Deliver> Poller<D> {
    /// A poller; fails when the settings cannot work (an unreadable CA file).
    pub fn new(settings: MailboxSettings, deliver: Arc<D>) -> Result<Self, ImapError> {
        let tls = connection::tls_config(&settings)?;
        let tokens = match &settings.credentials {
            Credentials::OAuth { token, .. } => Some(Tokens::new(token.clone())),
            Credentials::Password(_) => None,
        };
        let port = if settings.port == 143 { String::new() } else { format!(":{}", settings.port) };
        let account = format!("{}@{}{port}", percent_encode(&settings.user, ""), settings.host);
        Ok(Poller {
            settings,
            deliver,
            tls,
            tokens,
            account,
            uid_validity: None,
            left: HashSet::new(),
            unmoved: BTreeMap::new(),
            tally: Tally::default(),
            connection_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            login_backoff: Backoff::new(Duration::from_secs(60), Duration::from_secs(3600)),
            database_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        })
    }

    pub fn settings(&self) -> &MailboxSettings {
        &self.settings
    }

    /// What this poller did so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// `fetch`: everything in the folder once (and what arrives meanwhile), then LOGOUT. A lost
    /// connection or an unavailable database is retried with back-off for up to `patience`;
    /// a refused login is not retried.
    pub async fn fetch_once(&mut self, patience: Duration, mut shutdown: watch::Receiver<bool>) -> Result<(), RunEnd> {
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut connected = match self.connect().await {
                Ok(connected) => connected,
                Err(err) if err.needs_attention() => return Err(err.into()),
                Err(err) => {
                    if self.retry_later(&err.to_string(), Kind::Connection, give_up, &mut shutdown).await? {
                        return Ok(());
                    }
                    continue;
                }
            };
            let ended = loop {
                match self.pass(&mut connected, &shutdown).await {
                    Ok(0) => break Ok(()),
                    Ok(_) if *shutdown.borrow() => break Ok(()),
                    Ok(_) => {}
                    Err(RunEnd::Database(reason)) => {
                        match self.retry_later(&reason, Kind::Database, give_up, &mut shutdown).await {
                            Ok(true) => break Ok(()),
                            Ok(false) => {}
                            Err(end) => break Err(end),
                        }
                    }
                    Err(RunEnd::Imap(err)) => break Err(RunEnd::Imap(err)),
                }
            };
            // Committed, not moved by the end: read again (duplicates) by the next run.
            self.tally.not_moved = self.unmoved.len() as u64;
            match ended {
                Ok(()) => {
                    connected.session.logout().await;
                    return Ok(());
                }
                Err(RunEnd::Imap(err)) if err.needs_attention() => {
                    connected.session.logout().await;
                    return Err(err.into());
                }
                Err(RunEnd::Imap(err)) => {
                    drop(connected);
                    if self.retry_later(&err.to_string(), Kind::Connection, give_up, &mut shutdown).await? {
                        return Ok(());
                    }
                }
                Err(end) => {
                    connected.session.logout().await;
                    return Err(end);
                }
            }
        }
    }

    /// `serve`: keeps the folder empty until `shutdown`, then finishes the batch in hand and
    /// logs out. Never gives up: every failure is retried after a back-off.
    pub async fn watch(&mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut connected = match self.connect().await {
                Ok(connected) => connected,
                Err(err) => {
                    let kind = if err.needs_attention() { Kind::Login } else { Kind::Connection };
                    let delay = self.backoff(kind).next_delay();
                    self.log_failure(&err, kind, delay);
                    if stopped_while_waiting(delay, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let idle = self.settings.idle && connected.session.has("IDLE");
            tracing::info!(
                mailbox = %self.settings.name,
                idle,
                poll_seconds = self.settings.poll_interval.as_secs(),
                "watching {} on {} as {}",
                self.settings.folder,
                self.settings.host,
                self.settings.user
            );
            match self.watch_session(&mut connected, &mut shutdown).await {
                Ok(()) => {
                    connected.session.logout().await;
                    return;
                }
                Err(err) => {
                    drop(connected);
                    // A command the server keeps refusing (a full archive folder) waits as
                    // long as a refused login: the back-off grows until a pass goes through.
                    let kind = if err.needs_attention() { Kind::Login } else { Kind::Connection };
                    let delay = self.backoff(kind).next_delay();
                    self.log_failure(&err, kind, delay);
                    if stopped_while_waiting(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Passes, then IDLE or a pause, until shutdown (`Ok`) or a broken session (`Err`).
    async fn watch_session(
        &mut self,
        connected: &mut Connected,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ImapError> {
        loop {
            match self.pass(connected, shutdown).await {
                Ok(settled) => {
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    if settled > 0 {
                        continue; // more may have come meanwhile
                    }
                }
                Err(RunEnd::Database(reason)) => {
                    let delay = self.database_backoff.next_delay();
                    tracing::warn!(
                        mailbox = %self.settings.name,
                        error = %reason,
                        "mailbox {}: the database cannot take messages now; they stay in {}, trying again in {}s",
                        self.settings.name,
                        self.settings.folder,
                        delay.as_secs_f32().ceil()
                    );
                    if stopped_while_waiting(delay, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(RunEnd::Imap(err)) => return Err(err),
            }
            if connected.session.news() {
                continue;
            }
            let woken = if self.settings.idle && connected.session.has("IDLE") {
                connected.session.idle(self.settings.poll_interval.min(MAX_IDLE), shutdown).await?
            } else if stopped_while_waiting(self.settings.poll_interval, shutdown).await {
                Woken::Shutdown
            } else {
                Woken::Renew
            };
            if woken == Woken::Shutdown {
                return Ok(());
            }
        }
    }

    /// Logs in and finds (or creates) the folders.
    async fn connect(&mut self) -> Result<Connected, ImapError> {
        let mut session = Session::open(&self.settings, self.tls.as_ref(), &mut self.tokens).await?;
        match self.folders(&mut session).await {
            Ok((source, archive, not_report, rejected)) => {
                Ok(Connected { session, source, archive, not_report, rejected })
            }
            Err(err) => {
                session.logout().await;
                Err(err)
            }
        }
    }

    async fn folders(&self, session: &mut Session) -> Result<(Folder, Folder, Folder, Folder), ImapError> {
        if !session.has("UIDPLUS") && (self.settings.delete || !session.has("MOVE")) {
            tracing::warn!(
                mailbox = %self.settings.name,
                "{} has no UIDPLUS: removing messages expunges everything flagged \\Deleted in {}; give dmarcpipe a folder of its own",
                self.settings.host,
                self.settings.folder
            );
        }
        let hierarchy = Hierarchy::of(session).await?;
        let mut resolve = async |name: &str, create: bool| -> Result<Folder, ImapError> {
            let wire = folders::resolve(session, &hierarchy, name, create).await?;
            Ok(Folder { name: name.to_owned(), wire })
        };
        let source = resolve(&self.settings.folder, false).await?;
        let archive = if self.settings.delete {
            Folder { name: String::new(), wire: String::new() }
        } else {
            resolve(&self.settings.archive_folder, true).await?
        };
        let not_report = resolve(&self.settings.not_report_folder, true).await?;
        let rejected = resolve(&self.settings.rejected_folder, true).await?;
        for folder in [&archive, &not_report, &rejected] {
            if folder.wire == source.wire {
                return Err(ImapError::Settings(format!(
                    "mailbox {}: `{}` is the watched folder itself; messages would be read again forever",
                    self.settings.name, folder.name
                )));
            }
        }
        Ok((source, archive, not_report, rejected))
    }

    /// One look at the folder; returns how many messages left it. A pass that goes through
    /// resets the back-offs: only then is the server known to work again.
    async fn pass(&mut self, connected: &mut Connected, shutdown: &watch::Receiver<bool>) -> Result<usize, RunEnd> {
        let settled = self.pass_once(connected, shutdown).await?;
        self.connection_backoff.reset();
        self.login_backoff.reset();
        self.database_backoff.reset();
        Ok(settled)
    }

    async fn pass_once(
        &mut self,
        connected: &mut Connected,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<usize, RunEnd> {
        let selected = connected.session.select(&connected.source.wire).await?;
        if self.uid_validity.is_some_and(|known| known != selected.uid_validity) {
            tracing::warn!(
                mailbox = %self.settings.name,
                "the UIDVALIDITY of {} changed ({} to {}): the folder was recreated; its messages are read again \
                 (those stored before are recognised as duplicates)",
                self.settings.folder,
                self.uid_validity.unwrap_or_default(),
                selected.uid_validity
            );
            self.left.clear();
            self.unmoved.clear();
        }
        self.uid_validity = Some(selected.uid_validity);
        if selected.exists == 0 {
            return Ok(0);
        }
        let present = connected.session.uids().await?;
        // Forget what is no longer there (a person moved it).
        let here: HashSet<u32> = present.iter().copied().collect();
        self.left.retain(|uid| here.contains(uid));
        self.unmoved.retain(|uid, _| here.contains(uid));
        let retried: HashSet<u32> = self.unmoved.keys().copied().collect();
        let mut settled = self.settle_unmoved(connected).await?;
        let uids: Vec<u32> =
            present.into_iter().filter(|uid| !self.left.contains(uid) && !retried.contains(uid)).collect();
        let cap = self.settings.max_message_bytes;
        for chunk in uids.chunks(SIZE_CHUNK) {
            let sizes = connected.session.sizes(chunk).await?;
            let mut batch = Vec::with_capacity(BATCH_MESSAGES);
            for &uid in chunk {
                if *shutdown.borrow() {
                    return Ok(settled);
                }
                let Some(&size) = sizes.get(&uid) else { continue }; // expunged meanwhile
                if size > cap {
                    settled += self.oversized(connected, uid, size).await?;
                } else if size > BATCH_MESSAGE_BYTES {
                    settled += self.store_and_settle(connected, &std::mem::take(&mut batch), false).await?;
                    settled += self.store_and_settle(connected, &[uid], true).await?;
                } else {
                    batch.push(uid);
                    if batch.len() == BATCH_MESSAGES {
                        settled += self.store_and_settle(connected, &std::mem::take(&mut batch), false).await?;
                    }
                }
            }
            settled += self.store_and_settle(connected, &batch, false).await?;
        }
        Ok(settled)
    }

    /// Fetches these messages (small ones together, or one `alone` up to the cap), delivers
    /// them, and moves each committed one. Returns how many left the folder.
    async fn store_and_settle(
        &mut self,
        connected: &mut Connected,
        uids: &[u32],
        alone: bool,
    ) -> Result<usize, RunEnd> {
        if uids.is_empty() {
            return Ok(0);
        }
        let cap = self.settings.max_message_bytes;
        // One byte more than allowed: a message that fills it is too large, whatever its size said.
        let limit = if alone { cap + 1 } else { BATCH_MESSAGE_BYTES.min(cap) + 1 };
        // Nothing is fetched until the budget has room for what may come in. The room is given
        // back once fetched: storing the messages reserves its own (never one reservation
        // waited for while another is held).
        let room = match &self.settings.budget {
            Some(budget) => budget.reserve(limit.saturating_mul(uids.len() as u64)).await,
            None => Reservation::none(),
        };
        let mut bodies = connected.session.bodies(uids, limit).await?;
        drop(room);
        let mut fetched = Vec::with_capacity(uids.len());
        let mut envelopes = Vec::with_capacity(uids.len());
        let mut larger = Vec::new();
        let mut settled = 0;
        for &uid in uids {
            let Some(body) = bodies.remove(&uid) else { continue }; // expunged meanwhile
            let size = body.len() as u64;
            if size >= limit {
                if alone {
                    settled += self.oversized(connected, uid, size).await?;
                } else {
                    larger.push(uid); // its size said small: fetch it again, alone
                }
                continue;
            }
            fetched.push((uid, body.len()));
            envelopes.push(Envelope::new(self.origin(uid), Payload::Bytes(body)));
        }
        drop(bodies);
        let results = if envelopes.is_empty() { Vec::new() } else { self.deliver.deliver(envelopes).await };

        let mut groups: BTreeMap<Destination, Vec<(u32, usize, Delivered)>> = BTreeMap::new();
        let mut not_now = None;
        for ((uid, bytes), result) in fetched.into_iter().zip(results) {
            match result {
                Ok(delivered) => {
                    self.tally.add(&delivered);
                    let destination = self.destination(connected, delivered.outcome);
                    groups.entry(destination).or_default().push((uid, bytes, delivered));
                }
                Err(not_stored) if not_stored.transient => {
                    not_now.get_or_insert(not_stored.reason);
                }
                Err(not_stored) => {
                    self.tally.failed += 1;
                    self.left.insert(uid);
                    tracing::error!(
                        mailbox = %self.settings.name,
                        uid,
                        bytes,
                        error = %not_stored.reason,
                        "message {} not stored; left in {}",
                        self.origin(uid),
                        self.settings.folder
                    );
                }
            }
        }
        for (destination, items) in groups {
            let uids: Vec<u32> = items.iter().map(|(uid, _, _)| *uid).collect();
            let moved = connected.session.settle(&uids, &destination).await;
            let whereto = destination.describe();
            for (uid, bytes, delivered) in &items {
                let origin = self.origin(*uid);
                match &moved {
                    Ok(()) => tracing::info!(
                        mailbox = %self.settings.name,
                        input = delivered.input,
                        outcome = delivered.outcome.as_str(),
                        reports = delivered.reports_stored,
                        forensic = delivered.forensic_stored,
                        duplicate_reports = delivered.reports_duplicate,
                        records = delivered.records,
                        messages = delivered.messages,
                        bytes,
                        error = delivered.error.as_deref().unwrap_or(""),
                        "message {origin} {whereto}"
                    ),
                    Err(err) => tracing::warn!(
                        mailbox = %self.settings.name,
                        input = delivered.input,
                        outcome = delivered.outcome.as_str(),
                        error = %err,
                        "message {origin} committed but not {whereto}: moved on the next pass (a duplicate if this \
                         process ends first)"
                    ),
                }
            }
            match moved {
                Ok(()) => settled += items.len(),
                Err(err) => {
                    self.unmoved.extend(uids.into_iter().map(|uid| (uid, destination.clone())));
                    return Err(err.into());
                }
            }
        }
        if let Some(reason) = not_now {
            return Err(RunEnd::Database(reason));
        }
        for uid in larger {
            settled += Box::pin(self.store_and_settle(connected, &[uid], true)).await?;
        }
        Ok(settled)
    }

    /// Moves the messages committed earlier whose move failed.
    async fn settle_unmoved(&mut self, connected: &mut Connected) -> Result<usize, RunEnd> {
        let mut groups: BTreeMap<Destination, Vec<u32>> = BTreeMap::new();
        for (uid, destination) in &self.unmoved {
            groups.entry(destination.clone()).or_default().push(*uid);
        }
        let mut settled = 0;
        for (destination, uids) in groups {
            connected.session.settle(&uids, &destination).await?;
            for uid in &uids {
                self.unmoved.remove(uid);
                tracing::info!(
                    mailbox = %self.settings.name,
                    "message {} (committed before) {}",
                    self.origin(*uid),
                    destination.describe()
                );
            }
            settled += uids.len();
        }
        Ok(settled)
    }

    /// A message over the cap: moved to the rejected folder unfetched, or left (warned once).
    async fn oversized(&mut self, connected: &mut Connected, uid: u32, size: u64) -> Result<usize, RunEnd> {
        let (whereto, settled) = if self.settings.leave_oversized {
            if !self.left.insert(uid) {
                return Ok(0);
            }
            (format!("left in {}", self.settings.folder), 0)
        } else {
            connected.session.settle(&[uid], &Destination::Folder(connected.rejected.clone())).await?;
            (format!("moved to {}", connected.rejected.name), 1)
        };
        self.tally.oversized += 1;
        tracing::warn!(
            mailbox = %self.settings.name,
            uid,
            size,
            max_message_bytes = self.settings.max_message_bytes,
            "message {} is larger than max_message_bytes: not fetched, {whereto}",
            self.origin(uid)
        );
        Ok(settled)
    }

    fn destination(&self, connected: &Connected, outcome: Outcome) -> Destination {
        match outcome {
            Outcome::Stored | Outcome::Duplicate if self.settings.delete => Destination::Delete,
            Outcome::Stored | Outcome::Duplicate => Destination::Folder(connected.archive.clone()),
            Outcome::NotReport => Destination::Folder(connected.not_report.clone()),
            Outcome::Rejected => Destination::Folder(connected.rejected.clone()),
        }
    }

    fn origin(&self, uid: u32) -> Origin {
        Origin::Imap {
            account: self.account.clone(),
            folder: self.settings.folder.clone(),
            uid_validity: self.uid_validity.unwrap_or_default(),
            uid,
        }
    }

    fn backoff(&mut self, kind: Kind) -> &mut Backoff {
        match kind {
            Kind::Connection => &mut self.connection_backoff,
            Kind::Login => &mut self.login_backoff,
            Kind::Database => &mut self.database_backoff,
        }
    }

    /// For `fetch`: waits before the next attempt, unless that would pass `give_up`.
    /// `Ok(true)`: shutdown came meanwhile.
    async fn retry_later(
        &mut self,
        reason: &str,
        kind: Kind,
        give_up: tokio::time::Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool, RunEnd> {
        let delay = self.backoff(kind).next_delay();
        if tokio::time::Instant::now() + delay > give_up {
            return Err(match kind {
                Kind::Database => RunEnd::Database(reason.to_owned()),
                _ => RunEnd::Imap(ImapError::Settings(format!("{reason} (gave up retrying)"))),
            });
        }
        tracing::warn!(
            mailbox = %self.settings.name,
            error = %reason,
            "mailbox {}: trying again in {:.0}s",
            self.settings.name,
            delay.as_secs_f32().ceil()
        );
        Ok(stopped_while_waiting(delay, shutdown).await)
    }

    /// One line per failure; a refused login is an error the first time, a warning after.
    fn log_failure(&self, err: &ImapError, kind: Kind, delay: Duration) {
        let name = &self.settings.name;
        let wait = delay.as_secs_f32().ceil();
        if kind == Kind::Login && self.login_backoff.failures() <= 1 {
            tracing::error!(mailbox = %name, "mailbox {name}: {err}; trying again in {wait}s");
        } else if kind == Kind::Login {
            tracing::warn!(mailbox = %name, "mailbox {name}: still refused: {err}; trying again in {wait}s");
        } else {
            tracing::warn!(mailbox = %name, "mailbox {name}: {err}; connecting again in {wait}s");
        }
    }
}

/// What failed, for the choice of back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connection,
    Login,
    Database,
}

/// Sleeps for `delay`; true when shutdown came first.
async fn stopped_while_waiting(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let slept = tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = shutdown.wait_for(|stopping| *stopping) => false,
    };
    !slept || *shutdown.borrow()
}
