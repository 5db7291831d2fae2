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
        reason = "below(n) < n, and callers pass non-empty constant slices"
    )]
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Free-text medication entries as EHR exports write them.
const MED_TEXT: &[&str] = &[
    "oxyCODONE HCl 5 MG Oral Tablet",
    "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
    "Xanax 0.5mg",
    "traMADol 50 mg tab",
    "gabapentin 300 MG Oral Capsule",
    "Lyrica 75 mg",
    "sertraline 50 mg daily",
    "amitriptyline 25 mg at bedtime",
    "DULoxetine 60 MG DR capsule",
    "traZODone 50 mg",
    "zolpidem 10 mg",
    "diphenhydrAMINE 25 mg",
    "cyclobenzaprine 10 mg",
    "tiZANidine 4 mg",
    "quetiapine 25 mg",
    "clonazePAM 0.5 mg",
    "LORazepam 1 MG Oral Tablet",
    "carbidopa-levodopa 25-100",
    "lithium carbonate 300 mg",
    "lisinopril 10 mg",
    "amLODIPine 5 mg",
    "metoprolol succinate ER 50 mg",
    "losartan 50 mg",
    "hydroCHLOROthiazide 25 mg",
    "metformin 500 mg BID",
    "insulin glargine 20 units",
    "atorvastatin 40 mg",
    "omeprazole 20 mg",
    "levothyroxine 75 mcg",
    "albuterol HFA inhaler",
    "aspirin 81 mg",
    "vitamin D3 2000 IU",
    "ibuprofen 400 mg",
    "acetaminophen 500 mg PRN",
    "montelukast 10 mg",
    "pantoprazole 40 mg",
    "simvastatin 20 mg",
    "furosemide 40 mg",
    "prednisone 10 mg",
    "amoxicillin 500 mg",
];

/// Drugs that match nothing, as real exports contain them.
const UNKNOWN_TEXT: &[&str] = &[
    "Zyxorin 10 mg",
    "study drug ABC-123",
    "herbal supplement",
    "Qelbrix XR 5 mg",
];

/// Coded entries, as `{"rxnorm": ...}` or `{"atc": ...}` JSON.
const MED_CODED: &[&str] = &[
    r#"{"rxnorm":"7804"}"#,
    r#"{"rxnorm":"596","name":"alprazolam"}"#,
    r#"{"atc":"N02AA05"}"#,
    r#"{"atc":"N06AB06"}"#,
    r#"{"atc":"C09AA03"}"#,
    r#"{"name":"Percocet 5/325"}"#,
    r#"{"rxnorm":"25480"}"#,
];

const INDICATIONS: &[&str] = &[
    "spasticity due to multiple sclerosis",
    "spinal cord injury with spasticity",
    "MS spasticity",
    "post-stroke spasticity",
    "cerebral palsy",
    "intractable hiccups",
    "alcohol use disorder",
    "muscle spasm, low back",
    "Parkinson's disease rigidity",
];

const BOOL_FACTS: &[(&str, f64)] = &[
    ("seizure_history", 0.06),
    ("kidney_disease", 0.12),
    ("dialysis", 0.02),
    ("stroke_history", 0.08),
    ("relies_on_spasticity", 0.1),
    ("liver_disease", 0.05),
    ("heart_disease", 0.15),
    ("diabetes", 0.18),
    ("psychiatric_disorder", 0.07),
    ("alcohol_use", 0.2),
    ("operates_machinery", 0.25),
    ("autonomic_dysreflexia", 0.03),
    ("respiratory_impairment", 0.12),
];

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
    let mut rng = Rng::new(seed);
    let mut line = String::with_capacity(1024);
    for n in 1..=count {
        line.clear();
        if rng.chance(invalid_rate) {
            invalid_profile(&mut rng, n, &mut line);
        } else {
            profile(&mut rng, n, facts, &mut line);
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
fn profile(rng: &mut Rng, n: u64, facts: &FactTable, line: &mut String) {
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
    for (fact, p_true) in BOOL_FACTS {
        match rng.below(100) {
            0..=24 => {}
            25..=29 => push_field(line, fact, "null"),
            _ => push_field(
                line,
                fact,
                if rng.chance(*p_true) { "true" } else { "false" },
            ),
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
            &json_string(rng.pick::<&str>(INDICATIONS)),
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
                0..=79 => json_string(rng.pick::<&str>(MED_TEXT)),
                80..=93 => (*rng.pick(MED_CODED)).to_owned(),
                _ => json_string(rng.pick::<&str>(UNKNOWN_TEXT)),
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
    serde_json::to_string(&pack)
}

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
