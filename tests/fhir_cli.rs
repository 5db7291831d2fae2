//! FHIR input through the command line: malformed input gives a clear result and the run goes on,
//! directories and Bulk exports, determinism across thread counts, value-set load errors.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_medscreen"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fhir")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn screen(inputs: &[&Path]) -> (Output, Vec<Value>) {
    let mut args = vec!["screen", "-q", "--from", "fhir", "--as-of", "2021-06-01"];
    let owned: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    args.extend(owned.iter().map(String::as_str));
    let o = run(&args);
    let l = lines(&o);
    (o, l)
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

fn patient(id: &str) -> Value {
    json!({"fullUrl": format!("urn:uuid:{id}"), "resource": {"resourceType": "Patient", "id": id, "gender": "male", "birthDate": "1950-01-01"}})
}

fn bundle(entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

fn codes(errors: &Value) -> Vec<&str> {
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect()
}

#[test]
fn malformed_fhir_gives_clear_errors_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A misspelt `Bundle` (a lone Patient is screened: `a_lone_patient_resource_is_screened`).
    let not_bundle = write(d, "a.json", &json!({"resourceType": "Bundel", "id": "x"}));
    let no_type = write(d, "b.json", &json!({"type": "collection", "entry": []}));
    let broken_ref = write(
        d,
        "c.json",
        &bundle(json!([patient("p1"),
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:nobody"},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}}}])),
    );
    let wrong_types = write(
        d,
        "d.json",
        &bundle(json!([
        {"resource": {"resourceType": "Patient", "id": "p2", "birthDate": 1950}},
        {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"},
         "clinicalStatus": "active", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}}}])),
    );
    let bad_med = write(
        d,
        "e.json",
        &bundle(json!([patient("p3"),
        {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
         "subject": {"reference": "urn:uuid:p3"}, "medicationReference": {"reference": "Medication/missing"}}}])),
    );
    let entry_no_type = write(
        d,
        "f.json",
        &bundle(json!([patient("p4"), {"resource": {"id": "x"}}])),
    );
    std::fs::write(d.join("g.json"), b"{not json").unwrap();
    let good = write(d, "h.json", &bundle(json!([patient("p5")])));
    let (o, out) = screen(&[
        &not_bundle,
        &no_type,
        &broken_ref,
        &wrong_types,
        &bad_med,
        &entry_no_type,
        &d.join("g.json"),
        &good,
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out.len(), 8, "{out:#?}");
    assert_eq!(
        (out[0]["status"].as_str(), codes(&out[0]["errors"])),
        (Some("invalid"), vec!["not_a_bundle"])
    );
    assert_eq!(out[0]["id"], Value::Null);
    assert!(
        out[0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`Bundel`")
    );
    assert_eq!(codes(&out[1]["errors"]), vec!["missing_resource_type"]);
    assert_eq!(out[2]["id"], json!("p1"));
    assert_eq!(codes(&out[2]["errors"]), vec!["broken_reference"]);
    assert_eq!(
        out[2]["errors"][0]["pointer"],
        json!("/entry/1/resource/subject/reference")
    );
    assert_eq!(out[2]["errors"][0]["resource"], json!("Condition/c1"));
    assert_eq!(out[3]["id"], json!("p2"));
    let mut c = codes(&out[3]["errors"]);
    c.sort_unstable();
    assert_eq!(c, vec!["type_mismatch", "type_mismatch"]);
    assert_eq!(codes(&out[4]["errors"]), vec!["broken_reference"]);
    assert_eq!(
        out[4]["errors"][0]["pointer"],
        json!("/entry/1/resource/medicationReference/reference")
    );
    assert_eq!(codes(&out[5]["errors"]), vec!["missing_resource_type"]);
    assert_eq!(codes(&out[6]["errors"]), vec!["invalid_json"]);
    // The good file after all of those is screened.
    assert_eq!(
        (out[7]["id"].as_str(), out[7]["status"].as_str()),
        (Some("p5"), Some("flagged"))
    );
    // No patient value is echoed in an error (the birth date is only in the screened result's evidence).
    for r in &out[..7] {
        assert!(!r.to_string().contains("1950"), "{r}");
    }
}

#[test]
fn ndjson_of_bundles_and_bulk_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = String::new();
    text.push_str(&serde_json::to_string(&bundle(json!([patient("n1")]))).unwrap());
    text.push_str("\n\n{\"resourceType\": \"Bundle\", \"entry\": 3}\n");
    text.push_str(&serde_json::to_string(&bundle(json!([patient("n2")]))).unwrap());
    std::fs::write(d.join("b.ndjson"), text).unwrap();
    let (_, out) = screen(&[&d.join("b.ndjson")]);
    let ids: Vec<&Value> = out.iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!("n1"), &Value::Null, &json!("n2")]);
    assert_eq!(out[1]["line"], json!(3));
    // Bulk: a Condition for a patient the export does not hold, and a line that is not JSON.
    let bulk = d.join("export");
    std::fs::create_dir(&bulk).unwrap();
    std::fs::write(
        bulk.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"birthDate\":\"1980-01-01\"}\n",
    )
    .unwrap();
    std::fs::write(bulk.join("Condition.000.ndjson"), "{\"resourceType\":\"Condition\",\"id\":\"c\",\"subject\":{\"reference\":\"Patient/zz\"}}\nnot json\n").unwrap();
    std::fs::write(bulk.join("README.txt"), "hello").unwrap();
    let o = run(&[
        "screen",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--summary",
        &d.join("s.json").display().to_string(),
        &bulk.display().to_string(),
    ]);
    let out = lines(&o);
    let status: Vec<(&str, &str)> = out
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("-"),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        status,
        [("-", "invalid"), ("a", "clear"), ("zz", "invalid")]
    );
    assert_eq!(codes(&out[0]["errors"]), vec!["invalid_json"]);
    assert_eq!(out[0]["line"], json!(2));
    assert_eq!(codes(&out[2]["errors"]), vec!["broken_reference"]);
    let summary: Value = serde_json::from_slice(&std::fs::read(d.join("s.json")).unwrap()).unwrap();
    assert!(
        summary["skipped_files"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("README.txt")
    );
    assert_eq!(summary["patients"], json!(2));
}

