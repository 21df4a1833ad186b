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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
