//! Thin entry point: parse the command line, set up logging, hand over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ticketgate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ticketgate::cli::Cli::parse();
    let default_level = if matches!(cli.command, ticketgate::cli::Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // One JSON object a line, fields flattened, for log shippers.
        LogFormat::Json => logs.json().flatten_event(true).init(),
        // Colours only for a person at a terminal (and never with NO_COLOR,
        // https://no-color.org): a file or journald gets plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
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
        // `| head` had what it wanted: not a failure (see ReaderGone).
        Err(e) if e.chain().any(|c| c.is::<ticketgate::cli::ReaderGone>()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ticketgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
