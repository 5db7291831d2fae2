//! Pack tests: table-driven cases kept beside a pack (`tests/*.json`), run by `medscreen rules test`.
//!
//! A test file holds named base profiles and cases; a case is a base with some facts set (`null`
//! removes a fact) and the outcome it expects of some rules: the severity of the tier that fires,
//! `"silent"` (the rule does not apply, or every tier is false) or `"indeterminate"` (a fact it needs
//! is missing).
//!
//! ```json
//! {
//!   "bases": {"adult": {"id": "adult", "age": 40, "sex": "male", "egfr": 95}},
//!   "cases": [
//!     {"case": "age-11", "base": "adult", "set": {"age": 11}, "expect": {"BAC-AGE-PEDIATRIC": "warning"}},
//!     {"case": "egfr-unknown", "base": "adult", "set": {"egfr": null}, "expect": {"BAC-RENAL": "indeterminate"}}
//!   ]
//! }
//! ```
//!
//! Running the cases also measures **tier coverage**: for every tier of every rule, whether some case
//! reaches it and makes it true (the tier fires) and whether some case reaches it and makes it false. A
//! tier is reached when the rule applies and no earlier tier is true. A grouped rule's tiers are
//! decided for the rule alone (as if it were in no group).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::error::{LoadError, LoadErrorCode, LoadErrors};
use crate::report::Screening;
use crate::severity::Severity;

/// The test files of the embedded packs: (pack name, file name, text).
pub const EMBEDDED: &[(&str, &str, &str)] = crate::engine::EMBEDDED_TESTS;

/// What a case expects of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A tier of this severity fires.
    Fires(Severity),
    /// The rule does not apply, or every tier is false.
    Silent,
    /// A fact the rule needs is missing.
    Indeterminate,
}

impl Expect {
    fn parse(s: &str) -> Option<Expect> {
        match s {
            "silent" => Some(Expect::Silent),
            "indeterminate" => Some(Expect::Indeterminate),
            other => Severity::parse(other).map(Expect::Fires),
        }
    }

    /// As written in test files.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Fires(s) => s.as_str(),
            Expect::Silent => "silent",
            Expect::Indeterminate => "indeterminate",
        }
    }
}

/// One case: a profile and what it expects.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case's name (also the profile's `id`).
    pub name: String,
    /// Where it is: `/cases/3`.
    pub pointer: String,
    /// Why the case exists, if the author said.
    pub note: Option<String>,
    profile: Value,
    expect: Vec<(String, Expect)>,
}

/// The cases of one test file.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The file, as named to [`Suite::parse`].
    pub file: String,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
}

