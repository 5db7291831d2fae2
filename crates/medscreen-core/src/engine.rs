//! The engine: a compiled rule pack, its vocabulary and the profile schema, built once and shared.

use std::fmt;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compile::{self, Program, Rule};
use crate::error::{LoadError, LoadErrorCode, LoadErrors};
use crate::eval::Evaluator;
use crate::profile::Profile;
use crate::report::Screening;
use crate::schema::{Problem, ProblemCode, SchemaChecker};
use crate::vocab::{MatchCache, Vocabulary, VocabularyFile};

/// The embedded default rule pack (`rules/pack.json`).
pub const EMBEDDED_PACK: &str = include_str!("../../../rules/pack.json");
/// The embedded default vocabulary (`rules/vocabulary.json`).
pub const EMBEDDED_VOCABULARY: &str = include_str!("../../../rules/vocabulary.json");
/// The profile schema (`schemas/profile.schema.json`).
pub const PROFILE_SCHEMA: &str = include_str!("../../../schemas/profile.schema.json");
/// The rule pack schema (`schemas/rulepack.schema.json`).
pub const RULEPACK_SCHEMA: &str = include_str!("../../../schemas/rulepack.schema.json");
/// The vocabulary schema (`schemas/vocabulary.schema.json`).
pub const VOCABULARY_SCHEMA: &str = include_str!("../../../schemas/vocabulary.schema.json");

/// File names inside a rule directory.
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
    program: Program,
    vocab: Vocabulary,
    profile_schema: SchemaChecker,
    ruleset: RulesetInfo,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("ruleset", &self.ruleset.label)
            .field("rules", &self.program.rules.len())
            .field("ingredients", &self.vocab.len())
            .finish()
    }
}

impl Engine {
    /// The engine for the pack compiled into this binary.
    pub fn embedded() -> Result<Engine, LoadErrors> {
        Engine::from_sources(
            "rules/pack.json",
            EMBEDDED_PACK,
            "rules/vocabulary.json",
            EMBEDDED_VOCABULARY,
        )
    }

