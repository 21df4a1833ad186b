//! Writes the 10,000 benchmark messages (`common::message`) to DIR, one file
//! each (`00000.eml`...), so scripts/bench_python_baseline.py parses exactly
//! the bytes the Rust benchmarks do.
//!
//! `cargo bench --bench corpus -- DIR [N]`

mod common;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cargo bench --bench corpus -- DIR [N]");
        std::process::exit(2);
    };
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let raw = common::message(i, "parse", "support@example.test");
        std::fs::write(std::path::Path::new(dir).join(format!("{i:05}.eml")), raw)?;
    }
    Ok(())
}
