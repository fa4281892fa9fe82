//! Known senders: which sending service an address belongs to (Google Workspace, Amazon SES,
//! Mimecast, ...), from its reverse DNS name, its network and its autonomous system.
//!
//! Input: the address, its PTR name and that name's base domain (from [`super::dns`]; only a
//! forward-confirmed name should be handed in, since anyone can make the PTR of their own
//! address say `mail.google.com`), and its ASN (from the geolocation databases). Output: the
//! service's name and [`SenderKind`], and the evidence of the rule that matched, with its file
//! and line, or nothing when no rule matches.
//!
//! The catalog is `ingest/data/senders.csv`, written by us from public facts and compiled in,
//! extended and overridden by the user's file (`[enrich] senders_file`, same columns). Each row
//! is `rule,value,service,kind,evidence`, with rule one of:
//! - `ptr_suffix`: the PTR name is the value or ends in `.value`
//!   (`outbound.protection.outlook.com`);
//! - `ptr_base_domain`: the PTR name's base domain is the value; matched like a suffix of the
//!   name as well, so that it also works when only one of the two is known (`sendgrid.net`);
//! - `cidr`: the address is in the network (`209.85.128.0/17`, `2a00:1450:4000::/36`);
//! - `asn`: the address is announced by the autonomous system (`15169` or `AS15169`).
//!
//! Precedence: the longest matching PTR suffix or base domain first (so
//! `atlassian.net.sparkpostmail.com` beats `sparkpostmail.com`; at equal length `ptr_suffix`
//! beats `ptr_base_domain`), then the most specific network, then the ASN. A name is a better
//! witness than a network: a provider names only its own outbound servers, while its networks
//! and ASNs may also carry its customers' machines.
//!
//! Invariants: values are stored normalized (lowercase names without the final dot, networks
//! without host bits, ASNs as numbers), so lookups are exact hash lookups: one per label of
//! the PTR name, one per distinct prefix length of the address's family, one for the ASN. A
//! file may give each rule/value only once; the user's file replaces built-in rows with the
//! same rule and value.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;

/// The curated catalog, compiled in.
const BUILTIN_CSV: &str = include_str!("../../data/senders.csv");
/// How errors and evidence name the built-in file.
const BUILTIN_FILE: &str = "built-in senders.csv";

/// The role of a sending service: what kind of mail comes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderKind {
    /// Mailboxes of people and organisations (Gmail, Microsoft 365, Yahoo, iCloud, ...).
    MailboxProvider,
    /// Email service providers for transactional and application mail (SES, SendGrid, ...).
    Esp,
    /// Marketing and newsletter platforms (Mailchimp, Marketing Cloud, Klaviyo, ...).
    Marketing,
    /// CRM, helpdesk, ticketing and other business software that mails for its customers.
    Crm,
    /// Security gateways relaying their customers' mail (Proofpoint, Mimecast, ...).
    SecurityGateway,
    /// Forwarders, relays and mailing lists (MailChannels, Cloudflare Email Routing, ...).
    Forwarder,
    /// Hosting providers and clouds: the mail comes from a machine rented there.
    Hosting,
    /// Large senders of their own mail (social networks, payment services, ...).
    Other,
}

impl SenderKind {
    /// Every kind, in the order of the documentation.
    pub const ALL: [SenderKind; 8] = [
        SenderKind::MailboxProvider,
        SenderKind::Esp,
        SenderKind::Marketing,
        SenderKind::Crm,
        SenderKind::SecurityGateway,
        SenderKind::Forwarder,
        SenderKind::Hosting,
        SenderKind::Other,
    ];

    /// The name used in the CSV files and in `source_ips.sender_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::MailboxProvider => "mailbox_provider",
            SenderKind::Esp => "esp",
            SenderKind::Marketing => "marketing",
            SenderKind::Crm => "crm",
            SenderKind::SecurityGateway => "security_gateway",
            SenderKind::Forwarder => "forwarder",
            SenderKind::Hosting => "hosting",
            SenderKind::Other => "other",
        }
    }
}

