//! Rule pack -> checked, indexed program.
//!
//! A pack is first checked against `schemas/rulepack.schema.json` (structure), then compiled here:
//! fact names are resolved to typed [`Field`]s (a structural member or a declared fact's slot) using
//! the engine's [`FactTable`] (the shared profile schema and every pack's declared facts) as the source
//! of truth for their types, operators are checked against those types, comparison values against the
//! fact's type and enumeration, class names against the vocabulary, source ids against the pack. Every
//! problem is collected; a pack with any problem does not compile.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use smallvec::SmallVec;

use crate::error::{LoadError, LoadErrorCode};
use crate::facts::FactTable;
pub use crate::facts::{FactType, Field};
use crate::severity::Severity;
use crate::suggest::did_you_mean;
use crate::vocab::{ClassMask, IngredientId, Source, Vocabulary, normalize};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

/// A literal a fact is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// Boolean.
    Bool(bool),
    /// Number.
    Num(f64),
    /// String, lower-cased (string comparisons ignore case).
    Str(String),
}

/// A compiled condition. Evaluation is three-valued: see the evaluator (`eval.rs`).
#[derive(Debug, Clone)]
pub enum Cond {
    /// `fact op value`.
    Cmp {
        /// The fact.
        field: Field,
        /// The operator.
        op: CmpOp,
        /// The value.
        value: Lit,
    },
    /// The fact is one of the values.
    In {
        /// The fact.
        field: Field,
        /// The values.
        values: Vec<Lit>,
    },
    /// The fact is known (`true`) or unknown (`false`); never itself unknown.
    Known {
        /// The fact.
        field: Field,
        /// Whether the test is `known` (else `unknown`).
        known: bool,
    },
    /// Every part is true.
    All(Vec<Cond>),
    /// Some part is true.
    Any(Vec<Cond>),
    /// The part is false.
    Not(Box<Cond>),
    /// Some comedication is in one of the classes.
    MedClass {
        /// The class's bit.
        class: ClassMask,
    },
    /// At least `at_least` distinct ingredients are in the classes.
    MedCount {
        /// The classes' bits.
        classes: ClassMask,
        /// The threshold.
        at_least: usize,
    },
    /// Some comedication matches nothing in the vocabulary.
    MedUnrecognized,
    /// Some comedication is the pack's subject drug (which no class test sees), optionally one whose
    /// entry names one of the terms (a route, a brand).
    MedSubject {
        /// The terms the entry must name, or `None` for any entry of the subject.
        terms: Option<Terms>,
    },
    /// A free-text fact contains one of the terms as whole words.
    Text {
        /// The fact.
        field: Field,
        /// The terms.
        terms: Terms,
    },
}

/// Terms matched as whole words in normalised text (see [`normalize`]).
#[derive(Debug, Clone)]
pub struct Terms {
    /// The normalised terms, padded with spaces, in one automaton (leftmost-longest).
    automaton: aho_corasick::AhoCorasick,
    /// The terms as written, for evidence.
    shown: Vec<String>,
}

impl Terms {
    /// The term found leftmost (then longest) as whole words in the normalised text `hay`, as written
    /// in the pack.
    pub fn find(&self, hay: &str) -> Option<&str> {
        self.automaton
            .find(hay)
            .and_then(|m| self.shown.get(m.pattern().as_usize()))
            .map(String::as_str)
    }

    /// The terms as written in the pack.
    pub fn shown(&self) -> &[String] {
        &self.shown
    }
}

impl Cond {
    /// Every fact this condition reads, in the order met (repeats included); medication tests read
    /// `comedications`.
    pub fn fields(&self, out: &mut Vec<Field>) {
        match self {
            Cond::Cmp { field, .. }
            | Cond::In { field, .. }
            | Cond::Known { field, .. }
            | Cond::Text { field, .. } => out.push(*field),
            Cond::All(parts) | Cond::Any(parts) => parts.iter().for_each(|p| p.fields(out)),
            Cond::Not(part) => part.fields(out),
            Cond::MedClass { .. }
            | Cond::MedCount { .. }
            | Cond::MedUnrecognized
            | Cond::MedSubject { .. } => {
                out.push(Field::Comedications);
            }
        }
    }

    /// Classes, one of which an ingredient must be in for this condition to be true of it: a class
    /// test, an `all` with such a part, an `any` whose every part is one. `None` when the condition
    /// can be true whatever the ingredient.
    fn required_classes(&self) -> Option<ClassMask> {
        match self {
            Cond::MedClass { class } => Some(*class),
            Cond::All(parts) => parts
                .iter()
                .filter_map(Cond::required_classes)
                .reduce(|a, b| a | b),
            Cond::Any(parts) => parts
                .iter()
                .map(Cond::required_classes)
                .try_fold(0, |m, c| c.map(|c| m | c)),
            _ => None,
        }
    }

