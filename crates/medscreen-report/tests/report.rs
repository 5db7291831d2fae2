#![allow(clippy::restriction, reason = "a test fails by panicking")]

//! The population report on the results of real runs: `tests/fixtures/patients.*` are the results and
//! the `--summary` of `medscreen screen fixtures/patients.ndjson`, `tests/fixtures/synthea.*` those of
//! `medscreen screen --from fhir fixtures/fhir/synthea --as-of 2024-01-01` (see tests/fixtures/README.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use html5ever::tendril::TendrilSink;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use medscreen_core::profile::Sex;
use medscreen_report::{Demographics, ErrorCode, Report, ReportOptions};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn report(run: &str, min_cell: u64) -> Report {
    let mut r = Report::new(ReportOptions {
        min_cell,
        ..ReportOptions::default()
    });
    let results = format!("{run}.results.ndjson");
    r.add_results(&read(&results)[..], &results).unwrap();
    r.add_summary(&read(&format!("{run}.summary.json")))
        .unwrap();
    r
}

fn parse(page: &str) -> RcDom {
    html5ever::parse_document(RcDom::default(), Default::default()).one(page)
}

/// Every count cell of the page: (the `data-key`s of its ancestors joined by `/`, its `data-count`) ->
/// its text.
fn counts(page: &str) -> BTreeMap<String, String> {
    fn walk(node: &Handle, path: &mut Vec<String>, out: &mut BTreeMap<String, String>) {
        let mut pushed = false;
        if let NodeData::Element { attrs, .. } = &node.data {
            let attrs = attrs.borrow();
            let get = |n: &str| {
                attrs
                    .iter()
                    .find(|a| &*a.name.local == n)
                    .map(|a| a.value.to_string())
            };
            if let Some(count) = get("data-count") {
                let key = format!("{}/{count}", path.join("/"));
                let previous = out.insert(key.clone(), text(node));
                assert!(previous.is_none(), "{key} is on the page twice");
                return;
            }
            if let Some(key) = get("data-key") {
                path.push(key);
                pushed = true;
            }
        }
        for child in node.children.borrow().iter() {
            walk(child, path, out);
        }
        if pushed {
            path.pop();
        }
    }
    let mut out = BTreeMap::new();
    walk(&parse(page).document, &mut Vec::new(), &mut out);
    out
}

fn text(node: &Handle) -> String {
    let mut s = String::new();
    if let NodeData::Text { contents } = &node.data {
        s.push_str(&contents.borrow());
    }
    for c in node.children.borrow().iter() {
        s.push_str(&text(c));
    }
    s
}

fn summary(run: &str) -> Value {
    serde_json::from_slice(&read(&format!("{run}.summary.json"))).unwrap()
}

fn number(page: &BTreeMap<String, String>, key: &str) -> u64 {
    let t = page
        .get(key)
        .unwrap_or_else(|| panic!("no count {key} on the page"));
    t.parse()
        .unwrap_or_else(|_| panic!("{key} is {t:?}, not a number"))
}

#[test]
fn the_page_parses_as_html5_without_errors() {
    for run in ["patients", "synthea"] {
        for min_cell in [1, 11] {
            let page = report(run, min_cell).html();
            let dom = parse(&page);
            let errors = dom.errors.borrow();
            assert!(errors.is_empty(), "{run}, min_cell {min_cell}: {errors:?}");
            assert!(page.starts_with("<!DOCTYPE html>"));
        }
    }
}

#[test]
fn every_count_on_the_page_equals_the_summary_of_the_same_run() {
    page_agrees_with_summary(&report("patients", 1).html(), &summary("patients"));
}

