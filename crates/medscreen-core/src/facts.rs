//! Fact declarations -> the layout the typed profile is read into.
//!
//! The engine knows no drug: the facts a profile may carry are data. The shared patient facts are the
//! properties of `schemas/profile.schema.json`; each rule pack declares its own facts under `"facts"`,
//! as JSON Schema property fragments limited to what compiles to a typed slot:
//!
//! ```json
//! "facts": {
//!   "baclofen_daily_dose_mg": {"type": ["number", "null"], "minimum": 0, "maximum": 1000,
//!                              "title": "daily dose", "generate": {"chance": 0.7, "values": [5, 10, 30]}},
//!   "discontinuation": {"enum": ["abrupt", "taper", null], "title": "plan for stopping"}
//! }
//! ```
//!
//! A fragment is a boolean, a number or integer with an optional inclusive range, an enumeration of
//! strings, or a free string with optional length bounds, and it must accept `null` (absent or null
//! means unknown). `title`, `short_title` and `unit` name the fact and its unit for people (CDS
//! cards; see [`Labels`]), `generate` tells the synthetic-data
//! generator how to fill it; neither changes validity. At load, every declaration of every pack the
//! engine knows is compiled into one [`FactTable`]: each fact gets a slot index and a type, and the
//! accepted profile schema is the shared schema with every pack's fragments added. Two packs may declare
//! the same fact only identically, and no pack may redeclare a shared fact.
//!
//! `id`, `age` and `comedications` are structural: every profile has them in the same typed place
//! (the record is named by its id, age is required, comedications are matched through the vocabulary),
//! so they are [`Field`]s of their own rather than slots.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{LoadError, LoadErrorCode};

/// Where a rule reads a fact: one of the structural members of a profile, or a declared fact's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The record identifier.
    Id,
    /// Age in completed years.
    Age,
    /// The comedication list (rules ask whether it is known; medication tests read it through the
    /// vocabulary).
    Comedications,
    /// A declared fact, by its index in the [`FactTable`].
    Slot(u16),
}

/// The type of a fact as rules see it.
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
    /// How the type is named in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            FactType::Bool => "boolean",
            FactType::Num => "number",
            FactType::Str => "string",
            FactType::Enum(_) => "enumerated",
            FactType::List => "list",
        }
    }
}

/// Numeric bounds must be smaller than this in magnitude (2^53): every integer below it is an exact
/// `f64`, and values are compared as `f64`.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// What values a declared fact takes, besides `null`.
#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    /// `true` or `false`.
    Bool,
    /// A number within the inclusive bounds; `integer` when it must be integral.
    Number {
        /// Inclusive lower bound.
        min: Option<f64>,
        /// Inclusive upper bound.
        max: Option<f64>,
        /// Whether the number must be integral (`65.0` is).
        integer: bool,
    },
    /// One of these strings.
    Enum(Vec<String>),
    /// A string whose length in characters is within the bounds.
    Text {
        /// Least length.
        min_len: Option<u64>,
        /// Greatest length.
        max_len: Option<u64>,
    },
}

impl FactKind {
    /// The type rules compare it as.
    pub fn fact_type(&self) -> FactType {
        match self {
            FactKind::Bool => FactType::Bool,
            FactKind::Number { .. } => FactType::Num,
            FactKind::Enum(options) => FactType::Enum(options.clone()),
            FactKind::Text { .. } => FactType::Str,
        }
    }

    /// Whether a number is a value of this fact.
    #[inline]
    pub fn number_ok(&self, n: f64) -> bool {
        match self {
            FactKind::Number { min, max, integer } => {
                min.is_none_or(|m| n >= m)
                    && max.is_none_or(|m| n <= m)
                    && (!integer || n.fract() == 0.0)
            }
            _ => false,
        }
    }

