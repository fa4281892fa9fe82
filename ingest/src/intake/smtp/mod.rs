//! The SMTP and LMTP server of `dmarcpipe serve`: dmarcpipe as the mail server of the report
//! mailbox.
//!
//! Input: TCP listeners and a [`Deliver`] (the store, in the binary). Output: every message
//! accepted for a configured recipient handed over as an [`Envelope`], and acknowledged with
//! `250` only once [`Deliver::deliver`] says it is stored; `451` when it says to try later, so
//! that the sending MTA keeps the message. Never a relay: recipients other than the configured
//! addresses and domains get `550`.
//!
//! The protocol is parsed by `smtp-proto` (sans-IO); [`session`] is our session loop: command,
//! DATA and session deadlines, size and recipient caps, pipelining, STARTTLS (rustls) and LMTP. This
//! module holds the settings, the caps on concurrent sessions (overall and per client IP), and
//! the accept loops with graceful shutdown: stop accepting, let sessions in DATA finish within a
//! bound, return.

mod session;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub use tls::{TlsError, load_tls};

use crate::envelope::Envelope;

/// What the store made of a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Committed (stored, duplicate, not a report, or rejected and recorded): `250`, with this
    /// text after the code.
    Accepted(String),
    /// Not stored (the database is unreachable): `451`, the sender retries.
    TryLater(String),
}

/// Takes a message once its DATA is complete. Returns only when the message is committed, or
/// with [`Delivery::TryLater`].
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, envelope: Envelope) -> impl Future<Output = Delivery> + Send;
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    /// RFC 2033: `LHLO`, and one reply per recipient after DATA (for an MTA delivering to us).
    Lmtp,
}

/// The addresses and domains mail is accepted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    addresses: Vec<String>,
    domains: Vec<String>,
}

impl Recipients {
    /// From `reports@dmarc.example.com` (an address) and `@dmarc.example.com` (every address of
    /// a domain) entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Recipients, String> {
        let mut recipients = Recipients::default();
        for entry in entries {
            let entry = entry.as_ref().trim().to_ascii_lowercase();
            match entry.split_once('@') {
                Some(("", domain)) if is_domain(domain) => recipients.domains.push(domain.to_owned()),
                Some((local, domain)) if !local.is_empty() && is_domain(domain) => recipients.addresses.push(entry),
                _ => return Err(format!("`{entry}` is neither an address (reports@example.com) nor @domain")),
            }
        }
        if recipients.addresses.is_empty() && recipients.domains.is_empty() {
            return Err("no recipient address or domain configured: the server would accept nothing".into());
        }
        Ok(recipients)
    }

    /// Whether mail to `address` is ours. Case does not matter, and `reports+tag@` is
    /// `reports@` (subaddressing, RFC 5233).
    pub fn accepts(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let Some((local, domain)) = address.rsplit_once('@') else { return false };
        let local = local.split_once('+').map_or(local, |(base, _)| base);
        self.domains.iter().any(|d| d == domain)
            || self.addresses.iter().any(|a| a.rsplit_once('@') == Some((local, domain)))
    }
}

fn is_domain(text: &str) -> bool {
    !text.is_empty() && text.split('.').all(|label| !label.is_empty()) && !text.contains(char::is_whitespace)
}

/// Everything a session needs to know; defaults fit a report mailbox.
#[derive(Clone)]
pub struct SmtpSettings {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    pub recipients: Recipients,
    /// Largest message accepted (`SIZE`; `552` beyond).
    pub max_message_bytes: u64,
    /// Recipients of one message (`452` beyond).
    pub max_recipients: usize,
    /// Sessions at once (`421` to more).
    pub max_sessions: usize,
    /// Sessions at once from one client IP.
    pub max_sessions_per_ip: usize,
    /// Waiting for one whole command line: from the previous command (or the greeting) to the
    /// end of the next line, however its bytes trickle in (RFC 5321 §4.5.3.2 suggests 5
    /// minutes). Also the longest wait for any single read or write.
    pub command_timeout: Duration,
    /// The fixed part of the DATA deadline: a transfer may last this long plus one second for
    /// every `data_min_rate` bytes received (see [`SmtpSettings::data_min_rate`]).
    pub data_timeout: Duration,
    /// Bytes per second that extend a DATA transfer (and the session) beyond
    /// `data_timeout`: a sender at least this fast always finishes, one slower than this is
    /// cut off after `data_timeout` plus what its bytes earned. At least 1.
    pub data_min_rate: u64,
    /// The fixed part of a session's lifetime, counted from the connection: a session ends
    /// after `session_timeout` + `data_timeout` + the allowance its message data earned at
    /// `data_min_rate`, whatever it does in between.
    pub session_timeout: Duration,
    /// Protocol errors before a session is closed.
    pub max_errors: u32,
    /// How long sessions may take to finish once shutdown begins.
    pub shutdown_grace: Duration,
    /// STARTTLS is offered when a certificate is configured.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The process's memory budget, which message data reserves from as it arrives; `None`:
    /// no budget.
    pub budget: Option<crate::budget::MemoryBudget>,
    /// How long message data waits for room in the budget before the sender is told `451`.
    pub memory_wait: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("hostname", &self.hostname)
            .field("recipients", &self.recipients)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_sessions", &self.max_sessions)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl SmtpSettings {
    pub fn new(hostname: String, recipients: Recipients) -> Self {
        SmtpSettings {
            hostname,
            recipients,
            max_message_bytes: 50 << 20,
            max_recipients: 100,
            max_sessions: 100,
            max_sessions_per_ip: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            // 128 kbit/s: a 50 MiB message may take 600 s + 3,200 s, a 1 MiB one 664 s.
            data_min_rate: 16 << 10,
            session_timeout: Duration::from_secs(600),
            max_errors: 10,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
            budget: None,
            memory_wait: Duration::from_secs(30),
        }
    }
}

