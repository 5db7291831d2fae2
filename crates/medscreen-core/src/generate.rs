//! Deterministic synthetic profiles for demos, tests and benchmarks.
//!
//! The mix is meant to look like an EHR export: mostly adults, many older ones, facts often unknown,
//! comedications as messy strings (tall-man lettering, salts, doses, brands, combinations) and coded
//! objects, some drugs nobody knows, and, at the requested rate, invalid records of several kinds. The
//! same seed always gives the same bytes.
//!
//! The shared patient facts are written here; the facts a pack declares are written from their
//! declarations' `generate` hints (see [`crate::facts::Generate`]), after the shared ones, in slot order.

use std::io::{self, Write};

use crate::facts::{FactTable, Generate};

/// A small, fast, well-distributed generator (SplitMix64); good enough for test data, not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    #[expect(
        clippy::indexing_slicing,
        reason = "below(n) < n, and callers pass non-empty slices (constants, or lists checked non-empty when loaded)"
    )]
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator writes besides the facts packs declare (`rules/generate.json`): medication
/// entries as EHR exports write them and indications. Data, so that no drug is written here.
const SAMPLES: &str = include_str!("../../../rules/generate.json");

#[derive(serde::Deserialize)]
struct Samples {
    /// Shared yes/no facts and how often each is true.
    flags: Flags,
    /// Free-text medication entries.
    medications: Vec<String>,
    /// Entries that match nothing, as real exports contain them.
    unrecognised: Vec<String>,
    /// Coded entries, as JSON text (`{"rxnorm":"7804"}`).
    coded: Vec<String>,
    /// Indications, as free text.
    indications: Vec<String>,
}

/// `flags` of `rules/generate.json`.
#[derive(serde::Deserialize)]
struct Flags {
    /// Out of 100 draws, how many leave the fact out...
    absent_percent: u64,
    /// ...and how many write `null`; the others write `true` with the fact's probability, else `false`.
    null_percent: u64,
    /// Each fact and its probability of `true`, in the order they are drawn.
    #[serde(rename = "true")]
    facts: Vec<(String, f64)>,
}

impl Samples {
    /// The samples, checked against the facts profiles may carry: each flag a yes/no fact.
    fn load(facts: &FactTable) -> io::Result<Samples> {
        Samples::parse(SAMPLES, facts)
    }

    fn parse(text: &str, facts: &FactTable) -> io::Result<Samples> {
        let bad = |what: String| io::Error::other(format!("rules/generate.json: {what}"));
        let s: Samples = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let lists = [&s.medications, &s.unrecognised, &s.coded, &s.indications];
        if lists.iter().any(|l| l.is_empty()) {
            return Err(bad("a list is empty".to_owned()));
        }
        if s.flags.absent_percent + s.flags.null_percent > 100 {
            return Err(bad(
                "`absent_percent` and `null_percent` add up to more than 100".to_owned(),
            ));
        }
        for (name, p) in &s.flags.facts {
            let is_flag = facts
                .decls()
                .iter()
                .any(|d| d.name == *name && d.kind == crate::facts::FactKind::Bool);
            if !is_flag || !(0.0..=1.0).contains(p) {
                return Err(bad(format!(
                    "flag `{name}` must be a yes/no fact with a probability from 0 to 1"
                )));
            }
        }
        Ok(s)
    }
}

const CKD_STAGES: &[&str] = &[
    "\"1\"", "\"2\"", "\"3a\"", "\"3b\"", "\"4\"", "\"5\"", "null",
];

