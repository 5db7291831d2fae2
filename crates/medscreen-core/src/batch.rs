//! Batch screening: streams of records in, exactly one result per record out, in input order.
//!
//! Each input is its own unit: an input that is broken or cannot be read to its end gives its invalid
//! result(s) (`truncated_input`, `io_error`, ...) and the next input is read; the run itself never stops
//! because of an input.
//!
//! The work runs on the [`driver`]: the calling thread reads inputs and cuts them into chunks (up to
//! 1,024 records or 256 KiB); the workers validate, screen and format each chunk into its own output
//! buffers through [`output`]; the writer puts chunks back in input order, writes them and adds up the
//! statistics. A chunk's buffers are the driver's tokens, so they bound what is in flight and are
//! reused. Output does not depend on the thread count, since each record's bytes depend only on the
//! record.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::driver::{self, Feed};
use crate::engine::Engine;
use crate::input::{self, Hint, ItemKind, Source, Splitter};
use crate::output::{self, OutputOptions, Reported, ReportedPacks, Stream};
use crate::profile::Profile;
use crate::schema::{Problem, ProblemCode};
use crate::severity::Severity;
use crate::tally::ScreenTally;
use crate::vocab::MatchCache;

/// What to do with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Validate and screen.
    Screen,
    /// Validate only.
    Validate,
}

/// Settings of one batch run.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Records longer than this are reported invalid without being buffered.
    pub max_record_bytes: usize,
    /// Screen or only validate.
    pub mode: Mode,
    /// Output format and filters.
    pub output: OutputOptions,
    /// Report whether any caution reached this severity.
    pub fail_on: Option<Severity>,
    /// How many distinct ids to remember for the duplicate check.
    pub duplicate_check_limit: usize,
    /// Show progress on standard error.
    pub progress: bool,
    /// Called by the workers with each record's result as written (its bytes in the output format,
    /// newline included) and, when the record was a valid profile, the profile: the population report
    /// counts what it needs (age, sex) without keeping records. Called from several threads, in no
    /// particular order.
    pub observer: Option<Arc<dyn Observer>>,
}

/// What [`BatchConfig::observer`] is given for each record.
pub trait Observer: Send + Sync {
    /// One record's result as written, and its profile if it was valid.
    fn result(&self, written: &[u8], profile: Option<&Profile>);
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            threads: 1,
            max_record_bytes: 1 << 20,
            mode: Mode::Screen,
            output: OutputOptions::default(),
            fail_on: None,
            duplicate_check_limit: 1_000_000,
            progress: false,
            observer: None,
        }
    }
}

/// Counts and timings of a run. `read = clear + flagged + invalid` when screening, and
/// `read = valid + invalid` when validating.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Records read (blank lines excluded).
    pub read: u64,
    /// Screened with no caution (at or above the minimum severity).
    pub clear: u64,
    /// Screened with at least one caution.
    pub flagged: u64,
    /// Passed validation (`validate`).
    pub valid: u64,
    /// Rejected, each with its reasons in the output.
    pub invalid: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Cautions by severity.
    pub cautions_by_severity: BTreeMap<&'static str, u64>,
    /// Cautions by rule.
    pub cautions_by_rule: BTreeMap<String, u64>,
    /// Indeterminate results by rule.
    pub indeterminate_by_rule: BTreeMap<String, u64>,
    /// Invalid records by problem code (first problem of each record).
    pub invalid_by_code: BTreeMap<&'static str, u64>,
    /// Records whose `id` was seen before.
    pub duplicate_ids: u64,
    /// A few of them, with where they were seen again.
    pub duplicate_examples: Vec<DuplicateId>,
    /// Whether the duplicate check stopped remembering new ids (the limit was reached).
    pub duplicate_check_truncated: bool,
    /// Some caution reached `--fail-on`.
    pub fail_on_reached: bool,
    /// Inputs, in order.
    pub inputs: Vec<String>,
    /// The rule pack (with several packs, their rulesets joined by `,`).
    pub ruleset: String,
    /// With several packs, each pack's counts, in the packs' order (absent with one pack; the record
    /// counts above are then of records, flagged when any pack flagged them, and the maps by rule add
    /// up every pack's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<PackSummary>,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
    /// Records per second.
    pub records_per_second: f64,
}

