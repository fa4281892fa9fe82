//! The IMAP wire: tagged commands out, whole responses in.
//!
//! Input: a byte stream to an IMAP server (TCP or TLS). Output: owned [`Response`]s, one per
//! server response, literals included. Framing is ours (lines, `{n}` literals), so memory is
//! bounded: a literal larger than `max_literal` or a line longer than [`MAX_LINE`] ends the
//! connection instead of being buffered. Status responses (`OK`/`NO`/`BAD`/`BYE`, tagged or
//! not), `CAPABILITY`, `SEARCH`, `EXISTS`, `RECENT`, `EXPUNGE` and `NAMESPACE` are read here, leniently
//! (servers send odd response codes and spacing); `FETCH` and `LIST` go through `imap-proto`.
//! A response nobody understands is kept as [`Data::Other`] and skipped, never fatal: only the
//! tagged completion of our own command decides. Every read waits at most `timeout` for the
//! next bytes; reading is cancel-safe (state lives in the struct, not in the future).

use std::time::Duration;

use imap_proto::{AttributeValue, MailboxDatum, NameAttribute};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ImapError;

/// Longest response line (literals not counted): a `SEARCH` answer for a folder of a million
/// messages fits.
pub(super) const MAX_LINE: usize = 16 << 20;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    No,
    Bad,
}

/// The tagged response that ends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Completion {
    pub status: Status,
    /// The response code without brackets (`TRYCREATE`, `CAPABILITY IMAP4rev1 ...`).
    pub code: Option<String>,
    pub text: String,
}

impl Completion {
    /// `NO [AUTHENTICATIONFAILED] Authentication failed.`, as the server said it.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        match &self.code {
            Some(code) => format!("{status} [{code}] {}", self.text),
            None => format!("{status} {}", self.text),
        }
    }

    /// Whether the response code is `code` (first word, any case).
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref().and_then(|c| c.split_whitespace().next()).is_some_and(|c| c.eq_ignore_ascii_case(code))
    }
}

/// Untagged status kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Condition {
    Ok,
    No,
    Bad,
    Bye,
    PreAuth,
}

/// What one `FETCH` response told about a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Fetched {
    pub uid: Option<u32>,
    pub size: Option<u32>,
    pub body: Option<Vec<u8>>,
}

/// One `LIST` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    /// Lower-cased: `\noselect`, `\haschildren`, `\archive`...
    pub attributes: Vec<String>,
    pub delimiter: Option<String>,
    pub name: String,
}

impl Listed {
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| a == "\\noselect" || a == "\\nonexistent")
    }
}

/// Untagged data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Data {
    Condition {
        kind: Condition,
        code: Option<String>,
        text: String,
    },
    Capabilities(Vec<String>),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    Search(Vec<u32>),
    Fetch(Fetched),
    List(Listed),
    /// The personal namespace: prefix and delimiter.
    Namespace {
        prefix: String,
        delimiter: Option<String>,
    },
    /// Anything else (its first line, for logs).
    Other(String),
}

/// One server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Response {
    /// `+ text`: the server waits for more of the command (a literal, SASL, IDLE).
    Continue(String),
    Tagged {
        tag: String,
        completion: Completion,
    },
    Data(Data),
}

/// A connection's reading and writing state.
#[derive(Debug)]
pub(super) struct Wire<S> {
    stream: S,
    /// Received bytes not yet handed out as responses.
    buf: Vec<u8>,
    /// Where the current response's unscanned part starts (past any literal seen so far).
    scanned: usize,
    /// Where the current line of the current response starts.
    line_start: usize,
    next_tag: u32,
    /// The server's name in errors.
    pub host: String,
    pub timeout: Duration,
    pub max_literal: u64,
    /// An `EXISTS` or `RECENT` was seen since [`Wire::take_news`] was last called.
    news: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(stream: S, host: &str, timeout: Duration, max_literal: u64) -> Self {
        Wire {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            scanned: 0,
            line_start: 0,
            next_tag: 1,
            host: host.to_owned(),
            timeout,
            max_literal,
            news: false,
        }
    }