    /// Adds to `out` the classes this condition needs the comedications to touch, as clauses that
    /// must all hold (each: some comedication in one of its classes); `false` when it can be true
    /// whatever the comedications. A class test or count is its classes; an `all`, the clauses of its
    /// parts; an `any` whose every part has some, one clause of every class its parts name. With
    /// comedications known and a clause not met, the condition is false, not unknown: a class test
    /// or count is false, and so is an `all` with a false part and an `any` of false parts.
    pub fn class_clauses(&self, out: &mut SmallVec<[ClassMask; 3]>) -> bool {
        match self {
            Cond::MedClass { class: classes } | Cond::MedCount { classes, .. } => {
                out.push(*classes);
                true
            }
            Cond::All(parts) => parts
                .iter()
                .fold(false, |any, p| p.class_clauses(out) | any),
            Cond::Any(parts) => {
                let mut union = 0;
                let every = parts.iter().all(|p| {
                    let mut inner = SmallVec::new();
                    let needs = p.class_clauses(&mut inner);
                    union |= inner.iter().fold(0, |m, c| m | c);
                    needs
                });
                if every && !parts.is_empty() {
                    out.push(union);
                }
                every && !parts.is_empty()
            }
            _ => false,
        }
    }

    /// Whether the condition reads comedications other than by class (counts, unrecognised entries,
    /// the subject), which a per-ingredient decision cannot narrow.
    fn reads_meds_otherwise(&self) -> bool {
        match self {
            Cond::MedCount { .. } | Cond::MedUnrecognized | Cond::MedSubject { .. } => true,
            Cond::All(parts) | Cond::Any(parts) => parts.iter().any(Cond::reads_meds_otherwise),
            Cond::Not(inner) => inner.reads_meds_otherwise(),
            _ => false,
        }
    }
}

impl Cond {
    /// The condition as an expression a reader can check against the sources:
    /// `dialysis = true or egfr < 30 or (egfr is unknown and ckd_stage in ["4", "5"])`.
    pub fn describe(&self, facts: &FactTable, vocab: &Vocabulary) -> String {
        let mut out = String::new();
        self.describe_into(facts, vocab, &mut out, false);
        out
    }

    fn describe_into(&self, facts: &FactTable, vocab: &Vocabulary, out: &mut String, nested: bool) {
        use std::fmt::Write as _;
        let list = |terms: &[String]| {
            terms
                .iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Cond::Cmp { field, op, value } => {
                let op = match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                };
                let _ = write!(out, "{} {op} {value}", facts.name(*field));
            }
            Cond::In { field, values } => {
                let values: Vec<String> = values.iter().map(Lit::to_string).collect();
                let _ = write!(out, "{} in [{}]", facts.name(*field), values.join(", "));
            }
            Cond::Known { field, known } => {
                let what = if *known { "known" } else { "unknown" };
                let _ = write!(out, "{} is {what}", facts.name(*field));
            }
            Cond::All(parts) | Cond::Any(parts) => {
                let joiner = if matches!(self, Cond::All(_)) {
                    " and "
                } else {
                    " or "
                };
                if nested && parts.len() > 1 {
                    out.push('(');
                }
                for (k, p) in parts.iter().enumerate() {
                    if k > 0 {
                        out.push_str(joiner);
                    }
                    p.describe_into(facts, vocab, out, true);
                }
                if nested && parts.len() > 1 {
                    out.push(')');
                }
            }
            Cond::Not(inner) => {
                out.push_str("not ");
                inner.describe_into(facts, vocab, out, true);
            }
            Cond::MedClass { class } => {
                let _ = write!(out, "a comedication in class {}", vocab.class_name(*class));
            }
            Cond::MedCount { classes, at_least } => {
                let names: Vec<&str> = (0..64)
                    .map(|b| 1u64 << b)
                    .filter(|bit| classes & bit != 0)
                    .map(|bit| vocab.class_name(bit))
                    .collect();
                let _ = write!(
                    out,
                    "at least {at_least} distinct comedications in {}",
                    names.join(" or ")
                );
            }
            Cond::MedUnrecognized => out.push_str("a comedication not in the vocabulary"),
            Cond::MedSubject { terms } => {
                out.push_str("a comedication that is the subject drug");
                if let Some(t) = terms {
                    let _ = write!(out, " naming one of {}", list(t.shown()));
                }
            }
            Cond::Text { field, terms } => {
                let _ = write!(
                    out,
                    "{} mentions one of {}",
                    facts.name(*field),
                    list(terms.shown())
                );
            }
        }
    }
}

impl std::fmt::Display for Lit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Num(n) => write!(f, "{n}"),
            Lit::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Rule {
    /// The most severe tier's severity: how much it matters that the rule could not be decided.
    pub fn max_severity(&self) -> Severity {
        self.tiers
            .iter()
            .map(|t| t.severity)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// Every fact the rule reads (its guard and its tiers), each once, in the order met.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        if let Some(a) = &self.applies {
            a.fields(&mut out);
        }
        self.tiers.iter().for_each(|t| t.when.fields(&mut out));
        let mut once = Vec::with_capacity(out.len());
        for f in out {
            if !once.contains(&f) {
                once.push(f);
            }
        }
        once
    }
}

