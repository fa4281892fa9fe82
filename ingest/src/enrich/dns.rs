//! Reverse DNS of source IPs: the PTR names of an address, whether they resolve back to it
//! (forward-confirmed reverse DNS), and the registrable domain of the name shown.
//!
//! Input: an IP address (or many). Output: a [`PtrAnswer`] that always comes back, within the
//! configured per-query timeout times the attempts, twice at most (PTR, then the forward
//! lookups of its names side by side): a found name, NXDOMAIN, no PTR record, a timeout or
//! another failure, each with how long it may be kept ([`PtrAnswer::ttl`]). Lookups never fail
//! as a call and never panic; [`PtrStatus::is_transient`] says which outcomes to try again
//! soon.
//!
//! One shared hickory resolver does the work, with its in-memory cache for positive and
//! negative answers (NXDOMAIN and NODATA, with the SOA minimum as TTL); timeouts and server
//! failures are not cached, so the next lookup asks again. Nameservers are the system's
//! (`/etc/resolv.conf`) unless [`DnsSettings::nameservers`] lists some. Lookups in flight are
//! bounded by [`DnsSettings::concurrency`] across the whole resolver, however many callers.
//!
//! Names from DNS are untrusted: each is lowercased, its final dot removed, and kept only if it
//! is a host name (labels of letters, digits, `-` and `_`, 1-63 bytes, 253 in all); at most
//! [`MAX_NAMES`] are kept and the first [`MAX_CONFIRMED`] are forward-checked. The name shown
//! is the first that resolves (A for IPv4, AAAA for IPv6) back to the address, else the first.
//! Its base domain is the registrable domain under the ICANN section of the public suffix list
//! (`mail-yw1-f41.google.com` -> `google.com`; `ec2-3-4-5-6.compute-1.amazonaws.com` ->
//! `amazonaws.com`, not the whole host as the list's private section would make it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use tokio::sync::Semaphore;

/// At most this many PTR names of one address are kept.
pub const MAX_NAMES: usize = 10;
/// At most this many of them are forward-checked.
pub const MAX_CONFIRMED: usize = 5;
/// Shortest time an answer is kept.
pub const MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest time an answer is kept.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a negative answer is kept when the server gave no SOA to tell.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(3600);
/// How long a timeout or failure is kept before asking again.
pub const TRANSIENT_TTL: Duration = Duration::from_secs(5 * 60);
/// The system's resolver configuration, read when no nameservers are configured.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Answers the resolver's own cache holds (PTR and forward lookups alike).
const CACHE_ENTRIES: u64 = 65_536;
/// The longest host name (RFC 1035, without the final dot).
const MAX_NAME_LENGTH: usize = 253;
/// Longest `detail` text, so that a hostile answer cannot fill a row.
const MAX_DETAIL_LENGTH: usize = 300;

/// How reverse lookups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Empty: the system's /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Per query (each attempt).
    pub timeout: Duration,
    /// Queries per question before giving up (1 = no retry).
    pub attempts: usize,
    /// Lookups in flight at once.
    pub concurrency: usize,
}

impl Default for DnsSettings {
    fn default() -> DnsSettings {
        DnsSettings { nameservers: Vec::new(), timeout: Duration::from_secs(2), attempts: 2, concurrency: 64 }
    }
}

/// Why a resolver could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error(
        "nameserver `{text}`: {reason} (expected an IP address with an optional port: 192.0.2.53, 127.0.0.1:5353, [2001:db8::1]:53)"
    )]
    BadNameserver { text: String, reason: &'static str },
    #[error("cannot use the system's DNS configuration {path}: {reason} (or configure nameservers)")]
    SystemConfig { path: String, reason: String },
    #[error("cannot set up the DNS resolver: {reason}")]
    Resolver { reason: String },
    #[error("DNS settings: {setting} must be at least {minimum}, not {value}")]
    BadSetting { setting: &'static str, minimum: &'static str, value: String },
}

