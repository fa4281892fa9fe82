//! IMAP intake: dmarcpipe reads a report mailbox (Gmail, Microsoft 365, Fastmail, Dovecot,
//! Exchange) and moves each message out of it only once what it holds is committed.
//!
//! Input: a [`MailboxSettings`] (server, TLS, credentials, folders) and a [`Deliver`] (the
//! store, in the binary: this crate has no database). Output: every message of the watched
//! folder handed over as an [`Envelope`] (origin: account, folder, UIDVALIDITY and UID), then
//! moved by UID to the folder of its outcome (or deleted) once [`Deliver::deliver`] says it is
//! committed; a [`Tally`] of what happened. A message the store cannot take now (the database
//! is away) stays where it is, untouched, and is tried again after a back-off; a crash
//! between the commit and the move leaves it in place, and the next run records it as a
//! `duplicate` of itself (byte-identical inputs are recognised), never a second count.
//!
//! Layout: `protocol` reads and writes the wire (bounded framing); `connection` opens a
//! session (implicit TLS or STARTTLS with rustls, an optional CA file) and authenticates
//! (LOGIN, PLAIN, XOAUTH2, OAUTHBEARER; OAuth tokens from a file or a command, see `auth`);
//! `folders` turns configured names into server names (hierarchy delimiter, personal
//! namespace, modified UTF-7 in `utf7`) and creates missing folders; `poller` is the loop:
//! SELECT, UID SEARCH, sizes, `BODY.PEEK[]` (partial, so that no answer exceeds the cap),
//! delivery in small batches, `UID MOVE` (or COPY, `\Deleted`, `UID EXPUNGE`), then IDLE or
//! polling, reconnecting with exponential back-off and jitter (`backoff`).
//!
//! Limits: a message is fetched only if its size is at most `max_message_bytes`; small
//! messages (up to [`BATCH_MESSAGE_BYTES`]) are fetched and stored up to [`BATCH_MESSAGES`] at
//! a time, any larger one alone, so memory holds one large message or one batch of small ones,
//! never the mailbox.

mod auth;
mod backoff;
mod connection;
#[cfg(feature = "testkit")]
pub mod dovecot;
mod folders;
mod poller;
mod protocol;
mod utf7;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::envelope::Envelope;

pub use poller::{Poller, RunEnd};

/// Messages fetched and stored together at most.
pub const BATCH_MESSAGES: usize = 32;

/// Messages larger than this are fetched and stored one at a time.
pub const BATCH_MESSAGE_BYTES: u64 = 256 * 1024;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS before anything else is said (port 143).
    StartTls,
    /// No encryption at all: the password or token crosses the network in clear.
    None,
}

impl Tls {
    pub fn default_port(self) -> u16 {
        match self {
            Tls::Implicit => 993,
            Tls::StartTls | Tls::None => 143,
        }
    }
}

/// The SASL mechanism for an OAuth 2.0 access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthMechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    XOAuth2,
    /// RFC 7628 `OAUTHBEARER`.
    OAuthBearer,
}

/// Where an access token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file another program keeps fresh; read at every login.
    File(PathBuf),
    /// A shell command printing the token (or a token endpoint's JSON answer, whose
    /// `access_token` and `expires_in` are used); run again when the token expires or the
    /// server rejects it.
    Command(String),
}

/// How to log in.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `AUTHENTICATE PLAIN` when offered, else `LOGIN`.
    Password(String),
    OAuth {
        mechanism: OAuthMechanism,
        token: TokenSource,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password(_) => f.write_str("Password(..)"),
            Credentials::OAuth { mechanism, token } => {
                f.debug_struct("OAuth").field("mechanism", mechanism).field("token", token).finish()
            }
        }
    }
}

/// Everything one mailbox poller needs to know.
#[derive(Debug, Clone)]
pub struct MailboxSettings {
    /// The name in logs and `fetch --mailbox`.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// PEM certificates to trust instead of the built-in web roots (a private CA).
    pub ca_file: Option<PathBuf>,
    pub user: String,
    pub credentials: Credentials,
    /// The folder reports arrive in. Folder names use `/` between levels whatever the server's
    /// delimiter; a name the server has exactly as written is used as it is.
    pub folder: String,
    /// Where stored and duplicate messages go (unless `delete`).
    pub archive_folder: String,
    pub not_report_folder: String,
    /// Where rejected messages and those over the size cap go.
    pub rejected_folder: String,
    /// Delete stored and duplicate messages instead of archiving them.
    pub delete: bool,
    /// Leave messages over the size cap in the folder (one warning each) instead of moving them
    /// to `rejected_folder`.
    pub leave_oversized: bool,
    pub max_message_bytes: u64,
    /// How often the folder is looked at when the server has no IDLE; with IDLE, how long one
    /// IDLE lasts before it is renewed (at most 29 minutes, RFC 2177).
    pub poll_interval: Duration,
    /// Use IDLE when the server offers it.
    pub idle: bool,
    /// Longest wait for the server's next bytes (connect, TLS, each response).
    pub timeout: Duration,
    /// The process's memory budget: what a fetch may bring in is reserved before it is asked
    /// for, and waits for room; `None`: no budget.
    pub budget: Option<crate::budget::MemoryBudget>,
}

