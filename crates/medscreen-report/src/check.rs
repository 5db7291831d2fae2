//! Whether the run's summary and the results agree: names of the fields that differ, no numbers (the
//! page would otherwise show a count outside the suppression).

use std::collections::BTreeMap;

use crate::summary::RunSummary;
use crate::tally::Tally;

/// The summary fields whose counts differ from those of the results.
pub(crate) fn disagreements(t: &Tally, s: &RunSummary) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |field: &'static str, summary: Option<u64>, results: u64| {
        if summary.is_some_and(|v| v != results) {
            out.push(field);
        }
    };
    check("read", s.result_lines(), t.read);
    check("clear", s.clear, t.clear);
    check("flagged", s.flagged, t.flagged);
    check("invalid", s.invalid_lines(), t.invalid);
    check("skipped", s.skipped, t.skipped);
    let severities: BTreeMap<String, u64> = ["info", "warning", "critical"]
        .iter()
        .zip(t.cautions)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), n))
        .collect();
    let mut fired = BTreeMap::new();
    let mut undecided = BTreeMap::new();
    for p in t.packs.map.values() {
        for (rule, r) in &p.rules.map {
            if r.fired_total() > 0 {
                *fired.entry(rule.clone()).or_insert(0) += r.fired_total();
            }
            if r.indeterminate > 0 {
                *undecided.entry(rule.clone()).or_insert(0) += r.indeterminate;
            }
        }
    }
    let codes: BTreeMap<String, u64> = t
        .invalid_by_code
        .map
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut maps = vec![
        ("cautions_by_severity", &s.cautions_by_severity, &severities),
        ("cautions_by_rule", &s.cautions_by_rule, &fired),
        (
            "indeterminate_by_rule",
            &s.indeterminate_by_rule,
            &undecided,
        ),
    ];
    // A FHIR run counts files it could not read apart from invalid patients, by its own codes.
    if s.file_errors.unwrap_or(0) == 0 {
        maps.push(("invalid_by_code", &s.invalid_by_code, &codes));
    }
    let complete = !t.packs.other_names
        && t.packs.map.values().all(|p| !p.rules.other_names)
        && !t.invalid_by_code.other_names;
    for (field, summary, results) in maps {
        // A summary without the field says nothing; results over the report's caps cannot be compared.
        if complete && !summary.is_empty() && summary != results {
            out.push(field);
        }
    }
    out
}
