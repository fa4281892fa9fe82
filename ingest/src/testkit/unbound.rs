//! Unbound on loopback, answering from local data only: the DNS server of `make bench-ptr`.
//!
//! dnsmasq (the tests' server, [`super::dnsmasq`]) finds a PTR by walking its records, so it
//! answers about 170 reverse queries a second over 20,000 hosts however fast the client is;
//! Unbound keeps local data in a tree and answers thousands a second, so the benchmark measures
//! our resolver rather than the server. Every host gets its A/AAAA record and the PTR back
//! (`local-data-ptr`); every other name is NXDOMAIN (`local-zone: "." static`), and nothing is
//! forwarded. The binary is Debian's `unbound` (`make bench-ptr` installs it); the server runs
//! until the [`Unbound`] value is dropped.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::dnsmasq::{free_port, wait_until_answering};

/// Where Debian's `unbound` installs the server.
pub const UNBOUND_BINARY: &str = "/usr/sbin/unbound";

/// A running Unbound; stopped when dropped.
#[derive(Debug)]
pub struct Unbound {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unbound {
    /// Starts Unbound on 127.0.0.1 at a free port, `hosts` as its only data (each name resolves
    /// to its address and the address has the name as PTR), and waits until it answers.
    pub fn start(hosts: &[(IpAddr, String)]) -> io::Result<Unbound> {
        if !Path::new(UNBOUND_BINARY).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{UNBOUND_BINARY} not found: run scripts/packages.sh unbound (the Debian package unbound)"),
            ));
        }
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let conf = dir.path().join("unbound.conf");
        std::fs::write(&conf, configuration(dir.path(), port, hosts))?;
        let mut child = Command::new(UNBOUND_BINARY)
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| io::Error::new(error.kind(), format!("cannot run {UNBOUND_BINARY}: {error}")))?;
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        if let Err(error) = wait_until_answering(&mut child, addr, "unbound") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        Ok(Unbound { child, addr, _dir: dir })
    }

    /// The address to send queries to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration: one thread, no privileges dropped, no chroot, no logging beyond errors,
/// local data only.
fn configuration(dir: &Path, port: u16, hosts: &[(IpAddr, String)]) -> String {
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 1\n  \
         access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: yes\n  local-zone: \".\" static\n",
        dir.display()
    );
    for (ip, name) in hosts {
        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
        let _ = writeln!(conf, "  local-data: \"{name}. 3600 IN {kind} {ip}\"");
        let _ = writeln!(conf, "  local-data-ptr: \"{ip} 3600 {name}\"");
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    conf
}