    /// Load `pack.json` and `vocabulary.json` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Engine, LoadErrors> {
        let read = |name: &str| {
            let path = dir.join(name);
            let shown = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok((shown, text)),
                Err(e) => Err(vec![LoadError::new(
                    LoadErrorCode::Io,
                    &shown,
                    "",
                    format!("cannot read the file: {e}"),
                )]),
            }
        };
        match (read(PACK_FILE), read(VOCABULARY_FILE)) {
            (Ok((pn, p)), Ok((vn, v))) => Engine::from_sources(&pn, &p, &vn, &v),
            (p, v) => Err(LoadErrors(
                p.err().into_iter().chain(v.err()).flatten().collect(),
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
        let profile_schema = load_schema(PROFILE_SCHEMA, "schemas/profile.schema.json")?;
        let pack_schema = load_schema(RULEPACK_SCHEMA, "schemas/rulepack.schema.json")?;
        let vocab_schema = load_schema(VOCABULARY_SCHEMA, "schemas/vocabulary.schema.json")?;

        let mut errors = Vec::new();
        let vocab_value = parse_checked(vocab_text, vocab_name, &vocab_schema, &mut errors);
        let pack_value = parse_checked(pack, pack_name, &pack_schema, &mut errors);
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
        let (Some(vocab), Some((pack_value, _))) = (vocabulary, pack_value) else {
            return Err(LoadErrors(errors));
        };
        // Compile even a pack that broke its schema, so that every error is reported at once; the
        // compiler reads defensively, and what it finds inside a place the schema already reported
        // is left out as a consequence of that error.
        let program = compile::compile(&pack_value, pack_name, profile_schema.schema(), &vocab);
        let schema_pointers: Vec<String> = errors.iter().map(|e| e.pointer.clone()).collect();
        let program = match program {
            Ok(p) if errors.is_empty() => p,
            Ok(_) => return Err(LoadErrors(errors)),
            Err(compile_errors) => {
                errors.extend(compile_errors.into_iter().filter(|e| {
                    !schema_pointers.iter().any(|p| {
                        e.pointer == *p
                            || e.pointer.starts_with(&format!("{p}/"))
                            || p.starts_with(&format!("{}/", e.pointer))
                    })
                }));
                return Err(LoadErrors(errors));
            }
        };
        let mut hasher = Sha256::new();
        for part in [pack, vocab_text] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let hash: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let label = format!("{}@{}#{}", program.name, program.version, &hash[..12]);
        let ruleset = RulesetInfo {
            name: program.name.clone(),
            version: program.version.clone(),
            hash,
            label,
        };
        Ok(Engine {
            program,
            vocab,
            profile_schema,
            ruleset,
        })
    }

    /// Identity of the loaded pack.
    pub fn ruleset(&self) -> &RulesetInfo {
        &self.ruleset
    }

    /// The compiled rules, in pack order.
    pub fn rules(&self) -> &[Rule] {
        &self.program.rules
    }

    /// The pack's groups of rules that cite each comedication ingredient once between them.
    pub fn groups(&self) -> &[crate::compile::Group] {
        &self.program.groups
    }

    /// The drug the pack screens (its ingredient in the vocabulary), if the pack names one.
    pub fn subject(&self) -> Option<crate::vocab::IngredientId> {
        self.program.subject
    }

    /// The pack's description.
    pub fn description(&self) -> &str {
        &self.program.description
    }

    /// The medication vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The profile schema checker.
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
        Profile::deserialize_valid(value).map_err(|message| Rejection {
            id: record_id(value),
            problems: vec![Problem::new("", ProblemCode::Invalid, message)],
        })
    }

    /// Parse and validate one JSON document as a profile.
    ///
    /// The cheap path deserialises straight into [`Profile`] and checks the schema's remaining
    /// constraints; only a record that fails it is parsed again, strictly, and run through the schema
    /// validator, which explains what is wrong (or, should the two ever disagree, accepts it).
    pub fn parse_profile(&self, bytes: &[u8]) -> Result<Profile, Rejection> {
        if let Some(profile) = Profile::parse_fast(bytes) {
            return Ok(profile);
        }
        self.parse_profile_explained(bytes)
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
        Evaluator::new(&self.program, &self.vocab, profile, cache).screen(&self.ruleset.label)
    }

    /// For each rule (in pack order), how each of its tiers came out for `profile` when the rule
    /// reached it: `Some(true)` the tier is true (it fires), `Some(false)` false, `None` undecided or
    /// not reached (the rule does not apply, or an earlier tier is true). Grouped rules are decided
    /// alone. This is what pack tests measure tier coverage with.
    pub fn tier_outcomes(&self, profile: &Profile) -> Vec<Vec<Option<bool>>> {
        use crate::eval::Tri;
        let eval = Evaluator::new(&self.program, &self.vocab, profile, &mut MatchCache::new());
        self.program
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

impl Profile {
    /// The cheap validity check: typed deserialisation plus the schema's other constraints.
    pub fn parse_fast(bytes: &[u8]) -> Option<Profile> {
        // serde's derive also reads a struct from an array, by position (`["p1", 70]`); the schema
        // wants an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        serde_json::from_slice::<Profile>(bytes)
            .ok()
            .filter(Profile::meets_schema_constraints)
    }

    /// Deserialize a value the schema has accepted. An error here means the schema and the typed model
    /// disagree, which a test rules out on the fixtures.
    fn deserialize_valid(value: &Value) -> Result<Profile, String> {
        Profile::deserialize(value).map_err(|_| {
            "the record passed the schema but not the typed model (please report this)".to_owned()
        })
    }
}

use serde::Deserialize;

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
        .map_err(|e| {
            LoadErrors(vec![LoadError::new(
                LoadErrorCode::Schema,
                name,
                "",
                format!("bad schema: {e}"),
            )])
        })
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
