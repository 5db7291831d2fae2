//! The engine: a compiled rule pack, its vocabulary and the profile schema, built once and shared.
//!
//! The engine knows no drug. It knows the packs it was given (embedded or read from a directory): their
//! declared facts, with the shared patient facts, make the one profile layout every record is read
//! into ([`FactTable`]), so a record is accepted whatever pack screens it. The packs asked for screen
//! (the default one when none is), in that order, each record parsed once and its medications matched
//! once ([`Engine::screen_packs_with`]); the others contribute their facts and are checked as strictly.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compile::{self, Program, Rule};
use crate::error::{LoadError, LoadErrorCode, LoadErrors};
use crate::eval::Evaluator;
use crate::facts::FactTable;
use crate::profile::Profile;
use crate::report::Screening;
use crate::schema::{Problem, ProblemCode, SchemaChecker};
use crate::vocab::{MatchCache, MedMatch, Vocabulary, VocabularyFile};

// `EMBEDDED_PACKS`, `EMBEDDED_DEFAULT` and `EMBEDDED_TESTS`, written by `build.rs` from
// `rules/packs.json`.
include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The text of the default embedded pack (the first of [`EMBEDDED_PACKS`]).
pub const EMBEDDED_PACK: &str = match EMBEDDED_PACKS.first() {
    Some(&(_, text)) => text,
    None => "",
};

/// The name of a pack's folder in a pack file name (`rules/NAME/pack.json` -> `NAME`).
fn folder_name(file: &str) -> Option<&str> {
    let path = Path::new(file);
    if path.file_name()? != PACK_FILE {
        return None;
    }
    path.parent()?.file_name()?.to_str()
}

/// The names of the embedded packs, the default first.
pub fn embedded_pack_names() -> Vec<String> {
    EMBEDDED_PACKS
        .iter()
        .filter_map(|(file, text)| pack_name(file, text))
        .collect()
}

/// A pack's name: its `name`, or when the text does not say, its folder's.
fn pack_name(file: &str, text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_str::<Named>(text)
        .ok()
        .map(|n| n.name)
        .or_else(|| folder_name(file).map(str::to_owned))
}

