//! One FHIR `Bundle` (transaction, collection, searchset, or a batch-response holding Bundles) to the
//! facts of each Patient in it.
//!
//! A Bundle is read as the whole record of its patients: resources are attributed to a Patient of the
//! same Bundle through `subject` (or `patient`), written as the entry's `fullUrl` (`urn:uuid:...`), as
//! `Patient/123`, or as an absolute URL ending in `Patient/123`. A resource we read whose subject does not
//! resolve is a broken reference, and since it could belong to any patient of the Bundle, each of them
//! gets the error rather than a screening that might be missing a fact.

use std::collections::HashMap;

use serde_json::Value;

use super::mapping::{FhirProblem, Loc, Mapper, MedInfo, PatientFacts, med_info, resource_name};

/// What a Bundle gave: its patients, or problems that belong to no patient.
#[derive(Debug, Default)]
pub struct BundleFacts {
    /// One per Patient, in entry order.
    pub patients: Vec<PatientFacts>,
    /// Problems with the Bundle itself (not a Bundle, no Patient...).
    pub problems: Vec<FhirProblem>,
}

/// The resource types whose content we read.
pub const READ_TYPES: [&str; 6] = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Medication",
];

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
    let mut entries = Vec::new();
    let mut bundle_problems = Vec::new();
    flatten(bundle, "", &top, &mut entries, &mut bundle_problems, 0);

    // Patients and Medications first, so references can point forwards.
    let mut patients: HashMap<String, usize> = HashMap::new();
    let mut meds: HashMap<String, MedInfo> = HashMap::new();
    for e in &entries {
        let name = resource_name(e.resource);
        let id = e.resource.get("id").and_then(Value::as_str);
        match e.kind {
            "Patient" => {
                let Some(id) = id.filter(|s| !s.is_empty()) else {
                    bundle_problems.push(top.problem(
                        "missing_field",
                        &format!("{}/id", e.base),
                        Some(name),
                        "a Patient has no `id`, so its result could not be named".into(),
                    ));
                    continue;
                };
                let idx = out.patients.len();
                let loc = Loc {
                    input,
                    line,
                    base: e.base.clone(),
                };
                let mut facts = PatientFacts::new(id, input, line);
                mapper.patient(e.resource, &loc, &mut facts);
                out.patients.push(facts);
                for key in keys(e.full_url, "Patient", id) {
                    patients.insert(key, idx);
                }
            }
            "Medication" => {
                let Some(id) = id else { continue };
                let info = med_info(e.resource, &name);
                for key in keys(e.full_url, "Medication", id) {
                    meds.insert(key, info.clone());
                }
            }
            _ => {}
        }
    }
    let resolve = |reference: &str| meds.get(&reference_key(reference)).cloned();
    for e in &entries {
        if !matches!(
            e.kind,
            "Condition" | "Observation" | "MedicationRequest" | "MedicationStatement"
        ) {
            continue;
        }
        let name = resource_name(e.resource);
        let target = match subject_reference(e.resource) {
            Err((rel, message)) => {
                bundle_problems.push(top.problem(
                    "type_mismatch",
                    &format!("{}{rel}", e.base),
                    Some(name),
                    message,
                ));
                continue;
            }
            Ok(None) => {
                bundle_problems.push(top.problem(
                    "missing_field",
                    &format!("{}/subject", e.base),
                    Some(name),
                    format!("the {} has no `subject`", e.kind),
                ));
                continue;
            }
            Ok(Some(r)) => r,
        };
        let Some(&idx) = patients.get(&reference_key(target)) else {
            // A reference to something other than a Patient (a Group, a Location) is not ours.
            if reference_key(target).starts_with("Patient/") || target.starts_with("urn:") {
                bundle_problems.push(top.problem(
                    "broken_reference",
                    &format!("{}/subject/reference", e.base),
                    Some(name),
                    format!(
                        "`subject` of the {} does not resolve to a Patient in this Bundle",
                        e.kind
                    ),
                ));
            }
            continue;
        };
        let loc = Loc {
            input,
            line,
            base: e.base.clone(),
        };
        mapper.resource(e.resource, e.kind, &loc, &mut out.patients[idx], &resolve);
    }
    if out.patients.is_empty() {
        out.problems.extend(bundle_problems);
        out.problems.push(problem(
            "no_patient",
            "/entry",
            "the Bundle holds no Patient resource to screen".into(),
        ));
    } else if !bundle_problems.is_empty() {
        for p in &mut out.patients {
            p.problems.extend(bundle_problems.iter().cloned());
        }
    }
    out
}

struct Entry<'a> {
    base: String,
    full_url: Option<&'a str>,
    kind: &'a str,
    resource: &'a Value,
}

const MAX_NESTING: usize = 4;

fn flatten<'a>(
    bundle: &'a Value,
    base: &str,
    top: &Loc<'_>,
    out: &mut Vec<Entry<'a>>,
    problems: &mut Vec<FhirProblem>,
    depth: usize,
) {
    let Some(entry) = bundle.get("entry") else {
        return;
    };
    let Some(list) = entry.as_array() else {
        problems.push(top.problem(
            "type_mismatch",
            &format!("{base}/entry"),
            None,
            "`entry` is not an array".into(),
        ));
        return;
    };
    for (i, e) in list.iter().enumerate() {
        let at = format!("{base}/entry/{i}");
        let Some(resource) = e.get("resource") else {
            continue; // A response entry without a resource.
        };
        if !resource.is_object() {
            problems.push(top.problem(
                "type_mismatch",
                &format!("{at}/resource"),
                None,
                "`resource` is not an object".into(),
            ));
            continue;
        }
        let kind = match resource.get("resourceType") {
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                problems.push(top.problem(
                    "type_mismatch",
                    &format!("{at}/resource/resourceType"),
                    None,
                    "`resourceType` is not a string".into(),
                ));
                continue;
            }
            None => {
                problems.push(top.problem(
                    "missing_resource_type",
                    &format!("{at}/resource"),
                    None,
                    "an entry's resource has no `resourceType`".into(),
                ));
                continue;
            }
        };
        let full_url = match e.get("fullUrl") {
            Some(Value::String(u)) => Some(u.as_str()),
            Some(_) => {
                problems.push(top.problem(
                    "type_mismatch",
                    &format!("{at}/fullUrl"),
                    None,
                    "`fullUrl` is not a string".into(),
                ));
                None
            }
            None => None,
        };
        if kind == "Bundle" {
            if depth < MAX_NESTING {
                flatten(
                    resource,
                    &format!("{at}/resource"),
                    top,
                    out,
                    problems,
                    depth + 1,
                );
            }
            continue;
        }
        out.push(Entry {
            base: format!("{at}/resource"),
            full_url,
            kind,
            resource,
        });
    }
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
    use super::reference_key;

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