impl fmt::Display for SenderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SenderKind {
    type Err = ();

    fn from_str(text: &str) -> Result<SenderKind, ()> {
        SenderKind::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or(())
    }
}

/// The service an address was identified as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderMatch {
    pub name: String,
    pub kind: SenderKind,
    /// The rule that matched, its file and line, and what it rests on, e.g.
    /// `asn 15169 (built-in senders.csv, line 40): AS15169 is Google's`.
    pub evidence: String,
}

/// Why a senders file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendersError {
    #[error("cannot read the senders file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}, line {line}: {problem}")]
    Line {
        /// `built-in senders.csv` or the user file's path.
        file: String,
        line: u64,
        problem: LineProblem,
    },
}

/// What is wrong with one line of a senders file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    #[error("the header has no column `{0}` (the columns are rule,value,service,kind,evidence)")]
    MissingColumn(&'static str),
    #[error("unknown column `{0}` (the columns are rule,value,service,kind,evidence)")]
    UnknownColumn(String),
    #[error("no value in column `{0}`")]
    MissingField(&'static str),
    #[error("unknown rule `{0}` (expected ptr_suffix, ptr_base_domain, cidr or asn)")]
    BadRule(String),
    #[error(
        "unknown kind `{0}` (expected mailbox_provider, esp, marketing, crm, security_gateway, \
         forwarder, hosting or other)"
    )]
    BadKind(String),
    #[error("bad ASN `{value}`: {reason}")]
    BadAsn { value: String, reason: String },
    #[error("bad CIDR `{value}`: {reason}")]
    BadCidr { value: String, reason: String },
    #[error("bad domain name `{value}`: {reason}")]
    BadDomain { value: String, reason: String },
    #[error("bad service name `{value}`: {reason}")]
    BadService { value: String, reason: String },
    #[error("no evidence: every built-in entry says what it rests on")]
    MissingEvidence,
    #[error("{rule} {value} is already given on line {first_line}")]
    Duplicate { rule: &'static str, value: String, first_line: u64 },
    #[error("not readable as CSV: {0}")]
    Csv(String),
}

/// The kind of a rule, as written in the `rule` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RuleKind {
    PtrSuffix,
    PtrBaseDomain,
    Cidr,
    Asn,
}

impl RuleKind {
    fn as_str(self) -> &'static str {
        match self {
            RuleKind::PtrSuffix => "ptr_suffix",
            RuleKind::PtrBaseDomain => "ptr_base_domain",
            RuleKind::Cidr => "cidr",
            RuleKind::Asn => "asn",
        }
    }

    fn parse(text: &str) -> Option<RuleKind> {
        [RuleKind::PtrSuffix, RuleKind::PtrBaseDomain, RuleKind::Cidr, RuleKind::Asn]
            .into_iter()
            .find(|rule| rule.as_str() == text)
    }
}

/// What a rule matches, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RuleKey {
    PtrSuffix(String),
    PtrBaseDomain(String),
    Cidr(IpNet),
    Asn(u32),
}

impl RuleKey {
    fn rule(&self) -> RuleKind {
        match self {
            RuleKey::PtrSuffix(_) => RuleKind::PtrSuffix,
            RuleKey::PtrBaseDomain(_) => RuleKind::PtrBaseDomain,
            RuleKey::Cidr(_) => RuleKind::Cidr,
            RuleKey::Asn(_) => RuleKind::Asn,
        }
    }

    fn value(&self) -> String {
        match self {
            RuleKey::PtrSuffix(name) | RuleKey::PtrBaseDomain(name) => name.clone(),
            RuleKey::Cidr(net) => net.to_string(),
            RuleKey::Asn(asn) => asn.to_string(),
        }
    }