/// The listeners of one server, sharing its caps.
pub struct Server<D> {
    settings: Arc<SmtpSettings>,
    deliver: Arc<D>,
    sessions: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl<D> std::fmt::Debug for Server<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl<D: Deliver> Server<D> {
    pub fn new(settings: SmtpSettings, deliver: D) -> Self {
        let sessions = Arc::new(Semaphore::new(settings.max_sessions));
        Server { settings: Arc::new(settings), deliver: Arc::new(deliver), sessions, per_ip: Arc::default() }
    }

    /// Accepts on every listener until `shutdown` turns true, then waits up to
    /// `shutdown_grace` for the sessions (idle ones are told `421` at once; those receiving or
    /// storing a message finish it). Returns the number of sessions cut off at the end.
    pub async fn run(&self, listeners: Vec<(TcpListener, Protocol)>, shutdown: watch::Receiver<bool>) -> usize {
        let mut accepting = tokio::task::JoinSet::new();
        for (listener, protocol) in listeners {
            let server = self.clone_handle();
            let shutdown = shutdown.clone();
            accepting.spawn(async move { server.accept_loop(listener, protocol, shutdown).await });
        }
        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|stopping| *stopping).await;
        accepting.abort_all();
        while accepting.join_next().await.is_some() {}
        let all = self.settings.max_sessions as u32;
        match tokio::time::timeout(self.settings.shutdown_grace, self.sessions.acquire_many(all)).await {
            Ok(_) => 0,
            Err(_) => self.settings.max_sessions - self.sessions.available_permits(),
        }
    }

    fn clone_handle(&self) -> Server<D> {
        Server {
            settings: self.settings.clone(),
            deliver: self.deliver.clone(),
            sessions: self.sessions.clone(),
            per_ip: self.per_ip.clone(),
        }
    }

    async fn accept_loop(self, listener: TcpListener, protocol: Protocol, shutdown: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = self.admit(peer) else {
                tokio::spawn(refuse(stream, "421 4.3.2 Too many connections, try again later\r\n"));
                continue;
            };
            let server = self.clone_handle();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                server.connection(stream, peer, protocol, shutdown).await;
                drop(slot);
            });
        }
    }

    /// A place for a new session from `peer`, or `None` when a cap is reached.
    fn admit(&self, peer: SocketAddr) -> Option<Slot> {
        let permit = self.sessions.clone().try_acquire_owned().ok()?;
        let mut counts = self.per_ip.lock().ok()?;
        let count = counts.entry(peer.ip()).or_insert(0);
        if *count >= self.settings.max_sessions_per_ip {
            return None;
        }
        *count += 1;
        Some(Slot { _permit: permit, ip: peer.ip(), per_ip: self.per_ip.clone() })
    }

    async fn connection(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = stream.set_nodelay(true);
        let settings = &*self.settings;
        let deliver = &*self.deliver;
        let lifetime = session::Lifetime::start();
        let mut plain = session::Session::new(settings, deliver, peer, protocol, false, shutdown.clone(), lifetime);
        let ended = plain.run(&mut stream, true).await;
        match ended {
            Ok(session::Ended::StartTls) => {
                let Some(config) = settings.tls.clone() else { return };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                // The TLS session goes on with the lifetime of the plaintext one: STARTTLS
                // does not buy a client a second one.
                let lifetime = plain.lifetime();
                let handshake_deadline = lifetime.deadline(settings).min(session::after(settings.command_timeout));
                match tokio::time::timeout_at(handshake_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(mut tls)) => {
                        let mut secure =
                            session::Session::new(settings, deliver, peer, protocol, true, shutdown, lifetime);
                        if let Err(err) = secure.run(&mut tls, false).await {
                            tracing::debug!(%peer, error = %err, "TLS session ended with an error");
                        }
                    }
                    Ok(Err(err)) => tracing::info!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            }
            Ok(session::Ended::Closed) => {}
            Err(err) => tracing::debug!(%peer, error = %err, "session ended with an error"),
        }
    }
}

/// A session's place under the caps, given back when it ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.per_ip.lock()
            && let Some(count) = counts.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, reply: &'static str) {
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(reply.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_addresses_or_domains() {
        let recipients = Recipients::parse(&["Reports@DMARC.example.com", "@ruf.example.net"]).expect("valid");
        assert!(recipients.accepts("reports@dmarc.example.com"));
        assert!(recipients.accepts("REPORTS+rua@dmarc.example.com"));
        assert!(recipients.accepts("anyone@ruf.example.net"));
        assert!(!recipients.accepts("other@dmarc.example.com"));
        assert!(!recipients.accepts("reports@example.com"));
        assert!(!recipients.accepts("anyone@sub.ruf.example.net"));
        assert!(!recipients.accepts("no-at-sign"));
        assert!(Recipients::parse(&["reports"]).is_err());
        assert!(Recipients::parse::<&str>(&[]).is_err());
    }
}
