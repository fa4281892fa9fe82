//! The configuration file and how it combines with flags and the environment.
//!
//! ```toml
//! database_url = "postgres://dmarc@localhost/dmarc"
//! database_timeout_seconds = 30          # a statement's answer, before the input is retried
//!
//! [import]
//! jobs = 8
//!
//! [limits]
//! max_message_bytes = "256MiB"
//! max_decompressed_bytes = "2GiB"
//!
//! [forensic]
//! recipients = ["age1..."]              # and/or:
//! recipients_file = "recipients.txt"    # relative to this file
//!
//! [smtp]                                # dmarcpipe serve
//! listen = ["0.0.0.0:25", "[::]:25"]
//! lmtp_listen = ["127.0.0.1:2424"]
//! hostname = "mx.dmarc.example.com"
//! recipients = ["reports@dmarc.example.com", "@ruf.example.com"]
//! tls_certificate = "/etc/dmarcpipe/fullchain.pem"   # relative to this file
//! tls_key = "/etc/dmarcpipe/privkey.pem"
//! max_message_bytes = "64MiB"
//!
//! [[imap]]                              # dmarcpipe fetch, and serve beside (or without) SMTP
//! name = "reports"
//! host = "imap.example.com"
//! user = "dmarc@example.com"
//! password_file = "imap-password"       # relative to this file
//!
//! [digest]                              # dmarcpipe digest: the SMTP relay it sends through
//! relay = "smtp.example.com"
//! port = 587                            # default: 25 (none), 587 (starttls), 465 (tls)
//! tls = "starttls"                      # none, starttls (default) or tls (implicit TLS)
//! ca_file = "relay-ca.pem"              # an extra trusted root (a private relay)
//! username = "dmarc@example.com"
//! password_file = "smtp-password"       # relative to this file (or password = "...")
//! from = "DMARC digest <dmarc@example.com>"
//! to = ["postmaster@example.com"]       # when --to is not given
//! timeout_seconds = 60
//!
//! [enrich]                              # reverse DNS, geolocation and senders of source IPs
//! dns = true                            # false: no reverse DNS
//! nameservers = ["192.0.2.53", "127.0.0.1:5353"]   # default: /etc/resolv.conf
//! timeout_seconds = 2                   # one DNS query
//! concurrency = 64                      # DNS lookups in flight
//! city_db = "/var/lib/GeoIP/GeoLite2-City.mmdb"      # default: what `geoip fetch` wrote
//! country_db = "country.mmdb"           # relative to this file
//! asn_db = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
//! senders_file = "senders.csv"          # extends and overrides the built-in known senders
//! refresh_days = 30                     # look at every address again after this long
//! ```
//!
//! Every key of an `[[imap]]` section can also come from `DMARCPIPE_IMAP_<NAME>_<KEY>` (the
//! mailbox's name upper-cased, other characters as `_`), which wins over the file:
//! `DMARCPIPE_IMAP_REPORTS_PASSWORD`, `DMARCPIPE_IMAP_REPORTS_HOST`. Every key of `[digest]`
//! likewise from `DMARCPIPE_DIGEST_<KEY>` (`DMARCPIPE_DIGEST_PASSWORD`; `_TO` separated by
//! commas), and the flags of `digest` win over both; every key of `[enrich]` from
//! `DMARCPIPE_ENRICH_<KEY>` (`_NAMESERVERS` separated by commas), and `enrich --no-dns` over both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::enrich::dns::{DnsSettings, parse_nameserver};
use dmarcpipe_ingest::enrich::enricher::EnricherSettings;
use dmarcpipe_ingest::enrich::geo::{GeoPaths, default_geoip_dir};
use dmarcpipe_ingest::intake::imap::{Credentials, MailboxSettings, OAuthMechanism, Tls, TokenSource};
use dmarcpipe_store::seal::Sealer;
use serde::Deserialize;

use crate::cli::LimitArgs;

/// The config file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// How long the database may take to answer one statement before an input fails with a
    /// transient error (the database is taken to be frozen or gone).
    pub database_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub import: ImportSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub forensic: ForensicSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    /// IMAP mailboxes that `fetch` reads and `serve` watches.
    #[serde(default)]
    pub imap: Vec<ImapSection>,
    /// The SMTP relay of `dmarcpipe digest`.
    #[serde(default)]
    pub digest: DigestSection,
    /// Enrichment of source addresses: reverse DNS, geolocation databases, known senders.
    #[serde(default)]
    pub enrich: EnrichSection,
    /// Where the file was read from (relative paths in it are relative to its directory).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Who can read forensic samples: age X25519 recipients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForensicSection {
    #[serde(default)]
    pub recipients: Vec<String>,
    pub recipients_file: Option<PathBuf>,
}

/// `dmarcpipe serve`: where it listens, whom it accepts mail for, TLS, and its caps (each
/// optional; the defaults are those of [`dmarcpipe_ingest::intake::smtp::SmtpSettings::new`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub lmtp_listen: Vec<String>,
    pub hostname: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub max_message_bytes: Option<u64>,
    pub max_recipients: Option<usize>,
    pub max_sessions: Option<usize>,
    pub max_sessions_per_ip: Option<usize>,
    pub command_timeout_seconds: Option<u64>,
    pub data_timeout_seconds: Option<u64>,
    /// Bytes per second of message data that extend the DATA and session deadlines.
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub data_min_bytes_per_second: Option<u64>,
    pub session_timeout_seconds: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    /// The longest a message waits for the store before the sender is told `451` to retry.
    pub store_timeout_seconds: Option<u64>,
    /// Database connections of the server (messages stored at once).
    pub database_connections: Option<u32>,
}