/// Reads a nameserver as written in the configuration: an address, with an optional port
/// (53 by default): `192.0.2.53`, `127.0.0.1:5353`, `2001:db8::1`, `[2001:db8::1]:53`.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, DnsError> {
    let bad = |reason| DnsError::BadNameserver { text: text.to_string(), reason };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let addr = if let Ok(addr) = trimmed.parse::<SocketAddr>() {
        addr
    } else if let Ok(ip) = trimmed.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else if let Some(ip) = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        SocketAddr::new(ip.parse::<IpAddr>().map_err(|_| bad("not an IP address inside the brackets"))?, 53)
    } else if let Some((host, port)) = trimmed.rsplit_once(':')
        && host.parse::<IpAddr>().is_ok()
    {
        return Err(if port.parse::<u16>().is_err() {
            bad("the port is not a number from 1 to 65535")
        } else {
            bad("an IPv6 address with a port needs brackets")
        });
    } else if trimmed.chars().any(|c| c.is_ascii_alphabetic()) && !trimmed.contains(':') {
        return Err(bad("a host name; a nameserver must be given by its IP address"));
    } else {
        return Err(bad("not an IP address"));
    };
    if addr.port() == 0 {
        return Err(bad("port 0"));
    }
    if addr.ip().is_unspecified() {
        return Err(bad("the unspecified address cannot be queried"));
    }
    Ok(addr)
}

/// What became of a PTR lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PtrStatus {
    /// At least one usable PTR name.
    Found,
    /// The reverse name does not exist.
    NxDomain,
    /// The name exists but has no PTR record.
    NoAnswer,
    /// No answer within the timeout (all attempts).
    Timeout,
    /// Anything else: server failure, refused, unusable names.
    Error,
}

impl PtrStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PtrStatus::Found => "found",
            PtrStatus::NxDomain => "nxdomain",
            PtrStatus::NoAnswer => "no_answer",
            PtrStatus::Timeout => "timeout",
            PtrStatus::Error => "error",
        }
    }

    /// Worth asking again soon: the next lookup may well succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, PtrStatus::Timeout | PtrStatus::Error)
    }
}

/// The reverse DNS of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct PtrAnswer {
    pub status: PtrStatus,
    /// Every usable PTR name, lowercased, without the final dot, in the server's order.
    pub names: Vec<String>,
    /// The name shown: the first forward-confirmed one, else the first.
    pub name: Option<String>,
    /// Whether `name` resolves (A/AAAA) back to the address; `None` when there is no name.
    pub confirmed: Option<bool>,
    /// The registrable domain of `name` (ICANN public suffixes), if it has one.
    pub base_domain: Option<String>,
    /// How long this answer may be kept, within [`MIN_TTL`, `MAX_TTL`].
    pub ttl: Duration,
    /// What went wrong, for `Error` (and a forward check that could not be made).
    pub detail: Option<String>,
}

impl PtrAnswer {
    fn without_name(status: PtrStatus, ttl: Duration, detail: Option<String>) -> PtrAnswer {
        PtrAnswer {
            status,
            names: Vec::new(),
            name: None,
            confirmed: None,
            base_domain: None,
            ttl: clamp_ttl(ttl),
            detail: detail.map(cap_detail),
        }
    }

    fn transient(status: PtrStatus, detail: String) -> PtrAnswer {
        PtrAnswer::without_name(status, TRANSIENT_TTL, Some(detail))
    }
}

fn clamp_ttl(ttl: Duration) -> Duration {
    ttl.clamp(MIN_TTL, MAX_TTL)
}

fn cap_detail(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_LENGTH {
        let mut end = MAX_DETAIL_LENGTH;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push('…');
    }
    detail
}

/// A PTR name as received, made safe to keep: lowercase, no final dot, a host name.
fn clean_name(raw: &str) -> Result<String, String> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    let shown = || cap_detail(format!("{raw:?}"));
    if name.is_empty() {
        return Err(format!("PTR name {} is empty (the root)", shown()));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!("PTR name {} is longer than {MAX_NAME_LENGTH} bytes", shown()));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("PTR name {} has a label of {} bytes", shown(), label.len()));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!(
                "PTR name {} is not a host name (a label has a byte other than a-z, 0-9, - and _)",
                shown()
            ));
        }
    }
    Ok(name)
}

