//! One SMTP or LMTP session: commands parsed by `smtp-proto`, replies in the standard codes so
//! that real MTAs do the right thing, DATA collected (dot-unstuffed, capped) and delivered.
//!
//! Replies to pipelined commands are buffered and sent whenever the session is about to wait
//! (for the client, or for the database). `STARTTLS` ends the plaintext session: whatever the
//! client sent after it is discarded with the session (RFC 3207 §4.2, command injection), and
//! the caller runs a new one over TLS, with the same [`Lifetime`].
//!
//! Time is bounded by deadlines, never by a timeout that restarts with every read, so a client
//! that sends one byte a second gains nothing (slowloris):
//! - a command line must be complete `command_timeout` after the previous one (or the
//!   greeting, or the end of a DATA transfer);
//! - a DATA transfer must end `data_timeout` + `received / data_min_rate` seconds after its
//!   `354`: a sender at least `data_min_rate` fast always finishes, a slower one is cut off
//!   once its bytes no longer pay for its time (received bytes count up to the size cap);
//! - the session ends `session_timeout` + `data_timeout` + `all DATA bytes / data_min_rate`
//!   seconds after the connection, whatever the client does, so neither an endless series of
//!   `NOOP`s nor of slow small messages holds a session for ever (the time the store takes
//!   to answer for a message is ours, and does not count);
//! - each single read and write waits at most `command_timeout`.
//!
//! A deadline that passes gets `421 4.4.2` and the connection is closed; a message whose
//! transfer is cut off is not delivered. Delivery itself (the store) is not cut off here.

use std::net::SocketAddr;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, MAX_LINE_LENGTH, RequestReceiver};
use smtp_proto::{Error as ProtocolError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Deliver, Delivery, Protocol, SmtpSettings};
use crate::budget::Reservation;
use crate::envelope::{Envelope, Origin, Payload};

const READ_CHUNK: usize = 64 * 1024;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client quit or went away, or the session was closed (timeout, errors, shutdown).
    Closed,
    /// `220` was sent to `STARTTLS`: the TLS handshake comes next.
    StartTls,
}

/// What a command leads to.
enum Step {
    Continue,
    Data,
    StartTls,
    Close,
}

/// Message data is reserved from the memory budget in steps of at least this much.
const RESERVATION_STEP: u64 = 256 << 10;

/// Where a session is in its time: when it began and the message data it delivered, which
/// buys it more time (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetime {
    started: Instant,
    data_bytes: u64,
    /// Time spent storing messages: the store's time, not the client's, so it does not count.
    delivering: Duration,
}

impl Lifetime {
    pub(super) fn start() -> Self {
        Lifetime { started: Instant::now(), data_bytes: 0, delivering: Duration::ZERO }
    }

    /// When the session must end.
    pub(super) fn deadline(&self, settings: &SmtpSettings) -> Instant {
        let fixed = settings.session_timeout.saturating_add(settings.data_timeout).saturating_add(self.delivering);
        later(self.started, fixed.saturating_add(allowance(self.data_bytes, settings)))
    }
}

/// The time `bytes` of message data buy at `data_min_rate`.
fn allowance(bytes: u64, settings: &SmtpSettings) -> Duration {
    Duration::from_secs_f64(bytes as f64 / settings.data_min_rate.max(1) as f64)
}

/// `base + by`, or a time too far away to matter when that overflows (a configured timeout of
/// `u64::MAX` seconds means "never").
fn later(base: Instant, by: Duration) -> Instant {
    base.checked_add(by).unwrap_or_else(|| base + Duration::from_secs(30 * 365 * 86_400))
}

/// `by` from now (see [`later`]).
pub(super) fn after(by: Duration) -> Instant {
    later(Instant::now(), by)
}

/// What waiting for the client gave.
enum Read {
    Bytes(usize),
    Eof,
    TimedOut,
    Shutdown,
}

pub(super) struct Session<'a, D> {
    settings: &'a SmtpSettings,
    deliver: &'a D,
    peer: SocketAddr,
    protocol: Protocol,
    tls: bool,
    /// A certificate is configured and the session is not encrypted yet.
    starttls_offered: bool,
    shutdown: watch::Receiver<bool>,
    helo: Option<String>,
    mail_from: Option<String>,
    recipients: Vec<String>,
    errors: u32,
    lifetime: Lifetime,
    /// When the command line being received must be complete.
    line_deadline: Instant,
    /// Replies not yet sent.
    out: Vec<u8>,
    /// Bytes received and not yet handled.
    pending: Vec<u8>,
    /// The rest of an overlong command line is being thrown away.
    skipping_long_line: bool,
}

impl<'a, D: Deliver> Session<'a, D> {
    pub(super) fn new(
        settings: &'a SmtpSettings,
        deliver: &'a D,
        peer: SocketAddr,
        protocol: Protocol,
        tls: bool,
        shutdown: watch::Receiver<bool>,
        lifetime: Lifetime,
    ) -> Self {
        Session {
            settings,
            deliver,
            peer,
            protocol,
            tls,
            starttls_offered: settings.tls.is_some() && !tls,
            shutdown,
            helo: None,
            mail_from: None,
            recipients: Vec::new(),
            errors: 0,
            lifetime,
            line_deadline: after(settings.command_timeout),
            out: Vec::new(),
            pending: Vec::new(),
            skipping_long_line: false,
        }
    }