    fn parse(rule: RuleKind, value: &str) -> Result<RuleKey, LineProblem> {
        match rule {
            RuleKind::PtrSuffix => parse_domain(value).map(RuleKey::PtrSuffix),
            RuleKind::PtrBaseDomain => parse_domain(value).map(RuleKey::PtrBaseDomain),
            RuleKind::Cidr => parse_cidr(value).map(RuleKey::Cidr),
            RuleKind::Asn => parse_asn(value).map(RuleKey::Asn),
        }
    }
}

/// One row of a senders file, checked.
#[derive(Debug, Clone)]
struct Row {
    key: RuleKey,
    service: String,
    kind: SenderKind,
    evidence: String,
    line: u64,
}

/// What a matching rule yields.
#[derive(Debug, Clone)]
struct Entry {
    service: String,
    kind: SenderKind,
    /// Rule, value, file and line, and the file's evidence: ready for [`SenderMatch`].
    evidence: String,
}

impl Entry {
    fn new(row: Row, file: &str) -> Entry {
        let mut evidence = format!("{} {} ({file}, line {})", row.key.rule().as_str(), row.key.value(), row.line);
        if !row.evidence.is_empty() {
            evidence.push_str(": ");
            evidence.push_str(&row.evidence);
        }
        Entry { service: row.service, kind: row.kind, evidence }
    }

    fn to_match(&self) -> SenderMatch {
        SenderMatch { name: self.service.clone(), kind: self.kind, evidence: self.evidence.clone() }
    }
}

/// The known senders: the built-in catalog, possibly extended by a user file.
#[derive(Debug)]
pub struct Catalog {
    ptr_suffixes: HashMap<String, Entry>,
    ptr_base_domains: HashMap<String, Entry>,
    networks: HashMap<IpNet, Entry>,
    /// The distinct prefix lengths of `networks`, longest first, per family.
    v4_prefix_lens: Vec<u8>,
    v6_prefix_lens: Vec<u8>,
    asns: HashMap<u32, Entry>,
}

impl Catalog {
    /// The catalog in the repository (`ingest/data/senders.csv`).
    pub fn builtin() -> Result<Catalog, SendersError> {
        let rows = parse_rows(BUILTIN_CSV, BUILTIN_FILE, Evidence::Required)?;
        let mut catalog = Catalog {
            ptr_suffixes: HashMap::new(),
            ptr_base_domains: HashMap::new(),
            networks: HashMap::new(),
            v4_prefix_lens: Vec::new(),
            v6_prefix_lens: Vec::new(),
            asns: HashMap::new(),
        };
        catalog.insert_all(rows, BUILTIN_FILE);
        Ok(catalog)
    }

