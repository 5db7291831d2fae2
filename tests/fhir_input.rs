//! What `--from fhir` accepts as input: gzip of every form (by its magic bytes), a directory of
//! single resources read as one group, a lone resource file, and a JSON file in a directory that is
//! not FHIR input (reported, never silently dropped). Regression tests for issue 12, problem 5.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use util::{code, results, run, run_stdin, stderr};

const AS_OF: &str = "2024-01-01";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fhir")
}

/// `screen --from fhir` with `options` on `inputs`.
fn screen_with(options: &[&str], inputs: &[&Path]) -> Output {
    let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["screen", "--from", "fhir", "--as-of", AS_OF];
    args.extend(options);
    args.extend(names.iter().map(String::as_str));
    run(&args)
}

fn screen(inputs: &[&Path]) -> Output {
    screen_with(&["-q"], inputs)
}

/// A fixture directory screened as it is and with its `ext` files gzipped (into the temporary
/// directory returned, which must outlive the comparison).
fn plain_and_gzipped(fixture: &str, ext: &str) -> (tempfile::TempDir, Output, Output) {
    let dir = tempfile::tempdir().unwrap();
    let from = fixtures().join(fixture);
    gzip_dir(&from, ext, dir.path());
    let plain = screen(&[&from]);
    let gz = screen(&[dir.path()]);
    (dir, plain, gz)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Every file of `from` whose name ends with `ext`, gzipped into `to` as `NAME.gz`.
fn gzip_dir(from: &Path, ext: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(ext) {
            let gz = gzip(&std::fs::read(&p).unwrap());
            std::fs::write(to.join(format!("{name}.gz")), gz).unwrap();
        }
    }
}

/// The results with every `input` removed, to compare the same records read from other files.
fn without_inputs(out: &Output) -> Vec<Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("input");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut r = results(out);
    r.iter_mut().for_each(strip);
    r
}

fn codes(result: &Value) -> Vec<&str> {
    result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect()
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

#[test]
fn gzip_bundle_files_were_not_read() {
    let (dir, plain, gz) = plain_and_gzipped("pack2", ".json");
    let pack2 = fixtures().join("pack2");
    assert_eq!(code(&gz), code(&plain), "{}", stderr(&gz));
    assert!(!results(&plain).is_empty());
    assert_eq!(without_inputs(&gz), without_inputs(&plain));
    // A `.json.gz` named on the command line, and one whose name does not say gzip.
    let one = pack2.join("g904-j449.json");
    let named = dir.path().join("g904-j449.json.gz");
    let unnamed = dir.path().join("bundle.json");
    std::fs::copy(&named, &unnamed).unwrap();
    let plain = screen(&[&one]);
    assert_eq!(
        without_inputs(&screen(&[&named, &unnamed])),
        [without_inputs(&plain), without_inputs(&plain)].concat()
    );
}

#[test]
fn gzip_bulk_export_files_were_not_read() {
    let (_dir, plain, gz) = plain_and_gzipped("bulk", ".ndjson");
    assert_eq!(code(&gz), 0, "{}", stderr(&gz));
    assert_eq!(results(&gz).len(), 13);
    assert_eq!(without_inputs(&gz), without_inputs(&plain));
    assert!(
        results(&gz)
            .iter()
            .all(|r| r["input"].as_str().unwrap().ends_with(".ndjson.gz"))
    );
}

#[test]
fn gzip_ndjson_of_bundles_and_gzip_on_standard_input_were_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let pack2 = fixtures().join("pack2");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&pack2)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut ndjson = Vec::new();
    for p in &names {
        let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        ndjson.extend(serde_json::to_vec(&v).unwrap());
        ndjson.push(b'\n');
    }
    let plain = dir.path().join("bundles.ndjson");
    std::fs::write(&plain, &ndjson).unwrap();
    let sub = dir.path().join("gz");
    std::fs::create_dir(&sub).unwrap();
    let gz = sub.join("bundles.ndjson.gz");
    std::fs::write(&gz, gzip(&ndjson)).unwrap();
    let want = screen(&[&plain]);
    assert_eq!(results(&want).len(), names.len());
    // Named on the command line, and found in a directory.
    assert_eq!(without_inputs(&screen(&[&gz])), without_inputs(&want));
    assert_eq!(without_inputs(&screen(&[&sub])), without_inputs(&want));
    let first = std::fs::read(&names[0]).unwrap();
    let stdin = run_stdin(
        &["screen", "-q", "--from", "fhir", "--as-of", AS_OF, "-"],
        &gzip(&first),
    );
    assert_eq!(
        without_inputs(&stdin),
        without_inputs(&screen(&[&names[0]]))
    );
}