/// `packs` with the packs named in `names` first, in that order, then the others in their order; or
/// an `unknown_pack` error naming where the packs came from (`duplicate` when a name is given twice).
fn screening_order<'a>(
    packs: &[(&'a str, &'a str)],
    names: &[&str],
    from: &str,
) -> Result<Vec<(&'a str, &'a str)>, LoadErrors> {
    let known: Vec<String> = packs
        .iter()
        .map(|(file, text)| pack_name(file, text).unwrap_or_default())
        .collect();
    let mut rest: Vec<Option<(&'a str, &'a str)>> = packs.iter().copied().map(Some).collect();
    let mut ordered = Vec::with_capacity(packs.len());
    let mut errors = Vec::new();
    for (k, name) in names.iter().enumerate() {
        if names.get(..k).is_some_and(|before| before.contains(name)) {
            errors.push(LoadError::new(
                LoadErrorCode::Duplicate,
                from,
                "",
                format!("pack `{name}` is asked for twice"),
            ));
            continue;
        }
        match known.iter().position(|n| n == name) {
            Some(at) => ordered.extend(rest.get_mut(at).and_then(Option::take)),
            None => {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                let mut e = LoadError::new(
                    LoadErrorCode::UnknownPack,
                    from,
                    "",
                    format!("no pack `{name}` (packs: {})", list.join(", ")),
                );
                if let Some(s) = crate::suggest::did_you_mean(name, list.iter().copied()) {
                    e.help = Some(format!("did you mean `{s}`?"));
                }
                errors.push(e);
            }
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    ordered.extend(rest.into_iter().flatten());
    Ok(ordered)
}
/// The embedded default vocabulary (`rules/vocabulary.json`).
pub const EMBEDDED_VOCABULARY: &str = include_str!("../../../rules/vocabulary.json");
/// The profile schema (`schemas/profile.schema.json`).
pub const PROFILE_SCHEMA: &str = include_str!("../../../schemas/profile.schema.json");
/// The rule pack schema (`schemas/rulepack.schema.json`).
pub const RULEPACK_SCHEMA: &str = include_str!("../../../schemas/rulepack.schema.json");
/// The vocabulary schema (`schemas/vocabulary.schema.json`).
pub const VOCABULARY_SCHEMA: &str = include_str!("../../../schemas/vocabulary.schema.json");

/// The list of a rule directory's packs and its default (`DIR/packs.json`), as `rules/packs.json`.
pub const PACKS_FILE: &str = "packs.json";

/// The `packs` (folder names, in order) and the `default` of a `packs.json`.
fn read_manifest(manifest: &Path) -> Result<(Vec<String>, String), LoadErrors> {
    let shown = manifest.display().to_string();
    let bad = |message: String| {
        LoadErrors(vec![LoadError::new(
            LoadErrorCode::Schema,
            &shown,
            "/default",
            message,
        )])
    };
    let text = std::fs::read_to_string(manifest).map_err(|e| {
        LoadErrors(vec![LoadError::new(
            LoadErrorCode::Io,
            &shown,
            "",
            format!("cannot read the file: {e}"),
        )])
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let default = value
        .get("default")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad("`default` must name the pack that screens".to_owned()))?;
    let packs: Option<Vec<String>> = value
        .get("packs")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|n| n.as_str().map(str::to_owned)).collect());
    let packs = packs.ok_or_else(|| {
        LoadErrors(vec![LoadError::new(
            LoadErrorCode::Schema,
            &shown,
            "/packs",
            "`packs` must list the pack folders, by name",
        )])
    })?;
    Ok((packs, default))
}

/// The pack file inside a rule directory (`DIR/pack.json`), or inside each pack's folder of one
/// (`DIR/NAME/pack.json`).
pub const PACK_FILE: &str = "pack.json";
/// File names inside a rule directory.
pub const VOCABULARY_FILE: &str = "vocabulary.json";

/// Identity of the loaded rule pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesetInfo {
    /// Pack name.
    pub name: String,
    /// Pack version.
    pub version: String,
    /// SHA-256 of the pack and vocabulary files, hex.
    pub hash: String,
    /// `name@version#` and the first 12 hex digits of the hash, as written in results.
    pub label: String,
}

/// A profile that failed validation: its `id` when one could be read, and every problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The record's `id`, if it had a usable one.
    pub id: Option<String>,
    /// What is wrong, sorted by pointer.
    pub problems: Vec<Problem>,
}

/// A pack the engine compiled, and its identity.
#[derive(Debug)]
pub struct LoadedPack {
    program: Program,
    ruleset: RulesetInfo,
}

impl LoadedPack {
    /// The pack's name.
    pub fn name(&self) -> &str {
        &self.program.name
    }

    /// The compiled pack.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Its identity, as written in results.
    pub fn ruleset(&self) -> &RulesetInfo {
        &self.ruleset
    }
}

/// A compiled, immutable screening engine. `Send + Sync`: share one across threads.
///
/// ```
/// use medscreen_core::Engine;
///
/// let engine = Engine::embedded().expect("the embedded pack compiles");
/// let screening = engine
///     .screen_json(br#"{"id": "p-1", "age": 70, "egfr": 45, "comedications": ["oxycodone 5 mg"]}"#)
///     .expect("a valid profile");
/// // Most severe first: both of these are critical.
/// let rules: Vec<&str> = screening.cautions.iter().map(|c| c.rule).collect();
/// assert_eq!(&rules[..2], ["BAC-RENAL-BEERS", "BAC-DDI-OPIOID"]);
/// ```
pub struct Engine {
    /// The first pack that screens: what [`Engine::screen`] and the pack accessors are about.
    first: LoadedPack,
    /// The other packs that screen, in the order they were asked for.
    also: Vec<LoadedPack>,
    /// The packs the engine knows but does not screen with, compiled against the same facts.
    others: Vec<LoadedPack>,
    facts: Arc<FactTable>,
    vocab: Vocabulary,
    profile_schema: SchemaChecker,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("ruleset", &self.first.ruleset.label)
            .field(
                "also",
                &self.also.iter().map(LoadedPack::name).collect::<Vec<_>>(),
            )
            .field("rules", &self.first.program.rules.len())
            .field("ingredients", &self.vocab.len())
            .finish()
    }
}