/// One `[[imap]]` mailbox; each key optional but `host` and `user` (the defaults are those of
/// [`MailboxSettings::new`], but `max_message_bytes`: that of `[limits]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSection {
    /// In logs and `fetch --mailbox` (default: the user).
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub auth: Option<AuthMode>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub token_command: Option<String>,
    pub folder: Option<String>,
    pub archive_folder: Option<String>,
    pub not_report_folder: Option<String>,
    pub rejected_folder: Option<String>,
    pub delete: Option<bool>,
    pub leave_oversized: Option<bool>,
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub max_message_bytes: Option<u64>,
    pub poll_seconds: Option<u64>,
    pub idle: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Implicit,
    Starttls,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Password,
    Xoauth2,
    Oauthbearer,
}

impl ImapSection {
    /// `DMARCPIPE_IMAP_<NAME>_<KEY>` values from `lookup` over the file's.
    fn with_environment(mut self, name: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ImapSection> {
        let prefix: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let get = |key: &str| lookup(&format!("DMARCPIPE_IMAP_{prefix}_{key}"));
        let parse = |key: &str, value: String| -> Result<toml::Value> {
            toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .ok_or_else(|| anyhow::anyhow!("DMARCPIPE_IMAP_{prefix}_{key}: `{value}` is not a valid value"))
        };
        macro_rules! text {
            ($($field:ident),*) => {$(
                if let Some(value) = get(&stringify!($field).to_ascii_uppercase()) {
                    self.$field = Some(value.into());
                }
            )*};
        }
        macro_rules! typed {
            ($($field:ident),*) => {$(
                let key = stringify!($field).to_ascii_uppercase();
                if let Some(value) = get(&key) {
                    let value = parse(&key, value)?;
                    self.$field = Some(value.try_into().with_context(|| format!("DMARCPIPE_IMAP_{prefix}_{key}"))?);
                }
            )*};
        }
        text!(
            host,
            user,
            password,
            password_file,
            ca_file,
            token_file,
            token_command,
            folder,
            archive_folder,
            not_report_folder,
            rejected_folder
        );
        typed!(port, delete, leave_oversized, poll_seconds, idle, timeout_seconds);
        // Enumerations in any case: `STARTTLS`, `XOAUTH2`.
        let choice = |key: &str| -> Option<(toml::Value, String)> {
            let value = get(key)?;
            Some((toml::Value::String(value.to_ascii_lowercase()), format!("DMARCPIPE_IMAP_{prefix}_{key}: `{value}`")))
        };
        if let Some((value, what)) = choice("TLS") {
            self.tls = Some(value.try_into().context(what)?);
        }
        if let Some((value, what)) = choice("AUTH") {
            self.auth = Some(value.try_into().context(what)?);
        }
        if let Some(value) = get("MAX_MESSAGE_BYTES") {
            let size = dmarcpipe_ingest::limits::parse_size(&value)
                .map_err(|reason| anyhow::anyhow!("DMARCPIPE_IMAP_{prefix}_MAX_MESSAGE_BYTES: {reason}"))?;
            self.max_message_bytes = Some(size);
        }
        Ok(self)
    }
}

/// `[digest]`: the SMTP relay `dmarcpipe digest` sends through, and who the mail is from and to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestSection {
    pub relay: Option<String>,
    pub port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub tls: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    pub timeout_seconds: Option<u64>,
}

/// How the digest talks to its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// SMTP, then STARTTLS before anything else; the relay must offer it.
    Starttls,
    /// Implicit TLS from the first byte (port 465, "SMTPS").
    Tls,
}

impl RelayTls {
    /// `value` as given in `what` (`[digest] tls`, `DMARCPIPE_DIGEST_TLS`, `--tls`).
    pub fn parse(value: &str, what: &str) -> Result<RelayTls> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(RelayTls::None),
            "starttls" => Ok(RelayTls::Starttls),
            "tls" => Ok(RelayTls::Tls),
            _ => bail!("{what}: `{value}` is not one of none, starttls, tls"),
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            RelayTls::None => 25,
            RelayTls::Starttls => 587,
            RelayTls::Tls => 465,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RelayTls::None => "none",
            RelayTls::Starttls => "starttls",
            RelayTls::Tls => "tls",
        }
    }
}

/// The flags of `digest` that override `[digest]` (each `None` or empty when not given).
#[derive(Debug, Clone, Default)]
pub struct DigestOverrides {
    pub relay: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
}

