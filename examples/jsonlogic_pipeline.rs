//! The issue-14 baseline: the screening pipeline a user could assemble in an afternoon from
//! `jsonschema`, a JSONLogic engine (`datalogic-rs`) and an Aho-Corasick matcher, with medscreen's full
//! catalog (profile schema, vocabulary, rule pack). `benches/throughput.sh` times it beside
//! `medscreen screen` on the same data in the same run; issue 14 asks medscreen to be at least 2.5x as
//! fast with the default output and 5x with `--detail minimal`.
//!
//! ```text
//! cargo run --release --example jsonlogic_pipeline -- [--threads N] [--pack NAME]
//!     [--detail compact|minimal] [-o OUT] FILE.ndjson
//! ```
//!
//! It is meant to be a fair opponent, built as a competent user would build it, neither tuned nor
//! sabotaged. It reads the same embedded data as the engine (`medscreen::engine::PROFILE_SCHEMA`,
//! `EMBEDDED_VOCABULARY`, `EMBEDDED_PACKS`) and nothing else of medscreen. At start it builds, once:
//!
//! - a `jsonschema` validator of the profile schema with every pack's declared facts added to its
//!   properties (the profile the engine accepts);
//! - one `aho-corasick` automaton (leftmost-longest) over every ingredient name, synonym and brand,
//!   normalised as the vocabulary says (lower case, letters and digits as words, the rest as spaces),
//!   plus maps from RxNorm CUI and ATC code to ingredient and the classes' ATC group prefixes;
//! - one compiled JSONLogic rule per pack rule, translated from the pack's JSON:
//!   `{"if": [<applies is false>, null, <tier 1>, 0, <tier 2>, 1, ..., {"missing": [<facts>]}]}`, which
//!   yields the number of the first true tier, or the rule's missing facts (none: silent).
//!
//! Per record (in parallel with rayon, 2,048 lines per chunk, output in input order, one NDJSON line
//! each, as `medscreen screen` writes it): parse to `serde_json::Value`; validate (an invalid record is one
//! line with its schema errors, pointer and masked message; a line that is not JSON, one with the parse
//! error); drop `null` members (the packs' "null means unknown"); match the comedications and add what
//! they matched as variables (`_classes`, the classes and tags present; `_count<k>`, distinct ingredients
//! in the class set of the pack's k-th count test; `_unrecognized`; `_subject` and `_subject_text`,
//! entries naming the pack's own drug); add each free-text fact that a text test reads, normalised, as
//! `_text_<fact>`; convert the record once into the engine's arena and evaluate every rule on it. The
//! input is read a batch (4 chunks per thread) at a time, and reading does not overlap screening.
//!
//! The translation: a fact comparison is the JSONLogic operator on `{"var": fact}` guarded by the fact
//! being present, `known`/`unknown` compare with `null`, `all`/`any` are `and`/`or`, `not` is pushed
//! down to the leaves (De Morgan, each comparison inverted, still guarded), `in` is `in`; a class test is
//! `in` on `_classes`, a count test `>=` on its `_count<k>`, a text or subject-terms test is `in` of the
//! space-padded normalised term on the padded text (whole words). Because a test on a missing fact is
//! false either way round, a tier is true exactly when the engine's three-valued logic makes it true,
//! and a rule's `applies` is skipped only when it is false for certain.
//!
//! Known differences from `medscreen screen`:
//!
//! - **Indeterminate rules** are "no tier true and some fact the rule tests is missing" (JSONLogic's
//!   `missing` over the rule's facts, listed once per rule at start; facts tested only by
//!   `known`/`unknown` excluded), not the engine's "some tier unknown": a rule decided false by a known
//!   fact (`egfr` 90 makes `egfr < 60 and dose >= 20` false) is still listed when another of its facts
//!   (`dose`) is missing, and the missing list holds every missing fact of the rule. So the pipeline
//!   lists more rules as indeterminate (or `undecided`) than the engine, never fewer. Cautions, status
//!   and highest severity are not affected: a tier is true here exactly when it is there.
//! - **Groups** (`BAC-DDI`: each ingredient cited by one rule only) are approximated after evaluation:
//!   in each fired member an ingredient reaches the first tier, from the one that fired for the whole
//!   list on, that tests one of its classes; it goes to the member where that tier is the most severe
//!   (the earlier member on a tie), a member fires with the most severe tier its ingredients reach, and
//!   a member given none is dropped. The engine evaluates each member with each ingredient alone; the
//!   two differ only for a tier that needs several classes at once (`all` of class tests).
//! - **Medication matching** takes leftmost-longest whole-word matches (the engine takes every match
//!   and drops those inside a longer one), and caches nothing across records.
//! - **Output**: the same shape as the engine's NDJSON, but `evidence` is an object of the fired tier's
//!   facts present in the record (`{"egfr": 25, "dialysis": false}`, more than the engine cites) and of
//!   the medication entries it matched (`"comedications": [{"pointer", "value", "ingredient",
//!   "class"}]`); schema error messages are `jsonschema`'s, masked (no values), without a code.
//!   `--detail minimal` writes rule and severity only and `undecided`, as the engine does.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use datalogic_rs::bumpalo::Bump;
use datalogic_rs::{DataValue, EvalInput, Logic};
use medscreen::vocab::normalize;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Lines per parallel work item.
const CHUNK: usize = 2048;