/// One pack's counts in a run where several packs screen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackSummary {
    /// The pack's name.
    pub pack: String,
    /// Its `name@version#hash`.
    pub ruleset: String,
    /// Screened records it reported no caution for.
    pub clear: u64,
    /// Screened records it reported a caution for.
    pub flagged: u64,
    /// Its cautions by severity.
    pub cautions_by_severity: BTreeMap<&'static str, u64>,
    /// Its cautions by rule.
    pub cautions_by_rule: BTreeMap<String, u64>,
    /// Its undecided rules.
    pub indeterminate_by_rule: BTreeMap<String, u64>,
}

/// Add the counts of `from` to `to`, key by key (a run's counts by rule over several packs' summaries).
pub fn add_counts(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, n) in from {
        *to.entry(k.clone()).or_default() += n;
    }
}

/// An `id` seen more than once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateId {
    /// The id.
    pub id: String,
    /// The input where it was seen again.
    pub input: String,
    /// The line where it was seen again.
    pub line: u64,
}

/// Why a run stopped early. An input that cannot be read is not one: it gives an invalid result.
#[derive(Debug)]
#[non_exhaustive]
pub enum BatchError {
    /// The output could not be written (a closed pipe is [`io::ErrorKind::BrokenPipe`]).
    Output(io::Error),
}

impl crate::diagnostic::Diagnostic for BatchError {
    fn code(&self) -> &'static str {
        match self {
            BatchError::Output(_) => "output_error",
        }
    }

    fn message(&self) -> std::borrow::Cow<'_, str> {
        match self {
            BatchError::Output(e) => format!("cannot write the output: {e}").into(),
        }
    }

    fn location(&self) -> crate::diagnostic::Location<'_> {
        crate::diagnostic::Location::Nowhere
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::diagnostic::render(self, f)
    }
}

impl std::error::Error for BatchError {}

/// Where results go: the main output, and optionally a separate one for invalid records.
pub struct Sinks<'a> {
    /// Results (and invalid records unless `errors` is given).
    pub main: &'a mut (dyn Write + Send),
    /// Invalid records, when diverted.
    pub errors: Option<&'a mut (dyn Write + Send)>,
}

const CHUNK_RECORDS: usize = 1024;
const CHUNK_BYTES: usize = 256 << 10;

#[cfg(test)]
mod tests {
    use super::{IdSet, Seen};

    #[test]
    fn id_set_finds_repeats_across_batches_and_stops_at_its_limit() {
        let mut set = IdSet::new(40_000);
        for h in 0..40_000u64 {
            assert!(matches!(set.insert(h * 7919), Seen::New));
        }
        assert!(
            matches!(set.insert(5 * 7919), Seen::Again),
            "repeat of a merged id"
        );
        assert!(
            matches!(set.insert(39_999 * 7919), Seen::Again),
            "repeat of a recent id"
        );
        assert!(matches!(set.insert(1), Seen::Full));
    }
}

enum RecKind {
    Json,
    TooLarge,
    Invalid(Problem),
}

struct Rec {
    line: u64,
    index: Option<u64>,
    start: usize,
    end: usize,
    kind: RecKind,
    hint: Option<Hint>,
    /// Framed without a scan: see [`input::Item::unchecked`].
    unchecked: bool,
}

/// The buffers a chunk travels with. The writer clears them and hands them back to the reader (they are
/// the tokens that bound what is in flight), so the large allocations are made once per run and never
/// freed on another thread than the one that made them.
#[derive(Default)]
struct Buffers {
    data: Vec<u8>,
    recs: Vec<Rec>,
    main: Vec<u8>,
    errors: Vec<u8>,
}

impl Buffers {
    /// Empty, keeping capacity, but not an outsized one left by a huge record.
    fn recycle(mut self) -> Buffers {
        for v in [&mut self.data, &mut self.main, &mut self.errors] {
            v.clear();
            if v.capacity() > 16 << 20 {
                *v = Vec::new();
            }
        }
        self.recs.clear();
        self
    }
}

struct Chunk {
    input: usize,
    bufs: Buffers,
    blank: u64,
}

#[derive(Default)]
struct ChunkStats {
    read: u64,
    valid: u64,
    invalid: u64,
    blank: u64,
    screened: ScreenTally,
    invalid_codes: Vec<(ProblemCode, u64)>,
    ids: Vec<(u64, u64, String)>,
}

struct Done {
    input: usize,
    bufs: Buffers,
    stats: ChunkStats,
}

