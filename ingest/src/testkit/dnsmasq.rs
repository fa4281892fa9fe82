//! A real DNS server for tests and the benchmark: dnsmasq on a free loopback port, answering
//! only from records the caller lists (a [`DnsZone`]), never forwarding anywhere.
//!
//! Every name it does not know is NXDOMAIN (`local=/#/`), so the negative answers the resolver
//! sees are real ones. Records come as hosts-file lines (A/AAAA for the name and the PTR back,
//! like `/etc/hosts`; cheap for tens of thousands of records), `ptr-record` lines (a PTR
//! alone), `address` lines (A or AAAA alone) and any raw dnsmasq configuration line. The server runs until the [`Dnsmasq`] value
//! is dropped. The binary is Debian's `dnsmasq-base` (`scripts/packages.sh` installs it); when
//! it is missing, [`Dnsmasq::start`] fails saying so, so tests fail loudly instead of skipping.

use std::fmt::Write as _;
use std::io::{self, Read as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `dnsmasq-base` installs the server.
pub const DNSMASQ_BINARY: &str = "/usr/sbin/dnsmasq";

/// How long a starting server may take to answer its first query.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// The records a test server answers with.
#[derive(Debug, Clone, Default)]
pub struct DnsZone {
    hosts: String,
    config: String,
}

impl DnsZone {
    pub fn new() -> DnsZone {
        DnsZone::default()
    }

    /// `name` resolves to `ip` (A or AAAA) and `ip` has the PTR `name` (unless an earlier
    /// line or a [`DnsZone::ptr`] already gave `ip` a PTR).
    pub fn host(&mut self, ip: IpAddr, name: &str) -> &mut DnsZone {
        let _ = writeln!(self.hosts, "{ip} {name}");
        self
    }

    /// `ip` has the PTR `name`, and nothing else is implied. Several calls for one address
    /// give several PTR records.
    pub fn ptr(&mut self, ip: IpAddr, name: &str) -> &mut DnsZone {
        self.line(&format!("ptr-record={},{name}", reverse_name(ip)))
    }

    /// `name` (and every name under it) resolves to `ip`, with no PTR implied.
    pub fn address(&mut self, name: &str, ip: IpAddr) -> &mut DnsZone {
        self.line(&format!("address=/{name}/{ip}"))
    }

    /// A raw dnsmasq configuration line (`txt-record=...`, `local-ttl=600`, ...).
    pub fn line(&mut self, line: &str) -> &mut DnsZone {
        let _ = writeln!(self.config, "{line}");
        self
    }
}

/// The name a PTR query for `ip` asks about (`4.3.2.1.in-addr.arpa`, nibbles for IPv6).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// A running dnsmasq; stopped when dropped.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.0.0.1 at a free port with `zone`, and waits until it answers.
    pub fn start(zone: &DnsZone) -> io::Result<Dnsmasq> {
        if !Path::new(DNSMASQ_BINARY).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{DNSMASQ_BINARY} not found: the DNS tests need a real DNS server; \
                     run scripts/packages.sh (it installs the Debian package dnsmasq-base)"
                ),
            ));
        }
        let dir = tempfile::tempdir()?;
        let hosts = dir.path().join("hosts");
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(&hosts, &zone.hosts)?;
        // `local=/#/`: every name is ours; unknown ones are NXDOMAIN, nothing is forwarded.
        std::fs::write(&conf, format!("local=/#/\naddn-hosts={}\n{}", hosts.display(), zone.config))?;
        // A port found free may be taken before dnsmasq binds it: try a few.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            match Dnsmasq::spawn(&conf, port) {
                Ok(child) => {
                    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                    let mut server = Dnsmasq { child, addr, _dir: dir };
                    server.wait_until_answering()?;
                    return Ok(server);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("dnsmasq did not start")))
    }

    fn spawn(conf: &Path, port: u16) -> io::Result<Child> {
        let mut command = Command::new(DNSMASQ_BINARY);
        command
            .args(["--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg("--listen-address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--conf-file={}", conf.display()))
            .arg("--pid-file=")
            // Big enough that the benchmark's answers are served from memory, not re-read.
            .arg("--cache-size=10000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // As root dnsmasq drops to `nobody`, which cannot read our temporary files.
        if is_root() {
            command.arg("--user=root");
        }
        let mut child = command
            .spawn()
            .map_err(|error| io::Error::new(error.kind(), format!("cannot run {DNSMASQ_BINARY}: {error}")))?;
        // A bad configuration or a taken port makes dnsmasq exit at once.
        std::thread::sleep(Duration::from_millis(20));
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(io::Error::other(format!("dnsmasq exited ({status}): {}", stderr.trim())));
        }
        // Not read any further: dnsmasq logs little without --log-queries, and a full pipe
        // would only block its logging. Dropped, so writes fail instead of blocking.
        drop(child.stderr.take());
        Ok(child)
    }

    /// The address to send queries to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn wait_until_answering(&mut self) -> io::Result<()> {
        wait_until_answering(&mut self.child, self.addr, "dnsmasq")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the DNS server `child` (called `server` in errors) answers at `addr`.
pub(crate) fn wait_until_answering(child: &mut Child, addr: SocketAddr, server: &str) -> io::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let query = probe_query();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    while started.elapsed() < STARTUP_LIMIT {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("{server} exited while starting ({status})")));
        }
        socket.send_to(&query, addr)?;
        match socket.recv_from(&mut buffer) {
            Ok((length, _)) if length >= 2 && buffer[..2] == query[..2] => return Ok(()),
            _ => continue,
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("{server} at {addr} did not answer within {STARTUP_LIMIT:?}")))
}

/// A DNS query for `probe.invalid` A, id 0x7e57: any answer means the server is up.
fn probe_query() -> Vec<u8> {
    let mut query = vec![0x7e, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "invalid"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// A loopback port free for both UDP and TCP right now.
pub(crate) fn free_port() -> io::Result<u16> {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
}

pub(crate) fn is_root() -> bool {
    // No libc in the tree for geteuid; /proc tells the effective uid on Linux.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