/// Reverse lookups through one shared resolver; cheap to clone (all clones share the cache
/// and the bound on lookups in flight).
#[derive(Clone)]
pub struct ReverseResolver {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: Resolver<TokioRuntimeProvider>,
    /// Bounds lookups in flight across every caller.
    in_flight: Arc<Semaphore>,
    concurrency: usize,
    /// Longest one question (PTR, or one forward lookup) may take, all attempts included.
    deadline: Duration,
}

impl std::fmt::Debug for ReverseResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseResolver")
            .field("concurrency", &self.inner.concurrency)
            .field("deadline", &self.inner.deadline)
            .finish_non_exhaustive()
    }
}

impl ReverseResolver {
    /// A resolver asking `settings.nameservers`, or the system's when that is empty.
    pub fn new(settings: &DnsSettings) -> Result<ReverseResolver, DnsError> {
        let bad = |setting, minimum, value: String| DnsError::BadSetting { setting, minimum, value };
        if settings.timeout < Duration::from_millis(1) {
            return Err(bad("timeout", "1 ms", format!("{:?}", settings.timeout)));
        }
        if settings.attempts == 0 {
            return Err(bad("attempts", "1", settings.attempts.to_string()));
        }
        if settings.concurrency == 0 {
            return Err(bad("concurrency", "1", settings.concurrency.to_string()));
        }
        let resolver = build_resolver(settings)?;
        let attempts = u32::try_from(settings.attempts).unwrap_or(u32::MAX);
        // hickory enforces the timeout per attempt; ours is a backstop a little beyond that,
        // so that nothing inside can hold a lookup longer.
        let deadline = settings.timeout.saturating_mul(attempts).saturating_add(Duration::from_millis(250));
        Ok(ReverseResolver {
            inner: Arc::new(Inner {
                resolver,
                in_flight: Arc::new(Semaphore::new(settings.concurrency)),
                concurrency: settings.concurrency,
                deadline,
            }),
        })
    }

    /// The reverse DNS of `ip`, forward-checked. Waits for a free slot when `concurrency`
    /// lookups are already in flight.
    pub async fn lookup(&self, ip: IpAddr) -> PtrAnswer {
        let ip = ip.to_canonical();
        // The semaphore is never closed, so this cannot fail; if it ever did, going on
        // without a permit is better than failing the lookup.
        let _permit = self.inner.in_flight.acquire().await.ok();
        match tokio::time::timeout(self.inner.deadline, self.ptr_names(ip)).await {
            Err(_) => {
                PtrAnswer::transient(PtrStatus::Timeout, format!("no PTR answer within {:?}", self.inner.deadline))
            }
            Ok(Err(answer)) => answer,
            Ok(Ok((names, ttl))) => self.confirm(ip, names, ttl).await,
        }
    }

    /// The usable PTR names of `ip` and their TTL, or the answer when there are none.
    async fn ptr_names(&self, ip: IpAddr) -> Result<(Vec<String>, Duration), PtrAnswer> {
        let lookup = match self.inner.resolver.reverse_lookup(ip).await {
            Ok(lookup) => lookup,
            Err(error) => return Err(failure_answer("PTR", &error)),
        };
        let mut names: Vec<String> = Vec::new();
        let mut rejected = Vec::new();
        let mut ttl: Option<u32> = None;
        for record in lookup.answers() {
            let RData::PTR(ptr) = &record.data else { continue };
            ttl = Some(ttl.map_or(record.ttl, |ttl| ttl.min(record.ttl)));
            match clean_name(&ptr.0.to_ascii()) {
                Ok(name) if names.contains(&name) => {}
                Ok(name) if names.len() < MAX_NAMES => names.push(name),
                Ok(_) => {}
                Err(reason) => rejected.push(reason),
            }
        }
        if names.is_empty() {
            return Err(match rejected.first() {
                Some(reason) => PtrAnswer::transient(PtrStatus::Error, reason.clone()),
                // An answer of other types only (a CNAME chain that ends nowhere).
                None => PtrAnswer::without_name(PtrStatus::NoAnswer, DEFAULT_NEGATIVE_TTL, None),
            });
        }
        if !rejected.is_empty() {
            tracing::debug!(%ip, rejected = ?rejected, "Dropped PTR names that are not host names.");
        }
        Ok((names, Duration::from_secs(u64::from(ttl.unwrap_or(0)))))
    }

