//! A real Dovecot for the tests and the benchmark (feature `testkit`), and a blocking IMAP
//! client to fill and inspect its folders.
//!
//! [`Dovecot::start`] writes a throwaway configuration in a fresh directory (users in a
//! passwd-file, maildirs, a self-signed certificate for `127.0.0.1`, `127.0.0.2` and
//! `localhost`, optionally an `oauth2` passdb asking a token introspection URL), starts
//! Debian's `dovecot` on two free loopback ports (`imap` with STARTTLS, `imaps` with implicit
//! TLS) listening on 127.0.0.1 and 127.0.0.2, and stops it when dropped. Dovecot counts a
//! connection from its own address as secured, so plain LOGIN works towards 127.0.0.1, while
//! 127.0.0.1 → 127.0.0.2 is refused passwords without TLS (`LOGINDISABLED`): the TLS tests
//! connect to 127.0.0.2. Needs root (Dovecot switches to the `mail` user) and the
//! `dovecot-imapd` and `openssl` packages (`scripts/packages.sh`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::protocol::{self, Data, Response, Status};

/// A user of the test server.
pub const USER: &str = "dmarc@example.test";
pub const PASSWORD: &str = "s3cret pass";

/// What the server should accept.
#[derive(Debug, Clone, Default)]
pub struct DovecotOptions {
    /// Extra passwd-file users (the default user is always there).
    pub users: Vec<(String, String)>,
    /// Accept XOAUTH2 and OAUTHBEARER, asking this URL (RFC 7662 style, `post` mode) whether
    /// a token is valid: the answer must be `{"active": true, "username": USER}`.
    pub introspection_url: Option<String>,
    /// What the server announces instead of its own list (`imap_capability`; the AUTH=
    /// mechanisms are added before login): to play a server without MOVE or UIDPLUS.
    pub capabilities: Option<String>,
}

/// A running Dovecot.
#[derive(Debug)]
pub struct Dovecot {
    pub dir: PathBuf,
    config: PathBuf,
    /// Plain IMAP with STARTTLS.
    pub imap_port: u16,
    /// Implicit TLS.
    pub imaps_port: u16,
    /// The server's certificate (self-signed: the CA file that trusts it).
    pub certificate: PathBuf,
}

fn error(text: impl Into<String>) -> std::io::Error {
    std::io::Error::other(text.into())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn run(command: &mut Command) -> std::io::Result<()> {
    let output = command.output().map_err(|err| error(format!("{command:?}: {err}")))?;
    if !output.status.success() {
        return Err(error(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr))));
    }
    Ok(())
}