#[test]
fn a_directory_of_single_resources_gave_0_patients() {
    // The US Core examples one file per resource; the Bundle of the same resources is the reference.
    let dir = fixtures().join("resources/uscore-amy");
    let bundle = fixtures().join("examples/uscore-amy.json");
    let o = screen(&[&dir]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = results(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["id"], json!("example"));
    assert_eq!(out[0]["status"], json!("flagged"));
    // The result names the Patient's file; the facts come from the other files, by reference.
    assert!(
        out[0]["input"]
            .as_str()
            .unwrap()
            .ends_with("uscore-amy/patient-example.json")
    );
    assert_eq!(without_inputs(&o), without_inputs(&screen(&[&bundle])));
    let o = screen_with(&[], &[&dir]);
    assert!(
        stderr(&o).contains("1 patients from 7 files"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn single_resources_are_attributed_by_reference_and_a_broken_one_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let patient = |id: &str| json!({"resourceType": "Patient", "id": id, "gender": "male", "birthDate": "1950-01-01"});
    let seizure = |id: &str, subject: &str| {
        json!({"resourceType": "Condition", "id": id, "subject": {"reference": subject},
               "clinicalStatus": {"coding": [{"code": "active"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}})
    };
    write(d, "Patient-a.json", &patient("a"));
    write(d, "Patient-b.json", &patient("b"));
    write(d, "Condition-1.json", &seizure("c1", "Patient/b"));
    let o = screen(&[d]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = results(&o);
    let fired = |r: &Value| {
        r["cautions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == json!("BAC-SEIZURE"))
    };
    assert_eq!((out[0]["id"].clone(), fired(&out[0])), (json!("a"), false));
    assert_eq!((out[1]["id"].clone(), fired(&out[1])), (json!("b"), true));
    // A Condition whose subject is in none of the files: every patient gets the error, naming its file.
    write(d, "Condition-2.json", &seizure("c2", "Patient/nobody"));
    let o = screen(&[d]);
    assert_eq!(code(&o), 1);
    for r in results(&o) {
        assert_eq!(codes(&r), ["broken_reference"], "{r}");
        let e = &r["errors"][0];
        assert!(e["input"].as_str().unwrap().ends_with("Condition-2.json"));
        assert_eq!(e["pointer"], json!("/subject/reference"));
        assert_eq!(e["resource"], json!("Condition/c2"));
    }
}

#[test]
fn a_lone_patient_resource_was_not_a_bundle() {
    let file = fixtures().join("resources/uscore-amy/patient-example.json");
    let o = screen(&[&file]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = results(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (&out[0]["id"], &out[0]["status"], &out[0]["line"]),
        (&json!("example"), &json!("clear"), &json!(1))
    );
    let profile = run(&[
        "fhir-profile",
        "-q",
        "--as-of",
        AS_OF,
        &file.display().to_string(),
    ]);
    assert_eq!(code(&profile), 0, "{}", stderr(&profile));
    assert_eq!(results(&profile)[0]["age"], json!(36));
}

#[test]
fn a_lone_resource_of_another_type_is_a_per_file_error() {
    let med = fixtures().join("resources/uscore-amy/uscore-med2.json");
    let cond = fixtures().join("resources/uscore-amy/condition-encounter-diagnosis-example1.json");
    let o = screen(&[&med, &cond]);
    assert_eq!(code(&o), 1);
    let out = results(&o);
    assert_eq!(out.len(), 2);
    assert_eq!(codes(&out[0]), ["no_patient"]);
    assert_eq!(out[0]["input"], json!(med.display().to_string()));
    let message = out[0]["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("`Medication`") && message.contains("no Patient"),
        "{message}"
    );
    // The Condition's subject cannot resolve either: both said, for its file.
    assert_eq!(codes(&out[1]), ["broken_reference", "no_patient"]);
    assert!(
        out.iter()
            .all(|r| r["id"].is_null() && r["status"] == json!("invalid"))
    );
    // No value of the resources is echoed (the Condition's code display, the drug's name).
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.contains("Burn") && !text.contains("Tylenol"),
        "{text}"
    );
}

#[test]
fn json_files_in_a_directory_that_are_not_fhir_were_silently_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-01-01"}}]});
    write(d, "a-good.json", &good);
    write(d, "b-notes.json", &json!({"note": "secret-value"}));
    std::fs::write(
        d.join("c-broken.json"),
        b"{\"resourceType\": \"secret-value",
    )
    .unwrap();
    write(
        d,
        "d-typo.json",
        &json!({"resourceType": "Bundel", "id": "secret-value"}),
    );
    std::fs::write(
        d.join("e-patients.ndjson"),
        b"{\"resourceType\":\"Patient\",\"id\":\"secret-value\"}\n",
    )
    .unwrap();
    std::fs::write(d.join("README.md"), b"secret-value").unwrap();
    // An empty NDJSON file, or one whose first record follows blank lines, holds nothing we lose.
    std::fs::write(d.join("f-empty.ndjson"), b"").unwrap();
    let later = serde_json::to_string(&good).unwrap().replace("p1", "p2");
    std::fs::write(d.join("g-later.ndjson"), format!("\n \n{later}\n")).unwrap();
    let summary = d.join("summary.out");
    let o = screen_with(&["-q", "--summary", &summary.display().to_string()], &[d]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = results(&o);
    let rows: Vec<(String, Value, Vec<&str>)> = out
        .iter()
        .map(|r| {
            let file = Path::new(r["input"].as_str().unwrap()).file_name().unwrap();
            let c = if r["errors"].is_array() {
                codes(r)
            } else {
                vec![]
            };
            (file.to_string_lossy().into_owned(), r["id"].clone(), c)
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a-good.json".into(), json!("p1"), vec![]),
            ("b-notes.json".into(), Value::Null, vec!["not_fhir_input"]),
            ("c-broken.json".into(), Value::Null, vec!["not_fhir_input"]),
            ("d-typo.json".into(), Value::Null, vec!["not_fhir_input"]),
            (
                "e-patients.ndjson".into(),
                Value::Null,
                vec!["not_fhir_input"]
            ),
            ("g-later.ndjson".into(), json!("p2"), vec![]),
        ]
    );
    let reason = |i: usize| out[i]["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        reason(1).contains("without a `resourceType`"),
        "{}",
        reason(1)
    );
    assert!(reason(2).contains("not a JSON object"), "{}", reason(2));
    assert!(
        reason(3).contains("not a FHIR resource type"),
        "{}",
        reason(3)
    );
    assert!(reason(4).contains("`Patient.ndjson`"), "{}", reason(4));
    // A file whose name does not say JSON is not looked into, and named in the summary.
    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["file_errors"], json!(4));
    assert!(
        s["skipped_files"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("README.md")
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret-value"));
    assert!(!stderr(&o).contains("secret-value"));
}
