//! Reply extraction on hostile 1 MB bodies: shapes that cost the
//! line classifier, the quote-header and signature readers and the HTML
//! structure the most per byte, each through `extract_text_from` and
//! `extract_html_from` with a known sender (`Roman Lebedev`). Target: each
//! under a second. Prints one table row per shape: the slowest of three runs.
//!
//! `cargo bench --bench reply` (all shapes), or `cargo bench --bench reply --
//! glued names`: only the shapes whose names contain one of the words given.

use std::hint::black_box;
use std::time::Instant;

use ticketgate::domain::reply::{self, Sender};

const MB: usize = 1024 * 1024;

/// `piece(i)` repeated until the body is `size` bytes (cut on a char boundary).
fn fill(size: usize, piece: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(size + 1024);
    let mut i = 0;
    while out.len() < size {
        out.push_str(&piece(i));
        i += 1;
    }
    let mut end = size;
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

fn shapes() -> Vec<(&'static str, String)> {
    let deep = MB / "<blockquote>x</blockquote>".len();
    vec![
        ("one long line", fill(MB, |i| format!("word{} ", i % 1000))),
        (
            "one long line of intro words and times",
            fill(MB, |_| "x On 1 Nov 2026 at 9:14 ".to_string()),
        ),
        (
            "a long line ending in a header",
            fill(MB - 80, |i| format!("word{} ", i % 1000))
                + " On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:",
        ),
        ("many > levels", fill(MB, |_| ">".repeat(2000) + " deep\n")),
        (
            "many header-like lines",
            fill(MB, |_| {
                "On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n".to_string()
            }),
        ),
        (
            "wrapped header starts",
            fill(MB, |_| "On Mon, 23 Nov 2026 at 09:14, Alice\n".to_string()),
        ),
        (
            "header blocks",
            fill(MB, |_| {
                "From: a@x.test\nDate: Wed, 25 Nov 2026 09:14:02 +0100\nTo: b@y.test\n".to_string()
            }),
        ),
        (
            "glued headers",
            fill(MB, |_| {
                "reply On Mon, 23 Nov 2026 at 09:14, Alice <a@x.test> wrote:\n> q\n".to_string()
            }),
        ),
        (
            "glued intro words, no header",
            fill(MB, |_| format!("{}:\n", "a On 1 Le 2 Am 3 ".repeat(20))),
        ),
        (
            "glued footers",
            fill(MB, |_| {
                "Sent from Samsung MobileAlice <a@x.test> wrote:\n".to_string()
            }),
        ),
        (
            "camel case after a footer",
            fill(MB, |_| format!("Sent from {}:\n", "aB".repeat(40))),
        ),
        ("many name lines", fill(MB, |_| "Roman\n".to_string())),
        (
            "names, closings and quotes",
            fill(MB, |_| {
                "text\n> q\n\nThanks!\n-roman\n---\nRoman Lebedev\n".to_string()
            }),
        ),
        (
            "blank lines above a dashed name",
            "text\n".to_string() + &"\n".repeat(MB - 10) + "-jo\n",
        ),
        (
            "footers with wrapped links",
            fill(MB, |_| {
                "Sent with Sparrow\n(http://a.test/?sig)\nThanks!\nJo\n".to_string()
            }),
        ),
        (
            "contact lines",
            fill(MB, |_| "---\nQuinn Quartz\n+43 1 234 5678\n".to_string()),
        ),
        (
            "wrapped links in quotes",
            fill(MB, |_| "> see (http://a.test/x\n_y=1)\n".to_string()),
        ),
        (
            "deep HTML blockquotes",
            "<blockquote>".repeat(deep) + "x" + &"</blockquote>".repeat(deep),
        ),
        (
            "HTML signature marks",
            fill(MB, |_| {
                "<div class=\"gmail_signature\"><div>Roman".to_string()
            }),
        ),
        (
            "HTML blockquotes before a signature",
            fill(MB - 60, |_| "<blockquote>q</blockquote>".to_string())
                + "<div id=\"Signature\">Roman</div>",
        ),
        // Hidden text (`mail::visible_html`): each shape makes the pass
        // decide, copy or look up the most per byte.
        (
            "HTML hidden spans",
            fill(MB, |i| {
                format!("<span style=\"display:none\">#close {i}</span>seen ")
            }),
        ),
        (
            "HTML white on white cells",
            fill(MB, |_| {
                "<td bgcolor=\"#fff\"><font color=\"#FFF\">x</font></td>".to_string()
            }),
        ),
        (
            "HTML stray end tags inside a table cell",
            format!("<div hidden><table><tr><td>{}", "<span>".repeat(90))
                + &fill(MB, |_| "</div><i></i>".to_string()),
        ),
        (
            "HTML style rules and classes",
            format!(
                "<style>{}</style>",
                fill(MB / 2, |i| format!(".c{i}{{display:none;color:#fff}}"))
            ) + &fill(MB / 2, |i| format!("<b class=\"a c{i} z\">x</b>")),
        ),
        (
            "HTML escaped styles",
            fill(MB, |_| {
                "<p style=\"disp\\6c ay&#58;/**/block&colon;co&#x6c;or:#000\">x</p>".to_string()
            }),
        ),
    ]
}

/// The slowest of three runs of `f`, in seconds.
fn slowest(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let sender = Sender::parse("Roman Lebedev <roman@customer.test>");
    // cargo passes `--bench` to a harness-free bench; the other words pick shapes.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("| benchmark | setup | result | peak RSS |");
    println!("|---|---|---|---|");
    for (name, body) in shapes() {
        if !only.is_empty() && !only.iter().any(|w| name.contains(w.as_str())) {
            continue;
        }
        let text = slowest(|| {
            black_box(reply::extract_text_from(black_box(&body), &sender));
        });
        let html = slowest(|| {
            black_box(reply::extract_html_from(black_box(&body), &sender));
        });
        let worst = text.max(html);
        println!(
            "| reply: {name}, {:.1} MB | `extract_text_from` and `extract_html_from` of the body with a sender, slowest of 3; target < 1 s | text {text:.3} s, HTML {html:.3} s{} | - |",
            body.len() as f64 / MB as f64,
            if worst < 1.0 { "" } else { " (over 1 s)" },
        );
    }
}