impl Engine {
    /// The engine for the pack compiled into this binary.
    pub fn embedded() -> Result<Engine, LoadErrors> {
        Engine::from_packs(EMBEDDED_PACKS, "rules/vocabulary.json", EMBEDDED_VOCABULARY)
    }

    /// The engine screening with the embedded pack `name`; every embedded pack's facts are accepted.
    pub fn embedded_pack(name: &str) -> Result<Engine, LoadErrors> {
        Engine::embedded_packs(&[name])
    }

    /// The engine screening with the embedded packs `names`, in that order (the default pack when
    /// `names` is empty); every embedded pack's facts are accepted.
    pub fn embedded_packs(names: &[&str]) -> Result<Engine, LoadErrors> {
        let packs = screening_order(EMBEDDED_PACKS, names, "the packs built into medscreen")?;
        Engine::from_packs_screening(
            &packs,
            names.len().max(1),
            "rules/vocabulary.json",
            EMBEDDED_VOCABULARY,
        )
    }

    /// Load a rule directory: `pack.json` and `vocabulary.json` in `dir`, or, when `dir` has no
    /// `pack.json`, `vocabulary.json` and every `NAME/pack.json` under it. The pack that screens is the
    /// `default` of `dir/packs.json` if there is one, else the first in name order.
    pub fn from_dir(dir: &Path) -> Result<Engine, LoadErrors> {
        Engine::from_dir_pack(dir, None)
    }

    /// [`Engine::from_dir`], screening with the pack in folder `name` of `dir` when given.
    pub fn from_dir_pack(dir: &Path, name: Option<&str>) -> Result<Engine, LoadErrors> {
        Engine::from_dir_packs(dir, name.as_slice())
    }