/// The same on a generated 100,000-record file (1% invalid), screened here through the core's batch
/// driver, whose summary is the one `--summary` writes.
#[test]
fn every_count_on_the_page_equals_the_summary_on_a_generated_100k_file() {
    use medscreen_core::batch::{self, BatchConfig, Sinks};
    use medscreen_core::input::Source;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.ndjson");
    let mut profiles = Vec::new();
    medscreen_core::generate::write_profiles(
        &mut profiles,
        medscreen_core::Engine::embedded().unwrap().facts(),
        100_000,
        7,
        0.01,
    )
    .unwrap();
    std::fs::write(&path, profiles).unwrap();
    let engine = medscreen_core::Engine::embedded().unwrap();
    let mut results = Vec::new();
    let (run, error) = batch::run(
        &engine,
        &[Source::parse(path.to_str().unwrap())],
        &BatchConfig::default(),
        Sinks {
            main: &mut results,
            errors: None,
        },
    );
    assert!(error.is_none());
    assert_eq!(run.read, 100_000);
    assert!(run.invalid > 0 && run.flagged > 0 && run.clear > 0);
    let s = serde_json::to_value(&run).unwrap();
    let mut r = Report::new(ReportOptions {
        min_cell: 1,
        ..ReportOptions::default()
    });
    r.add_results(&results[..], "results.ndjson").unwrap();
    r.add_summary(&serde_json::to_vec(&s).unwrap()).unwrap();
    page_agrees_with_summary(&r.html(), &s);
}

fn page_agrees_with_summary(html: &str, s: &Value) {
    let page = counts(html);
    for field in ["read", "clear", "flagged", "invalid"] {
        assert_eq!(
            number(&page, &format!("records/{field}")),
            s[field].as_u64().unwrap(),
            "{field}"
        );
    }
    assert_eq!(number(&page, "records/skipped"), 0);
    let by_severity = s["cautions_by_severity"].as_object().unwrap();
    let mut all = 0;
    for sev in ["info", "warning", "critical"] {
        let n = by_severity.get(sev).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(
            number(&page, &format!("cautions_by_severity/{sev}")),
            n,
            "{sev}"
        );
        all += n;
    }
    assert_eq!(number(&page, "cautions_by_severity/all"), all);
    let pack = format!("{}/rules", s["ruleset"].as_str().unwrap());
    for (field, count) in [
        ("cautions_by_rule", "fired"),
        ("indeterminate_by_rule", "indeterminate"),
    ] {
        for (rule, n) in s[field].as_object().unwrap() {
            assert_eq!(
                number(&page, &format!("{pack}/{rule}/{count}")),
                n.as_u64().unwrap(),
                "{rule}"
            );
        }
    }
    for (code, n) in s["invalid_by_code"].as_object().unwrap() {
        assert_eq!(
            number(&page, &format!("invalid_by_code/{code}/records")),
            n.as_u64().unwrap()
        );
    }
    // And the other way round: every rule on the page, with what the summary says of it, and each row
    // adds up to the records screened.
    let screened = number(&page, "records/screened");
    assert_eq!(
        screened,
        s["clear"].as_u64().unwrap() + s["flagged"].as_u64().unwrap()
    );
    let rows: Vec<&String> = page
        .keys()
        .filter(|k| k.starts_with(&pack) && k.ends_with("/fired"))
        .collect();
    assert!(!rows.is_empty());
    for key in rows {
        let rule = key
            .strip_prefix(&format!("{pack}/"))
            .unwrap()
            .strip_suffix("/fired")
            .unwrap();
        let get = |f: &str| s[f].get(rule).and_then(Value::as_u64).unwrap_or(0);
        let fired = number(&page, key);
        assert_eq!(fired, get("cautions_by_rule"), "{rule}");
        let tiers: u64 = ["critical", "warning", "info"]
            .iter()
            .map(|t| number(&page, &format!("{pack}/{rule}/{t}")))
            .sum();
        assert_eq!(tiers, fired, "{rule}");
        let undecided = number(&page, &format!("{pack}/{rule}/indeterminate"));
        assert_eq!(undecided, get("indeterminate_by_rule"), "{rule}");
        let na = number(&page, &format!("{pack}/{rule}/not_applicable"));
        assert_eq!(fired + undecided + na, screened, "{rule}");
    }
}