    /// The session's lifetime so far, for the session that follows STARTTLS.
    pub(super) fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        greet: bool,
    ) -> std::io::Result<Ended> {
        if greet {
            let name = if self.protocol == Protocol::Lmtp { "LMTP" } else { "ESMTP" };
            self.reply(220, "", &format!("{} {name} dmarcpipe report intake", self.settings.hostname));
        }
        let mut requests = RequestReceiver::default();
        let mut chunk = vec![0u8; READ_CHUNK];
        self.line_deadline = after(self.settings.command_timeout);
        loop {
            let pending = std::mem::take(&mut self.pending);
            let mut consumed = 0;
            let mut lines_ended = false;
            let mut step = Step::Continue;
            // Commands are framed into lines here, so that no line longer than the cap is
            // buffered or parsed, whether it arrives in one read or in many.
            while matches!(step, Step::Continue) {
                let unread = &pending[consumed..];
                let Some(end) = memchr::memchr(b'\n', unread) else {
                    if unread.len() > MAX_LINE_LENGTH {
                        consumed = pending.len();
                        self.skipping_long_line = true;
                        step = self.refuse(ProtocolError::ResponseTooLong);
                    }
                    break;
                };
                let line = &unread[..=end];
                consumed += end + 1;
                lines_ended = true;
                if std::mem::take(&mut self.skipping_long_line) {
                    continue; // the end of a line already refused
                }
                if line.len() > MAX_LINE_LENGTH {
                    step = self.refuse(ProtocolError::ResponseTooLong);
                    continue;
                }
                step = match requests.ingest(&mut line.iter()) {
                    Ok(request) => self.command(request.into_owned(), line),
                    Err(ProtocolError::NeedsMoreData { .. }) => Step::Continue,
                    // smtp-proto refuses a SIZE of exactly 20 digits as a syntax error; it is
                    // a size, and too big (RFC 1870: 552 at MAIL).
                    Err(ProtocolError::InvalidParameter { param: "SIZE" })
                        if declared_size(line).is_some_and(|size| size > self.settings.max_message_bytes) =>
                    {
                        self.mail(None, declared_size(line).unwrap_or(u64::MAX));
                        Step::Continue
                    }
                    Err(err) => self.refuse(err),
                };
            }
            if lines_ended {
                // The next line has its own `command_timeout`, from now.
                self.line_deadline = after(self.settings.command_timeout);
            }
            let rest = pending[consumed..].to_vec();
            match step {
                Step::Continue => {}
                Step::Close => {
                    self.flush(stream).await?;
                    return Ok(Ended::Closed);
                }
                // Anything pipelined after STARTTLS is dropped here, with `rest`.
                Step::StartTls => {
                    self.flush(stream).await?;
                    return Ok(Ended::StartTls);
                }
                Step::Data => {
                    self.flush(stream).await?;
                    match self.data(stream, rest).await? {
                        Some(leftover) => {
                            self.pending = leftover;
                            self.line_deadline = after(self.settings.command_timeout);
                            continue;
                        }
                        None => return Ok(Ended::Closed),
                    }
                }
            }
            self.flush(stream).await?;
            let session_deadline = self.lifetime.deadline(self.settings);
            match self.read(stream, &mut chunk, self.line_deadline.min(session_deadline), true).await? {
                Read::Bytes(n) => {
                    self.pending = rest;
                    self.pending.extend_from_slice(&chunk[..n]);
                }
                Read::Eof => return Ok(Ended::Closed),
                Read::TimedOut => {
                    if self.line_deadline <= session_deadline {
                        self.reply(421, "4.4.2", "Timeout waiting for a command, closing the connection");
                    } else {
                        tracing::info!(peer = %self.peer, "session time limit reached");
                        self.reply(421, "4.4.2", "Session time limit reached, closing the connection");
                    }
                    self.flush(stream).await?;
                    return Ok(Ended::Closed);
                }
                Read::Shutdown => {
                    self.reply(421, "4.3.2", "Service shutting down, try again later");
                    self.flush(stream).await?;
                    return Ok(Ended::Closed);
                }
            }
        }
    }

    /// Handles one command; `line` is the command line as received.
    fn command(&mut self, request: Request<String>, line: &[u8]) -> Step {
        let lmtp = self.protocol == Protocol::Lmtp;
        match request {
            Request::Ehlo { .. } | Request::Helo { .. } if lmtp => {
                self.reply(500, "5.5.1", "This is an LMTP server: say LHLO");
            }
            Request::Lhlo { .. } if !lmtp => self.reply(500, "5.5.1", "This is an SMTP server: say EHLO"),
            Request::Ehlo { host } | Request::Lhlo { host } => {
                self.greeted(host);
                self.ehlo_reply();
            }
            Request::Helo { host } => {
                self.greeted(host);
                self.reply(250, "", &self.settings.hostname.clone());
            }
            Request::Mail { from } => {
                // smtp-proto wraps sizes of 21 digits and more around to small numbers: the
                // size is read from the line here.
                let size = declared_size(line).unwrap_or(from.size as u64);
                self.mail(Some(from.address), size);
            }
            Request::Rcpt { to } => {
                if self.mail_from.is_none() {
                    self.reply(503, "5.5.1", "MAIL first");
                } else if self.recipients.len() >= self.settings.max_recipients {
                    self.reply(452, "4.5.3", "Too many recipients");
                } else if !self.settings.recipients.accepts(&to.address) {
                    self.errors += 1;
                    self.reply(
                        550,
                        "5.1.1",
                        &format!("<{}>: no such report mailbox here, relaying denied", to.address),
                    );
                } else {
                    self.recipients.push(to.address);
                    self.reply(250, "2.1.5", "OK");
                }
            }
            Request::Data => {
                if self.mail_from.is_none() {
                    self.reply(503, "5.5.1", "MAIL first");
                } else if self.recipients.is_empty() {
                    self.reply(554, "5.5.1", "No valid recipients");
                } else {
                    self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
                    return Step::Data;
                }
            }
            Request::Rset => {
                self.reset();
                self.reply(250, "2.0.0", "OK");
            }
            Request::Noop { .. } => self.reply(250, "2.0.0", "OK"),
            Request::Quit => {
                self.reply(221, "2.0.0", "Bye");
                return Step::Close;
            }
            Request::StartTls if self.tls => self.reply(503, "5.5.1", "TLS is already active"),
            Request::StartTls if !self.starttls_offered => self.reply(502, "5.5.1", "STARTTLS is not offered"),
            Request::StartTls => {
                self.reply(220, "2.0.0", "Ready to start TLS");
                return Step::StartTls;
            }
            Request::Vrfy { .. } | Request::Expn { .. } => {
                self.reply(502, "5.5.1", "VRFY and EXPN are not offered");
            }
            Request::Help { .. } => {
                self.reply(214, "2.0.0", "dmarcpipe takes DMARC reports for its configured addresses")
            }
            Request::Auth { .. }
            | Request::Bdat { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.errors += 1;
                self.reply(502, "5.5.1", "Command not implemented");
            }
        }
        Step::Continue
    }

    /// `MAIL FROM`, with the size the client declared (0 when none); `address` is `None` when
    /// the command could not be parsed beyond a size that is too big anyway.
    fn mail(&mut self, address: Option<String>, size: u64) {
        let max = self.settings.max_message_bytes;
        if self.helo.is_none() {
            self.reply(503, "5.5.1", "Say EHLO first");
        } else if self.mail_from.is_some() {
            self.reply(503, "5.5.1", "Nested MAIL command");
        } else if size > max {
            self.reply(552, "5.3.4", &format!("Message too big: at most {max} bytes"));
        } else if let Some(address) = address {
            self.mail_from = Some(address);
            self.reply(250, "2.1.0", "OK");
        } else {
            self.protocol_error(ProtocolError::InvalidParameter { param: "SIZE" });
        }
    }

    /// Receives the message after `354`, starting with `received` (bytes the client pipelined
    /// after DATA), and delivers it. Returns the bytes after the end of the data, or `None`
    /// when the session is over (timeout, the client went away).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: &mut S,
        received: Vec<u8>,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let max = self.settings.max_message_bytes as usize;
        let mut receiver = DataReceiver::new();
        let mut message = Vec::with_capacity(received.len().max(4096).min(max.min(1 << 20) + 2));
        // The receiver spots the end (and dot-stuffing) only after a line break: start it
        // after one, so that a first line `.` or `..x` is read right, and drop it at the end.
        receiver.ingest(&mut b"\r\n".iter(), &mut message);
        let mut too_big = false;
        // The message's bytes are reserved from the memory budget as they arrive; without room,
        // the rest is read and dropped and the sender told to retry.
        let mut reserved = Reservation::none();
        let mut no_room = false;
        let mut chunk = received;
        let mut scratch = vec![0u8; READ_CHUNK];
        let started = Instant::now();
        // Bytes received, counted up to the size cap: what a client sends beyond it is read
        // and dropped, and buys no time.
        let mut counted: u64 = 0;
        let cap = self.settings.max_message_bytes.saturating_add(2);
        let leftover = loop {
            let mut bytes = chunk.iter();
            let done = receiver.ingest(&mut bytes, &mut message);
            let taken = (chunk.len() - bytes.len()) as u64;
            let earned = taken.min(cap - counted);
            counted += earned;
            self.lifetime.data_bytes = self.lifetime.data_bytes.saturating_add(earned);
            if message.len() > max + 2 {
                // Read on to the end, keeping nothing, then refuse it.
                too_big = true;
                message.clear();
            }
            if let Some(budget) = &self.settings.budget
                && !no_room
                && message.len() as u64 > reserved.bytes()
            {
                // Reading waits while the budget is full (the sender waits with it), up to
                // `memory_wait`.
                let step = (message.len() as u64 - reserved.bytes()).max(RESERVATION_STEP);
                match budget.reserve_within(step, self.settings.memory_wait).await {
                    Some(more) => reserved.merge(more),
                    None => no_room = true,
                }
            }
            if no_room {
                message.clear();
            }
            if done {
                break bytes.as_slice().to_vec();
            }
            let transfer_deadline =
                later(started, self.settings.data_timeout.saturating_add(allowance(counted, self.settings)));
            let deadline =
                transfer_deadline.min(self.lifetime.deadline(self.settings)).min(after(self.settings.command_timeout));
            match self.read(stream, &mut scratch, deadline, false).await? {
                Read::Bytes(n) => chunk = scratch[..n].to_vec(),
                Read::Eof | Read::Shutdown => {
                    tracing::info!(peer = %self.peer, "client went away during DATA; nothing stored");
                    return Ok(None);
                }
                Read::TimedOut => {
                    tracing::info!(peer = %self.peer, "timeout during DATA; nothing stored");
                    self.reply(421, "4.4.2", "Timeout receiving the message, closing the connection");
                    self.flush(stream).await?;
                    return Ok(None);
                }
            }
        };
        let recipients = self.recipients.len();
        if too_big {
            let text = format!("Message too big: at most {max} bytes");
            self.each_recipient(recipients, 552, "5.3.4", &text);
        } else if no_room {
            tracing::warn!(peer = %self.peer, "memory budget full during DATA; the sender is told to retry");
            self.each_recipient(recipients, 451, "4.3.1", "Insufficient system resources, try again later");
        } else {
            message.drain(..2);
            let envelope = Envelope::new(
                Origin::Smtp {
                    peer: self.peer.ip().to_string(),
                    helo: self.helo.clone().unwrap_or_default(),
                    mail_from: self.mail_from.clone().unwrap_or_default(),
                    lmtp: self.protocol == Protocol::Lmtp,
                    tls: self.tls,
                },
                Payload::Bytes(message),
            );
            let delivering = Instant::now();
            let delivery = self.deliver.deliver(envelope).await;
            self.lifetime.delivering = self.lifetime.delivering.saturating_add(delivering.elapsed());
            match delivery {
                Delivery::Accepted(text) => self.each_recipient(recipients, 250, "2.0.0", &text),
                Delivery::TryLater(text) => self.each_recipient(recipients, 451, "4.3.0", &text),
            }
        }
        drop(reserved);
        self.reset();
        Ok(Some(leftover))
    }

    /// SMTP answers a message once; LMTP once per accepted recipient (RFC 2033 §4.2).
    fn each_recipient(&mut self, recipients: usize, code: u16, status: &str, text: &str) {
        let times = if self.protocol == Protocol::Lmtp { recipients.max(1) } else { 1 };
        for _ in 0..times {
            self.reply(code, status, text);
        }
    }

    async fn read<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
        chunk: &mut [u8],
        deadline: Instant,
        stop_on_shutdown: bool,
    ) -> std::io::Result<Read> {
        if stop_on_shutdown && *self.shutdown.borrow() {
            return Ok(Read::Shutdown);
        }
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read(chunk)) => match read {
                Ok(Ok(0)) => Ok(Read::Eof),
                Ok(Ok(n)) => Ok(Read::Bytes(n)),
                Ok(Err(err)) => Err(err),
                Err(_) => Ok(Read::TimedOut),
            },
            _ = shutdown.wait_for(|stopping| *stopping), if stop_on_shutdown => Ok(Read::Shutdown),
        }
    }

    /// Sends the buffered replies. A client that does not read them (its window stays full)
    /// is given the command timeout, then dropped.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, stream: &mut S) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let write = async {
                stream.write_all(&self.out).await?;
                stream.flush().await
            };
            match tokio::time::timeout(self.settings.command_timeout, write).await {
                Ok(written) => written?,
                Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client does not read")),
            }
            self.out.clear();
        }
        Ok(())
    }

    fn greeted(&mut self, host: String) {
        self.reset();
        self.helo = Some(host);
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    fn ehlo_reply(&mut self) {
        let mut lines = vec![
            format!("{} greets {}", self.settings.hostname, self.helo.as_deref().unwrap_or_default()),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            format!("SIZE {}", self.settings.max_message_bytes),
        ];
        if self.starttls_offered {
            lines.push("STARTTLS".to_owned());
        }
        let last = lines.len() - 1;
        for (index, line) in lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            self.out.extend_from_slice(format!("250{separator}{line}\r\n").as_bytes());
        }
    }

    /// Replies to a command that could not be parsed; closes the session after too many.
    fn refuse(&mut self, err: ProtocolError) -> Step {
        self.protocol_error(err);
        if self.errors >= self.settings.max_errors {
            self.reply(421, "4.7.0", "Too many errors, closing the connection");
            return Step::Close;
        }
        Step::Continue
    }

    fn protocol_error(&mut self, err: ProtocolError) {
        self.errors += 1;
        match err {
            ProtocolError::UnknownCommand => self.reply(500, "5.5.1", "Command unrecognized"),
            ProtocolError::InvalidSenderAddress => self.reply(501, "5.1.7", "Bad sender address syntax"),
            ProtocolError::InvalidRecipientAddress => self.reply(501, "5.1.3", "Bad recipient address syntax"),
            ProtocolError::SyntaxError { syntax } => self.reply(501, "5.5.2", &format!("Syntax: {syntax}")),
            ProtocolError::InvalidParameter { param } => {
                self.reply(501, "5.5.4", &format!("Invalid parameter {param}"))
            }
            ProtocolError::UnsupportedParameter { param } => {
                self.reply(555, "5.5.4", &format!("Unsupported parameter {param}"))
            }
            ProtocolError::ResponseTooLong => self.reply(500, "5.5.2", "Line too long"),
            ProtocolError::NeedsMoreData { .. } | ProtocolError::InvalidResponse { .. } => {
                self.reply(500, "5.5.2", "Syntax error")
            }
        }
    }

    fn reply(&mut self, code: u16, status: &str, text: &str) {
        // One line per reply: a text never carries a line break into the protocol.
        let text = text.replace(['\r', '\n'], " ");
        let line = if status.is_empty() { format!("{code} {text}\r\n") } else { format!("{code} {status} {text}\r\n") };
        self.out.extend_from_slice(line.as_bytes());
    }
}

