//! Printing the visual report to PDF with headless Chromium (`report --format pdf`, and the
//! digest's attachment).
//!
//! Why this route: the PDF is the same page the HTML report is (one layout, its print CSS:
//! A4, no page breaks inside a section, colours kept), laid out by a real browser engine with
//! its fonts and SVG; it needs no Rust dependency, where the pure-Rust routes either lay out
//! HTML poorly (printpdf) or need a second template language and a large dependency tree
//! (typst). The cost is an external program: Debian's `chromium` (`scripts/packages.sh`
//! installs it), found on `PATH` or through `DMARCPIPE_CHROMIUM`.
//!
//! The page is written to a private temporary directory with a throwaway browser profile, and
//! printed from there; it is our own self-contained file (no script needed, nothing fetched),
//! so the browser's sandbox is turned off, which it requires when run as root (containers).
//! The browser gets [`TIMEOUT`] to finish; its output must be a PDF.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The names Chromium goes by, in the order they are looked for on `PATH`.
const NAMES: [&str; 5] =
    ["chromium", "chromium-browser", "chromium-headless-shell", "google-chrome-stable", "google-chrome"];

/// How long the browser may take to print.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A Chromium program.
#[derive(Debug, Clone)]
pub struct Chromium {
    program: PathBuf,
}

impl Chromium {
    /// `DMARCPIPE_CHROMIUM`, else the first of [`NAMES`] on `PATH`; an error saying what to
    /// install otherwise.
    pub fn find() -> Result<Chromium> {
        if let Some(program) = std::env::var_os("DMARCPIPE_CHROMIUM").filter(|value| !value.is_empty()) {
            let program = PathBuf::from(program);
            if !program.is_file() {
                bail!(
                    "DMARCPIPE_CHROMIUM is {}, which is not a file: point it at a Chromium program or unset it",
                    program.display()
                );
            }
            return Ok(Chromium { program });
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for name in NAMES {
            if let Some(program) = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file()) {
                return Ok(Chromium { program });
            }
        }
        bail!(
            "the PDF is printed by headless Chromium, and none was found (looked for {} on PATH): install \
             Debian's `chromium` package (`apt-get install chromium fonts-liberation`, or scripts/packages.sh), \
             or set DMARCPIPE_CHROMIUM to the program; --format html needs nothing",
            NAMES.join(", ")
        )
    }

    /// Prints `html` (a self-contained page) to a PDF file at `output`.
    pub fn print_to_pdf(&self, html: &str, output: &Path) -> Result<()> {
        let bytes = self.pdf_bytes(html)?;
        std::fs::write(output, bytes).with_context(|| format!("cannot write {}", output.display()))
    }

    /// The PDF of `html`.
    pub fn pdf_bytes(&self, html: &str) -> Result<Vec<u8>> {
        let dir = tempfile::Builder::new()
            .prefix(".dmarcpipe-pdf-")
            .tempdir()
            .context("cannot make a temporary directory")?;
        let page = dir.path().join("report.html");
        let printed = dir.path().join("report.pdf");
        std::fs::write(&page, html).with_context(|| format!("cannot write {}", page.display()))?;
        // To a file rather than a pipe, which a chatty browser could fill while we wait.
        let log = dir.path().join("chromium.log");
        let stderr = std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
        let mut child = Command::new(&self.program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--no-pdf-header-footer",
            ])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg(format!("--print-to-pdf={}", printed.display()))
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                // Ignored: it may have ended meanwhile.
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not print the PDF within {} s", self.program.display(), TIMEOUT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let errors = std::fs::read_to_string(&log).unwrap_or_default();
        let bytes = std::fs::read(&printed).unwrap_or_default();
        if !status.success() || !bytes.starts_with(b"%PDF-") {
            let last = errors.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
            bail!("{} could not print the PDF ({status}): {last}", self.program.display());
        }
        Ok(bytes)
    }
}
