//! The medication vocabulary: ingredient names, brands and codes mapped to interaction classes.
//!
//! The vocabulary is data (`rules/vocabulary.json`); this module checks it and compiles it into a matcher.
//! Free text is normalised (lower case; every run of characters that is not a letter or digit, and every
//! change between letters and digits, becomes one space) and searched with one Aho-Corasick automaton over
//! every normalised name, synonym and brand padded with spaces, so that only whole words match and
//! `oxyCODONE HCl 5 MG` finds `oxycodone` while `Morphinecalm` finds nothing. A match inside a longer match
//! (`valproic` inside `valproic acid`) is dropped. Coded entries match by RxNorm CUI, by exact ATC code,
//! and, where no exact code is known, by ATC group prefixes that the vocabulary declares wholly in a class.
//!
//! Classes are small ids in a 64-bit mask; a subclass sets its parent's bit too. Tags (the Beers 2023
//! "CNS-active" flag is one) are declared in the file like classes and take the bits after them, so a rule
//! tests a tag exactly as it tests a class; they differ only in that a tag has no parent and no ATC groups
//! (it marks ingredients, not a pharmacological family), and no tag name is known to this code.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::error::{LoadError, LoadErrorCode};
use crate::profile::{CodedMedication, Medication};
use crate::suggest::did_you_mean;

/// A set of classes and tags as bits.
pub type ClassMask = u64;

/// How many classes and tags one vocabulary may declare between them: one bit each in a [`ClassMask`].
pub const MAX_CLASSES_AND_TAGS: usize = ClassMask::BITS as usize;

/// Index of an ingredient in the vocabulary.
pub type IngredientId = u32;

/// A cited source, as written in rule packs and vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Short human label.
    pub label: String,
    /// Where to read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A bibliographic citation, where there is no URL or in addition to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<String>,
}

/// The vocabulary file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabularyFile {
    /// Version of the data.
    pub version: String,
    /// Sources cited by classes and ingredients, by id.
    pub sources: BTreeMap<String, Source>,
    /// Interaction classes.
    pub classes: Vec<ClassFile>,
    /// Tags: flags on ingredients that rules test like classes (`beers_cns_active`).
    #[serde(default)]
    pub tags: Vec<TagFile>,
    /// Active ingredients.
    pub ingredients: Vec<IngredientFile>,
}

/// One class, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFile {
    /// Class id used in rules.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Parent class id.
    #[serde(default)]
    pub parent: Option<String>,
    /// ATC groups whose every member belongs to this class.
    #[serde(default)]
    pub atc_prefixes: Vec<String>,
    /// Source ids.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// One tag, as written: a flag on ingredients that rules may test wherever they may test a class.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagFile {
    /// Tag id used in rules and in ingredients' `tags`.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Source ids.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// One ingredient, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngredientFile {
    /// Canonical lower-case name.
    pub name: String,
    /// Other generic names.
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// Brand names, including combination brands.
    #[serde(default)]
    pub brands: Vec<String>,
    /// WHO ATC codes.
    #[serde(default)]
    pub atc: Vec<String>,
    /// RxNorm ingredient CUI, or several.
    #[serde(default)]
    pub rxnorm: Option<Cuis>,
    /// Class ids.
    pub classes: Vec<String>,
    /// Tag ids (declared in the file's `tags`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source ids.
    #[serde(default)]
    pub sources: Vec<String>,
    /// How each kind of fact was verified, by field (`rxnorm`, `atc`, `brands`, ...): `V` read in the
    /// cited source, `V2` read in a secondary copy, `M` unverified. The schema checks keys and tags; the
    /// matcher does not read it, it is there for review.
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
}

/// One RxNorm CUI or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Cuis {
    /// One CUI.
    One(String),
    /// Several CUIs for the same moiety.
    Many(Vec<String>),
}

impl Cuis {
    /// The CUIs, in order.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Cuis::One(c) => std::slice::from_ref(c),
            Cuis::Many(v) => v,
        }
    }
}

/// A compiled class or tag.
#[derive(Debug, Clone)]
pub struct Class {
    /// Class or tag id.
    pub id: String,
    /// Human title.
    pub title: String,
    /// This class's bit plus its ancestors' bits (a tag: its bit).
    pub mask: ClassMask,
}

