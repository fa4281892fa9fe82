//! Helpers of the IMAP tests: a real Dovecot per test (see `dmarcpipe_ingest::intake::imap::dovecot`)
//! with the `[[imap]]` config pointing at it, a TCP proxy in front of Dovecot that can hold the
//! client's next command of a kind or cut every connection, and a token introspection endpoint
//! for Dovecot's `oauth2` passdb.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dmarcpipe_ingest::intake::imap::dovecot::{Client, Dovecot, DovecotOptions, PASSWORD, USER};

use super::path;

/// A Dovecot for one test and a directory for its dmarcpipe config.
pub struct Mailbox {
    pub dovecot: Dovecot,
    pub dir: tempfile::TempDir,
}

impl Mailbox {
    pub fn start() -> Mailbox {
        Mailbox::start_with(&DovecotOptions::default())
    }

    pub fn start_with(options: &DovecotOptions) -> Mailbox {
        let dovecot = Dovecot::start(options).expect("Dovecot starts (scripts/packages.sh installs it)");
        Mailbox { dovecot, dir: tempfile::tempdir().expect("a temp dir") }
    }

    /// A logged-in client that fills and inspects the folders.
    pub fn client(&self) -> Client {
        self.dovecot.client().expect("the test client logs in")
    }

    pub fn append(&self, folder: &str, messages: &[Vec<u8>]) {
        let mut client = self.client();
        for message in messages {
            client.append(folder, message).expect("appended");
        }
        client.logout();
    }

