//! The parsing floor for `benches/throughput.sh`: read an NDJSON file and parse every line, with N
//! threads, into `serde_json::Value` (`value`) or into the typed `Profile` through the reader compiled
//! from the fact declarations (`typed`), and nothing else. No validation, no rules, no output: what a pipeline that merely parses its input cannot beat.
//!
//! `cargo run --release --example floor -- value|typed FILE [THREADS]`

use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: floor value|typed FILE [THREADS]");
        std::process::exit(2);
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let data = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2);
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let engine = medscreen::Engine::embedded().expect("the embedded pack loads");
    let ok: usize = pool.install(|| match mode.as_str() {
        "value" => lines
            .par_iter()
            .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
            .count(),
        _ => lines
            .par_iter()
            .filter(|l| engine.parse_fast(l).is_some())
            .count(),
    });
    println!("{ok} of {} lines parsed", lines.len());
}