const USAGE: &str = "usage: jsonlogic_pipeline [--threads N] [--pack NAME] [--detail compact|minimal] [-o OUT] FILE.ndjson";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let pipeline = match Pipeline::load(args.pack.as_deref(), args.minimal) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&pipeline, &args) {
        Ok(tally) => {
            eprintln!(
                "{} records: {} valid ({} flagged), {} invalid",
                tally.valid + tally.invalid,
                tally.valid,
                tally.flagged,
                tally.invalid
            );
            if tally.invalid > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

struct Args {
    threads: usize,
    pack: Option<String>,
    minimal: bool,
    out: Option<String>,
    input: String,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (mut pack, mut minimal, mut out, mut input) = (None, false, None, None);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("`{name}` needs a value"));
            match arg.as_str() {
                "--threads" => {
                    threads = value("--threads")?
                        .parse()
                        .map_err(|_| "`--threads` takes a number".to_string())?;
                }
                "--pack" => pack = Some(value("--pack")?),
                "--detail" => match value("--detail")?.as_str() {
                    "compact" => minimal = false,
                    "minimal" => minimal = true,
                    other => return Err(format!("unknown detail `{other}`")),
                },
                "-o" | "--output" => out = Some(value("-o")?),
                _ if arg.starts_with('-') => return Err(format!("unknown option `{arg}`")),
                _ if input.is_none() => input = Some(arg),
                _ => return Err("one input file only".into()),
            }
        }
        Ok(Args {
            threads: threads.max(1),
            pack,
            minimal,
            out,
            input: input.ok_or("no input file")?,
        })
    }
}

/// How many records came out which way.
#[derive(Default)]
struct Tally {
    valid: usize,
    flagged: usize,
    invalid: usize,
}

/// Read the input in batches of chunks, screen each batch's chunks in parallel, write in order.
fn run(pipeline: &Pipeline, args: &Args) -> io::Result<Tally> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(io::Error::other)?;
    let mut reader = BufReader::with_capacity(1 << 20, File::open(&args.input)?);
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(BufWriter::with_capacity(1 << 20, File::create(path)?)),
        None => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    };
    let batch = CHUNK * args.threads * 4;
    let mut tally = Tally::default();
    let mut line_no = 0;
    loop {
        let mut lines: Vec<(usize, Vec<u8>)> = Vec::with_capacity(batch);
        while lines.len() < batch {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            line_no += 1;
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push((line_no, line));
            }
        }
        if lines.is_empty() {
            break;
        }
        let results: Vec<(Vec<u8>, Tally)> = pool.install(|| {
            lines
                .par_chunks(CHUNK)
                .map(|chunk| pipeline.screen_chunk(chunk))
                .collect()
        });
        for (bytes, t) in results {
            out.write_all(&bytes)?;
            tally.valid += t.valid;
            tally.flagged += t.flagged;
            tally.invalid += t.invalid;
        }
    }
    out.flush()?;
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------------
// The vocabulary and the Aho-Corasick matcher.

#[derive(Deserialize)]
struct VocabularyFile {
    classes: Vec<ClassFile>,
    #[serde(default)]
    tags: Vec<TagFile>,
    ingredients: Vec<IngredientFile>,
}

#[derive(Deserialize)]
struct ClassFile {
    id: String,
    parent: Option<String>,
    #[serde(default)]
    atc_prefixes: Vec<String>,
}

#[derive(Deserialize)]
struct TagFile {
    id: String,
}