#[test]
fn every_count_shown_at_the_default_threshold_is_the_summary_s_or_hidden() {
    let s = summary("patients");
    let page = counts(&report("patients", 11).html());
    let exact = counts(&report("patients", 1).html());
    assert_eq!(
        page.keys().collect::<Vec<_>>(),
        exact.keys().collect::<Vec<_>>()
    );
    let mut hidden = 0;
    for (key, text) in &page {
        match text.as_str() {
            "<11" => {
                let n: u64 = exact[key].parse().unwrap();
                assert!((1..11).contains(&n), "{key}: {n} shown as <11");
                hidden += 1;
            }
            "*" => hidden += 1,
            t => assert_eq!(t, exact[key], "{key}"),
        }
    }
    assert!(hidden > 0);
    // 36 records read: shown, as are the 27 flagged; the 8 invalid and the 1 clear are small.
    assert_eq!(page["records/read"], s["read"].to_string());
    assert_eq!(page["records/invalid"], "<11");
    assert_eq!(page["records/clear"], "<11");
}

#[test]
fn the_run_summary_agrees_with_the_results_of_the_same_run() {
    for run in ["patients", "synthea"] {
        let page = report(run, 11).html();
        assert!(
            page.contains(
                "<dt>Run summary</dt><dd>agrees with these results on every count it has"
            ),
            "{run}"
        );
    }
    // A summary of another run is caught, by field name only.
    let mut r = Report::new(ReportOptions::default());
    r.add_results(
        &read("patients.results.ndjson")[..],
        "patients.results.ndjson",
    )
    .unwrap();
    r.add_summary(&read("synthea.summary.json")).unwrap();
    let page = r.html();
    assert!(
        page.contains("differs from these results in <code>read</code>"),
        "{page}"
    );
}

/// The values a results file holds about people: ids, input names, evidence values.
fn personal_strings(results: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in results.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        for f in ["id", "input"] {
            if let Some(s) = v[f].as_str() {
                out.push(s.to_owned());
            }
        }
        for c in v["cautions"].as_array().into_iter().flatten() {
            for e in c["evidence"].as_array().into_iter().flatten() {
                if let Some(s) = e["value"].as_str().filter(|s| s.len() > 6) {
                    out.push(s.to_owned());
                }
            }
        }
    }
    out
}

#[test]
fn no_record_id_input_name_or_evidence_value_of_the_results_is_on_the_page() {
    for run in ["patients", "synthea"] {
        let results = read(&format!("{run}.results.ndjson"));
        let strings = personal_strings(&results);
        assert!(strings.len() > 10, "{run}");
        for min_cell in [1, 11] {
            let page = report(run, min_cell).html();
            for s in &strings {
                assert!(!page.contains(s.as_str()), "{run}: {s} is on the page");
            }
        }
    }
}

#[test]
fn snapshot_of_the_page_for_the_fixtures() {
    let page = report("patients", 11).html();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/patients.html");
    if std::env::var_os("MEDSCREEN_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
    }
    let recorded = std::fs::read_to_string(&path).unwrap();
    assert!(
        recorded == page,
        "the page differs from {}; MEDSCREEN_BLESS=1 re-records it",
        path.display()
    );
}