/// A compiled ingredient.
#[derive(Debug, Clone)]
pub struct Ingredient {
    /// Canonical name.
    pub name: String,
    /// Its classes, ancestors and tags included.
    pub mask: ClassMask,
    /// RxNorm ingredient CUIs.
    pub rxnorm: Vec<String>,
}

/// What one comedication entry matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MedMatch {
    /// Ingredients found, in order of first appearance, without repeats.
    pub ingredients: SmallVec<[IngredientId; 4]>,
    /// Classes known only from an ATC group (no exact ingredient), with the group's code.
    pub atc_group: Option<(String, ClassMask)>,
}

impl MedMatch {
    /// Whether anything in the vocabulary matched.
    pub fn recognized(&self) -> bool {
        !self.ingredients.is_empty() || self.atc_group.is_some()
    }
}

/// The compiled vocabulary: immutable, shared by every screening.
#[derive(Debug)]
pub struct Vocabulary {
    version: String,
    /// The classes, then the tags: entry `i` owns bit `i`.
    kinds: Vec<Class>,
    /// How many of `kinds` are classes.
    class_count: usize,
    /// Class and tag ids to their index in `kinds`.
    class_ids: HashMap<String, usize>,
    ingredients: Vec<Ingredient>,
    by_name: HashMap<String, IngredientId>,
    by_rxnorm: HashMap<String, IngredientId>,
    by_atc: HashMap<String, IngredientId>,
    atc_prefixes: Vec<(String, ClassMask)>,
    automaton: AhoCorasick,
    pattern_owner: Vec<IngredientId>,
}