    /// Whether a string is a value of this fact (for an enumeration, which option it is).
    #[inline]
    pub fn text_ok(&self, s: &str) -> bool {
        match self {
            FactKind::Text { min_len, max_len } => {
                let (min, max) = (min_len.unwrap_or(0), max_len.unwrap_or(u64::MAX));
                let bytes = s.len() as u64;
                // JSON Schema lengths count code points; bytes bound them from above, and equal them
                // for ASCII.
                if bytes < min {
                    return false;
                }
                if s.is_ascii() {
                    return bytes <= max;
                }
                (min..=max).contains(&(s.chars().count() as u64))
            }
            _ => false,
        }
    }

    /// Whether `v` is a value of this fact (`null` always is).
    pub fn accepts(&self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) | (FactKind::Bool, Value::Bool(_)) => true,
            (FactKind::Number { .. }, Value::Number(n)) => {
                n.as_f64().is_some_and(|n| self.number_ok(n))
            }
            (FactKind::Enum(options), Value::String(s)) => options.contains(s),
            (FactKind::Text { .. }, Value::String(s)) => self.text_ok(s),
            _ => false,
        }
    }
}

/// How the synthetic-data generator fills a fact (`"generate"` in a declaration).
#[derive(Debug, Clone, PartialEq)]
pub enum Generate {
    /// `{"chance": p, "values": [...]}`: present with probability `p`, then one of the values, uniformly.
    Pick {
        /// Probability that the fact is written.
        chance: f64,
        /// The values, written as JSON.
        values: Vec<Value>,
    },
    /// `{"weighted": [{"weight": w, "value": v}, ...]}`: one case by weight; a case without `value`
    /// leaves the fact out.
    Weighted(Vec<(u64, Option<Value>)>),
}

/// How people read a fact: annotations of its declaration that change nothing about validity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Labels {
    /// `title`: the fact named for a clinician (`kidney function (eGFR)`).
    pub title: Option<String>,
    /// `short_title`: its name in a one-line summary (`eGFR`).
    pub short_title: Option<String>,
    /// `unit`: the unit its numbers are in (`mL/min/1.73 m²`).
    pub unit: Option<String>,
}

impl Labels {
    fn of(fragment: &Value) -> Labels {
        let text = |k: &str| fragment.get(k).and_then(Value::as_str).map(str::to_owned);
        Labels {
            title: text("title"),
            short_title: text("short_title"),
            unit: text("unit"),
        }
    }
}

/// One declared fact.
#[derive(Debug, Clone, PartialEq)]
pub struct FactDecl {
    /// The name, as in profiles and rules.
    pub name: String,
    /// `/name`, its JSON Pointer in a profile.
    pub pointer: String,
    /// What values it takes.
    pub kind: FactKind,
    /// How people read it (`title`, `short_title`, `unit`).
    pub labels: Labels,
    /// The pack that declared it; `None` for a shared fact.
    pub pack: Option<String>,
    /// How the generator fills it, if it does.
    pub generate: Option<Generate>,
}

/// The facts a profile may carry, compiled: structural members, then one slot per declared fact.
///
/// Names are found by length, then by three machine words, with no hashing, no allocation and no call
/// to `memcmp`: the typed reader looks up every key of every record here.
#[derive(Debug, Clone)]
pub struct FactTable {
    decls: Vec<FactDecl>,
    /// `by_len[n]` is the range of `names` of length `n`.
    by_len: Vec<(u32, u32)>,
    /// Every name with its field, sorted by length then bytes.
    names: Vec<(Box<str>, Field)>,
    /// `words(name)` of each of `names`, in the same order.
    words: Vec<[u64; 3]>,
    /// Titles of the structural members, from the shared schema.
    structural_labels: [Labels; 3],
    /// The accepted profile schema: the shared schema with every pack's fragments.
    schema: Value,
    /// For each pack fact, the packs that declare it (identical declarations may repeat).
    declared_by: BTreeMap<String, Vec<String>>,
}

const STRUCTURAL: [(&str, Field); 3] = [
    ("id", Field::Id),
    ("age", Field::Age),
    ("comedications", Field::Comedications),
];

/// Keywords a fact declaration may use.
const KEYWORDS: [&str; 11] = [
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "title",
    "short_title",
    "unit",
    "description",
    "generate",
];

/// The longest fact name the table indexes by length (longer names are unknown).
const MAX_NAME: usize = 128;

