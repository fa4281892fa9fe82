//! One SMTP or LMTP session: commands parsed by `smtp-proto`, replies in the standard codes so
//! that real MTAs do the right thing, DATA collected (dot-unstuffed, capped) and delivered.
//!
//! Replies to pipelined commands are buffered and sent whenever the session is about to wait
//! (for the client, or for the database). `STARTTLS` ends the plaintext session: whatever the
//! client sent after it is discarded with the session (RFC 3207 §4.2, command injection), and
//! the caller runs a new one over TLS.

use std::net::SocketAddr;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, MAX_LINE_LENGTH, RequestReceiver};
use smtp_proto::{Error as ProtocolError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Deliver, Delivery, Protocol, SmtpSettings};
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
            out: Vec::new(),
            pending: Vec::new(),
            skipping_long_line: false,
        }
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
        loop {
            let pending = std::mem::take(&mut self.pending);
            let mut consumed = 0;
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
                if std::mem::take(&mut self.skipping_long_line) {
                    continue; // the end of a line already refused
                }
                if line.len() > MAX_LINE_LENGTH {
                    step = self.refuse(ProtocolError::ResponseTooLong);
                    continue;
                }
                step = match requests.ingest(&mut line.iter()) {
                    Ok(request) => self.command(request.into_owned()),
                    Err(ProtocolError::NeedsMoreData { .. }) => Step::Continue,
                    Err(err) => self.refuse(err),
                };
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
                            continue;
                        }
                        None => return Ok(Ended::Closed),
                    }
                }
            }
            self.flush(stream).await?;
            match self.read(stream, &mut chunk, self.settings.command_timeout, true).await? {
                Read::Bytes(n) => {
                    self.pending = rest;
                    self.pending.extend_from_slice(&chunk[..n]);
                }
                Read::Eof => return Ok(Ended::Closed),
                Read::TimedOut => {
                    self.reply(421, "4.4.2", "Timeout waiting for a command, closing the connection");
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

    fn command(&mut self, request: Request<String>) -> Step {
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
                if self.helo.is_none() {
                    self.reply(503, "5.5.1", "Say EHLO first");
                } else if self.mail_from.is_some() {
                    self.reply(503, "5.5.1", "Nested MAIL command");
                } else if from.size as u64 > self.settings.max_message_bytes {
                    self.reply(
                        552,
                        "5.3.4",
                        &format!("Message too big: at most {} bytes", self.settings.max_message_bytes),
                    );
                } else {
                    self.mail_from = Some(from.address);
                    self.reply(250, "2.1.0", "OK");
                }
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
        let mut chunk = received;
        let mut scratch = vec![0u8; READ_CHUNK];
        let deadline = Instant::now() + self.settings.data_timeout;
        let leftover = loop {
            let mut bytes = chunk.iter();
            let done = receiver.ingest(&mut bytes, &mut message);
            if message.len() > max + 2 {
                // Read on to the end, keeping nothing, then refuse it.
                too_big = true;
                message.clear();
            }
            if done {
                break bytes.as_slice().to_vec();
            }
            let wait = deadline.saturating_duration_since(Instant::now()).min(self.settings.command_timeout);
            match self.read(stream, &mut scratch, wait, false).await? {
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
            match self.deliver.deliver(envelope).await {
                Delivery::Accepted(text) => self.each_recipient(recipients, 250, "2.0.0", &text),
                Delivery::TryLater(text) => self.each_recipient(recipients, 451, "4.3.0", &text),
            }
        }
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
        wait: Duration,
        stop_on_shutdown: bool,
    ) -> std::io::Result<Read> {
        if stop_on_shutdown && *self.shutdown.borrow() {
            return Ok(Read::Shutdown);
        }
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            read = tokio::time::timeout(wait, stream.read(chunk)) => match read {
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    use super::*;
    use crate::intake::smtp::Recipients;

    /// Keeps what it is given and answers as told.
    struct Recorder {
        messages: Mutex<Vec<Envelope>>,
        answer: Delivery,
    }

    impl Deliver for Recorder {
        async fn deliver(&self, envelope: Envelope) -> Delivery {
            self.messages.lock().expect("not poisoned").push(envelope);
            self.answer.clone()
        }
    }

    impl Recorder {
        fn accepting() -> Self {
            Recorder { messages: Mutex::new(Vec::new()), answer: Delivery::Accepted("stored as input 1".into()) }
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
        let mut session = Session::new(settings, recorder, peer, protocol, false, shutdown);
        session.starttls_offered = starttls;
        let client = tokio::spawn(client(client_side, script.iter().map(|s| s.to_string()).collect()));
        let ended = session.run(&mut server_side, true).await.expect("the session runs");
        drop(server_side);
        (client.await.expect("the client ends"), ended)
    }

    /// Sends each script entry as one write and reads every reply until the server closes.
    async fn client(stream: DuplexStream, script: Vec<String>) -> Vec<String> {
        let (read, mut write) = tokio::io::split(stream);
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            let mut replies = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                replies.push(line);
            }
            replies
        });
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
        let recorder =
            Recorder { messages: Mutex::new(Vec::new()), answer: Delivery::TryLater("database down".into()) };
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
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown);
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
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown);
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
        let mut session = Session::new(&settings, &recorder, peer, Protocol::Smtp, false, shutdown);
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
}
