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
    let notify = !args.no_notify;
    // Read ahead into batches bounded like a mailbox's, each recorded in one
    // transaction (one disk sync for up to `BATCH_MESSAGES` messages).
    let mut pending = items.iter().peekable();
    while pending.peek().is_some() {
        let mut batch: Vec<(String, source::Bounded)> = Vec::new();
        let mut bytes = 0u64;
        while batch.len() < source::BATCH_MESSAGES && bytes < source::BATCH_BYTES {
            let Some(item) = pending.next() else { break };
            let origin = item.origin();
            match item.read(limits) {
                Ok(read) => {
                    bytes += read.raw.len() as u64;
                    batch.push((origin, read));
                }
                Err(e) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("{origin}: not recorded: reading {origin}: {e}"));
                    bar.inc(1);
                }
            }
        }
        let deliveries: Vec<Delivery> = batch
            .iter()
            .map(|(origin, read)| Delivery {
                raw: &read.raw,
                origin,
                notify,
                declared_size: read.declared_size(),
                ..Default::default()
            })
            .collect();
        // Each message's report, or whether its failure is transient and why.
        let outcomes: Vec<Result<IngestReport, (bool, String)>> =
            match app.ingestor.ingest_batch(&deliveries).await {
                Ok(reports) => reports.into_iter().map(Ok).collect(),
                // A batch refused for one of its messages: each alone, so
                // only that one fails.
                Err(e) if !e.is_transient() => {
                    let mut each = Vec::with_capacity(deliveries.len());
                    for d in &deliveries {
                        each.push(
                            app.ingestor
                                .ingest(*d)
                                .await
                                .map_err(|e| (e.is_transient(), format!("{e:#}"))),
                        );
                    }
                    each
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    deliveries
                        .iter()
                        .map(|_| Err((true, message.clone())))
                        .collect()
                }
            };
        for ((origin, _), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(report) if args.json => outln!("{}", serde_json::to_string(&report)?)?,
                Ok(report) => bar.suspend(|| outln!("{}", report_line(&report, origin)))?,
                Err((is_transient, e)) => {
                    if is_transient {
                        transient += 1;
                    } else {
                        failed += 1;
                    }
                    bar.suspend(|| eprintln!("{origin}: not recorded: {e}"));
                }
            }
            bar.inc(1);
        }
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