    /// The stream back, for STARTTLS. Fails if the server sent anything past the response to
    /// `STARTTLS`: such bytes would be read as if they came over TLS (CVE-2011-0411).
    pub fn into_stream(self) -> Result<S, ImapError> {
        if !self.buf.is_empty() {
            return Err(self.protocol("data after the STARTTLS reply, before TLS began"));
        }
        Ok(self.stream)
    }

    /// Whether new mail was announced since the last call.
    pub fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    pub fn protocol(&self, detail: impl Into<String>) -> ImapError {
        ImapError::Protocol { host: self.host.clone(), detail: detail.into() }
    }

    /// Sends `TAG command` and returns the tag.
    pub async fn send_command(&mut self, command: &str) -> Result<String, ImapError> {
        let tag = format!("d{}", self.next_tag);
        self.next_tag += 1;
        self.send_line(&format!("{tag} {command}")).await?;
        Ok(tag)
    }

    /// Sends one line (CRLF added).
    pub async fn send_line(&mut self, line: &str) -> Result<(), ImapError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let write = async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ImapError::Io { host: self.host.clone(), source }),
            Err(_) => Err(ImapError::Timeout { host: self.host.clone(), seconds: self.timeout.as_secs() }),
        }
    }

    /// Runs a command to its completion: the untagged data that came meanwhile, and how it
    /// ended (a `NO` or `BAD` is not an error here).
    pub async fn command(&mut self, command: &str) -> Result<(Vec<Data>, Completion), ImapError> {
        let tag = self.send_command(command).await?;
        self.complete(&tag).await
    }

    /// Reads until the completion of `tag`.
    pub async fn complete(&mut self, tag: &str) -> Result<(Vec<Data>, Completion), ImapError> {
        let mut data = Vec::new();
        loop {
            match self.read_response().await? {
                Response::Tagged { tag: done, completion } if done == tag => return Ok((data, completion)),
                Response::Tagged { tag: other, .. } => {
                    return Err(self.protocol(format!("completion of unknown command {other}")));
                }
                Response::Continue(_) => return Err(self.protocol("a continuation request nobody asked for")),
                Response::Data(item) => data.push(item),
            }
        }
    }

    /// The next response, waiting at most `timeout` for each read (a large message may take
    /// longer as a whole, as long as its bytes keep coming).
    pub async fn read_response(&mut self) -> Result<Response, ImapError> {
        self.next_response(Some(self.timeout)).await
    }

    /// The next response, however long it takes (IDLE: the caller bounds the wait).
    pub async fn read_until_complete(&mut self) -> Result<Response, ImapError> {
        self.next_response(None).await
    }

    async fn next_response(&mut self, per_read: Option<Duration>) -> Result<Response, ImapError> {
        loop {
            if let Some(end) = self.frame()? {
                let response = parse(&self.buf[..end]);
                self.buf.drain(..end);
                if self.buf.capacity() > 1 << 20 && self.buf.len() < 64 * 1024 {
                    // A large message passed through: give its memory back.
                    self.buf.shrink_to(64 * 1024);
                }
                match &response {
                    Response::Data(Data::Exists(_) | Data::Recent(_)) => self.news = true,
                    Response::Data(Data::Condition { kind: Condition::Bye, text, .. }) => {
                        return Err(ImapError::Bye { host: self.host.clone(), text: text.clone() });
                    }
                    _ => {}
                }
                return Ok(response);
            }
            // Waiting for the rest of a literal: make room for it at once (bounded above).
            let wanted = self.scanned.saturating_sub(self.buf.len()).clamp(16 * 1024, 16 << 20);
            if self.buf.capacity() - self.buf.len() < wanted / 2 {
                self.buf.reserve(wanted);
            }
            let read = match per_read {
                Some(limit) => match tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf)).await {
                    Ok(read) => read,
                    Err(_) => return Err(ImapError::Timeout { host: self.host.clone(), seconds: limit.as_secs() }),
                },
                None => self.stream.read_buf(&mut self.buf).await,
            };
            match read {
                Ok(0) => return Err(ImapError::Closed { host: self.host.clone() }),
                Ok(_) => {}
                Err(source) => return Err(ImapError::Io { host: self.host.clone(), source }),
            }
        }
    }

    /// The length of the first complete response in the buffer, if there is one.
    fn frame(&mut self) -> Result<Option<usize>, ImapError> {
        loop {
            if self.scanned > self.buf.len() {
                return Ok(None); // inside a literal
            }
            let Some(at) = self.buf[self.scanned..].windows(2).position(|w| w == b"\r\n") else {
                if self.buf.len() - self.line_start > MAX_LINE {
                    return Err(self.protocol(format!("a response line longer than {MAX_LINE} bytes")));
                }
                // Rescan only the last byte next time: it may be the `\r` of a split CRLF.
                self.scanned = self.buf.len().saturating_sub(1).max(self.line_start);
                return Ok(None);
            };
            let line_end = self.scanned + at;
            match literal_length(&self.buf[self.line_start..line_end]) {
                Some(length) => {
                    if length > self.max_literal {
                        return Err(self.protocol(format!(
                            "the server announced {length} bytes of data, more than the {} expected",
                            self.max_literal
                        )));
                    }
                    self.scanned = line_end + 2 + length as usize;
                    self.line_start = self.scanned;
                }
                None => {
                    self.scanned = 0;
                    self.line_start = 0;
                    return Ok(Some(line_end + 2));
                }
            }
        }
    }

    /// Writes and flushes nothing more: closes our side (LOGOUT already said goodbye).
    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
    }
}

