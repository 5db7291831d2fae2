//! One FHIR `Bundle` (transaction, collection, searchset, or a batch-response holding Bundles) to the
//! facts of each Patient in it.
//!
//! A Bundle is read as the whole record of its patients: resources are attributed to a Patient of the
//! same Bundle through `subject` (or `patient`), written as the entry's `fullUrl` (`urn:uuid:...`), as
//! `Patient/123`, or as an absolute URL ending in `Patient/123`. A resource we read whose subject does not
//! resolve is a broken reference, and since it could belong to any patient of the Bundle, each of them
//! gets the error rather than a screening that might be missing a fact.
//!
//! A directory of single resources (`Patient.json`, `Condition.json`...) and a lone resource file are
//! read the same way, as one group whose resources each name their own file ([`read_resources`]).
//!
//! [`walk`] is the one Bundle walk: it opens Bundles (nested ones too), arrays and the old
//! `{"resource": ...}` wrapping, and says what it could not read as a [`Gap`] with its JSON Pointer.
//! Readers differ in what a gap means (a Bundle file ignores a response entry with no `resource`; a
//! CDS Hooks prefetch counts it as a list that is not whole), so each one words its own problems.

use std::collections::HashMap;

use serde_json::Value;

use super::mapping::{FhirProblem, Loc, Mapper, MedInfo, PatientFacts, med_info, resource_name};
use super::resource_types::{is_patient_record, is_resource_type};

/// What a Bundle gave: its patients, or problems that belong to no patient.
#[derive(Debug, Default)]
pub struct BundleFacts {
    /// One per Patient, in entry order.
    pub patients: Vec<PatientFacts>,
    /// Problems with the Bundle itself (not a Bundle, no Patient...).
    pub problems: Vec<FhirProblem>,
}

/// `Type/id` for `Patient/1`, `http://x/fhir/Patient/1/_history/2`; `urn:...` unchanged.
pub fn reference_key(reference: &str) -> String {
    if reference.starts_with("urn:") {
        return reference.to_owned();
    }
    let path = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = path.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(t)) if !t.is_empty() && !id.is_empty() => format!("{t}/{id}"),
        _ => path.to_owned(),
    }
}

/// The subject reference of a clinical resource: `Ok(None)` when it has none.
pub fn subject_reference(r: &Value) -> Result<Option<&str>, (&'static str, String)> {
    let Some(s) = r.get("subject").or_else(|| r.get("patient")) else {
        return Ok(None);
    };
    match s.get("reference") {
        Some(Value::String(x)) => Ok(Some(x)),
        Some(_) => Err((
            "/subject/reference",
            "`subject.reference` is not a string".into(),
        )),
        None if s.is_object() => Ok(None),
        None => Err(("/subject", "`subject` is not an object".into())),
    }
}

/// One resource found by [`walk`].
#[derive(Debug)]
pub struct Found<'a> {
    /// Its `resourceType`, a FHIR resource type.
    pub kind: &'a str,
    /// JSON Pointer of the resource (`/entry/3/resource`).
    pub pointer: String,
    /// The entry's `fullUrl`, when it is a string.
    pub full_url: Option<&'a str>,
    /// The resource.
    pub resource: &'a Value,
}

/// What [`walk`] could not read. The pointer given with it is that of the Bundle
/// ([`Gap::EntryNotArray`]), of the entry ([`Gap::EntryNotObject`], [`Gap::FullUrlNotString`]) or of
/// the value that should have been a resource (all others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gap {
    /// A Bundle's `entry` is not an array.
    EntryNotArray,
    /// A Bundle entry is not an object.
    EntryNotObject,
    /// A Bundle entry has no `resource` (as in a batch response).
    NoResource,
    /// An entry's `resource` is not an object.
    ResourceNotObject,
    /// A value where a resource is expected is not an object (nor an array or `null`).
    NotAnObject,
    /// An object with no `resourceType`; `in_entry` when it is an entry's `resource`.
    NoResourceType {
        /// An entry's resource, not a value given by itself.
        in_entry: bool,
    },
    /// `resourceType` is not a string.
    ResourceTypeNotString {
        /// An entry's resource, not a value given by itself.
        in_entry: bool,
    },
    /// `resourceType` is not a FHIR resource type (`"MedicationReqest"`).
    UnknownResourceType {
        /// An entry's resource, not a value given by itself.
        in_entry: bool,
    },
    /// An entry's `fullUrl` is not a string (the resource is still read, without it).
    FullUrlNotString,
    /// Bundles, arrays and wrappings nested deeper than we open.
    TooDeep,
}

