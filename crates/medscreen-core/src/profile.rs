//! The typed patient profile that rules read.
//!
//! The accepted profile schema (the shared `schemas/profile.schema.json` plus every pack's declared
//! facts, see [`crate::facts`]) is the contract for input; this module is its typed mirror. `id`, `age`
//! and `comedications` are typed members; every declared fact has a slot, read by a deserializer
//! compiled from the declarations ([`FactTable::parse_fast`]), so no fact is written here by hand. A
//! slot that is [`FactValue::Unknown`] means *unknown*, never "no", which is what lets the evaluator
//! tell "could not evaluate" apart from "does not apply". A differential test checks that this reader
//! and the schema validator agree on every declared fact.

use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::facts::{FactKind, FactTable};
pub use crate::facts::{FactType, Field};

/// One patient's facts, as validated against the accepted profile schema.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Record identifier, echoed in every result.
    pub id: String,
    /// Age in completed years (0..=130).
    pub age: u8,
    /// Other medications; `Some(vec![])` means "known: none", `None` means unknown.
    pub comedications: Option<Vec<Medication>>,
    /// One value per declared fact, in the table's slot order.
    values: Box<[FactValue]>,
    /// The layout the values follow.
    facts: Arc<FactTable>,
}

impl PartialEq for Profile {
    fn eq(&self, other: &Profile) -> bool {
        self.id == other.id
            && self.age == other.age
            && self.comedications == other.comedications
            && self.values == other.values
            && (Arc::ptr_eq(&self.facts, &other.facts) || self.facts.decls() == other.facts.decls())
    }
}

/// The value of one declared fact in a profile.
#[derive(Debug, Clone, PartialEq)]
pub enum FactValue {
    /// Absent or null.
    Unknown,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// An enumerated value, by its index in the declaration's options.
    Enum(u16),
    /// A free string.
    Text(Box<str>),
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
    /// The sex named `s` on the wire.
    pub fn from_wire(s: &str) -> Option<Sex> {
        [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

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

// From a JSON string only, as the value-set files write it (serde's derive would also accept the map
// form `{"3a": null}`).
impl<'de> Deserialize<'de> for CkdStage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CkdStage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one of `1`, `2`, `3a`, `3b`, `4`, `5`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CkdStage, E> {
                [
                    CkdStage::G1,
                    CkdStage::G2,
                    CkdStage::G3a,
                    CkdStage::G3b,
                    CkdStage::G4,
                    CkdStage::G5,
                ]
                .into_iter()
                .find(|x| x.as_str() == v)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(V)
    }
}

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

impl Profile {
    /// The value of `field`, or `None` when it is unknown (absent or null).
    #[inline]
    pub fn fact(&self, field: Field) -> Option<Fact<'_>> {
        match field {
            Field::Id => Some(Fact::Str(&self.id)),
            Field::Age => Some(Fact::Num(f64::from(self.age))),
            Field::Comedications => self.comedications.as_ref().map(|m| Fact::List(m.len())),
            Field::Slot(k) => match self.values.get(usize::from(k))? {
                FactValue::Unknown => None,
                FactValue::Bool(b) => Some(Fact::Bool(*b)),
                FactValue::Num(n) => Some(Fact::Num(*n)),
                FactValue::Text(t) => Some(Fact::Str(t)),
                FactValue::Enum(i) => match &self.facts.decl(k)?.kind {
                    FactKind::Enum(options) => options.get(usize::from(*i)).map(|o| Fact::Str(o)),
                    _ => None,
                },
            },
        }
    }

    /// The value of the fact named `name`, or `None` when it is unknown or the profile has no such
    /// fact.
    pub fn get(&self, name: &str) -> Option<Fact<'_>> {
        self.fact(self.facts.resolve(name)?)
    }

    /// Administrative sex, when recorded (a shared fact that reports break results down by).
    pub fn sex(&self) -> Option<Sex> {
        match self.get("sex")? {
            Fact::Str(s) => Sex::from_wire(s),
            _ => None,
        }
    }