impl FactTable {
    /// Compile the shared schema's properties and the `facts` of each pack (`(file, pack)`, in order;
    /// the file names errors). Collects every problem.
    pub fn build(
        shared: &Value,
        shared_file: &str,
        packs: &[(&str, &Value)],
    ) -> Result<FactTable, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut decls: Vec<FactDecl> = Vec::new();
        let empty = Map::new();
        let shared_props = shared
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut structural_labels: [Labels; 3] = Default::default();
        for (name, fragment) in shared_props {
            if let Some(k) = STRUCTURAL.iter().position(|(n, _)| n == name) {
                if let Some(l) = structural_labels.get_mut(k) {
                    *l = Labels::of(fragment);
                }
                continue;
            }
            let at = format!("/properties/{}", crate::schema::escape_pointer(name));
            if let Some(d) = declaration(name, fragment, None, shared_file, &at, &mut errors) {
                decls.push(d);
            }
        }
        let mut schema = shared.clone();
        let mut first_file: BTreeMap<String, String> = BTreeMap::new();
        let mut declared_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (file, pack) in packs {
            let pack_name = pack.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(facts) = pack.get("facts").and_then(Value::as_object) else {
                continue;
            };
            // In name order whatever the map keeps, so that slots (and generated data) do not depend
            // on how the file orders its facts.
            let mut facts: Vec<(&String, &Value)> = facts.iter().collect();
            facts.sort_by(|a, b| a.0.cmp(b.0));
            for (name, fragment) in facts {
                let at = format!("/facts/{}", crate::schema::escape_pointer(name));
                if shared_props.contains_key(name) {
                    errors.push(
                        LoadError::new(
                            LoadErrorCode::FactConflict,
                            file,
                            at,
                            format!("fact `{name}` is a shared patient fact; a pack cannot declare it again"),
                        )
                        .with_help(Some(format!(
                            "rules read `{name}` without declaring it; give a fact of the pack's own a name of its own"
                        ))),
                    );
                    continue;
                }
                let Some(d) = declaration(name, fragment, Some(pack_name), file, &at, &mut errors)
                else {
                    continue;
                };
                if let Some(known) = decls.iter().find(|k| k.name == *name) {
                    if known.kind == d.kind {
                        declared_by
                            .entry(name.clone())
                            .or_default()
                            .push(pack_name.to_owned());
                    } else {
                        let first = first_file.get(name).cloned().unwrap_or_default();
                        errors.push(
                            LoadError::new(
                                LoadErrorCode::FactConflict,
                                file,
                                at,
                                format!("fact `{name}` is declared differently in {first}"),
                            )
                            .with_help(Some(
                                "packs that share a fact must declare the same type, range and values".into(),
                            )),
                        );
                    }
                    continue;
                }
                first_file.insert(name.clone(), (*file).to_owned());
                declared_by
                    .entry(name.clone())
                    .or_default()
                    .push(pack_name.to_owned());
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    let mut fragment = fragment.clone();
                    if let Some(f) = fragment.as_object_mut() {
                        f.remove("generate");
                    }
                    props.insert(name.clone(), fragment);
                }
                decls.push(d);
            }
        }
        if decls.len() > usize::from(u16::MAX) {
            errors.push(LoadError::new(
                LoadErrorCode::InvalidFact,
                shared_file,
                "",
                format!("{} facts are more than a profile can hold", decls.len()),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut names: Vec<(Box<str>, Field)> = STRUCTURAL
            .iter()
            .map(|(n, f)| (Box::from(*n), *f))
            .chain(
                decls
                    .iter()
                    .enumerate()
                    .map(|(k, d)| (Box::from(d.name.as_str()), Field::Slot(k as u16))),
            )
            .filter(|(n, _): &(Box<str>, Field)| n.len() <= MAX_NAME)
            .collect();
        names.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let longest = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let by_len = (0..=longest)
            .map(|len| {
                let start = names.partition_point(|(n, _)| n.len() < len);
                let end = names.partition_point(|(n, _)| n.len() <= len);
                (start as u32, end as u32)
            })
            .collect();
        let words = names.iter().map(|(n, _)| words(n.as_bytes())).collect();
        Ok(FactTable {
            decls,
            by_len,
            names,
            words,
            structural_labels,
            schema,
            declared_by,
        })
    }

    /// Whether a rule of pack `pack` may read fact `name`: a shared fact, or one the pack declares
    /// itself. (Every known pack's facts are accepted in profiles, but a pack that reads another's
    /// would load or not depending on which packs are loaded with it.)
    pub fn readable_by(&self, name: &str, pack: &str) -> bool {
        self.declared_by
            .get(name)
            .is_none_or(|packs| packs.iter().any(|p| p == pack))
    }

    /// The packs that declare fact `name` (empty for a shared or unknown fact).
    pub fn declared_by(&self, name: &str) -> &[String] {
        self.declared_by.get(name).map_or(&[], Vec::as_slice)
    }

    /// The field named `name`, if the profile has one.
    #[inline]
    pub fn resolve(&self, name: &str) -> Option<Field> {
        let &(start, end) = self.by_len.get(name.len())?;
        let range = start as usize..end as usize;
        let key = words(name.as_bytes());
        // Three words hold every byte of a name up to 24 bytes long: longer ones are compared whole.
        let exact = name.len() <= 24;
        self.words
            .get(range.clone())?
            .iter()
            .zip(self.names.get(range)?)
            .find(|(w, (n, _))| **w == key && (exact || **n == *name))
            .map(|(_, (_, f))| *f)
    }

    /// Every declared fact, in slot order: the shared ones, then each pack's in name order.
    pub fn decls(&self) -> &[FactDecl] {
        &self.decls
    }

    /// The declaration of slot `k`.
    #[inline]
    pub fn decl(&self, k: u16) -> Option<&FactDecl> {
        self.decls.get(usize::from(k))
    }

    /// The name of a field.
    pub fn name(&self, field: Field) -> &str {
        match field {
            Field::Id => "id",
            Field::Age => "age",
            Field::Comedications => "comedications",
            Field::Slot(k) => self.decl(k).map_or("", |d| d.name.as_str()),
        }
    }

    /// The JSON Pointer of a field in a profile.
    pub fn pointer(&self, field: Field) -> &str {
        match field {
            Field::Id => "/id",
            Field::Age => "/age",
            Field::Comedications => "/comedications",
            Field::Slot(k) => self.decl(k).map_or("", |d| d.pointer.as_str()),
        }
    }

    /// The type rules compare a field as.
    pub fn fact_type(&self, field: Field) -> Option<FactType> {
        match field {
            Field::Id => Some(FactType::Str),
            Field::Age => Some(FactType::Num),
            Field::Comedications => Some(FactType::List),
            Field::Slot(k) => self.decl(k).map(|d| d.kind.fact_type()),
        }
    }

    /// How people read the fact named `name`, if the profile has it.
    pub fn labels(&self, name: &str) -> Option<&Labels> {
        match self.resolve(name)? {
            Field::Id => self.structural_labels.first(),
            Field::Age => self.structural_labels.get(1),
            Field::Comedications => self.structural_labels.get(2),
            Field::Slot(k) => Some(&self.decl(k)?.labels),
        }
    }

    /// The title declared for the fact named `name` (a name for people), if any.
    pub fn title(&self, name: &str) -> Option<&str> {
        self.labels(name)?.title.as_deref()
    }

    /// Every name a profile may carry, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut all: Vec<&str> = self.names.iter().map(|(n, _)| &**n).collect();
        all.sort_unstable();
        all.into_iter()
    }

    /// The accepted profile schema: the shared schema with every pack's declarations added.
    pub fn schema(&self) -> &Value {
        &self.schema
    }
}

