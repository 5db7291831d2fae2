//! Value sets bound to the engine that screens, checked against its facts and its pack.
//!
//! Value sets load on their own ([`ValueSets::embedded`] needs no engine), but which facts exist, with
//! which types, and which drug is screened are the engine's: a set may fill a fact only a pack it is
//! not screening with declares, or be another drug's subject set. So the check that makes the mapping
//! safe is made where the two meet, once: [`Binding::new`] takes the engine and the value sets and
//! refuses the pair, with every problem located by file and JSON Pointer, unless each set's facts exist,
//! are shared or the screening pack's own, and have the type its kind fills (a boolean for a condition
//! or status, a number for an observation, a ratio or the daily dose, a string for the indication, an
//! enumeration holding every CKD stage for `stage_fact`), and the subject set is the pack's drug. A
//! [`Mapper`] is made only from a `Binding`, so nothing is mapped or screened through an unchecked pair.

use std::borrow::Cow;

use medscreen_core::diagnostic::{self, Diagnostic, Location};
use medscreen_core::engine::Engine;
use medscreen_core::error::{LoadError, LoadErrorCode, LoadErrors};
use medscreen_core::facts::{FactKind, Field};

use super::mapping::{Mapper, Options};
use super::valueset::{Kind, ValueSet, ValueSets};

/// An engine and value sets checked against each other; owns both. Immutable and `Send + Sync`.
///
/// ```
/// use medscreen_core::Engine;
/// use medscreen_fhir::{Absent, Binding, Options, ValueSets, date::Date};
///
/// let binding = Binding::new(Engine::embedded()?, ValueSets::embedded()?)?;
/// let opts = Options { as_of: Date::parse("2021-06-01").unwrap(), lookback_days: 365, absent: Absent::False };
/// let mapper = binding.mapper(opts);
/// assert_eq!(mapper.options().lookback_days, 365);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Binding {
    engine: Engine,
    vs: ValueSets,
    /// For each set, in set order: the declaration of its `fact`.
    facts: Vec<Option<FactKind>>,
}

/// Why value sets cannot map FHIR input for an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// Sets fill facts the engine does not have, or that are another pack's, or with values of the
    /// wrong type: every such problem, by file and JSON Pointer.
    Facts(LoadErrors),
    /// The subject set is another drug's, or there is none for a pack that screens a drug.
    Drug(DrugMismatch),
}

/// The value sets' subject set is not the screening pack's drug.
///
/// Displayed as ``the value sets map orders of `baclofen`, but the pack that screens is `tizanidine`:
/// FHIR input would read one drug's order as the other's``, with one line of help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrugMismatch {
    /// `other_drug` (a subject set of another drug) or `no_subject_set`.
    pub code: &'static str,
    /// The pack that screens.
    pub pack: String,
    /// The drug the subject set is for (`None`: there is no subject set).
    pub drug: Option<String>,
    message: String,
    help: String,
}

impl Diagnostic for DrugMismatch {
    fn code(&self) -> &'static str {
        self.code
    }

    fn message(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.message)
    }

    fn help(&self) -> Option<&str> {
        Some(&self.help)
    }

    fn location(&self) -> Location<'_> {
        Location::Nowhere
    }
}

impl std::fmt::Display for DrugMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for DrugMismatch {}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Facts(errors) => {
                let n = errors.errors().len();
                write!(
                    f,
                    "the value sets do not fit the engine's facts ({n} error{}):",
                    if n == 1 { "" } else { "s" }
                )?;
                for e in errors.errors() {
                    write!(f, "\nerror: {e}")?;
                }
                Ok(())
            }
            BindError::Drug(d) => d.fmt(f),
        }
    }
}

impl std::error::Error for BindError {}

/// What a fact must be for a set of this kind to fill it, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Bool,
    Number,
    Text,
    Stages,
}

