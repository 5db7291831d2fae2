//! The typed patient profile that rules read.
//!
//! The JSON Schema in `schemas/profile.schema.json` is the contract for input; this module is its typed
//! mirror. Every optional fact is an `Option`: `None` means *unknown*, never "no", which is what lets the
//! evaluator tell "could not evaluate" apart from "does not apply". A test checks that every property of the
//! schema has exactly one [`Field`] here and that the two agree on every fixture.

use serde::{Deserialize, Deserializer, Serialize};

/// One patient's facts, as validated against the profile schema.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Record identifier, echoed in every result.
    pub id: String,
    /// Age in completed years (0..=130).
    #[serde(deserialize_with = "integral_age")]
    pub age: u8,
    /// Administrative sex.
    #[serde(default)]
    pub sex: Option<Sex>,
    /// Currently pregnant.
    #[serde(default)]
    pub pregnant: Option<bool>,
    /// Currently breastfeeding.
    #[serde(default)]
    pub breastfeeding: Option<bool>,
    /// Seizures or epilepsy.
    #[serde(default)]
    pub seizure_history: Option<bool>,
    /// Chronic kidney disease of any stage.
    #[serde(default)]
    pub kidney_disease: Option<bool>,
    /// On dialysis.
    #[serde(default)]
    pub dialysis: Option<bool>,
    /// Recorded CKD stage; read only where eGFR is unknown.
    #[serde(default)]
    pub ckd_stage: Option<CkdStage>,
    /// eGFR in mL/min/1.73 m2 (creatinine clearance accepted as a proxy).
    #[serde(default)]
    pub egfr: Option<f64>,
    /// History of stroke.
    #[serde(default)]
    pub stroke_history: Option<bool>,
    /// Spasticity sustains upright posture, balance or function.
    #[serde(default)]
    pub relies_on_spasticity: Option<bool>,
    /// Liver disease.
    #[serde(default)]
    pub liver_disease: Option<bool>,
    /// Heart disease.
    #[serde(default)]
    pub heart_disease: Option<bool>,
    /// Diabetes mellitus.
    #[serde(default)]
    pub diabetes: Option<bool>,
    /// Psychotic disorder, schizophrenia or confusional state.
    #[serde(default)]
    pub psychiatric_disorder: Option<bool>,
    /// Drinks alcohol.
    #[serde(default)]
    pub alcohol_use: Option<bool>,
    /// Drives or does hazardous work.
    #[serde(default)]
    pub operates_machinery: Option<bool>,
    /// Autonomic dysreflexia, or at risk of it.
    #[serde(default)]
    pub autonomic_dysreflexia: Option<bool>,
    /// Chronic respiratory impairment (COPD, sleep apnoea, chronic respiratory failure...).
    #[serde(default)]
    pub respiratory_impairment: Option<bool>,
    /// What baclofen would treat, free text.
    #[serde(default)]
    pub indication: Option<String>,
    /// Planned or current baclofen dose, mg per day.
    #[serde(default)]
    pub baclofen_daily_dose_mg: Option<f64>,
    /// A planned stop of baclofen.
    #[serde(default)]
    pub discontinuation: Option<Discontinuation>,
    /// Other medications; `Some(vec![])` means "known: none", `None` means unknown.
    #[serde(default)]
    pub comedications: Option<Vec<Medication>>,
}

/// Administrative sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Recorded as unknown.
    Unknown,
}

impl Sex {
    /// The wire name, as rules compare it.
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

/// A recorded chronic-kidney-disease stage (KDIGO G category); `5` includes end-stage disease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CkdStage {
    /// G1.
    #[serde(rename = "1")]
    G1,
    /// G2.
    #[serde(rename = "2")]
    G2,
    /// G3a.
    #[serde(rename = "3a")]
    G3a,
    /// G3b.
    #[serde(rename = "3b")]
    G3b,
    /// G4.
    #[serde(rename = "4")]
    G4,
    /// G5, end-stage included.
    #[serde(rename = "5")]
    G5,
}

impl CkdStage {
    /// The wire name, as rules compare it.
    pub fn as_str(self) -> &'static str {
        match self {
            CkdStage::G1 => "1",
            CkdStage::G2 => "2",
            CkdStage::G3a => "3a",
            CkdStage::G3b => "3b",
            CkdStage::G4 => "4",
            CkdStage::G5 => "5",
        }
    }
}