#[derive(Deserialize)]
struct IngredientFile {
    name: String,
    #[serde(default)]
    synonyms: Vec<String>,
    #[serde(default)]
    brands: Vec<String>,
    #[serde(default)]
    atc: Vec<String>,
    #[serde(default)]
    rxnorm: Option<Value>,
    classes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

struct Ingredient {
    name: String,
    /// Class and tag indices, ancestors included.
    classes: Vec<usize>,
}

struct Vocabulary {
    /// Class ids, then tag ids.
    class_names: Vec<String>,
    ingredients: Vec<Ingredient>,
    automaton: AhoCorasick,
    /// The ingredients each pattern names (a combination brand names several).
    owners: Vec<Vec<usize>>,
    by_rxnorm: HashMap<String, usize>,
    by_atc: HashMap<String, usize>,
    /// ATC groups wholly in a class, with the class and its ancestors.
    atc_prefixes: Vec<(String, Vec<usize>)>,
}

impl Vocabulary {
    fn load(text: &str) -> Result<Vocabulary, String> {
        let file: VocabularyFile =
            serde_json::from_str(text).map_err(|e| format!("vocabulary: {e}"))?;
        let mut class_names: Vec<String> = file.classes.iter().map(|c| c.id.clone()).collect();
        class_names.extend(file.tags.iter().map(|t| t.id.clone()));
        let index = |name: &str| class_names.iter().position(|c| c == name);
        // Each class with its ancestors.
        let mut lineage: Vec<Vec<usize>> = Vec::new();
        for (i, class) in file.classes.iter().enumerate() {
            let mut chain = vec![i];
            let mut parent = class.parent.as_deref();
            while let Some(p) = parent {
                let k = index(p).ok_or(format!("vocabulary: unknown parent class `{p}`"))?;
                if chain.contains(&k) {
                    return Err(format!("vocabulary: class `{p}` is its own ancestor"));
                }
                chain.push(k);
                parent = file.classes.get(k).and_then(|c| c.parent.as_deref());
            }
            lineage.push(chain);
        }
        let mut atc_prefixes = Vec::new();
        for (class, chain) in file.classes.iter().zip(&lineage) {
            for p in &class.atc_prefixes {
                atc_prefixes.push((p.to_ascii_uppercase(), chain.clone()));
            }
        }
        let mut ingredients = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut pattern_index: HashMap<String, usize> = HashMap::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let (mut by_rxnorm, mut by_atc) = (HashMap::new(), HashMap::new());
        for (id, ing) in file.ingredients.iter().enumerate() {
            let mut classes = Vec::new();
            for name in ing.classes.iter().chain(&ing.tags) {
                let k = index(name).ok_or(format!(
                    "vocabulary: unknown class `{name}` for `{}`",
                    ing.name
                ))?;
                for &c in lineage.get(k).map_or(&[k][..], Vec::as_slice) {
                    if !classes.contains(&c) {
                        classes.push(c);
                    }
                }
            }
            for term in std::iter::once(&ing.name)
                .chain(&ing.synonyms)
                .chain(&ing.brands)
            {
                let norm = normalize(term).trim().to_string();
                if norm.is_empty() {
                    continue;
                }
                let p = *pattern_index.entry(norm.clone()).or_insert_with(|| {
                    patterns.push(norm);
                    owners.push(Vec::new());
                    owners.len() - 1
                });
                if let Some(o) = owners.get_mut(p)
                    && !o.contains(&id)
                {
                    o.push(id);
                }
            }
            match &ing.rxnorm {
                Some(Value::String(cui)) => {
                    by_rxnorm.insert(cui.clone(), id);
                }
                Some(Value::Array(cuis)) => {
                    for cui in cuis.iter().filter_map(Value::as_str) {
                        by_rxnorm.insert(cui.to_string(), id);
                    }
                }
                _ => {}
            }
            for code in &ing.atc {
                by_atc.insert(code.to_ascii_uppercase(), id);
            }
            ingredients.push(Ingredient {
                name: ing.name.clone(),
                classes,
            });
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|e| format!("vocabulary: {e}"))?;
        Ok(Vocabulary {
            class_names,
            ingredients,
            automaton,
            owners,
            by_rxnorm,
            by_atc,
            atc_prefixes,
        })
    }

    fn class_index(&self, name: &str) -> Option<usize> {
        self.class_names.iter().position(|c| c == name)
    }