    /// [`Engine::from_dir`], screening with the packs in folders `names` of `dir`, in that order (the
    /// directory's default when `names` is empty).
    pub fn from_dir_packs(dir: &Path, names: &[&str]) -> Result<Engine, LoadErrors> {
        let read = |path: &Path| {
            let shown = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => Ok((shown, text)),
                Err(e) => Err(vec![LoadError::new(
                    LoadErrorCode::Io,
                    &shown,
                    "",
                    format!("cannot read the file: {e}"),
                )]),
            }
        };
        let single = dir.join(PACK_FILE);
        // A directory of packs (`NAME/pack.json` folders) rather than one pack.
        let folders = !single.exists();
        let manifest = dir.join(PACKS_FILE);
        let listed = if folders && manifest.is_file() {
            Some(read_manifest(&manifest)?)
        } else {
            None
        };
        let pack_paths = if !folders {
            vec![single]
        } else if let Some((folders, _)) = &listed {
            // The packs `packs.json` lists, in its order (a folder it does not list is not loaded).
            folders
                .iter()
                .map(|f| dir.join(f).join(PACK_FILE))
                .collect()
        } else {
            let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path().join(PACK_FILE))
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                // Reported as today: the pack file of the directory cannot be read.
                found.push(single);
            }
            found
        };
        let mut errors = Vec::new();
        let mut packs = Vec::new();
        for path in &pack_paths {
            match read(path) {
                Ok((shown, text)) => {
                    // In a directory of packs, a pack is known by its folder: `--pack`, `packs.json`
                    // and `NAME/tests/` go by it, so its `name` must be the folder's.
                    let folder = path
                        .parent()
                        .and_then(Path::file_name)
                        .and_then(|f| f.to_str());
                    let named = pack_name(&shown, &text);
                    if folders && named.is_some() && named.as_deref() != folder {
                        errors.push(LoadError::new(
                            LoadErrorCode::Schema,
                            &shown,
                            "/name",
                            format!(
                                "the pack's `name` must be its folder's, `{}`",
                                folder.unwrap_or_default()
                            ),
                        ));
                    }
                    packs.push((shown, text));
                }
                Err(e) => errors.extend(e),
            }
        }
        let vocab = read(&dir.join(VOCABULARY_FILE));
        match (errors.is_empty(), vocab) {
            (true, Ok((vn, v))) => {
                let packs: Vec<(&str, &str)> = packs
                    .iter()
                    .map(|(n, t)| (n.as_str(), t.as_str()))
                    .collect();
                let default = listed.map(|(_, d)| d);
                let names: Vec<&str> = match (names, &default) {
                    ([], Some(d)) => vec![d.as_str()],
                    _ => names.to_vec(),
                };
                let shown = dir.display().to_string();
                let ordered = screening_order(&packs, &names, &shown)?;
                Engine::from_packs_screening(&ordered, names.len().max(1), &vn, &v)
            }
            (_, v) => Err(LoadErrors(
                errors
                    .into_iter()
                    .chain(v.err().into_iter().flatten())
                    .collect(),
            )),
        }
    }

    /// Build from the texts of a pack and a vocabulary; the names are used in errors.
    pub fn from_sources(
        pack_name: &str,
        pack: &str,
        vocab_name: &str,
        vocab_text: &str,
    ) -> Result<Engine, LoadErrors> {
        Engine::from_packs(&[(pack_name, pack)], vocab_name, vocab_text)
    }

    /// Build from the texts of packs (`(file name, text)`; the first screens, every one's facts are
    /// accepted) and a vocabulary. Every problem of every file is collected.
    pub fn from_packs(
        packs: &[(&str, &str)],
        vocab_name: &str,
        vocab_text: &str,
    ) -> Result<Engine, LoadErrors> {
        Engine::from_packs_screening(packs, 1, vocab_name, vocab_text)
    }

    /// [`Engine::from_packs`], the first `screening` packs screening (at least one), in their order.
    pub fn from_packs_screening(
        packs: &[(&str, &str)],
        screening: usize,
        vocab_name: &str,
        vocab_text: &str,
    ) -> Result<Engine, LoadErrors> {
        if packs.is_empty() {
            return Err(LoadErrors(vec![LoadError::new(
                LoadErrorCode::EmptyPack,
                vocab_name,
                "",
                "no rule pack was given: an engine without a pack would screen nothing",
            )]));
        }
        let shared_schema = serde_json::from_str::<Value>(PROFILE_SCHEMA)
            .map_err(|e| bad_schema("schemas/profile.schema.json", e))?;
        let pack_schema = load_schema(RULEPACK_SCHEMA, "schemas/rulepack.schema.json")?;
        let vocab_schema = load_schema(VOCABULARY_SCHEMA, "schemas/vocabulary.schema.json")?;

        let mut errors = Vec::new();
        let vocab_value = parse_checked(vocab_text, vocab_name, &vocab_schema, &mut errors);
        let pack_values: Vec<Option<(Value, bool)>> = packs
            .iter()
            .map(|(name, text)| parse_checked(text, name, &pack_schema, &mut errors))
            .collect();
        let readable: Vec<(&str, &Value)> = packs
            .iter()
            .zip(&pack_values)
            .filter_map(|((name, _), v)| v.as_ref().map(|(v, _)| (*name, v)))
            .collect();
        // Facts and rules are compiled even from a pack that broke its schema, so that every error is
        // reported at once; the compilers read defensively, and what they find inside a place the
        // schema already reported is left out as a consequence of that error.
        let schema_errors: Vec<(String, String)> = errors
            .iter()
            .map(|e| (e.file.clone(), e.pointer.clone()))
            .collect();
        let consequence = |e: &LoadError| {
            schema_errors.iter().any(|(file, p)| {
                *file == e.file
                    && (e.pointer == *p
                        || e.pointer.starts_with(&format!("{p}/"))
                        || p.starts_with(&format!("{}/", e.pointer)))
            })
        };
        // The facts are laid out in file-name order, whichever pack screens, so that engines over the
        // same packs read a profile into the same slots (`embedded()` and `embedded_pack(..)` agree).
        let mut by_file = readable.clone();
        by_file.sort_by(|a, b| a.0.cmp(b.0));
        let facts = match FactTable::build(&shared_schema, "schemas/profile.schema.json", &by_file)
        {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                errors.extend(e.into_iter().filter(|e| !consequence(e)));
                None
            }
        };
        let vocab_value = vocab_value.filter(|(_, valid)| *valid).map(|(v, _)| v);
        let vocabulary =
            vocab_value.and_then(|v| match serde_json::from_value::<VocabularyFile>(v) {
                Ok(file) => Vocabulary::compile(file, vocab_name)
                    .map_err(|e| errors.extend(e))
                    .ok(),
                Err(e) => {
                    errors.push(LoadError::new(
                        LoadErrorCode::Schema,
                        vocab_name,
                        "",
                        e.to_string(),
                    ));
                    None
                }
            });
        let (Some(vocab), Some(facts)) = (vocabulary, facts) else {
            return Err(LoadErrors(errors));
        };
        if readable.len() < packs.len() {
            return Err(LoadErrors(errors));
        }
        let profile_schema = SchemaChecker::new(facts.schema().clone())
            .map_err(|e| bad_schema("schemas/profile.schema.json", e))?;
        let mut programs = Vec::new();
        for ((pack_name, pack_value), (_, text)) in readable.iter().zip(packs) {
            match compile::compile(pack_value, pack_name, &facts, &vocab) {
                Ok(program) => {
                    let ruleset = ruleset_info(&program, text, vocab_text);
                    programs.push(LoadedPack { program, ruleset });
                }
                Err(compile_errors) => {
                    errors.extend(compile_errors.into_iter().filter(|e| !consequence(e)));
                }
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        let mut programs = programs.into_iter();
        let Some(first) = programs.next() else {
            return Err(LoadErrors(errors));
        };
        let also = programs
            .by_ref()
            .take(screening.saturating_sub(1))
            .collect();
        let others = programs.collect();
        Ok(Engine {
            first,
            also,
            others,
            facts,
            vocab,
            profile_schema,
        })
    }

    /// Identity of the (first) pack that screens.
    pub fn ruleset(&self) -> &RulesetInfo {
        &self.first.ruleset
    }

    /// The packs that screen, in the order they were asked for (one unless several were).
    pub fn screening_packs(&self) -> impl Iterator<Item = &LoadedPack> + Clone {
        std::iter::once(&self.first).chain(&self.also)
    }

    /// Whether more than one pack screens: each record then gets one screening per pack
    /// ([`Engine::screen_packs_with`]).
    pub fn several(&self) -> bool {
        !self.also.is_empty()
    }

    /// Every pack the engine knows: those that screen, then the others in load order.
    pub fn packs(&self) -> impl Iterator<Item = &LoadedPack> + Clone {
        self.screening_packs().chain(&self.others)
    }

    /// The compiled rules, in pack order.
    pub fn rules(&self) -> &[Rule] {
        &self.first.program.rules
    }

    /// The pack's groups of rules that cite each comedication ingredient once between them.
    pub fn groups(&self) -> &[crate::compile::Group] {
        &self.first.program.groups
    }

    /// The drug the pack screens (its ingredient in the vocabulary), if the pack names one.
    pub fn subject(&self) -> Option<crate::vocab::IngredientId> {
        self.first.program.subject
    }

    /// How the CDS Hooks service speaks of the (first) pack.
    pub fn cds_text(&self) -> &crate::compile::CdsText {
        &self.first.program.cds
    }

    /// The pack's description.
    pub fn description(&self) -> &str {
        &self.first.program.description
    }

    /// The medication vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The facts a profile may carry: the shared ones and every known pack's.
    pub fn facts(&self) -> &Arc<FactTable> {
        &self.facts
    }

    /// The profile schema checker (the shared schema with every known pack's facts).
    pub fn profile_schema(&self) -> &SchemaChecker {
        &self.profile_schema
    }

    /// Validate a parsed JSON value as a profile.
    pub fn validate_value(&self, value: &Value) -> Result<Profile, Rejection> {
        if !self.profile_schema.is_valid(value) {
            return Err(Rejection {
                id: record_id(value),
                problems: self.profile_schema.problems(value),
            });
        }
        // An error here means the schema and the typed reader disagree, which the differential
        // test rules out.
        self.facts.profile_from_value(value).map_err(|_| Rejection {
            id: record_id(value),
            problems: vec![Problem::new(
                "",
                ProblemCode::Invalid,
                "the record passed the schema but not the typed model (please report this)",
            )],
        })
    }

    /// Parse and validate one JSON document as a profile.
    ///
    /// The cheap path deserialises straight into [`Profile`] and checks the schema's remaining
    /// constraints; only a record that fails it is parsed again, strictly, and run through the schema
    /// validator, which explains what is wrong (or, should the two ever disagree, accepts it).
    pub fn parse_profile(&self, bytes: &[u8]) -> Result<Profile, Rejection> {
        if let Some(profile) = self.facts.parse_fast(bytes) {
            return Ok(profile);
        }
        self.parse_profile_explained(bytes)
    }

    /// The cheap path alone: the profile if `bytes` is a valid one, else `None` (nothing explained).
    pub fn parse_fast(&self, bytes: &[u8]) -> Option<Profile> {
        self.facts.parse_fast(bytes)
    }

    /// Parse and validate through the schema validator only: the explaining path, which
    /// [`Engine::parse_profile`] falls back to.
    pub fn parse_profile_explained(&self, bytes: &[u8]) -> Result<Profile, Rejection> {
        let value = crate::json::parse_record(bytes).map_err(|p| Rejection {
            id: None,
            problems: vec![p],
        })?;
        self.validate_value(&value)
    }

    /// Screen a validated profile.
    pub fn screen<'e>(&'e self, profile: &Profile) -> Screening<'e> {
        self.screen_with(profile, &mut MatchCache::new())
    }

    /// Screen a validated profile, remembering medication matches in `cache` (keep one per thread
    /// when screening many profiles: medication strings recur).
    pub fn screen_with<'e>(&'e self, profile: &Profile, cache: &mut MatchCache) -> Screening<'e> {
        Evaluator::new(
            &self.first.program,
            &self.facts,
            &self.vocab,
            profile,
            cache,
        )
        .screen(&self.first.ruleset.label)
    }

    /// Screen a validated profile with every pack that screens, in their order: one screening per
    /// pack. Its comedications are matched once, whatever the number of packs.
    pub fn screen_packs_with<'e>(
        &'e self,
        profile: &Profile,
        cache: &mut MatchCache,
    ) -> Vec<Screening<'e>> {
        let matches: Option<Vec<MedMatch>> = profile.comedications.as_deref().map(|meds| {
            meds.iter()
                .map(|m| cache.match_medication(&self.vocab, m))
                .collect()
        });
        self.screening_packs()
            .map(|pack| {
                Evaluator::with_matches(
                    &pack.program,
                    &self.facts,
                    &self.vocab,
                    profile,
                    matches.as_deref(),
                )
                .screen(&pack.ruleset.label)
            })
            .collect()
    }

    /// For each rule (in pack order), how each of its tiers came out for `profile` when the rule
    /// reached it: `Some(true)` the tier is true (it fires), `Some(false)` false, `None` undecided or
    /// not reached (the rule does not apply, or an earlier tier is true). Grouped rules are decided
    /// alone. This is what pack tests measure tier coverage with.
    pub fn tier_outcomes(&self, profile: &Profile) -> Vec<Vec<Option<bool>>> {
        use crate::eval::Tri;
        let eval = Evaluator::new(
            &self.first.program,
            &self.facts,
            &self.vocab,
            profile,
            &mut MatchCache::new(),
        );
        self.first
            .program
            .rules
            .iter()
            .map(|rule| {
                let applies = rule
                    .applies
                    .as_ref()
                    .is_none_or(|c| eval.decide(c) != Tri::False);
                let mut reached = applies;
                rule.tiers
                    .iter()
                    .map(|tier| {
                        if !reached {
                            return None;
                        }
                        match eval.decide(&tier.when) {
                            Tri::True => {
                                reached = false;
                                Some(true)
                            }
                            Tri::False => Some(false),
                            Tri::Unknown => None,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Parse, validate and screen one JSON document.
    pub fn screen_json(&self, bytes: &[u8]) -> Result<Screening<'_>, Rejection> {
        let profile = self.parse_profile(bytes)?;
        Ok(self.screen(&profile))
    }
}

/// A pack's identity: its name, version and the SHA-256 of its text and the vocabulary's.
fn ruleset_info(program: &Program, pack: &str, vocab: &str) -> RulesetInfo {
    let mut hasher = Sha256::new();
    for part in [pack, vocab] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let label = format!(
        "{}@{}#{}",
        program.name,
        program.version,
        hash.get(..12).unwrap_or(&hash)
    );
    RulesetInfo {
        name: program.name.clone(),
        version: program.version.clone(),
        hash,
        label,
    }
}

/// The record's `id` if it is a usable string, for naming an invalid record.
pub fn record_id(value: &Value) -> Option<String> {
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= 128)
        .map(str::to_owned)
}

/// Compile one of our schemas; `name` names it in the error.
pub fn load_schema(text: &str, name: &str) -> Result<SchemaChecker, LoadErrors> {
    serde_json::from_str::<Value>(text)
        .map_err(|e| e.to_string())
        .and_then(SchemaChecker::new)
        .map_err(|e| bad_schema(name, e))
}

/// One of our schemas does not compile: `name` names it.
fn bad_schema(name: &str, e: impl fmt::Display) -> LoadErrors {
    LoadErrors(vec![LoadError::new(
        LoadErrorCode::Schema,
        name,
        "",
        format!("bad schema: {e}"),
    )])
}

/// Parse `text` and check it against `schema`, adding every problem to `errors` (named by file and, in a
/// rule pack, rule). Returns the value and whether it was valid, or `None` if it is not JSON.
pub fn parse_checked(
    text: &str,
    name: &str,
    schema: &SchemaChecker,
    errors: &mut Vec<LoadError>,
) -> Option<(Value, bool)> {
    // Editors on some systems save a byte-order mark; it is not part of the JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = match crate::json::parse_record(text.as_bytes()) {
        Ok(v) => v,
        Err(p) if p.code == ProblemCode::DuplicateKey => {
            // serde_json would keep the last of two `"rules"` silently.
            let key = p.pointer.rsplit('/').next().unwrap_or_default().to_owned();
            errors.push(
                LoadError::new(
                    LoadErrorCode::Duplicate,
                    name,
                    p.pointer.clone(),
                    format!(
                        "duplicate key `{}`: JSON would keep only one of them",
                        unescape(&key)
                    ),
                )
                .in_rule(rule_of_text(text, &p.pointer).as_deref()),
            );
            return None;
        }
        Err(_) => {
            // The strict reader reports columns only; serde_json's message has the line too.
            let e = serde_json::from_str::<Value>(text)
                .err()
                .map_or_else(|| "malformed JSON".to_owned(), |e| e.to_string());
            errors.push(LoadError::new(
                LoadErrorCode::InvalidJson,
                name,
                "",
                format!("not valid JSON: {e}"),
            ));
            return None;
        }
    };
    if schema.is_valid(&value) {
        return Some((value, true));
    }
    for p in schema.problems(&value) {
        let rule = rule_of(&value, &p.pointer);
        errors.push(LoadError::from_problem(name, p).in_rule(rule.as_deref()));
    }
    Some((value, false))
}

/// A JSON Pointer token unescaped (`~1` is `/`, `~0` is `~`).
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The id of the rule a pointer is inside, reading the pack leniently (it has a duplicate key).
fn rule_of_text(text: &str, pointer: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| rule_of(&v, pointer))
}

/// The id of the rule a pointer is inside (`/rules/7/...`), if any.
fn rule_of(pack: &Value, pointer: &str) -> Option<String> {
    let rest = pointer.strip_prefix("/rules/")?;
    let index = rest.split('/').next()?;
    pack.pointer(&format!("/rules/{index}/id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