/// A name as three little-endian words: its first, middle and last eight bytes (zero-padded when
/// shorter), which together cover every byte of a name up to 24 bytes long. Comparing these is what
/// makes a lookup cheap: every member of every record is looked up.
#[inline]
fn words(b: &[u8]) -> [u64; 3] {
    let n = b.len();
    let word = |at: usize| {
        b.get(at..at + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_le_bytes)
    };
    if n >= 8 {
        [word(0), word(n / 2 - 4), word(n - 8)]
    } else {
        let mut buf = [0u8; 8];
        buf.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
        [u64::from_le_bytes(buf), 0, 0]
    }
}

/// Compile one declaration; `None` (with errors recorded) when it is outside the supported subset.
fn declaration(
    name: &str,
    fragment: &Value,
    pack: Option<&str>,
    file: &str,
    at: &str,
    errors: &mut Vec<LoadError>,
) -> Option<FactDecl> {
    let before = errors.len();
    let mut bad = |pointer: String, message: String| {
        errors.push(LoadError::new(
            LoadErrorCode::InvalidFact,
            file,
            pointer,
            message,
        ));
    };
    let Some(obj) = fragment.as_object() else {
        bad(
            at.to_owned(),
            format!("fact `{name}` must be declared by an object"),
        );
        return None;
    };
    if name.is_empty() || name.len() > MAX_NAME {
        bad(
            at.to_owned(),
            format!("a fact name must have 1 to {MAX_NAME} bytes"),
        );
    }
    for key in obj.keys() {
        if !KEYWORDS.contains(&key.as_str()) {
            bad(
                format!("{at}/{}", crate::schema::escape_pointer(key)),
                format!(
                    "fact `{name}` uses `{key}`, which a fact declaration cannot use (allowed: {})",
                    KEYWORDS.map(|k| format!("`{k}`")).join(", ")
                ),
            );
        }
    }
    let num = |k: &str| obj.get(k).and_then(Value::as_f64);
    let len = |k: &str| obj.get(k).and_then(Value::as_u64);
    let kind = if let Some(options) = obj.get("enum") {
        let list = options.as_array().map(Vec::as_slice).unwrap_or_default();
        let strings: Vec<String> = list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let nulls = list.iter().filter(|v| v.is_null()).count();
        if strings.len() + nulls != list.len() || strings.is_empty() || nulls != 1 {
            bad(
                format!("{at}/enum"),
                format!("the `enum` of fact `{name}` must list strings and `null` once"),
            );
        }
        if obj.contains_key("type") {
            bad(
                format!("{at}/type"),
                format!("fact `{name}` has an `enum`: its `type` goes without saying"),
            );
        }
        FactKind::Enum(strings)
    } else {
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let non_null: Vec<&str> = types.iter().copied().filter(|t| *t != "null").collect();
        if !types.contains(&"null") {
            bad(
                format!("{at}/type"),
                format!("fact `{name}` must accept `null`: an absent or null fact is unknown"),
            );
        }
        match non_null.as_slice() {
            ["boolean"] => FactKind::Bool,
            ["number"] => FactKind::Number {
                min: num("minimum"),
                max: num("maximum"),
                integer: false,
            },
            ["integer"] => FactKind::Number {
                min: num("minimum"),
                max: num("maximum"),
                integer: true,
            },
            ["string"] => FactKind::Text {
                min_len: len("minLength"),
                max_len: len("maxLength"),
            },
            _ => {
                bad(
                    format!("{at}/type"),
                    format!(
                        "fact `{name}` must be one of `boolean`, `number`, `integer` or `string` (with `null`), or an `enum`"
                    ),
                );
                return None;
            }
        }
    };
    let numeric = matches!(kind, FactKind::Number { .. });
    let text = matches!(kind, FactKind::Text { .. });
    for (k, fits, what) in [
        ("minimum", numeric, "a number"),
        ("maximum", numeric, "a number"),
        ("minLength", text, "a string"),
        ("maxLength", text, "a string"),
    ] {
        if let Some(v) = obj.get(k) {
            // Values are compared as f64: a bound beyond 2^53 would not be compared exactly, so a
            // value just past it could pass.
            let valid = if numeric {
                v.as_f64().is_some_and(|x| x.abs() < EXACT_LIMIT)
            } else {
                v.is_u64()
            };
            if !fits || !valid {
                bad(
                    format!("{at}/{k}"),
                    format!("`{k}` of fact `{name}` needs {what} fact and a valid bound"),
                );
            }
        }
    }
    let generate = obj
        .get("generate")
        .and_then(|g| generate_hint(name, g, &kind, &format!("{at}/generate"), &mut bad));
    if errors.len() > before {
        return None;
    }
    Some(FactDecl {
        name: name.to_owned(),
        pointer: format!("/{}", crate::schema::escape_pointer(name)),
        kind,
        labels: Labels::of(fragment),
        pack: pack.map(str::to_owned),
        generate,
    })
}