    /// Ingredients named in `text` as whole words.
    fn match_text(&self, text: &str, out: &mut Vec<usize>) {
        let hay = normalize(text);
        let bytes = hay.as_bytes();
        for m in self.automaton.find_iter(&hay) {
            let whole = m.start() > 0
                && bytes.get(m.start() - 1) == Some(&b' ')
                && bytes.get(m.end()) == Some(&b' ');
            if !whole {
                continue;
            }
            for &id in self
                .owners
                .get(m.pattern().as_usize())
                .into_iter()
                .flatten()
            {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
}

fn add_unique(to: &mut Vec<usize>, from: &[usize]) {
    for x in from {
        if !to.contains(x) {
            to.push(*x);
        }
    }
}

/// One distinct thing the comedications name: an ingredient, or an ATC group with no exact code.
struct Item {
    ingredient: Option<usize>,
    atc_group: Option<String>,
    classes: Vec<usize>,
    /// The first entry that named it.
    entry: usize,
}

/// What one record's comedications matched.
#[derive(Default)]
struct Meds {
    items: Vec<Item>,
    unrecognized: Vec<usize>,
    /// Entries naming the pack's own drug (never its own comedication).
    subject: Vec<usize>,
    subject_text: String,
}

impl Meds {
    fn of(entries: &[Value], vocab: &Vocabulary, subject: Option<usize>) -> Meds {
        let mut meds = Meds::default();
        let mut found = Vec::new();
        for (k, entry) in entries.iter().enumerate() {
            found.clear();
            let mut group: Option<(String, Vec<usize>)> = None;
            let text = match entry {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => {
                    if let Some(id) = o
                        .get("rxnorm")
                        .and_then(Value::as_str)
                        .and_then(|c| vocab.by_rxnorm.get(c))
                    {
                        found.push(*id);
                    }
                    if let Some(atc) = o.get("atc").and_then(Value::as_str) {
                        let atc = atc.to_ascii_uppercase();
                        if let Some(&id) = vocab.by_atc.get(&atc) {
                            if !found.contains(&id) {
                                found.push(id);
                            }
                        } else {
                            let mut classes: Vec<usize> = Vec::new();
                            for (prefix, chain) in &vocab.atc_prefixes {
                                if atc.starts_with(prefix.as_str()) {
                                    add_unique(&mut classes, chain);
                                }
                            }
                            if !classes.is_empty() {
                                group = Some((atc, classes));
                            }
                        }
                    }
                    o.get("name").and_then(Value::as_str)
                }
                _ => None,
            };
            if let Some(text) = text {
                vocab.match_text(text, &mut found);
            }
            if found.is_empty() && group.is_none() {
                meds.unrecognized.push(k);
            }
            if let Some(s) = subject
                && let Some(at) = found.iter().position(|&i| i == s)
            {
                found.remove(at);
                meds.subject.push(k);
                meds.subject_text
                    .push_str(&normalize(text.unwrap_or_default()));
            }
            for &id in &found {
                if !meds.items.iter().any(|it| it.ingredient == Some(id)) {
                    meds.items.push(Item {
                        ingredient: Some(id),
                        atc_group: None,
                        classes: vocab
                            .ingredients
                            .get(id)
                            .map(|i| i.classes.clone())
                            .unwrap_or_default(),
                        entry: k,
                    });
                }
            }
            if let Some((code, classes)) = group
                && !meds
                    .items
                    .iter()
                    .any(|it| it.atc_group.as_deref() == Some(code.as_str()))
            {
                meds.items.push(Item {
                    ingredient: None,
                    atc_group: Some(code),
                    classes,
                    entry: k,
                });
            }
        }
        meds
    }
}

// ---------------------------------------------------------------------------------------------------
// The pack, translated into JSONLogic.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    fn parse(s: &str) -> Option<Severity> {
        match s {
            "critical" => Some(Severity::Critical),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What a fired tier cites.
#[derive(Default)]
struct Cites {
    facts: Vec<String>,
    classes: Vec<usize>,
    unrecognized: bool,
    subject: bool,
}

struct CompiledRule {
    id: String,
    logic: Logic,
    tiers: Vec<(Severity, Cites)>,
}

/// Pack JSON -> JSONLogic JSON, collecting the variables the record must carry.
struct Translator<'v> {
    vocab: &'v Vocabulary,
    /// The class sets of the pack's count tests: `_count<k>`.
    count_sets: Vec<Vec<usize>>,
    /// Facts read by text tests: `_text_<fact>`.
    text_facts: Vec<String>,
    rule: String,
}

fn var(name: &str) -> Value {
    json!({ "var": name })
}

fn present(name: &str) -> Value {
    json!({"!==": [var(name), null]})
}

fn and(a: Value, b: Value) -> Value {
    json!({ "and": [a, b] })
}

impl Translator<'_> {
    fn err(&self, what: String) -> String {
        format!("rule `{}`: {what}", self.rule)
    }

    /// The JSONLogic that is true when `c` is certainly true (`negated`: certainly false).
    fn translate(&mut self, c: &Value, negated: bool, cites: &mut Cites) -> Result<Value, String> {
        let Some(obj) = c.as_object() else {
            return Err(self.err("a condition is an object".into()));
        };
        if let Some(parts) = obj.get("all").or(obj.get("any")) {
            let is_all = obj.contains_key("all");
            let parts = parts
                .as_array()
                .ok_or(self.err("`all`/`any` take an array".into()))?
                .iter()
                .map(|p| self.translate(p, negated, cites))
                .collect::<Result<Vec<_>, _>>()?;
            // De Morgan: not all = any not, not any = all not.
            let op = if is_all != negated { "and" } else { "or" };
            return Ok(json!({ op: parts }));
        }
        if let Some(inner) = obj.get("not") {
            return self.translate(inner, !negated, cites);
        }
        if let Some(fact) = obj.get("fact").and_then(Value::as_str) {
            let op = obj.get("op").and_then(Value::as_str).unwrap_or_default();
            let value = obj.get("value").cloned().unwrap_or(Value::Null);
            if !cites.facts.iter().any(|f| f == fact) {
                cites.facts.push(fact.to_string());
            }
            let (jl, invert) = match op {
                "known" | "unknown" => {
                    let eq = if (op == "known") == negated {
                        "==="
                    } else {
                        "!=="
                    };
                    return Ok(json!({ eq: [var(fact), null] }));
                }
                "in" => {
                    let test = json!({"in": [var(fact), value]});
                    let test = if negated { json!({ "!": test }) } else { test };
                    return Ok(and(present(fact), test));
                }
                "eq" => ("==", "!="),
                "ne" => ("!=", "=="),
                "lt" => ("<", ">="),
                "le" => ("<=", ">"),
                "gt" => (">", "<="),
                "ge" => (">=", "<"),
                other => return Err(self.err(format!("unknown operator `{other}`"))),
            };
            let op = if negated { invert } else { jl };
            return Ok(and(present(fact), json!({ op: [var(fact), value] })));
        }
        if let Some(med) = obj.get("medication") {
            let test = if let Some(class) = med.get("class").and_then(Value::as_str) {
                let k = self
                    .vocab
                    .class_index(class)
                    .ok_or(self.err(format!("unknown class `{class}`")))?;
                if !cites.classes.contains(&k) {
                    cites.classes.push(k);
                }
                json!({"in": [class, var("_classes")]})
            } else if med.get("unrecognized").is_some() {
                cites.unrecognized = true;
                json!({"===": [var("_unrecognized"), !negated]})
            } else if med.get("subject").is_some() {
                cites.subject = true;
                match med.get("terms").and_then(Value::as_array) {
                    None => json!({"===": [var("_subject"), !negated]}),
                    Some(terms) => json!({ "or": terms
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|t| json!({"in": [normalize(t), var("_subject_text")]}))
                        .collect::<Vec<_>>() }),
                }
            } else {
                return Err(self.err("unknown medication test".into()));
            };
            // `_unrecognized` and `_subject` were compared with the wanted value; a class or term
            // test is inverted here, and false when the comedications are unknown.
            let inverted_here = med.get("class").is_some() || med.get("terms").is_some();
            return Ok(if negated && inverted_here {
                and(present("comedications"), json!({ "!": test }))
            } else {
                test
            });
        }
        if let Some(meds) = obj.get("medications") {
            let mut set = Vec::new();
            for class in meds
                .get("classes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let k = self
                    .vocab
                    .class_index(class)
                    .ok_or(self.err(format!("unknown class `{class}`")))?;
                set.push(k);
                if !cites.classes.contains(&k) {
                    cites.classes.push(k);
                }
            }
            let at_least = meds.get("at_least").cloned().unwrap_or(json!(1));
            let k = match self.count_sets.iter().position(|s| *s == set) {
                Some(k) => k,
                None => {
                    self.count_sets.push(set);
                    self.count_sets.len() - 1
                }
            };
            let count = format!("_count{k}");
            let op = if negated { "<" } else { ">=" };
            return Ok(and(present(&count), json!({ op: [var(&count), at_least] })));
        }
        if let Some(text) = obj.get("text") {
            let fact = text
                .get("fact")
                .and_then(Value::as_str)
                .ok_or(self.err("a text test names its fact".into()))?;
            if !cites.facts.iter().any(|f| f == fact) {
                cites.facts.push(fact.to_string());
            }
            if !self.text_facts.iter().any(|f| f == fact) {
                self.text_facts.push(fact.to_string());
            }
            let hay = format!("_text_{fact}");
            let test = json!({ "or": text
                .get("terms")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|t| json!({"in": [normalize(t), var(&hay)]}))
                .collect::<Vec<_>>() });
            let test = if negated { json!({ "!": test }) } else { test };
            return Ok(and(present(&hay), test));
        }
        Err(self.err(format!("unknown condition {c}")))
    }
}

/// The facts a condition reads whose absence leaves it undecided (`known`/`unknown` are always
/// decided); medication tests read `comedications`.
fn rule_facts(c: &Value, out: &mut Vec<String>) {
    let mut add = |f: &str| {
        if !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    };
    if let Some(fact) = c.get("fact").and_then(Value::as_str) {
        if !matches!(
            c.get("op").and_then(Value::as_str),
            Some("known" | "unknown")
        ) {
            add(fact);
        }
    } else if c.get("medication").is_some() || c.get("medications").is_some() {
        add("comedications");
    } else if let Some(fact) = c.pointer("/text/fact").and_then(Value::as_str) {
        add(fact);
    } else {
        for key in ["all", "any"] {
            for p in c.get(key).and_then(Value::as_array).into_iter().flatten() {
                rule_facts(p, out);
            }
        }
        if let Some(inner) = c.get("not") {
            rule_facts(inner, out);
        }
    }
}

struct Pipeline {
    schema: jsonschema::Validator,
    vocab: Vocabulary,
    subject: Option<usize>,
    engine: datalogic_rs::Engine,
    rules: Vec<CompiledRule>,
    /// Member rule indices of each group.
    groups: Vec<Vec<usize>>,
    count_sets: Vec<Vec<usize>>,
    text_facts: Vec<String>,
    ruleset: String,
    minimal: bool,
}

impl Pipeline {
    fn load(pack: Option<&str>, minimal: bool) -> Result<Pipeline, String> {
        use medscreen::engine::{EMBEDDED_PACKS, EMBEDDED_VOCABULARY, PROFILE_SCHEMA};
        let packs: Vec<Value> = EMBEDDED_PACKS
            .iter()
            .map(|(file, text)| serde_json::from_str(text).map_err(|e| format!("{file}: {e}")))
            .collect::<Result<_, _>>()?;
        let wanted = pack.unwrap_or(medscreen::engine::EMBEDDED_DEFAULT);
        let pack = packs
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(wanted))
            .ok_or(format!("no pack `{wanted}`"))?;