/// How deep [`walk`] opens Bundles, arrays and wrappings inside each other.
const MAX_NESTING: usize = 4;

/// Every resource in `value` (a Bundle, a resource, an array of them, `null`, or the old
/// `{"response": ..., "resource": ...}` wrapping of one), in document order, nested Bundles opened,
/// with `pointer` as the JSON Pointer of `value`; what cannot be read goes to `gaps`.
pub fn walk<'a>(
    value: &'a Value,
    pointer: &str,
    found: &mut Vec<Found<'a>>,
    gaps: &mut Vec<(String, Gap)>,
) {
    Walker { found, gaps }.value(value, pointer, 0);
}

/// Where [`walk`] puts what it finds.
struct Walker<'a, 'w> {
    found: &'w mut Vec<Found<'a>>,
    gaps: &'w mut Vec<(String, Gap)>,
}

impl<'a> Walker<'a, '_> {
    fn gap(&mut self, at: &str, gap: Gap) {
        self.gaps.push((at.to_owned(), gap));
    }

    fn value(&mut self, value: &'a Value, pointer: &str, depth: usize) {
        if depth > MAX_NESTING {
            return self.gap(pointer, Gap::TooDeep);
        }
        let o = match value {
            Value::Null => return,
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(v, &format!("{pointer}/{i}"), depth + 1);
                }
                return;
            }
            Value::Object(o) => o,
            _ => return self.gap(pointer, Gap::NotAnObject),
        };
        match o.get("resourceType") {
            Some(Value::String(t)) if t == "Bundle" => match o.get("entry") {
                // A searchset with no `entry` is an empty list.
                None => {}
                Some(Value::Array(entries)) => {
                    for (i, e) in entries.iter().enumerate() {
                        self.entry(e, &format!("{pointer}/entry/{i}"), depth);
                    }
                }
                Some(_) => self.gap(pointer, Gap::EntryNotArray),
            },
            Some(Value::String(kind)) if is_resource_type(kind) => self.found.push(Found {
                kind,
                pointer: pointer.to_owned(),
                full_url: None,
                resource: value,
            }),
            Some(Value::String(_)) => {
                self.gap(pointer, Gap::UnknownResourceType { in_entry: false })
            }
            Some(_) => self.gap(pointer, Gap::ResourceTypeNotString { in_entry: false }),
            None => match o.get("resource") {
                Some(r) => self.value(r, &format!("{pointer}/resource"), depth + 1),
                None => self.gap(pointer, Gap::NoResourceType { in_entry: false }),
            },
        }
    }

    /// One Bundle entry at `at`, in a Bundle at `depth`.
    fn entry(&mut self, e: &'a Value, at: &str, depth: usize) {
        let Some(eo) = e.as_object() else {
            return self.gap(at, Gap::EntryNotObject);
        };
        let rp = format!("{at}/resource");
        let r = match eo.get("resource") {
            Some(r @ Value::Object(_)) => r,
            Some(_) => return self.gap(&rp, Gap::ResourceNotObject),
            None => return self.gap(&rp, Gap::NoResource),
        };
        let kind = match r.get("resourceType") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => return self.gap(&rp, Gap::ResourceTypeNotString { in_entry: true }),
            None => return self.gap(&rp, Gap::NoResourceType { in_entry: true }),
        };
        let full_url = match eo.get("fullUrl") {
            Some(Value::String(u)) => Some(u.as_str()),
            Some(_) => {
                self.gap(at, Gap::FullUrlNotString);
                None
            }
            None => None,
        };
        if kind == "Bundle" {
            self.value(r, &rp, depth + 1);
        } else if is_resource_type(kind) {
            self.found.push(Found {
                kind,
                pointer: rp,
                full_url,
                resource: r,
            });
        } else {
            self.gap(&rp, Gap::UnknownResourceType { in_entry: true });
        }
    }
}