    /// The facts this profile was read with.
    pub fn fact_table(&self) -> &Arc<FactTable> {
        &self.facts
    }

    /// The declared facts' values, in slot order.
    pub fn values(&self) -> &[FactValue] {
        &self.values
    }
}

/// The profile as JSON: `id`, `age`, every known fact in slot order, then `comedications` when known
/// (unknown facts are left out, as absent and null mean the same).
impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("age", &self.age)?;
        for (k, decl) in self.facts.decls().iter().enumerate() {
            let Ok(slot) = u16::try_from(k) else { break };
            match self.fact(Field::Slot(slot)) {
                Some(Fact::Bool(b)) => map.serialize_entry(&decl.name, &b)?,
                // An integer fact is written as one (`3`, not `3.0`), as it was read.
                Some(Fact::Num(n))
                    if matches!(
                        decl.kind,
                        crate::facts::FactKind::Number { integer: true, .. }
                    ) && n.fract() == 0.0
                        && n.abs() < 9_007_199_254_740_992.0 =>
                {
                    map.serialize_entry(&decl.name, &(n as i64))?
                }
                Some(Fact::Num(n)) => map.serialize_entry(&decl.name, &n)?,
                Some(Fact::Str(t)) => map.serialize_entry(&decl.name, t)?,
                Some(Fact::List(_)) | None => {}
            }
        }
        if let Some(meds) = &self.comedications {
            map.serialize_entry("comedications", meds)?;
        }
        map.end()
    }
}

/// Words of the bitmap of slots already read that live on the stack (256 slots); a table with more
/// facts tracks the rest in a vector.
const SEEN_WORDS: usize = 4;

impl FactTable {
    /// The cheap validity check: read `bytes` straight into a [`Profile`], checking every constraint
    /// of the declarations on the way (types, ranges, lengths, enumerations, unknown and duplicate
    /// members). `None` when the record is not a valid profile, for the schema validator to explain.
    pub fn parse_fast(self: &Arc<Self>, bytes: &[u8]) -> Option<Profile> {
        // serde's struct readers also accept an array; the schema wants an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let profile = ProfileSeed(self).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(profile)
    }

    /// Read a value the schema has accepted into a [`Profile`], with the same reader as
    /// [`FactTable::parse_fast`].
    pub fn profile_from_value(
        self: &Arc<Self>,
        value: &Value,
    ) -> Result<Profile, serde_json::Error> {
        ProfileSeed(self).deserialize(value)
    }
}

/// Reads one profile by the table's layout.
struct ProfileSeed<'t>(&'t Arc<FactTable>);

/// A member name, resolved.
enum Key {
    Known(Field),
    Unknown,
}

struct KeySeed<'t>(&'t FactTable);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(self.0.resolve(v).map_or(Key::Unknown, Key::Known))
    }
}

/// One slot's value, read and checked against its declaration.
struct SlotSeed<'t>(&'t FactKind);

impl<'de> DeserializeSeed<'de> for SlotSeed<'_> {
    type Value = FactValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FactValue, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for SlotSeed<'_> {
    type Value = FactValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value of the declared type, or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<FactValue, E> {
        Ok(FactValue::Unknown)
    }
    fn visit_unit<E: de::Error>(self) -> Result<FactValue, E> {
        Ok(FactValue::Unknown)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<FactValue, D::Error> {
        let kind = self.0;
        match kind {
            FactKind::Bool => bool::deserialize(d).map(FactValue::Bool),
            FactKind::Number { .. } => {
                let n = f64::deserialize(d)?;
                if kind.number_ok(n) {
                    Ok(FactValue::Num(n))
                } else {
                    Err(de::Error::custom("out of range"))
                }
            }
            FactKind::Enum(options) => d.deserialize_str(EnumVisitor(options)),
            FactKind::Text { .. } => {
                let s = String::deserialize(d)?;
                if kind.text_ok(&s) {
                    Ok(FactValue::Text(s.into_boxed_str()))
                } else {
                    Err(de::Error::custom("invalid length"))
                }
            }
        }
    }
}

