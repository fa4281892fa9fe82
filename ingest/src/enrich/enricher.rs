//! The enricher: everything known of a batch of source addresses, from reverse DNS, the
//! geolocation databases and the known-senders catalog.
//!
//! Input: [`Task`]s (an address and the PTR answer stored from an earlier lookup, if any).
//! Output: one [`Enrichment`] per task, in the same order: the new PTR answer (`None` when DNS
//! is off), the geolocation and network facts (`None` without any database; a part no database
//! knows has the first database consulted as its source), and the known
//! sender, identified from the forward-confirmed PTR name and its base domain (the new answer,
//! or the stored one when the lookup failed transiently or DNS is off) and the ASN.
//!
//! Reverse DNS is the only slow part: the lookups of a batch run concurrently, bounded by
//! [`DnsSettings::concurrency`], each within its timeouts (see [`super::dns`]); a lookup that
//! times out is reported as such (the store schedules it again later, with backoff). The MMDB
//! and catalog parts are in-memory lookups. Nothing here touches the database: the store
//! claims the due addresses and records the enrichments (`dmarcpipe_store::enrich`).
//!
//! Without any geolocation database, [`Enricher::new`] logs one warning per process saying
//! how to get one; countries and networks then stay unknown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;

use super::dns::{DnsError, DnsSettings, PtrAnswer, PtrStatus, ReverseResolver};
use super::geo::{GeoDatabases, GeoError, GeoFacts, GeoPaths};
use super::senders::{Catalog, SenderMatch, SendersError};

/// What the enricher uses: DNS (or none), the database files, the user's senders file.
#[derive(Debug, Clone, Default)]
pub struct EnricherSettings {
    /// `None`: no reverse DNS.
    pub dns: Option<DnsSettings>,
    pub geo: GeoPaths,
    /// Where the default databases were looked for, for the warning when there is none.
    pub geo_dir: Option<PathBuf>,
    pub senders_file: Option<PathBuf>,
}

/// Why the enricher cannot start; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnricherError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Geo(#[from] GeoError),
    #[error(transparent)]
    Senders(#[from] SendersError),
}

/// The reverse DNS answer stored for an address by an earlier lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownPtr {
    pub name: Option<String>,
    pub confirmed: Option<bool>,
    pub base_domain: Option<String>,
}

/// One address to enrich.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub ip: IpAddr,
    pub known: KnownPtr,
}

/// What was found about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    pub ip: IpAddr,
    /// The new reverse DNS answer; `None` when DNS is off.
    pub ptr: Option<PtrAnswer>,
    /// Geography and network; `None` when no database is open.
    pub geo: Option<GeoFacts>,
    pub sender: Option<SenderMatch>,
}

impl Enrichment {
    /// Whether the reverse DNS lookup failed in a way worth retrying later.
    pub fn ptr_transient(&self) -> bool {
        self.ptr.as_ref().is_some_and(|answer| answer.status.is_transient())
    }
}

/// Reverse DNS, geolocation databases and the senders catalog, opened once.
pub struct Enricher {
    resolver: Option<ReverseResolver>,
    geo: GeoDatabases,
    /// The first database consulted for an address: the source recorded when none placed it.
    consulted: Option<String>,
    catalog: Catalog,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("dns", &self.resolver.is_some())
            .field("geo", &self.geo)
            .field("senders", &self.catalog.len())
            .finish()
    }
}

static NO_DATABASE_WARNING: Once = Once::new();

/// Logs, once per process, that no geolocation database is open and how to get one.
fn warn_no_database(looked_in: Option<&Path>) {
    NO_DATABASE_WARNING.call_once(|| {
        let place = looked_in.map_or_else(
            || "no default directory (HOME is not set)".to_owned(),
            |dir| format!("none in {}", dir.display()),
        );
        tracing::warn!(
            "No geolocation database ({place}): the countries, cities and networks of sources stay unknown. \
             Get a free one with `dmarcpipe geoip fetch` (or `make geoip`), or set city_db, country_db or asn_db \
             in the [enrich] section of the configuration."
        );
    });
}