fn external() -> Option<PathBuf> {
    util::external()
}

#[test]
fn every_synthea_bundle_and_the_bulk_export_screen_without_error() {
    let Some(ext) = external() else { return };
    let dir = ext.join("synthea-r4-bundles");
    let (o, out) = screen(&[&dir]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n_bundles = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(out.len(), n_bundles);
    assert!(
        out.iter()
            .all(|r| matches!(r["status"].as_str(), Some("clear" | "flagged" | "skipped")))
    );
    let bulk = ext.join("synthea-bulk-ndjson-10-patients");
    let o = run(&[
        "screen",
        "--from",
        "fhir",
        "--as-of",
        "2024-08-06",
        &bulk.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = lines(&o);
    assert_eq!(out.len(), 13);
    assert!(out.iter().all(|r| r["status"] != json!("invalid")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("log.ndjson") && err.contains("SOURCE.md"),
        "{err}"
    );
}

#[test]
fn output_is_identical_at_any_thread_count_and_profiles_screen_natively_alike() {
    let dir = fixtures().join("synthea");
    let d = dir.display().to_string();
    let one = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--threads",
        "1",
        &d,
    ]);
    let many = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--threads",
        "8",
        &d,
    ]);
    assert_eq!(one.stdout, many.stdout);
    // `fhir-profile` output is a native profile stream that screens to the same cautions.
    let profiles = run(&["fhir-profile", "-q", "--as-of", "2021-06-01", &d]);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &profiles.stdout).unwrap();
    let native = lines(&run(&["screen", "-q", &tmp.path().display().to_string()]));
    let fhir: Vec<Value> = lines(&one)
        .into_iter()
        .filter(|r| r["status"] != json!("skipped"))
        .collect();
    assert_eq!(native.len(), fhir.len());
    for (a, b) in native.iter().zip(&fhir) {
        let rules = |r: &Value| -> Vec<String> {
            r["cautions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["rule"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!((a["id"].clone(), rules(a)), (b["id"].clone(), rules(b)));
    }
    // Table and CSV formats work too.
    let t = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--format",
        "table",
        &d,
    ]);
    assert!(String::from_utf8_lossy(&t.stdout).contains("from FHIR:"));
    let c = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--format",
        "csv",
        &d,
    ]);
    assert!(
        String::from_utf8_lossy(&c.stdout)
            .starts_with("input,line,index,id,status,rule,severity,title\n")
    );
    let j = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--format",
        "json",
        &d,
    ]);
    let arr: Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 14);
}