/// One tier of a rule.
#[derive(Debug, Clone)]
pub struct Tier {
    /// When this tier is true.
    pub when: Cond,
    /// Its severity.
    pub severity: Severity,
    /// What the caution says.
    pub message: String,
    /// What to do.
    pub action: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Tags.
    pub tags: Vec<String>,
    /// When false, the rule does not apply.
    pub applies: Option<Cond>,
    /// Tiers, first true fires.
    pub tiers: Vec<Tier>,
    /// Cited sources.
    pub sources: Vec<Source>,
    /// When every tier requires comedications in some classes (see [`Cond::class_clauses`]), each
    /// tier's requirement: a patient whose known comedications meet no tier's gets a silent rule
    /// without evaluation.
    pub med_gate: Option<Vec<SmallVec<[ClassMask; 3]>>>,
    /// The group the rule belongs to (an index into [`Program::groups`]).
    pub group: Option<usize>,
    /// For a grouped rule, the classes one of which an ingredient must be in for some tier to be true
    /// of it (every tier of a grouped rule requires a class).
    pub item_gate: ClassMask,
}

/// Rules that cite each comedication ingredient once between them.
///
/// Each ingredient (or ATC group matched without an ingredient) is decided on its own against every
/// member: it goes to the member where it reaches the highest severity for this patient, the earlier
/// member on a tie; each member then fires with the ingredients it was given, and a member given none
/// does not fire. So one drug in two classes (amitriptyline: a tricyclic and a sleep aid) raises one
/// caution, not two.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Member rules, as indexes into [`Program::rules`], in the group's order (the tie-break).
    pub members: Vec<usize>,
}

/// The compiled rule pack.
#[derive(Debug)]
pub struct Program {
    /// Pack name.
    pub name: String,
    /// Pack version.
    pub version: String,
    /// Pack description.
    pub description: String,
    /// The subject drug's ingredient, not counted as its own comedication.
    pub subject: Option<IngredientId>,
    /// Rules, in pack order.
    pub rules: Vec<Rule>,
    /// Groups of rules that cite each ingredient once between them.
    pub groups: Vec<Group>,
    /// How the CDS Hooks service speaks of the pack.
    pub cds: CdsText,
    /// Which rules a profile's comedication classes can make fire or leave undecided.
    pub index: RuleIndex,
}

/// How the CDS Hooks service speaks of a pack: `cds` in the pack, every text optional. A text may hold
/// `{drug}` (the drug as cards name it), and a service's title and description also `{hook}` and
/// `{ruleset}` (`name@version#hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdsText {
    /// The drug as cards name it (`drug`; default: the pack's name). A card's summary starts with it,
    /// capitalised.
    pub drug: String,
    /// Each service's title (`service_title`).
    pub service_title: String,
    /// Each service's description (`service_description`).
    pub service_description: String,
    /// The label of the suggestion to cancel the order, on a critical card (`cancel_label`).
    pub cancel_label: String,
}

impl CdsText {
    const TITLE: &str = "medscreen {drug} screening ({hook})";
    const DESCRIPTION: &str = "Screens a {drug} order being placed against the {ruleset} rule pack: \
        patient factors, comorbidities, interacting comedications and dose. Cards cite their sources; \
        facts that could not be checked are listed in one info card. Answers no cards for orders \
        without {drug}.";
    const CANCEL: &str = "Cancel the {drug} order";

    /// `template` with its placeholders filled, in one pass (what is filled in is not read again).
    pub fn fill(&self, template: &str, hook: &str, ruleset: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(rest.get(..open).unwrap_or_default());
            let after = rest.get(open + 1..).unwrap_or_default();
            let Some(close) = after.find('}') else {
                out.push_str(rest.get(open..).unwrap_or_default());
                return out;
            };
            let name = after.get(..close).unwrap_or_default();
            match name {
                "drug" => out.push_str(&self.drug),
                "hook" => out.push_str(hook),
                "ruleset" => out.push_str(ruleset),
                _ => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            }
            rest = after.get(close + 1..).unwrap_or_default();
        }
        out.push_str(rest);
        out
    }
}

struct Compiler<'a> {
    file: &'a str,
    /// The pack's `name`: its rules read shared facts and its own.
    pack: String,
    facts: &'a FactTable,
    vocab: &'a Vocabulary,
    rule: Option<String>,
    has_subject: bool,
    errors: Vec<LoadError>,
}

const FORMS: [&str; 7] = [
    "fact",
    "all",
    "any",
    "not",
    "medication",
    "medications",
    "text",
];
/// Spellings from other rule languages, mapped to ours for the did-you-mean.
const OP_ALIASES: [(&str, &str); 12] = [
    ("gte", "ge"),
    ("lte", "le"),
    ("==", "eq"),
    ("=", "eq"),
    ("!=", "ne"),
    ("neq", "ne"),
    ("<", "lt"),
    ("<=", "le"),
    (">", "gt"),
    (">=", "ge"),
    ("exists", "known"),
    ("missing", "unknown"),
];
const OPS: [&str; 10] = [
    "eq", "ne", "lt", "le", "gt", "ge", "in", "known", "unknown", "matches",
];