/// The relay settings of `digest`, checked: flags over `DMARCPIPE_DIGEST_*` over `[digest]`.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestSettings {
    pub relay: String,
    pub port: u16,
    pub tls: RelayTls,
    pub ca_file: Option<PathBuf>,
    /// User name and password, when the relay wants AUTH.
    pub credentials: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for DigestSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestSettings")
            .field("relay", &self.relay)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl DigestSection {
    /// `DMARCPIPE_DIGEST_<KEY>` values from `lookup` over the file's.
    fn with_environment(mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<DigestSection> {
        let get = |key: &str| lookup(&format!("DMARCPIPE_DIGEST_{key}")).filter(|value| !value.trim().is_empty());
        macro_rules! text {
            ($($field:ident),*) => {$(
                if let Some(value) = get(&stringify!($field).to_ascii_uppercase()) {
                    self.$field = Some(value.into());
                }
            )*};
        }
        text!(relay, tls, ca_file, username, password, password_file, from);
        if let Some(value) = get("PORT") {
            self.port = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("DMARCPIPE_DIGEST_PORT: `{value}` is not a port number (1-65535)"))?,
            );
        }
        if let Some(value) = get("TIMEOUT_SECONDS") {
            self.timeout_seconds = Some(value.trim().parse().map_err(|_| {
                anyhow::anyhow!("DMARCPIPE_DIGEST_TIMEOUT_SECONDS: `{value}` is not a number of seconds")
            })?);
        }
        if let Some(value) = get("TO") {
            self.to = value.split(',').map(str::trim).filter(|to| !to.is_empty()).map(str::to_owned).collect();
        }
        Ok(self)
    }
}

/// `[enrich]`: how source addresses are enriched (every key optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichSection {
    /// Reverse DNS lookups (default true).
    pub dns: Option<bool>,
    /// `"192.0.2.53"`, `"127.0.0.1:5353"`, `"[2001:db8::1]:53"`; default: /etc/resolv.conf.
    pub nameservers: Option<Vec<String>>,
    pub timeout_seconds: Option<f64>,
    pub concurrency: Option<usize>,
    pub city_db: Option<PathBuf>,
    pub country_db: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
    pub senders_file: Option<PathBuf>,
    pub refresh_days: Option<f64>,
}

/// Default of `[enrich] refresh_days`.
const DEFAULT_REFRESH_DAYS: f64 = 30.0;

impl EnrichSection {
    /// `DMARCPIPE_ENRICH_<KEY>` values from `lookup` over the file's.
    fn with_environment(mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<EnrichSection> {
        let get = |key: &str| lookup(&format!("DMARCPIPE_ENRICH_{key}")).filter(|value| !value.trim().is_empty());
        fn parsed<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T> {
            value.trim().parse().map_err(|_| anyhow::anyhow!("DMARCPIPE_ENRICH_{key}: `{value}` is not {what}"))
        }
        if let Some(value) = get("DNS") {
            self.dns = Some(match value.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => bail!("DMARCPIPE_ENRICH_DNS: `{value}` is not true or false"),
            });
        }
        if let Some(value) = get("NAMESERVERS") {
            self.nameservers =
                Some(value.split(',').map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned).collect());
        }
        if let Some(value) = get("TIMEOUT_SECONDS") {
            self.timeout_seconds = Some(parsed("TIMEOUT_SECONDS", &value, "a number of seconds")?);
        }
        if let Some(value) = get("CONCURRENCY") {
            self.concurrency = Some(parsed("CONCURRENCY", &value, "a number")?);
        }
        if let Some(value) = get("REFRESH_DAYS") {
            self.refresh_days = Some(parsed("REFRESH_DAYS", &value, "a number of days")?);
        }
        for (key, slot) in [
            ("CITY_DB", &mut self.city_db),
            ("COUNTRY_DB", &mut self.country_db),
            ("ASN_DB", &mut self.asn_db),
            ("SENDERS_FILE", &mut self.senders_file),
        ] {
            if let Some(value) = get(key) {
                *slot = Some(value.into());
            }
        }
        Ok(self)
    }
}

