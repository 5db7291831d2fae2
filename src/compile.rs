//! Rule pack -> checked, indexed program.
//!
//! A pack is first checked against `schemas/rulepack.schema.json` (structure), then compiled here:
//! fact names are resolved to typed [`Field`] accessors using the *profile schema* as the source of
//! truth for their types, operators are checked against those types, comparison values against the
//! fact's type and enumeration, class names against the vocabulary, source ids against the pack. Every
//! problem is collected; a pack with any problem does not compile.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::error::{LoadError, LoadErrorCode};
use crate::profile::Field;
use crate::suggest::did_you_mean;
use crate::vocab::{ClassMask, IngredientId, Source, Vocabulary, normalize};

/// How serious a caution is; the words are the CDS Hooks card indicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action before prescribing.
    Critical,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

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

/// A compiled condition. Evaluation is three-valued: see [`crate::eval`].
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
    /// A free-text fact contains one of the terms as whole words.
    Text {
        /// The fact.
        field: Field,
        /// The normalised terms, padded with spaces, in one automaton (leftmost-longest).
        terms: aho_corasick::AhoCorasick,
        /// The terms as written, for evidence.
        shown: Vec<String>,
    },
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
            Cond::MedClass { .. } | Cond::MedCount { .. } | Cond::MedUnrecognized => {
                out.push(Field::Comedications);
            }
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
    /// When every tier is a plain "some comedication in class" test, the union of those classes: a
    /// patient whose known comedications touch none of them gets `false` for the rule without evaluation.
    pub med_gate: Option<ClassMask>,
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
}

/// The type of a profile fact, read from the profile schema.
#[derive(Debug, Clone, PartialEq)]
pub enum FactType {
    /// `boolean`.
    Bool,
    /// `integer` or `number`.
    Num,
    /// `string`.
    Str,
    /// `enum` of strings.
    Enum(Vec<String>),
    /// `array` (comedications).
    List,
}

impl FactType {
    fn describe(&self) -> &'static str {
        match self {
            FactType::Bool => "boolean",
            FactType::Num => "number",
            FactType::Str => "string",
            FactType::Enum(_) => "enumerated",
            FactType::List => "list",
        }
    }
}

/// The facts a profile has, by name, with their types, read from the profile schema's `properties`.
pub fn fact_types(profile_schema: &Value) -> BTreeMap<String, FactType> {
    let mut out = BTreeMap::new();
    let Some(props) = profile_schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, s) in props {
        let ty = if let Some(options) = s.get("enum").and_then(Value::as_array) {
            FactType::Enum(
                options
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )
        } else {
            let types: Vec<&str> = match s.get("type") {
                Some(Value::String(t)) => vec![t.as_str()],
                Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            match types.iter().find(|t| **t != "null") {
                Some(&"boolean") => FactType::Bool,
                Some(&"integer") | Some(&"number") => FactType::Num,
                Some(&"string") => FactType::Str,
                Some(&"array") => FactType::List,
                _ => continue,
            }
        };
        out.insert(name.clone(), ty);
    }
    out
}

struct Compiler<'a> {
    file: &'a str,
    facts: &'a BTreeMap<String, FactType>,
    vocab: &'a Vocabulary,
    rule: Option<String>,
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
    profile_schema: &Value,
    vocab: &Vocabulary,
) -> Result<Program, Vec<LoadError>> {
    let facts = fact_types(profile_schema);
    let mut c = Compiler {
        file,
        facts: &facts,
        vocab,
        rule: None,
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
        let med_gate = if applies.is_none() {
            tiers.iter().try_fold(0, |m, t| match t.when {
                Cond::MedClass { class } => Some(m | class),
                _ => None,
            })
        } else {
            None
        };
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
        });
    }
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Program {
        name: str_at(pack, "name"),
        version: str_at(pack, "version"),
        description: str_at(pack, "description"),
        subject,
        rules,
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
        if forms.len() != 1 {
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
        }
        let form = forms[0];
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
            "medication" => {
                if let Some(name) = inner.get("class").and_then(Value::as_str) {
                    if inner.get("unrecognized").is_some() {
                        self.error(
                            LoadErrorCode::InvalidCondition,
                            &format!("{at}/medication"),
                            "`medication` takes either `class` or `unrecognized`, not both".into(),
                            None,
                        );
                    }
                    let class = self.class(name, &format!("{at}/medication/class"));
                    Cond::MedClass { class }
                } else {
                    Cond::MedUnrecognized
                }
            }
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
        let Some(ty) = self.facts.get(name) else {
            let names: Vec<&str> = self.facts.keys().map(String::as_str).collect();
            self.error(
                LoadErrorCode::UnknownFact,
                at,
                format!("unknown fact `{name}`"),
                did_you_mean(name, names),
            );
            return None;
        };
        let Some(field) = Field::from_name(name) else {
            self.error(
                LoadErrorCode::UnknownFact,
                at,
                format!("fact `{name}` is in the profile schema but this build cannot read it"),
                None,
            );
            return None;
        };
        Some((field, ty.clone()))
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
        let mut terms = Vec::new();
        let mut shown = Vec::new();
        for (k, t) in inner
            .get("terms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let t = t.as_str().unwrap_or_default();
            let norm = normalize(t);
            if norm.trim().is_empty() {
                self.error(
                    LoadErrorCode::InvalidCondition,
                    &format!("{at}/text/terms/{k}"),
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
                &format!("{at}/text/terms"),
                "`terms` needs at least one term".into(),
                None,
            );
        }
        match aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&terms)
        {
            Ok(terms) => Cond::Text {
                field,
                terms,
                shown,
            },
            Err(e) => {
                self.error(
                    LoadErrorCode::InvalidCondition,
                    &format!("{at}/text/terms"),
                    format!("the terms cannot be compiled: {e}"),
                    None,
                );
                placeholder
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