/// Compile a schema-checked pack. `file` names it in errors.
pub fn compile(
    pack: &Value,
    file: &str,
    facts: &FactTable,
    vocab: &Vocabulary,
) -> Result<Program, Vec<LoadError>> {
    let mut c = Compiler {
        file,
        pack: pack
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        facts,
        vocab,
        rule: None,
        has_subject: pack.pointer("/subject/ingredient").is_some(),
        errors: Vec::new(),
    };
    let sources: BTreeMap<String, Source> = pack
        .get("sources")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let subject = pack
        .pointer("/subject/ingredient")
        .and_then(Value::as_str)
        .and_then(|name| {
            let id = vocab.ingredient_id(name);
            if id.is_none() {
                c.error(
                    LoadErrorCode::UnknownIngredient,
                    "/subject/ingredient",
                    format!("subject ingredient `{name}` is not in the vocabulary"),
                    did_you_mean(name, vocab.ingredients().iter().map(|i| i.name.as_str())),
                );
            }
            id
        });
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::new();
    let empty = Vec::new();
    for (i, r) in pack
        .get("rules")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let at = format!("/rules/{i}");
        let id = r
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        c.rule = Some(id.clone());
        if let Some(first) = seen.insert(id.clone(), i) {
            c.error(
                LoadErrorCode::Duplicate,
                &format!("{at}/id"),
                format!("duplicate rule id `{id}` (first defined at /rules/{first})"),
                None,
            );
        }
        let applies = r
            .get("applies")
            .map(|a| c.cond(a, &format!("{at}/applies")));
        let mut tiers = Vec::new();
        let tier_values = r.get("tiers").and_then(Value::as_array).unwrap_or(&empty);
        if tier_values.is_empty() {
            c.error(
                LoadErrorCode::EmptyTiers,
                &format!("{at}/tiers"),
                "the rule has no tiers, so it can never fire".into(),
                None,
            );
        }
        for (k, t) in tier_values.iter().enumerate() {
            let tat = format!("{at}/tiers/{k}");
            let when = c.cond(
                t.get("when").unwrap_or(&Value::Null),
                &format!("{tat}/when"),
            );
            let severity = t
                .get("severity")
                .and_then(Value::as_str)
                .and_then(Severity::parse)
                .unwrap_or(Severity::Info);
            tiers.push(Tier {
                when,
                severity,
                message: str_at(t, "message"),
                action: str_at(t, "action"),
            });
        }
        let mut cited = Vec::new();
        for (k, s) in r
            .get("sources")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let s = s.as_str().unwrap_or_default();
            match sources.get(s) {
                Some(src) => cited.push(src.clone()),
                None => c.error(
                    LoadErrorCode::UnknownSource,
                    &format!("{at}/sources/{k}"),
                    format!("unknown source `{s}`"),
                    did_you_mean(s, sources.keys().map(String::as_str)),
                ),
            }
        }
        // Each tier needs comedications in some classes: with comedications known and a tier's needs
        // not met, the tier is false; with every tier false the rule is silent, whatever its guard.
        let med_gate = tiers
            .iter()
            .map(|t| {
                let mut clauses = SmallVec::new();
                t.when.class_clauses(&mut clauses).then_some(clauses)
            })
            .collect();
        rules.push(Rule {
            id,
            title: str_at(r, "title"),
            tags: r
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            applies,
            tiers,
            sources: cited,
            med_gate,
            group: None,
            item_gate: 0,
        });
    }
    c.rule = None;
    if rules.is_empty() {
        c.error(
            LoadErrorCode::EmptyPack,
            "/rules",
            "the pack has no rules, so it would report every patient clear".into(),
            None,
        );
    }
    let groups = c.groups(pack, &mut rules);
    let cds = c.cds_text(pack);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let index = RuleIndex::new(&rules);
    Ok(Program {
        name: str_at(pack, "name"),
        version: str_at(pack, "version"),
        description: str_at(pack, "description"),
        subject,
        rules,
        groups,
        cds,
        index,
    })
}

/// Which rules a profile's comedication classes can make fire or leave undecided, so that the others
/// are never visited (as zen's decision tables and OPA's rule indexing skip what cannot match).
///
/// A rule whose every tier needs comedications in some classes ([`Rule::med_gate`]) is silent for a
/// patient whose known comedications touch none of its *key*: the union over its tiers of each tier's
/// narrowest clause. Such rules are listed under each class of their key; the rest (and grouped rules,
/// which are decided item by item) are always visited. With comedications unknown, every rule is.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    /// The rules visited whatever the comedications, as a bit set over rule indices.
    always: Vec<u64>,
    /// For each class bit, the gated rules whose key has it.
    by_class: Vec<Vec<u32>>,
    /// How many rules the program has.
    rules: usize,
}

