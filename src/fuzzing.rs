//! The invariants the fuzz targets in `fuzz/` check, kept in the library so that the corpora and every
//! input a fuzzer ever found are replayed by `cargo test` (`tests/fuzz_corpus.rs`) on stable Rust,
//! through exactly the code the fuzzers ran.
//!
//! Each function takes arbitrary bytes and panics only when an invariant breaks: a disagreement between
//! the fast and the explaining validator, a FHIR mapping that produces an invalid profile, a result that
//! cannot be written. Errors the input deserves (malformed JSON, a broken pack) are not panics.

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "a fuzz invariant fails by panicking"
)]

use std::sync::OnceLock;

use medscreen_cds::service::{Cds, CdsOptions, Step};
use medscreen_core::engine::{EMBEDDED_PACK, EMBEDDED_VOCABULARY, Engine};
use medscreen_core::input::{Item, ItemKind, Splitter};
use medscreen_core::output::{self, OutputOptions};
use medscreen_fhir::Binding;
use medscreen_fhir::bundle::read_bundle;
use medscreen_fhir::date::Date;
use medscreen_fhir::mapping::{Absent, Options, Outcome};
use medscreen_fhir::valueset::ValueSets;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::embedded().expect("the embedded pack compiles"))
}

/// The embedded engine and value sets, bound.
fn binding() -> &'static Binding {
    static BINDING: OnceLock<Binding> = OnceLock::new();
    BINDING.get_or_init(|| {
        let engine = Engine::embedded().expect("the embedded pack compiles");
        let vs = ValueSets::embedded().expect("the embedded value sets load");
        Binding::new(engine, vs).expect("the embedded value sets fit the embedded pack")
    })
}

/// One record: the fast path and the schema path agree (same verdict, same profile), and a valid
/// profile screens and writes in every format.
pub fn profile(data: &[u8]) {
    let engine = engine();
    let fast = engine.parse_fast(data);
    let full = engine.parse_profile_explained(data);
    match (&fast, &full) {
        (Some(a), Ok(b)) => assert_eq!(a, b, "the two paths read different profiles"),
        (None, Err(_)) => {}
        (Some(_), Err(r)) => panic!("fast path accepts what the schema rejects: {r:?}"),
        (None, Ok(_)) => {}
    }
    let Ok(p) = full else { return };
    let s = engine.screen(&p);
    let mut buf = Vec::new();
    for format in [
        output::Format::Ndjson,
        output::Format::Csv,
        output::Format::Table,
    ] {
        let opts = OutputOptions {
            format,
            ..OutputOptions::default()
        };
        output::screened(&opts, &mut buf, 1, Some("fuzz"), &s);
    }
}

/// A rule pack (the bytes as `pack.json` with the embedded vocabulary) and a vocabulary (the bytes as
/// `vocabulary.json` with the embedded pack): loading never panics, and a pack that loads screens.
pub fn pack(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let probe =
        br#"{"id":"f","age":70,"egfr":40,"comedications":["oxycodone","baclofen intrathecal"]}"#;
    if let Ok(e) = Engine::from_sources("pack.json", text, "vocabulary.json", EMBEDDED_VOCABULARY) {
        let _ = e.screen_json(probe);
    }
    if let Ok(e) = Engine::from_sources("pack.json", EMBEDDED_PACK, "vocabulary.json", text) {
        let _ = e.screen_json(probe);
    }
}

/// A FHIR Bundle: every patient it maps to a profile gives a profile the schema accepts.
pub fn bundle(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let binding = binding();
    let engine = binding.engine();
    for absent in [Absent::False, Absent::Unknown] {
        let opts = Options {
            as_of: Date::parse("2026-12-01").expect("date"),
            lookback_days: 365,
            absent,
        };
        let mapper = binding.mapper(opts);
        let facts = read_bundle(&mapper, &value, "fuzz", 1);
        for p in &facts.patients {
            if let Outcome::Profile { profile, .. } = mapper.profile(p)
                && let Err(r) = engine.validate_value(&profile)
            {
                panic!("the mapping made an invalid profile: {:?}", r.problems);
            }
        }
    }
}

/// A CDS Hooks request: preparing it and building its cards (as if nothing had to be fetched) never
/// panics, and the cards serialise.
pub fn cds_request(data: &[u8]) {
    static CDS: OnceLock<Cds> = OnceLock::new();
    let cds = CDS.get_or_init(|| {
        Cds::new(
            Engine::embedded().expect("pack"),
            ValueSets::embedded().expect("value sets"),
            CdsOptions::default(),
        )
        .expect("the embedded value sets fit the embedded pack")
    });
    let Ok(prepared) = cds.prepare(data) else {
        return;
    };
    if let Step::Screen(pending) = prepared.step {
        let cards = cds.cards(&pending, &[]);
        serde_json::to_vec(&cards).expect("cards serialise");
    }
}

/// Reads `data` in pieces whose sizes come from the data itself (1 to 64 bytes), so that the framing
/// sees every way the bytes could arrive.
struct Pieces {
    data: Vec<u8>,
    at: usize,
}

impl std::io::Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.at..];
        let want = 1 + usize::from(rest.first().copied().unwrap_or(0) % 64);
        let n = want.min(rest.len()).min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// The items of an input as a caller sees them: a record framed without scanning
/// ([`Item::unchecked`], which depends on what the read buffer already holds) is resolved the way the
/// batch driver resolves it, so that only what reaches the results is compared.
fn records(reader: Box<dyn std::io::BufRead + Send>, limit: usize) -> Vec<(Item, Vec<u8>)> {
    let mut splitter = Splitter::new(reader, limit);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(mut item) = splitter.next_item(&mut buf) {
        let mut bytes = if item.kind == ItemKind::Record {
            std::mem::take(&mut buf)
        } else {
            Vec::new()
        };
        if item.unchecked {
            item.unchecked = false;
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
                && let Some(p) = crate::input::cut_off(item.line, &bytes)
            {
                item.kind = ItemKind::Invalid(p);
                bytes.clear();
            }
        }
        out.push((item, bytes));
        buf.clear();
    }
    out
}

/// An input: framing it whole and framing it read in small pieces give the same items (detection
/// never depends on how the bytes arrive); lines never go back; no record is longer than the limit;
/// a record that fits is screened like any (the profile invariant).
pub fn reader(data: &[u8]) {
    for limit in [64, 1 << 20] {
        let whole = records(Box::new(std::io::Cursor::new(data.to_vec())), limit);
        let pieces = Box::new(std::io::BufReader::with_capacity(
            7,
            Pieces {
                data: data.to_vec(),
                at: 0,
            },
        ));
        let split = records(pieces, limit);
        assert_eq!(whole, split, "framing depends on read sizes");
        let mut last = 0;
        for (item, bytes) in &whole {
            assert!(item.line >= last, "line {} after line {last}", item.line);
            last = item.line;
            assert!(bytes.len() <= limit, "a record over the limit was kept");
            if limit > 64 && item.kind == ItemKind::Record {
                profile(bytes);
            }
        }
    }
}