impl Dovecot {
    pub fn start(options: &DovecotOptions) -> std::io::Result<Dovecot> {
        if !Path::new("/usr/sbin/dovecot").exists() {
            return Err(error("dovecot is not installed: run scripts/packages.sh (Debian package dovecot-imapd)"));
        }
        let dir = std::env::temp_dir().join(format!(
            "dmarcpipe-dovecot-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(dir.join("home"))?;
        // Dovecot's processes run as other users: they must reach the files.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::os::unix::fs::chown(dir.join("home"), Some(8), Some(8))
            .map_err(|err| error(format!("the test Dovecot needs root (mail files belong to `mail`): {err}")))?;

        let certificate = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(
            dir.join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = localhost\n[ext]\n\
             basicConstraints = critical,CA:FALSE\nsubjectAltName = DNS:localhost,IP:127.0.0.1,IP:127.0.0.2\n\
             keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n",
        )?;
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .arg("-config")
            .arg(dir.join("openssl.cnf")))?;

        let mut passwd = format!("{USER}:{{PLAIN}}{PASSWORD}\n");
        for (user, password) in &options.users {
            passwd.push_str(&format!("{user}:{{PLAIN}}{password}\n"));
        }
        std::fs::write(dir.join("passwd"), passwd)?;
        let (imap_port, imaps_port) = (free_port()?, free_port()?);
        let d = dir.display();
        let mut config = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\ninfo_log_path = {d}/dovecot.log\nauth_verbose = yes\n\
             ssl = required\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n\
             auth_mechanisms = plain login xoauth2 oauthbearer\nmail_location = maildir:~/Maildir\n\
             first_valid_uid = 8\n\
             passdb {{\n  driver = passwd-file\n  mechanisms = plain login\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=mail gid=mail home={d}/home/%u\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1, 127.0.0.2\n    port = {imap_port}\n  }}\n\
             \x20 inet_listener imaps {{\n    address = 127.0.0.1, 127.0.0.2\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n"
        );
        if let Some(url) = &options.introspection_url {
            std::fs::write(
                dir.join("oauth2.conf.ext"),
                format!(
                    "introspection_mode = post\nintrospection_url = {url}\nusername_attribute = username\n\
                     active_attribute = active\nactive_value = true\n"
                ),
            )?;
            config.push_str(&format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf.ext\n}}\n"
            ));
        }
        if let Some(capabilities) = &options.capabilities {
            config.push_str(&format!("protocol imap {{\n  imap_capability = {capabilities}\n}}\n"));
        }
        let config_path = dir.join("dovecot.conf");
        std::fs::write(&config_path, config)?;
        // The daemon keeps whatever it inherits open: give it no pipe to wait on.
        let status = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(&config_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("startup.log"))?)
            .status()?;
        if !status.success() {
            let said = std::fs::read_to_string(dir.join("startup.log")).unwrap_or_default();
            return Err(error(format!("dovecot -c {}: {status}: {said}", config_path.display())));
        }
        let dovecot = Dovecot { dir, config: config_path, imap_port, imaps_port, certificate };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", imap_port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err(error(format!("Dovecot did not start: {}", dovecot.log())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(dovecot)
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// A logged-in client on the plain port (from 127.0.0.1 to itself: allowed in clear).
    pub fn client(&self) -> std::io::Result<Client> {
        Client::login(("127.0.0.1", self.imap_port), USER, PASSWORD)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/doveadm").arg("-c").arg(&self.config).arg("stop").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking IMAP client that says exactly what it is told (tests and benchmark only).
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl Client {
    /// Connects and logs in with LOGIN.
    pub fn login(address: impl std::net::ToSocketAddrs, user: &str, password: &str) -> std::io::Result<Client> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut client = Client { reader: BufReader::new(stream.try_clone()?), writer: stream, next_tag: 1 };
        client.response()?; // the greeting
        client.ok(&format!("LOGIN {} {}", protocol::quote(user), protocol::quote(password)))?;
        Ok(client)
    }

    /// The next whole response (literals included).
    fn response(&mut self) -> std::io::Result<Response> {
        let mut raw = Vec::new();
        loop {
            let start = raw.len();
            if self.reader.read_until(b'\n', &mut raw)? == 0 {
                return Err(error("the server closed the connection"));
            }
            let line = raw[start..].strip_suffix(b"\r\n").unwrap_or(&raw[start..]);
            let literal = line
                .strip_suffix(b"}")
                .and_then(|l| l.iter().rposition(|&b| b == b'{').map(|at| &l[at + 1..]))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<usize>().ok());
            match literal {
                Some(length) => {
                    let at = raw.len();
                    raw.resize(at + length, 0);
                    self.reader.read_exact(&mut raw[at..])?;
                }
                None => return Ok(protocol::parse(&raw)),
            }
        }
    }

    fn send(&mut self, command: &str) -> std::io::Result<String> {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        Ok(tag)
    }

    fn finish(&mut self, tag: &str, command: &str) -> std::io::Result<Vec<Data>> {
        let mut data = Vec::new();
        loop {
            match self.response()? {
                Response::Tagged { tag: done, completion } if done == tag => {
                    return match completion.status {
                        Status::Ok => Ok(data),
                        _ => Err(error(format!("{command}: {}", completion.describe()))),
                    };
                }
                Response::Data(item) => data.push(item),
                other => return Err(error(format!("{command}: unexpected {other:?}"))),
            }
        }
    }

    /// Runs a command that must succeed.
    pub fn command(&mut self, command: &str) -> std::io::Result<()> {
        self.ok(command).map(drop)
    }

    /// Runs a command that must succeed; its untagged data.
    fn ok(&mut self, command: &str) -> std::io::Result<Vec<Data>> {
        let tag = self.send(command)?;
        self.finish(&tag, command)
    }

    pub fn create(&mut self, folder: &str) -> std::io::Result<()> {
        self.ok(&format!("CREATE {}", protocol::quote(folder))).map(drop)
    }

    /// APPENDs a message to a folder (a synchronizing literal: the server may refuse it).
    pub fn append(&mut self, folder: &str, message: &[u8]) -> std::io::Result<()> {
        let command = format!("APPEND {} {{{}}}", protocol::quote(folder), message.len());
        let tag = self.send(&command)?;
        match self.response()? {
            Response::Continue(_) => {}
            other => return Err(error(format!("APPEND: {other:?}"))),
        }
        self.writer.write_all(message)?;
        self.writer.write_all(b"\r\n")?;
        self.finish(&tag, "APPEND").map(drop)
    }

    /// The messages of a folder, in UID order (read-only: EXAMINE and BODY.PEEK).
    pub fn messages(&mut self, folder: &str) -> std::io::Result<Vec<Vec<u8>>> {
        let exists = self
            .ok(&format!("EXAMINE {}", protocol::quote(folder)))?
            .into_iter()
            .find_map(|item| match item {
                Data::Exists(n) => Some(n),
                _ => None,
            })
            .unwrap_or(0);
        if exists == 0 {
            return Ok(Vec::new());
        }
        let mut bodies: Vec<(u32, Vec<u8>)> = self
            .ok("UID FETCH 1:* (UID BODY.PEEK[])")?
            .into_iter()
            .filter_map(|item| match item {
                Data::Fetch(fetched) => Some((fetched.uid?, fetched.body?)),
                _ => None,
            })
            .collect();
        bodies.sort_by_key(|(uid, _)| *uid);
        Ok(bodies.into_iter().map(|(_, body)| body).collect())
    }

    /// UIDs of a folder.
    pub fn uids(&mut self, folder: &str) -> std::io::Result<Vec<u32>> {
        self.ok(&format!("EXAMINE {}", protocol::quote(folder)))?;
        Ok(self
            .ok("UID SEARCH ALL")?
            .into_iter()
            .filter_map(|item| match item {
                Data::Search(uids) => Some(uids),
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// Every folder name, as the server spells it.
    pub fn folders(&mut self) -> std::io::Result<Vec<String>> {
        Ok(self
            .ok("LIST \"\" \"*\"")?
            .into_iter()
            .filter_map(|item| match item {
                Data::List(listed) => Some(listed.name),
                _ => None,
            })
            .collect())
    }

    pub fn logout(mut self) {
        let _ = self.send("LOGOUT");
    }
}
