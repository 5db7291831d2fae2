//! `explain`: one profile's screening in prose, every caution with its evidence, action and sources,
//! and the rules that could not be decided.
//!
//! ```text
//! profile p-3 (baclofen@1.0.0#0123456789ab): FLAGGED: 1 caution, highest critical
//!
//! [CRITICAL] BAC-RENAL: Baclofen and kidney function
//!   <message>
//!   action: <action>
//!   because:
//!     /egfr = 25
//!   source: <label>. <citation> <url>
//!
//! could not evaluate 1 rule (facts missing):
//!   BAC-SEIZURE (<title>): needs seizure_history
//!
//! 12 other rules did not apply or found nothing.
//! ```
//!
//! An invalid profile: `profile p-3 is invalid:` and one line per problem, each with its help.
//!
//! With several packs, a first line puts them side by side, then each pack's screening follows under
//! its name, as above:
//!
//! ```text
//! profile p-3: baclofen: 1 critical, 2 undecided; tizanidine: 1 warning, 3 undecided
//!
//! == baclofen ==
//! profile p-3 (baclofen@2.0.0#0123456789ab): FLAGGED: 1 caution, highest critical
//! ...
//! ```

use std::fmt::Write as _;
use std::io;

use super::{evidence_text, source_text};
use crate::compile::Rule;
use crate::engine::Engine;
use crate::input::{ItemKind, Splitter};
use crate::report::{Screening, Status};
use crate::severity::Severity;

/// What `explain` says about its input.
#[derive(Debug)]
pub enum Explained {
    /// The profile was screened; the text explains it.
    Screened(String),
    /// The profile is invalid; the text lists its problems.
    Invalid(String),
    /// The input holds more than one record: `explain` takes one.
    SeveralRecords {
        /// How many records.
        count: usize,
        /// Where the second starts: its line, and its index in a JSON array.
        second: (u64, Option<u64>),
    },
}

/// Explain the one profile in `bytes` (a byte-order mark is skipped).
pub fn explain(engine: &Engine, bytes: &[u8]) -> Explained {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // One profile: a file of several gets an error that says so, not "unexpected data".
    let mut splitter = Splitter::new(Box::new(io::Cursor::new(bytes.to_vec())), usize::MAX);
    let mut scratch = Vec::new();
    let mut starts = Vec::new();
    while let Some(item) = splitter.next_item(&mut scratch) {
        scratch.clear();
        if item.kind != ItemKind::Blank {
            starts.push((item.line, item.index));
        }
    }
    if let Some(&second) = starts.get(1) {
        return Explained::SeveralRecords {
            count: starts.len(),
            second,
        };
    }
    let mut t = String::new();
    let profile = match engine.parse_profile(bytes) {
        Ok(p) => p,
        Err(r) => {
            let _ = writeln!(
                t,
                "profile {} is invalid:",
                r.id.as_deref().unwrap_or("(no id)")
            );
            for p in &r.problems {
                let at = if p.pointer.is_empty() {
                    "(record)"
                } else {
                    &p.pointer
                };
                let _ = write!(t, "  {at}: {} [{}]", p.message, p.code);
                if let Some(h) = &p.help {
                    let _ = write!(t, "\n    help: {h}");
                }
                t.push('\n');
            }
            return Explained::Invalid(t);
        }
    };
    if !engine.several() {
        screening_text(&mut t, &engine.screen(&profile), engine.rules());
        return Explained::Screened(t);
    }
    // Several packs: the comparison first, then each pack's screening as one pack's would read.
    let screenings = engine.screen_packs_with(&profile, &mut crate::vocab::MatchCache::new());
    let reported = super::ReportedPacks::new(&screenings, Severity::Info);
    let _ = writeln!(t, "profile {}: {}", profile.id, reported.comparison());
    for (s, pack) in screenings.iter().zip(engine.screening_packs()) {
        let _ = write!(t, "\n== {} ==\n", pack.name());
        screening_text(&mut t, s, &pack.program().rules);
    }
    Explained::Screened(t)
}

/// One pack's screening in prose.
fn screening_text(t: &mut String, s: &Screening<'_>, rules: &[Rule]) {
    let verdict = match s.status {
        Status::Clear => "CLEAR: no caution".to_owned(),
        Status::Flagged => format!(
            "FLAGGED: {} caution{}, highest {}",
            s.cautions.len(),
            plural(s.cautions.len()),
            s.max_severity.map_or("", Severity::as_str)
        ),
    };
    let _ = writeln!(t, "profile {} ({}): {verdict}", s.id, s.ruleset);
    for c in &s.cautions {
        let _ = write!(
            t,
            "\n[{}] {}: {}\n",
            c.severity.as_str().to_uppercase(),
            c.rule,
            c.title
        );
        let _ = write!(t, "  {}\n  action: {}\n  because:\n", c.message, c.action);
        for e in &c.evidence {
            let _ = writeln!(t, "    {}", evidence_text(e));
        }
        for src in c.sources {
            let _ = writeln!(t, "  source: {}", source_text(src));
        }
    }
    if !s.indeterminate.is_empty() {
        let _ = write!(
            t,
            "\ncould not evaluate {} rule{} (facts missing):\n",
            s.indeterminate.len(),
            plural(s.indeterminate.len())
        );
        for i in &s.indeterminate {
            let title = rules.get(i.index).map_or("", |r| r.title.as_str());
            let _ = writeln!(t, "  {} ({title}): needs {}", i.rule, i.missing.join(", "));
        }
    }
    let decided = rules
        .len()
        .saturating_sub(s.cautions.len() + s.indeterminate.len());
    let _ = write!(
        t,
        "\n{decided} other rules did not apply or found nothing.\n"
    );
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