impl Vocabulary {
    /// Check and compile a vocabulary file's JSON (already schema-checked). `file` names it in errors.
    #[expect(
        clippy::indexing_slicing,
        reason = "class and ingredient indices come from enumerating this file's classes and ingredients, and the maps built from them"
    )]
    pub fn compile(raw: VocabularyFile, file: &str) -> Result<Vocabulary, Vec<LoadError>> {
        let mut errors = Vec::new();
        let err =
            |code, pointer: String, message: String| LoadError::new(code, file, pointer, message);

        // Classes and tags share one name space and one mask: ids first, then parents, so order in the
        // file does not matter.
        let mut class_ids: HashMap<String, usize> = HashMap::new();
        for (i, c) in raw.classes.iter().enumerate() {
            if class_ids.insert(c.id.clone(), i).is_some() {
                errors.push(err(
                    LoadErrorCode::Duplicate,
                    format!("/classes/{i}/id"),
                    format!("class `{}` is defined twice", c.id),
                ));
            }
        }
        for (j, t) in raw.tags.iter().enumerate() {
            // The first definition stays, so a clash is reported once, not again at every use.
            if let Entry::Vacant(slot) = class_ids.entry(t.id.clone()) {
                slot.insert(raw.classes.len() + j);
            } else {
                errors.push(err(
                    LoadErrorCode::Duplicate,
                    format!("/tags/{j}/id"),
                    format!("tag `{}` is defined twice, or is also a class", t.id),
                ));
            }
            check_sources(
                &t.sources,
                &raw.sources,
                file,
                &format!("/tags/{j}/sources"),
                &mut errors,
            );
        }
        if raw.classes.len() + raw.tags.len() > MAX_CLASSES_AND_TAGS {
            errors.push(err(
                LoadErrorCode::Duplicate,
                "/tags".into(),
                format!(
                    "{} classes and {} tags: at most {MAX_CLASSES_AND_TAGS} are supported between them",
                    raw.classes.len(),
                    raw.tags.len()
                ),
            ));
            return Err(errors);
        }
        let mut parents: Vec<Option<usize>> = vec![None; raw.classes.len()];
        for (i, c) in raw.classes.iter().enumerate() {
            if let Some(p) = &c.parent {
                // A tag is no parent: it has no bit of a class to pass down.
                match class_ids.get(p) {
                    Some(&pi) if pi < raw.classes.len() => parents[i] = Some(pi),
                    _ => errors.push(
                        err(
                            LoadErrorCode::UnknownClass,
                            format!("/classes/{i}/parent"),
                            format!("unknown parent class `{p}`"),
                        )
                        .with_help(suggest(p, raw.classes.iter().map(|c| c.id.as_str()))),
                    ),
                }
            }
            check_sources(
                &c.sources,
                &raw.sources,
                file,
                &format!("/classes/{i}/sources"),
                &mut errors,
            );
        }
        let mut kinds = Vec::with_capacity(raw.classes.len() + raw.tags.len());
        for (i, c) in raw.classes.iter().enumerate() {
            let mut mask = 0;
            let mut at = Some(i);
            let mut depth = 0;
            while let Some(k) = at {
                mask |= 1 << k;
                at = parents[k];
                depth += 1;
                if depth > raw.classes.len() {
                    errors.push(err(
                        LoadErrorCode::UnknownClass,
                        format!("/classes/{i}/parent"),
                        format!("class `{}` is its own ancestor", c.id),
                    ));
                    break;
                }
            }
            kinds.push(Class {
                id: c.id.clone(),
                title: c.title.clone(),
                mask,
            });
        }
        let class_count = kinds.len();
        kinds.extend(raw.tags.iter().enumerate().map(|(j, t)| Class {
            id: t.id.clone(),
            title: t.title.clone(),
            mask: 1 << (class_count + j),
        }));
        let mut atc_prefixes = Vec::new();
        for (i, c) in raw.classes.iter().enumerate() {
            for p in &c.atc_prefixes {
                atc_prefixes.push((p.to_ascii_uppercase(), kinds[i].mask));
            }
        }
        // Longest prefix first, so the most specific group is reported.
        atc_prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));

        let mut ingredients = Vec::with_capacity(raw.ingredients.len());
        let mut by_name = HashMap::new();
        let mut by_rxnorm = HashMap::new();
        let mut by_atc = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut pattern_owner: Vec<IngredientId> = Vec::new();
        for (i, ing) in raw.ingredients.iter().enumerate() {
            let id = i as IngredientId;
            let at = format!("/ingredients/{i}");
            if by_name.insert(ing.name.clone(), id).is_some() {
                errors.push(err(
                    LoadErrorCode::Duplicate,
                    format!("{at}/name"),
                    format!("ingredient `{}` is defined twice", ing.name),
                ));
            }
            let mut mask = 0;
            // A class named among tags (or a tag among classes) is unknown there: the two lists mean
            // different things to a reader even though rules test both alike.
            let lists = [
                ("classes", "class", &ing.classes, &kinds[..class_count]),
                ("tags", "tag", &ing.tags, &kinds[class_count..]),
            ];
            for (list, kind, names, known) in lists {
                for (k, name) in names.iter().enumerate() {
                    match known.iter().find(|c| c.id == *name) {
                        Some(c) => mask |= c.mask,
                        None => errors.push(
                            err(
                                LoadErrorCode::UnknownClass,
                                format!("{at}/{list}/{k}"),
                                format!("unknown {kind} `{name}` for ingredient `{}`", ing.name),
                            )
                            .with_help(suggest(name, known.iter().map(|c| c.id.as_str()))),
                        ),
                    }
                }
            }
            let cuis = ing.rxnorm.as_ref().map_or(&[][..], Cuis::as_slice);
            for cui in cuis {
                if let Some(&other) = by_rxnorm.get(cui) {
                    let other: &IngredientFile = &raw.ingredients[other as usize];
                    errors.push(err(
                        LoadErrorCode::Duplicate,
                        format!("{at}/rxnorm"),
                        format!("RxNorm CUI `{cui}` is also given to `{}`", other.name),
                    ));
                } else {
                    by_rxnorm.insert(cui.clone(), id);
                }
            }
            for (k, code) in ing.atc.iter().enumerate() {
                let code = code.to_ascii_uppercase();
                if let Some(&other) = by_atc.get(&code) {
                    let other: &IngredientFile = &raw.ingredients[other as usize];
                    errors.push(err(
                        LoadErrorCode::Duplicate,
                        format!("{at}/atc/{k}"),
                        format!("ATC code `{code}` is also given to `{}`", other.name),
                    ));
                } else {
                    by_atc.insert(code, id);
                }
            }
            check_sources(
                &ing.sources,
                &raw.sources,
                file,
                &format!("{at}/sources"),
                &mut errors,
            );
            let terms = std::iter::once(("name", 0, &ing.name))
                .chain(
                    ing.synonyms
                        .iter()
                        .enumerate()
                        .map(|(k, s)| ("synonyms", k, s)),
                )
                .chain(ing.brands.iter().enumerate().map(|(k, s)| ("brands", k, s)));
            let mut seen = HashSet::new();
            for (list, k, term) in terms {
                let norm = normalize(term);
                if norm.trim().is_empty() {
                    let pointer = if list == "name" {
                        format!("{at}/name")
                    } else {
                        format!("{at}/{list}/{k}")
                    };
                    errors.push(err(
                        LoadErrorCode::EmptyTerm,
                        pointer,
                        format!("`{term}` has no letters or digits, so it can never match"),
                    ));
                } else if seen.insert(norm.clone()) {
                    patterns.push(norm);
                    pattern_owner.push(id);
                }
            }
            ingredients.push(Ingredient {
                name: ing.name.clone(),
                mask,
                rxnorm: cuis.to_vec(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| vec![err(LoadErrorCode::EmptyTerm, String::new(), e.to_string())])?;
        Ok(Vocabulary {
            version: raw.version,
            kinds,
            class_count,
            class_ids,
            ingredients,
            by_name,
            by_rxnorm,
            by_atc,
            atc_prefixes,
            automaton,
            pattern_owner,
        })
    }

    /// The vocabulary's version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of ingredients.
    pub fn len(&self) -> usize {
        self.ingredients.len()
    }

    /// Whether the vocabulary has no ingredients.
    pub fn is_empty(&self) -> bool {
        self.ingredients.is_empty()
    }

    /// The classes, in file order.
    pub fn classes(&self) -> &[Class] {
        self.kinds.get(..self.class_count).unwrap_or_default()
    }

    /// The tags, in file order.
    pub fn tags(&self) -> &[Class] {
        self.kinds.get(self.class_count..).unwrap_or_default()
    }

    /// Every class and tag name rules may use, classes first, in file order.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.kinds.iter().map(|c| c.id.as_str())
    }

    /// The bit of class or tag `name` (not a class's ancestors'), if it exists.
    pub fn class_bit(&self, name: &str) -> Option<ClassMask> {
        self.class_ids.get(name).map(|&i| 1 << i)
    }

    /// The name of the class or tag with bit `bit`.
    pub fn class_name(&self, bit: ClassMask) -> &str {
        self.kinds
            .get(bit.trailing_zeros() as usize)
            .map_or("?", |c| c.id.as_str())
    }

    /// The ingredient with id `id`.
    #[expect(
        clippy::indexing_slicing,
        reason = "an IngredientId is only ever made by this vocabulary, as an index into its ingredients"
    )]
    pub fn ingredient(&self, id: IngredientId) -> &Ingredient {
        &self.ingredients[id as usize]
    }

    /// The ingredients, in file order.
    pub fn ingredients(&self) -> &[Ingredient] {
        &self.ingredients
    }

    /// The ingredient named `name`.
    pub fn ingredient_id(&self, name: &str) -> Option<IngredientId> {
        self.by_name.get(name).copied()
    }

    /// Match one comedication entry.
    pub fn match_medication(&self, med: &Medication) -> MedMatch {
        let mut out = MedMatch::default();
        match med {
            Medication::Text(text) => self.match_text(text, &mut out.ingredients),
            Medication::Coded(coded) => self.match_coded(coded, &mut out),
        }
        out
    }

    fn match_coded(&self, coded: &CodedMedication, out: &mut MedMatch) {
        if let Some(cui) = &coded.rxnorm
            && let Some(&id) = self.by_rxnorm.get(cui.as_str())
        {
            push_unique(&mut out.ingredients, id);
        }
        if let Some(atc) = &coded.atc {
            let atc = atc.to_ascii_uppercase();
            if let Some(&id) = self.by_atc.get(&atc) {
                push_unique(&mut out.ingredients, id);
            } else {
                let mask = self
                    .atc_prefixes
                    .iter()
                    .filter(|(p, _)| atc.starts_with(p.as_str()))
                    .fold(0, |m, (_, bits)| m | bits);
                if mask != 0 {
                    out.atc_group = Some((atc, mask));
                }
            }
        }
        if let Some(name) = &coded.name {
            self.match_text(name, &mut out.ingredients);
        }
    }

    /// Ingredients named in free text, whole words only.
    pub fn match_text(&self, text: &str, out: &mut SmallVec<[IngredientId; 4]>) {
        let hay = normalize(text);
        let mut spans: Vec<(usize, usize, IngredientId)> = Vec::new();
        for m in self.automaton.find_overlapping_iter(&hay) {
            if let Some(&owner) = self.pattern_owner.get(m.pattern().as_usize()) {
                spans.push((m.start(), m.end(), owner));
            }
        }
        for &(s, e, id) in &spans {
            let inside_longer = spans
                .iter()
                .any(|&(s2, e2, _)| s2 <= s && e <= e2 && (e2 - s2) > (e - s));
            if !inside_longer {
                push_unique(out, id);
            }
        }
    }
}