/// The `SIZE=` parameter of a `MAIL` command line (RFC 1870), saturating at `u64::MAX`: a
/// number too large for any integer is still a size, and too big. `None` for other commands,
/// without the parameter, or with something else than digits after `SIZE=`.
fn declared_size(line: &[u8]) -> Option<u64> {
    if !line.get(..4).is_some_and(|verb| verb.eq_ignore_ascii_case(b"MAIL")) {
        return None;
    }
    let value = line
        .split(|b| b.is_ascii_whitespace())
        .skip(1)
        .find_map(|word| word.get(..5).filter(|key| key.eq_ignore_ascii_case(b"SIZE=")).map(|_| &word[5..]))?;
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |size, digit| size.saturating_mul(10).saturating_add(u64::from(digit - b'0'))))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, ReadHalf};

    use super::*;
    use crate::intake::smtp::Recipients;

    /// Keeps what it is given and answers as told, after `delay`.
    struct Recorder {
        messages: Mutex<Vec<Envelope>>,
        answer: Delivery,
        delay: Duration,
    }

    impl Deliver for Recorder {
        async fn deliver(&self, envelope: Envelope) -> Delivery {
            tokio::time::sleep(self.delay).await;
            self.messages.lock().expect("not poisoned").push(envelope);
            self.answer.clone()
        }
    }

    impl Recorder {
        fn accepting() -> Self {
            Recorder::answering(Delivery::Accepted("stored as input 1".into()))
        }

        fn answering(answer: Delivery) -> Self {
            Recorder { messages: Mutex::new(Vec::new()), answer, delay: Duration::ZERO }
        }

        fn bodies(&self) -> Vec<Vec<u8>> {
            let messages = self.messages.lock().expect("not poisoned");
            messages
                .iter()
                .map(|envelope| match &envelope.payload {
                    Payload::Bytes(bytes) => bytes.clone(),
                    Payload::File(_) => panic!("sessions deliver bytes"),
                })
                .collect()
        }
    }

    fn settings() -> SmtpSettings {
        let mut settings = SmtpSettings::new(
            "mx.dmarc.example".into(),
            Recipients::parse(&["reports@dmarc.example"]).expect("recipients"),
        );
        settings.max_message_bytes = 1000;
        settings
    }

    /// Runs a session against `client`'s script on an in-memory connection; returns every
    /// reply line and how the session ended.
    async fn converse(
        settings: &SmtpSettings,
        recorder: &Recorder,
        protocol: Protocol,
        script: &[&str],
        starttls: bool,
    ) -> (Vec<String>, Ended) {
        let (mut server_side, client_side) = tokio::io::duplex(1 << 20);
        let (_stop, shutdown) = watch::channel(false);
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("an address");
        let mut session = Session::new(settings, recorder, peer, protocol, false, shutdown, Lifetime::start());
        session.starttls_offered = starttls;
        let client = tokio::spawn(client(client_side, script.iter().map(|s| s.to_string()).collect()));
        let ended = session.run(&mut server_side, true).await.expect("the session runs");
        drop(server_side);
        (client.await.expect("the client ends"), ended)
    }

    /// Reads every reply line until the server closes.
    fn spawn_reader(read: ReadHalf<DuplexStream>) -> tokio::task::JoinHandle<Vec<String>> {
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            let mut replies = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                replies.push(line);
            }
            replies
        })
    }

    /// Sends each script entry as one write and reads every reply until the server closes.
    async fn client(stream: DuplexStream, script: Vec<String>) -> Vec<String> {
        let (read, mut write) = tokio::io::split(stream);
        let reader = spawn_reader(read);
        for chunk in script {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let _ = write.shutdown().await;
        reader.await.expect("the reader ends")
    }

    fn codes(replies: &[String]) -> Vec<&str> {
        replies.iter().filter(|line| line.as_bytes().get(3) == Some(&b' ')).map(|line| &line[..3]).collect()
    }

    #[tokio::test]
    async fn a_message_is_delivered_dot_unstuffed_and_acknowledged_after_delivery() {
        let recorder = Recorder::accepting();
        let script = [
            "EHLO client.example\r\n",
            "MAIL FROM:<noreply@google.example> SIZE=120\r\n",
            "RCPT TO:<Reports@DMARC.example>\r\n",
            "DATA\r\n",
            ".first line was a lone dot\r\nSubject: x\r\n\r\n..stuffed\r\nend\r\n.\r\n",
            "QUIT\r\n",
        ];
        let (replies, ended) = converse(&settings(), &recorder, Protocol::Smtp, &script, false).await;
        assert_eq!(codes(&replies), ["220", "250", "250", "250", "354", "250", "221"], "{replies:?}");
        assert!(replies.iter().any(|line| line == "250 2.0.0 stored as input 1"), "{replies:?}");
        assert!(replies.iter().any(|line| line == "250 SIZE 1000") && replies.iter().any(|l| l == "250-PIPELINING"));
        assert_eq!(ended, Ended::Closed);
        assert_eq!(
            recorder.bodies(),
            vec![b"first line was a lone dot\r\nSubject: x\r\n\r\n.stuffed\r\nend\r\n".to_vec()]
        );
        let messages = recorder.messages.lock().expect("not poisoned");
        assert_eq!(messages[0].origin.to_string(), "192.0.2.7 helo=client.example from=<noreply@google.example>");
    }

    #[tokio::test]
    async fn pipelined_commands_get_their_replies_in_order() {
        let recorder = Recorder::accepting();
        let script = [
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\n",
            "Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\n",
            "Subject: two\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        ];
        let (replies, _) = converse(&settings(), &recorder, Protocol::Smtp, &script, false).await;
        assert_eq!(
            codes(&replies),
            ["220", "250", "250", "550", "250", "354", "250", "250", "250", "354", "250", "221"],
            "{replies:?}"
        );
        assert_eq!(recorder.bodies().len(), 2);
    }

    #[tokio::test]
    async fn out_of_order_oversize_and_unknown_commands_get_standard_codes() {
        let recorder = Recorder::accepting();
        let big = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(3000));
        let script = [
            "MAIL FROM:<a@b.example>\r\n",
            "EHLO c\r\n",
            "DATA\r\n",
            "MAIL FROM:<a@b.example> SIZE=5000\r\n",
            "MAIL FROM:<a@b.example>\r\n",
            "DATA\r\n",
            "RCPT TO:<reports@dmarc.example>\r\n",
            "DATA\r\n",
            &big,
            "VRFY reports\r\n",
            "FROB\r\n",
            "QUIT\r\n",
        ];
        let (replies, _) = converse(&settings(), &recorder, Protocol::Smtp, &script, false).await;
        assert_eq!(
            codes(&replies),
            ["220", "503", "250", "503", "552", "250", "554", "250", "354", "552", "502", "500", "221"],
            "{replies:?}"
        );
        assert!(recorder.bodies().is_empty(), "nothing too big is delivered");
    }

    #[tokio::test]
    async fn long_lines_and_too_many_recipients_are_refused() {
        let mut settings = settings();
        settings.max_recipients = 2;
        settings.recipients = Recipients::parse(&["@dmarc.example"]).expect("recipients");
        let recorder = Recorder::accepting();
        let long = format!("NOOP {}\r\n", "x".repeat(10_000));
        let (first_half, second_half) = (format!("NOOP {}", "y".repeat(3000)), format!("{}\r\n", "y".repeat(3000)));
        let script = [
            "EHLO c\r\n",
            &long,
            &first_half,
            &second_half,
            "MAIL FROM:<a@b.example>\r\n",
            "RCPT TO:<one@dmarc.example>\r\nRCPT TO:<two@dmarc.example>\r\nRCPT TO:<three@dmarc.example>\r\n",
            "QUIT\r\n",
        ];
        let (replies, _) = converse(&settings, &recorder, Protocol::Smtp, &script, false).await;
        let codes = codes(&replies);
        assert_eq!(codes.first(), Some(&"220"));
        let refused = replies.iter().filter(|line| line.starts_with("500 5.5.2 Line too long")).count();
        assert_eq!(refused, 2, "in one piece or in two: {replies:?}");
        assert_eq!(codes[codes.len() - 5..], ["250", "250", "250", "452", "221"], "{replies:?}");
    }

    #[tokio::test]
    async fn a_failed_delivery_is_a_temporary_failure() {
        let recorder = Recorder::answering(Delivery::TryLater("database down".into()));
        let script = ["HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\n", "x\r\n.\r\nQUIT\r\n"];
        let (replies, _) = converse(&settings(), &recorder, Protocol::Smtp, &script, false).await;
        assert!(replies.contains(&"451 4.3.0 database down".to_owned()), "{replies:?}");
    }

    #[tokio::test]
    async fn lmtp_answers_once_per_recipient() {
        let mut settings = settings();
        settings.recipients = Recipients::parse(&["@dmarc.example"]).expect("recipients");
        let recorder = Recorder::accepting();
        let script = [
            "EHLO c\r\n",
            "LHLO mta.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<rua@dmarc.example>\r\nRCPT TO:<ruf@dmarc.example>\r\nDATA\r\n",
            "x\r\n.\r\nQUIT\r\n",
        ];
        let (replies, _) = converse(&settings, &recorder, Protocol::Lmtp, &script, false).await;
        assert_eq!(
            codes(&replies),
            ["220", "500", "250", "250", "250", "250", "354", "250", "250", "221"],
            "{replies:?}"
        );
        assert_eq!(recorder.bodies().len(), 1, "one message, stored once");
        assert!(recorder.messages.lock().expect("not poisoned")[0].origin.channel() == "lmtp");
    }

    #[tokio::test]
    async fn what_is_pipelined_after_starttls_is_discarded() {
        let recorder = Recorder::accepting();
        let script = ["EHLO c\r\n", "STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n"];
        let (replies, ended) = converse(&settings(), &recorder, Protocol::Smtp, &script, true).await;
        assert!(replies.iter().any(|line| line.ends_with("STARTTLS")), "offered: {replies:?}");
        assert_eq!(codes(&replies), ["220", "250", "220"], "no reply to the injected command: {replies:?}");
        assert_eq!(ended, Ended::StartTls);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_client_is_timed_out() {
        let recorder = Recorder::accepting();
        let (mut server_side, client_side) = tokio::io::duplex(4096);
        let (_stop, shutdown) = watch::channel(false);
        let settings = settings();
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("an address");
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown, Lifetime::start());
        let started = Instant::now();
        assert_eq!(session.run(&mut server_side, true).await.expect("runs"), Ended::Closed);
        assert!(started.elapsed() >= settings.command_timeout);
        drop(server_side);
        let mut text = String::new();
        let mut client_side = client_side;
        client_side.read_to_string(&mut text).await.expect("readable");
        assert!(text.ends_with("421 4.4.2 Timeout waiting for a command, closing the connection\r\n"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_silent_in_the_middle_of_data_is_timed_out_and_nothing_delivered() {
        let recorder = Recorder::accepting();
        let (mut server_side, mut client_side) = tokio::io::duplex(4096);
        let (_stop, shutdown) = watch::channel(false);
        let mut settings = settings();
        settings.data_timeout = Duration::from_secs(60);
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("an address");
        client_side
            .write_all(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\nSubject: half")
            .await
            .expect("written");
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown, Lifetime::start());
        let started = Instant::now();
        assert_eq!(session.run(&mut server_side, true).await.expect("runs"), Ended::Closed);
        assert!(started.elapsed() >= settings.data_timeout && started.elapsed() < settings.command_timeout);
        drop(server_side);
        let mut text = String::new();
        client_side.read_to_string(&mut text).await.expect("readable");
        assert!(text.ends_with("421 4.4.2 Timeout receiving the message, closing the connection\r\n"), "{text}");
        assert!(recorder.bodies().is_empty());
    }

    #[tokio::test]
    async fn an_idle_session_is_closed_at_shutdown() {
        let recorder = Recorder::accepting();
        let (mut server_side, mut client_side) = tokio::io::duplex(4096);
        let (stop, shutdown) = watch::channel(false);
        let settings = settings();
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("an address");
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown, Lifetime::start());
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            stop.send(true).expect("sent");
            stop
        });
        assert_eq!(session.run(&mut server_side, true).await.expect("runs"), Ended::Closed);
        drop(server_side);
        drop(stopper.await);
        let mut text = String::new();
        client_side.read_to_string(&mut text).await.expect("readable");
        assert!(text.ends_with("421 4.3.2 Service shutting down, try again later\r\n"), "{text}");
    }

    #[test]
    fn sizes_are_read_from_the_mail_line_however_large() {
        assert_eq!(declared_size(b"MAIL FROM:<a@b.example> SIZE=120\r\n"), Some(120));
        assert_eq!(declared_size(b"mail from: <a@b.example> body=8bitmime size=7\r\n"), Some(7));
        assert_eq!(declared_size(b"MAIL FROM:<a@b.example> SIZE=18446744073709551616\r\n"), Some(u64::MAX));
        assert_eq!(declared_size(b"MAIL FROM:<a@b.example> SIZE=999999999999999999999999\r\n"), Some(u64::MAX));
        assert_eq!(declared_size(b"MAIL FROM:<a@b.example>\r\n"), None);
        assert_eq!(declared_size(b"MAIL FROM:<a@b.example> SIZE=12x\r\n"), None);
        assert_eq!(declared_size(b"RCPT TO:<a@b.example> SIZE=5\r\n"), None);
    }

    #[tokio::test]
    async fn a_declared_size_too_large_for_any_integer_gets_552_at_mail() {
        let recorder = Recorder::accepting();
        let script = [
            "EHLO c\r\n",
            // 20 digits (smtp-proto calls it a syntax error: 501), 21 digits (smtp-proto wraps
            // it around to 9: 250), u64::MAX + 1, and one byte over the cap.
            "MAIL FROM:<a@b.example> SIZE=99999999999999999999\r\n",
            "MAIL FROM:<a@b.example> SIZE=999999999999999999999\r\n",
            "MAIL FROM:<a@b.example> SIZE=18446744073709551616\r\n",
            "MAIL FROM:<a@b.example> SIZE=1001\r\n",
            "MAIL FROM:<a@b.example> SIZE=1000\r\n",
            "QUIT\r\n",
        ];
        let (replies, _) = converse(&settings(), &recorder, Protocol::Smtp, &script, false).await;
        assert_eq!(codes(&replies), ["220", "250", "552", "552", "552", "552", "250", "221"], "{replies:?}");
        assert!(replies.contains(&"552 5.3.4 Message too big: at most 1000 bytes".to_owned()), "{replies:?}");
    }

    #[tokio::test]
    async fn a_message_beyond_the_memory_budget_gets_451_and_is_not_delivered() {
        let recorder = Recorder::accepting();
        let mut settings = settings();
        settings.max_message_bytes = 8 << 20;
        let budget = crate::budget::MemoryBudget::new(2 << 20);
        settings.budget = Some(budget.clone());
        settings.memory_wait = Duration::from_millis(50);
        let large = format!("Subject: large\r\n\r\n{}\r\n.\r\n", "x".repeat(3 << 20));
        let script = [
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\n",
            &large,
            // A small one fits again: what the refused one reserved was given back.
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<reports@dmarc.example>\r\nDATA\r\nSubject: small\r\n\r\nx\r\n.\r\n",
            "QUIT\r\n",
        ];
        let (replies, _) = converse(&settings, &recorder, Protocol::Smtp, &script, false).await;
        assert_eq!(codes(&replies), ["220", "250", "250", "250", "354", "451", "250", "250", "354", "250", "221"]);
        assert!(
            replies.contains(&"451 4.3.1 Insufficient system resources, try again later".to_owned()),
            "{replies:?}"
        );
        assert_eq!(recorder.bodies().len(), 1, "only the small one is delivered");
        assert_eq!(budget.available(), budget.total(), "everything reserved was given back");
    }

    /// What a client that takes its time did, and what it got.
    struct Timed {
        replies: Vec<String>,
        ended: Ended,
        /// Session time (paused tokio time).
        elapsed: Duration,
        /// Steps of the client's script that were written before the server closed.
        steps_sent: usize,
        delivered: usize,
    }

    /// Runs a session against a client that writes each `(pause, bytes)` step after its
    /// pause, on paused time (tokio advances the clock whenever everyone waits).
    async fn converse_slowly(settings: &SmtpSettings, recorder: &Recorder, steps: Vec<(Duration, Vec<u8>)>) -> Timed {
        let (mut server_side, client_side) = tokio::io::duplex(1 << 20);
        let (_stop, shutdown) = watch::channel(false);
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("an address");
        let (read, mut write) = tokio::io::split(client_side);
        let reader = spawn_reader(read);
        let writer = tokio::spawn(async move {
            let mut sent = 0;
            for (pause, bytes) in steps {
                tokio::time::sleep(pause).await;
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let started = Instant::now();
        let mut session = Session::new(settings, recorder, peer, Protocol::Smtp, false, shutdown, Lifetime::start());
        let ended = session.run(&mut server_side, true).await.expect("the session runs");
        let elapsed = started.elapsed();
        drop(server_side);
        let steps_sent = writer.await.expect("the writer ends");
        let replies = reader.await.expect("the reader ends");
        Timed { replies, ended, elapsed, steps_sent, delivered: recorder.bodies().len() }
    }

    fn step(pause_seconds: u64, bytes: &[u8]) -> (Duration, Vec<u8>) {
        (Duration::from_secs(pause_seconds), bytes.to_vec())
    }

    const ENVELOPE: &[u8] = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reports@dmarc.example>\r\n";

    #[tokio::test(start_paused = true)]
    async fn a_command_line_sent_one_byte_at_a_time_is_cut_off_after_the_command_timeout() {
        let settings = settings();
        let mut steps = vec![step(0, b"EHLO c\r\n")];
        // 2,000 bytes, one every 10 s, never a line end: 20,000 s if let run.
        steps.extend((0..2000).map(|_| step(10, b"x")));
        let total = steps.len();
        let timed = converse_slowly(&settings, &Recorder::accepting(), steps).await;
        assert_eq!(timed.ended, Ended::Closed);
        assert_eq!(
            timed.replies.last().map(String::as_str),
            Some("421 4.4.2 Timeout waiting for a command, closing the connection"),
            "{:?}",
            timed.replies
        );
        assert!(timed.steps_sent < total, "cut off while still sending");
        let limit = settings.command_timeout;
        assert!(timed.elapsed >= limit && timed.elapsed < limit + Duration::from_secs(10), "{:?}", timed.elapsed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_of_timely_noops_ends_with_its_lifetime() {
        let mut settings = settings();
        settings.command_timeout = Duration::from_secs(30);
        settings.session_timeout = Duration::from_secs(100);
        settings.data_timeout = Duration::from_secs(60);
        let mut steps = vec![step(0, b"EHLO c\r\n")];
        steps.extend((0..1000).map(|_| step(25, b"NOOP\r\n")));
        let timed = converse_slowly(&settings, &Recorder::accepting(), steps).await;
        assert_eq!(
            timed.replies.last().map(String::as_str),
            Some("421 4.4.2 Session time limit reached, closing the connection"),
            "{:?}",
            timed.replies
        );
        // 100 s + 60 s, no message data: the NOOPs of 25 s to 150 s answered, then the end.
        assert_eq!(timed.elapsed, Duration::from_secs(160));
        assert_eq!(timed.replies.iter().filter(|line| *line == "250 2.0.0 OK").count(), 6, "{:?}", timed.replies);
    }

    /// Settings for DATA at a known pace: 60 s plus one second per 1,000 bytes.
    fn slow_link_settings() -> SmtpSettings {
        let mut settings = settings();
        settings.max_message_bytes = 1 << 20;
        settings.command_timeout = Duration::from_secs(30);
        settings.data_timeout = Duration::from_secs(60);
        settings.data_min_rate = 1000;
        settings.session_timeout = Duration::from_secs(100);
        settings
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_message_over_a_slow_link_gets_through() {
        // 400,000 bytes at 2,000 bytes a second: 200 s, well past the 60 s of data_timeout,
        // and well past the 160 s of a session that delivered nothing.
        let mut steps = vec![step(0, ENVELOPE), step(0, b"DATA\r\nSubject: large\r\n\r\n")];
        let line = format!("{}\r\n", "x".repeat(98));
        steps.extend((0..200).map(|_| step(1, line.repeat(20).as_bytes())));
        steps.push(step(1, b".\r\nQUIT\r\n"));
        let timed = converse_slowly(&slow_link_settings(), &Recorder::accepting(), steps).await;
        assert_eq!(codes(&timed.replies), ["220", "250", "250", "250", "354", "250", "221"], "{:?}", timed.replies);
        assert_eq!(timed.delivered, 1);
        assert!(timed.elapsed > Duration::from_secs(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_dripping_in_is_cut_off_once_its_bytes_no_longer_pay_for_its_time() {
        let mut steps = vec![step(0, ENVELOPE), step(0, b"DATA\r\n")];
        steps.extend((0..10_000).map(|_| step(1, b"x")));
        let total = steps.len();
        let timed = converse_slowly(&slow_link_settings(), &Recorder::accepting(), steps).await;
        assert_eq!(
            timed.replies.last().map(String::as_str),
            Some("421 4.4.2 Timeout receiving the message, closing the connection"),
            "{:?}",
            timed.replies
        );
        assert!(timed.steps_sent < total);
        assert_eq!(timed.delivered, 0);
        // 60 s plus a millisecond per byte received.
        assert!(timed.elapsed >= Duration::from_secs(60) && timed.elapsed < Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn small_messages_dripping_in_one_after_another_end_with_the_session() {
        // Each message takes 40 s (under data_timeout), one after the other: the session ends
        // after 100 s + 60 s + what its few bytes earned.
        let message: Vec<(Duration, Vec<u8>)> = std::iter::once(step(0, b"MAIL FROM:<a@b.example>\r\n"))
            .chain(std::iter::once(step(0, b"RCPT TO:<reports@dmarc.example>\r\nDATA\r\n")))
            .chain((0..40).map(|_| step(1, b"x")))
            .chain(std::iter::once(step(0, b"\r\n.\r\n")))
            .collect();
        let mut steps = vec![step(0, b"EHLO c\r\n")];
        for _ in 0..50 {
            steps.extend(message.iter().cloned());
        }
        let timed = converse_slowly(&slow_link_settings(), &Recorder::accepting(), steps).await;
        assert_eq!(
            timed.replies.last().map(String::as_str),
            Some("421 4.4.2 Timeout receiving the message, closing the connection"),
            "{:?}",
            timed.replies
        );
        assert_eq!(timed.delivered, 4, "160 s hold four messages of 40 s");
        assert!(timed.elapsed < Duration::from_secs(161), "{:?}", timed.elapsed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_the_store_takes_does_not_count_against_the_session() {
        // The store takes 300 s for the message, longer than the whole 160 s lifetime of a
        // session that carried few bytes: the client can still go on and say QUIT.
        let mut recorder = Recorder::accepting();
        recorder.delay = Duration::from_secs(300);
        let steps =
            vec![step(0, ENVELOPE), step(0, b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"), step(301, b"QUIT\r\n")];
        let timed = converse_slowly(&slow_link_settings(), &recorder, steps).await;
        assert_eq!(codes(&timed.replies), ["220", "250", "250", "250", "354", "250", "221"], "{:?}", timed.replies);
        assert_eq!(timed.delivered, 1);
    }
}