impl Suite {
    /// Reads a test file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Suite, LoadErrors> {
        let bad = |pointer: String, message: String| {
            LoadErrors(vec![LoadError::new(
                LoadErrorCode::Schema,
                file,
                pointer,
                message,
            )])
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            LoadErrors(vec![LoadError::new(
                LoadErrorCode::InvalidJson,
                file,
                "",
                format!("not JSON: {}", crate::diagnostic::serde_fault(&e).reason),
            )])
        })?;
        let Some(bases) = doc.get("bases").and_then(Value::as_object) else {
            return Err(bad(
                "/bases".into(),
                "`bases` must be an object of named profiles".into(),
            ));
        };
        let Some(raw) = doc.get("cases").and_then(Value::as_array) else {
            return Err(bad("/cases".into(), "`cases` must be an array".into()));
        };
        let mut cases: Vec<Case> = Vec::with_capacity(raw.len());
        for (i, c) in raw.iter().enumerate() {
            let at = format!("/cases/{i}");
            let field = |name: &str| c.get(name);
            let Some(name) = field("case").and_then(Value::as_str) else {
                return Err(bad(
                    format!("{at}/case"),
                    "each case needs a `case` name".into(),
                ));
            };
            if cases.iter().any(|other| other.name == name) {
                return Err(bad(
                    format!("{at}/case"),
                    format!("case `{name}` is named twice"),
                ));
            }
            let base_name = field("base").and_then(Value::as_str).unwrap_or_default();
            let Some(base) = bases.get(base_name).and_then(Value::as_object) else {
                let names = bases.keys().map(String::as_str);
                let help = crate::suggest::did_you_mean(base_name, names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(bad(
                    format!("{at}/base"),
                    format!("no base profile `{base_name}`{help}"),
                ));
            };
            let mut profile: Map<String, Value> = base.clone();
            match field("set") {
                None => {}
                Some(Value::Object(set)) => {
                    for (k, v) in set {
                        if v.is_null() {
                            profile.remove(k);
                        } else {
                            profile.insert(k.clone(), v.clone());
                        }
                    }
                }
                Some(_) => {
                    return Err(bad(format!("{at}/set"), "`set` must be an object".into()));
                }
            }
            profile.insert("id".into(), Value::String(name.to_owned()));
            let Some(raw_expect) = field("expect").and_then(Value::as_object) else {
                return Err(bad(
                    format!("{at}/expect"),
                    "`expect` must map rule ids to an outcome".into(),
                ));
            };
            let mut expect = Vec::with_capacity(raw_expect.len());
            for (rule, v) in raw_expect {
                let Some(e) = v.as_str().and_then(Expect::parse) else {
                    return Err(bad(
                        format!("{at}/expect/{}", escape_pointer(rule)),
                        "an outcome is `info`, `warning`, `critical`, `silent` or `indeterminate`"
                            .into(),
                    ));
                };
                expect.push((rule.clone(), e));
            }
            cases.push(Case {
                name: name.to_owned(),
                pointer: at,
                note: field("note").and_then(Value::as_str).map(str::to_owned),
                profile: Value::Object(profile),
                expect,
            });
        }
        Ok(Suite {
            file: file.to_owned(),
            cases,
        })
    }
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// One expectation a case did not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The rule.
    pub rule: String,
    /// What the case expected.
    pub expected: Expect,
    /// What happened; `None` when the pack has no such rule.
    pub got: Option<Expect>,
    /// What it rests on: the evidence of the caution that fired, or the facts missing.
    pub detail: Vec<String>,
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The test file.
    pub file: String,
    /// The case.
    pub case: String,
    /// Where the case is in its file.
    pub pointer: String,
    /// The expectations it did not meet (empty: passed).
    pub mismatches: Vec<Mismatch>,
    /// Why its profile is not a valid profile, if it is not (the case then fails).
    pub invalid: Vec<String>,
}

impl CaseResult {
    /// Every expectation met.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.invalid.is_empty()
    }
}

/// Which cases reach one tier and make it true, or false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierCoverage {
    /// The tier's severity.
    pub severity: Severity,
    /// Cases that make it true (it fires).
    pub made_true: u32,
    /// Cases that reach it and make it false.
    pub made_false: u32,
}

/// The tiers of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCoverage {
    /// The rule.
    pub rule: String,
    /// Its tiers, in order.
    pub tiers: Vec<TierCoverage>,
}

/// A run of a pack's tests.
#[derive(Debug, Clone)]
pub struct TestRun {
    /// The pack (`name@version#hash`).
    pub ruleset: String,
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
    /// Every rule of the pack, in pack order.
    pub coverage: Vec<RuleCoverage>,
}

/// Runs every case of `suites` against `engine`.
pub fn run(engine: &Engine, suites: &[Suite]) -> TestRun {
    let mut coverage: Vec<RuleCoverage> = engine
        .rules()
        .iter()
        .map(|r| RuleCoverage {
            rule: r.id.clone(),
            tiers: r
                .tiers
                .iter()
                .map(|t| TierCoverage {
                    severity: t.severity,
                    made_true: 0,
                    made_false: 0,
                })
                .collect(),
        })
        .collect();
    let mut cases = Vec::new();
    for suite in suites {
        for case in &suite.cases {
            let mut result = CaseResult {
                file: suite.file.clone(),
                case: case.name.clone(),
                pointer: case.pointer.clone(),
                mismatches: Vec::new(),
                invalid: Vec::new(),
            };
            match engine.validate_value(&case.profile) {
                Err(rejection) => {
                    result.invalid = rejection
                        .problems
                        .iter()
                        .map(|p| format!("{}: {}", p.pointer, p.message))
                        .collect();
                }
                Ok(profile) => {
                    let screening = engine.screen(&profile);
                    result.mismatches = mismatches(engine, case, &screening);
                    for (rule, tiers) in coverage.iter_mut().zip(engine.tier_outcomes(&profile)) {
                        for (tier, outcome) in rule.tiers.iter_mut().zip(tiers) {
                            match outcome {
                                Some(true) => tier.made_true += 1,
                                Some(false) => tier.made_false += 1,
                                None => {}
                            }
                        }
                    }
                }
            }
            cases.push(result);
        }
    }
    TestRun {
        ruleset: engine.ruleset().label.clone(),
        cases,
        coverage,
    }
}