    /// Forward-checks the first names and builds the answer.
    async fn confirm(&self, ip: IpAddr, names: Vec<String>, ttl: Duration) -> PtrAnswer {
        let checks = names.iter().take(MAX_CONFIRMED).map(|name| self.resolves_to(name, ip));
        let outcomes = futures_util::future::join_all(checks).await;
        let confirmed_index = outcomes.iter().position(|outcome| matches!(outcome, Ok(true)));
        let chosen = confirmed_index.unwrap_or(0);
        let name = names[chosen].clone();
        // A forward check that failed (rather than answered "not this address") may well
        // succeed later: keep the answer only as long as a failure.
        let failure = if confirmed_index.is_none() {
            outcomes.iter().find_map(|outcome| outcome.as_ref().err().cloned())
        } else {
            None
        };
        PtrAnswer {
            status: PtrStatus::Found,
            base_domain: base_domain(&name),
            confirmed: Some(confirmed_index.is_some()),
            name: Some(name),
            names,
            ttl: if failure.is_some() { TRANSIENT_TTL } else { clamp_ttl(ttl) },
            detail: failure.map(cap_detail),
        }
    }

    /// Whether `name` has an A (IPv4) or AAAA (IPv6) record equal to `ip`; `Err` when that
    /// could not be found out (timeout, server failure).
    async fn resolves_to(&self, name: &str, ip: IpAddr) -> Result<bool, String> {
        let fqdn = match Name::from_ascii(format!("{name}.")) {
            Ok(fqdn) => fqdn,
            Err(error) => return Err(format!("forward lookup of {name}: {error}")),
        };
        let resolver = &self.inner.resolver;
        let lookup = async {
            match ip {
                IpAddr::V4(_) => resolver.ipv4_lookup(fqdn).await,
                IpAddr::V6(_) => resolver.ipv6_lookup(fqdn).await,
            }
        };
        match tokio::time::timeout(self.inner.deadline, lookup).await {
            Err(_) => Err(format!("forward lookup of {name}: no answer within {:?}", self.inner.deadline)),
            Ok(Ok(lookup)) => Ok(lookup.answers().iter().any(|record| match &record.data {
                RData::A(a) => IpAddr::V4(a.0) == ip,
                RData::AAAA(aaaa) => IpAddr::V6(aaaa.0) == ip,
                _ => false,
            })),
            Ok(Err(error)) if error.is_no_records_found() => Ok(false),
            Ok(Err(error)) => Err(format!("forward lookup of {name}: {error}")),
        }
    }

    /// The reverse DNS of each address, `concurrency` at a time, in the order given.
    pub async fn lookup_many(&self, ips: &[IpAddr]) -> Vec<(IpAddr, PtrAnswer)> {
        let ips: Arc<[IpAddr]> = ips.into();
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.inner.concurrency.min(ips.len()) {
            let (this, ips, next) = (self.clone(), ips.clone(), next.clone());
            workers.spawn(async move {
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&ip) = ips.get(index) else { break };
                    done.push((index, this.lookup(ip).await));
                }
                done
            });
        }
        let mut answers: Vec<Option<PtrAnswer>> = vec![None; ips.len()];
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(done) => {
                    for (index, answer) in done {
                        answers[index] = Some(answer);
                    }
                }
                Err(error) => tracing::error!(error = %error, "A reverse DNS worker failed."),
            }
        }
        ips.iter()
            .zip(answers)
            .map(|(&ip, answer)| {
                let answer = answer
                    .unwrap_or_else(|| PtrAnswer::transient(PtrStatus::Error, "the lookup task failed".to_string()));
                (ip, answer)
            })
            .collect()
    }
}

