//! Several packs over FHIR input in one pass (`--from fhir --pack A --pack B`): each patient's result
//! holds one screening per pack, each exactly what that pack alone reports for the patient, with each
//! pack reading its own drug's order.

mod util;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use util::{code, results, run, stderr};

/// The inputs compared on: the Synthea bundles (one patient deceased), the Bulk export, a bundle whose
/// patient is invalid (no birth date), and one whose patient has orders of both drugs.
fn inputs(dir: &Path) -> Vec<String> {
    let invalid = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:nobirth", "resource": {"resourceType": "Patient", "id": "nobirth", "gender": "female"}}]});
    let file = dir.join("invalid.json");
    std::fs::write(&file, invalid.to_string()).expect("write");
    let fhir = util::root().join("fixtures/fhir");
    [
        fhir.join("synthea"),
        fhir.join("bulk"),
        file,
        both_orders(dir),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect()
}

/// `screen --from fhir` at 2021-06-01 with `packs` (each after `--pack`), `extra` options and `inputs`.
fn screen(packs: &[&str], extra: &[&str], inputs: &[String]) -> std::process::Output {
    let mut args = vec!["screen", "-q", "--from", "fhir", "--as-of", "2021-06-01"];
    for p in packs {
        args.extend(["--pack", p]);
    }
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(String::as_str));
    run(&args)
}

/// A one-pack result without what says where the patient was: what a pack says about it.
fn screening_of(mut result: Value) -> Value {
    if let Some(o) = result.as_object_mut() {
        for key in ["line", "id", "input", "index"] {
            o.remove(key);
        }
    }
    result
}

fn rank(s: &Value) -> u8 {
    match s.as_str() {
        Some("info") => 1,
        Some("warning") => 2,
        Some("critical") => 3,
        _ => 0,
    }
}

#[test]
fn each_packs_screening_of_a_patient_is_what_that_pack_alone_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = inputs(dir.path());
    for detail in ["compact", "full"] {
        for min in ["info", "warning"] {
            let extra = ["--detail", detail, "--min-severity", min];
            let both = screen(&["tizanidine", "baclofen"], &extra, &inputs);
            let alone = [
                screen(&["tizanidine"], &extra, &inputs),
                screen(&["baclofen"], &extra, &inputs),
            ];
            // An invalid patient: exit 1 for both, as for either alone.
            assert_eq!(code(&both), 1, "{}", stderr(&both));
            assert_eq!(code(&alone[0]), 1);
            let both = results(&both);
            let alone = [results(&alone[0]), results(&alone[1])];
            assert_eq!(both.len(), alone[0].len());
            assert_eq!(both.len(), alone[1].len());
            let (mut screened, mut not_screened) = (0, 0);
            for (k, r) in both.iter().enumerate() {
                let single = [&alone[0][k], &alone[1][k]];
                for key in ["line", "input", "id"] {
                    assert_eq!(r[key], single[0][key], "{key}");
                }
                if r["status"] == "skipped" || r["status"] == "invalid" {
                    // Not screened: the patient's result, reported once, as either pack alone does.
                    not_screened += 1;
                    assert_eq!(r, single[0]);
                    assert_eq!(r, single[1]);
                    continue;
                }
                screened += 1;
                assert_eq!(r["shape"], "screenings/1", "{r}");
                assert!(
                    r.get("provenance").is_none(),
                    "provenance is each pack's: {r}"
                );
                let packs = r["screenings"].as_array().expect("screenings");
                assert_eq!(packs.len(), 2);
                for ((p, name), one) in packs.iter().zip(["tizanidine", "baclofen"]).zip(single) {
                    assert_eq!(p["pack"], name);
                    let mut p = p.clone();
                    p.as_object_mut().expect("object").remove("pack");
                    assert_eq!(p, screening_of(one.clone()), "patient {k}, {name}");
                }
                let flagged = single.iter().any(|s| s["status"] == "flagged");
                assert_eq!(r["status"], if flagged { "flagged" } else { "clear" });
                let max = single.iter().map(|s| rank(&s["max_severity"])).max();
                assert_eq!(Some(rank(&r["max_severity"])), max, "{r}");
            }
            // 13 Synthea patients and the export's screened; one deceased, one invalid at least.
            assert!(screened > 13, "{screened}");
            assert!(not_screened >= 2, "{not_screened}");
        }
    }
}

