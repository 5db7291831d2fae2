//! The run's summary in a few lines, for standard error (the JSON form, `--summary FILE`, is the
//! summary type serialised).
//!
//! ```text
//! medscreen: 1000 records: 700 clear, 290 flagged, 10 invalid (0 blank lines skipped) in 0.12s, 8333 records/s
//!   cautions: 120 critical, 200 warning, 15 info
//!   most frequent: BAC-RENAL 120, BAC-DDI-OPIOID 90
//!   invalid by first problem: out_of_range 10
//! ```
//!
//! With several packs, each pack's counts follow on their own lines instead of the cautions:
//!
//! ```text
//! medscreen: 1000 records: 600 clear, 390 flagged, 10 invalid (0 blank lines skipped) in 0.15s, 6667 records/s
//!   baclofen: 700 clear, 290 flagged
//!     cautions: 120 critical, 200 warning, 15 info
//!     most frequent: BAC-RENAL 120, BAC-DDI-OPIOID 90
//!   tizanidine: 650 clear, 340 flagged
//!     cautions: 40 critical, 310 warning, 90 info
//!     most frequent: TZN-OLDER 90, TZN-ANTIHYPERTENSIVE 80
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::batch::{Mode, PackSummary, Summary};

/// The batch run's summary.
pub fn batch_text(s: &Summary, mode: Mode) -> String {
    let mut t = String::new();
    let secs = s.elapsed_seconds;
    let _ = match mode {
        Mode::Screen => writeln!(
            t,
            "medscreen: {} records: {} clear, {} flagged, {} invalid ({} blank lines skipped) in {secs:.2}s, {:.0} records/s",
            s.read, s.clear, s.flagged, s.invalid, s.blank_lines, s.records_per_second
        ),
        Mode::Validate => writeln!(
            t,
            "medscreen: {} records: {} valid, {} invalid ({} blank lines skipped) in {secs:.2}s, {:.0} records/s",
            s.read, s.valid, s.invalid, s.blank_lines, s.records_per_second
        ),
    };
    if s.packs.is_empty()
        && let Some(line) = cautions_line(&s.cautions_by_severity)
    {
        t.push_str(&line);
        let _ = writeln!(t, "  most frequent: {}", most_frequent(&s.cautions_by_rule));
    }
    t.push_str(&packs_lines(&s.packs));
    if !s.invalid_by_code.is_empty() {
        let parts: Vec<String> = s
            .invalid_by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(t, "  invalid by first problem: {}", parts.join(", "));
    }
    if s.duplicate_ids > 0 {
        let ex: Vec<String> = s
            .duplicate_examples
            .iter()
            .map(|d| format!("`{}` ({}:{})", d.id, d.input, d.line))
            .collect();
        let _ = writeln!(
            t,
            "  warning: {} records repeat an earlier id, e.g. {}",
            s.duplicate_ids,
            ex.join(", ")
        );
    }
    if s.duplicate_check_truncated {
        t.push_str("  note: the duplicate-id check stopped remembering new ids at its limit\n");
    }
    t
}

/// Several packs: each pack's counts on its own lines, side by side (nothing with one pack). Every input
/// path's summary has these lines.
pub fn packs_lines(packs: &[PackSummary]) -> String {
    let mut t = String::new();
    for p in packs {
        let _ = writeln!(t, "  {}: {} clear, {} flagged", p.pack, p.clear, p.flagged);
        if let Some(line) = cautions_line(&p.cautions_by_severity) {
            let _ = write!(t, "  {line}");
            let _ = writeln!(
                t,
                "    most frequent: {}",
                most_frequent(&p.cautions_by_rule)
            );
        }
    }
    t
}

/// The eight rules with the most cautions, most first: `BAC-RENAL 120, BAC-DDI-OPIOID 90`.
fn most_frequent(by_rule: &BTreeMap<String, u64>) -> String {
    let mut rules: Vec<(&String, &u64)> = by_rule.iter().collect();
    rules.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = rules
        .iter()
        .take(8)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    top.join(", ")
}

/// `  cautions: 3 critical, 1 warning` (most severe first), or nothing when no caution was reported.
/// Every input path's summary has this line.
pub fn cautions_line(by_severity: &BTreeMap<&'static str, u64>) -> Option<String> {
    if by_severity.is_empty() {
        return None;
    }
    let parts: Vec<String> = ["critical", "warning", "info"]
        .iter()
        .filter_map(|k| by_severity.get(k).map(|n| format!("{n} {k}")))
        .collect();
    Some(format!("  cautions: {}\n", parts.join(", ")))
}