/// Write `count` profiles as NDJSON, about `invalid_rate` of them invalid, with the pack facts of
/// `facts` that declare how they are generated.
pub fn write_profiles<W: Write>(
    out: &mut W,
    facts: &FactTable,
    count: u64,
    seed: u64,
    invalid_rate: f64,
) -> io::Result<()> {
    let samples = Samples::load(facts)?;
    let mut rng = Rng::new(seed);
    let mut line = String::with_capacity(1024);
    for n in 1..=count {
        line.clear();
        if rng.chance(invalid_rate) {
            invalid_profile(&mut rng, n, &mut line);
        } else {
            profile(&mut rng, n, facts, &samples, &mut line);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

fn push_field(line: &mut String, key: &str, value: &str) {
    if line.len() > 1 {
        line.push(',');
    }
    line.push('"');
    line.push_str(key);
    line.push_str("\":");
    line.push_str(value);
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// One valid profile.
fn profile(rng: &mut Rng, n: u64, facts: &FactTable, samples: &Samples, line: &mut String) {
    line.push('{');
    push_field(line, "id", &format!("\"gen-{n:08}\""));
    let age = match rng.below(100) {
        0..=4 => rng.below(18),
        5..=59 => 18 + rng.below(47),
        _ => 65 + rng.below(31),
    };
    push_field(line, "age", &age.to_string());
    let sex = match rng.below(100) {
        0..=49 => Some("female"),
        50..=95 => Some("male"),
        96 => Some("other"),
        97 => Some("unknown"),
        _ => None,
    };
    if let Some(s) = sex {
        push_field(line, "sex", &format!("\"{s}\""));
    }
    if sex == Some("female") && (12..=50).contains(&age) {
        if rng.chance(0.7) {
            push_field(
                line,
                "pregnant",
                if rng.chance(0.04) { "true" } else { "false" },
            );
        }
        if rng.chance(0.6) {
            push_field(
                line,
                "breastfeeding",
                if rng.chance(0.05) { "true" } else { "false" },
            );
        }
    }
    let flags = &samples.flags;
    for (fact, p_true) in &flags.facts {
        let draw = rng.below(100);
        if draw < flags.absent_percent {
        } else if draw < flags.absent_percent + flags.null_percent {
            push_field(line, fact, "null");
        } else {
            push_field(
                line,
                fact,
                if rng.chance(*p_true) { "true" } else { "false" },
            );
        }
    }
    if rng.chance(0.7) {
        let base = if age >= 65 { 62.0 } else { 92.0 };
        let egfr = (base + (rng.unit() - 0.5) * 70.0).clamp(4.0, 140.0);
        push_field(line, "egfr", &format!("{:.1}", egfr));
    } else if rng.chance(0.3) {
        push_field(line, "ckd_stage", rng.pick::<&str>(CKD_STAGES));
    }
    if rng.chance(0.75) {
        push_field(
            line,
            "indication",
            &json_string(rng.pick::<String>(&samples.indications)),
        );
    }
    for decl in facts.decls().iter().filter(|d| d.pack.is_some()) {
        let value = match &decl.generate {
            None => None,
            Some(Generate::Pick { chance, values }) => {
                if rng.chance(*chance) && !values.is_empty() {
                    Some(rng.pick(values))
                } else {
                    None
                }
            }
            Some(Generate::Weighted(cases)) => {
                // Checked at load not to overflow; saturate rather than trust it here.
                let total = cases
                    .iter()
                    .fold(0u64, |sum, (w, _)| sum.saturating_add(*w));
                let mut draw = rng.below(total.max(1));
                cases
                    .iter()
                    .find(|(w, _)| {
                        let here = draw < *w;
                        draw = draw.saturating_sub(*w);
                        here
                    })
                    .and_then(|(_, v)| v.as_ref())
            }
        };
        if let Some(v) = value {
            push_field(line, &decl.name, &v.to_string());
        }
    }
    if rng.chance(0.9) {
        let k = rng.below(9);
        let mut meds = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let entry = match rng.below(100) {
                0..=79 => json_string(rng.pick::<String>(&samples.medications)),
                80..=93 => rng.pick::<String>(&samples.coded).clone(),
                _ => json_string(rng.pick::<String>(&samples.unrecognised)),
            };
            meds.push(entry);
        }
        push_field(line, "comedications", &format!("[{}]", meds.join(",")));
    }
    line.push('}');
}

/// One invalid record, of one of several kinds.
fn invalid_profile(rng: &mut Rng, n: u64, line: &mut String) {
    let id = format!("gen-{n:08}");
    let text = match rng.below(7) {
        0 => format!(
            r#"{{"id":"{id}","age":{},"pregnent":false}}"#,
            20 + rng.below(40)
        ),
        1 => format!(r#"{{"id":"{id}","age":{}}}"#, 131 + rng.below(100)),
        2 => format!(r#"{{"id":"{id}","age":40,"sex":"F"}}"#),
        3 => format!(r#"{{"id":"{id}","age":50,"comedications":[{{}}]}}"#),
        4 => format!(r#"{{"id":"{id}","age":"sixty"}}"#),
        5 => r#"{"age":33,"sex":"male"}"#.to_owned(),
        _ => format!(r#"{{"id":"{id}","age":47,"#),
    };
    line.push_str(&text);
}

/// A rule pack of `n` rules for rule-count benchmarks: the rules of `base` (a pack's JSON) repeated
/// with new ids and numeric thresholds shifted a little, so the copies are not identical.
#[expect(
    clippy::indexing_slicing,
    reason = "serde_json's Value indexing by key does not panic on an object (it inserts or reads null)"
)]
pub fn scaled_pack(base: &str, n: usize) -> Result<String, serde_json::Error> {
    let mut pack: serde_json::Value = serde_json::from_str(base)?;
    let rules: Vec<serde_json::Value> = pack["rules"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let Some(template) = rules.get(k % rules.len().max(1)) else {
            break;
        };
        let mut rule = template.clone();
        let id = rule["id"].as_str().unwrap_or("RULE").to_owned();
        rule["id"] = serde_json::Value::String(format!("{id}-X{k}"));
        shift_numbers(&mut rule, (k / rules.len().max(1)) as f64 * 0.01);
        out.push(rule);
    }
    pack["rules"] = serde_json::Value::Array(out);
    // Each copy of the rules keeps the pack's groups, over that copy's rules.
    if let Some(groups) = pack.get("groups").and_then(|g| g.as_array()).cloned() {
        let copies = n.div_ceil(rules.len().max(1));
        let index = |id: &str| rules.iter().position(|r| r["id"] == id);
        let mut scaled = Vec::new();
        for c in 0..copies {
            for group in &groups {
                let mut g = group.clone();
                let members: Vec<serde_json::Value> = group["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        let k = c * rules.len() + index(m.as_str()?)?;
                        (k < n).then(|| format!("{}-X{k}", m.as_str().unwrap_or_default()).into())
                    })
                    .collect();
                if members.len() < 2 {
                    continue;
                }
                let id = group["id"].as_str().unwrap_or("GROUP");
                g["id"] = format!("{id}-C{c}").into();
                g["rules"] = serde_json::Value::Array(members);
                scaled.push(g);
            }
        }
        pack["groups"] = serde_json::Value::Array(scaled);
    }
    serde_json::to_string(&pack)
}

/// A synthetic pack of `n` rules shaped like a real interaction knowledge base, for benchmarks
/// (`synthetic-interactions`): about four in five are drug-pair interaction rules, each gated by one
/// comedication class of `vocabulary` (most patients take nothing in any one class) and firing only
/// with a second interacting class in a patient with a risk factor (a low eGFR, an older age, severe
/// kidney disease, a condition); the rest are patient-fact rules needing three risk factors. Seven in
/// ten are narrowed to a population (`applies`). Thresholds, classes, facts and severities are drawn
/// from `seed`, so the same arguments always give the same text. Every rule's id starts `SYN-` and
/// cites one source, which says that the pack is synthetic: it is not clinical content and no
/// patient should be screened with it.
///
/// It reads only the shared patient facts, so it screens the records [`write_profiles`] writes. Its
/// subject is baclofen, so that an entry naming baclofen is, as in the baclofen pack, not one of the
/// patient's comedications.
pub fn interaction_pack(
    vocabulary: &str,
    n: usize,
    seed: u64,
) -> Result<String, serde_json::Error> {
    use serde_json::{Value, json};
    let vocab: Value = serde_json::from_str(vocabulary)?;
    let classes: Vec<String> = vocab
        .get("classes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("id")?.as_str().map(str::to_owned))
        .collect();
    let mut rng = Rng::new(seed);
    // A condition on a shared patient fact, as a rule or a population scope would test it.
    let fact_test = |rng: &mut Rng| -> Value {
        match rng.below(5) {
            0 => json!({"fact": "egfr", "op": "lt", "value": 15 + rng.below(46)}),
            1 => json!({"fact": "age", "op": "ge", "value": 60 + rng.below(26)}),
            // Severe kidney disease: the stage counts only where no eGFR is given.
            2 => json!({"any": [{"fact": "egfr", "op": "lt", "value": 30},
                                {"all": [{"fact": "egfr", "op": "unknown"},
                                         {"fact": "ckd_stage", "op": "in", "value": ["4", "5"]}]}]}),
            _ => json!({"fact": *rng.pick(SYNTHETIC_FLAGS), "op": "eq", "value": true}),
        }
    };
    let population = |rng: &mut Rng| -> Value {
        match rng.below(4) {
            0 => json!({"fact": "age", "op": "ge", "value": 65}),
            1 => json!({"fact": "age", "op": "lt", "value": 18}),
            2 => json!({"fact": "sex", "op": "eq", "value": "female"}),
            _ => json!({"fact": "age", "op": "ge", "value": 18 + rng.below(40)}),
        }
    };
    const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];
    let mut rules = Vec::with_capacity(n);
    for k in 0..n {
        let mut tiers = Vec::new();
        let mut rule = if rng.below(5) < 4 && !classes.is_empty() {
            let class = rng.pick(&classes).clone();
            let gate = json!({"medication": {"class": class}});
            // With a second interacting comedication in a patient at risk; a second tier for
            // another risk, where there is one.
            let other = json!({"medication": {"class": rng.pick(&classes).clone()}});
            tiers.push(json!({"all": [gate, other, fact_test(&mut rng)]}));
            if rng.chance(0.5) {
                tiers.push(json!({"all": [gate, other, fact_test(&mut rng)]}));
            }
            json!({"id": format!("SYN-DDI-{k:05}"), "title": format!("Synthetic interaction {k} ({class})"), "tags": ["interaction"]})
        } else {
            // Three risk factors together; a second tier for another third, where there is one.
            let (a, b) = (fact_test(&mut rng), fact_test(&mut rng));
            tiers.push(json!({"all": [a, b, fact_test(&mut rng)]}));
            if rng.chance(0.5) {
                tiers.push(json!({"all": [a, b, fact_test(&mut rng)]}));
            }
            json!({"id": format!("SYN-PT-{k:05}"), "title": format!("Synthetic patient rule {k}"), "tags": ["patient"]})
        };
        let Value::Object(rule) = &mut rule else {
            continue;
        };
        if rng.chance(0.7) {
            rule.insert("applies".into(), population(&mut rng));
        }
        // The first tier is the most severe; a later one is no more severe than the one before.
        let mut level = 1 + rng.below(2) as usize;
        let tiers = tiers
            .into_iter()
            .map(|when| {
                let severity = SEVERITIES.get(level).copied().unwrap_or("info");
                level = level.saturating_sub(rng.below(2) as usize);
                json!({"when": when, "severity": severity,
                       "message": format!("Synthetic caution of rule {k}."),
                       "action": "None: this rule is synthetic, for benchmarks."})
            })
            .collect();
        rule.insert("tiers".into(), tiers);
        rule.insert("sources".into(), json!(["SYN"]));
        rules.push(Value::Object(std::mem::take(rule)));
    }
    serde_json::to_string_pretty(&json!({
        "name": "synthetic-interactions",
        "version": format!("1.{n}.{seed}"),
        "description": format!("{n} synthetic rules (seed {seed}) shaped like an interaction knowledge base, for benchmarks: not clinical content."),
        "subject": {"ingredient": "baclofen"},
        "sources": {"SYN": {"label": "Synthetic: generated by medscreen_core::generate::interaction_pack for benchmarks; not clinical content"}},
        "rules": rules,
    }))
}

/// The shared yes/no facts the synthetic pack's rules test (all of them drawn by [`write_profiles`]).
const SYNTHETIC_FLAGS: &[&str] = &[
    "seizure_history",
    "kidney_disease",
    "dialysis",
    "liver_disease",
    "heart_disease",
    "diabetes",
    "respiratory_impairment",
    "alcohol_use",
];

fn shift_numbers(v: &mut serde_json::Value, by: f64) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "value" {
                    if let Some(n) = x.as_f64()
                        && by != 0.0
                    {
                        *x = serde_json::json!(n + by);
                    }
                } else {
                    shift_numbers(x, by);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| shift_numbers(x, by)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_that_is_not_a_yes_no_fact_is_refused() {
        let engine = crate::Engine::embedded().unwrap();
        assert!(Samples::parse(SAMPLES, engine.facts()).is_ok());
        for (from, to) in [
            ("[\"dialysis\", 0.02]", "[\"egfr\", 0.02]"),
            ("[\"dialysis\", 0.02]", "[\"dialysys\", 0.02]"),
            ("[\"dialysis\", 0.02]", "[\"dialysis\", 1.5]"),
            ("\"null_percent\": 5", "\"null_percent\": 80"),
        ] {
            assert!(SAMPLES.contains(from));
            let text = SAMPLES.replace(from, to);
            let e = Samples::parse(&text, engine.facts()).err().unwrap();
            assert!(e.to_string().starts_with("rules/generate.json: "), "{e}");
        }
    }

    #[test]
    fn scaled_packs_load_with_their_groups() {
        use crate::engine::{EMBEDDED_PACK, EMBEDDED_VOCABULARY};
        for n in [7, 300, 3000] {
            let pack = scaled_pack(EMBEDDED_PACK, n).unwrap();
            let engine = crate::Engine::from_sources(
                "pack.json",
                &pack,
                "vocabulary.json",
                EMBEDDED_VOCABULARY,
            )
            .unwrap();
            assert_eq!(engine.rules().len(), n);
            if n >= 300 {
                assert!(!engine.groups().is_empty(), "{n} rules keep groups");
            }
        }
    }

    #[test]
    fn the_interaction_pack_is_deterministic_loads_and_decides_every_way() {
        use crate::engine::EMBEDDED_VOCABULARY;
        let pack = interaction_pack(EMBEDDED_VOCABULARY, 3000, 5).unwrap();
        assert_eq!(
            pack,
            interaction_pack(EMBEDDED_VOCABULARY, 3000, 5).unwrap()
        );
        assert_ne!(
            pack,
            interaction_pack(EMBEDDED_VOCABULARY, 3000, 6).unwrap()
        );
        // Beside the embedded packs, whose facts the generated records carry.
        let packs: Vec<(&str, &str)> = std::iter::once(("pack.json", pack.as_str()))
            .chain(crate::engine::EMBEDDED_PACKS.iter().copied())
            .collect();
        let engine =
            crate::Engine::from_packs(&packs, "vocabulary.json", EMBEDDED_VOCABULARY).unwrap();
        assert_eq!(engine.rules().len(), 3000);
        let ddi = engine
            .rules()
            .iter()
            .filter(|r| r.id.starts_with("SYN-DDI-"))
            .count();
        assert!(
            (2200..=2600).contains(&ddi),
            "{ddi} interaction rules of 3000"
        );
        let mut data = Vec::new();
        write_profiles(&mut data, engine.facts(), 300, 2, 0.0).unwrap();
        let (mut fired, mut undecided, mut clear) = (0usize, 0usize, 0usize);
        let mut cache = crate::vocab::MatchCache::new();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let profile = engine.parse_fast(line).unwrap();
            let s = engine.screen_with(&profile, &mut cache);
            fired += s.cautions.len();
            undecided += s.indeterminate.len();
            clear += 3000 - s.cautions.len() - s.indeterminate.len();
        }
        // Most rules are silent for most patients, as in a real interaction base; some fire and some
        // are undecided.
        assert!(
            fired > 0 && undecided > 0,
            "{fired} fired, {undecided} undecided"
        );
        assert!(clear > 300 * 3000 / 2, "{clear} silent of {}", 300 * 3000);
    }

    #[test]
    fn same_seed_same_bytes_and_invalid_rate_respected() {
        let engine = crate::Engine::embedded().unwrap();
        let facts = engine.facts();
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_profiles(&mut a, facts, 500, 7, 0.1).unwrap();
        write_profiles(&mut b, facts, 500, 7, 0.1).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        write_profiles(&mut c, facts, 500, 8, 0.1).unwrap();
        assert_ne!(a, c);
        assert_eq!(a.iter().filter(|b| **b == b'\n').count(), 500);
    }
}
