//! Streaming aggregation of medscreen's NDJSON results into counts.
//!
//! Memory stays bounded whatever the input size: a result line is parsed into borrowed fields, counted
//! and dropped; only counts are kept, keyed by names that come from the rule pack (rules, facts,
//! problem codes, rulesets). Those names are few in real results, but a results file is still data from
//! outside, so every map has a cap and names past it are counted together as "other". Record ids,
//! inputs, evidence values and skip reasons are never kept (they are not even parsed into strings).

use std::borrow::Cow;

use rustc_hash::FxHashMap as HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use smallvec::SmallVec;

use medscreen_core::Severity;
use medscreen_core::profile::Sex;

// The caps bound the worst case (every map full of names of the longest kept length) to about 25 MB:
// 16 packs x (2 maps x 1,024 names x ~320 bytes + 20,000 pairs x ~32 bytes). A real pack has tens of
// rules and facts, so real results stay far below.

/// Distinct names kept per map; more are counted as "other".
pub(crate) const MAX_KEYS: usize = 1024;
/// Bytes of a name kept (cut at a character boundary): the page shows fewer.
pub(crate) const MAX_KEY_BYTES: usize = 256;
/// Distinct rulesets kept; results of more packs are counted as "other packs".
pub(crate) const MAX_PACKS: usize = 16;
/// Distinct co-firing pairs kept per pack.
pub(crate) const MAX_PAIRS: usize = 20_000;

/// `name` cut to at most [`MAX_KEY_BYTES`] bytes.
fn key(name: &str) -> &str {
    let mut end = name.len().min(MAX_KEY_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or_default()
}

/// Who a result is about, for the severity-by-age-band-and-sex section. Results do not carry it: the
/// caller that screened the profile passes it along with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demographics {
    /// Age in years, if known.
    pub age: Option<u8>,
    /// Administrative sex, if recorded.
    pub sex: Option<Sex>,
}

impl Demographics {
    /// The demographics of a screened profile.
    pub fn from_profile(profile: &medscreen_core::Profile) -> Demographics {
        Demographics {
            age: Some(profile.age),
            sex: profile.sex(),
        }
    }
}

/// Age bands of the severity-by-age-and-sex table: the last is "age unknown".
pub(crate) const AGE_BANDS: [&str; 7] =
    ["0–17", "18–44", "45–64", "65–74", "75–84", "85+", "unknown"];
/// Sexes of the table, in the order shown: the last is "not recorded".
pub(crate) const SEXES: [&str; 5] = ["female", "male", "other", "unknown", "not recorded"];
/// Columns of a severity mix: clear, then the highest caution's severity.
pub(crate) const MIX: [&str; 4] = ["clear", "info", "warning", "critical"];

fn age_band(age: Option<u8>) -> usize {
    match age {
        Some(0..=17) => 0,
        Some(18..=44) => 1,
        Some(45..=64) => 2,
        Some(65..=74) => 3,
        Some(75..=84) => 4,
        Some(_) => 5,
        None => 6,
    }
}

