//! What each FHIR input is: a Bundle file, a single resource, NDJSON of Bundles, or a file we do not
//! read, gzipped or not.
//!
//! The name says how a file is framed (`.ndjson` and `.jsonl` are one document per line, `.json` one
//! document; a `.gz` after either is gzip), the content says what it holds: the `resourceType` of the
//! document, or of the first line of NDJSON. Gzip is recognised by its magic bytes, whatever the name,
//! by the same reader as native input ([`medscreen_core::input::Source::open`]), so a `.json.gz`
//! Bundle, an `.ndjson.gz` Bulk file and gzip on standard input are read like the plain ones. A Bulk
//! export directory is recognised by its file names ([`super::bulk::is_export`]).

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use medscreen_core::input::Source;

use serde_json::Value;

use super::bundle::{BundleFacts, read_resources};
use super::mapping::{FhirProblem, Loc, Mapper};
use super::resource_types::is_resource_type;

/// What a file holds, for the reader that takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// One document, a `Bundle`.
    Bundle,
    /// One document, a single resource of this (FHIR) type.
    Resource(String),
    /// NDJSON whose first line is a `Bundle`: one Bundle per line.
    NdjsonOfBundles,
    /// A file we do not read, and why (without any of its values).
    Unreadable(String),
    /// A file whose name does not say JSON (`README.md`, `manifest.tsv`): not looked into.
    NotJson,
}

/// Open a file, decompressing gzip transparently.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    Source::File(PathBuf::from(path)).open()
}

/// A whole file, decompressed when it is gzip.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_all(open(path)?)
}

/// Standard input, whole, decompressed when it is gzip.
pub fn read_stdin() -> io::Result<Vec<u8>> {
    read_all(Source::Stdin.open()?)
}

fn read_all(mut r: Box<dyn BufRead + Send>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The name without a trailing `.gz`, lowercased.
fn plain_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match name.strip_suffix(".gz") {
        Some(n) => n.to_owned(),
        None => name,
    }
}

/// Whether the name says NDJSON (`.ndjson`, `.jsonl`, either gzipped).
pub fn is_ndjson_name(path: &Path) -> bool {
    let n = plain_name(path);
    n.ends_with(".ndjson") || n.ends_with(".jsonl")
}

/// Whether the name says one JSON document (`.json`, `.json.gz`).
pub fn is_json_name(path: &Path) -> bool {
    plain_name(path).ends_with(".json")
}

/// What a file found in a directory holds. Reads the document (or the first line of NDJSON); a file
/// that cannot be read is [`What::Unreadable`] with the reason.
pub fn classify(path: &Path) -> What {
    if is_ndjson_name(path) {
        return match first_record(path).map(|line| line.map(|l| resource_type(&l))) {
            Err(e) => What::Unreadable(format!("cannot be read: {e}")),
            // No record at all: nothing to read, nothing lost.
            Ok(None) => What::NdjsonOfBundles,
            Ok(Some(Peek::Type(t))) if t == "Bundle" => What::NdjsonOfBundles,
            Ok(Some(Peek::Type(t))) => What::Unreadable(format!(
                "NDJSON of `{t}` resources outside a Bulk export: name it for its type (`{t}.ndjson`) in a directory of such files, or put the resources in Bundles"
            )),
            Ok(Some(_)) => {
                What::Unreadable("NDJSON whose first record is not a FHIR resource".into())
            }
        };
    }
    if !is_json_name(path) {
        return What::NotJson;
    }
    match read(path).map(|b| resource_type(&b)) {
        Err(e) => What::Unreadable(format!("cannot be read: {e}")),
        Ok(Peek::Type(t)) if t == "Bundle" => What::Bundle,
        Ok(Peek::Type(t)) if is_resource_type(&t) => What::Resource(t),
        Ok(Peek::Type(_)) => What::Unreadable("`resourceType` is not a FHIR resource type".into()),
        Ok(Peek::NoType) => What::Unreadable("JSON without a `resourceType`".into()),
        Ok(Peek::NotJson) => What::Unreadable("not a JSON object".into()),
    }
}

/// Read the single resources of a directory (`paths`, each [`What::Resource`]) as one group named
/// `dir`, and the bytes read. A file that can no longer be read or parsed is a problem naming it.
pub fn read_group(mapper: &Mapper<'_>, dir: &str, paths: &[PathBuf]) -> (BundleFacts, u64) {
    let mut bytes = 0u64;
    let mut problems: Vec<FhirProblem> = Vec::new();
    let mut docs: Vec<(String, Value)> = Vec::new();
    for p in paths {
        let name = p.display().to_string();
        let at = Loc {
            input: &name,
            line: 1,
            base: String::new(),
        };
        let raw = match read(p) {
            Ok(b) => b,
            Err(e) => {
                problems.push(at.problem("io", "", None, format!("cannot read the file: {e}")));
                continue;
            }
        };
        bytes += raw.len() as u64;
        let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&raw);
        match serde_json::from_slice::<Value>(body) {
            Ok(v)
                if v.get("resourceType")
                    .and_then(Value::as_str)
                    .is_some_and(is_resource_type) =>
            {
                docs.push((name, v));
            }
            // Changed since it was classified.
            Ok(_) => problems.push(at.problem(
                "missing_resource_type",
                "/resourceType",
                None,
                "the file no longer holds a FHIR resource".into(),
            )),
            Err(_) => problems.push(at.problem(
                "invalid_json",
                "",
                None,
                "the file is no longer JSON".into(),
            )),
        }
    }
    let resources: Vec<(&str, u64, &Value)> =
        docs.iter().map(|(n, v)| (n.as_str(), 1, v)).collect();
    let mut facts = read_resources(mapper, &resources, (dir, 1));
    if facts.patients.is_empty() {
        facts.problems.splice(0..0, problems);
    } else {
        for f in &mut facts.patients {
            f.problems.extend(problems.iter().cloned());
        }
    }
    (facts, bytes)
}

/// The first line of an NDJSON file that is not blank, if any.
fn first_record(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut r = open(path)?;
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(line));
        }
    }
}

/// What the `resourceType` of a document is.
enum Peek {
    Type(String),
    NoType,
    NotJson,
}

fn resource_type(bytes: &[u8]) -> Peek {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "resourceType")]
        resource_type: Option<serde_json::Value>,
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match serde_json::from_slice::<Typed>(body) {
        Err(_) => Peek::NotJson,
        Ok(Typed {
            resource_type: Some(serde_json::Value::String(t)),
        }) => Peek::Type(t),
        Ok(_) => Peek::NoType,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_the_framing_with_or_without_gz() {
        assert!(is_ndjson_name(Path::new("a/Patient.000.ndjson.gz")));
        assert!(is_ndjson_name(Path::new("b.JSONL")));
        assert!(!is_ndjson_name(Path::new("b.json")));
        assert!(is_json_name(Path::new("Bundle.json.gz")));
        assert!(!is_json_name(Path::new("README.md")));
        assert!(!is_json_name(Path::new("x.gz")));
    }

    #[test]
    fn the_resource_type_is_peeked_without_reading_values() {
        assert!(
            matches!(resource_type(br#"{"resourceType":"Patient","id":"x"}"#), Peek::Type(t) if t == "Patient")
        );
        assert!(matches!(
            resource_type(br#"{"resourceType":3}"#),
            Peek::NoType
        ));
        assert!(matches!(resource_type(b"{not json"), Peek::NotJson));
    }
}
