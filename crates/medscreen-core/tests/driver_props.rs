//! Properties of the batch driver over arbitrary inputs: it never panics, it gives exactly one result
//! per record, and its output bytes do not depend on the number of threads.
//!
//! Inputs come from a small seeded generator (so a failure is reproducible from its case number):
//! NDJSON with blank lines, JSON arrays, pretty-printed objects, gzip of those, random bytes, and any
//! of them truncated or mixed with a garbage line. Where the generator knows how many records it wrote
//! the result count must equal it; elsewhere the results must agree with the summary and with the
//! splitter's own count of records.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::io::{Cursor, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use medscreen_core::Engine;
use medscreen_core::batch::{self, BatchConfig, Sinks, Summary};
use medscreen_core::input::{ItemKind, Source, Splitter};
use medscreen_core::output::{Format, OutputOptions};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const DRUGS: [&str; 5] = [
    "oxycodone 5 mg",
    "Xanax 0.5mg",
    "paracetamol",
    "tizanidine",
    "\"quoted\\\" name",
];

/// One valid-looking profile (some are invalid on purpose: an out-of-range age, a wrong type).
fn record(rng: &mut Rng, n: u64) -> serde_json::Value {
    let mut meds = Vec::new();
    for _ in 0..rng.below(3) {
        meds.push(serde_json::json!(
            DRUGS[rng.below(DRUGS.len() as u64) as usize]
        ));
    }
    let age = match rng.below(10) {
        0 => serde_json::json!(200),
        1 => serde_json::json!("old"),
        _ => serde_json::json!(rng.below(100)),
    };
    let mut v = serde_json::json!({"id": format!("p-{n}"), "age": age, "sex": "female", "comedications": meds});
    if rng.below(2) == 0 {
        v["egfr"] = serde_json::json!(rng.below(120));
    }
    if rng.below(3) == 0 {
        v["seizure_history"] = serde_json::json!(rng.below(2) == 0);
    }
    v
}

/// An input, and the number of records in it when the generator knows it.
fn input(rng: &mut Rng) -> (Vec<u8>, Option<usize>) {
    let k = rng.below(12) as usize;
    let recs: Vec<serde_json::Value> = (0..k).map(|n| record(rng, n as u64)).collect();
    let kind = rng.below(8);
    let (bytes, known) = match kind {
        0 => {
            let mut b = Vec::new();
            for r in &recs {
                if rng.below(4) == 0 {
                    b.extend_from_slice(b"\n  \r\n");
                }
                b.extend_from_slice(r.to_string().as_bytes());
                b.extend_from_slice(if rng.below(2) == 0 { b"\n" } else { b"\r\n" });
            }
            (b, Some(k))
        }
        // An empty array is one (invalid) record, not a batch of none.
        1 if k > 0 => {
            let arr = serde_json::Value::Array(recs);
            let b = if rng.below(2) == 0 {
                serde_json::to_vec_pretty(&arr)
            } else {
                serde_json::to_vec(&arr)
            };
            (b.unwrap_or_default(), Some(k))
        }
        2 => {
            let mut b = Vec::new();
            for r in &recs {
                b.extend_from_slice(&serde_json::to_vec_pretty(r).unwrap_or_default());
                b.push(b'\n');
            }
            (b, Some(k))
        }
        3 => {
            let mut b = Vec::new();
            for r in &recs {
                b.extend_from_slice(r.to_string().as_bytes());
                b.push(b'\n');
            }
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            let _ = gz.write_all(&b);
            (gz.finish().unwrap_or_default(), Some(k))
        }
        4 => {
            let len = rng.below(400) as usize;
            let alphabet = b"{}[]\",:\\ \n\r\tnul0123456789aetrfs-.e+\x1f\xff\xef\xbb\xbf\x1f\x8b";
            let b = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            (b, None)
        }
        5 => {
            // A garbage line between good NDJSON lines: still one result per line.
            let mut b = Vec::new();
            for r in &recs {
                b.extend_from_slice(r.to_string().as_bytes());
                b.push(b'\n');
            }
            let garbage: &[&[u8]] = &[b"{\"id\":", b"]]", b"42", b"\"x", b"nul"];
            b.extend_from_slice(garbage[rng.below(garbage.len() as u64) as usize]);
            b.push(b'\n');
            (b, Some(k + 1))
        }
        _ => {
            // Any of the above, cut off anywhere (gzip included).
            let (mut b, _) = input(rng);
            let cut = rng.below(b.len() as u64 + 1) as usize;
            b.truncate(cut);
            (b, None)
        }
    };
    (bytes, known)
}

/// Records in `bytes` by the splitter's own count (blank lines excluded), gzip decoded first. Only
/// compared when the input was read to its end (a cut-off gzip stream adds an error record).
fn split_count(bytes: &[u8]) -> u64 {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out);
        return count_items(out);
    }
    count_items(bytes.to_vec())
}

fn count_items(bytes: Vec<u8>) -> u64 {
    let mut s = Splitter::new(Box::new(Cursor::new(bytes)), 1 << 20);
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(item) = s.next_item(&mut buf) {
        if item.kind != ItemKind::Blank {
            n += 1;
        }
    }
    n
}