#[test]
fn a_bad_value_set_is_a_load_error_with_file_and_pointer() {
    let dir = tempfile::tempdir().unwrap();
    for e in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/valuesets")).unwrap()
    {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let p = dir.path().join("seizure.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["conditions"][0]["code"] = json!("g40");
    v["conditions"][1]["source"] = json!("FACT");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let o = run(&[
        "screen",
        "--from",
        "fhir",
        "--valuesets",
        &dir.path().display().to_string(),
        &fixtures().join("synthea").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("seizure.json at /conditions/0/code: `g40` is not a well-formed icd10cm code"),
        "{err}"
    );
    assert!(err.contains("seizure.json at /conditions/1/source: unknown source `FACT`\n  help: did you mean `FACTS`?"), "{err}");
}

#[cfg(unix)]
#[test]
fn unreadable_file_in_bulk_export_is_reported_and_the_rest_screened() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bulk = d.join("export");
    std::fs::create_dir(&bulk).unwrap();
    std::fs::write(
        bulk.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"male\",\"birthDate\":\"1950-01-01\"}\n\
         {\"resourceType\":\"Patient\",\"id\":\"b\",\"gender\":\"female\",\"birthDate\":\"1960-01-01\"}\n",
    )
    .unwrap();
    std::fs::write(
        bulk.join("Condition.000.ndjson"),
        "{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/a\"},\
         \"clinicalStatus\":{\"coding\":[{\"code\":\"active\"}]},\
         \"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"84757009\"}]}}\n",
    )
    .unwrap();
    // Tests run as root, so permissions do not stop a read: a dangling link, a link loop and a
    // directory where a file is expected do.
    symlink(d.join("gone.ndjson"), bulk.join("Condition.001.ndjson")).unwrap();
    symlink(
        bulk.join("MedicationRequest.ndjson"),
        bulk.join("MedicationRequest.ndjson"),
    )
    .unwrap();
    std::fs::create_dir(bulk.join("Observation.ndjson")).unwrap();
    let summary_path = d.join("s.json");
    let o = run(&[
        "screen",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        "--summary",
        &summary_path.display().to_string(),
        &bulk.display().to_string(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = lines(&o);
    let broken: Vec<(&str, &str)> = out
        .iter()
        .filter(|r| r["id"].is_null())
        .map(|r| {
            assert_eq!(r["status"], "invalid", "{r}");
            assert_eq!(codes(&r["errors"]), ["io"], "{r}");
            (
                r["input"].as_str().unwrap(),
                r["errors"][0]["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(broken.len(), 3, "{out:?}");
    let find = |name: &str| {
        broken
            .iter()
            .find(|(i, _)| i.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not reported: {broken:?}"))
            .1
    };
    assert!(
        find("Condition.001.ndjson").contains("symbolic link to a file that does not exist"),
        "{broken:?}"
    );
    assert!(
        find("MedicationRequest.ndjson").contains("symbolic links"),
        "{broken:?}"
    );
    assert!(
        find("Observation.ndjson").contains("a directory where a `Observation` NDJSON file"),
        "{broken:?}"
    );
    // The rest is screened: both patients, the seizure condition read.
    let screened: Vec<&str> = out.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(screened, ["a", "b"]);
    let a = out.iter().find(|r| r["id"] == "a").unwrap();
    assert!(a.to_string().contains("BAC-SEIZURE"), "{a}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["file_errors"], json!(3), "{summary}");
    assert_eq!(summary["patients"], json!(2));
    // A lost Condition file leaves conditions unknown rather than absent, and a lost medication
    // file the medications.
    let o = run(&[
        "fhir-profile",
        "--as-of",
        "2021-06-01",
        &bulk.display().to_string(),
    ]);
    let profiles = lines(&o);
    let b = profiles.iter().find(|p| p["id"] == "b").unwrap();
    assert!(b.get("seizure_history").is_none(), "{b}");
    assert!(b.get("comedications").is_none(), "{b}");
    std::fs::remove_file(bulk.join("Condition.001.ndjson")).unwrap();
    std::fs::remove_file(bulk.join("MedicationRequest.ndjson")).unwrap();
    std::fs::write(bulk.join("MedicationRequest.ndjson"), "").unwrap();
    let o = run(&[
        "fhir-profile",
        "--as-of",
        "2021-06-01",
        &bulk.display().to_string(),
    ]);
    let profiles = lines(&o);
    let b = profiles.iter().find(|p| p["id"] == "b").unwrap();
    assert_eq!(b["seizure_history"], json!(false), "{b}");
    assert_eq!(b["comedications"], json!([]), "{b}");
}

/// Issue 12, item 3 (found again in the FHIR table): `--min-severity` left out a caution, but the
/// `from FHIR:` lines still named the resources behind its evidence.
#[test]
fn fhir_table_named_resources_of_cautions_min_severity_left_out() {
    let table = |extra: &[&str]| {
        let mut args = vec![
            "screen",
            "-q",
            "--from",
            "fhir",
            "--as-of",
            "2024-01-01",
            "--format",
            "table",
        ];
        args.extend_from_slice(extra);
        let d = fixtures().join("synthea");
        let d = d.to_str().expect("utf-8");
        args.push(d);
        String::from_utf8(run(&args).stdout).expect("utf-8")
    };
    // Each block: the rules it reports, and the rules its `from FHIR:` lines name.
    let check = |text: &str| -> usize {
        let mut named = 0;
        for block in text.split("\n\n") {
            let mut reported = Vec::new();
            let mut in_fhir = false;
            for line in block.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if line == "  from FHIR:" {
                    in_fhir = true;
                } else if in_fhir {
                    let rule = words.first().copied().unwrap_or_default();
                    assert!(
                        reported.contains(&rule),
                        "`{rule}` is named under from FHIR: but not reported:\n{block}"
                    );
                    named += 1;
                } else if let [sev, rule, ..] = words[..]
                    && ["INFO", "WARNING", "CRITICAL"].contains(&sev)
                {
                    reported.push(rule);
                }
            }
        }
        named
    };
    let all = table(&[]);
    assert!(
        all.contains("  BAC-HEART /"),
        "the fixture names the resources of an info caution"
    );
    assert!(check(&all) > 0);
    let kept = table(&["--min-severity", "warning"]);
    assert!(
        !kept.contains("  BAC-HEART /"),
        "an info caution left out has no from FHIR: lines"
    );
    assert!(check(&kept) > 0);
}

#[test]
fn screen_from_fhir_report_writes_the_page_report_makes_with_age_and_sex() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let synthea = fixtures().join("synthea").display().to_string();
    let o = run(&[
        "screen",
        "-q",
        "--from",
        "fhir",
        "--as-of",
        "2021-06-01",
        &synthea,
        "-o",
        &path("results.ndjson"),
        "--summary",
        &path("run.json"),
        "--report",
        &path("during.html"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "report",
        &path("results.ndjson"),
        "--summary",
        &path("run.json"),
        "-o",
        &path("after.html"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same page but for what `report` read and the demographics only the run has.
    let sections = |name: &str| {
        let html = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let (read_at, demo_at) = (
            html.find("<dt>Results read</dt>").unwrap(),
            html.find("<section id=\"demographics\">").unwrap(),
        );
        let read_end = read_at + html[read_at..].find("</dd>").unwrap();
        let demo_end = demo_at + html[demo_at..].find("</section>").unwrap();
        assert!(read_end < demo_at);
        let rest = format!(
            "{}{}{}",
            &html[..read_at],
            &html[read_end..demo_at],
            &html[demo_end..]
        );
        (rest, html[demo_at..demo_end].to_owned())
    };
    let (during, demographics) = sections("during.html");
    let (after, none) = sections("after.html");
    assert_eq!(during, after);
    assert!(demographics.contains("data-key=\"demographics\""));
    assert!(none.contains("Not available"));
    // A patient's file name never reaches the page.
    for entry in std::fs::read_dir(fixtures().join("synthea")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!during.contains(&name), "{name}");
    }
}

/// The embedded value sets laid out in `dir` as `rules/` keeps them (`valuesets/`, `NAME/valuesets/`),
/// or all in `dir` itself when `flat` (the shared sets and one pack's).
fn value_sets_in(dir: &Path, flat: Option<&str>) {
    use medscreen::fhir::valueset::{EMBEDDED, EMBEDDED_PACKS};
    let shared = if flat.is_some() {
        dir.to_path_buf()
    } else {
        dir.join("valuesets")
    };
    std::fs::create_dir_all(&shared).unwrap();
    for (name, text) in EMBEDDED {
        std::fs::write(shared.join(name), text).unwrap();
    }
    for (pack, files) in EMBEDDED_PACKS {
        let own = match flat {
            Some(p) if p == *pack => dir.to_path_buf(),
            Some(_) => continue,
            None => dir.join(pack).join("valuesets"),
        };
        std::fs::create_dir_all(&own).unwrap();
        for (name, text) in *files {
            std::fs::write(own.join(name), text).unwrap();
        }
    }
}

/// `screen --from fhir --pack tizanidine` on `input` at 2021-06-01, with `extra` options.
fn screen_tizanidine(extra: &[&str], input: &Path) -> Output {
    let mut args = vec![
        "screen",
        "-q",
        "--from",
        "fhir",
        "--pack",
        "tizanidine",
        "--as-of",
        "2021-06-01",
    ];
    args.extend_from_slice(extra);
    let input = input.display().to_string();
    args.push(&input);
    run(&args)
}

#[test]
fn the_tizanidine_pack_screens_fhir_with_its_own_embedded_value_sets() {
    let synthea = fixtures().join("synthea");
    let o = screen_tizanidine(&[], &synthea);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = lines(&o);
    assert_eq!(out.len(), 14);
    let screened: Vec<&Value> = out.iter().filter(|r| r["status"] != "skipped").collect();
    assert_eq!(screened.len(), 13);
    for r in &screened {
        assert!(
            r["ruleset"].as_str().unwrap().starts_with("tizanidine@"),
            "{r}"
        );
        for c in r["cautions"].as_array().unwrap() {
            assert!(c["rule"].as_str().unwrap().starts_with("TZN-"), "{c}");
        }
        // These bundles carry no ALT with a reference range: the ratio is unknown, never assumed.
        let liver = r["indeterminate"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["rule"] == "TZN-LIVER")
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(liver["missing"], json!(["alt_uln_ratio"]));
    }
    // The same value sets from a directory, laid out as `rules/` or flat, give the same bytes.
    let dir = tempfile::tempdir().unwrap();
    value_sets_in(&dir.path().join("rules"), None);
    value_sets_in(&dir.path().join("flat"), Some("tizanidine"));
    for layout in ["rules", "flat"] {
        let d = dir.path().join(layout).display().to_string();
        let again = screen_tizanidine(&["--valuesets", &d], &synthea);
        assert_eq!(again.status.code(), Some(0), "{layout}");
        assert_eq!(again.stdout, o.stdout, "{layout}");
    }
}

#[test]
fn a_tizanidine_order_and_an_alt_with_its_upper_limit_fill_the_packs_facts() {
    // Clarine (born 1951) with a tizanidine order and an ALT of 3 times its reference range's upper
    // limit added to her bundle.
    let path = fixtures().join("synthea/Clarine_OKeefe_e8c2a98e-6524-46cc-8d3b-48bc91f7cd2d.json");
    let mut b: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let subject = json!({"reference": b["entry"][0]["fullUrl"]});
    let entries = b["entry"].as_array_mut().unwrap();
    entries.push(json!({"resource": {"resourceType": "MedicationRequest", "id": "tzn", "status": "active",
        "intent": "order", "subject": subject, "authoredOn": "2021-05-20",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "57258", "display": "tizanidine 4 MG Oral Tablet"}]},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "TAB"}}]}]}}));
    entries.push(json!({"resource": {"resourceType": "Observation", "id": "alt", "status": "final",
        "subject": subject, "effectiveDateTime": "2021-05-15",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
        "valueQuantity": {"value": 168, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"},
        "referenceRange": [{"high": {"value": 56, "unit": "U/L", "system": "http://unitsofmeasure.org", "code": "U/L"}}]}}));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "clarine.json", &b);
    let o = screen_tizanidine(&["--detail", "full"], &file);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = &lines(&o)[0];
    let liver = r["cautions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "TZN-LIVER")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(liver["severity"], "critical");
    assert_eq!(liver["evidence"][0]["pointer"], "/alt_uln_ratio");
    assert_eq!(liver["evidence"][0]["value"].as_f64(), Some(3.0));
    assert_eq!(
        liver["evidence"][0]["fhir"][0]["resource"],
        "Observation/alt"
    );
    assert_eq!(
        r["provenance"]["/tizanidine_daily_dose_mg"][0]["resource"],
        "MedicationRequest/tzn"
    );
    // The order screened is not its own comedication, and its dose fills tizanidine's fact.
    let profile = run(&[
        "fhir-profile",
        "-q",
        "--as-of",
        "2021-06-01",
        &file.display().to_string(),
    ]);
    assert_eq!(profile.status.code(), Some(0));
    // `fhir-profile` maps for the default pack (baclofen): the tizanidine order is a comedication
    // there, and ALT is not mapped (its set is tizanidine's own).
    let p = &lines(&profile)[0];
    assert!(p.get("alt_uln_ratio").is_none(), "{p}");
    assert!(p.get("tizanidine_daily_dose_mg").is_none(), "{p}");
    assert!(p["comedications"].to_string().contains("tizanidine"), "{p}");
}