        // The accepted profile: the shared schema with every pack's declared facts.
        let mut schema: Value =
            serde_json::from_str(PROFILE_SCHEMA).map_err(|e| format!("profile schema: {e}"))?;
        for p in &packs {
            for (name, fragment) in p
                .get("facts")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let mut fragment = fragment.clone();
                if let Some(f) = fragment.as_object_mut() {
                    f.remove("generate");
                }
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert(name.clone(), fragment);
                }
            }
        }
        let schema =
            jsonschema::validator_for(&schema).map_err(|e| format!("profile schema: {e}"))?;

        let vocab = Vocabulary::load(EMBEDDED_VOCABULARY)?;
        let subject = match pack.pointer("/subject/ingredient").and_then(Value::as_str) {
            Some(name) => Some(
                vocab
                    .ingredients
                    .iter()
                    .position(|i| i.name == name)
                    .ok_or(format!("unknown subject ingredient `{name}`"))?,
            ),
            None => None,
        };

        let engine = datalogic_rs::Engine::new();
        let mut tr = Translator {
            vocab: &vocab,
            count_sets: Vec::new(),
            text_facts: Vec::new(),
            rule: String::new(),
        };
        let mut rules = Vec::new();
        for rule in pack
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = rule.get("id").and_then(Value::as_str).unwrap_or_default();
            tr.rule = id.to_string();
            let mut branches = Vec::new();
            if let Some(applies) = rule.get("applies") {
                branches.push(tr.translate(applies, true, &mut Cites::default())?);
                branches.push(Value::Null);
            }
            let mut tiers = Vec::new();
            let mut facts = Vec::new();
            for (k, tier) in rule
                .get("tiers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let when = tier.get("when").unwrap_or(&Value::Null);
                let mut cites = Cites::default();
                branches.push(tr.translate(when, false, &mut cites)?);
                branches.push(json!(k));
                rule_facts(when, &mut facts);
                let severity = tier
                    .get("severity")
                    .and_then(Value::as_str)
                    .and_then(Severity::parse)
                    .ok_or(tr.err("unknown severity".into()))?;
                tiers.push((severity, cites));
            }
            branches.push(if facts.is_empty() {
                Value::Null
            } else {
                json!({ "missing": facts })
            });
            let logic = engine
                .compile(&json!({ "if": branches }).to_string())
                .map_err(|e| tr.err(format!("JSONLogic: {e}")))?;
            rules.push(CompiledRule {
                id: id.to_string(),
                logic,
                tiers,
            });
        }
        let groups = pack
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|g| {
                g.get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| rules.iter().position(|x| Some(x.id.as_str()) == r.as_str()))
                    .collect()
            })
            .collect();
        let (count_sets, text_facts) = (tr.count_sets, tr.text_facts);

        // The same `name@version#hash` label medscreen writes, from medscreen's own loader.
        let ruleset = medscreen::Engine::embedded_pack(wanted)
            .map_err(|e| e.to_string())?
            .ruleset()
            .label
            .clone();
        Ok(Pipeline {
            schema,
            vocab,
            subject,
            engine,
            rules,
            groups,
            count_sets,
            text_facts,
            ruleset,
            minimal,
        })
    }

    fn screen_chunk(&self, chunk: &[(usize, Vec<u8>)]) -> (Vec<u8>, Tally) {
        let mut arena = Bump::new();
        let mut out = Vec::with_capacity(chunk.len() * 320);
        let mut tally = Tally::default();
        for (line, text) in chunk {
            match self.screen_line(*line, text, &arena, &mut out) {
                Some(true) => {
                    tally.valid += 1;
                    tally.flagged += 1;
                }
                Some(false) => tally.valid += 1,
                None => tally.invalid += 1,
            }
            arena.reset();
        }
        (out, tally)
    }

    /// Screen one line and append its result; `Some(flagged)` for a valid record, `None` otherwise.
    fn screen_line(
        &self,
        line: usize,
        text: &[u8],
        arena: &Bump,
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        let value: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                let errors = vec![SchemaError {
                    pointer: String::new(),
                    message: format!("not JSON: {e}"),
                }];
                write_line(out, &Invalid::new(line, None, errors));
                return None;
            }
        };
        if !self.schema.is_valid(&value) {
            let errors = self
                .schema
                .iter_errors(&value)
                .map(|e| SchemaError {
                    pointer: e.instance_path().to_string(),
                    message: e.masked().to_string(),
                })
                .collect();
            let id = value.get("id").and_then(Value::as_str);
            write_line(out, &Invalid::new(line, id, errors));
            return None;
        }
        let Value::Object(mut record) = value else {
            return None;
        };
        // Absent and null both mean unknown; `missing` only sees absent members.
        record.retain(|_, v| !v.is_null());
        let meds = record
            .get("comedications")
            .and_then(Value::as_array)
            .map(|m| Meds::of(m, &self.vocab, self.subject));
        if let Some(meds) = &meds {
            self.add_med_variables(meds, &mut record);
        }
        for fact in &self.text_facts {
            if let Some(text) = record.get(fact).and_then(Value::as_str) {
                let norm = normalize(text);
                record.insert(format!("_text_{fact}"), Value::String(norm));
            }
        }
        let record = Value::Object(record);
        let data: &DataValue = match (&record).into_arena_value(arena) {
            Ok(d) => d,
            Err(e) => {
                // Still one line for the record, as for any record that cannot be screened.
                let errors = vec![SchemaError {
                    pointer: String::new(),
                    message: format!("the record could not be converted for JSONLogic: {e}"),
                }];
                let id = record.get("id").and_then(Value::as_str);
                write_line(out, &Invalid::new(line, id, errors));
                return None;
            }
        };

        // Evaluate every rule: a tier number, or the missing facts.
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let outcome = match self.engine.evaluate(&rule.logic, data, arena) {
                // `--detail minimal` names undecided rules only, not their facts.
                Ok(DataValue::Array(missing)) if !missing.is_empty() => {
                    Outcome::Undecided(if self.minimal {
                        Vec::new()
                    } else {
                        missing
                            .iter()
                            .filter_map(|m| m.as_str().map(str::to_string))
                            .collect()
                    })
                }
                Ok(v) => match v.as_i64().and_then(|k| usize::try_from(k).ok()) {
                    Some(k) => Outcome::Fires(k, None),
                    None => Outcome::Silent,
                },
                // Not expected (every rule compiled and the data is an object); never silently "no".
                Err(_) => Outcome::Undecided(Vec::new()),
            };
            outcomes.push(outcome);
        }
        if let Some(meds) = &meds {
            self.apply_groups(meds, &mut outcomes);
        }

        let mut cautions: Vec<(Severity, usize, Caution)> = Vec::new();
        let mut indeterminate = Vec::new();
        let mut undecided = Vec::new();
        for (rule, outcome) in self.rules.iter().zip(outcomes) {
            match outcome {
                Outcome::Fires(k, items) => {
                    let Some((severity, _)) = rule.tiers.get(k) else {
                        continue;
                    };
                    let evidence = (!self.minimal)
                        .then(|| self.evidence(&record, meds.as_ref(), rule, k, items.as_deref()));
                    cautions.push((
                        *severity,
                        cautions.len(),
                        Caution {
                            rule: &rule.id,
                            severity: severity.name(),
                            evidence,
                        },
                    ));
                }
                Outcome::Undecided(_) if self.minimal => undecided.push(rule.id.as_str()),
                Outcome::Undecided(missing) => indeterminate.push(Indeterminate {
                    rule: &rule.id,
                    missing,
                }),
                Outcome::Silent => {}
            }
        }
        cautions.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let max_severity = cautions.first().map(|c| c.0.name());
        let screened = Screened {
            line,
            id: record.get("id").and_then(Value::as_str),
            status: if max_severity.is_some() {
                "flagged"
            } else {
                "clear"
            },
            max_severity,
            cautions: cautions.into_iter().map(|c| c.2).collect(),
            indeterminate: (!self.minimal).then_some(indeterminate),
            undecided: self.minimal.then_some(undecided),
            ruleset: &self.ruleset,
        };
        write_line(out, &screened);
        Some(max_severity.is_some())
    }

    fn add_med_variables(&self, meds: &Meds, record: &mut Map<String, Value>) {
        let mut present: Vec<usize> = Vec::new();
        for item in &meds.items {
            add_unique(&mut present, &item.classes);
        }
        let names = present
            .iter()
            .filter_map(|&c| self.vocab.class_names.get(c))
            .map(|n| Value::String(n.clone()))
            .collect();
        record.insert("_classes".into(), Value::Array(names));
        for (k, set) in self.count_sets.iter().enumerate() {
            let n = meds
                .items
                .iter()
                .filter(|it| it.classes.iter().any(|c| set.contains(c)))
                .count();
            record.insert(format!("_count{k}"), json!(n));
        }
        record.insert(
            "_unrecognized".into(),
            Value::Bool(!meds.unrecognized.is_empty()),
        );
        record.insert("_subject".into(), Value::Bool(!meds.subject.is_empty()));
        record.insert(
            "_subject_text".into(),
            Value::String(meds.subject_text.clone()),
        );
    }

    /// Groups, approximated: an item reaches, in a fired member, the first tier from the fired one on
    /// that tests one of its classes; it goes to the member where that tier is the most severe (the
    /// earlier member on a tie). A member fires with the most severe tier its items reach, or not at
    /// all when it is given none.
    fn apply_groups(&self, meds: &Meds, outcomes: &mut [Outcome]) {
        if meds.items.is_empty() {
            return;
        }
        for members in &self.groups {
            // (item, tier) pairs given to each member.
            let mut given: Vec<Vec<(usize, usize)>> = vec![Vec::new(); members.len()];
            for (i, item) in meds.items.iter().enumerate() {
                let mut best: Option<(Severity, usize, usize)> = None;
                for (m, &r) in members.iter().enumerate() {
                    let (Some(Outcome::Fires(k, _)), Some(rule)) =
                        (outcomes.get(r), self.rules.get(r))
                    else {
                        continue;
                    };
                    let reached = rule
                        .tiers
                        .iter()
                        .enumerate()
                        .skip(*k)
                        .find(|(_, (_, cites))| {
                            cites.classes.iter().any(|c| item.classes.contains(c))
                        });
                    if let Some((j, (severity, _))) = reached
                        && best.is_none_or(|(s, _, _)| *severity > s)
                    {
                        best = Some((*severity, m, j));
                    }
                }
                if let Some((_, m, j)) = best
                    && let Some(g) = given.get_mut(m)
                {
                    g.push((i, j));
                }
            }
            for (&r, items) in members.iter().zip(given) {
                if let Some(outcome @ Outcome::Fires(..)) = outcomes.get_mut(r) {
                    *outcome = match items.iter().map(|&(_, j)| j).min() {
                        Some(j) => Outcome::Fires(j, Some(items)),
                        None => Outcome::Silent,
                    };
                }
            }
        }
    }

    /// What a fired tier cites: its facts present in the record, and the medication entries it matched.
    fn evidence(
        &self,
        record: &Value,
        meds: Option<&Meds>,
        rule: &CompiledRule,
        tier: usize,
        items: Option<&[(usize, usize)]>,
    ) -> Map<String, Value> {
        let Some((_, cites)) = rule.tiers.get(tier) else {
            return Map::new();
        };
        let mut evidence = Map::new();
        for fact in &cites.facts {
            if let Some(v) = record.get(fact) {
                evidence.insert(fact.clone(), v.clone());
            }
        }
        let (Some(meds), Some(entries)) = (meds, record.get("comedications")) else {
            return evidence;
        };
        let entry = |k: usize, ingredient: Option<&str>, class: Option<&str>| {
            let mut e = Map::new();
            e.insert("pointer".into(), json!(format!("/comedications/{k}")));
            e.insert("value".into(), entries.get(k).cloned().unwrap_or_default());
            if let Some(i) = ingredient {
                e.insert("ingredient".into(), json!(i));
            }
            if let Some(c) = class {
                e.insert("class".into(), json!(c));
            }
            Value::Object(e)
        };
        let mut cited = Vec::new();
        if !cites.classes.is_empty() {
            for (i, item) in meds.items.iter().enumerate() {
                // A group member cites the items it was given, each with the tier it reached.
                let tested = match items {
                    None => &cites.classes,
                    Some(given) => match given.iter().find(|(g, _)| *g == i) {
                        Some((_, j)) => rule.tiers.get(*j).map_or(&cites.classes, |t| &t.1.classes),
                        None => continue,
                    },
                };
                let Some(class) = tested.iter().find(|c| item.classes.contains(c)) else {
                    continue;
                };
                let ingredient = item
                    .ingredient
                    .and_then(|i| self.vocab.ingredients.get(i))
                    .map(|i| i.name.as_str());
                let class = self.vocab.class_names.get(*class).map(String::as_str);
                cited.push(entry(item.entry, ingredient, class));
            }
        }
        if cites.unrecognized {
            cited.extend(meds.unrecognized.iter().map(|&k| entry(k, None, None)));
        }
        if cites.subject {
            let name = self
                .subject
                .and_then(|s| self.vocab.ingredients.get(s))
                .map(|i| i.name.as_str());
            cited.extend(meds.subject.iter().map(|&k| entry(k, name, None)));
        }
        if !cited.is_empty() {
            evidence.insert("comedications".into(), Value::Array(cited));
        }
        evidence
    }
}

