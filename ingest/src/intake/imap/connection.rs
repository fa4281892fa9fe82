//! One IMAP session: connecting (TCP, implicit TLS or STARTTLS with rustls), logging in, and
//! the commands the poller runs.
//!
//! Input: [`MailboxSettings`] and a token source. Output: an authenticated [`Session`] whose
//! capabilities are those announced after login (servers such as Exchange announce MOVE only
//! then), or an [`ImapError`] saying which step failed. TLS verifies the server's name against
//! the built-in web roots, or only against the `ca_file` certificates when one is given.
//! Messages are addressed by UID only, never by sequence number; bodies are fetched with
//! `BODY.PEEK[]` (flags untouched) and a partial range, so that no answer can exceed the cap.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::auth::{self, Tokens};
use super::protocol::{self, Completion, Condition, Data, Fetched, Response, Status, Wire};
use super::{Credentials, ImapError, MailboxSettings, Tls};

/// The byte stream under a session.
#[derive(Debug)]
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The rustls client configuration: the web roots, or only the certificates of `ca_file`.
pub(super) fn tls_config(settings: &MailboxSettings) -> Result<Option<Arc<ClientConfig>>, ImapError> {
    if settings.tls == Tls::None {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let fail = |reason: String| ImapError::Settings(format!("ca_file {}: {reason}", path.display()));
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|err| fail(err.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|err| fail(err.to_string()))?;
            if certificates.is_empty() {
                return Err(fail("no CERTIFICATE in it".into()));
            }
            for certificate in certificates {
                roots.add(certificate).map_err(|err| fail(err.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| ImapError::Settings(format!("TLS: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// A logged-in session.
#[derive(Debug)]
pub(super) struct Session {
    pub wire: Wire<Transport>,
    /// Upper-cased capability names, as announced after login.
    pub capabilities: HashSet<String>,
    /// The server answered `UID MOVE` with `BAD`: COPY and delete from now on.
    move_refused: bool,
}

/// What SELECT told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Selected {
    pub uid_validity: u32,
    pub exists: u32,
}

/// A folder: its name as configured (for logs) and on the server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Folder {
    pub name: String,
    pub wire: String,
}

/// Where a message goes once committed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Destination {
    Folder(Folder),
    Delete,
}

impl Destination {
    /// `moved to DMARC/Archive`, `deleted`.
    pub fn describe(&self) -> String {
        match self {
            Destination::Folder(folder) => format!("moved to {}", folder.name),
            Destination::Delete => "deleted".to_owned(),
        }
    }
}

/// What IDLE ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woken {
    /// New mail was announced.
    News,
    /// The IDLE ran its course: renew it.
    Renew,
    Shutdown,
}

impl Session {
    /// Connects, protects the connection as configured, and logs in.
    pub async fn open(
        settings: &MailboxSettings,
        tls: Option<&Arc<ClientConfig>>,
        tokens: &mut Option<Tokens>,
    ) -> Result<Session, ImapError> {
        let host = settings.host.as_str();
        let address = format!("{host}:{}", settings.port);
        let tcp = match tokio::time::timeout(settings.timeout, TcpStream::connect((host, settings.port))).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(ImapError::Connect { address, source }),
            Err(_) => return Err(ImapError::Timeout { host: host.to_owned(), seconds: settings.timeout.as_secs() }),
        };
        let _ = tcp.set_nodelay(true);
        // Until login, no answer needs more than a few KiB.
        let greeting_cap = 64 * 1024;
        let config =
            || tls.ok_or_else(|| ImapError::Settings(format!("mailbox {}: no TLS configuration", settings.name)));
        let (mut wire, greeted) = match settings.tls {
            Tls::Implicit => {
                let stream = handshake(config()?, host, tcp, settings.timeout).await?;
                let mut wire = Wire::new(Transport::Tls(Box::new(stream)), host, settings.timeout, greeting_cap);
                let greeted = greeting(&mut wire).await?;
                (wire, greeted)
            }
            Tls::StartTls => {
                let mut wire = Wire::new(Transport::Plain(tcp), host, settings.timeout, greeting_cap);
                let mut announced = greeting(&mut wire).await?;
                if announced.is_empty() {
                    announced = capabilities(&mut wire).await?;
                }
                if !announced.contains("STARTTLS") {
                    return Err(ImapError::Tls {
                        host: host.to_owned(),
                        reason: "the server does not offer STARTTLS (use tls = \"implicit\" on port 993?)".into(),
                    });
                }
                let (_, done) = wire.command("STARTTLS").await?;
                if done.status != Status::Ok {
                    return Err(refused(&wire, "STARTTLS", &done));
                }
                let Transport::Plain(tcp) = wire.into_stream()? else {
                    return Err(ImapError::Tls { host: host.to_owned(), reason: "STARTTLS twice".into() });
                };
                let stream = handshake(config()?, host, tcp, settings.timeout).await?;
                // Capabilities from before TLS are void (RFC 3501 §6.2.1): ask again.
                let mut wire = Wire::new(Transport::Tls(Box::new(stream)), host, settings.timeout, greeting_cap);
                let announced = capabilities(&mut wire).await?;
                (wire, announced)
            }
            Tls::None => {
                let mut wire = Wire::new(Transport::Plain(tcp), host, settings.timeout, greeting_cap);
                let greeted = greeting(&mut wire).await?;
                (wire, greeted)
            }
        };
        let announced = if greeted.is_empty() { capabilities(&mut wire).await? } else { greeted };
        let after_login = login(&mut wire, &announced, settings, tokens).await?;
        let capabilities = match after_login {
            Some(capabilities) => capabilities,
            None => capabilities(&mut wire).await?,
        };
        // Past login, a FETCH answer holds one message, at most the cap (partial fetch).
        wire.max_literal = settings.max_message_bytes + 1;
        Ok(Session { wire, capabilities, move_refused: false })
    }

    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(capability)
    }

    /// Runs a command that must succeed.
    pub async fn run(&mut self, command: &str) -> Result<Vec<Data>, ImapError> {
        let (data, done) = self.wire.command(command).await?;
        match done.status {
            Status::Ok => Ok(data),
            _ => Err(refused(&self.wire, command, &done)),
        }
    }

    /// SELECT: the folder's UIDVALIDITY and message count.
    pub async fn select(&mut self, folder: &str) -> Result<Selected, ImapError> {
        let data = self.run(&format!("SELECT {}", protocol::quote(folder))).await?;
        let mut selected = Selected { uid_validity: 0, exists: 0 };
        let mut validity = None;
        for item in data {
            match item {
                Data::Exists(n) => selected.exists = n,
                Data::Condition { kind: Condition::Ok, code: Some(code), .. } => {
                    if let Some(value) = code.strip_prefix("UIDVALIDITY ") {
                        validity = value.trim().parse().ok();
                    }
                }
                _ => {}
            }
        }
        // Without UIDVALIDITY, UIDs cannot be trusted across sessions (RFC 3501 §2.3.1.1).
        selected.uid_validity =
            validity.ok_or_else(|| self.wire.protocol(format!("SELECT {folder} gave no UIDVALIDITY")))?;
        Ok(selected)
    }

    /// UIDs of the messages not already marked for deletion, ascending.
    pub async fn uids(&mut self) -> Result<Vec<u32>, ImapError> {
        let data = self.run("UID SEARCH UNDELETED").await?;
        let mut uids: Vec<u32> = data
            .into_iter()
            .filter_map(|item| match item {
                Data::Search(uids) => Some(uids),
                _ => None,
            })
            .flatten()
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// RFC822.SIZE of each of these messages (those expunged meanwhile are missing).
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<HashMap<u32, u64>, ImapError> {
        let data = self.run(&format!("UID FETCH {} (UID RFC822.SIZE)", protocol::uid_set(uids))).await?;
        Ok(fetched(data).filter_map(|f| Some((f.uid?, u64::from(f.size?)))).collect())
    }

    /// The bytes of these messages, at most `limit` each (a message that comes back with
    /// `limit` bytes is larger than `limit - 1`). Flags are left alone (`BODY.PEEK`).
    pub async fn bodies(&mut self, uids: &[u32], limit: u64) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
        let command = format!("UID FETCH {} (UID BODY.PEEK[]<0.{limit}>)", protocol::uid_set(uids));
        let data = self.run(&command).await?;
        Ok(fetched(data).filter_map(|f| Some((f.uid?, f.body?))).collect())
    }

    /// Moves these messages to their destination: UID MOVE when the server has it, else UID
    /// COPY, `\Deleted` and UID EXPUNGE (EXPUNGE without UIDPLUS). A folder that vanished
    /// (`[TRYCREATE]`) is created again once.
    pub async fn settle(&mut self, uids: &[u32], destination: &Destination) -> Result<(), ImapError> {
        let set = protocol::uid_set(uids);
        let folder = match destination {
            Destination::Delete => return self.delete(&set).await,
            Destination::Folder(folder) => protocol::quote(&folder.wire),
        };
        if self.has("MOVE") && !self.move_refused {
            for attempt in 0..2 {
                let (_, done) = self.wire.command(&format!("UID MOVE {set} {folder}")).await?;
                match done.status {
                    Status::Ok => return Ok(()),
                    Status::No if done.has_code("TRYCREATE") && attempt == 0 => self.create(&folder).await?,
                    // Exchange 2010 lists MOVE and refuses it (parsedmarc#9): copy instead.
                    Status::Bad => {
                        tracing::debug!(reply = %done.describe(), "UID MOVE refused; using COPY and EXPUNGE");
                        self.move_refused = true;
                        break;
                    }
                    _ => return Err(refused(&self.wire, "UID MOVE", &done)),
                }
            }
        }
        let (_, done) = self.wire.command(&format!("UID COPY {set} {folder}")).await?;
        if done.status == Status::No && done.has_code("TRYCREATE") {
            self.create(&folder).await?;
            self.run(&format!("UID COPY {set} {folder}")).await?;
        } else if done.status != Status::Ok {
            return Err(refused(&self.wire, "UID COPY", &done));
        }
        self.delete(&set).await
    }

    /// Flags the messages `\Deleted` and expunges them.
    async fn delete(&mut self, set: &str) -> Result<(), ImapError> {
        self.run(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)")).await?;
        if self.has("UIDPLUS") {
            self.run(&format!("UID EXPUNGE {set}")).await?;
        } else {
            // Also removes whatever else is flagged \Deleted in the folder: the README says to
            // give dmarcpipe a folder of its own on such servers.
            self.run("EXPUNGE").await?;
        }
        Ok(())
    }

    /// CREATE (already existing is fine) and SUBSCRIBE (so that mail clients show it).
    pub async fn create(&mut self, quoted_folder: &str) -> Result<(), ImapError> {
        let (_, done) = self.wire.command(&format!("CREATE {quoted_folder}")).await?;
        if done.status != Status::Ok && !done.has_code("ALREADYEXISTS") {
            return Err(refused(&self.wire, &format!("CREATE {quoted_folder}"), &done));
        }
        let _ = self.wire.command(&format!("SUBSCRIBE {quoted_folder}")).await?;
        Ok(())
    }

    /// IDLE until new mail is announced, `window` ends, or shutdown; then DONE.
    pub async fn idle(&mut self, window: Duration, shutdown: &mut watch::Receiver<bool>) -> Result<Woken, ImapError> {
        let tag = self.wire.send_command("IDLE").await?;
        loop {
            match self.wire.read_response().await? {
                Response::Continue(_) => break,
                Response::Tagged { completion, .. } => return Err(refused(&self.wire, "IDLE", &completion)),
                Response::Data(_) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + window;
        let woken = loop {
            if self.wire.take_news() {
                break Woken::News;
            }
            tokio::select! {
                response = self.wire.read_until_complete() => {
                    if let Response::Tagged { completion, .. } = response? {
                        return Err(refused(&self.wire, "IDLE", &completion));
                    }
                }
                () = tokio::time::sleep_until(deadline) => break Woken::Renew,
                _ = shutdown.wait_for(|stopping| *stopping) => break Woken::Shutdown,
            }
        };
        self.wire.send_line("DONE").await?;
        let (_, done) = self.wire.complete(&tag).await?;
        if done.status != Status::Ok {
            return Err(refused(&self.wire, "IDLE", &done));
        }
        Ok(woken)
    }

    /// Whether new mail was announced in a response since the last look.
    pub fn news(&mut self) -> bool {
        self.wire.take_news()
    }

    /// LOGOUT, and close our side.
    pub async fn logout(mut self) {
        // The server says BYE before its OK: either way the session is over.
        let _ = self.wire.command("LOGOUT").await;
        self.wire.shutdown().await;
    }
}

fn fetched(data: Vec<Data>) -> impl Iterator<Item = Fetched> {
    data.into_iter().filter_map(|item| match item {
        Data::Fetch(fetched) => Some(fetched),
        _ => None,
    })
}

fn refused<S>(wire: &Wire<S>, command: &str, done: &Completion) -> ImapError {
    // Only the command's name: its arguments may be a password.
    let command: String = command.split(' ').take(2).collect::<Vec<_>>().join(" ");
    ImapError::Refused { host: wire.host.clone(), command, reply: done.describe() }
}

async fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, ImapError> {
    let fail = |reason: String| ImapError::Tls { host: host.to_owned(), reason };
    let name = ServerName::try_from(host.to_owned()).map_err(|err| fail(format!("not a host name: {err}")))?;
    match tokio::time::timeout(timeout, TlsConnector::from(config.clone()).connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(fail(err.to_string())),
        Err(_) => Err(fail(format!("no handshake within {}s", timeout.as_secs()))),
    }
}

/// Reads the greeting; the capabilities it announced, if any.
async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(wire: &mut Wire<S>) -> Result<HashSet<String>, ImapError> {
    match wire.read_response().await? {
        Response::Data(Data::Condition { kind: Condition::Ok | Condition::PreAuth, code, .. }) => {
            Ok(code_capabilities(code.as_deref()).unwrap_or_default())
        }
        other => Err(wire.protocol(format!("greeting {other:?}"))),
    }
}

/// CAPABILITY.
async fn capabilities<S: AsyncRead + AsyncWrite + Unpin>(wire: &mut Wire<S>) -> Result<HashSet<String>, ImapError> {
    let (data, done) = wire.command("CAPABILITY").await?;
    if done.status != Status::Ok {
        return Err(refused(wire, "CAPABILITY", &done));
    }
    Ok(data
        .into_iter()
        .filter_map(|item| match item {
            Data::Capabilities(names) => Some(names),
            _ => None,
        })
        .flatten()
        .collect())
}

/// `[CAPABILITY ...]` in a response code.
fn code_capabilities(code: Option<&str>) -> Option<HashSet<String>> {
    let code = code?;
    let (name, rest) = code.split_once(' ')?;
    name.eq_ignore_ascii_case("CAPABILITY").then(|| protocol::capabilities(rest).into_iter().collect())
}

/// Logs in; the capabilities announced in the login's reply, if any.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    announced: &HashSet<String>,
    settings: &MailboxSettings,
    tokens: &mut Option<Tokens>,
) -> Result<Option<HashSet<String>>, ImapError> {
    let user = settings.user.as_str();
    let sasl_ir = announced.contains("SASL-IR");
    let denied = |reply: String| ImapError::Auth { user: user.to_owned(), host: settings.host.clone(), reply };
    match &settings.credentials {
        Credentials::Password(password) => {
            let done = if announced.contains("AUTH=PLAIN") {
                authenticate(wire, "PLAIN", &auth::plain(user, password), None, sasl_ir).await?.0
            } else if announced.contains("LOGINDISABLED") {
                return Err(denied(
                    "the server refuses passwords on this connection (LOGINDISABLED): use tls = \"starttls\" or \"implicit\""
                        .into(),
                ));
            } else {
                let quotable = |s: &str| s.chars().all(|c| c.is_ascii() && c != '\r' && c != '\n' && c != '\0');
                if !quotable(user) || !quotable(password) {
                    return Err(denied(
                        "the server offers only LOGIN, which cannot carry this user name or password".into(),
                    ));
                }
                let command = format!("LOGIN {} {}", protocol::quote(user), protocol::quote(password));
                wire.command(&command).await?.1
            };
            match done.status {
                Status::Ok => Ok(code_capabilities(done.code.as_deref())),
                _ => Err(denied(done.describe())),
            }
        }
        Credentials::OAuth { mechanism, .. } => {
            let tokens = tokens.as_mut().ok_or_else(|| ImapError::Token { reason: "no token source".into() })?;
            let name = auth::mechanism_name(*mechanism);
            if !announced.contains(&format!("AUTH={name}")) {
                return Err(denied(format!("the server does not offer AUTH={name}")));
            }
            loop {
                let token = tokens.get().await?;
                let first = auth::oauth(*mechanism, user, &settings.host, settings.port, &token.value);
                let (done, challenge) =
                    authenticate(wire, name, &first, Some(auth::error_reply(*mechanism)), sasl_ir).await?;
                if done.status == Status::Ok {
                    return Ok(code_capabilities(done.code.as_deref()));
                }
                tokens.forget();
                if token.fresh || !tokens.renewable() {
                    let said = challenge.map(|json| format!(" ({json})")).unwrap_or_default();
                    return Err(denied(format!("{}{said}", done.describe())));
                }
                // The token kept from an earlier login expired early or was revoked: one more
                // try with a new one (the command runs again).
                tracing::debug!(mailbox = %settings.name, "OAuth token refused; asking token_command for a new one");
            }
        }
    }
}

/// AUTHENTICATE with `initial` as the first response (inline when the server has SASL-IR).
/// A challenge after it is the server's error report: answered with `on_error` so that the
/// server ends with a tagged `NO` (`None`: cancel with `*`), and returned (decoded) for the
/// error message.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<S>,
    mechanism: &str,
    initial: &[u8],
    on_error: Option<&[u8]>,
    sasl_ir: bool,
) -> Result<(Completion, Option<String>), ImapError> {
    let encoded = BASE64.encode(initial);
    let mut sent_initial = sasl_ir;
    let tag = if sasl_ir {
        wire.send_command(&format!("AUTHENTICATE {mechanism} {encoded}")).await?
    } else {
        wire.send_command(&format!("AUTHENTICATE {mechanism}")).await?
    };
    let mut challenge = None;
    loop {
        match wire.read_response().await? {
            Response::Continue(text) => {
                if sent_initial {
                    let decoded = BASE64.decode(text.trim()).unwrap_or_default();
                    challenge = Some(String::from_utf8_lossy(&decoded).trim().to_owned()).filter(|c| !c.is_empty());
                    match on_error {
                        Some(reply) => wire.send_line(&BASE64.encode(reply)).await?,
                        None => wire.send_line("*").await?,
                    }
                } else {
                    wire.send_line(&encoded).await?;
                    sent_initial = true;
                }
            }
            Response::Tagged { tag: done, completion } if done == tag => return Ok((completion, challenge)),
            Response::Tagged { tag: other, .. } => {
                return Err(wire.protocol(format!("completion of unknown command {other}")));
            }
            Response::Data(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! The login paths Dovecot cannot show (it always offers AUTH=PLAIN and SASL-IR), played
    //! against a scripted server.

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    use super::*;
    use crate::intake::imap::{OAuthMechanism, TokenSource};

    /// Answers each expected client line with its reply.
    fn scripted(script: Vec<(String, &'static str)>) -> (Wire<DuplexStream>, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(server);
            let mut lines = BufReader::new(read).lines();
            for (expected, reply) in script {
                let line = lines.next_line().await.expect("readable").expect("a line");
                assert_eq!(line, expected);
                write.write_all(reply.as_bytes()).await.expect("written");
            }
        });
        (Wire::new(client, "imap.example.com", Duration::from_secs(5), 1024), server)
    }

    fn settings(credentials: Credentials) -> MailboxSettings {
        MailboxSettings::new("reports", "imap.example.com", "dmarc@example.com", credentials)
    }

    fn announced(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[tokio::test]
    async fn login_when_the_server_offers_no_auth_plain() {
        let (mut wire, server) = scripted(vec![(
            r#"d1 LOGIN "dmarc@example.com" "p w\"d""#.to_owned(),
            "d1 OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] Logged in\r\n",
        )]);
        let settings = settings(Credentials::Password("p w\"d".into()));
        let capabilities = login(&mut wire, &announced(&["IMAP4REV1"]), &settings, &mut None).await.expect("logged in");
        assert!(capabilities.expect("announced").contains("MOVE"));
        server.await.expect("the script ran");

        let (mut wire, _server) = scripted(vec![]);
        let err = login(&mut wire, &announced(&["IMAP4REV1", "LOGINDISABLED"]), &settings, &mut None)
            .await
            .expect_err("no password in clear");
        assert!(err.to_string().contains("LOGINDISABLED): use tls = \"starttls\""), "{err}");
    }

    #[tokio::test]
    async fn xoauth2_without_sasl_ir_and_a_refused_token() {
        let first = BASE64.encode("user=dmarc@example.com\x01auth=Bearer tok\x01\x01");
        let (mut wire, server) = scripted(vec![
            ("d1 AUTHENTICATE XOAUTH2".to_owned(), "+ \r\n"),
            // The server's error challenge: {"status":"401"}.
            (first, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
            (String::new(), "d1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
        ]);
        let mechanism = OAuthMechanism::XOAuth2;
        let settings = settings(Credentials::OAuth { mechanism, token: TokenSource::Command("echo tok".into()) });
        let mut tokens = Some(Tokens::new(TokenSource::Command("echo tok".into())));
        let err = login(&mut wire, &announced(&["IMAP4REV1", "AUTH=XOAUTH2"]), &settings, &mut tokens)
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "login as dmarc@example.com refused by imap.example.com: NO [AUTHENTICATIONFAILED] Authentication failed. \
             ({\"status\":\"401\"})"
        );
        assert!(err.needs_attention());
        server.await.expect("the script ran");
    }
}