impl Want {
    fn describe(self) -> &'static str {
        match self {
            Want::Bool => "a boolean",
            Want::Number => "a number",
            Want::Text => "a string",
            Want::Stages => "an enumerated",
        }
    }

    fn fits(self, kind: &FactKind) -> bool {
        matches!(
            (self, kind),
            (Want::Bool, FactKind::Bool)
                | (Want::Number, FactKind::Number { .. })
                | (Want::Text, FactKind::Text { .. })
                | (Want::Stages, FactKind::Enum(_))
        )
    }
}

impl Binding {
    /// Check `vs` against `engine` and bind them: the subject set must be the screening pack's drug
    /// (checked first: another drug's sets would misread every order), then every fact a set names
    /// must fit. Every fact problem is reported at once.
    pub fn new(engine: Engine, vs: ValueSets) -> Result<Binding, BindError> {
        same_drug(&engine, &vs)?;
        let mut errors = Vec::new();
        let facts = vs
            .sets()
            .iter()
            .map(|set| {
                let want = match set.fills.kind {
                    Kind::Condition | Kind::Status => Want::Bool,
                    Kind::Observation | Kind::RatioToUpperLimit => Want::Number,
                    Kind::Indication => Want::Text,
                    // A subject set has no `fact`; its `daily_dose_fact` is checked below.
                    Kind::Subject => Want::Number,
                };
                let fact = set
                    .fills
                    .fact
                    .as_deref()
                    .and_then(|f| declared(&engine, set, "fact", f, want, &mut errors));
                if let Some(stage) = set.fills.stage_fact.as_deref()
                    && let Some(FactKind::Enum(options)) =
                        declared(&engine, set, "stage_fact", stage, Want::Stages, &mut errors)
                {
                    for (i, c) in set.conditions.iter().enumerate() {
                        if let Some(s) = c.stage
                            && !options.iter().any(|o| o == s.as_str())
                        {
                            errors.push(LoadError::new(
                                LoadErrorCode::ValueNotInEnum,
                                &set.file,
                                format!("/conditions/{i}/stage"),
                                format!("stage `{}` is not a value of `{stage}`", s.as_str()),
                            ));
                        }
                    }
                }
                if let Some(dose) = set.fills.daily_dose_fact.as_deref() {
                    declared(
                        &engine,
                        set,
                        "daily_dose_fact",
                        dose,
                        Want::Number,
                        &mut errors,
                    );
                }
                fact
            })
            .collect();
        if !errors.is_empty() {
            return Err(BindError::Facts(LoadErrors(errors)));
        }
        Ok(Binding { engine, vs, facts })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The value sets.
    pub fn value_sets(&self) -> &ValueSets {
        &self.vs
    }

    /// The engine and the value sets back.
    pub fn into_parts(self) -> (Engine, ValueSets) {
        (self.engine, self.vs)
    }

    /// A mapper over these value sets, with `opts`, reading medications through the engine's
    /// vocabulary too.
    pub fn mapper(&self, opts: Options) -> Mapper<'_> {
        Mapper::bound(self, opts)
    }

    /// The declaration of set `set`'s `fact`.
    pub(crate) fn fact(&self, set: usize) -> Option<&FactKind> {
        self.facts.get(set).and_then(Option::as_ref)
    }
}

/// FHIR input finds the order being screened with the value sets' `subject` set: it must be the drug
/// of the pack that screens, or another drug's order would be read as this pack's (its dose into this
/// pack's facts, or this drug's order taken for a comedication). A pack that screens a drug needs one.
fn same_drug(engine: &Engine, vs: &ValueSets) -> Result<(), BindError> {
    let pack = engine.ruleset().name.as_str();
    let mismatch = match vs.find_kind(Kind::Subject).map(|i| vs.set(i).id.as_str()) {
        Some(drug) if drug != pack => DrugMismatch {
            code: "other_drug",
            pack: pack.to_owned(),
            drug: Some(drug.to_owned()),
            message: format!(
                "the value sets map orders of `{drug}`, but the pack that screens is `{pack}`: FHIR input would read one drug's order as the other's"
            ),
            help: format!(
                "use value sets whose subject set is the `{pack}` drug, or screen with the `{drug}` pack"
            ),
        },
        None if engine.subject().is_some() => DrugMismatch {
            code: "no_subject_set",
            pack: pack.to_owned(),
            drug: None,
            message: format!(
                "the value sets have no subject set for `{pack}`: FHIR input could not tell an order of the drug screened from a comedication"
            ),
            help: format!(
                "add a set with `\"fills\": {{\"kind\": \"subject\"}}` and `\"id\": \"{pack}\"` to the pack's `valuesets/`"
            ),
        },
        _ => return Ok(()),
    };
    Err(BindError::Drug(mismatch))
}