impl RuleIndex {
    fn new(rules: &[Rule]) -> RuleIndex {
        let words = rules.len().div_ceil(64);
        let mut index = RuleIndex {
            always: vec![0; words],
            by_class: vec![Vec::new(); ClassMask::BITS as usize],
            rules: rules.len(),
        };
        for (r, rule) in rules.iter().enumerate() {
            let key = match (&rule.med_gate, rule.group) {
                (Some(tiers), None) => tiers.iter().try_fold(0, |key: ClassMask, clauses| {
                    clauses
                        .iter()
                        .min_by_key(|c| c.count_ones())
                        .map(|narrowest| key | narrowest)
                }),
                _ => None,
            };
            match key {
                Some(key) if key != 0 => {
                    for (bit, list) in index.by_class.iter_mut().enumerate() {
                        if key & (1 << bit) != 0 {
                            list.push(r as u32);
                        }
                    }
                }
                _ => {
                    if let Some(w) = index.always.get_mut(r / 64) {
                        *w |= 1 << (r % 64);
                    }
                }
            }
        }
        index
    }

    /// The rules to visit, as a bit set over rule indices: with comedications known (`classes`, every
    /// class they fall in), the rules always visited and those listed under one of the classes; with
    /// comedications unknown (`None`), every rule.
    pub fn candidates(&self, classes: Option<ClassMask>) -> SmallVec<[u64; 8]> {
        let Some(classes) = classes else {
            let mut all: SmallVec<[u64; 8]> = SmallVec::from_elem(u64::MAX, self.rules / 64);
            if !self.rules.is_multiple_of(64) {
                all.push((1 << (self.rules % 64)) - 1);
            }
            return all;
        };
        let mut set: SmallVec<[u64; 8]> = SmallVec::from_slice(&self.always);
        for list in set_bits(&[classes]).filter_map(|bit| self.by_class.get(bit)) {
            for &r in list {
                if let Some(w) = set.get_mut(r as usize / 64) {
                    *w |= 1 << (r % 64);
                }
            }
        }
        set
    }
}

