//! What the benchmarks share: the realistic message they all use.
#![allow(dead_code)]

/// A ~3 KB message from a registered org domain (`customer.test`); odd ones
/// reply to the one before, so half the mail threads onto earlier tickets.
pub fn message(i: usize, run: &str, to: &str) -> Vec<u8> {
    let mut headers = format!(
        "From: Customer {i} <c{}@customer.test>\r\nTo: {to}\r\nMessage-ID: <m{i}-{run}@customer.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n",
        i / 2
    );
    if i % 2 == 1 {
        headers.push_str(&format!(
            "In-Reply-To: <m{}-{run}@customer.test>\r\nSubject: Re: Request {}\r\n",
            i - 1,
            i - 1
        ));
    } else {
        headers.push_str(&format!("Subject: Request {i}\r\n"));
    }
    let line = "The quarterly export stops at row 4096 and the log shows a timeout from the reporting service.\r\n";
    let body = line.repeat(3000 / line.len());
    format!("{headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}")
        .into_bytes()
}

/// Median of a few runs (the benchmarks report medians, not single runs).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Peak resident set size of this process so far, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Current resident set size of this process, in MB (Linux `VmRSS`).
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `p` (0..=1) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `scripts/mailstack.sh ARGS...`, panicking with its stderr when it
/// fails; returns its stdout.
fn mailstack<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mailstack.sh");
    let out = std::process::Command::new(script)
        .args(args)
        .output()
        .expect("mailstack runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the test mail stack (`scripts/mailstack.sh start`) and returns
/// the variables it exports (`TICKETGATE_TEST_*`).
pub fn stack() -> std::collections::HashMap<String, String> {
    mailstack(&["start"])
        .lines()
        .filter_map(|l| {
            l.strip_prefix("export ")?
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Adds mailboxes to the running mail stack (`scripts/mailstack.sh add-user`).
pub fn add_users(addrs: &[String]) {
    let mut args = vec!["add-user"];
    args.extend(addrs.iter().map(String::as_str));
    mailstack(&args);
}

/// A gateway on `url` writing notifications as files under `dir`, with the
/// `customer.test` org that `message` senders belong to; `notify` is the
/// optional `[support] notify` address.
pub async fn app(
    url: &str,
    dir: &std::path::Path,
    notify: Option<&str>,
) -> anyhow::Result<ticketgate::app::App> {
    let notify = notify
        .map(|n| format!("notify = \"{n}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[database]\nurl = \"{url}\"\n[smtp]\nkind = \"file\"\ndir = \"{}/outbox\"\n[support]\naddress = \"support@example.test\"\n\
         domain = \"example.test\"\n{notify}reply_secret = \"bench\"\n[admin]\nlisten = \"\"\n",
        dir.display()
    );
    let settings = ticketgate::config::Settings::from_sources(&text, "bench", Vec::new())?;
    let app = ticketgate::app::App::open(settings).await?;
    app.store
        .add_org("Customers", "customers", &["customer.test".into()])
        .await?;
    Ok(app)
}

/// Deliveries recorded so far (every outcome).
pub async fn count(app: &ticketgate::app::App) -> usize {
    app.store
        .list_log(&ticketgate::store::LogFilter::default())
        .await
        .map(|r| r.len())
        .unwrap_or(0)
}