/// The enricher's settings, checked, and how often addresses are looked at again.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub enricher: EnricherSettings,
    pub refresh: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    pub jobs: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: FileConfig =
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// The sealer for forensic samples and kept inputs, `None` when no recipient is configured.
    pub fn sealer(&self) -> Result<Option<Sealer>> {
        let section = &self.forensic;
        if section.recipients.is_empty() && section.recipients_file.is_none() {
            return Ok(None);
        }
        let config_name = self.path.as_ref().map_or("the configuration".into(), |p| p.display().to_string());
        let file = section.recipients_file.as_deref().map(|file| self.relative_path(file));
        let files: Vec<&Path> = file.iter().map(PathBuf::as_path).collect();
        let sealer = Sealer::new(&section.recipients, &format!("{config_name} [forensic] recipients"), &files)?;
        Ok(Some(sealer))
    }

    /// A path from the file, relative to the file's directory.
    pub fn relative_path(&self, file: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|p| p.parent()) {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        }
    }

    /// The database URL: flag or `DATABASE_URL`, else the file.
    pub fn database_url(&self, flag: Option<&str>) -> Result<String> {
        match flag.map(str::to_owned).or_else(|| self.database_url.clone()) {
            Some(url) if !url.trim().is_empty() => Ok(url),
            _ => bail!("no database: set DATABASE_URL, pass --database-url, or set database_url in the config file"),
        }
    }

    /// The `[[imap]]` mailboxes, with `DMARCPIPE_IMAP_*` variables applied and checked; a
    /// mailbox never reads messages larger than `limits.max_message_bytes`.
    pub fn mailboxes(&self, limits: &Limits) -> Result<Vec<MailboxSettings>> {
        self.mailboxes_with(limits, &|key| std::env::var(key).ok())
    }

    fn mailboxes_with(&self, limits: &Limits, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<MailboxSettings>> {
        let mut mailboxes: Vec<MailboxSettings> = Vec::new();
        for (index, section) in self.imap.iter().enumerate() {
            let label =
                section.name.clone().or_else(|| section.user.clone()).unwrap_or_else(|| format!("#{}", index + 1));
            let section = section.clone().with_environment(&label, lookup)?;
            let mailbox =
                self.mailbox(&label, section, limits).with_context(|| format!("[[imap]] mailbox `{label}`"))?;
            if mailboxes.iter().any(|m| m.name == mailbox.name) {
                bail!("two [[imap]] mailboxes are named `{}`: give each its own name", mailbox.name);
            }
            mailboxes.push(mailbox);
        }
        Ok(mailboxes)
    }

    fn mailbox(&self, name: &str, section: ImapSection, limits: &Limits) -> Result<MailboxSettings> {
        let host = section.host.filter(|h| !h.trim().is_empty()).context("no host")?;
        let user = section.user.filter(|u| !u.trim().is_empty()).context("no user")?;
        let token = match (section.token_file, section.token_command) {
            (Some(_), Some(_)) => bail!("token_file and token_command both set: choose one"),
            (Some(file), None) => Some(TokenSource::File(self.relative_path(&file))),
            (None, Some(command)) => Some(TokenSource::Command(command)),
            (None, None) => None,
        };
        let password = match (section.password, section.password_file) {
            (Some(_), Some(_)) => bail!("password and password_file both set: choose one"),
            (Some(password), None) => Some(password),
            (None, Some(file)) => {
                let path = self.relative_path(&file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read password_file {}", path.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let auth = section.auth.unwrap_or(if token.is_some() { AuthMode::Xoauth2 } else { AuthMode::Password });
        let credentials = match (auth, password, token) {
            (AuthMode::Password, Some(password), None) => Credentials::Password(password),
            (AuthMode::Password, None, None) => {
                bail!("no password: set password_file (or password), or token_command for OAuth")
            }
            (AuthMode::Xoauth2 | AuthMode::Oauthbearer, None, Some(token)) => {
                let mechanism =
                    if auth == AuthMode::Xoauth2 { OAuthMechanism::XOAuth2 } else { OAuthMechanism::OAuthBearer };
                Credentials::OAuth { mechanism, token }
            }
            (AuthMode::Xoauth2 | AuthMode::Oauthbearer, _, None) => bail!("OAuth needs token_command or token_file"),
            _ => bail!("a password and an OAuth token are both set: choose one"),
        };
        let mut mailbox = MailboxSettings::new(name, &host, &user, credentials);
        mailbox.tls = match section.tls.unwrap_or(TlsMode::Implicit) {
            TlsMode::Implicit => Tls::Implicit,
            TlsMode::Starttls => Tls::StartTls,
            TlsMode::None => Tls::None,
        };
        mailbox.port = section.port.unwrap_or(mailbox.tls.default_port());
        mailbox.ca_file = section.ca_file.map(|file| self.relative_path(&file));
        if mailbox.ca_file.is_some() && mailbox.tls == Tls::None {
            bail!("ca_file is set but tls = \"none\"");
        }
        let or = |value: Option<String>, default: &mut String| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                *default = value;
            }
        };
        or(section.folder, &mut mailbox.folder);
        or(section.archive_folder, &mut mailbox.archive_folder);
        or(section.not_report_folder, &mut mailbox.not_report_folder);
        or(section.rejected_folder, &mut mailbox.rejected_folder);
        mailbox.delete = section.delete.unwrap_or(false);
        mailbox.leave_oversized = section.leave_oversized.unwrap_or(false);
        mailbox.max_message_bytes =
            section.max_message_bytes.unwrap_or(limits.max_message_bytes).min(limits.max_message_bytes);
        mailbox.poll_interval = Duration::from_secs(section.poll_seconds.unwrap_or(300).max(1));
        mailbox.idle = section.idle.unwrap_or(true);
        mailbox.timeout = Duration::from_secs(section.timeout_seconds.unwrap_or(120).max(1));
        Ok(mailbox)
    }

    /// The relay settings of `digest`: `flags`, then `DMARCPIPE_DIGEST_*`, then `[digest]`.
    pub fn digest(&self, flags: &DigestOverrides) -> Result<DigestSettings> {
        self.digest_with(flags, &|key| std::env::var(key).ok())
    }

    fn digest_with(&self, flags: &DigestOverrides, lookup: &dyn Fn(&str) -> Option<String>) -> Result<DigestSettings> {
        let section = self.digest.clone().with_environment(lookup)?;
        let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let relay = nonempty(flags.relay.clone()).or(nonempty(section.relay)).context(
            "no SMTP relay for the digest: set relay in [digest] of the config file, DMARCPIPE_DIGEST_RELAY, or --relay",
        )?;
        let tls = match (&flags.tls, &section.tls) {
            (Some(flag), _) => RelayTls::parse(flag, "--tls")?,
            (None, Some(value)) => RelayTls::parse(value, "[digest] tls (or DMARCPIPE_DIGEST_TLS)")?,
            (None, None) => RelayTls::Starttls,
        };
        let port = flags.port.or(section.port).unwrap_or(tls.default_port());
        if port == 0 {
            bail!("[digest] port: 0 is not a port number (1-65535)");
        }
        let ca_file = section.ca_file.map(|file| self.relative_path(&file));
        if let Some(file) = &ca_file {
            if tls == RelayTls::None {
                bail!(
                    "[digest] ca_file {} is set but tls is none: use starttls or tls, or drop ca_file",
                    file.display()
                );
            }
            if !file.is_file() {
                bail!("[digest] ca_file {}: no such file", file.display());
            }
        }
        let password = match (section.password, section.password_file) {
            (Some(_), Some(_)) => bail!("[digest] password and password_file are both set: choose one"),
            (Some(password), None) => Some(password),
            (None, Some(file)) => {
                let path = self.relative_path(&file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read [digest] password_file {}", path.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let credentials = match (nonempty(flags.username.clone()).or(nonempty(section.username)), password) {
            (Some(user), Some(password)) => Some((user, password)),
            (Some(user), None) => bail!(
                "[digest] username `{user}` has no password: set password_file (or password, DMARCPIPE_DIGEST_PASSWORD)"
            ),
            (None, Some(_)) => bail!("[digest] a password is set but no username: set username (or --username)"),
            (None, None) => None,
        };
        let from = nonempty(flags.from.clone()).or(nonempty(section.from)).context(
            "no sender address for the digest: set from in [digest] of the config file, DMARCPIPE_DIGEST_FROM, or --from",
        )?;
        let to = if flags.to.is_empty() { section.to } else { flags.to.clone() };
        if to.is_empty() {
            bail!("no recipient for the digest: give --to ADDRESS (or to in [digest] of the config file)");
        }
        let timeout = Duration::from_secs(section.timeout_seconds.unwrap_or(60).max(1));
        Ok(DigestSettings { relay, port, tls, ca_file, credentials, from, to, timeout })
    }

    /// The enrichment settings: `DMARCPIPE_ENRICH_*` over `[enrich]`, DNS off with `no_dns`.
    /// Without any database file configured, those `dmarcpipe geoip fetch` wrote into the
    /// default directory.
    pub fn enrich(&self, no_dns: bool) -> Result<EnrichConfig> {
        self.enrich_with(no_dns, &|key| std::env::var(key).ok(), default_geoip_dir())
    }

    fn enrich_with(
        &self,
        no_dns: bool,
        lookup: &dyn Fn(&str) -> Option<String>,
        default_dir: Option<PathBuf>,
    ) -> Result<EnrichConfig> {
        let section = self.enrich.clone().with_environment(lookup)?;
        let file = self.path.as_ref().map_or("the configuration".into(), |p| p.display().to_string());
        let key = |name: &str| format!("{file} [enrich] {name} (or DMARCPIPE_ENRICH_{})", name.to_ascii_uppercase());
        let mut dns = DnsSettings::default();
        for text in section.nameservers.iter().flatten() {
            dns.nameservers.push(parse_nameserver(text).with_context(|| key("nameservers"))?);
        }
        if let Some(seconds) = section.timeout_seconds {
            if !(seconds > 0.0 && seconds <= 60.0) {
                bail!("{}: {seconds} is not a number of seconds from 0 to 60 (above 0)", key("timeout_seconds"));
            }
            dns.timeout = Duration::from_secs_f64(seconds);
        }
        if let Some(concurrency) = section.concurrency {
            if !(1..=10_000).contains(&concurrency) {
                bail!("{}: {concurrency} is not a number of lookups from 1 to 10000", key("concurrency"));
            }
            dns.concurrency = concurrency;
        }
        let refresh_days = section.refresh_days.unwrap_or(DEFAULT_REFRESH_DAYS);
        if !(refresh_days > 0.0 && refresh_days <= 3650.0) {
            bail!("{}: {refresh_days} is not a number of days from 0 to 3650 (above 0)", key("refresh_days"));
        }
        let database = |name: &str, path: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            let Some(path) = path else { return Ok(None) };
            let path = self.relative_path(path);
            if !path.is_file() {
                bail!("{}: {}: no such file", key(name), path.display());
            }
            Ok(Some(path))
        };
        let configured = GeoPaths {
            city: database("city_db", &section.city_db)?,
            country: database("country_db", &section.country_db)?,
            asn: database("asn_db", &section.asn_db)?,
        };
        let (geo, geo_dir) = if configured.is_empty() {
            (default_dir.as_deref().map(GeoPaths::in_dir).unwrap_or_default(), default_dir)
        } else {
            (configured, None)
        };
        let senders_file = section.senders_file.map(|path| self.relative_path(&path));
        if let Some(path) = &senders_file
            && !path.is_file()
        {
            bail!("{}: {}: no such file", key("senders_file"), path.display());
        }
        let dns = (!no_dns && section.dns.unwrap_or(true)).then_some(dns);
        Ok(EnrichConfig {
            enricher: EnricherSettings { dns, geo, geo_dir, senders_file },
            refresh: Duration::from_secs_f64(refresh_days * 86_400.0),
        })
    }

    /// File limits overridden by flags and `DMARCPIPE_MAX_*` variables.
    pub fn limits(&self, args: &LimitArgs) -> Limits {
        let mut limits = self.limits.clone();
        let LimitArgs {
            max_message_bytes,
            max_decompressed_bytes,
            max_compression_ratio,
            max_zip_entries,
            max_nesting,
            max_mime_depth,
            max_mime_parts,
            max_xml_depth,
            max_kept_bytes,
            max_memory,
        } = args.clone();
        override_with(&mut limits.max_message_bytes, max_message_bytes);
        override_with(&mut limits.max_decompressed_bytes, max_decompressed_bytes);
        override_with(&mut limits.max_compression_ratio, max_compression_ratio);
        override_with(&mut limits.max_zip_entries, max_zip_entries);
        override_with(&mut limits.max_nesting, max_nesting);
        override_with(&mut limits.max_mime_depth, max_mime_depth);
        override_with(&mut limits.max_mime_parts, max_mime_parts);
        override_with(&mut limits.max_xml_depth, max_xml_depth);
        override_with(&mut limits.max_kept_bytes, max_kept_bytes);
        override_with(&mut limits.max_memory, max_memory);
        limits
    }
}

fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_are_overridden_by_flags() -> Result<()> {
        let config: FileConfig = toml::from_str(
            "database_url = \"postgres://file/db\"\n[import]\njobs = 3\n[limits]\nmax_message_bytes = \"1MiB\"\nmax_zip_entries = 7\n",
        )?;
        assert_eq!(config.import.jobs, Some(3));
        let limits = config.limits(&LimitArgs { max_zip_entries: Some(9), ..LimitArgs::default() });
        assert_eq!(limits.max_message_bytes, 1 << 20);
        assert_eq!(limits.max_zip_entries, 9);
        assert_eq!(limits.max_xml_depth, Limits::default().max_xml_depth);
        assert_eq!(config.database_url(Some("postgres://flag/db"))?, "postgres://flag/db");
        assert_eq!(config.database_url(None)?, "postgres://file/db");
        Ok(())
    }

    #[test]
    fn recipients_come_from_the_list_and_a_file_beside_the_config() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, first) = dmarcpipe_store::seal::generate_identity();
        let (_, second) = dmarcpipe_store::seal::generate_identity();
        std::fs::write(dir.path().join("recipients.txt"), format!("# team\n{second}\n"))?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            format!("[forensic]\nrecipients = [\"{first}\"]\nrecipients_file = \"recipients.txt\"\n"),
        )?;
        let config = FileConfig::load(Some(&path))?;
        assert!(config.sealer()?.is_some());
        assert!(FileConfig::default().sealer()?.is_none());

        std::fs::write(&path, "[forensic]\nrecipients = [\"age1bogus\"]\n")?;
        let err = FileConfig::load(Some(&path))?.sealer().expect_err("a bad recipient");
        assert!(err.to_string().contains("dmarcpipe.toml [forensic] recipients: `age1bogus`"), "{err}");
        Ok(())
    }

    #[test]
    fn imap_sections_take_defaults_files_and_environment() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("imap-password"), "from the file\n")?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            "[[imap]]\nname = \"reports\"\nhost = \"imap.example.com\"\nuser = \"dmarc@example.com\"\n\
             password_file = \"imap-password\"\n[[imap]]\nname = \"gmail\"\nhost = \"imap.gmail.com\"\n\
             user = \"dmarc@example.net\"\ntoken_command = \"oauth2l fetch\"\nfolder = \"DMARC\"\ndelete = true\n",
        )?;
        let config = FileConfig::load(Some(&path))?;
        let limits = Limits::default();
        let env = |key: &str| match key {
            "DMARCPIPE_IMAP_REPORTS_TLS" => Some("STARTTLS".to_owned()),
            "DMARCPIPE_IMAP_REPORTS_POLL_SECONDS" => Some("60".to_owned()),
            "DMARCPIPE_IMAP_REPORTS_MAX_MESSAGE_BYTES" => Some("1G".to_owned()),
            "DMARCPIPE_IMAP_GMAIL_AUTH" => Some("oauthbearer".to_owned()),
            _ => None,
        };
        let mailboxes = config.mailboxes_with(&limits, &env)?;
        let (reports, gmail) = (&mailboxes[0], &mailboxes[1]);
        assert_eq!(reports.credentials, Credentials::Password("from the file".into()));
        assert_eq!((reports.tls, reports.port), (Tls::StartTls, 143));
        assert_eq!(reports.poll_interval, Duration::from_secs(60));
        assert_eq!(reports.max_message_bytes, limits.max_message_bytes, "never above the limit");
        assert_eq!((reports.folder.as_str(), reports.archive_folder.as_str()), ("INBOX", "DMARC/Archive"));
        assert_eq!(
            gmail.credentials,
            Credentials::OAuth {
                mechanism: OAuthMechanism::OAuthBearer,
                token: TokenSource::Command("oauth2l fetch".into())
            }
        );
        assert_eq!((gmail.port, gmail.folder.as_str(), gmail.delete), (993, "DMARC", true));

        let bad = |toml: &str| -> String {
            let config: FileConfig = toml::from_str(toml).expect("parses");
            format!("{:#}", config.mailboxes_with(&limits, &|_| None).expect_err("refused"))
        };
        assert!(bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\n").contains("no password"));
        assert!(bad("[[imap]]\nname = \"x\"\nuser = \"u\"\npassword = \"p\"\n").contains("mailbox `x`: no host"));
        assert!(
            bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\ntoken_command = \"t\"\n").contains("both set")
        );
        assert!(
            bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n[[imap]]\nhost = \"h2\"\nuser = \"u\"\npassword = \"p\"\n")
                .contains("two [[imap]] mailboxes are named `u`")
        );
        assert!(toml::from_str::<FileConfig>("[[imap]]\ntls = \"ssl\"\n").is_err());
        let wrong = |key: &str, value: &str| {
            let (key, value) = (key.to_owned(), value.to_owned());
            let config: FileConfig =
                toml::from_str("[[imap]]\nname = \"r\"\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n")
                    .expect("parses");
            format!(
                "{:#}",
                config.mailboxes_with(&limits, &move |k| (k == key).then(|| value.clone())).expect_err("refused")
            )
        };
        assert!(wrong("DMARCPIPE_IMAP_R_PORT", "many").contains("DMARCPIPE_IMAP_R_PORT"));
        assert!(wrong("DMARCPIPE_IMAP_R_TLS", "ssl").contains("DMARCPIPE_IMAP_R_TLS"));
        Ok(())
    }

    #[test]
    fn the_digest_relay_takes_flags_over_environment_over_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("smtp-password"), "s3cret\n")?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            "[digest]\nrelay = \"smtp.example.com\"\nusername = \"dmarc\"\npassword_file = \"smtp-password\"\n\
             from = \"DMARC <dmarc@example.com>\"\nto = [\"a@example.com\"]\n",
        )?;
        let config = FileConfig::load(Some(&path))?;
        let settings = config.digest_with(&DigestOverrides::default(), &|_| None)?;
        assert_eq!(
            (settings.relay.as_str(), settings.port, settings.tls),
            ("smtp.example.com", 587, RelayTls::Starttls)
        );
        assert_eq!(settings.credentials, Some(("dmarc".to_owned(), "s3cret".to_owned())));
        assert_eq!(settings.to, ["a@example.com"]);
        assert!(!format!("{settings:?}").contains("s3cret"), "the password is not in Debug");

        let env = |key: &str| match key {
            "DMARCPIPE_DIGEST_TLS" => Some("TLS".to_owned()),
            "DMARCPIPE_DIGEST_RELAY" => Some("relay.example.net".to_owned()),
            "DMARCPIPE_DIGEST_TO" => Some("b@example.com, c@example.com".to_owned()),
            _ => None,
        };
        let settings = config.digest_with(&DigestOverrides::default(), &env)?;
        assert_eq!((settings.relay.as_str(), settings.port, settings.tls), ("relay.example.net", 465, RelayTls::Tls));
        assert_eq!(settings.to, ["b@example.com", "c@example.com"]);
        let flags = DigestOverrides {
            relay: Some("127.0.0.1".into()),
            port: Some(2525),
            tls: Some("none".into()),
            to: vec!["d@example.com".into()],
            ..DigestOverrides::default()
        };
        let settings = config.digest_with(&flags, &env)?;
        assert_eq!((settings.relay.as_str(), settings.port, settings.tls), ("127.0.0.1", 2525, RelayTls::None));
        assert_eq!(settings.to, ["d@example.com"]);

        let refused = |toml: &str, env: &[(&str, &str)], flags: DigestOverrides| -> String {
            let config: FileConfig = toml::from_str(toml).expect("parses");
            let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let lookup = move |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            format!("{:#}", config.digest_with(&flags, &lookup).expect_err("refused"))
        };
        let base = "[digest]\nrelay = \"r\"\nfrom = \"f@example.com\"\nto = [\"t@example.com\"]\n";
        let none = DigestOverrides::default;
        assert!(refused("", &[], none()).contains("no SMTP relay"));
        assert!(refused("[digest]\nrelay = \"r\"\n", &[], none()).contains("no sender address"));
        assert!(refused("[digest]\nrelay = \"r\"\nfrom = \"f@example.com\"\n", &[], none()).contains("no recipient"));
        let tls = refused(&format!("{base}tls = \"ssl\"\n"), &[], none());
        assert!(tls.contains("[digest] tls") && tls.contains("`ssl` is not one of none, starttls, tls"), "{tls}");
        let flag = refused(base, &[], DigestOverrides { tls: Some("smtps".into()), ..none() });
        assert!(flag.contains("--tls: `smtps`"), "{flag}");
        assert!(refused(base, &[("DMARCPIPE_DIGEST_PORT", "many")], none()).contains("DMARCPIPE_DIGEST_PORT: `many`"));
        let ca = refused(&format!("{base}tls = \"none\"\nca_file = \"/etc/hostname\"\n"), &[], none());
        assert!(ca.contains("ca_file /etc/hostname is set but tls is none"), "{ca}");
        assert!(
            refused(&format!("{base}ca_file = \"/nonexistent/ca.pem\"\n"), &[], none())
                .contains("/nonexistent/ca.pem: no such file")
        );
        assert!(refused(&format!("{base}username = \"u\"\n"), &[], none()).contains("username `u` has no password"));
        assert!(refused(&format!("{base}password = \"p\"\n"), &[], none()).contains("no username"));
        assert!(
            refused(&format!("{base}username = \"u\"\npassword = \"p\"\npassword_file = \"x\"\n"), &[], none())
                .contains("both set")
        );
        assert!(toml::from_str::<FileConfig>("[digest]\nrelay_host = \"r\"\n").is_err(), "unknown keys are errors");
        Ok(())
    }

    #[test]
    fn enrich_settings_take_environment_over_file_and_name_bad_values() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("country.mmdb"), b"checked when opened")?;
        std::fs::write(dir.path().join("senders.csv"), "rule,value,service,kind\n")?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            "[enrich]\nnameservers = [\"192.0.2.53\", \"127.0.0.1:5353\"]\ntimeout_seconds = 0.5\nconcurrency = 8\n\
             country_db = \"country.mmdb\"\nsenders_file = \"senders.csv\"\nrefresh_days = 7\n",
        )?;
        let config = FileConfig::load(Some(&path))?;
        let nothing = |_: &str| None;
        let settings = config.enrich_with(false, &nothing, None)?;
        let dns = settings.enricher.dns.as_ref().expect("DNS on");
        assert_eq!(dns.nameservers, vec!["192.0.2.53:53".parse()?, "127.0.0.1:5353".parse()?]);
        assert_eq!((dns.timeout, dns.concurrency), (Duration::from_millis(500), 8));
        assert_eq!(settings.enricher.geo.country, Some(dir.path().join("country.mmdb")));
        assert_eq!(settings.enricher.geo.city, None);
        assert_eq!(settings.enricher.senders_file, Some(dir.path().join("senders.csv")));
        assert_eq!(settings.refresh, Duration::from_secs(7 * 86_400));
        assert!(config.enrich_with(true, &nothing, None)?.enricher.dns.is_none(), "--no-dns");

        let environment = |key: &str| match key {
            "DMARCPIPE_ENRICH_NAMESERVERS" => Some("[2001:db8::1]:5300, 198.51.100.1".to_owned()),
            "DMARCPIPE_ENRICH_DNS" => Some("off".to_owned()),
            _ => None,
        };
        let settings = config.enrich_with(false, &environment, None)?;
        assert!(settings.enricher.dns.is_none(), "DMARCPIPE_ENRICH_DNS=off");

        // Without database files configured: the default directory's.
        let default_dir = dir.path().join("geoip");
        std::fs::create_dir_all(&default_dir)?;
        std::fs::write(default_dir.join("asn.mmdb"), b"x")?;
        let settings = FileConfig::default().enrich_with(false, &nothing, Some(default_dir.clone()))?;
        assert_eq!(settings.enricher.geo.asn, Some(default_dir.join("asn.mmdb")));
        assert_eq!(settings.enricher.geo_dir, Some(default_dir));
        assert!(settings.enricher.dns.as_ref().is_some_and(|dns| dns.nameservers.is_empty()));

        for (text, expected) in [
            ("nameservers = [\"not an address\"]", "[enrich] nameservers"),
            ("timeout_seconds = 0", "[enrich] timeout_seconds (or DMARCPIPE_ENRICH_TIMEOUT_SECONDS): 0 is not"),
            ("concurrency = 0", "[enrich] concurrency (or DMARCPIPE_ENRICH_CONCURRENCY): 0 is not"),
            ("refresh_days = -1", "[enrich] refresh_days (or DMARCPIPE_ENRICH_REFRESH_DAYS): -1 is not"),
            ("city_db = \"missing.mmdb\"", "missing.mmdb: no such file"),
            ("senders_file = \"missing.csv\"", "[enrich] senders_file (or DMARCPIPE_ENRICH_SENDERS_FILE)"),
        ] {
            std::fs::write(&path, format!("[enrich]\n{text}\n"))?;
            let err = FileConfig::load(Some(&path))?.enrich_with(false, &nothing, None).expect_err(text);
            let message = format!("{err:#}");
            assert!(message.contains("dmarcpipe.toml") && message.contains(expected), "{text}: {message}");
        }
        std::fs::write(&path, "[enrich]\nnameservers = [\"bogus\"]\n")?;
        let message =
            format!("{:#}", FileConfig::load(Some(&path))?.enrich_with(false, &nothing, None).expect_err("bad"));
        assert!(message.contains("bogus"), "{message}");
        let bad_environment = |key: &str| (key == "DMARCPIPE_ENRICH_CONCURRENCY").then(|| "many".to_owned());
        let err = FileConfig::default().enrich_with(false, &bad_environment, None).expect_err("not a number");
        assert!(err.to_string().contains("DMARCPIPE_ENRICH_CONCURRENCY: `many` is not a number"), "{err}");
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_bogus = 1\n").is_err());
        assert!(toml::from_str::<FileConfig>("databse_url = \"x\"\n").is_err());
    }
}