/// The indices of the set bits of a bit set, in order.
pub fn set_bits(set: &[u64]) -> impl Iterator<Item = usize> + '_ {
    set.iter().enumerate().flat_map(|(w, &word)| {
        let mut bits = word;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(w * 64 + b)
        })
    })
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl Compiler<'_> {
    fn error(
        &mut self,
        code: LoadErrorCode,
        pointer: &str,
        message: String,
        suggestion: Option<&str>,
    ) {
        let e = LoadError::new(code, self.file, pointer, message)
            .with_help(suggestion.map(|s| format!("did you mean `{s}`?")))
            .in_rule(self.rule.as_deref());
        self.errors.push(e);
    }

    /// The pack's `cds` texts, each checked to use only the placeholders it can be given.
    fn cds_text(&mut self, pack: &Value) -> CdsText {
        let cds = pack.get("cds");
        let mut text = |key: &str, default: &str, allowed: &[&str]| {
            let Some(t) = cds.and_then(|c| c.get(key)).and_then(Value::as_str) else {
                return default.to_owned();
            };
            let mut rest = t;
            while let Some(open) = rest.find('{') {
                let after = rest.get(open + 1..).unwrap_or_default();
                let Some(close) = after.find('}') else {
                    self.error(
                        LoadErrorCode::Schema,
                        &format!("/cds/{key}"),
                        format!("`{key}` opens a placeholder with `{{` and does not close it"),
                        None,
                    );
                    break;
                };
                let name = after.get(..close).unwrap_or_default();
                if !allowed.contains(&name) {
                    let names: Vec<String> = allowed.iter().map(|n| format!("`{{{n}}}`")).collect();
                    self.error(
                        LoadErrorCode::Schema,
                        &format!("/cds/{key}"),
                        format!(
                            "`{key}` may hold only {}, not `{{{name}}}`",
                            names.join(", ")
                        ),
                        crate::suggest::did_you_mean(name, allowed.iter().copied()),
                    );
                    break;
                }
                rest = after;
            }
            t.to_owned()
        };
        let service_title = text(
            "service_title",
            CdsText::TITLE,
            &["drug", "hook", "ruleset"],
        );
        let service_description = text(
            "service_description",
            CdsText::DESCRIPTION,
            &["drug", "hook", "ruleset"],
        );
        let cancel_label = text("cancel_label", CdsText::CANCEL, &["drug"]);
        let drug = cds
            .and_then(|c| c.get("drug"))
            .and_then(Value::as_str)
            .map_or_else(|| str_at(pack, "name"), str::to_owned);
        CdsText {
            drug,
            service_title,
            service_description,
            cancel_label,
        }
    }

    /// Compile one condition; on error, record it and return a placeholder that is never evaluated
    /// (a pack with errors does not compile).
    fn cond(&mut self, v: &Value, at: &str) -> Cond {
        let placeholder = Cond::All(Vec::new());
        let Some(obj) = v.as_object() else {
            self.error(
                LoadErrorCode::InvalidCondition,
                at,
                "a condition must be an object".into(),
                None,
            );
            return placeholder;
        };
        let forms: Vec<&str> = FORMS
            .iter()
            .copied()
            .filter(|f| obj.contains_key(*f))
            .collect();
        let [form] = forms[..] else {
            let msg = if forms.is_empty() {
                format!(
                    "a condition needs one of {}",
                    FORMS.map(|f| format!("`{f}`")).join(", ")
                )
            } else {
                format!(
                    "a condition has exactly one form, found {}",
                    forms.join(" and ")
                )
            };
            self.error(LoadErrorCode::InvalidCondition, at, msg, None);
            return placeholder;
        };
        if form != "fact" {
            for extra in ["op", "value"] {
                if obj.contains_key(extra) {
                    self.error(
                        LoadErrorCode::InvalidCondition,
                        &format!("{at}/{extra}"),
                        format!("`{extra}` belongs to a `fact` comparison, not to `{form}`"),
                        None,
                    );
                }
            }
        }
        let inner = &obj[form];
        match form {
            "fact" => self.comparison(obj, at),
            "all" | "any" => {
                let items = inner.as_array().map(Vec::as_slice).unwrap_or_default();
                if items.is_empty() {
                    self.error(
                        LoadErrorCode::InvalidCondition,
                        &format!("{at}/{form}"),
                        format!("`{form}` needs at least one condition"),
                        None,
                    );
                }
                let parts = items
                    .iter()
                    .enumerate()
                    .map(|(k, p)| self.cond(p, &format!("{at}/{form}/{k}")))
                    .collect();
                if form == "all" {
                    Cond::All(parts)
                } else {
                    Cond::Any(parts)
                }
            }
            "not" => Cond::Not(Box::new(self.cond(inner, &format!("{at}/not")))),
            "medication" => self.medication(inner, &format!("{at}/medication")),
            "medications" => {
                let mut classes = 0;
                let names = inner
                    .get("classes")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice);
                let names = names.unwrap_or_default();
                if names.is_empty() {
                    self.error(
                        LoadErrorCode::InvalidCondition,
                        &format!("{at}/medications/classes"),
                        "`classes` needs at least one class".into(),
                        None,
                    );
                }
                for (k, n) in names.iter().enumerate() {
                    let n = n.as_str().unwrap_or_default();
                    classes |= self.class(n, &format!("{at}/medications/classes/{k}"));
                }
                let at_least = inner.get("at_least").and_then(Value::as_u64).unwrap_or(1) as usize;
                Cond::MedCount { classes, at_least }
            }
            _ => self.text(inner, at),
        }
    }

    /// `{"medication": {"class": ..}}`, `{"unrecognized": true}` or `{"subject": true}`, the last
    /// optionally with `terms` the entry must name.
    fn medication(&mut self, inner: &Value, at: &str) -> Cond {
        let selectors: Vec<&str> = ["class", "unrecognized", "subject"]
            .into_iter()
            .filter(|k| inner.get(k).is_some())
            .collect();
        let [selector] = selectors[..] else {
            self.error(
                LoadErrorCode::InvalidCondition,
                at,
                "`medication` takes exactly one of `class`, `unrecognized` or `subject`".into(),
                None,
            );
            return Cond::All(Vec::new());
        };
        let terms = inner.get("terms");
        if terms.is_some() && selector != "subject" {
            self.error(
                LoadErrorCode::InvalidCondition,
                &format!("{at}/terms"),
                "`terms` goes with `subject`".into(),
                None,
            );
        }
        match selector {
            "class" => {
                let name = inner
                    .get("class")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let class = self.class(name, &format!("{at}/class"));
                Cond::MedClass { class }
            }
            "unrecognized" => Cond::MedUnrecognized,
            _ => {
                if !self.has_subject {
                    self.error(
                        LoadErrorCode::InvalidCondition,
                        &format!("{at}/subject"),
                        "the pack declares no `subject`, so no comedication can be it".into(),
                        None,
                    );
                }
                let terms = terms.map(|t| self.terms(t, &format!("{at}/terms")));
                Cond::MedSubject {
                    terms: terms.flatten(),
                }
            }
        }
    }

    /// The pack's `groups`: each member resolved to its rule and marked with its group.
    fn groups(&mut self, pack: &Value, rules: &mut [Rule]) -> Vec<Group> {
        let mut groups = Vec::new();
        let empty = Vec::new();
        let by_id: HashMap<String, usize> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut member_of: HashMap<usize, String> = HashMap::new();
        let mut group_ids: HashMap<String, usize> = HashMap::new();
        for (g, v) in pack
            .get("groups")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let at = format!("/groups/{g}");
            let id = str_at(v, "id");
            if let Some(first) = group_ids.insert(id.clone(), g) {
                self.error(
                    LoadErrorCode::Duplicate,
                    &format!("{at}/id"),
                    format!("duplicate group id `{id}` (first defined at /groups/{first})"),
                    None,
                );
            }
            let mut members = Vec::new();
            for (k, m) in v
                .get("rules")
                .and_then(Value::as_array)
                .unwrap_or(&empty)
                .iter()
                .enumerate()
            {
                let name = m.as_str().unwrap_or_default();
                let mat = format!("{at}/rules/{k}");
                let Some(&r) = by_id.get(name) else {
                    self.error(
                        LoadErrorCode::UnknownRule,
                        &mat,
                        format!("group `{id}` names rule `{name}`, which the pack does not define"),
                        did_you_mean(name, by_id.keys().map(String::as_str)),
                    );
                    continue;
                };
                if let Some(other) = member_of.insert(r, id.clone()) {
                    let message = if other == id {
                        format!("rule `{name}` is listed twice in group `{id}`")
                    } else {
                        format!(
                            "rule `{name}` is in group `{other}` and in group `{id}`; a rule belongs to one group at most"
                        )
                    };
                    self.error(LoadErrorCode::Duplicate, &mat, message, None);
                    continue;
                }
                let Some(rule) = rules.get_mut(r) else {
                    continue;
                };
                let mut gate = 0;
                // A rule that did not compile has placeholders for conditions: say nothing more.
                let broken = self.errors.iter().any(|e| e.rule.as_deref() == Some(name));
                for (t, tier) in rule.tiers.iter().enumerate().filter(|_| !broken) {
                    match tier.when.required_classes() {
                        Some(classes) if !tier.when.reads_meds_otherwise() => gate |= classes,
                        _ => self.errors.push(
                            LoadError::new(
                                LoadErrorCode::InvalidGroup,
                                self.file,
                                format!("{at}/rules/{k}"),
                                format!(
                                    "rule `{name}` cannot be in group `{id}`: its tier {t} does not require the ingredient to be in a medication class, or reads comedications otherwise (counts, the subject, unrecognised entries), so it cannot cite the ingredients it is about"
                                ),
                            )
                            .in_rule(Some(name)),
                        ),
                    }
                }
                rule.group = Some(groups.len());
                rule.item_gate = gate;
                members.push(r);
            }
            groups.push(Group {
                id,
                title: str_at(v, "title"),
                members,
            });
        }
        groups
    }

    fn class(&mut self, name: &str, at: &str) -> ClassMask {
        match self.vocab.class_bit(name) {
            Some(bit) => bit,
            None => {
                let names: Vec<&str> = self.vocab.class_names().collect();
                self.error(
                    LoadErrorCode::UnknownClass,
                    at,
                    format!("unknown medication class `{name}`"),
                    did_you_mean(name, names),
                );
                0
            }
        }
    }

    fn field(&mut self, name: &str, at: &str) -> Option<(Field, FactType)> {
        if !self.facts.readable_by(name, &self.pack) {
            let owners = self.facts.declared_by(name).join("`, `");
            let e = LoadError::new(
                LoadErrorCode::UnknownFact,
                self.file,
                at,
                format!("fact `{name}` is declared by pack `{owners}`, not by this pack"),
            )
            .with_help(Some(format!(
                "declare `{name}` under this pack's `facts` (the same declaration), so that the pack loads whichever packs are loaded with it"
            )))
            .in_rule(self.rule.as_deref());
            self.errors.push(e);
            return None;
        }
        let Some((field, ty)) = self
            .facts
            .resolve(name)
            .and_then(|f| Some((f, self.facts.fact_type(f)?)))
        else {
            let names: Vec<&str> = self.facts.names().collect();
            self.error(
                LoadErrorCode::UnknownFact,
                at,
                format!("unknown fact `{name}`"),
                did_you_mean(name, names),
            );
            return None;
        };
        Some((field, ty))
    }

    fn text(&mut self, inner: &Value, at: &str) -> Cond {
        let placeholder = Cond::All(Vec::new());
        let name = inner
            .get("fact")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some((field, ty)) = self.field(name, &format!("{at}/text/fact")) else {
            return placeholder;
        };
        if ty != FactType::Str {
            self.error(
                LoadErrorCode::OperatorTypeMismatch,
                &format!("{at}/text/fact"),
                format!(
                    "text matching needs a string fact, but `{name}` is {}",
                    ty.describe()
                ),
                None,
            );
            return placeholder;
        }
        match self.terms(
            inner.get("terms").unwrap_or(&Value::Null),
            &format!("{at}/text/terms"),
        ) {
            Some(terms) => Cond::Text { field, terms },
            None => placeholder,
        }
    }

    /// A list of terms matched as whole words; `None` (with an error recorded) if it cannot be.
    fn terms(&mut self, list: &Value, at: &str) -> Option<Terms> {
        let mut terms = Vec::new();
        let mut shown = Vec::new();
        for (k, t) in list.as_array().into_iter().flatten().enumerate() {
            let t = t.as_str().unwrap_or_default();
            let norm = normalize(t);
            if norm.trim().is_empty() {
                self.error(
                    LoadErrorCode::InvalidCondition,
                    &format!("{at}/{k}"),
                    "a term needs at least one letter or digit".into(),
                    None,
                );
            }
            terms.push(norm);
            shown.push(t.to_owned());
        }
        if terms.is_empty() {
            self.error(
                LoadErrorCode::InvalidCondition,
                at,
                "`terms` needs at least one term".into(),
                None,
            );
            return None;
        }
        match aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&terms)
        {
            Ok(automaton) => Some(Terms { automaton, shown }),
            Err(e) => {
                self.error(
                    LoadErrorCode::InvalidCondition,
                    at,
                    format!("the terms cannot be compiled: {e}"),
                    None,
                );
                None
            }
        }
    }

    fn comparison(&mut self, obj: &serde_json::Map<String, Value>, at: &str) -> Cond {
        let placeholder = Cond::All(Vec::new());
        let name = obj.get("fact").and_then(Value::as_str).unwrap_or_default();
        let op_name = obj.get("op").and_then(Value::as_str);
        let field = self.field(name, &format!("{at}/fact"));
        let Some(op_name) = op_name else {
            self.error(
                LoadErrorCode::InvalidCondition,
                &format!("{at}/op"),
                "a `fact` comparison needs an `op`".into(),
                None,
            );
            return placeholder;
        };
        if !OPS.contains(&op_name) {
            let alias = OP_ALIASES
                .iter()
                .find(|(a, _)| *a == op_name)
                .map(|(_, op)| *op);
            self.error(
                LoadErrorCode::UnknownOperator,
                &format!("{at}/op"),
                format!("unknown operator `{op_name}`"),
                alias.or_else(|| did_you_mean(op_name, OPS)),
            );
            return placeholder;
        }
        let Some((field, ty)) = field else {
            return placeholder;
        };
        let value = obj.get("value");
        if matches!(op_name, "known" | "unknown") {
            if value.is_some() {
                self.error(
                    LoadErrorCode::InvalidCondition,
                    &format!("{at}/value"),
                    format!("`{op_name}` takes no value"),
                    None,
                );
            }
            return Cond::Known {
                field,
                known: op_name == "known",
            };
        }
        if op_name == "matches" {
            self.error(
                LoadErrorCode::InvalidCondition,
                &format!("{at}/op"),
                "free-text matching is written `{\"text\": {\"fact\": ..., \"terms\": [...]}}`"
                    .into(),
                None,
            );
            return placeholder;
        }
        let fits = match ty {
            FactType::Num | FactType::Str | FactType::Enum(_) => true,
            FactType::Bool => matches!(op_name, "eq" | "ne"),
            FactType::List => false,
        };
        let fits =
            fits && !(matches!(ty, FactType::Str | FactType::Enum(_)) && is_ordering(op_name));
        if !fits {
            self.error(
                LoadErrorCode::OperatorTypeMismatch,
                &format!("{at}/op"),
                format!(
                    "operator `{op_name}` does not apply to {} fact `{name}`",
                    ty.describe()
                ),
                None,
            );
            return placeholder;
        }
        let Some(value) = value else {
            self.error(
                LoadErrorCode::InvalidCondition,
                &format!("{at}/value"),
                format!("operator `{op_name}` needs a `value`"),
                None,
            );
            return placeholder;
        };
        if op_name == "in" {
            let Some(items) = value.as_array().filter(|a| !a.is_empty()) else {
                self.error(
                    LoadErrorCode::ValueTypeMismatch,
                    &format!("{at}/value"),
                    "`in` needs a non-empty array of values".into(),
                    None,
                );
                return placeholder;
            };
            let values = items
                .iter()
                .enumerate()
                .filter_map(|(k, v)| self.literal(v, &ty, name, &format!("{at}/value/{k}")))
                .collect();
            return Cond::In { field, values };
        }
        let Some(lit) = self.literal(value, &ty, name, &format!("{at}/value")) else {
            return placeholder;
        };
        let op = match op_name {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            "gt" => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        Cond::Cmp {
            field,
            op,
            value: lit,
        }
    }

    fn literal(&mut self, v: &Value, ty: &FactType, name: &str, at: &str) -> Option<Lit> {
        let lit = match (ty, v) {
            (FactType::Bool, Value::Bool(b)) => Lit::Bool(*b),
            (FactType::Num, Value::Number(n)) => Lit::Num(n.as_f64().unwrap_or(f64::NAN)),
            (FactType::Str, Value::String(s)) => Lit::Str(s.to_lowercase()),
            (FactType::Enum(options), Value::String(s)) => {
                if !options.iter().any(|o| o == s) {
                    self.error(
                        LoadErrorCode::ValueNotInEnum,
                        at,
                        format!(
                            "`{s}` is not a value of `{name}` (one of {})",
                            options.join(", ")
                        ),
                        did_you_mean(s, options.iter().map(String::as_str)),
                    );
                    return None;
                }
                Lit::Str(s.clone())
            }
            _ => {
                self.error(
                    LoadErrorCode::ValueTypeMismatch,
                    at,
                    format!(
                        "fact `{name}` is {}, so the value must be one too",
                        ty.describe()
                    ),
                    None,
                );
                return None;
            }
        };
        Some(lit)
    }
}

fn is_ordering(op: &str) -> bool {
    matches!(op, "lt" | "le" | "gt" | "ge")
}