impl Enricher {
    /// Opens the databases and the catalog, and sets up the resolver. A missing, unreadable or
    /// corrupt file is an error naming it; no database at all is a warning (once per process).
    pub fn new(settings: &EnricherSettings) -> Result<Enricher, EnricherError> {
        let geo = GeoDatabases::open(&settings.geo)?;
        if geo.is_empty() {
            warn_no_database(settings.geo_dir.as_deref());
        }
        let mut catalog = Catalog::builtin()?;
        if let Some(file) = &settings.senders_file {
            catalog = catalog.with_user_file(file)?;
        }
        let resolver = settings.dns.as_ref().map(ReverseResolver::new).transpose()?;
        let consulted = geo.sources().into_iter().next();
        Ok(Enricher { resolver, geo, consulted, catalog })
    }

    /// Whether reverse DNS is looked up.
    pub fn has_dns(&self) -> bool {
        self.resolver.is_some()
    }

    /// The open geolocation databases (their sources and attributions).
    pub fn geo(&self) -> &GeoDatabases {
        &self.geo
    }

    /// Enriches every task; the result is in the order of `tasks`.
    pub async fn enrich(&self, tasks: &[Task]) -> Vec<Enrichment> {
        let mut answers: HashMap<IpAddr, PtrAnswer> = match &self.resolver {
            Some(resolver) => {
                let ips: Vec<IpAddr> = tasks.iter().map(|task| task.ip).collect();
                resolver.lookup_many(&ips).await.into_iter().collect()
            }
            None => HashMap::new(),
        };
        tasks
            .iter()
            .map(|task| {
                let ptr = answers.remove(&task.ip);
                let geo = (!self.geo.is_empty()).then(|| self.locate(task.ip));
                let sender = self.identify(task, ptr.as_ref(), geo.as_ref());
                Enrichment { ip: task.ip, ptr, geo, sender }
            })
            .collect()
    }

    /// Geography and network of `ip`; where no database knows a part, its source is the first
    /// database consulted (so that the row says what it was looked up in).
    fn locate(&self, ip: IpAddr) -> GeoFacts {
        let mut facts = self.geo.lookup(ip);
        if facts.geo_source.is_none() {
            facts.geo_source.clone_from(&self.consulted);
        }
        if facts.asn_source.is_none() {
            facts.asn_source.clone_from(&self.consulted);
        }
        facts
    }

    /// The sender, from the forward-confirmed name of the new answer (the stored one when the
    /// lookup failed transiently or was not made) and the ASN.
    fn identify(&self, task: &Task, answer: Option<&PtrAnswer>, geo: Option<&GeoFacts>) -> Option<SenderMatch> {
        let (name, base_domain) = match answer {
            Some(answer) if !answer.status.is_transient() => {
                let confirmed = answer.confirmed == Some(true);
                (answer.name.as_deref().filter(|_| confirmed), answer.base_domain.as_deref().filter(|_| confirmed))
            }
            _ => {
                let confirmed = task.known.confirmed == Some(true);
                (
                    task.known.name.as_deref().filter(|_| confirmed),
                    task.known.base_domain.as_deref().filter(|_| confirmed),
                )
            }
        };
        self.catalog.identify(task.ip, name, base_domain, geo.and_then(|facts| facts.asn))
    }
}

/// Counts of what a run of the enricher found, for its summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Addresses enriched.
    pub ips: u64,
    pub ptr_found: u64,
    pub ptr_nxdomain: u64,
    pub ptr_no_answer: u64,
    pub ptr_timeout: u64,
    pub ptr_error: u64,
    /// Of the PTR names found, those that resolve back to the address.
    pub ptr_confirmed: u64,
    pub with_country: u64,
    pub with_asn: u64,
    pub with_sender: u64,
}

impl Tally {
    pub fn add(&mut self, enrichments: &[Enrichment]) {
        for enrichment in enrichments {
            self.ips += 1;
            if let Some(answer) = &enrichment.ptr {
                match answer.status {
                    PtrStatus::Found => self.ptr_found += 1,
                    PtrStatus::NxDomain => self.ptr_nxdomain += 1,
                    PtrStatus::NoAnswer => self.ptr_no_answer += 1,
                    PtrStatus::Timeout => self.ptr_timeout += 1,
                    PtrStatus::Error => self.ptr_error += 1,
                }
                if answer.confirmed == Some(true) {
                    self.ptr_confirmed += 1;
                }
            }
            if let Some(geo) = &enrichment.geo {
                self.with_country += u64::from(geo.country_code.is_some());
                self.with_asn += u64::from(geo.asn.is_some());
            }
            self.with_sender += u64::from(enrichment.sender.is_some());
        }
    }
}