fn run(engine: &Engine, sources: &[Source], threads: usize, format: Format) -> (Vec<u8>, Summary) {
    let cfg = BatchConfig {
        threads,
        output: OutputOptions {
            format,
            show_input: sources.len() > 1,
            ..OutputOptions::default()
        },
        ..BatchConfig::default()
    };
    let mut out = Vec::new();
    let (summary, error) = batch::run(
        engine,
        sources,
        &cfg,
        Sinks {
            main: &mut out,
            errors: None,
        },
    );
    assert!(error.is_none(), "writing to memory cannot fail: {error:?}");
    (out, summary)
}

#[test]
fn driver_gives_one_result_per_record_and_the_same_bytes_at_any_thread_count() {
    let engine = Engine::embedded().expect("the embedded pack loads");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked_known = 0;
    for case in 0..300 {
        let files = 1 + rng.below(4) as usize;
        let mut sources = Vec::new();
        let mut known = Some(0usize);
        let mut split = 0u64;
        for f in 0..files {
            let (bytes, k) = input(&mut rng);
            split += split_count(&bytes);
            known = known.zip(k).map(|(a, b)| a + b);
            let path = dir.path().join(format!("case{case}-{f}.ndjson"));
            std::fs::write(&path, &bytes).expect("write the input");
            sources.push(Source::File(path));
        }
        let (one, summary) = run(&engine, &sources, 1, Format::Ndjson);
        let (many, _) = run(&engine, &sources, 4, Format::Ndjson);
        assert_eq!(
            String::from_utf8_lossy(&one),
            String::from_utf8_lossy(&many),
            "case {case}: 1 and 4 threads differ"
        );
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&one)
            .expect("utf-8 output")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every result line is JSON"))
            .collect();
        assert_eq!(
            lines.len() as u64,
            summary.read,
            "case {case}: results vs summary"
        );
        assert_eq!(
            summary.read,
            summary.clear + summary.flagged + summary.invalid,
            "case {case}: the summary adds up"
        );
        if let Some(k) = known {
            assert_eq!(lines.len(), k, "case {case}: results vs records written");
            checked_known += 1;
        }
        // A gzip stream cut off ends with its own error record, which a plain read of it does not see.
        if !summary.invalid_by_code.contains_key("truncated_input")
            && !summary.invalid_by_code.contains_key("io_error")
        {
            assert_eq!(
                summary.read, split,
                "case {case}: results vs the splitter's count"
            );
        }
        for l in &lines {
            assert!(
                l["line"].as_u64().is_some_and(|n| n >= 1),
                "case {case}: {l}"
            );
            assert!(l["status"].is_string(), "case {case}: {l}");
        }
        // The other formats too: same bytes at any thread count, and JSON is one array of every result.
        for format in [Format::Json, Format::Csv, Format::Table] {
            let (a, _) = run(&engine, &sources, 1, format);
            let (b, _) = run(&engine, &sources, 3, format);
            assert_eq!(a, b, "case {case}: {format:?} differs by thread count");
            if format == Format::Json {
                let v: serde_json::Value =
                    serde_json::from_slice(&a).expect("--format json is one JSON value");
                assert_eq!(v.as_array().map(Vec::len), Some(lines.len()), "case {case}");
            }
        }
    }
    assert!(
        checked_known > 60,
        "the generator knew the count in only {checked_known} cases"
    );
}

/// The observer (what `screen --report` counts from) sees every result once, exactly as written, with
/// the profile of each valid record, whatever the thread count.
#[test]
fn the_observer_sees_each_result_once_as_written_with_its_profile() {
    use medscreen_core::Profile;
    use medscreen_core::batch::Observer;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Seen(Mutex<Vec<(Vec<u8>, Option<String>)>>);
    impl Observer for Seen {
        fn result(&self, written: &[u8], profile: Option<&Profile>) {
            let id = profile.map(|p| p.id.clone());
            self.0.lock().unwrap().push((written.to_vec(), id));
        }
    }

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/patients.ndjson"
    );
    let engine = Engine::embedded().unwrap();
    for threads in [1, 2, 4] {
        let seen = Arc::new(Seen::default());
        let cfg = BatchConfig {
            threads,
            observer: Some(seen.clone()),
            ..BatchConfig::default()
        };
        let mut out = Vec::new();
        let (summary, error) = batch::run(
            &engine,
            &[Source::parse(path)],
            &cfg,
            Sinks {
                main: &mut out,
                errors: None,
            },
        );
        assert!(error.is_none());
        let mut seen = std::mem::take(&mut *seen.0.lock().unwrap());
        assert_eq!(seen.len() as u64, summary.read, "one call per record");
        let valid = seen.iter().filter(|(_, id)| id.is_some()).count() as u64;
        assert_eq!(valid, summary.clear + summary.flagged);
        for (written, id) in &seen {
            if let Some(id) = id {
                let v: serde_json::Value = serde_json::from_slice(written).unwrap();
                assert_eq!(
                    v["id"].as_str(),
                    Some(id.as_str()),
                    "the profile of that result"
                );
            }
        }
        let mut lines: Vec<Vec<u8>> = out
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let mut written: Vec<Vec<u8>> = seen.drain(..).map(|(w, _)| w).collect();
        lines.sort();
        written.sort();
        assert_eq!(written, lines, "what the observer saw is what was written");
    }
}