#[test]
fn a_line_that_is_not_a_result_is_an_error_naming_the_file_and_line_never_its_content() {
    let lines = [
        &br#"{"age":72,"id":"pt-secret-77"}"#[..],
        br#"{"line":3,"id":"pt-secret-77","status":"deceased"}"#,
        br#"{"line":3,"id":"pt-secret-77","status":"flagged","cautions":[],"ruleset":"x"}"#,
        br#"{"line":3,"id":"pt-secret-77","status":"flagged","cautions":[{"rule":"R","severity":"grave"}],"ruleset":"x"}"#,
        br#"{"line":3,"id":"pt-secret-77","status":"invalid"}"#,
        b"not json pt-secret-77",
        b"",
    ];
    for bad in lines {
        let good = read("patients.results.ndjson");
        let first = good.split(|&b| b == b'\n').next().unwrap();
        let input = [first, b"\n", bad, b"\n"].concat();
        let mut r = Report::new(ReportOptions::default());
        let e = r.add_results(&input[..], "run.ndjson").unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotAResult);
        assert!(
            e.message()
                .starts_with("`run.ndjson` line 2: not a medscreen result"),
            "{e}"
        );
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(!e.to_string().contains("72"), "{e}");
    }
    let e = Report::new(ReportOptions::default())
        .add_summary(b"[1, 2]")
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidSummary);
}

#[test]
fn without_demographics_the_page_says_so_and_with_them_shows_age_bands_and_sex() {
    let page = report("patients", 11).html();
    assert!(page.contains("Not available: results do not carry age or sex"));

    let results = read("patients.results.ndjson");
    let mut with = Report::new(ReportOptions {
        min_cell: 1,
        ..ReportOptions::default()
    });
    let mut expected_old_critical = 0;
    for line in results.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).unwrap();
        // Everyone 80 and female here, so the table has one row that is the whole severity mix.
        let demo = Demographics {
            age: Some(80),
            sex: Some(Sex::Female),
        };
        if v["max_severity"] == "critical" {
            expected_old_critical += 1;
        }
        with.add_result(line, Some(demo)).unwrap();
    }
    let page = with.html();
    assert!(!page.contains("Not available: results do not carry age or sex"));
    let c = counts(&page);
    assert_eq!(
        number(&c, "demographics/75–84 · female/critical"),
        expected_old_critical
    );
    assert_eq!(
        number(&c, "demographics/all/critical"),
        expected_old_critical
    );
    assert_eq!(
        number(&c, "demographics/75–84 · female/screened"),
        number(&c, "records/screened")
    );
    assert!(!c.keys().any(|k| k.contains("· male")));
}

#[test]
fn a_small_count_on_the_page_cannot_be_recovered_by_subtraction() {
    let page = counts(&report("patients", 11).html());
    let hidden = |k: &str| page[k].parse::<u64>().is_err();
    // read = screened + invalid + skipped = clear + flagged + invalid + skipped.
    for group in [
        &["read", "screened", "invalid", "skipped"][..],
        &["read", "clear", "flagged", "invalid", "skipped"],
        &["screened", "clear", "flagged"],
    ] {
        let n = group
            .iter()
            .filter(|f| hidden(&format!("records/{f}")))
            .count();
        assert_ne!(n, 1, "{group:?}: {page:?}");
    }
    let n = ["all", "info", "warning", "critical"]
        .iter()
        .filter(|f| hidden(&format!("cautions_by_severity/{f}")))
        .count();
    assert_ne!(n, 1);
    // Each rule's row adds up to the records screened.
    let rows: Vec<String> = page
        .keys()
        .filter_map(|k| k.strip_suffix("/fired").map(str::to_owned))
        .collect();
    for row in rows {
        let n = ["fired", "indeterminate", "not_applicable"]
            .iter()
            .filter(|f| hidden(&format!("{row}/{f}")))
            .count()
            + usize::from(hidden("records/screened"));
        assert_ne!(n, 1, "{row}");
    }
}