impl MailboxSettings {
    /// Settings with the defaults for everything but the server and the login.
    pub fn new(name: &str, host: &str, user: &str, credentials: Credentials) -> Self {
        MailboxSettings {
            name: name.to_owned(),
            host: host.to_owned(),
            port: Tls::Implicit.default_port(),
            tls: Tls::Implicit,
            ca_file: None,
            user: user.to_owned(),
            credentials,
            folder: "INBOX".to_owned(),
            archive_folder: "DMARC/Archive".to_owned(),
            not_report_folder: "DMARC/Not reports".to_owned(),
            rejected_folder: "DMARC/Rejected".to_owned(),
            delete: false,
            leave_oversized: false,
            max_message_bytes: 50 << 20,
            poll_interval: Duration::from_secs(300),
            idle: true,
            timeout: Duration::from_secs(120),
            budget: None,
        }
    }
}

/// A committed message: what the store recorded (for the log line and the tally).
pub type Delivered = crate::outcome::InputResult;

pub use crate::outcome::Outcome;

/// A message the store did not take; nothing of it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotStored {
    /// Retrying later can succeed (the database is away).
    pub transient: bool,
    pub reason: String,
}

/// Takes messages and stores each in its own commit; returns one result per envelope, in
/// order, only once every `Ok` is committed (and durable: the message is moved next).
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, envelopes: Vec<Envelope>) -> impl Future<Output = Vec<Result<Delivered, NotStored>>> + Send;
}

/// What a poller did, for `fetch`'s summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Messages committed (each with one outcome below).
    pub inputs: u64,
    pub stored: u64,
    pub duplicate: u64,
    pub not_report: u64,
    pub rejected: u64,
    /// Messages over the size cap: not fetched (moved to the rejected folder, or left).
    pub oversized: u64,
    /// Messages the store refused for a reason of its own (left in the folder).
    pub failed: u64,
    /// Messages committed but still not moved when `fetch` ended (the connection broke): the
    /// next run reads them again and records them as duplicates.
    pub not_moved: u64,
    pub reports: u64,
    pub forensic: u64,
    pub reports_duplicate: u64,
    pub records: u64,
    pub messages: i64,
}

impl Tally {
    /// Adds another poller's counts (totals over mailboxes).
    pub fn merge(&mut self, other: &Tally) {
        self.inputs += other.inputs;
        self.stored += other.stored;
        self.duplicate += other.duplicate;
        self.not_report += other.not_report;
        self.rejected += other.rejected;
        self.oversized += other.oversized;
        self.failed += other.failed;
        self.not_moved += other.not_moved;
        self.reports += other.reports;
        self.forensic += other.forensic;
        self.reports_duplicate += other.reports_duplicate;
        self.records += other.records;
        self.messages += other.messages;
    }

    fn add(&mut self, delivered: &Delivered) {
        self.inputs += 1;
        match delivered.outcome {
            Outcome::Stored => self.stored += 1,
            Outcome::Duplicate => self.duplicate += 1,
            Outcome::NotReport => self.not_report += 1,
            Outcome::Rejected => self.rejected += 1,
        }
        self.reports += u64::from(delivered.reports_stored);
        self.forensic += u64::from(delivered.forensic_stored);
        self.reports_duplicate += u64::from(delivered.reports_duplicate);
        self.records += delivered.records;
        self.messages += delivered.messages;
    }
}

/// Why talking to the server failed. The mailbox's name is added by whoever logs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: String, source: std::io::Error },

    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },

    #[error("{host} did not answer within {seconds}s")]
    Timeout { host: String, seconds: u64 },

    #[error("connection to {host} lost: {source}")]
    Io { host: String, source: std::io::Error },

    #[error("{host} closed the connection")]
    Closed { host: String },

    #[error("{host} ended the session: BYE {text}")]
    Bye { host: String, text: String },

    #[error("unexpected answer from {host}: {detail}")]
    Protocol { host: String, detail: String },

    /// The credentials were refused: retrying soon will not help.
    #[error("login as {user} refused by {host}: {reply}")]
    Auth { user: String, host: String, reply: String },

    /// No access token could be had (the command failed, the file is missing).
    #[error("no OAuth token: {reason}")]
    Token { reason: String },

    /// A command was answered `NO` or `BAD`.
    #[error("{command} refused by {host}: {reply}")]
    Refused { host: String, command: String, reply: String },

    /// A setting cannot work (a CA file that cannot be read, a folder that does not exist).
    #[error("{0}")]
    Settings(String),
}

impl ImapError {
    /// Failures that waiting a few seconds will not cure: a refused login, a missing token, a
    /// certificate that does not verify, a command the server refuses, bad settings. Retried
    /// only after a long wait, never in a storm (`fetch` gives up at once).
    pub fn needs_attention(&self) -> bool {
        matches!(
            self,
            ImapError::Auth { .. }
                | ImapError::Token { .. }
                | ImapError::Tls { .. }
                | ImapError::Refused { .. }
                | ImapError::Settings(_)
        )
    }
}
