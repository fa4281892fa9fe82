//! The `dmarcpipe` command: arguments and configuration, wiring of channels to the store, and
//! calls into render. See `cli.rs` for the command line and `commands/` for each command.

mod cli;
mod commands;
mod config;

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use config::FileConfig;

/// Exit codes (the contract cron jobs and MTAs rely on).
pub mod exit {
    /// Every input was handled (stored, duplicate or not a report).
    pub const OK: u8 = 0;
    /// Some inputs were rejected (recorded, with their reason), or some paths could not be read
    /// at all (named on stderr; the others were handled).
    pub const REJECTED: u8 = 1;
    /// A fatal error: bad arguments, no database, a bug.
    pub const FATAL: u8 = 2;
    /// EX_TEMPFAIL: try again later (the database is unreachable); MTAs retry.
    pub const TEMPFAIL: u8 = 75;
}

fn main() -> ExitCode {
    let cli = Cli::from_command_line();
    // A server logs what it does (one line per message); commands log only trouble by default.
    init_tracing(cli.verbose, matches!(cli.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("dmarcpipe: cannot start the async runtime: {err}");
            return ExitCode::from(exit::FATAL);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("dmarcpipe: {}", describe(&err));
            ExitCode::from(exit::FATAL)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = FileConfig::load(cli.config.as_deref())?;
    let database_url = cli.database_url.as_deref();
    match cli.command {
        Command::Migrate => commands::migrate(&config, database_url).await,
        Command::Import(args) => commands::import::run(&config, database_url, args).await,
        Command::Report(args) => commands::report::run(&config, database_url, args).await,
        Command::Reprocess(args) => commands::reprocess::run(&config, database_url, args).await,
        Command::Parse(args) => commands::parse::run(&config, args),
        Command::Forensic(command) => commands::forensic::run(&config, database_url, command).await,
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Serve(args) => commands::serve::run(&config, database_url, args).await,
        Command::Fetch(args) => commands::fetch::run(&config, database_url, args).await,
        Command::Digest(args) => commands::digest::run(&config, database_url, args).await,
        Command::Geoip(command) => commands::geoip::run(command).await,
        Command::Enrich(args) => commands::enrich::run(&config, database_url, args).await,
    }
}

/// An error and its causes on one line, each said once: many errors already quote their
/// source in their own text, and `{:#}` would repeat it.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Logs go to stderr; the default shows warnings (info for a server), `-v` info, `-vv` debug;
/// RUST_LOG wins.
fn init_tracing(verbose: u8, server: bool) {
    let default = match verbose {
        0 if !server => "warn",
        0 => "info,sqlx=warn",
        1 => "info,sqlx=warn",
        _ => "debug,sqlx=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn causes_quoted_by_their_error_are_said_once() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl std::fmt::Display for Quoting {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot apply database migrations: {}", self.0)
            }
        }
        impl std::error::Error for Quoting {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Quoting(std::io::Error::other("syntax error at line 3")))
            .context("cannot open the database");
        assert_eq!(
            describe(&err),
            "cannot open the database: cannot apply database migrations: syntax error at line 3"
        );
        let plain = anyhow::anyhow!("no database").context("cannot connect");
        assert_eq!(describe(&plain), "cannot connect: no database");
    }
}