fn sex_index(sex: Option<Sex>) -> usize {
    match sex {
        Some(Sex::Female) => 0,
        Some(Sex::Male) => 1,
        Some(Sex::Other) => 2,
        Some(Sex::Unknown) => 3,
        None => 4,
    }
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// Counts that add up: the tally of one part of the input merged into the tally of what came before.
pub(crate) trait Merge {
    /// Adds `other`'s counts to `self`'s.
    fn merge(&mut self, other: Self);
}

impl Merge for u64 {
    fn merge(&mut self, other: u64) {
        *self += other;
    }
}

impl<const N: usize> Merge for [u64; N] {
    fn merge(&mut self, other: [u64; N]) {
        for (a, b) in self.iter_mut().zip(other) {
            *a += b;
        }
    }
}

/// A map from names to counts that keeps at most `cap` names, in the order they were first seen; the
/// rest add up in `other`.
#[derive(Debug, Clone)]
pub(crate) struct Bounded<V> {
    pub(crate) map: HashMap<String, V>,
    /// The names of `map` in the order they were first seen: merging follows it, so that which names a
    /// full map keeps does not depend on hashing.
    order: Vec<String>,
    pub(crate) other: V,
    pub(crate) other_names: bool,
    cap: usize,
}

impl<V: Default> Bounded<V> {
    pub(crate) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::default(),
            order: Vec::new(),
            other: V::default(),
            other_names: false,
            cap,
        }
    }

    pub(crate) fn entry(&mut self, name: &str) -> &mut V {
        self.entry_with(name, V::default)
    }

    /// The counts of `name`, made by `fresh` if the name is new and the map not full.
    fn entry_with(&mut self, name: &str, fresh: impl FnOnce() -> V) -> &mut V {
        let name = key(name);
        if !self.map.contains_key(name) {
            if self.map.len() >= self.cap {
                self.other_names = true;
                return &mut self.other;
            }
            self.map.insert(name.to_owned(), fresh());
            self.order.push(name.to_owned());
        }
        match self.map.get_mut(name) {
            Some(v) => v,
            None => &mut self.other,
        }
    }

    /// Entries sorted by `key` descending, then name.
    pub(crate) fn ranked<K: Ord>(&self, key: impl Fn(&V) -> K) -> Vec<(&str, &V)> {
        let mut v: Vec<(&str, &V)> = self.map.iter().map(|(k, v)| (k.as_str(), v)).collect();
        v.sort_by(|a, b| key(b.1).cmp(&key(a.1)).then(a.0.cmp(b.0)));
        v
    }
}

/// One rule's counts within a pack.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleTally {
    /// Cautions by severity (info, warning, critical): a rule's tiers can differ in severity.
    pub(crate) fired: [u64; 3],
    pub(crate) indeterminate: u64,
    /// Dense id for the co-firing pairs.
    pub(crate) id: u32,
}

impl RuleTally {
    pub(crate) fn fired_total(&self) -> u64 {
        self.fired.iter().sum()
    }
}

/// One missing fact's counts within a pack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FactTally {
    /// Records where the fact's absence left at least one rule undecided.
    pub(crate) records: u64,
    /// Rule results it left undecided (a record with two such rules counts two).
    pub(crate) undecided: u64,
}

/// Counts of the results of one pack (one `ruleset`).
#[derive(Debug, Clone)]
pub(crate) struct PackTally {
    pub(crate) clear: u64,
    pub(crate) flagged: u64,
    /// Flagged records by their highest severity (info, warning, critical).
    pub(crate) max_severity: [u64; 3],
    /// Cautions by severity (info, warning, critical).
    pub(crate) cautions: [u64; 3],
    pub(crate) rules: Bounded<RuleTally>,
    pub(crate) facts: Bounded<FactTally>,
    pub(crate) pairs: HashMap<(u32, u32), u64>,
    pub(crate) pairs_dropped: bool,
}

impl PackTally {
    fn new() -> Self {
        PackTally {
            clear: 0,
            flagged: 0,
            max_severity: [0; 3],
            cautions: [0; 3],
            rules: Bounded::new(MAX_KEYS),
            facts: Bounded::new(MAX_KEYS),
            pairs: HashMap::default(),
            pairs_dropped: false,
        }
    }

    pub(crate) fn screened(&self) -> u64 {
        self.clear + self.flagged
    }

    fn rule(&mut self, name: &str) -> &mut RuleTally {
        // Ids start at 1 in the order rules are first seen; the "other" bucket keeps 0 and takes no
        // part in pairs.
        let id = u32::try_from(self.rules.map.len() + 1).unwrap_or(0);
        self.rules.entry_with(name, || RuleTally {
            id,
            ..RuleTally::default()
        })
    }
}

/// The severity mix by age band and sex, for results that came with [`Demographics`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DemoTally {
    /// `[age band][sex][clear, info, warning, critical]`.
    pub(crate) cells: [[[u64; 4]; 5]; 7],
}