/// The declaration of fact `name`, which `set` fills through `fills.OPTION`, if the engine has it, the
/// screening pack may read it and it has the type the set fills; otherwise an error is recorded.
fn declared(
    engine: &Engine,
    set: &ValueSet,
    option: &str,
    name: &str,
    want: Want,
    errors: &mut Vec<LoadError>,
) -> Option<FactKind> {
    let facts = engine.facts();
    let pack = engine.ruleset().name.as_str();
    let pointer = format!("/fills/{option}");
    let error = |code, message: String| LoadError::new(code, &set.file, pointer.clone(), message);
    let decl = match facts.resolve(name) {
        Some(Field::Slot(k)) => facts.decl(k),
        Some(_) => {
            errors.push(error(
                LoadErrorCode::UnknownFact,
                format!("`{name}` is read from the Patient and medication resources, not filled by a value set"),
            ));
            return None;
        }
        None => None,
    };
    let Some(decl) = decl else {
        let help = medscreen_core::suggest::did_you_mean(name, facts.names())
            .map(|s| format!("did you mean `{s}`?"));
        errors.push(
            error(LoadErrorCode::UnknownFact, format!("unknown fact `{name}`")).with_help(help),
        );
        return None;
    };
    if !facts.readable_by(name, pack) {
        let owners: Vec<String> = facts
            .declared_by(name)
            .iter()
            .map(|p| format!("`{p}`"))
            .collect();
        errors.push(
            error(
                LoadErrorCode::UnknownFact,
                format!(
                    "fact `{name}` is declared by {}, not by `{pack}`, the pack that screens",
                    owners.join(", ")
                ),
            )
            .with_help(Some(format!(
                "a pack's own sets belong in its `valuesets/` folder; declare `{name}` in `{pack}` to fill it here"
            ))),
        );
        return None;
    }
    if !want.fits(&decl.kind) {
        let actual = decl.kind.fact_type().describe();
        let what = if option == "fact" {
            format!("`{}` sets fill", set.fills.kind.as_str())
        } else {
            format!("`{option}` must name")
        };
        errors.push(error(
            LoadErrorCode::ValueTypeMismatch,
            format!(
                "`{name}` has type {actual}, but {what} {} fact",
                want.describe()
            ),
        ));
        return None;
    }
    Some(decl.kind.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The embedded sets for `pack`, with `edit` applied to file `file`, and `extra` sets added.
    fn sets(pack: &str, file: &str, edit: impl Fn(&mut Value), extra: &[Value]) -> ValueSets {
        let own = crate::valueset::EMBEDDED_PACKS
            .iter()
            .filter(|(p, _)| *p == pack)
            .flat_map(|(_, files)| files.iter());
        let mut files: Vec<(String, String)> = crate::valueset::EMBEDDED
            .iter()
            .chain(own)
            .map(|(name, text)| {
                let mut v: Value = serde_json::from_str(text).unwrap();
                if *name == file {
                    edit(&mut v);
                }
                (format!("valuesets/{name}"), v.to_string())
            })
            .collect();
        for (i, v) in extra.iter().enumerate() {
            files.push((format!("valuesets/extra-{i}.json"), v.to_string()));
        }
        ValueSets::from_sources(&files).unwrap()
    }

    /// `(file, pointer, message, help)` of each fact error binding `vs` to `engine`.
    fn fact_errors(engine: Engine, vs: ValueSets) -> Vec<(String, String, String, Option<String>)> {
        match Binding::new(engine, vs) {
            Err(BindError::Facts(e)) => crate::valueset::located(&e),
            Err(other) => panic!("{other}"),
            Ok(_) => Vec::new(),
        }
    }

    fn fills(fact: &str) -> impl Fn(&mut Value) {
        move |v: &mut Value| v["fills"]["fact"] = json!(fact)
    }

    fn error(
        file: &str,
        pointer: &str,
        message: &str,
        help: Option<&str>,
    ) -> Vec<(String, String, String, Option<String>)> {
        vec![(
            format!("valuesets/{file}"),
            pointer.to_owned(),
            message.to_owned(),
            help.map(str::to_owned),
        )]
    }

    #[test]
    fn the_embedded_sets_bind_to_every_embedded_pack() {
        for pack in medscreen_core::engine::embedded_pack_names() {
            let engine = Engine::embedded_pack(&pack).unwrap();
            let vs = ValueSets::embedded_for(&pack).unwrap();
            let subject = vs.find_kind(Kind::Subject).map(|i| vs.set(i).id.clone());
            assert_eq!(subject.as_deref(), Some(pack.as_str()));
            Binding::new(engine, vs).unwrap();
        }
    }

    #[test]
    fn an_unknown_fact_is_a_load_error_with_a_did_you_mean() {
        let vs = sets("baclofen", "seizure.json", fills("seizure_histry"), &[]);
        assert_eq!(
            fact_errors(Engine::embedded().unwrap(), vs),
            error(
                "seizure.json",
                "/fills/fact",
                "unknown fact `seizure_histry`",
                Some("did you mean `seizure_history`?")
            )
        );
    }

    #[test]
    fn a_structural_member_cannot_be_filled() {
        let vs = sets("baclofen", "egfr.json", fills("age"), &[]);
        assert_eq!(
            fact_errors(Engine::embedded().unwrap(), vs),
            error(
                "egfr.json",
                "/fills/fact",
                "`age` is read from the Patient and medication resources, not filled by a value set",
                None
            )
        );
    }

    #[test]
    fn another_packs_fact_is_refused_with_where_it_belongs() {
        // The baclofen engine knows tizanidine's facts (every known pack's facts are accepted in a
        // profile), but its rules may not read them, and its sets may not fill them.
        let vs = sets(
            "baclofen",
            "egfr.json",
            fills("tizanidine_daily_dose_mg"),
            &[],
        );
        assert_eq!(
            fact_errors(Engine::embedded().unwrap(), vs),
            error(
                "egfr.json",
                "/fills/fact",
                "fact `tizanidine_daily_dose_mg` is declared by `tizanidine`, not by `baclofen`, the pack that screens",
                Some(
                    "a pack's own sets belong in its `valuesets/` folder; declare `tizanidine_daily_dose_mg` in `baclofen` to fill it here"
                )
            )
        );
    }

    #[test]
    fn a_fact_of_the_wrong_type_for_its_kind_is_a_load_error() {
        let cases = [
            (
                "seizure.json",
                "fact",
                "alt_uln_ratio",
                "`alt_uln_ratio` has type number, but `condition` sets fill a boolean fact",
            ),
            (
                "egfr.json",
                "fact",
                "operates_machinery",
                "`operates_machinery` has type boolean, but `observation` sets fill a number fact",
            ),
            (
                "indication.json",
                "fact",
                "sex",
                "`sex` has type enumerated, but `indication` sets fill a string fact",
            ),
            (
                "kidney-disease.json",
                "stage_fact",
                "alt_uln_ratio",
                "`alt_uln_ratio` has type number, but `stage_fact` must name an enumerated fact",
            ),
            (
                "baclofen.json",
                "daily_dose_fact",
                "discontinuation",
                "`discontinuation` has type enumerated, but `daily_dose_fact` must name a number fact",
            ),
        ];
        for (file, option, fact, message) in cases {
            let edit = |v: &mut Value| v["fills"][option] = json!(fact);
            let vs = sets("baclofen", file, edit, &[]);
            let got = fact_errors(Engine::embedded().unwrap(), vs);
            let pointer = format!("/fills/{option}");
            assert_eq!(got, error(file, &pointer, message, None), "{file}");
        }
    }

    #[test]
    fn a_stage_outside_the_stage_facts_enumeration_is_a_load_error() {
        let vs = sets(
            "baclofen",
            "kidney-disease.json",
            |v| v["fills"]["stage_fact"] = json!("sex"),
            &[],
        );
        let got = fact_errors(Engine::embedded().unwrap(), vs);
        assert_eq!(
            got.first(),
            error(
                "kidney-disease.json",
                "/conditions/0/stage",
                "stage `1` is not a value of `sex`",
                None
            )
            .first()
        );
        assert!(got.iter().all(|e| e.1.ends_with("/stage")), "{got:?}");
    }

    #[test]
    fn every_fact_error_is_reported_at_once() {
        let stroke = crate::valueset::EMBEDDED
            .iter()
            .find(|(n, _)| *n == "stroke.json")
            .map(|(_, t)| serde_json::from_str::<Value>(t).unwrap())
            .unwrap();
        let mut bad = stroke;
        bad["id"] = json!("stroke-2");
        bad["fills"]["fact"] = json!("strok_history");
        let vs = sets("baclofen", "seizure.json", fills("seizure_histry"), &[bad]);
        let got: Vec<(String, String)> = fact_errors(Engine::embedded().unwrap(), vs)
            .into_iter()
            .map(|e| (e.0, e.2))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "valuesets/seizure.json".to_owned(),
                    "unknown fact `seizure_histry`".to_owned()
                ),
                (
                    "valuesets/extra-0.json".to_owned(),
                    "unknown fact `strok_history`".to_owned()
                )
            ]
        );
    }

    #[test]
    fn another_drugs_subject_set_is_refused_before_its_facts_are_checked() {
        // Baclofen's sets for the tizanidine pack: its dose fact is not tizanidine's either, but the
        // drug is what is wrong.
        let e = Binding::new(
            Engine::embedded_pack("tizanidine").unwrap(),
            ValueSets::embedded_for("baclofen").unwrap(),
        )
        .unwrap_err();
        let BindError::Drug(d) = &e else {
            panic!("{e}")
        };
        assert_eq!(
            (d.code(), d.pack.as_str(), d.drug.as_deref()),
            ("other_drug", "tizanidine", Some("baclofen"))
        );
        assert_eq!(
            e.to_string(),
            "the value sets map orders of `baclofen`, but the pack that screens is `tizanidine`: FHIR input would read one drug's order as the other's\n  help: use value sets whose subject set is the `tizanidine` drug, or screen with the `baclofen` pack"
        );
    }

    #[test]
    fn a_pack_with_a_drug_needs_a_subject_set_and_one_without_does_not() {
        // A pack the binary was not built with has no embedded sets of its own: only the shared ones.
        let shared = || ValueSets::embedded_for("no-such-pack").unwrap();
        let e = Binding::new(Engine::embedded().unwrap(), shared()).unwrap_err();
        let BindError::Drug(d) = &e else {
            panic!("{e}")
        };
        assert_eq!((d.code(), d.drug.as_deref()), ("no_subject_set", None));
        assert_eq!(
            e.to_string(),
            "the value sets have no subject set for `baclofen`: FHIR input could not tell an order of the drug screened from a comedication\n  help: add a set with `\"fills\": {\"kind\": \"subject\"}` and `\"id\": \"baclofen\"` to the pack's `valuesets/`"
        );
        // Without a `subject` in the pack, there is no order screened to find.
        let pack = json!({"name": "demo", "version": "0.1.0", "description": "No drug.",
            "sources": {"D1": {"label": "Test source", "citation": "Written for this test."}},
            "rules": [{"id": "DEMO-OLD", "title": "Old", "sources": ["D1"], "tiers": [
                {"when": {"fact": "age", "op": "ge", "value": 65}, "severity": "info",
                 "message": "Old.", "action": "Note."}]}]});
        let engine = Engine::from_packs(
            &[("rules/demo/pack.json", pack.to_string().as_str())],
            "rules/vocabulary.json",
            medscreen_core::engine::EMBEDDED_VOCABULARY,
        )
        .unwrap();
        assert!(engine.subject().is_none());
        Binding::new(engine, shared()).unwrap();
    }
}