    /// The messages of a folder (Dovecot's name: `DMARC.Archive`).
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let mut client = self.client();
        let messages = client.messages(folder).expect("the folder is readable");
        client.logout();
        messages
    }

    /// The default `[[imap]]` section: this Dovecot on 127.0.0.1 without TLS (Dovecot trusts
    /// its own address), the test user's password.
    pub fn section(&self) -> Section {
        Section(vec![
            ("name".into(), quoted("reports")),
            ("host".into(), quoted("127.0.0.1")),
            ("port".into(), self.dovecot.imap_port.to_string()),
            ("tls".into(), quoted("none")),
            ("user".into(), quoted(USER)),
            ("password".into(), quoted(PASSWORD)),
        ])
    }

    /// Writes a config file with these sections and returns its path.
    pub fn config(&self, sections: &[Section]) -> PathBuf {
        let mut text = String::new();
        for section in sections {
            text.push_str("[[imap]]\n");
            for (key, value) in &section.0 {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        let config = self.dir.path().join("dmarcpipe.toml");
        std::fs::write(&config, text).expect("config written");
        config
    }
}

pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The keys of one `[[imap]]` section (raw TOML values).
#[derive(Clone, Debug)]
pub struct Section(Vec<(String, String)>);

impl Section {
    /// Sets a key (a raw TOML value: `"\"text\""`, `12`, `true`).
    pub fn set(mut self, key: &str, value: &str) -> Section {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn text(self, key: &str, value: &str) -> Section {
        self.set(key, &quoted(value))
    }

    pub fn without(mut self, key: &str) -> Section {
        self.0.retain(|(k, _)| k != key);
        self
    }
}

/// A TCP proxy in front of Dovecot. `hold` arms it to hold back the client's `n`-th chunk
/// that contains a pattern (a command such as `UID MOVE`): it is not forwarded until
/// `release` (or never, after `cut`). `cut` drops every open connection; new ones still pass.
pub struct ImapProxy {
    pub port: u16,
    state: Arc<(Mutex<ProxyState>, Condvar)>,
}

#[derive(Default)]
struct ProxyState {
    connections: Vec<TcpStream>,
    /// The pattern and how many more occurrences pass before one is held.
    hold: Option<(Vec<u8>, usize)>,
    holding: bool,
    release: bool,
    /// Bumped by `cut`: a held chunk of an older generation is dropped.
    generation: u64,
}

impl ImapProxy {
    pub fn start(upstream: u16) -> ImapProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let state: Arc<(Mutex<ProxyState>, Condvar)> = Arc::default();
        let shared = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                let generation = {
                    let mut state = shared.0.lock().expect("not poisoned");
                    state.connections.push(client.try_clone().expect("a clone"));
                    state.connections.push(server.try_clone().expect("a clone"));
                    state.generation
                };
                let (client_in, server_out) =
                    (client.try_clone().expect("a clone"), server.try_clone().expect("a clone"));
                let watched = shared.clone();
                thread::spawn(move || forward_commands(client_in, server_out, &watched, generation));
                thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        ImapProxy { port, state }
    }

    /// Holds back the `nth` (1-based) chunk from the client that contains `pattern`.
    pub fn hold(&self, pattern: &str, nth: usize) {
        let mut state = self.state.0.lock().expect("not poisoned");
        state.hold = Some((pattern.as_bytes().to_vec(), nth));
        state.holding = false;
        state.release = false;
    }

    /// Waits until a chunk is held.
    pub fn wait_holding(&self, timeout: Duration) {
        let (lock, changed) = &*self.state;
        let state = lock.lock().expect("not poisoned");
        let (state, waited) = changed.wait_timeout_while(state, timeout, |state| !state.holding).expect("not poisoned");
        assert!(!waited.timed_out() && state.holding, "the proxy held nothing within {timeout:?}");
    }

    /// Forwards the held chunk.
    pub fn release(&self) {
        let (lock, changed) = &*self.state;
        lock.lock().expect("not poisoned").release = true;
        changed.notify_all();
    }

    /// Drops every open connection (a held chunk is never forwarded).
    pub fn cut(&self) {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        state.generation += 1;
        state.hold = None;
        for connection in state.connections.drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
        changed.notify_all();
    }
}

/// Client to server, holding back the armed chunk.
fn forward_commands(
    mut from: TcpStream,
    mut to: TcpStream,
    state: &Arc<(Mutex<ProxyState>, Condvar)>,
    generation: u64,
) {
    let (lock, changed) = &**state;
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        let mut guard = lock.lock().expect("not poisoned");
        let hit = match &mut guard.hold {
            Some((pattern, remaining)) if chunk.windows(pattern.len()).any(|w| w == pattern.as_slice()) => {
                *remaining -= 1;
                *remaining == 0
            }
            _ => false,
        };
        if hit {
            guard.hold = None;
            guard.holding = true;
            changed.notify_all();
            guard = changed
                .wait_while(guard, |state| !state.release && state.generation == generation)
                .expect("not poisoned");
            guard.holding = false;
            if guard.generation != generation {
                break;
            }
        }
        drop(guard);
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The token introspection endpoint Dovecot's `oauth2` passdb asks (`introspection_mode =
/// post`): a token is valid while it is in `valid`.
pub struct Introspection {
    pub url: String,
    valid: Arc<Mutex<HashSet<String>>>,
    pub asked: Arc<AtomicUsize>,
}

impl Introspection {
    pub fn start() -> Introspection {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://127.0.0.1:{}/introspect", listener.local_addr().expect("an address").port());
        let valid: Arc<Mutex<HashSet<String>>> = Arc::default();
        let asked = Arc::new(AtomicUsize::new(0));
        let (tokens, count) = (valid.clone(), asked.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let token = read_form_token(&stream).unwrap_or_default();
                count.fetch_add(1, Ordering::SeqCst);
                let body = if tokens.lock().expect("not poisoned").contains(&token) {
                    format!("{{\"active\":true,\"username\":\"{USER}\",\"scope\":\"mail\"}}")
                } else {
                    "{\"active\":false}".to_owned()
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Introspection { url, valid, asked }
    }

    pub fn accept(&self, token: &str) {
        self.valid.lock().expect("not poisoned").insert(token.to_owned());
    }

    pub fn revoke(&self, token: &str) {
        self.valid.lock().expect("not poisoned").remove(token);
    }
}

/// The `token` of a POSTed form.
fn read_form_token(stream: &TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let body = String::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| pair.strip_prefix("token=")).map(str::to_owned)
}

/// A `token_command` that prints `{"access_token": "token-N", "expires_in": 3600}`, N counting
/// its runs (kept in `runs` beside it).
pub fn counting_token_command(dir: &Path) -> (String, PathBuf) {
    let runs = dir.join("token-runs");
    let script = dir.join("token.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {0} 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > {0}\n\
             printf '{{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"token-%s\"}}\\n' $n\n",
            path(&runs)
        ),
    )
    .expect("script written");
    (format!("sh {}", path(&script)), runs)
}

/// How many times the counting token command ran.
pub fn runs(file: &Path) -> usize {
    std::fs::read_to_string(file).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(0)
}

/// Waits until `condition` holds (checked every 50 ms).
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(50));
    }
}