/// Read one Bundle.
pub fn read_bundle(mapper: &Mapper<'_>, bundle: &Value, input: &str, line: u64) -> BundleFacts {
    let mut out = BundleFacts::default();
    let top = Loc {
        input,
        line,
        base: String::new(),
    };
    let problem = |code, rel: &str, message: String| top.problem(code, rel, None, message);
    if !bundle.is_object() {
        out.problems.push(problem(
            "not_a_bundle",
            "",
            "the document is not a JSON object, so not a FHIR Bundle".into(),
        ));
        return out;
    }
    match bundle.get("resourceType") {
        None => {
            out.problems.push(problem(
                "missing_resource_type",
                "/resourceType",
                "the document has no `resourceType`; expected a FHIR `Bundle`".into(),
            ));
            return out;
        }
        Some(Value::String(t)) if t == "Bundle" => {}
        Some(Value::String(t)) => {
            out.problems.push(problem(
                "not_a_bundle",
                "/resourceType",
                format!("the document is a `{t}`, not a `Bundle`"),
            ));
            return out;
        }
        Some(_) => {
            out.problems.push(problem(
                "type_mismatch",
                "/resourceType",
                "`resourceType` is not a string".into(),
            ));
            return out;
        }
    }
    let mut found = Vec::new();
    let mut gaps = Vec::new();
    walk(bundle, "", &mut found, &mut gaps);
    // What a Bundle file may hold without losing a resource we read (a response entry without a
    // resource, a type we do not read, a misspelt type) is not a problem of the file.
    let problems = gaps.into_iter().filter_map(|(at, gap)| {
        let (code, rel, message) = match gap {
            Gap::EntryNotArray => ("type_mismatch", "/entry", "`entry` is not an array"),
            Gap::ResourceNotObject => ("type_mismatch", "", "`resource` is not an object"),
            Gap::ResourceTypeNotString { .. } => (
                "type_mismatch",
                "/resourceType",
                "`resourceType` is not a string",
            ),
            Gap::NoResourceType { .. } => (
                "missing_resource_type",
                "",
                "an entry's resource has no `resourceType`",
            ),
            Gap::FullUrlNotString => ("type_mismatch", "/fullUrl", "`fullUrl` is not a string"),
            _ => return None,
        };
        Some(top.problem(code, &format!("{at}{rel}"), None, message.into()))
    });
    let problems: Vec<FhirProblem> = problems.collect();
    let entries: Vec<Entry<'_>> = found
        .into_iter()
        .map(|found| Entry { input, line, found })
        .collect();
    attribute(mapper, &entries, &top, problems, Scope::Bundle)
}

/// Read one document: a Bundle, or a single resource (a lone Patient is screened with nothing else;
/// any other lone resource is a `no_patient` problem). Anything else is the problem [`read_bundle`]
/// names (`not_a_bundle`, `missing_resource_type`...).
pub fn read_document(mapper: &Mapper<'_>, doc: &Value, input: &str, line: u64) -> BundleFacts {
    match doc.get("resourceType").and_then(Value::as_str) {
        Some(t) if t != "Bundle" && is_resource_type(t) => {
            read_resources(mapper, &[(input, line, doc)], (input, line))
        }
        _ => read_bundle(mapper, doc, input, line),
    }
}

/// Read single resources as one group, as the entries of a Bundle are read: each `(file, line,
/// resource)` names where it came from, and resources are attributed to the group's Patients by
/// reference. `group` (file or directory, line) names the group as a whole in problems that belong to
/// no resource. Each resource has a string `resourceType` (the caller has checked it: a document
/// without one is not a resource, and the caller reports it).
pub fn read_resources(
    mapper: &Mapper<'_>,
    resources: &[(&str, u64, &Value)],
    group: (&str, u64),
) -> BundleFacts {
    let top = Loc {
        input: group.0,
        line: group.1,
        base: String::new(),
    };
    let entries: Vec<Entry<'_>> = resources
        .iter()
        .filter_map(|&(input, line, resource)| {
            let kind = resource.get("resourceType")?.as_str()?;
            Some(Entry {
                input,
                line,
                found: Found {
                    kind,
                    pointer: String::new(),
                    full_url: None,
                    resource,
                },
            })
        })
        .collect();
    let scope = if resources.len() == 1 {
        Scope::Lone
    } else {
        Scope::Files
    };
    attribute(mapper, &entries, &top, Vec::new(), scope)
}