#[test]
fn the_fhir_summary_counts_patients_once_and_each_pack_as_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = inputs(dir.path());
    let summary = |packs: &[&str]| {
        let file = dir.path().join(format!("summary-{}.json", packs.join("-")));
        let path = file.display().to_string();
        let mut extra = vec!["-o", "/dev/null", "--summary", &path];
        // Standard error's summary too.
        let o = {
            let mut args = vec!["screen", "--from", "fhir", "--as-of", "2021-06-01"];
            for p in packs {
                args.extend(["--pack", p]);
            }
            args.append(&mut extra);
            args.extend(inputs.iter().map(String::as_str));
            run(&args)
        };
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("summary")).expect("json");
        (s, stderr(&o))
    };
    let (both, text) = summary(&["baclofen", "tizanidine"]);
    let alone = [summary(&["baclofen"]).0, summary(&["tizanidine"]).0];
    let packs = both["packs"].as_array().expect("packs");
    assert_eq!(packs.len(), 2);
    for ((p, one), name) in packs.iter().zip(&alone).zip(["baclofen", "tizanidine"]) {
        assert_eq!(p["pack"], name);
        assert!(
            p["ruleset"]
                .as_str()
                .expect("ruleset")
                .starts_with(&format!("{name}@"))
        );
        for key in [
            "clear",
            "flagged",
            "cautions_by_severity",
            "cautions_by_rule",
        ] {
            assert_eq!(p[key], one[key], "{name} {key}");
        }
        let line = format!(
            "  {name}: {} clear, {} flagged\n",
            one["clear"], one["flagged"]
        );
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    assert!(alone[0].get("packs").is_none(), "one pack, today's shape");
    let n = |v: &Value, k: &str| v[k].as_u64().expect("count");
    for key in [
        "patients",
        "skipped",
        "invalid",
        "file_errors",
        "files_read",
    ] {
        assert_eq!(n(&both, key), n(&alone[0], key), "{key}");
    }
    util::assert_screened_once_and_cautions_per_pack(&both, &alone);
    let rules = both["cautions_by_rule"].as_object().expect("by rule");
    assert_eq!(
        rules.len(),
        alone[0]["cautions_by_rule"].as_object().expect("map").len()
            + alone[1]["cautions_by_rule"].as_object().expect("map").len()
    );
}

#[test]
fn csv_and_table_name_each_pack_and_report_a_patient_not_screened_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = inputs(dir.path());
    let both = ["baclofen", "tizanidine"];
    let csv = screen(&both, &["--format", "csv"], &inputs);
    let text = String::from_utf8(csv.stdout).expect("utf-8");
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("input,line,index,id,pack,status,rule,severity,title")
    );
    let mut by_pack = [0, 0];
    for row in rows {
        let cols: Vec<&str> = row.split(',').collect();
        let (pack, status, rule) = (cols[4], cols[5], cols[6]);
        match status {
            "skipped" | "invalid" => assert_eq!(pack, "", "{row}"),
            _ => {
                assert_eq!(
                    rule.starts_with("BAC-"),
                    pack == "baclofen" && !rule.is_empty()
                );
                assert_eq!(
                    rule.starts_with("TZN-"),
                    pack == "tizanidine" && !rule.is_empty()
                );
                by_pack[usize::from(pack == "tizanidine")] += 1;
            }
        }
    }
    assert!(by_pack[0] > 0 && by_pack[1] > 0, "{by_pack:?}");
    // Not screened: one row each, with an empty `pack`, as many as with one pack.
    let alone = screen(&["baclofen"], &["--format", "csv"], &inputs);
    let alone = String::from_utf8(alone.stdout).expect("utf-8");
    for status in [",skipped,", ",invalid,"] {
        let n = alone.matches(status).count();
        assert!(n > 0, "{status}");
        assert_eq!(text.matches(&format!(",{status}")).count(), n, "{text}");
    }

    let table = screen(&both, &["--format", "table"], &inputs);
    let text = String::from_utf8(table.stdout).expect("utf-8");
    let block = text
        .split("\n\n")
        .find(|b| b.contains("Alberto_Atencio"))
        .expect("Alberto's block");
    let mut lines = block.lines().skip(1);
    let comparison = lines.next().expect("comparison line");
    assert!(
        comparison.starts_with("  baclofen: ") && comparison.contains("; tizanidine: "),
        "{comparison}"
    );
    let b = block.find("  [baclofen]\n").expect("baclofen block");
    let t = block.find("  [tizanidine]\n").expect("tizanidine block");
    assert!(b < t);
    assert!(block[b..t].contains("from FHIR:"), "{block}");
    assert!(!block[t..].contains("BAC-"), "{block}");
}

