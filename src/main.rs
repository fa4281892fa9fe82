//! The `dmarcpipe` command: arguments and configuration, wiring of channels to the store, and
//! calls into render. See `cli.rs` for the command line and `commands/` for each command.

mod cli;
mod commands;
mod config;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use config::FileConfig;

/// Exit codes (the contract cron jobs and MTAs rely on).
pub mod exit {
    /// Every input was handled (stored, duplicate or not a report).
    pub const OK: u8 = 0;
    /// Some inputs were rejected (recorded, with their reason).
    pub const REJECTED: u8 = 1;
    /// A fatal error: bad arguments, no database, a bug.
    pub const FATAL: u8 = 2;
    /// EX_TEMPFAIL: try again later (the database is unreachable); MTAs retry.
    pub const TEMPFAIL: u8 = 75;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("dmarcpipe: {err:#}");
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
    }
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
