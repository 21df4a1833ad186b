//! `ticketgate ingest`: files, folders, mbox and stdin, with the exit codes
//! an MTA's pipe reads (EX_TEMPFAIL when worth delivering again).

use super::*;

pub(super) async fn ingest_stdin(config: Option<PathBuf>, args: &IngestArgs) -> ExitCode {
    let result: anyhow::Result<IngestReport> = async {
        let app = App::open(Settings::load(config.as_deref())?).await?;
        // Oversized mail is never held whole: its outcome (`rejected`,
        // `too_large`) is recorded from what was kept, and exit 0 tells the
        // MTA not to try again.
        let read = source::read_bounded(
            std::io::stdin().lock(),
            None,
            app.ingestor.policy().limits(),
        )
        .context("reading stdin")?;
        let report = app
            .ingestor
            .ingest(Delivery {
                raw: &read.raw,
                origin: "stdin",
                notify: !args.no_notify,
                declared_size: read.declared_size(),
                ..Default::default()
            })
            .await?;
        Ok(report)
    }
    .await;
    match result {
        Ok(report) => {
            print_report(&report, "stdin", args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ticketgate: temporary failure, the message was not recorded: {e:#}");
            ExitCode::from(EX_TEMPFAIL)
        }
    }
}

/// The line that says what became of one message. It is written after the
/// outcome is committed, so a caller that no longer reads (an MTA that closed
/// the pipe) changes nothing: the message is recorded and the exit is 0.
pub(super) fn print_report(report: &IngestReport, origin: &str, json: bool) {
    let line = if json {
        serde_json::to_string(report).expect("reports serialize")
    } else {
        report_line(report, origin)
    };
    // Ignored on purpose: see above.
    let _ = outln!("{line}");
}

pub(super) fn report_line(r: &IngestReport, origin: &str) -> String {
    let mut line = format!("{origin}\t{}", r.outcome);
    if let Some(t) = r.ticket {
        line.push_str(&format!("\tticket #{t}"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!("\t{reason}"));
    }
    line
}

pub(super) async fn ingest_paths(app: &App, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let (mut transient, mut failed) = (0usize, 0usize);
    let mut items = Vec::new();
    for path in &args.paths {
        match source::expand(std::slice::from_ref(path)) {
            // Said, so an empty run is never mistaken for one that took mail.
            Ok(found) if found.is_empty() => eprintln!(
                "{}: no messages to ingest ({})",
                path.display(),
                if source::maildir::is_maildir(path) {
                    "a Maildir with nothing in new/ or cur/"
                } else if path.is_dir() {
                    "a folder with no message files"
                } else {
                    "no message in it"
                }
            ),
            Ok(found) => items.extend(found),
            Err(e) => {
                // Named, and the other paths still taken.
                eprintln!("{}: not read: {e}", path.display());
                failed += 1;
            }
        }
    }
    let bar = if !args.json && std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::with_draw_target(Some(items.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .expect("static template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let limits = app.ingestor.policy().limits();
    for item in &items {
        let origin = item.origin();
        let outcome = match item.read(limits) {
            Ok(read) => app
                .ingestor
                .ingest(Delivery {
                    raw: &read.raw,
                    origin: &origin,
                    notify: !args.no_notify,
                    declared_size: read.declared_size(),
                    ..Default::default()
                })
                .await
                .map_err(|e| (e.is_transient(), anyhow::Error::new(e))),
            Err(e) => Err((
                false,
                anyhow::Error::new(e).context(format!("reading {origin}")),
            )),
        };
        match outcome {
            Ok(report) if args.json => outln!("{}", serde_json::to_string(&report)?)?,
            Ok(report) => bar.suspend(|| outln!("{}", report_line(&report, &origin)))?,
            Err((is_transient, e)) => {
                if is_transient {
                    transient += 1;
                } else {
                    failed += 1;
                }
                bar.suspend(|| eprintln!("{origin}: not recorded: {e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else if transient > 0 {
        ExitCode::from(EX_TEMPFAIL)
    } else {
        ExitCode::SUCCESS
    })
}
