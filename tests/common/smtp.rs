//! Helpers of the `serve` tests: the server as a child process, swaks, a raw SMTP client for
//! what real clients will not do (stop mid-DATA), and a TCP proxy in front of PostgreSQL that
//! can cut the database off.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::Dmarcpipe;

/// The recipients every test server accepts.
pub const RUA: &str = "reports@dmarc.example";
pub const RUF_DOMAIN: &str = "@ruf.dmarc.example";

/// `dmarcpipe serve` running on loopback ports of its choosing.
pub struct Served {
    child: Child,
    pub smtp: SocketAddr,
    pub lmtp: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts the server on loopback ports for the test recipients, with `extra` flags, and
    /// waits until it is ready.
    pub fn start(dmarcpipe: &Dmarcpipe, extra: &[&str]) -> Served {
        let mut args = vec![
            "serve",
            "--smtp-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
            "--smtp-recipient",
            RUA,
            "--smtp-recipient",
            RUF_DOMAIN,
            "--hostname",
            "mx.dmarc.example",
        ];
        args.extend_from_slice(extra);
        Served::start_with(dmarcpipe, &args)
    }

    /// Runs `dmarcpipe` with exactly these arguments and waits until the server is ready.
    pub fn start_with(dmarcpipe: &Dmarcpipe, args: &[&str]) -> Served {
        let mut child = dmarcpipe
            .command(args)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dmarcpipe serve starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("not poisoned").push(line);
            }
        });
        let mut served = Served { child, smtp: unbound(), lmtp: None, log };
        served.wait_for_log("dmarcpipe serve is ready", Duration::from_secs(60));
        // `serve` may watch only IMAP mailboxes: no SMTP address then.
        served.smtp = served.listening_on("(smtp)").unwrap_or_else(unbound);
        served.lmtp = served.listening_on("(lmtp)");
        served
    }

    fn listening_on(&self, protocol: &str) -> Option<SocketAddr> {
        let log = self.log();
        let line = log.iter().find(|line| line.contains("listening on ") && line.ends_with(protocol))?;
        let address = line.split("listening on ").nth(1).and_then(|rest| rest.split(' ').next()).expect("an address");
        Some(address.parse().expect("a socket address"))
    }

    /// Every line logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }

    /// Waits until a logged line contains `needle`, and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.log().into_iter().find(|line| line.contains(needle)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dmarcpipe serve exited ({status}) before logging `{needle}`: {:#?}", self.log());
            }
            assert!(started.elapsed() < timeout, "no `{needle}` logged in {timeout:?}: {:#?}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to end.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(started.elapsed() < timeout, "dmarcpipe serve still runs after {timeout:?}: {:#?}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate();
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unbound() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// One run of swaks against a server: `--to reports@dmarc.example` and the like by default.
pub struct Swaks {
    server: SocketAddr,
    to: String,
    from: String,
    helo: String,
    args: Vec<String>,
}

impl Swaks {
    pub fn to(server: SocketAddr) -> Swaks {
        Swaks {
            server,
            to: RUA.to_owned(),
            from: "noreply-dmarc-support@google.example".to_owned(),
            helo: "mail-sor-f73.google.example".to_owned(),
            args: Vec::new(),
        }
    }

    pub fn rcpt(mut self, to: &str) -> Swaks {
        self.to = to.to_owned();
        self
    }

    pub fn from(mut self, from: &str) -> Swaks {
        self.from = from.to_owned();
        self
    }

    /// The message, from a file.
    pub fn data(self, file: &Path) -> Swaks {
        let data = format!("@{}", file.display());
        self.arg("--data").arg(&data)
    }

    pub fn arg(mut self, arg: &str) -> Swaks {
        self.args.push(arg.to_owned());
        self
    }

    /// Runs swaks and returns its transcript (client lines `->`, server lines `<-`) and exit
    /// code.
    pub fn run(&self) -> (String, i32) {
        let port = self.server.port().to_string();
        let output: Output = std::process::Command::new("swaks")
            .args(["--server", &self.server.ip().to_string(), "--port", &port])
            .args(["--to", &self.to, "--from", &self.from, "--helo", &self.helo])
            .args(["--timeout", "120"])
            .args(&self.args)
            .output()
            .expect("swaks runs (apt-get install swaks)");
        let transcript =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (transcript, output.status.code().unwrap_or(-1))
    }

    /// Runs swaks and expects the message accepted; returns the transcript.
    pub fn delivered(&self) -> String {
        let (transcript, code) = self.run();
        assert_eq!(code, 0, "swaks failed:\n{transcript}");
        // `<-` is a reply in clear, `<~` one over TLS.
        assert!(transcript.contains("<-  250 2.0.0 ") || transcript.contains("<~  250 2.0.0 "), "{transcript}");
        transcript
    }
}

/// A blocking SMTP client that sends exactly what it is told.
pub struct RawClient {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub greeting: String,
}

impl RawClient {
    /// Connects and reads the greeting, which must be `220`.
    pub fn connect(server: SocketAddr) -> RawClient {
        RawClient::try_connect(server).unwrap_or_else(|greeting| panic!("greeted with {greeting}"))
    }

    /// Connects; the client if greeted with `220`, else the greeting.
    pub fn try_connect(server: SocketAddr) -> Result<RawClient, String> {
        let stream = TcpStream::connect(server).expect("the server accepts");
        stream.set_read_timeout(Some(Duration::from_secs(120))).expect("a timeout");
        let reader = BufReader::new(stream.try_clone().expect("a clone"));
        let mut client = RawClient { stream, reader, greeting: String::new() };
        client.greeting = client.reply();
        if client.greeting.starts_with("220 ") { Ok(client) } else { Err(client.greeting) }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("written");
    }

    /// The last line of the next reply (continuation lines skipped).
    pub fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("a reply");
            if read == 0 {
                return "(the server closed the connection)".to_owned();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// EHLO, MAIL, RCPT and DATA, up to the `354`.
    pub fn start_data(&mut self, to: &str) {
        assert!(self.command("EHLO raw.client.example").starts_with("250 "));
        assert!(self.command("MAIL FROM:<raw@client.example>").starts_with("250 "));
        let rcpt = self.command(&format!("RCPT TO:<{to}>"));
        assert!(rcpt.starts_with("250 "), "{rcpt}");
        let data = self.command("DATA");
        assert!(data.starts_with("354 "), "{data}");
    }

    /// Whether a reply is waiting, without waiting for one.
    pub fn has_reply_waiting(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        self.stream.set_nonblocking(true).expect("non-blocking");
        let mut byte = [0u8; 1];
        let waiting = matches!(self.stream.peek(&mut byte), Ok(n) if n > 0);
        self.stream.set_nonblocking(false).expect("blocking");
        waiting
    }

    /// Whatever the server sends until it closes the connection.
    pub fn rest(mut self) -> String {
        let mut text = String::new();
        let _ = self.reader.read_to_string(&mut text);
        text
    }
}

/// A TCP proxy in front of the test's PostgreSQL: `cut` drops every connection and refuses
/// new ones (the database is gone, as far as the server can tell); `restore` lets them in.
pub struct DatabaseProxy {
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    /// While set, nothing is passed on either way and connections stay open: a database that
    /// froze (or a network that swallows packets) rather than one that went away.
    frozen: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

/// Where the test's PostgreSQL listens.
enum Upstream {
    Tcp(String),
    Unix(PathBuf),
}

impl Upstream {
    fn of(pool: &PgPool) -> Upstream {
        let options = pool.connect_options();
        let port = options.get_port();
        let socket_dir = options.get_socket().cloned().or_else(|| {
            let host = options.get_host();
            host.starts_with('/').then(|| PathBuf::from(host))
        });
        match socket_dir {
            Some(dir) if dir.is_dir() => Upstream::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            Some(socket) => Upstream::Unix(socket),
            None => Upstream::Tcp(format!("{}:{port}", options.get_host())),
        }
    }

    fn connect(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(match self {
            Upstream::Tcp(address) => Box::new(TcpStream::connect(address)?),
            Upstream::Unix(path) => Box::new(std::os::unix::net::UnixStream::connect(path)?),
        })
    }
}

/// A connection that can be read and written from two threads, and closed from either.
trait Duplex: Read + Write + Send {
    fn split(&self) -> std::io::Result<Box<dyn Duplex>>;
    fn close(&self);
}

impl Duplex for TcpStream {
    fn split(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl Duplex for std::os::unix::net::UnixStream {
    fn split(&self) -> std::io::Result<Box<dyn Duplex>> {
        Ok(Box::new(self.try_clone()?))
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// Copies both ways, holding what it read while `frozen`; when either side closes, both are
/// closed.
fn pipe(client: Box<dyn Duplex>, server: Box<dyn Duplex>, frozen: Arc<AtomicBool>) {
    for (from, to) in [(client.split(), server.split()), (server.split(), client.split())] {
        let (Ok(mut from), Ok(mut to)) = (from, to) else { return };
        let frozen = frozen.clone();
        thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let read = match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                while frozen.load(Ordering::SeqCst) {
                    thread::sleep(std::time::Duration::from_millis(10));
                }
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            from.close();
            to.close();
        });
    }
}

impl DatabaseProxy {
    pub fn start(pool: &PgPool) -> DatabaseProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("an address");
        let open = Arc::new(AtomicBool::new(true));
        let frozen = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let upstream = Arc::new(Upstream::of(pool));
        let (accepting, tracked, stalled) = (open.clone(), connections.clone(), frozen.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !accepting.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = upstream.connect() else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                if let Ok(handle) = client.try_clone() {
                    tracked.lock().expect("not poisoned").push(handle);
                }
                pipe(Box::new(client), server, stalled.clone());
            }
        });
        DatabaseProxy { address, open, frozen, connections }
    }

    /// A database URL that goes through the proxy.
    pub fn url(&self, pool: &PgPool) -> String {
        let options = pool.connect_options();
        let database = options.get_database().expect("a database");
        format!("postgres://{}@{}/{database}?sslmode=disable", options.get_username(), self.address)
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Holds every byte either way, connections open, until [`DatabaseProxy::thaw`].
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}