/// `{123}` or `{123+}` at the end of a line: the length of the literal that follows.
fn literal_length(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The text of the first line, without its CRLF, lossily decoded.
fn first_line(raw: &[u8]) -> String {
    let end = raw.windows(2).position(|w| w == b"\r\n").unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A line short enough for a log.
fn shortened(line: &str) -> String {
    let mut line = line.to_owned();
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// `[CODE args] text` → the code and the text.
fn resp_text(rest: &str) -> (Option<String>, String) {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('[')
        && let Some(close) = inner.find(']')
    {
        return (Some(inner[..close].trim().to_owned()), inner[close + 1..].trim().to_owned());
    }
    (None, rest.trim().to_owned())
}

/// Splits off the first space-separated word.
fn word(text: &str) -> (&str, &str) {
    match text.split_once(' ') {
        Some((first, rest)) => (first, rest),
        None => (text, ""),
    }
}

/// One complete response (CRLF included) into its owned form.
pub(super) fn parse(raw: &[u8]) -> Response {
    let line = first_line(raw);
    if let Some(rest) = line.strip_prefix('+') {
        return Response::Continue(rest.trim().to_owned());
    }
    let Some(rest) = line.strip_prefix("* ") else {
        let (tag, rest) = word(&line);
        let (status, rest) = word(rest.trim_start());
        let status = match status.to_ascii_uppercase().as_str() {
            "OK" => Status::Ok,
            "NO" => Status::No,
            "BAD" => Status::Bad,
            _ => return Response::Data(Data::Other(shortened(&line))),
        };
        let (code, text) = resp_text(rest);
        return Response::Tagged { tag: tag.to_owned(), completion: Completion { status, code, text } };
    };
    let (first, after) = word(rest);
    let kind = match first.to_ascii_uppercase().as_str() {
        "OK" => Some(Condition::Ok),
        "NO" => Some(Condition::No),
        "BAD" => Some(Condition::Bad),
        "BYE" => Some(Condition::Bye),
        "PREAUTH" => Some(Condition::PreAuth),
        _ => None,
    };
    if let Some(kind) = kind {
        let (code, text) = resp_text(after);
        return Response::Data(Data::Condition { kind, code, text });
    }
    let data = match first.to_ascii_uppercase().as_str() {
        "CAPABILITY" => Data::Capabilities(capabilities(after)),
        "SEARCH" => Data::Search(after.split_whitespace().filter_map(|n| n.parse().ok()).collect()),
        "NAMESPACE" => namespace(after),
        "LIST" | "FETCH" => proto(raw, &line),
        _ => match (first.parse::<u32>(), word(after).0.to_ascii_uppercase().as_str()) {
            (Ok(n), "EXISTS") => Data::Exists(n),
            (Ok(n), "RECENT") => Data::Recent(n),
            (Ok(n), "EXPUNGE") => Data::Expunge(n),
            (Ok(_), "FETCH") => proto(raw, &line),
            _ => Data::Other(shortened(&line)),
        },
    };
    Response::Data(data)
}

/// Capability names, upper-cased (any spacing).
pub(super) fn capabilities(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_ascii_uppercase).collect()
}

/// `* NAMESPACE (("" ".")) NIL NIL`: the first personal namespace (RFC 2342).
fn namespace(text: &str) -> Data {
    let other = || Data::Other(shortened(&format!("NAMESPACE {text}")));
    let Some(rest) = text.trim_start().strip_prefix("((") else { return other() };
    let Some((prefix, rest)) = quoted(rest) else { return other() };
    let rest = rest.trim_start();
    let delimiter = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("NIL") {
        None
    } else {
        match quoted(rest) {
            Some((delimiter, _)) => Some(delimiter),
            None => return other(),
        }
    };
    Data::Namespace { prefix, delimiter }
}

/// A quoted string at the start of `text` (backslash escapes), and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('"')?.char_indices();
    let mut value = String::new();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &text[at + 2..])),
            c => value.push(c),
        }
    }
    None
}