fn mismatches(engine: &Engine, case: &Case, s: &Screening<'_>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (rule, expected) in &case.expect {
        if !engine.rules().iter().any(|r| &r.id == rule) {
            out.push(Mismatch {
                rule: rule.clone(),
                expected: *expected,
                got: None,
                detail: crate::suggest::did_you_mean(
                    rule,
                    engine.rules().iter().map(|r| r.id.as_str()),
                )
                .map(|s| vec![format!("did you mean `{s}`?")])
                .unwrap_or_default(),
            });
            continue;
        }
        let (got, detail) = if let Some(c) = s.cautions.iter().find(|c| c.rule == rule) {
            let evidence = c
                .evidence
                .iter()
                .map(|e| {
                    let mut line = format!("{} = {}", e.pointer, e.value);
                    if let Some(i) = e.ingredient {
                        let _ = write!(line, " ({i}");
                        if let Some(class) = e.class {
                            let _ = write!(line, ", {class}");
                        }
                        line.push(')');
                    }
                    if let Some(m) = e.matched {
                        let _ = write!(line, " (matched `{m}`)");
                    }
                    line
                })
                .collect();
            (Expect::Fires(c.severity), evidence)
        } else if let Some(i) = s.indeterminate.iter().find(|i| i.rule == rule) {
            (
                Expect::Indeterminate,
                vec![format!("missing: {}", i.missing.join(", "))],
            )
        } else {
            (Expect::Silent, Vec::new())
        };
        if got != *expected {
            out.push(Mismatch {
                rule: rule.clone(),
                expected: *expected,
                got: Some(got),
                detail,
            });
        }
    }
    out
}

impl TestRun {
    /// Cases that met every expectation.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    /// Cases that did not.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// Tier coverage in percent: of the two things each tier can be shown to be (true, false), how
    /// many some case shows. 100 with no tier.
    pub fn coverage_percent(&self) -> f64 {
        let (mut shown, mut total) = (0u64, 0u64);
        for t in self.coverage.iter().flat_map(|r| &r.tiers) {
            total += 2;
            shown += u64::from(t.made_true > 0) + u64::from(t.made_false > 0);
        }
        if total == 0 {
            100.0
        } else {
            shown as f64 * 100.0 / total as f64
        }
    }

    /// Tiers no case makes true, or no case makes false: (rule, tier number from 1, severity, never
    /// true, never false).
    pub fn uncovered(&self) -> Vec<(&str, usize, Severity, bool, bool)> {
        let mut out = Vec::new();
        for r in &self.coverage {
            for (k, t) in r.tiers.iter().enumerate() {
                if t.made_true == 0 || t.made_false == 0 {
                    out.push((
                        r.rule.as_str(),
                        k + 1,
                        t.severity,
                        t.made_true == 0,
                        t.made_false == 0,
                    ));
                }
            }
        }
        out
    }