fn push_unique(v: &mut SmallVec<[IngredientId; 4]>, id: IngredientId) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// Matches of free-text entries already seen, so that a string that recurs (as medication strings do,
/// across patients) is normalised and searched once. Keep one per thread; it is bounded, and it empties
/// itself if used with another vocabulary.
#[derive(Debug, Default)]
pub struct MatchCache {
    vocabulary: usize,
    map: HashMap<Box<str>, MedMatch>,
}

impl MatchCache {
    const LIMIT: usize = 1 << 16;

    /// A new, empty cache (allocates nothing until used).
    pub fn new() -> MatchCache {
        MatchCache::default()
    }

    /// The same as [`Vocabulary::match_medication`], remembering free-text results.
    pub fn match_medication(&mut self, vocab: &Vocabulary, med: &Medication) -> MedMatch {
        let Medication::Text(text) = med else {
            return vocab.match_medication(med);
        };
        let id = std::ptr::from_ref(vocab) as usize;
        if self.vocabulary != id {
            self.map.clear();
            self.vocabulary = id;
        }
        if let Some(m) = self.map.get(text.as_str()) {
            return m.clone();
        }
        let m = vocab.match_medication(med);
        if self.map.len() >= Self::LIMIT {
            self.map.clear();
        }
        self.map.insert(text.as_str().into(), m.clone());
        m
    }
}

