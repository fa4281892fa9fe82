//! MaxMind DB (MMDB) files made to order for tests and the benchmark, written by Debian's
//! MaxMind::DB::Writer through `ingest/tests/fixtures/write-mmdb.pl` (package
//! `libmaxmind-db-writer-perl`, which `scripts/packages.sh` installs).
//!
//! A spec is the JSON the script reads: `ip_version`, `database_type`, optional
//! `description`, `types` (the MaxMind type of every key used) and `networks`
//! (`[["192.0.2.0/24", {record}], ...]`). [`geoip2_types`] has the types of the GeoIP2 City,
//! Country and ASN layouts.

use std::io;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The writer script.
pub const WRITER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/write-mmdb.pl");

/// Writes the MMDB `spec` describes to `out` (the spec goes beside it, as `<out>.spec.json`).
pub fn write_mmdb(spec: &Value, out: &Path) -> io::Result<()> {
    let mut spec_path = out.as_os_str().to_owned();
    spec_path.push(".spec.json");
    std::fs::write(&spec_path, spec.to_string())?;
    let output = Command::new("perl")
        .arg(WRITER)
        .arg(&spec_path)
        .arg(out)
        .output()
        .map_err(|error| io::Error::new(error.kind(), format!("cannot run perl for {WRITER}: {error}")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{WRITER} failed for {} ({}): {}; scripts/packages.sh installs libmaxmind-db-writer-perl",
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// The MaxMind types of the keys of GeoIP2 City, Country and ASN records.
pub fn geoip2_types() -> Value {
    json!({
        "country": "map", "city": "map", "location": "map", "subdivisions": ["array", "map"],
        "iso_code": "utf8_string", "names": "map", "en": "utf8_string", "de": "utf8_string",
        "geoname_id": "uint32", "latitude": "double", "longitude": "double",
        "autonomous_system_number": "uint32", "autonomous_system_organization": "utf8_string",
    })
}