    /// The readable report: each failing case with expected against got and what the outcome rests
    /// on, then the coverage and the tiers it misses.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in self.cases.iter().filter(|c| !c.passed()) {
            let _ = writeln!(s, "FAIL {} ({} at {})", c.case, c.file, c.pointer);
            for p in &c.invalid {
                let _ = writeln!(s, "  the profile is invalid: {p}");
            }
            for m in &c.mismatches {
                match m.got {
                    None => {
                        let _ = writeln!(s, "  {}: no such rule in the pack", m.rule);
                    }
                    Some(got) => {
                        let _ = writeln!(
                            s,
                            "  {}: expected {}, got {}",
                            m.rule,
                            m.expected.as_str(),
                            got.as_str()
                        );
                    }
                }
                for d in &m.detail {
                    let _ = writeln!(s, "    {d}");
                }
            }
        }
        let tiers: usize = self.coverage.iter().map(|r| r.tiers.len()).sum();
        let uncovered = self.uncovered();
        let never_true = uncovered.iter().filter(|u| u.3).count();
        let never_false = uncovered.iter().filter(|u| u.4).count();
        let _ = writeln!(
            s,
            "{}: {} cases, {} passed, {} failed",
            self.ruleset,
            self.cases.len(),
            self.passed(),
            self.failed()
        );
        let _ = writeln!(
            s,
            "tier coverage: {:.1}% ({} of {tiers} tiers made true, {} of {tiers} made false)",
            self.coverage_percent(),
            tiers - never_true,
            tiers - never_false,
        );
        for (rule, k, severity, t, f) in uncovered {
            let what = unshown(t, f);
            let _ = writeln!(s, "  {rule} tier {k} ({}): {what}", severity.as_str());
        }
        s
    }

    /// JUnit XML for CI: one test suite per test file, one test case per case, and a `coverage`
    /// test case per rule tier that some case leaves unshown.
    pub fn junit(&self) -> String {
        let mut by_file: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for c in &self.cases {
            by_file.entry(c.file.as_str()).or_default().push(c);
        }
        let uncovered = self.uncovered();
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\">",
            xml(&self.ruleset),
            self.cases.len() + self.coverage.iter().map(|r| r.tiers.len()).sum::<usize>(),
            self.failed() + uncovered.len()
        );
        for (file, cases) in &by_file {
            let failures = cases.iter().filter(|c| !c.passed()).count();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
                xml(file),
                cases.len()
            );
            for c in cases {
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml(file),
                    xml(&c.case)
                );
                if c.passed() {
                    s.push_str("/>\n");
                    continue;
                }
                let mut detail = String::new();
                for p in &c.invalid {
                    let _ = writeln!(detail, "the profile is invalid: {p}");
                }
                for m in &c.mismatches {
                    let got = m.got.map_or("no such rule", Expect::as_str);
                    let _ = writeln!(
                        detail,
                        "{}: expected {}, got {got}",
                        m.rule,
                        m.expected.as_str()
                    );
                    for d in &m.detail {
                        let _ = writeln!(detail, "  {d}");
                    }
                }
                let first = detail.lines().next().unwrap_or_default().to_owned();
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&first),
                    xml(&detail)
                );
            }
            s.push_str("  </testsuite>\n");
        }
        let _ = writeln!(
            s,
            "  <testsuite name=\"tier coverage\" tests=\"{}\" failures=\"{}\">",
            self.coverage.iter().map(|r| r.tiers.len()).sum::<usize>(),
            uncovered.len()
        );
        for r in &self.coverage {
            for (k, t) in r.tiers.iter().enumerate() {
                let name = format!("{} tier {}", r.rule, k + 1);
                let _ = write!(
                    s,
                    "    <testcase classname=\"coverage\" name=\"{}\"",
                    xml(&name)
                );
                if t.made_true > 0 && t.made_false > 0 {
                    s.push_str("/>\n");
                } else {
                    let why = unshown(t.made_true == 0, t.made_false == 0);
                    let _ = writeln!(s, ">\n      <failure message=\"{why}\"/>\n    </testcase>");
                }
            }
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }
}

/// What coverage a tier lacks.
fn unshown(never_true: bool, never_false: bool) -> &'static str {
    match (never_true, never_false) {
        (true, true) => "no case makes it true or false",
        (true, false) => "no case makes it true",
        _ => "no case reaches it and makes it false",
    }
}

/// Text escaped for XML attributes and content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