/// What a group of resources is, for the words of its problems.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The entries of one Bundle.
    Bundle,
    /// Single resources of a directory.
    Files,
    /// One resource file by itself.
    Lone,
}

/// A resource and the file and line it was read from.
struct Entry<'a> {
    input: &'a str,
    line: u64,
    found: Found<'a>,
}

impl Entry<'_> {
    fn loc(&self) -> Loc<'_> {
        Loc {
            input: self.input,
            line: self.line,
            base: self.found.pointer.clone(),
        }
    }
}

/// The Patients of a group and what is attributed to each; `bundle_problems` are problems of the
/// group found before (they go to every patient, or stand alone when there is none).
#[expect(
    clippy::indexing_slicing,
    reason = "`patients` maps each key to the index its patient was pushed at"
)]
fn attribute(
    mapper: &Mapper<'_>,
    entries: &[Entry<'_>],
    top: &Loc<'_>,
    mut bundle_problems: Vec<FhirProblem>,
    scope: Scope,
) -> BundleFacts {
    let mut out = BundleFacts::default();
    // Patients and Medications first, so references can point forwards.
    let mut patients: HashMap<String, usize> = HashMap::new();
    let mut meds: HashMap<String, MedInfo> = HashMap::new();
    for e in entries {
        let (kind, resource) = (e.found.kind, e.found.resource);
        let name = resource_name(resource);
        let id = resource.get("id").and_then(Value::as_str);
        match kind {
            "Patient" => {
                let Some(id) = id.filter(|s| !s.is_empty()) else {
                    bundle_problems.push(e.loc().problem(
                        "missing_field",
                        "/id",
                        Some(name),
                        "a Patient has no `id`, so its result could not be named".into(),
                    ));
                    continue;
                };
                let idx = out.patients.len();
                let mut facts = PatientFacts::new(id, e.input, e.line);
                mapper.patient(resource, &e.loc(), &mut facts);
                out.patients.push(facts);
                for key in keys(e.found.full_url, "Patient", id) {
                    patients.insert(key, idx);
                }
            }
            "Medication" => {
                let Some(id) = id else { continue };
                let info = med_info(resource, &name);
                for key in keys(e.found.full_url, "Medication", id) {
                    meds.insert(key, info.clone());
                }
            }
            _ => {}
        }
    }
    let resolve = |reference: &str| meds.get(&reference_key(reference)).cloned();
    for e in entries {
        let (kind, resource) = (e.found.kind, e.found.resource);
        if !is_patient_record(kind) {
            continue;
        }
        let name = resource_name(resource);
        let loc = e.loc();
        let target = match subject_reference(resource) {
            Err((rel, message)) => {
                bundle_problems.push(loc.problem("type_mismatch", rel, Some(name), message));
                continue;
            }
            Ok(None) => {
                bundle_problems.push(loc.problem(
                    "missing_field",
                    "/subject",
                    Some(name),
                    format!("the {kind} has no `subject`"),
                ));
                continue;
            }
            Ok(Some(r)) => r,
        };
        let Some(&idx) = patients.get(&reference_key(target)) else {
            // A reference to something other than a Patient (a Group, a Location) is not ours.
            if reference_key(target).starts_with("Patient/") || target.starts_with("urn:") {
                let within = match scope {
                    Scope::Bundle => "in this Bundle",
                    Scope::Files | Scope::Lone => "among the resources read with it",
                };
                bundle_problems.push(loc.problem(
                    "broken_reference",
                    "/subject/reference",
                    Some(name),
                    format!("`subject` of the {kind} does not resolve to a Patient {within}"),
                ));
            }
            continue;
        };
        mapper.resource(resource, kind, &loc, &mut out.patients[idx], &resolve);
    }
    if out.patients.is_empty() {
        out.problems.extend(bundle_problems);
        let (rel, message) = match scope {
            Scope::Bundle => (
                "/entry",
                "the Bundle holds no Patient resource to screen".into(),
            ),
            Scope::Files => (
                "",
                "the directory's single resources hold no Patient resource to screen".into(),
            ),
            Scope::Lone => (
                "",
                format!(
                    "a single `{}` was read and no Patient to screen; give it with its Patient (in a Bundle, or in a directory of single resources)",
                    entries.first().map_or("resource", |e| e.found.kind)
                ),
            ),
        };
        out.problems
            .push(top.problem("no_patient", rel, None, message));
    } else if !bundle_problems.is_empty() {
        for p in &mut out.patients {
            p.problems.extend(bundle_problems.iter().cloned());
        }
    }
    out
}

fn keys(full_url: Option<&str>, kind: &str, id: &str) -> Vec<String> {
    let mut k = vec![format!("{kind}/{id}"), format!("urn:uuid:{id}")];
    if let Some(u) = full_url {
        k.push(reference_key(u));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::{Gap, reference_key, walk};

    #[test]
    fn the_walk_opens_nested_bundles_and_wrappings_and_names_every_gap() {
        let v = serde_json::json!([
            {"resourceType": "Bundle", "entry": [
                {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p"}},
                {"fullUrl": 7, "resource": {"resourceType": "Bundle", "entry": [
                    {"resource": {"resourceType": "Condition", "id": "c"}}]}},
                3,
                {"response": {}},
                {"resource": []},
                {"resource": {"resourceType": "MedicationReqest"}},
                {"resource": {"resourceType": 1}},
                {"resource": {"id": "x"}}]},
            {"resource": {"resourceType": "Observation", "id": "o"}},
            {"resourceType": "Bundle", "entry": {}},
            {"resourceType": "Bundel"},
            {"resourceType": false},
            {"id": "x"},
            "text",
            null,
            [[[[{"resourceType": "Patient", "id": "deep"}]]]]
        ]);
        let (mut found, mut gaps) = (Vec::new(), Vec::new());
        walk(&v, "/x", &mut found, &mut gaps);
        let found: Vec<(&str, &str, Option<&str>)> = found
            .iter()
            .map(|f| (f.kind, f.pointer.as_str(), f.full_url))
            .collect();
        assert_eq!(
            found,
            [
                ("Patient", "/x/0/entry/0/resource", Some("urn:uuid:p")),
                ("Condition", "/x/0/entry/1/resource/entry/0/resource", None),
                ("Observation", "/x/1/resource", None),
            ]
        );
        let gaps: Vec<(&str, Gap)> = gaps.iter().map(|(p, g)| (p.as_str(), *g)).collect();
        assert_eq!(
            gaps,
            [
                ("/x/0/entry/1", Gap::FullUrlNotString),
                ("/x/0/entry/2", Gap::EntryNotObject),
                ("/x/0/entry/3/resource", Gap::NoResource),
                ("/x/0/entry/4/resource", Gap::ResourceNotObject),
                (
                    "/x/0/entry/5/resource",
                    Gap::UnknownResourceType { in_entry: true }
                ),
                (
                    "/x/0/entry/6/resource",
                    Gap::ResourceTypeNotString { in_entry: true }
                ),
                (
                    "/x/0/entry/7/resource",
                    Gap::NoResourceType { in_entry: true }
                ),
                ("/x/2", Gap::EntryNotArray),
                ("/x/3", Gap::UnknownResourceType { in_entry: false }),
                ("/x/4", Gap::ResourceTypeNotString { in_entry: false }),
                ("/x/5", Gap::NoResourceType { in_entry: false }),
                ("/x/6", Gap::NotAnObject),
                ("/x/8/0/0/0/0", Gap::TooDeep),
            ]
        );
    }

    #[test]
    fn reference_forms() {
        assert_eq!(reference_key("Patient/123"), "Patient/123");
        assert_eq!(reference_key("urn:uuid:abc-1"), "urn:uuid:abc-1");
        assert_eq!(
            reference_key("http://example.org/fhir/Patient/123/_history/2"),
            "Patient/123"
        );
        assert_eq!(reference_key("https://x/Patient/9"), "Patient/9");
    }
}