/// Everything counted so far.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    pub(crate) read: u64,
    pub(crate) clear: u64,
    pub(crate) flagged: u64,
    pub(crate) invalid: u64,
    pub(crate) skipped: u64,
    pub(crate) max_severity: [u64; 3],
    pub(crate) cautions: [u64; 3],
    /// Invalid records by the code of their first problem (as the run's summary counts them).
    pub(crate) invalid_by_code: Bounded<u64>,
    pub(crate) packs: Bounded<PackTally>,
    /// Some record was screened by several packs (`"shape":"screenings/1"`): the packs' counts then
    /// overlap, and do not add up to the page's.
    pub(crate) overlapping: bool,
    pub(crate) demographics: Option<DemoTally>,
    /// Results files read: name, lines, bytes.
    pub(crate) inputs: Vec<(String, u64, u64)>,
    pub(crate) inputs_dropped: u64,
    /// The `input` of every result line, as a Bloom filter: a FHIR file is often named after its
    /// patient, so an input name of the run's summary that a result line also had is not shown.
    pub(crate) record_inputs: Bloom,
}

/// A fixed-size Bloom filter of names (64 KiB): a false positive only withholds a name.
#[derive(Debug, Clone)]
pub(crate) struct Bloom(Vec<u64>);

impl Bloom {
    const WORDS: usize = 8192;

    fn new() -> Bloom {
        Bloom(vec![0; Bloom::WORDS])
    }

    fn bits(name: &str) -> [usize; 3] {
        use std::hash::{Hash, Hasher};
        [1u8, 2, 3].map(|seed| {
            let mut h = std::hash::DefaultHasher::new();
            seed.hash(&mut h);
            name.hash(&mut h);
            usize::try_from(h.finish() % (Bloom::WORDS as u64 * 64)).unwrap_or(0)
        })
    }

    pub(crate) fn insert(&mut self, name: &str) {
        for b in Bloom::bits(name) {
            if let Some(w) = self.0.get_mut(b / 64) {
                *w |= 1 << (b % 64);
            }
        }
    }

    pub(crate) fn may_contain(&self, name: &str) -> bool {
        Bloom::bits(name)
            .iter()
            .all(|&b| self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0))
    }
}

/// Result files listed by name; more are counted.
pub(crate) const MAX_INPUTS: usize = 64;

impl Default for Tally {
    fn default() -> Self {
        Tally {
            read: 0,
            clear: 0,
            flagged: 0,
            invalid: 0,
            skipped: 0,
            max_severity: [0; 3],
            cautions: [0; 3],
            invalid_by_code: Bounded::new(MAX_KEYS),
            packs: Bounded::new(MAX_PACKS),
            overlapping: false,
            demographics: None,
            inputs: Vec::new(),
            inputs_dropped: 0,
            record_inputs: Bloom::new(),
        }
    }
}

impl Default for PackTally {
    fn default() -> Self {
        PackTally::new()
    }
}

