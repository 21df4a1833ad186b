//! Thin entry point: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ticketgate::cli::Cli::parse();
    let default_level = if matches!(cli.command, ticketgate::cli::Command::Serve) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ticketgate: cannot start the runtime: {e}");
            return ExitCode::from(ticketgate::cli::EX_TEMPFAIL);
        }
    };
    match runtime.block_on(ticketgate::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