enum Outcome {
    /// Tier `k` fired; for a group member, the items it was given and the tier each reached.
    Fires(usize, Option<Vec<(usize, usize)>>),
    Undecided(Vec<String>),
    Silent,
}

// ---------------------------------------------------------------------------------------------------
// Output, shaped like `medscreen screen`'s NDJSON.

#[derive(Serialize)]
struct Screened<'a> {
    line: usize,
    id: Option<&'a str>,
    status: &'static str,
    max_severity: Option<&'static str>,
    cautions: Vec<Caution<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    indeterminate: Option<Vec<Indeterminate<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    undecided: Option<Vec<&'a str>>,
    ruleset: &'a str,
}

#[derive(Serialize)]
struct Caution<'a> {
    rule: &'a str,
    severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct Indeterminate<'a> {
    rule: &'a str,
    missing: Vec<String>,
}

#[derive(Serialize)]
struct Invalid<'a> {
    line: usize,
    id: Option<&'a str>,
    status: &'static str,
    errors: Vec<SchemaError>,
}

impl<'a> Invalid<'a> {
    fn new(line: usize, id: Option<&'a str>, errors: Vec<SchemaError>) -> Self {
        Invalid {
            line,
            id,
            status: "invalid",
            errors,
        }
    }
}

#[derive(Serialize)]
struct SchemaError {
    pointer: String,
    message: String,
}

fn write_line(out: &mut Vec<u8>, value: &impl Serialize) {
    if serde_json::to_writer(&mut *out, value).is_ok() {
        out.push(b'\n');
    }
}