    /// Adds the rules of the user's file (same columns; evidence optional); a rule with the
    /// same rule and value as a built-in one replaces it.
    pub fn with_user_file(mut self, path: &Path) -> Result<Catalog, SendersError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SendersError::Read { path: path.to_path_buf(), source })?;
        let file = path.display().to_string();
        // Spreadsheets often save CSV with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let rows = parse_rows(text, &file, Evidence::Optional)?;
        self.insert_all(rows, &file);
        Ok(self)
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.ptr_suffixes.len() + self.ptr_base_domains.len() + self.networks.len() + self.asns.len()
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The service `ip` belongs to, by the most precise rule that matches (see the module
    /// documentation), or `None`. `ptr_name` should be forward-confirmed.
    pub fn identify(
        &self,
        ip: IpAddr,
        ptr_name: Option<&str>,
        ptr_base_domain: Option<&str>,
        asn: Option<u32>,
    ) -> Option<SenderMatch> {
        self.by_name(ptr_name, ptr_base_domain)
            .or_else(|| self.by_network(ip))
            .or_else(|| asn.and_then(|asn| self.asns.get(&asn)))
            .map(Entry::to_match)
    }

    fn insert_all(&mut self, rows: Vec<Row>, file: &str) {
        for row in rows {
            let key = row.key.clone();
            let entry = Entry::new(row, file);
            match key {
                RuleKey::PtrSuffix(name) => {
                    self.ptr_suffixes.insert(name, entry);
                }
                RuleKey::PtrBaseDomain(name) => {
                    self.ptr_base_domains.insert(name, entry);
                }
                RuleKey::Cidr(net) => {
                    self.networks.insert(net, entry);
                }
                RuleKey::Asn(asn) => {
                    self.asns.insert(asn, entry);
                }
            }
        }
        let prefix_lens = |v4: bool| {
            let mut lens: Vec<u8> =
                self.networks.keys().filter(|net| matches!(net, IpNet::V4(_)) == v4).map(IpNet::prefix_len).collect();
            lens.sort_unstable_by(|a, b| b.cmp(a));
            lens.dedup();
            lens
        };
        self.v4_prefix_lens = prefix_lens(true);
        self.v6_prefix_lens = prefix_lens(false);
    }

    /// The longest PTR suffix or base domain rule that matches.
    fn by_name(&self, ptr_name: Option<&str>, ptr_base_domain: Option<&str>) -> Option<&Entry> {
        let lookup = |suffix: &str| self.ptr_suffixes.get(suffix).or_else(|| self.ptr_base_domains.get(suffix));
        if let Some(name) = ptr_name.map(normalize_name) {
            let mut suffix = name.as_str();
            loop {
                if let Some(entry) = lookup(suffix) {
                    return Some(entry);
                }
                match suffix.split_once('.') {
                    Some((_, rest)) => suffix = rest,
                    None => break,
                }
            }
        }
        ptr_base_domain.map(normalize_name).and_then(|base| lookup(&base))
    }

    /// The most specific network rule that holds `ip`.
    fn by_network(&self, ip: IpAddr) -> Option<&Entry> {
        let ip = ip.to_canonical();
        let lens = match ip {
            IpAddr::V4(_) => &self.v4_prefix_lens,
            IpAddr::V6(_) => &self.v6_prefix_lens,
        };
        lens.iter().find_map(|&len| {
            let net = IpNet::new(ip, len).ok()?.trunc();
            self.networks.get(&net)
        })
    }
}

/// Lowercase, without the final dot.
fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a file's rows must carry evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    Required,
    Optional,
}

/// The columns of a senders file.
const COLUMNS: [&str; 5] = ["rule", "value", "service", "kind", "evidence"];