/// Clarine's bundle with active orders of both drugs, each with its own dose and reason.
fn both_orders(dir: &Path) -> PathBuf {
    let path = util::root()
        .join("fixtures/fhir/synthea/Clarine_OKeefe_e8c2a98e-6524-46cc-8d3b-48bc91f7cd2d.json");
    let mut b: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json");
    let subject = json!({"reference": b["entry"][0]["fullUrl"]});
    let order = |id: &str, code: &str, display: &str, times: u32, reason: &str| {
        json!({"resource": {"resourceType": "MedicationRequest", "id": id, "status": "active",
            "intent": "order", "subject": subject, "authoredOn": "2021-05-20",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": code, "display": display}]},
            "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": reason}]}],
            "dosageInstruction": [{"timing": {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "TAB"}}]}]}})
    };
    let entries = b["entry"].as_array_mut().expect("entries");
    entries.push(order(
        "bac",
        "197391",
        "baclofen 10 MG Oral Tablet",
        3,
        "G35",
    ));
    entries.push(order(
        "tzn",
        "57258",
        "tizanidine 4 MG Oral Tablet",
        2,
        "G82.2",
    ));
    let file = dir.join("clarine.json");
    std::fs::write(&file, b.to_string()).expect("write");
    file
}

/// The comedication of `screening` whose provenance names `resource`, if any: its pointer.
fn comedication_from(screening: &Value, resource: &str) -> Option<String> {
    screening["provenance"]
        .as_object()
        .expect("provenance")
        .iter()
        .find(|(k, v)| k.starts_with("/comedications/") && v[0]["resource"] == resource)
        .map(|(k, _)| k.clone())
}

#[test]
fn each_pack_reads_its_own_drugs_order_and_the_other_drug_as_a_comedication() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = vec![both_orders(dir.path()).display().to_string()];
    let o = screen(&["baclofen", "tizanidine"], &["--detail", "full"], &file);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = &results(&o)[0];
    let packs = r["screenings"].as_array().expect("screenings");
    let (bac, tzn) = (&packs[0], &packs[1]);
    assert_eq!(
        (&bac["pack"], &tzn["pack"]),
        (&json!("baclofen"), &json!("tizanidine"))
    );

    // Each pack's dose fact and indication come from its own order; the other drug's order is its
    // comedication, and its own order is not.
    let prov = |s: &Value, pointer: &str| s["provenance"][pointer][0]["resource"].clone();
    for (s, (own, drug), (other, other_drug)) in [
        (bac, ("bac", "baclofen"), ("tzn", "tizanidine")),
        (tzn, ("tzn", "tizanidine"), ("bac", "baclofen")),
    ] {
        let (own, other) = (
            format!("MedicationRequest/{own}"),
            format!("MedicationRequest/{other}"),
        );
        assert_eq!(prov(s, &format!("/{drug}_daily_dose_mg")), own.as_str());
        assert_eq!(prov(s, "/indication"), own.as_str());
        let other_dose = format!("/{other_drug}_daily_dose_mg");
        assert!(s["provenance"].get(&other_dose).is_none(), "{s}");
        assert!(comedication_from(s, &other).is_some(), "{s}");
        assert!(comedication_from(s, &own).is_none(), "{s}");
    }

    // Tizanidine sees baclofen as a CNS depressant, its evidence naming the baclofen order.
    let cns = tzn["cautions"]
        .as_array()
        .expect("cautions")
        .iter()
        .find(|c| c["rule"] == "TZN-CNS-DEPRESSANT")
        .unwrap_or_else(|| panic!("{tzn}"));
    let e = &cns["evidence"][0];
    assert_eq!(e["ingredient"], "baclofen", "{cns}");
    assert_eq!(e["fhir"][0]["resource"], "MedicationRequest/bac", "{cns}");

    // Each screening is what its pack alone reports.
    for (k, name) in ["baclofen", "tizanidine"].iter().enumerate() {
        let alone = screen(&[name], &["--detail", "full"], &file);
        let mut p = packs[k].clone();
        p.as_object_mut().expect("object").remove("pack");
        assert_eq!(p, screening_of(results(&alone)[0].clone()), "{name}");
    }
}

#[test]
fn the_population_report_shows_each_pack_of_fhir_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("report.html");
    let page_arg = page.display().to_string();
    let synthea = vec![
        util::root()
            .join("fixtures/fhir/synthea")
            .display()
            .to_string(),
    ];
    let both = ["baclofen", "tizanidine"];
    let o = screen(&both, &["-o", "/dev/null", "--report", &page_arg], &synthea);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("Packs side by side"), "both packs are shown");
    assert!(html.contains("<code>baclofen@"));
    assert!(html.contains("<code>tizanidine@"));
}
