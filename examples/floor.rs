//! The parsing floor for `benches/throughput.sh` and `benches/fhir_bulk.sh`: read NDJSON and parse
//! every line, with N threads, into `serde_json::Value` (`value`) or into the typed `Profile` through
//! the reader compiled from the fact declarations (`typed`), and nothing else. No validation, no
//! rules, no output: what a pipeline that merely parses its input cannot beat. `chunked` parses to
//! `Value` too, but in the shape of the FHIR Bulk reader (see [`chunked`]), to tell what that shape
//! costs from what the mapping costs.
//!
//! `cargo run --release --example floor -- value|typed|chunked PATH... [THREADS]`
//!
//! Each PATH is an NDJSON file or a directory, whose `*.ndjson` files (not its subdirectories) are
//! read in name order, as a FHIR Bulk export is. A last argument of digits alone is THREADS (default
//! 2), so `floor value FILE 2` keeps its meaning; write `./2` for a file named `2`. Files are read and
//! parsed one at a time, `value` and `typed` each file whole, so memory follows the largest file, not
//! the total.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

fn usage() -> ! {
    eprintln!("usage: floor value|typed|chunked PATH... [THREADS]");
    std::process::exit(2);
}

fn fail(what: &str, path: &Path, e: &std::io::Error) -> ! {
    eprintln!("cannot {what} {}: {e}", path.display());
    std::process::exit(2);
}

/// The files a path stands for: itself, or a directory's `*.ndjson` files in name order.
fn files_of(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    let entries = std::fs::read_dir(path).unwrap_or_else(|e| fail("list", path, &e));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| fail("list", path, &e)).path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    files
}

/// What each line is parsed into.
enum Mode {
    Value,
    Typed(Box<medscreen::Engine>),
    Chunked,
}

/// Lines a chunk of `chunked` holds: the FHIR Bulk reader's chunk (`CHUNK_LINES` in
/// `crates/medscreen-fhir/src/bulk.rs`).
const CHUNK_LINES: usize = 2048;

/// Counts of one file: lines parsed, lines, bytes.
type Counts = (usize, usize, usize);

/// `value` and `typed`: the file read whole, then every line parsed on the pool and dropped at once.
fn whole(pool: &rayon::ThreadPool, mode: &Mode, file: &Path) -> Counts {
    let data = std::fs::read(file).unwrap_or_else(|e| fail("read", file, &e));
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let ok = pool.install(|| match mode {
        Mode::Typed(engine) => lines
            .par_iter()
            .filter(|l| engine.parse_fast(l).is_some())
            .count(),
        _ => lines
            .par_iter()
            .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
            .count(),
    });
    (ok, lines.len(), data.len())
}

/// `chunked`: the shape of the FHIR Bulk reader without its mapping. Lines are read one at a time
/// into their own buffers, parsed `CHUNK_LINES` at a time on the pool, and the chunk's values are
/// held until all are parsed, then dropped in order on this thread. Against `value` it prices that
/// shape (the allocator and caches), not the JSON.
fn chunked(pool: &rayon::ThreadPool, file: &Path) -> Counts {
    let f = std::fs::File::open(file).unwrap_or_else(|e| fail("read", file, &e));
    let mut reader = BufReader::new(f);
    let (mut ok, mut total, mut bytes) = (0, 0, 0);
    loop {
        let mut lines: Vec<Vec<u8>> = Vec::with_capacity(CHUNK_LINES);
        while lines.len() < CHUNK_LINES {
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n,
                Err(e) => fail("read", file, &e),
            }
            if !buf.iter().all(u8::is_ascii_whitespace) {
                lines.push(buf);
            }
        }
        if lines.is_empty() {
            return (ok, total, bytes);
        }
        total += lines.len();
        let parsed: Vec<Result<serde_json::Value, serde_json::Error>> = pool.install(|| {
            lines
                .into_par_iter()
                .map(|b| serde_json::from_slice(&b))
                .collect()
        });
        for value in parsed {
            ok += usize::from(value.is_ok());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        usage()
    };
    // Only `typed` needs the engine: loading it is not part of what the other floors measure.
    let mode = match mode.as_str() {
        "value" => Mode::Value,
        "chunked" => Mode::Chunked,
        "typed" => Mode::Typed(Box::new(
            medscreen::Engine::embedded().expect("the embedded pack loads"),
        )),
        _ => usage(),
    };
    // The trailing THREADS of the one-file form, `floor value FILE 2`, read the same way with more.
    let (paths, threads) = match rest.split_last() {
        Some((last, paths))
            if !paths.is_empty()
                && !last.is_empty()
                && last.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (paths, last.parse().unwrap_or_else(|_| usage()))
        }
        _ => (rest, 2),
    };
    if paths.is_empty() {
        usage();
    }
    let files: Vec<PathBuf> = paths.iter().flat_map(|p| files_of(Path::new(p))).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let (mut ok, mut total, mut bytes) = (0, 0, 0);
    for file in &files {
        let (o, t, b) = match mode {
            Mode::Chunked => chunked(&pool, file),
            _ => whole(&pool, &mode, file),
        };
        ok += o;
        total += t;
        bytes += b;
    }
    println!(
        "{ok} of {total} lines parsed, {bytes} bytes in {} files",
        files.len()
    );
}