fn generate_hint(
    name: &str,
    g: &Value,
    kind: &FactKind,
    at: &str,
    bad: &mut impl FnMut(String, String),
) -> Option<Generate> {
    let values_ok = |values: &mut dyn Iterator<Item = &Value>| {
        let mut all = true;
        for v in values {
            all &= kind.accepts(v);
        }
        all
    };
    if let (Some(chance), Some(values)) = (
        g.get("chance").and_then(Value::as_f64),
        g.get("values").and_then(Value::as_array),
    ) && g.as_object().is_some_and(|o| o.len() == 2)
    {
        if !(0.0..=1.0).contains(&chance) || values.is_empty() || !values_ok(&mut values.iter()) {
            bad(
                at.to_owned(),
                format!(
                    "`generate` of fact `{name}` needs a chance from 0 to 1 and values of the fact"
                ),
            );
            return None;
        }
        return Some(Generate::Pick {
            chance,
            values: values.clone(),
        });
    }
    if let Some(cases) = g.get("weighted").and_then(Value::as_array)
        && g.as_object().is_some_and(|o| o.len() == 1)
    {
        let parsed: Vec<(u64, Option<Value>)> = cases
            .iter()
            .filter_map(|c| {
                let weight = c.get("weight")?.as_u64()?;
                Some((weight, c.get("value").cloned()))
            })
            .collect();
        // The weights must add up to something, without overflowing: the generator draws below the sum.
        let total = parsed
            .iter()
            .try_fold(0u64, |sum, (w, _)| sum.checked_add(*w));
        if parsed.len() != cases.len()
            || total.is_none_or(|t| t == 0)
            || !values_ok(&mut parsed.iter().filter_map(|(_, v)| v.as_ref()))
        {
            bad(
                at.to_owned(),
                format!(
                    "`generate` of fact `{name}` needs cases with a weight and, optionally, a value of the fact"
                ),
            );
            return None;
        }
        return Some(Generate::Weighted(parsed));
    }
    bad(
        at.to_owned(),
        format!(
            "`generate` of fact `{name}` must be `{{\"chance\", \"values\"}}` or `{{\"weighted\"}}`"
        ),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that share a length and a head, middle or tail must still resolve apart, at every length
    /// around the word boundaries and beyond the three words.
    #[test]
    fn lookup_tells_apart_names_that_differ_in_one_byte_anywhere() {
        let mut props = serde_json::Map::new();
        let mut names = Vec::new();
        for len in [1usize, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40] {
            for at in 0..len {
                let mut name = vec![b'a'; len];
                if let Some(b) = name.get_mut(at) {
                    *b = b'b';
                }
                let name = String::from_utf8(name).unwrap();
                props.insert(
                    name.clone(),
                    serde_json::json!({"type": ["boolean", "null"]}),
                );
                names.push(name);
            }
            let base = "a".repeat(len);
            props.insert(
                base.clone(),
                serde_json::json!({"type": ["boolean", "null"]}),
            );
            names.push(base);
        }
        let shared = serde_json::json!({"properties": props});
        let table = FactTable::build(&shared, "shared", &[]).unwrap();
        for name in &names {
            let field = table.resolve(name).unwrap();
            assert_eq!(table.name(field), name);
        }
        for missing in ["", "c", "aaaaaaaaaaaaaaaaaaaaaaaac", &"a".repeat(41), "ab"] {
            assert_eq!(table.resolve(missing), None, "{missing}");
        }
        assert_eq!(table.resolve("age"), Some(Field::Age));
        assert_eq!(table.resolve("comedications"), Some(Field::Comedications));
    }
}