#[test]
fn the_page_stays_under_two_megabytes_whatever_the_input() {
    // Many packs, thousands of rules and facts with long names full of characters that escaping
    // lengthens, every rule pair firing together.
    let long = "<&\"'>".repeat(60);
    let mut input = String::new();
    for i in 0..6000 {
        let line = serde_json::json!({
            "line": i, "id": format!("p{i}"), "status": "flagged", "max_severity": "critical",
            "cautions": [
                {"rule": format!("R{i}{long}"), "severity": "critical"},
                {"rule": format!("S{}{long}", i % 7), "severity": "info"},
            ],
            "indeterminate": [{"rule": format!("T{i}{long}"), "missing": [format!("f{i}{long}")]}],
            "ruleset": format!("pack-{}{long}@1#{}", i % 40, i % 40),
        });
        input.push_str(&format!("{line}\n"));
    }
    let mut r = Report::new(ReportOptions::default());
    r.add_results(input.as_bytes(), &format!("big{long}.ndjson"))
        .unwrap();
    let page = r.html();
    assert!(page.len() < 2 << 20, "{} bytes", page.len());
    assert!(parse(&page).errors.borrow().is_empty());
    assert!(page.contains("more packs"));
    assert!(!page.contains(&long), "names are cut and escaped");
}

#[test]
fn two_packs_are_shown_side_by_side_and_add_up_to_the_totals() {
    let results = String::from_utf8(read("patients.results.ndjson")).unwrap();
    let s = summary("patients");
    let ruleset = s["ruleset"].as_str().unwrap();
    let other = results.replace(ruleset, "other@1.0.0#000000000000");
    let mut r = Report::new(ReportOptions {
        min_cell: 1,
        ..ReportOptions::default()
    });
    r.add_results(results.as_bytes(), "a.ndjson").unwrap();
    r.add_results(other.as_bytes(), "b.ndjson").unwrap();
    let page = counts(&r.html());
    let screened = s["clear"].as_u64().unwrap() + s["flagged"].as_u64().unwrap();
    assert_eq!(number(&page, "records/screened"), 2 * screened);
    assert_eq!(number(&page, "packs/screened/0"), screened);
    assert_eq!(number(&page, "packs/screened/1"), screened);
    let fired = s["cautions_by_rule"]["BAC-RENAL"].as_u64().unwrap();
    for pack in [ruleset, "other@1.0.0#000000000000"] {
        assert_eq!(
            number(&page, &format!("{pack}/rules/BAC-RENAL/fired")),
            fired
        );
    }
}

#[test]
fn distinct_names_beyond_the_cap_are_counted_together_not_kept() {
    // A results file is data from outside: 10,000 distinct rule names must not all be kept.
    let mut input = String::new();
    for i in 0..10_000 {
        let line = serde_json::json!({
            "line": i, "id": null, "status": "flagged", "max_severity": "info",
            "cautions": [{"rule": format!("R-{i}"), "severity": "info"}], "ruleset": "p@1#0",
        });
        input.push_str(&format!("{line}\n"));
    }
    let mut r = Report::new(ReportOptions::default());
    r.add_results(input.as_bytes(), "many.ndjson").unwrap();
    let page = r.html();
    assert!(page.contains("names beyond the report's cap were counted together"));
    let c = counts(&page);
    // The total still counts every caution.
    assert_eq!(c["cautions_by_severity/info"], "10000");
}

#[test]
fn summary_inputs_that_name_a_record_s_file_are_withheld() {
    // `screen --from fhir A.json B.json ...`: the summary lists the files, and Synthea names each
    // file after its patient.
    let results = read("synthea.results.ndjson");
    let files: Vec<String> = results
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Value>(l).unwrap()["input"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut s = summary("synthea");
    s["inputs"] = serde_json::json!(files);
    let mut r = Report::new(ReportOptions::default());
    r.add_results(&results[..], "synthea.results.ndjson")
        .unwrap();
    r.add_summary(serde_json::to_string(&s).unwrap().as_bytes())
        .unwrap();
    let page = r.html();
    for f in &files {
        let stem = f.rsplit('/').next().unwrap();
        assert!(!page.contains(stem), "{stem} is on the page");
    }
    assert!(page.contains("files named in the results (names withheld)"));
    // A run over a directory names the directory, which no result names.
    assert!(
        report("synthea", 11)
            .html()
            .contains("<code>fixtures/fhir/synthea</code>")
    );
}