/// Screen (or validate) every record of `sources`, in order, writing one result per record.
///
/// Returns the summary, and the error that stopped the run early if one did; whatever was read before
/// it is still written and counted.
pub fn run(
    engine: &Engine,
    sources: &[Source],
    cfg: &BatchConfig,
    sinks: Sinks<'_>,
) -> (Summary, Option<BatchError>) {
    let started = Instant::now();
    // One screening per pack when several screen, whatever the caller's options said.
    let several = BatchConfig {
        output: OutputOptions {
            several_packs: engine.several() && cfg.mode == Mode::Screen,
            ..cfg.output.clone()
        },
        ..cfg.clone()
    };
    let cfg = &several;
    let names: Vec<String> = sources.iter().map(Source::name).collect();
    let stop = AtomicBool::new(false);
    let divert = sinks.errors.is_some();
    let mut writer = Writer::new(engine, cfg, &names, sinks, &stop);
    driver::run(
        cfg.threads,
        |feed| read_chunks(sources, cfg.max_record_bytes, &stop, feed),
        |chunk| process(engine, cfg, &names, divert, chunk),
        |done| writer.chunk(done),
    );
    let (mut summary, write_error) = writer.finish();
    let elapsed = started.elapsed().as_secs_f64();
    summary.inputs = names;
    let labels: Vec<&str> = engine
        .screening_packs()
        .map(|p| p.ruleset().label.as_str())
        .collect();
    summary.ruleset = labels.join(",");
    summary.elapsed_seconds = elapsed;
    summary.records_per_second = if elapsed > 0.0 {
        summary.read as f64 / elapsed
    } else {
        0.0
    };
    (summary, write_error.map(BatchError::Output))
}

/// Cut every input into chunks and send each to the workers, in buffers taken from the driver's tokens.
/// An input's read error is one of its records (see [`Splitter`]), so every input is read.
fn read_chunks(
    sources: &[Source],
    limit: usize,
    stop: &AtomicBool,
    feed: &mut Feed<'_, Buffers, Chunk>,
) {
    let mut buf = Vec::new();
    let mut chunk = Chunk {
        input: 0,
        bufs: feed.token(),
        blank: 0,
    };
    for (input, source) in sources.iter().enumerate() {
        let mut splitter = Splitter::open(source, limit);
        chunk.input = input;
        while let Some(item) = splitter.next_item(&mut buf) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let kind = match item.kind {
                ItemKind::Blank => {
                    chunk.blank += 1;
                    continue;
                }
                ItemKind::Record => RecKind::Json,
                ItemKind::TooLarge => RecKind::TooLarge,
                ItemKind::Invalid(problem) => RecKind::Invalid(problem),
            };
            let data = &mut chunk.bufs.data;
            let start = data.len();
            data.extend_from_slice(&buf);
            let end = data.len();
            chunk.bufs.recs.push(Rec {
                line: item.line,
                index: item.index,
                start,
                end,
                kind,
                hint: item.hint,
                unchecked: item.unchecked,
            });
            if chunk.bufs.recs.len() >= CHUNK_RECORDS || end >= CHUNK_BYTES {
                dispatch(&mut chunk, input, feed);
            }
        }
        dispatch(&mut chunk, input, feed);
    }
}

/// Send `chunk` to be processed, if it holds anything, and continue in fresh buffers.
fn dispatch(chunk: &mut Chunk, input: usize, feed: &mut Feed<'_, Buffers, Chunk>) {
    if chunk.bufs.recs.is_empty() && chunk.blank == 0 {
        return;
    }
    let next = Chunk {
        input,
        bufs: feed.token(),
        blank: 0,
    };
    feed.send(std::mem::replace(chunk, next));
}