/// The answer for a PTR lookup that failed.
fn failure_answer(question: &str, error: &NetError) -> PtrAnswer {
    if let NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(no_records)) = error {
        let ttl = no_records.negative_ttl.map_or(DEFAULT_NEGATIVE_TTL, |ttl| Duration::from_secs(u64::from(ttl)));
        let status = if error.is_nx_domain() { PtrStatus::NxDomain } else { PtrStatus::NoAnswer };
        return PtrAnswer::without_name(status, ttl, None);
    }
    match error {
        NetError::Timeout => PtrAnswer::transient(PtrStatus::Timeout, format!("{question}: {error}")),
        _ => PtrAnswer::transient(PtrStatus::Error, format!("{question}: {error}")),
    }
}

/// The registrable domain of `name` under the ICANN section of the public suffix list, or
/// `None` when the name is itself a public suffix. Private-section suffixes
/// (`compute-1.amazonaws.com`, `herokuapp.com`) are skipped, since they would make each
/// customer's host its own domain; a name under an unknown top-level domain counts that
/// domain as the suffix (the list's default rule).
pub fn base_domain(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let mut candidate = name.as_str();
    let suffix_length = loop {
        let suffix = psl::suffix(candidate.as_bytes())?;
        match suffix.typ() {
            Some(psl::Type::Private) => {
                // Try again from the private suffix's parent.
                let private = std::str::from_utf8(suffix.trim().as_bytes()).ok()?;
                candidate = private.split_once('.')?.1;
            }
            Some(psl::Type::Icann) | None => break suffix.trim().as_bytes().len(),
        }
    };
    let rest = name.len().checked_sub(suffix_length + 1)?;
    let label_start = name[..rest].rfind('.').map_or(0, |dot| dot + 1);
    Some(name[label_start..].to_string())
}

fn build_resolver(settings: &DnsSettings) -> Result<Resolver<TokioRuntimeProvider>, DnsError> {
    let name_servers = if settings.nameservers.is_empty() {
        system_nameservers(std::path::Path::new(RESOLV_CONF))?
    } else {
        settings
            .nameservers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                // TCP for truncated answers (many PTR names).
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect()
    };
    // No search domains: every name we ask is fully qualified.
    let mut builder =
        Resolver::builder_with_config(ResolverConfig::from_name_servers(name_servers), TokioRuntimeProvider::default());
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = settings.timeout;
    options.attempts = settings.attempts;
    options.cache_size = CACHE_ENTRIES;
    // Answers are cached for their TTL within [MIN_TTL, MAX_TTL]; negative ones for the SOA
    // minimum within [MIN_TTL, 1 h], MIN_TTL when the server sent no SOA. (TTL 0 would mean
    // asking again for every record of a report.)
    options.positive_min_ttl = Some(MIN_TTL);
    options.positive_max_ttl = Some(MAX_TTL);
    options.negative_min_ttl = Some(MIN_TTL);
    options.negative_max_ttl = Some(DEFAULT_NEGATIVE_TTL);
    // DNS only: /etc/hosts names this machine, not the senders.
    options.use_hosts_file = ResolveHosts::Never;
    options.ndots = 0;
    // Enough TCP queries in flight for `concurrency` lookups when answers are truncated.
    options.max_active_requests = options.max_active_requests.max(settings.concurrency * 2);
    builder.build().map_err(|error| DnsError::Resolver { reason: error.to_string() })
}

/// The nameservers of a resolv.conf file.
fn system_nameservers(path: &std::path::Path) -> Result<Vec<NameServerConfig>, DnsError> {
    let failed = |reason: String| DnsError::SystemConfig { path: path.display().to_string(), reason };
    let text = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    let (config, _) =
        hickory_resolver::system_conf::parse_resolv_conf(text).map_err(|error| failed(error.to_string()))?;
    let (_, _, name_servers) = config.into_parts();
    Ok(name_servers)
}