/// An enumerated value: a JSON string only (never serde's map form), one of the options.
struct EnumVisitor<'t>(&'t [String]);

impl Visitor<'_> for EnumVisitor<'_> {
    type Value = FactValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one of the declared values")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<FactValue, E> {
        self.0
            .iter()
            .position(|o| o == v)
            .and_then(|i| u16::try_from(i).ok())
            .map(FactValue::Enum)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// `id`: a string of 1 to 128 characters, as in the schema.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let id = String::deserialize(d)?;
        let id_kind = FactKind::Text {
            min_len: Some(1),
            max_len: Some(128),
        };
        if id_kind.text_ok(&id) {
            Ok(id)
        } else {
            Err(de::Error::custom("id must have 1 to 128 characters"))
        }
    }
}

/// JSON Schema's `integer` accepts `65.0`; so must the typed model, or the two would disagree.
fn integral_age<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let n = f64::deserialize(deserializer)?;
    if n.fract() == 0.0 && (0.0..=130.0).contains(&n) {
        // Checked above: integral and within 0..=130, so the cast is exact.
        Ok(n as u8)
    } else {
        Err(de::Error::custom("age must be an integer from 0 to 130"))
    }
}

/// `comedications`: at most 200 entries, each within the schema's lengths and patterns.
fn comedications_ok(meds: &[Medication]) -> bool {
    let len_ok = |s: &str, min: u64, max: u64| {
        FactKind::Text {
            min_len: Some(min),
            max_len: Some(max),
        }
        .text_ok(s)
    };
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
}

struct Age;

impl<'de> DeserializeSeed<'de> for Age {
    type Value = u8;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u8, D::Error> {
        integral_age(d)
    }
}

impl<'de> DeserializeSeed<'de> for ProfileSeed<'_> {
    type Value = Profile;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Profile, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ProfileSeed<'_> {
    type Value = Profile;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a profile object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Profile, A::Error> {
        let table = self.0;
        let n = table.decls().len();
        let mut values = vec![FactValue::Unknown; n].into_boxed_slice();
        let (mut id, mut age, mut comedications) = (None, None, None::<Option<Vec<Medication>>>);
        // One bit per slot, to refuse a member given twice (JSON would keep only one of them).
        let mut seen = [0u64; SEEN_WORDS];
        let mut seen_more = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed(table))? {
            let field = match key {
                Key::Known(f) => f,
                Key::Unknown => return Err(de::Error::custom("unknown field")),
            };
            match field {
                Field::Id if id.is_none() => id = Some(map.next_value_seed(IdSeed)?),
                Field::Age if age.is_none() => age = Some(map.next_value_seed(Age)?),
                Field::Comedications if comedications.is_none() => {
                    let meds: Option<Vec<Medication>> = map.next_value()?;
                    if meds.as_deref().is_some_and(|m| !comedications_ok(m)) {
                        return Err(de::Error::custom("invalid comedications"));
                    }
                    comedications = Some(meds);
                }
                Field::Slot(k) => {
                    let k = usize::from(k);
                    let (word, bit) = (k / 64, 1u64 << (k % 64));
                    let fresh = match seen.get_mut(word) {
                        Some(w) => std::mem::replace(w, *w | bit) & bit == 0,
                        None if seen_more.contains(&k) => false,
                        None => {
                            seen_more.push(k);
                            true
                        }
                    };
                    let (Some(slot), Some(decl), true) =
                        (values.get_mut(k), table.decls().get(k), fresh)
                    else {
                        return Err(de::Error::custom("duplicate field"));
                    };
                    *slot = map.next_value_seed(SlotSeed(&decl.kind))?;
                }
                _ => return Err(de::Error::custom("duplicate field")),
            }
        }
        let (Some(id), Some(age)) = (id, age) else {
            return Err(de::Error::custom("missing `id` or `age`"));
        };
        Ok(Profile {
            id,
            age,
            comedications: comedications.flatten(),
            values,
            facts: Arc::clone(table),
        })
    }
}