/// Validate, screen and format one chunk.
/// With `divert`, invalid records' results go to their own buffer, for the errors sink.
#[expect(
    clippy::indexing_slicing,
    reason = "each record's span was cut by the splitter from this very chunk's data"
)]
fn process(
    engine: &Engine,
    cfg: &BatchConfig,
    names: &[String],
    divert: bool,
    chunk: Chunk,
) -> Done {
    let opts = &cfg.output;
    let Chunk {
        input: input_index,
        bufs,
        blank,
    } = chunk;
    let Buffers {
        data,
        recs,
        mut main,
        mut errors,
    } = bufs;
    let mut st = ChunkStats {
        blank,
        ..ChunkStats::default()
    };
    let input = names.get(input_index).map(String::as_str);
    let mut cache = MatchCache::new();
    for rec in &recs {
        st.read += 1;
        let bytes = &data[rec.start..rec.end];
        let rejected = match &rec.kind {
            RecKind::TooLarge => Err((None, vec![Problem::too_large(cfg.max_record_bytes)])),
            RecKind::Invalid(problem) => Err((None, vec![problem.clone()])),
            RecKind::Json => engine.parse_profile(bytes).map_err(|r| {
                match rec
                    .unchecked
                    .then(|| input::cut_off(rec.line, bytes))
                    .flatten()
                {
                    Some(cut) => (None, vec![cut]),
                    None => (r.id, r.problems),
                }
            }),
        };
        match rejected {
            Err((id, mut problems)) => {
                if let Some(hint) = &rec.hint {
                    hint.apply(&mut problems);
                }
                st.invalid += 1;
                if let Some(p) = problems.first() {
                    match st.invalid_codes.iter_mut().find(|(c, _)| *c == p.code) {
                        Some((_, n)) => *n += 1,
                        None => st.invalid_codes.push((p.code, 1)),
                    }
                }
                let out = if divert { &mut errors } else { &mut main };
                let start = out.len();
                output::invalid_at(
                    opts,
                    out,
                    rec.line,
                    rec.index,
                    input,
                    id.as_deref(),
                    &problems,
                );
                if let (Some(o), Some(written)) = (&cfg.observer, out.get(start..)) {
                    o.result(written, None);
                }
            }
            Ok(profile) => {
                st.ids
                    .push((hash_id(&profile.id), rec.line, profile.id.clone()));
                if cfg.mode == Mode::Validate {
                    st.valid += 1;
                    output::valid_at(opts, &mut main, rec.line, rec.index, input, &profile.id);
                    continue;
                }
                let start = main.len();
                if opts.several_packs {
                    let s = engine.screen_packs_with(&profile, &mut cache);
                    st.screened
                        .add_packs(&ReportedPacks::new(&s, opts.min_severity), cfg.fail_on);
                    output::screened_packs_at(opts, &mut main, rec.line, rec.index, input, &s, &[]);
                } else {
                    let s = engine.screen_with(&profile, &mut cache);
                    st.screened
                        .add(&Reported::new(&s, opts.min_severity), cfg.fail_on);
                    output::screened_at(
                        opts,
                        &mut main,
                        rec.line,
                        rec.index,
                        input,
                        &s,
                        &output::NoAnnotation,
                    );
                }
                if let (Some(o), Some(written)) = (&cfg.observer, main.get(start..)) {
                    o.result(written, Some(&profile));
                }
            }
        }
    }
    Done {
        input: input_index,
        bufs: Buffers {
            data,
            recs,
            main,
            errors,
        },
        stats: st,
    }
}

/// The ids seen so far, as 64-bit hashes: a sorted vector (8 bytes an id) plus a small batch of recent
/// ones, merged in when it fills. Exact up to hash collisions (about 1 in 10^7 at a million ids), and
/// bounded: past `limit` ids it stops remembering new ones and says so.
struct IdSet {
    sorted: Vec<u64>,
    recent: HashSet<u64>,
    limit: usize,
}

enum Seen {
    New,
    Again,
    Full,
}

impl IdSet {
    const BATCH: usize = 1 << 14;

    fn new(limit: usize) -> IdSet {
        IdSet {
            sorted: Vec::new(),
            recent: HashSet::new(),
            limit,
        }
    }

    fn insert(&mut self, hash: u64) -> Seen {
        if self.recent.contains(&hash) || self.sorted.binary_search(&hash).is_ok() {
            return Seen::Again;
        }
        if self.sorted.len() + self.recent.len() >= self.limit {
            return Seen::Full;
        }
        self.recent.insert(hash);
        if self.recent.len() >= Self::BATCH {
            let mut batch: Vec<u64> = self.recent.drain().collect();
            batch.sort_unstable();
            let old = std::mem::take(&mut self.sorted);
            self.sorted = merge_sorted(&old, &batch);
        }
        Seen::New
    }
}

fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
    while let (Some(&x), Some(&y)) = (a.peek(), b.peek()) {
        if x <= y {
            out.push(x);
            a.next();
        } else {
            out.push(y);
            b.next();
        }
    }
    out.extend(a);
    out.extend(b);
    out
}