/// How a planned stop of baclofen is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discontinuation {
    /// Stopped at once.
    Abrupt,
    /// Dose reduced gradually.
    Taper,
}

impl Discontinuation {
    /// The wire name, as rules compare it.
    pub fn as_str(self) -> &'static str {
        match self {
            Discontinuation::Abrupt => "abrupt",
            Discontinuation::Taper => "taper",
        }
    }
}

/// An enumeration rules compare as a string. It is deserialized from a JSON string only, as the
/// schema's `enum` demands: serde's derive would also accept the map form `{"female": null}`, and the
/// fast path would then pass what the schema rejects.
trait WireEnum: Sized + Copy + 'static {
    const ALL: &'static [Self];
    const EXPECTING: &'static str;
    fn wire(self) -> &'static str;
}

fn deserialize_wire<'de, D: Deserializer<'de>, T: WireEnum>(d: D) -> Result<T, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    impl<T: WireEnum> serde::de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            T::ALL
                .iter()
                .copied()
                .find(|x| x.wire() == v)
                .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_str(V(std::marker::PhantomData))
}

macro_rules! wire_enum {
    ($t:ty, $expecting:literal, [$($v:expr),+ $(,)?]) => {
        impl WireEnum for $t {
            const ALL: &'static [Self] = &[$($v),+];
            const EXPECTING: &'static str = $expecting;
            fn wire(self) -> &'static str {
                self.as_str()
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_wire(d)
            }
        }
    };
}

wire_enum!(
    Sex,
    "one of `female`, `male`, `other`, `unknown`",
    [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown]
);
wire_enum!(
    CkdStage,
    "one of `1`, `2`, `3a`, `3b`, `4`, `5`",
    [
        CkdStage::G1,
        CkdStage::G2,
        CkdStage::G3a,
        CkdStage::G3b,
        CkdStage::G4,
        CkdStage::G5
    ]
);
wire_enum!(
    Discontinuation,
    "one of `abrupt`, `taper`",
    [Discontinuation::Abrupt, Discontinuation::Taper]
);

/// A string member that may be absent but, as the schema says, never `null`.
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// A comedication: free text as an EHR exports it, or a coded entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Medication {
    /// Free text, e.g. `oxyCODONE HCl 5 MG Oral Tablet`.
    Text(String),
    /// A coded entry with at least one of its members.
    Coded(CodedMedication),
}