/// Reads and checks every row of a senders file; `file` names it in errors.
fn parse_rows(text: &str, file: &str, evidence: Evidence) -> Result<Vec<Row>, SendersError> {
    let at = |line: u64, problem: LineProblem| SendersError::Line { file: file.to_string(), line, problem };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let mut next = move || -> Option<Result<(u64, csv::StringRecord), SendersError>> {
        records.next().map(|record| match record {
            Ok(record) => Ok((record.position().map_or(0, |p| p.line()), record)),
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                Err(at(line, LineProblem::Csv(err.to_string())))
            }
        })
    };

    // The header: the columns may come in any order; evidence may be left out of a user file.
    let Some(header) = next() else {
        return Err(at(1, LineProblem::MissingColumn("rule")));
    };
    let (header_line, header) = header?;
    let position = |name: &str| header.iter().position(|column| column.eq_ignore_ascii_case(name));
    if let Some(unknown) = header.iter().find(|column| !COLUMNS.iter().any(|known| column.eq_ignore_ascii_case(known)))
    {
        return Err(at(header_line, LineProblem::UnknownColumn(unknown.to_string())));
    }
    let mut index = [None; 5];
    for (slot, name) in index.iter_mut().zip(COLUMNS) {
        *slot = position(name);
        if slot.is_none() && (name != "evidence" || evidence == Evidence::Required) {
            return Err(at(header_line, LineProblem::MissingColumn(name)));
        }
    }

    let mut rows = Vec::new();
    let mut first_lines: HashMap<RuleKey, u64> = HashMap::new();
    while let Some(record) = next() {
        let (line, record) = record?;
        let field = |column: usize| index[column].and_then(|i| record.get(i)).unwrap_or_default();
        let required = |column: usize| match field(column) {
            "" => Err(at(line, LineProblem::MissingField(COLUMNS[column]))),
            text => Ok(text),
        };
        let rule_text = required(0)?;
        let rule = RuleKind::parse(&rule_text.to_ascii_lowercase())
            .ok_or_else(|| at(line, LineProblem::BadRule(rule_text.to_string())))?;
        let key = RuleKey::parse(rule, required(1)?).map_err(|problem| at(line, problem))?;
        let service = parse_service(required(2)?).map_err(|problem| at(line, problem))?;
        let kind_text = required(3)?;
        let kind =
            kind_text.parse::<SenderKind>().map_err(|()| at(line, LineProblem::BadKind(kind_text.to_string())))?;
        let evidence_text = field(4);
        if evidence_text.is_empty() && evidence == Evidence::Required {
            return Err(at(line, LineProblem::MissingEvidence));
        }
        if let Some(&first_line) = first_lines.get(&key) {
            return Err(at(line, LineProblem::Duplicate { rule: key.rule().as_str(), value: key.value(), first_line }));
        }
        first_lines.insert(key.clone(), line);
        rows.push(Row { key, service, kind, evidence: evidence_text.to_string(), line });
    }
    Ok(rows)
}

/// A PTR suffix or base domain: at least two labels of letters, digits, hyphens (and the
/// underscores some PTR names carry), lowercased, without leading or final dot.
fn parse_domain(value: &str) -> Result<String, LineProblem> {
    let bad = |reason: &str| LineProblem::BadDomain { value: value.to_string(), reason: reason.to_string() };
    let name = value.trim_start_matches('.').trim_end_matches('.');
    let name = name.to_ascii_lowercase();
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("a single label would match whole top-level domains; give at least two labels"));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("only letters, digits, hyphens and underscores may appear in a label \
                 (write internationalized names in their xn-- form)"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with a hyphen"));
        }
    }
    Ok(name)
}

/// A network in CIDR notation (a bare address is a host route); host bits must be zero.
fn parse_cidr(value: &str) -> Result<IpNet, LineProblem> {
    let bad = |reason: String| LineProblem::BadCidr { value: value.to_string(), reason };
    let net = match value.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match value.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(bad("not an IPv4 or IPv6 network such as 192.0.2.0/24 or 2001:db8::/32".into()));
            }
        },
    };
    if net.trunc() != net {
        return Err(bad(format!("host bits are set (the network is {})", net.trunc())));
    }
    Ok(net)
}

/// An ASN, `15169` or `AS15169`.
fn parse_asn(value: &str) -> Result<u32, LineProblem> {
    let bad = |reason: &str| LineProblem::BadAsn { value: value.to_string(), reason: reason.to_string() };
    let digits = value.strip_prefix("AS").or_else(|| value.strip_prefix("as")).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a number such as 15169 or AS15169"));
    }
    let asn = digits.parse::<u32>().map_err(|_| bad("larger than 4294967295"))?;
    // 0 (RFC 7607), AS_TRANS (RFC 6793) and the last of each range (RFC 7300) never originate
    // routes, so a rule on them could never be right.
    if matches!(asn, 0 | 23456 | 65535 | u32::MAX) {
        return Err(bad("reserved: no network is announced by it"));
    }
    Ok(asn)
}

/// A service name: printable, at most 80 characters.
fn parse_service(value: &str) -> Result<String, LineProblem> {
    let bad = |reason: &str| LineProblem::BadService { value: value.to_string(), reason: reason.to_string() };
    if value.chars().count() > 80 {
        return Err(bad("longer than 80 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests;