fn hash_id(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The writer's side of a run: writes chunks (handed over in input order) and adds up the statistics.
struct Writer<'a, 's> {
    engine: &'a Engine,
    names: &'a [String],
    main: Option<Stream<'s>>,
    errors: Option<Stream<'s>>,
    error: Option<io::Error>,
    stop: &'a AtomicBool,
    summary: Summary,
    screened: ScreenTally,
    /// One screening per pack (several packs screen).
    several: bool,
    seen: IdSet,
    progress: bool,
    started: Instant,
    last_progress: Instant,
}

impl<'a, 's> Writer<'a, 's> {
    /// Begin both streams (their headers are written now).
    fn new(
        engine: &'a Engine,
        cfg: &BatchConfig,
        names: &'a [String],
        sinks: Sinks<'s>,
        stop: &'a AtomicBool,
    ) -> Writer<'a, 's> {
        let mut w = Writer {
            engine,
            names,
            main: None,
            errors: None,
            error: None,
            stop,
            summary: Summary::default(),
            screened: ScreenTally::default(),
            several: cfg.output.several_packs,
            seen: IdSet::new(cfg.duplicate_check_limit),
            progress: cfg.progress && io::stderr().is_terminal(),
            started: Instant::now(),
            last_progress: Instant::now(),
        };
        w.main = w.check(Stream::begin(sinks.main, &cfg.output));
        if let Some(out) = sinks.errors {
            w.errors = w.check(Stream::begin(out, &cfg.output));
        }
        w
    }

    /// Keep the first error, and stop the reader: nothing more can be written.
    fn check<T>(&mut self, r: io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.stop.store(true, Ordering::Relaxed);
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Write one chunk and count it; returns its buffers for reuse.
    fn chunk(&mut self, d: Done) -> Buffers {
        if self.error.is_none() {
            let written = self.main.as_mut().map(|m| m.write(&d.bufs.main));
            if let Some(r) = written {
                self.check(r);
            }
            let written = self.errors.as_mut().map(|e| e.write(&d.bufs.errors));
            if let Some(r) = written {
                self.check(r);
            }
        }
        let st = d.stats;
        let summary = &mut self.summary;
        summary.read += st.read;
        summary.valid += st.valid;
        summary.invalid += st.invalid;
        summary.blank_lines += st.blank;
        self.screened.merge(&st.screened);
        for (code, n) in st.invalid_codes {
            *summary.invalid_by_code.entry(code.as_str()).or_default() += n;
        }
        for (hash, line, id) in st.ids {
            match self.seen.insert(hash) {
                Seen::Again => {
                    summary.duplicate_ids += 1;
                    if summary.duplicate_examples.len() < 10 {
                        let input = self.names.get(d.input).cloned().unwrap_or_default();
                        summary
                            .duplicate_examples
                            .push(DuplicateId { id, input, line });
                    }
                }
                Seen::New => {}
                Seen::Full => summary.duplicate_check_truncated = true,
            }
        }
        if self.progress && self.last_progress.elapsed() > Duration::from_millis(250) {
            self.last_progress = Instant::now();
            let rate = summary.read as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let _ = write!(
                io::stderr(),
                "\r{} records, {:.0} records/s ",
                summary.read,
                rate
            );
        }
        d.bufs.recycle()
    }

    /// Write the footers, and return the summary and the first write error.
    fn finish(mut self) -> (Summary, Option<io::Error>) {
        if self.progress {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
        if self.error.is_none() {
            for stream in [self.main.as_mut(), self.errors.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Err(e) = stream.finish() {
                    self.error.get_or_insert(e);
                }
            }
        }
        let rules = self.engine.rules();
        let mut summary = self.summary;
        summary.clear = self.screened.clear;
        summary.flagged = self.screened.flagged;
        summary.fail_on_reached = self.screened.fail_on_reached;
        summary.cautions_by_severity = self.screened.cautions_by_severity();
        if self.several {
            summary.packs = self.screened.pack_summaries(self.engine);
            for p in &summary.packs {
                add_counts(&mut summary.cautions_by_rule, &p.cautions_by_rule);
                add_counts(&mut summary.indeterminate_by_rule, &p.indeterminate_by_rule);
            }
        } else {
            summary.cautions_by_rule = self.screened.cautions_by_rule(rules);
            summary.indeterminate_by_rule = self.screened.indeterminate_by_rule(rules);
        }
        (summary, self.error)
    }
}