/// `FETCH` and `LIST` through imap-proto.
fn proto(raw: &[u8], line: &str) -> Data {
    match imap_proto::Response::parse(raw) {
        Ok((_, imap_proto::Response::Fetch(_, attributes))) => {
            let mut fetched = Fetched::default();
            for attribute in attributes {
                match attribute {
                    AttributeValue::Uid(uid) => fetched.uid = Some(uid),
                    AttributeValue::Rfc822Size(size) => fetched.size = Some(size),
                    AttributeValue::BodySection { section: None, data, .. } | AttributeValue::Rfc822(data) => {
                        fetched.body = Some(data.map(|d| d.into_owned()).unwrap_or_default());
                    }
                    _ => {}
                }
            }
            Data::Fetch(fetched)
        }
        Ok((_, imap_proto::Response::MailboxData(MailboxDatum::List(list)))) => Data::List(Listed {
            attributes: list.name_attributes.iter().map(name_attribute).collect(),
            delimiter: list.delimiter.map(|d| d.into_owned()),
            name: list.name.into_owned(),
        }),
        _ => Data::Other(shortened(line)),
    }
}

fn name_attribute(attribute: &NameAttribute<'_>) -> String {
    match attribute {
        NameAttribute::NoInferiors => "\\noinferiors".into(),
        NameAttribute::NoSelect => "\\noselect".into(),
        NameAttribute::Marked => "\\marked".into(),
        NameAttribute::Unmarked => "\\unmarked".into(),
        NameAttribute::All => "\\all".into(),
        NameAttribute::Archive => "\\archive".into(),
        NameAttribute::Drafts => "\\drafts".into(),
        NameAttribute::Flagged => "\\flagged".into(),
        NameAttribute::Junk => "\\junk".into(),
        NameAttribute::Sent => "\\sent".into(),
        NameAttribute::Trash => "\\trash".into(),
        NameAttribute::Extension(other) => other.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// A string as an IMAP quoted string.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// UIDs as a compact sequence set: `3:7,9,12:13`.
pub(super) fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(raw: &str) -> Data {
        match parse(raw.as_bytes()) {
            Response::Data(data) => data,
            other => panic!("not data: {other:?}"),
        }
    }

    #[test]
    fn status_responses_are_read_leniently() {
        let Response::Tagged { tag, completion } = parse(b"d3 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
        else {
            panic!("tagged")
        };
        assert_eq!(tag, "d3");
        assert_eq!(completion.describe(), "NO [AUTHENTICATIONFAILED] Authentication failed.");
        assert!(completion.has_code("authenticationfailed"));
        // Microsoft 365's malformed response code (ruby/net-imap#597) is still an OK.
        let Response::Tagged { completion, .. } =
            parse(b"d4 OK [Error=\"Sample Error\" AuthResultFromPopImapEnd=0] AUTHENTICATE completed.\r\n")
        else {
            panic!("tagged")
        };
        assert_eq!(completion.status, Status::Ok);
        assert_eq!(
            data("* OK [UIDVALIDITY 1796108078] UIDs valid\r\n"),
            Data::Condition {
                kind: Condition::Ok,
                code: Some("UIDVALIDITY 1796108078".into()),
                text: "UIDs valid".into()
            }
        );
        assert_eq!(parse(b"+ \r\n"), Response::Continue(String::new()));
    }

    #[test]
    fn capabilities_tolerate_odd_spacing() {
        assert_eq!(
            data("* CAPABILITY IMAP4rev1  IDLE MOVE auth=plain\r\n"),
            Data::Capabilities(vec!["IMAP4REV1".into(), "IDLE".into(), "MOVE".into(), "AUTH=PLAIN".into()])
        );
    }

    #[test]
    fn numbers_lists_and_namespaces() {
        assert_eq!(data("* 12 EXISTS\r\n"), Data::Exists(12));
        assert_eq!(data("* 3 expunge\r\n"), Data::Expunge(3));
        assert_eq!(data("* SEARCH 4 5 9\r\n"), Data::Search(vec![4, 5, 9]));
        assert_eq!(data("* SEARCH\r\n"), Data::Search(vec![]));
        assert_eq!(
            data("* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n"),
            Data::Namespace { prefix: "INBOX.".into(), delimiter: Some(".".into()) }
        );
        assert_eq!(
            data("* LIST (\\Noselect \\HasChildren) \".\" DMARC\r\n"),
            Data::List(Listed {
                attributes: vec!["\\noselect".into(), "\\haschildren".into()],
                delimiter: Some(".".into()),
                name: "DMARC".into()
            })
        );
        assert!(matches!(data("* XYZZY whatever\r\n"), Data::Other(_)));
    }

    #[test]
    fn fetch_with_a_partial_body() {
        let raw = b"* 1 FETCH (UID 7 RFC822.SIZE 5 BODY[]<0> {5}\r\nHello)\r\n";
        assert_eq!(
            data(std::str::from_utf8(raw).expect("ascii")),
            Data::Fetch(Fetched { uid: Some(7), size: Some(5), body: Some(b"Hello".to_vec()) })
        );
    }

    #[test]
    fn literals_and_sets() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_length(b"a APPEND INBOX {42+}"), Some(42));
        assert_eq!(literal_length(b"* OK {x}"), None);
        assert_eq!(literal_length(b"* OK done"), None);
        assert_eq!(uid_set(&[9, 3, 4, 5, 12, 13, 7]), "3:5,7,9,12:13");
        assert_eq!(quote("a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_times_out_but_a_slow_one_does_not() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut wire = Wire::new(client, "test", Duration::from_secs(10), 1000);
        let writer = tokio::spawn(async move {
            // 25 seconds for one response, but never 10 without a byte.
            for piece in [&b"* 1 FETCH (BODY[] {3}\r\n"[..], b"a", b"b", b"c", b")\r\n"] {
                tokio::time::sleep(Duration::from_secs(5)).await;
                server.write_all(piece).await.expect("written");
            }
            server // kept open, and silent
        });
        assert!(matches!(wire.read_response().await, Ok(Response::Data(Data::Fetch(_)))));
        let err = wire.read_response().await.expect_err("nothing more comes");
        assert!(matches!(err, ImapError::Timeout { seconds: 10, .. }), "{err}");
        drop(writer);
    }

    #[tokio::test]
    async fn responses_are_framed_across_reads_and_literals_are_capped() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut wire = Wire::new(client, "test", Duration::from_secs(5), 100);
        let writer = tokio::spawn(async move {
            // Split in odd places, the CRLF of the literal line included.
            for piece in [&b"* 1 FETCH (UID 3 BODY[] {1"[..], b"1}\r", b"\nhello world)", b"\r\n* 4 EXISTS\r\n"] {
                server.write_all(piece).await.expect("written");
            }
            server.write_all(b"* 2 FETCH (BODY[] {101}\r\n").await.expect("written");
            server
        });
        let Response::Data(Data::Fetch(fetched)) = wire.read_response().await.expect("a response") else {
            panic!("a fetch")
        };
        assert_eq!(fetched.body.as_deref(), Some(&b"hello world"[..]));
        assert_eq!(wire.read_response().await.expect("a response"), Response::Data(Data::Exists(4)));
        assert!(wire.take_news());
        let err = wire.read_response().await.expect_err("over the cap");
        assert!(err.to_string().contains("announced 101 bytes"), "{err}");
        drop(writer.await);
    }
}