/// Normalise text for matching: ` word word `: lower case, one space between words, padded at both ends.
/// A word is a run of letters or a run of digits.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut prev = Kind::Space;
    for ch in text.chars() {
        let kind = if ch.is_alphabetic() {
            Kind::Letter
        } else if ch.is_numeric() {
            Kind::Digit
        } else {
            Kind::Space
        };
        if kind == Kind::Space {
            if prev != Kind::Space {
                out.push(' ');
            }
        } else {
            if prev != Kind::Space && prev != kind {
                out.push(' ');
            }
            out.extend(ch.to_lowercase());
        }
        prev = kind;
    }
    if prev != Kind::Space {
        out.push(' ');
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letter,
    Digit,
    Space,
}

fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// Report every source id in `refs` that `defined` lacks.
pub(crate) fn check_sources(
    refs: &[String],
    defined: &BTreeMap<String, Source>,
    file: &str,
    pointer: &str,
    errors: &mut Vec<LoadError>,
) {
    for (k, r) in refs.iter().enumerate() {
        if !defined.contains_key(r) {
            errors.push(
                LoadError::new(
                    LoadErrorCode::UnknownSource,
                    file,
                    format!("{pointer}/{k}"),
                    format!("unknown source `{r}`"),
                )
                .with_help(suggest(r, defined.keys().map(String::as_str))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_splits_words_digits_and_punctuation() {
        assert_eq!(normalize("oxyCODONE HCl 5 MG"), " oxycodone hcl 5 mg ");
        assert_eq!(normalize("Xanax0.5mg"), " xanax 0 5 mg ");
        assert_eq!(normalize("  Parkinson's  "), " parkinson s ");
        assert_eq!(normalize("Hydrocodone/APAP"), " hydrocodone apap ");
        assert_eq!(normalize(""), " ");
    }
}