#[derive(Deserialize)]
struct ResultLine<'a> {
    #[expect(
        dead_code,
        reason = "required so that any other JSON object is refused"
    )]
    line: u64,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    input: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    max_severity: Option<Cow<'a, str>>,
    // Inline vectors: most results fit, and a line is counted without allocating.
    #[serde(borrow, default)]
    cautions: Option<SmallVec<[CautionLine<'a>; 16]>>,
    #[serde(borrow, default)]
    indeterminate: Option<SmallVec<[IndeterminateLine<'a>; 32]>>,
    #[serde(borrow, default)]
    errors: Option<SmallVec<[ErrorLine<'a>; 4]>>,
    #[serde(borrow, default)]
    ruleset: Option<Cow<'a, str>>,
    /// Several packs: one screening per pack (`"shape":"screenings/1"`).
    #[serde(borrow, default)]
    screenings: Option<SmallVec<[PackLine<'a>; 2]>>,
    /// Written by `--detail minimal` in place of `indeterminate`, without the missing facts.
    #[serde(default)]
    undecided: Option<IgnoredAny>,
}

/// One pack's screening in a result of several packs.
#[derive(Deserialize)]
struct PackLine<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    max_severity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cautions: SmallVec<[CautionLine<'a>; 16]>,
    #[serde(borrow, default)]
    indeterminate: SmallVec<[IndeterminateLine<'a>; 32]>,
    #[serde(borrow)]
    ruleset: Cow<'a, str>,
    #[serde(default)]
    undecided: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct CautionLine<'a> {
    #[serde(borrow)]
    rule: Cow<'a, str>,
    #[serde(borrow)]
    severity: Cow<'a, str>,
}

#[derive(Deserialize)]
struct IndeterminateLine<'a> {
    #[serde(borrow)]
    rule: Cow<'a, str>,
    #[serde(borrow, default)]
    missing: SmallVec<[Cow<'a, str>; 2]>,
}

#[derive(Deserialize)]
struct ErrorLine<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// Why a line is not a medscreen result (never its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAResult {
    /// Not a JSON object with `line` and `status` of the right types.
    Shape,
    /// `status` is none of `clear`, `flagged`, `invalid`, `skipped`.
    Status,
    /// A screened result without `ruleset` or `cautions`, or whose cautions do not match its status.
    Screened,
    /// An invalid result without `errors`.
    Invalid,
    /// A result of several packs whose `screenings` are empty, name a pack twice, are not `clear` or
    /// `flagged`, or disagree with the record's `status` or `max_severity`; or that also has
    /// record-level `cautions`, `indeterminate` or `ruleset`.
    Packs,
    /// A severity that is not `info`, `warning` or `critical`.
    Severity,
    /// A result written with `--detail minimal`: its undecided rules carry no missing facts.
    Minimal,
}

/// Scratch space reused from one record to the next.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    fired: Vec<u32>,
}

impl Tally {
    /// Counts one result line.
    pub(crate) fn add(
        &mut self,
        bytes: &[u8],
        demographics: Option<Demographics>,
        scratch: &mut Scratch,
    ) -> Result<(), NotAResult> {
        let r: ResultLine<'_> = serde_json::from_slice(bytes).map_err(|_| NotAResult::Shape)?;
        if let Some(input) = &r.input {
            self.record_inputs.insert(input);
        }
        match r.status.as_ref() {
            "clear" | "flagged" => self.add_screened(&r, demographics, scratch)?,
            "invalid" => {
                let errors = r.errors.as_deref().ok_or(NotAResult::Invalid)?;
                let code = errors.first().map_or("(none)", |e| e.code.as_ref());
                *self.invalid_by_code.entry(code) += 1;
                self.invalid += 1;
            }
            "skipped" => self.skipped += 1,
            _ => return Err(NotAResult::Status),
        }
        self.read += 1;
        Ok(())
    }

    fn add_screened(
        &mut self,
        r: &ResultLine<'_>,
        demographics: Option<Demographics>,
        scratch: &mut Scratch,
    ) -> Result<(), NotAResult> {
        let flagged = r.status == "flagged";
        let minimal =
            r.undecided.is_some() || r.screenings.iter().flatten().any(|p| p.undecided.is_some());
        if minimal {
            return Err(NotAResult::Minimal);
        }
        let max = if let Some(screenings) = &r.screenings {
            // Several packs: the record once, then each pack's screening in that pack's counts.
            let record_level =
                r.cautions.is_some() || r.indeterminate.is_some() || r.ruleset.is_some();
            if screenings.is_empty() || record_level {
                return Err(NotAResult::Packs);
            }
            for (k, p) in screenings.iter().enumerate() {
                if screenings
                    .get(..k)
                    .is_some_and(|before| before.iter().any(|b| b.ruleset == p.ruleset))
                {
                    return Err(NotAResult::Packs);
                }
            }
            let mut max = None;
            for p in screenings {
                let status = match p.status.as_ref() {
                    "flagged" => true,
                    "clear" => false,
                    _ => return Err(NotAResult::Packs),
                };
                let pack_max = self.add_pack(
                    &p.ruleset,
                    status,
                    p.max_severity.as_deref(),
                    &p.cautions,
                    &p.indeterminate,
                    scratch,
                )?;
                max = max.max(pack_max);
            }
            let stated = match r.max_severity.as_deref() {
                Some(s) => Some(Severity::parse(s).ok_or(NotAResult::Severity)?),
                None => None,
            };
            if flagged != max.is_some() || stated != max {
                return Err(NotAResult::Packs);
            }
            self.overlapping = true;
            max
        } else {
            let cautions = r.cautions.as_deref().ok_or(NotAResult::Screened)?;
            let ruleset = r.ruleset.as_deref().ok_or(NotAResult::Screened)?;
            let indeterminate = r.indeterminate.as_deref().unwrap_or_default();
            self.add_pack(
                ruleset,
                flagged,
                r.max_severity.as_deref(),
                cautions,
                indeterminate,
                scratch,
            )?
        };
        if flagged {
            self.flagged += 1;
        } else {
            self.clear += 1;
        }
        if let Some(m) = max {
            add_at(&mut self.max_severity, severity_index(m));
        }
        let mix = max.map_or(0, |s| severity_index(s) + 1);
        if let Some(d) = demographics {
            let t = self.demographics.get_or_insert_with(DemoTally::default);
            if let Some(c) = t
                .cells
                .get_mut(age_band(d.age))
                .and_then(|b| b.get_mut(sex_index(d.sex)))
                .and_then(|s| s.get_mut(mix))
            {
                *c += 1;
            }
        }
        Ok(())
    }

    /// Count one pack's screening of a record in that pack's tally (and its cautions in the page's);
    /// returns its highest severity.
    fn add_pack(
        &mut self,
        ruleset: &str,
        flagged: bool,
        max_severity: Option<&str>,
        cautions: &[CautionLine<'_>],
        indeterminate: &[IndeterminateLine<'_>],
        scratch: &mut Scratch,
    ) -> Result<Option<Severity>, NotAResult> {
        if flagged == cautions.is_empty() {
            return Err(NotAResult::Screened);
        }
        let mut severities: SmallVec<[Severity; 16]> = SmallVec::new();
        for c in cautions {
            severities.push(Severity::parse(&c.severity).ok_or(NotAResult::Severity)?);
        }
        let max = match (flagged, max_severity) {
            (true, Some(s)) => Some(Severity::parse(s).ok_or(NotAResult::Severity)?),
            (true, None) => severities.iter().copied().max(),
            (false, _) => None,
        };
        let pack = self.packs.entry(ruleset);
        if flagged {
            pack.flagged += 1;
        } else {
            pack.clear += 1;
        }
        if let Some(m) = max {
            add_at(&mut pack.max_severity, severity_index(m));
        }
        scratch.fired.clear();
        for (c, &s) in cautions.iter().zip(&severities) {
            add_at(&mut self.cautions, severity_index(s));
            add_at(&mut pack.cautions, severity_index(s));
            let rule = pack.rule(&c.rule);
            add_at(&mut rule.fired, severity_index(s));
            if rule.id != 0 {
                scratch.fired.push(rule.id);
            }
        }
        let mut missing: SmallVec<[&str; 32]> = SmallVec::new();
        for ind in indeterminate {
            pack.rule(&ind.rule).indeterminate += 1;
            for m in &ind.missing {
                pack.facts.entry(m).undecided += 1;
                missing.push(m);
            }
        }
        // A fact missing for several rules of one record is one record with that gap.
        missing.sort_unstable();
        missing.dedup();
        for m in missing {
            pack.facts.entry(m).records += 1;
        }
        scratch.fired.sort_unstable();
        scratch.fired.dedup();
        for (i, &a) in scratch.fired.iter().enumerate() {
            for &b in scratch.fired.iter().skip(i + 1) {
                if let Some(n) = pack.pairs.get_mut(&(a, b)) {
                    *n += 1;
                } else if pack.pairs.len() < MAX_PAIRS {
                    pack.pairs.insert((a, b), 1);
                } else {
                    pack.pairs_dropped = true;
                }
            }
        }
        Ok(max)
    }
}

fn add_at(counts: &mut [u64; 3], i: usize) {
    if let Some(c) = counts.get_mut(i) {
        *c += 1;
    }
}

impl<V: Default + Merge> Merge for Bounded<V> {
    fn merge(&mut self, mut other: Bounded<V>) {
        for name in std::mem::take(&mut other.order) {
            if let Some(v) = other.map.remove(&name) {
                self.entry(&name).merge(v);
            }
        }
        self.other.merge(other.other);
        self.other_names |= other.other_names;
    }
}

impl Merge for RuleTally {
    fn merge(&mut self, other: RuleTally) {
        // `id` is the merged map's: ids are per tally and remapped by name (see `PackTally::merge`).
        self.fired.merge(other.fired);
        self.indeterminate.merge(other.indeterminate);
    }
}

impl Merge for FactTally {
    fn merge(&mut self, other: FactTally) {
        self.records.merge(other.records);
        self.undecided.merge(other.undecided);
    }
}

impl Merge for PackTally {
    fn merge(&mut self, mut other: PackTally) {
        self.clear.merge(other.clear);
        self.flagged.merge(other.flagged);
        self.max_severity.merge(other.max_severity);
        self.cautions.merge(other.cautions);
        // Rule ids are dense per tally: map `other`'s to ours by name (0 = counted as "other").
        let mut ids = vec![0u32; other.rules.map.len() + 1];
        for name in std::mem::take(&mut other.rules.order) {
            if let Some(r) = other.rules.map.remove(&name) {
                let from = r.id;
                let mine = self.rule(&name);
                mine.merge(r);
                if let Some(slot) = ids.get_mut(from as usize) {
                    *slot = mine.id;
                }
            }
        }
        self.rules.other.merge(other.rules.other);
        self.rules.other_names |= other.rules.other_names;
        self.facts.merge(other.facts);
        // Pairs in a fixed order, so that which pairs a full map keeps does not depend on hashing.
        let mut pairs: Vec<((u32, u32), u64)> = other.pairs.into_iter().collect();
        pairs.sort_unstable();
        let id = |i: u32| ids.get(i as usize).copied().unwrap_or(0);
        for ((a, b), n) in pairs {
            let (a, b) = (id(a), id(b));
            if a == 0 || b == 0 {
                continue;
            }
            let pair = (a.min(b), a.max(b));
            if let Some(m) = self.pairs.get_mut(&pair) {
                *m += n;
            } else if self.pairs.len() < MAX_PAIRS {
                self.pairs.insert(pair, n);
            } else {
                self.pairs_dropped = true;
            }
        }
        self.pairs_dropped |= other.pairs_dropped;
    }
}

impl Merge for Tally {
    /// Merges the tally of the lines that follow `self`'s. Counts add up; names are merged in the
    /// order `other` first saw them, so a split input gives the same page whatever the number of
    /// threads. Inputs are listed by the caller.
    fn merge(&mut self, other: Tally) {
        self.read.merge(other.read);
        self.clear.merge(other.clear);
        self.flagged.merge(other.flagged);
        self.invalid.merge(other.invalid);
        self.skipped.merge(other.skipped);
        self.max_severity.merge(other.max_severity);
        self.cautions.merge(other.cautions);
        self.invalid_by_code.merge(other.invalid_by_code);
        self.packs.merge(other.packs);
        self.overlapping |= other.overlapping;
        if let Some(d) = other.demographics {
            let mine = self.demographics.get_or_insert_with(DemoTally::default);
            for (band, theirs) in mine.cells.iter_mut().zip(d.cells) {
                for (sex, theirs) in band.iter_mut().zip(theirs) {
                    sex.merge(theirs);
                }
            }
        }
        self.inputs.extend(other.inputs);
        self.inputs_dropped.merge(other.inputs_dropped);
        for (w, o) in self.record_inputs.0.iter_mut().zip(other.record_inputs.0) {
            *w |= o;
        }
    }
}
