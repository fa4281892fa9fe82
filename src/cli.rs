//! Command-line arguments. Precedence for every setting: flag, then its environment variable
//! (`DMARCPIPE_*`, `DATABASE_URL`), then the config file, then the default.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Commands that use no database: `--database-url` is not listed in their help.
const NO_DATABASE: [&str; 2] = ["parse", "keygen"];

/// The command line as `--help` shows it: `--database-url` only where a database is used, and
/// no `[env: NAME=]` (clap prints the variable's value there, empty when it is not set, and it
/// may hold a secret).
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    // Global arguments reach the subcommands when the command is built: build first, then
    // adjust each one in place (which keeps clap's index of the arguments valid).
    command.build();
    each_argument(command, &|command, arg| {
        let arg = if arg.get_env().is_some() { arg.hide_env_values(true) } else { arg };
        if NO_DATABASE.contains(&command) && arg.get_id() == "database_url" { arg.hide(true) } else { arg }
    })
}

/// `command` with `change(name of its command, argument)` applied to every argument of it and
/// of its subcommands.
fn each_argument(command: clap::Command, change: &dyn Fn(&str, clap::Arg) -> clap::Arg) -> clap::Command {
    let name = command.get_name().to_owned();
    command.mut_args(|arg| change(&name, arg)).mut_subcommands(|sub| each_argument(sub, change))
}

impl Cli {
    /// The arguments of this process; on a usage error, clap's message and exit code 2.
    pub fn from_command_line() -> Cli {
        let matches = command().try_get_matches().unwrap_or_else(|err| {
            if !err.use_stderr() {
                err.exit() // --help, --version
            }
            // clap puts in the usage line of an error every argument whose variable is set, as
            // if it had been required (`Usage: dmarcpipe import --database-url <URL> <PATH>...`):
            // the message comes from the arguments alone, with the variables of required
            // arguments only (an error due to a variable's value stays as it was).
            let plain = each_argument(command(), &|_, arg| if arg.is_required_set() { arg } else { arg.env(None) });
            match plain.try_get_matches() {
                Err(plain) => plain.exit(),
                Ok(_) => err.exit(),
            }
        });
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "dmarcpipe",
    version,
    about = "DMARC report pipeline: receive, unpack, normalize into PostgreSQL, roll up."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "DMARCPIPE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// PostgreSQL connection URL (as for psql and sqlx).
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations (every command that needs the schema does this itself).
    Migrate,
    /// Import reports from files, directories, mbox files, maildirs, or one message on stdin (`-`).
    Import(ImportArgs),
    /// Print rollups of aggregate reports, with failure report counts where they fit, or of
    /// SMTP TLS reports (`--tls`).
    Report(ReportArgs),
    /// List failure (forensic) reports, or open one with an age identity.
    #[command(subcommand)]
    Forensic(ForensicCommand),
    /// Make an age identity for sealing forensic samples; prints its recipient.
    Keygen(KeygenArgs),
    /// Be the mail server of the report mailbox: receive reports over SMTP (and LMTP) and store
    /// each before acknowledging it.
    Serve(ServeArgs),
    /// Read every configured IMAP mailbox (`[[imap]]`) once: store what is there, move each
    /// message to the folder of its outcome after its commit, and exit (for cron or a timer).
    Fetch(FetchArgs),
    /// Re-run rejected inputs whose bytes were kept (after an upgrade fixed the parser).
    Reprocess(ReprocessArgs),
    /// Mail a digest of the last day, week or month through the SMTP relay of `[digest]`:
    /// headline figures against the period before, results, top and failing sources, what
    /// to fix, and the full report attached.
    Digest(DigestArgs),
    /// Unpack and parse inputs without a database and print what was found: one JSON array
    /// with an object per input (a file, a message of an mbox or maildir), or JSON Lines.
    Parse(ParseArgs),
    /// Geolocation databases: `geoip fetch` gets a free one.
    #[command(subcommand)]
    Geoip(crate::commands::geoip::GeoipCommand),
    /// Look up what is due of the source addresses (reverse DNS, geolocation, network, known
    /// sender), or every one again (--all), or those with stale parts (--stale); print a
    /// summary and the attribution the geolocation data asks for.
    Enrich(EnrichArgs),
}

#[derive(Debug, Args)]
pub struct EnrichArgs {
    /// Every address again, and first queue the sources of records stored before the queue
    /// existed.
    #[arg(long, conflicts_with = "stale")]
    pub all: bool,