// Written by hand rather than `#[serde(untagged)]`, which buffers every entry before trying each
// variant: this is on the hot path of every record.
impl<'de> Deserialize<'de> for Medication {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Medication;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an object with `name`, `rxnorm` or `atc`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Medication, E> {
                Ok(Medication::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Medication, E> {
                Ok(Medication::Text(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Medication, A::Error> {
                CodedMedication::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Medication::Coded)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A coded comedication.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodedMedication {
    /// Display name or free text.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// RxNorm CUI (ingredient or product).
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub rxnorm: Option<String>,
    /// WHO ATC code or group.
    #[serde(
        default,
        deserialize_with = "present_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub atc: Option<String>,
}

/// `^[0-9]{1,10}$`, as in the schema.
fn is_rxnorm(s: &str) -> bool {
    (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$`, as in the schema: a WHO ATC code or group.
pub fn is_atc(s: &str) -> bool {
    let b = s.as_bytes();
    let upper = |i: usize| b.get(i).is_some_and(u8::is_ascii_uppercase);
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    match b.len() {
        1 => upper(0),
        3 => upper(0) && digit(1) && digit(2),
        4 => upper(0) && digit(1) && digit(2) && upper(3),
        5 => upper(0) && digit(1) && digit(2) && upper(3) && upper(4),
        7 => upper(0) && digit(1) && digit(2) && upper(3) && upper(4) && digit(5) && digit(6),
        _ => false,
    }
}

/// JSON Schema's `integer` accepts `65.0`; so must the typed model, or the two would disagree.
fn integral_age<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let n = f64::deserialize(deserializer)?;
    if n.fract() == 0.0 && (0.0..=130.0).contains(&n) {
        // Checked above: integral and within 0..=130, so the cast is exact.
        Ok(n as u8)
    } else {
        Err(serde::de::Error::custom(
            "age must be an integer from 0 to 130",
        ))
    }
}

/// A scalar fact a rule can test, named as in the schema.
///
/// `comedications` is a field too, so that rules can ask whether it is known; the medication tests read
/// it through the vocabulary instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Field {
    Id,
    Age,
    Sex,
    Pregnant,
    Breastfeeding,
    SeizureHistory,
    KidneyDisease,
    Dialysis,
    CkdStage,
    Egfr,
    StrokeHistory,
    ReliesOnSpasticity,
    LiverDisease,
    HeartDisease,
    Diabetes,
    PsychiatricDisorder,
    AlcoholUse,
    OperatesMachinery,
    AutonomicDysreflexia,
    RespiratoryImpairment,
    Indication,
    BaclofenDailyDoseMg,
    Discontinuation,
    Comedications,
}

/// A fact's value as rules see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fact<'a> {
    /// A boolean fact.
    Bool(bool),
    /// A number (integers included).
    Num(f64),
    /// A string or enumerated value.
    Str(&'a str),
    /// A list, known (possibly empty); only `comedications`.
    List(usize),
}

impl Field {
    /// Every field, in schema order.
    pub const ALL: [Field; 24] = [
        Field::Id,
        Field::Age,
        Field::Sex,
        Field::Pregnant,
        Field::Breastfeeding,
        Field::SeizureHistory,
        Field::KidneyDisease,
        Field::Dialysis,
        Field::CkdStage,
        Field::Egfr,
        Field::StrokeHistory,
        Field::ReliesOnSpasticity,
        Field::LiverDisease,
        Field::HeartDisease,
        Field::Diabetes,
        Field::PsychiatricDisorder,
        Field::AlcoholUse,
        Field::OperatesMachinery,
        Field::AutonomicDysreflexia,
        Field::RespiratoryImpairment,
        Field::Indication,
        Field::BaclofenDailyDoseMg,
        Field::Discontinuation,
        Field::Comedications,
    ];

    /// The field's name in the schema and in rules.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Age => "age",
            Field::Sex => "sex",
            Field::Pregnant => "pregnant",
            Field::Breastfeeding => "breastfeeding",
            Field::SeizureHistory => "seizure_history",
            Field::KidneyDisease => "kidney_disease",
            Field::Dialysis => "dialysis",
            Field::CkdStage => "ckd_stage",
            Field::Egfr => "egfr",
            Field::StrokeHistory => "stroke_history",
            Field::ReliesOnSpasticity => "relies_on_spasticity",
            Field::LiverDisease => "liver_disease",
            Field::HeartDisease => "heart_disease",
            Field::Diabetes => "diabetes",
            Field::PsychiatricDisorder => "psychiatric_disorder",
            Field::AlcoholUse => "alcohol_use",
            Field::OperatesMachinery => "operates_machinery",
            Field::AutonomicDysreflexia => "autonomic_dysreflexia",
            Field::RespiratoryImpairment => "respiratory_impairment",
            Field::Indication => "indication",
            Field::BaclofenDailyDoseMg => "baclofen_daily_dose_mg",
            Field::Discontinuation => "discontinuation",
            Field::Comedications => "comedications",
        }
    }

    /// The field's JSON Pointer in a profile.
    pub fn pointer(self) -> &'static str {
        match self {
            Field::Id => "/id",
            Field::Age => "/age",
            Field::Sex => "/sex",
            Field::Pregnant => "/pregnant",
            Field::Breastfeeding => "/breastfeeding",
            Field::SeizureHistory => "/seizure_history",
            Field::KidneyDisease => "/kidney_disease",
            Field::Dialysis => "/dialysis",
            Field::CkdStage => "/ckd_stage",
            Field::Egfr => "/egfr",
            Field::StrokeHistory => "/stroke_history",
            Field::ReliesOnSpasticity => "/relies_on_spasticity",
            Field::LiverDisease => "/liver_disease",
            Field::HeartDisease => "/heart_disease",
            Field::Diabetes => "/diabetes",
            Field::PsychiatricDisorder => "/psychiatric_disorder",
            Field::AlcoholUse => "/alcohol_use",
            Field::OperatesMachinery => "/operates_machinery",
            Field::AutonomicDysreflexia => "/autonomic_dysreflexia",
            Field::RespiratoryImpairment => "/respiratory_impairment",
            Field::Indication => "/indication",
            Field::BaclofenDailyDoseMg => "/baclofen_daily_dose_mg",
            Field::Discontinuation => "/discontinuation",
            Field::Comedications => "/comedications",
        }
    }

    /// The field named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl Profile {
    /// Whether the profile meets every constraint of the profile schema that its types do not already
    /// enforce (lengths, ranges, patterns, counts). Together with deserialisation (which enforces types,
    /// enumerations, unknown and duplicate fields), this decides validity without the schema validator;
    /// a differential test keeps the two in agreement.
    pub fn meets_schema_constraints(&self) -> bool {
        let len_ok = |s: &str, min: usize, max: usize| {
            // JSON Schema lengths count code points; bytes bound them from above.
            s.len() >= min && (s.len() <= max || (min..=max).contains(&s.chars().count()))
        };
        let range_ok = |v: Option<f64>, max: f64| v.is_none_or(|x| (0.0..=max).contains(&x));
        len_ok(&self.id, 1, 128)
            && self.age <= 130
            && range_ok(self.egfr, 200.0)
            && range_ok(self.baclofen_daily_dose_mg, 1000.0)
            && self
                .indication
                .as_deref()
                .is_none_or(|s| len_ok(s, 0, 1000))
            && self.comedications.as_deref().is_none_or(|meds| {
                meds.len() <= 200
                    && meds.iter().all(|m| match m {
                        Medication::Text(t) => len_ok(t, 1, 500),
                        Medication::Coded(c) => {
                            (c.name.is_some() || c.rxnorm.is_some() || c.atc.is_some())
                                && c.name.as_deref().is_none_or(|n| len_ok(n, 1, 500))
                                && c.rxnorm.as_deref().is_none_or(is_rxnorm)
                                && c.atc.as_deref().is_none_or(is_atc)
                        }
                    })
            })
    }

    /// The value of `field`, or `None` when it is unknown (absent or null).
    #[inline]
    pub fn fact(&self, field: Field) -> Option<Fact<'_>> {
        match field {
            Field::Id => Some(Fact::Str(&self.id)),
            Field::Age => Some(Fact::Num(f64::from(self.age))),
            Field::Sex => self.sex.map(|s| Fact::Str(s.as_str())),
            Field::Pregnant => self.pregnant.map(Fact::Bool),
            Field::Breastfeeding => self.breastfeeding.map(Fact::Bool),
            Field::SeizureHistory => self.seizure_history.map(Fact::Bool),
            Field::KidneyDisease => self.kidney_disease.map(Fact::Bool),
            Field::Dialysis => self.dialysis.map(Fact::Bool),
            Field::CkdStage => self.ckd_stage.map(|s| Fact::Str(s.as_str())),
            Field::Egfr => self.egfr.map(Fact::Num),
            Field::StrokeHistory => self.stroke_history.map(Fact::Bool),
            Field::ReliesOnSpasticity => self.relies_on_spasticity.map(Fact::Bool),
            Field::LiverDisease => self.liver_disease.map(Fact::Bool),
            Field::HeartDisease => self.heart_disease.map(Fact::Bool),
            Field::Diabetes => self.diabetes.map(Fact::Bool),
            Field::PsychiatricDisorder => self.psychiatric_disorder.map(Fact::Bool),
            Field::AlcoholUse => self.alcohol_use.map(Fact::Bool),
            Field::OperatesMachinery => self.operates_machinery.map(Fact::Bool),
            Field::AutonomicDysreflexia => self.autonomic_dysreflexia.map(Fact::Bool),
            Field::RespiratoryImpairment => self.respiratory_impairment.map(Fact::Bool),
            Field::Indication => self.indication.as_deref().map(Fact::Str),
            Field::BaclofenDailyDoseMg => self.baclofen_daily_dose_mg.map(Fact::Num),
            Field::Discontinuation => self.discontinuation.map(|d| Fact::Str(d.as_str())),
            Field::Comedications => self.comedications.as_ref().map(|m| Fact::List(m.len())),
        }
    }
}