    /// Addresses with a part that expired (PTR TTL, refresh_days) or that came from another
    /// geolocation database than the one open now, besides those due.
    #[arg(long)]
    pub stale: bool,

    /// At most this many addresses.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// No reverse DNS lookups (geolocation and senders only).
    #[arg(long)]
    pub no_dns: bool,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--no-enrich` of the commands that store reports.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct NoEnrichArg {
    /// Do not enrich the new source addresses at the end (they stay queued for `dmarcpipe
    /// enrich` or `serve`); also DMARCPIPE_NO_ENRICH=1.
    #[arg(long)]
    pub no_enrich: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files, directories, mbox files, maildirs; `-` reads one message from stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Inputs processed at once.
    #[arg(short, long, env = "DMARCPIPE_JOBS", value_name = "N")]
    pub jobs: Option<usize>,

    /// No progress bar and no summary text (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Skip files found in directories whose name matches (`*` is a wildcard); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    #[command(flatten)]
    pub enrich: NoEnrichArg,

    #[command(flatten)]
    pub limits: LimitArgs,
}

impl ImportArgs {
    /// `import -`: one message on stdin, as an MTA pipe delivers it.
    pub fn reads_stdin(&self) -> bool {
        self.paths.len() == 1 && self.paths[0] == std::path::Path::new("-")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollupBy {
    /// DMARC result: pass, fail, or unknown (records without a DMARC evaluation: neither
    /// aligned result was reported).
    Result,
    /// Source IP address (empty in CSV, null in JSON, for records without one), with its
    /// host (PTR name), sender, country and ASN.
    Source,
    /// Reporting organization.
    Org,
    /// Policy domain.
    Domain,
    /// UTC day.
    Day,
    /// Base domain of the source's PTR name (google.com for mail-sor-f41.google.com).
    Host,
    /// Known sending service, with its kind.
    Sender,
    /// Country of the source (ISO code), with its name.
    Country,
    /// Autonomous system of the source, with its organisation.
    Asn,
    /// Latitude/longitude points of the sources, with country and city: the data of a map.
    Location,
    /// Traffic class: compliant, forwarded, misconfigured or unknown (rules in the README),
    /// with the messages' share and the number of sources.
    Class,
    /// Auth-Failure type of failure reports (dmarc, spf, bodyhash, ...).
    AuthFailure,
    /// With --tls: the policy domain of TLS report policies (`domain` is the same).
    PolicyDomain,
    /// With --tls: the result type of TLS failure details.
    ResultType,
    /// With --tls: the receiving MX host of TLS failure details.
    MxHost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// What to group by (table, CSV and JSON; the visual report, html and pdf, has every view).
    #[arg(long, value_enum)]
    pub by: Option<RollupBy>,

    /// SMTP TLS reports (RFC 8460) instead of DMARC: sessions, failures and the failure share
    /// by policy-domain, result-type, mx-host, org or day.
    #[arg(long)]
    pub tls: bool,

    /// Only this policy domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// From this day on (UTC days of the report period's start): `2026-11-01`, `30d` (days
    /// ago), `2w`, `36h`, `today`, `yesterday`.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Before this day (exclusive), same forms as --since; must be after --since.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,

    /// Table for a terminal; CSV and JSON have the columns `messages, dmarc_pass, dmarc_fail,
    /// disposition_none, disposition_quarantine, disposition_reject, dkim_aligned,
    /// spf_aligned, records` after the key and its details (and `forensic` by domain, source
    /// and day; `sources` by host, sender, country, asn and location). html: the visual report,
    /// one self-contained page with every view (no --by); pdf: its executive summary printed
    /// by headless Chromium (needs -o).
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,

    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    Html,
    Pdf,
}

#[derive(Debug, Subcommand)]
pub enum ForensicCommand {
    /// List failure reports (clear metadata only), newest first.
    List(ForensicListArgs),
    /// Open a failure report's sealed sample and print it: the original's headers (and body).
    Show(ForensicShowArgs),
}

#[derive(Debug, Args)]
pub struct ForensicListArgs {
    /// Only reports about this domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// Arrived from this day on (UTC): `2026-11-01`, `30d`, `2w`, `36h`, `today`, `yesterday`.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Arrived before this day (exclusive), same forms as --since; must be after --since.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,

    /// At most this many reports.
    #[arg(long, value_name = "N")]
    pub limit: Option<i64>,

    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ForensicShowArgs {
    /// The report's id (`forensic list`, `dmarc_forensic.id`).
    #[arg(value_name = "ID")]
    pub id: i64,

    /// age identity file (from `dmarcpipe keygen` or `age-keygen`).
    #[arg(short, long, env = "DMARCPIPE_IDENTITY", value_name = "FILE")]
    pub identity: PathBuf,

    /// Also print the original's body and the report's text.
    #[arg(long)]
    pub body: bool,

    /// Print the whole report mail as received instead (for a mail client or `formail`).
    #[arg(long, conflicts_with = "body")]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to this file (mode 0600; never overwritten) and print only the
    /// recipient on stdout. Without it, the identity goes to stdout as `age-keygen` does.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Flags of `serve`; each list given replaces the `[smtp]` list of the config file. The
/// `[[imap]]` mailboxes of the config file are watched beside the listeners (or alone).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for SMTP (`0.0.0.0:25`, `[::]:25`); repeatable.
    #[arg(long, visible_alias = "smtp", env = "DMARCPIPE_SMTP_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub smtp_listen: Vec<String>,

    /// Address to listen on for LMTP, for an MTA that delivers to us; repeatable.
    #[arg(long, env = "DMARCPIPE_LMTP_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub lmtp_listen: Vec<String>,

    /// Accept mail for this address, or every address of `@DOMAIN`; repeatable. Nothing else
    /// is accepted (never a relay).
    #[arg(long, env = "DMARCPIPE_SMTP_RECIPIENT", value_name = "ADDRESS|@DOMAIN", value_delimiter = ',')]
    pub smtp_recipient: Vec<String>,

    /// The server's name in its greeting (default: this machine's hostname).
    #[arg(long, env = "DMARCPIPE_SMTP_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// PEM certificate chain for STARTTLS (with --tls-key).
    #[arg(long, env = "DMARCPIPE_TLS_CERTIFICATE", value_name = "FILE")]
    pub tls_certificate: Option<PathBuf>,

    /// PEM private key for STARTTLS.
    #[arg(long, env = "DMARCPIPE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Largest message accepted (SIZE); larger ones get 552.
    #[arg(long, env = "DMARCPIPE_SMTP_MAX_MESSAGE_BYTES", value_name = "SIZE", value_parser = size)]
    pub smtp_max_message_bytes: Option<u64>,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Only this mailbox (the `name` of its `[[imap]]` section); repeatable.
    #[arg(long = "mailbox", value_name = "NAME")]
    pub mailboxes: Vec<String>,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// No summary text (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub enrich: NoEnrichArg,

    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// age identity file, to open inputs whose kept bytes are sealed.
    #[arg(short, long, env = "DMARCPIPE_IDENTITY", value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Only these inputs (ids of dmarc_inputs); default: every rejected input with kept bytes.
    #[arg(long = "input", value_name = "ID")]
    pub inputs: Vec<i64>,

    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The period of a digest: it ends at the start of today (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DigestPeriod {
    /// Yesterday.
    Day,
    /// The last seven days.
    Week,
    /// The last month (from the same day of the month before).
    Month,
}

/// Flags of `digest`; the relay flags override `[digest]` and `DMARCPIPE_DIGEST_*`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Recipient address (`a@example.com` or `Name <a@example.com>`); repeatable, or
    /// comma-separated (default: `to` of `[digest]`).
    #[arg(long, value_name = "ADDRESS", num_args = 1.., value_delimiter = ',')]
    pub to: Vec<String>,

    /// Only this policy domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// The period, ending at the start of today (UTC); compared with the period before it.
    #[arg(long, value_enum, default_value = "week")]
    pub period: DigestPeriod,

    /// SMTP relay host name or address.
    #[arg(long, value_name = "HOST")]
    pub relay: Option<String>,

    /// SMTP relay port (default: 587 with starttls, 465 with tls, 25 with none).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// How to talk to the relay: none, starttls (default) or tls (implicit TLS).
    #[arg(long, value_name = "MODE")]
    pub tls: Option<String>,

    /// User name for SMTP AUTH (the password: `[digest]` password_file, or
    /// DMARCPIPE_DIGEST_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,

    /// Sender address (`DMARC digest <dmarc@example.com>`).
    #[arg(long, value_name = "ADDRESS")]
    pub from: Option<String>,

    /// Write the message (RFC 5322, as it would be sent) to this file instead of sending it.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Files, directories, mbox files, maildirs.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// One JSON object per line (JSON Lines) instead of one JSON array.
    #[arg(long)]
    pub jsonl: bool,

    /// Skip files found in directories whose name matches (`*` is a wildcard); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Safety limits; sizes take K, M, G suffixes (powers of two).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Largest message, archive or stdin input read into memory.
    #[arg(long, env = "DMARCPIPE_MAX_MESSAGE_BYTES", value_name = "SIZE", value_parser = size)]
    pub max_message_bytes: Option<u64>,
    /// Largest total decompressed size of one input.
    #[arg(long, env = "DMARCPIPE_MAX_DECOMPRESSED_BYTES", value_name = "SIZE", value_parser = size)]
    pub max_decompressed_bytes: Option<u64>,
    /// Largest compression ratio (decompression bombs).
    #[arg(long, env = "DMARCPIPE_MAX_COMPRESSION_RATIO", value_name = "N")]
    pub max_compression_ratio: Option<u64>,
    /// Most entries of one zip archive.
    #[arg(long, env = "DMARCPIPE_MAX_ZIP_ENTRIES", value_name = "N")]
    pub max_zip_entries: Option<u64>,
    /// Deepest nesting of containers (gzip in zip in mail ...).
    #[arg(long, env = "DMARCPIPE_MAX_NESTING", value_name = "N")]
    pub max_nesting: Option<u32>,
    /// Deepest MIME nesting.
    #[arg(long, env = "DMARCPIPE_MAX_MIME_DEPTH", value_name = "N")]
    pub max_mime_depth: Option<u32>,
    /// Most MIME parts of one message.
    #[arg(long, env = "DMARCPIPE_MAX_MIME_PARTS", value_name = "N")]
    pub max_mime_parts: Option<u32>,
    /// Deepest XML element nesting.
    #[arg(long, env = "DMARCPIPE_MAX_XML_DEPTH", value_name = "N")]
    pub max_xml_depth: Option<u32>,
    /// Largest rejected input whose bytes are kept for reprocessing.
    #[arg(long, env = "DMARCPIPE_MAX_KEPT_BYTES", value_name = "SIZE", value_parser = size)]
    pub max_kept_bytes: Option<u64>,
    /// Memory for inputs in flight, all together (one input may use half).
    #[arg(long, env = "DMARCPIPE_MAX_MEMORY", value_name = "SIZE", value_parser = size)]
    pub max_memory: Option<u64>,
}

fn size(text: &str) -> Result<u64, String> {
    dmarcpipe_ingest::limits::parse_size(text)
}
