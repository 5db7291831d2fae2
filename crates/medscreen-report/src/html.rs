//! The page: one self-contained HTML file, written from the counts after suppression.
//!
//! Everything is inline (CSS, SVG charts drawn here, a few lines of script that only sort tables), so
//! the file opens offline and prints. Every text from the data (rule, fact, pack and file names) goes
//! through [`esc`]. The page stays under 2 MB whatever the input: names are cut to [`MAX_NAME`]
//! characters and each table to a fixed number of rows, with "and N more". A hidden count never
//! reaches the page in any form: no share, bar or sort key is derived from it, and rows are ranked by
//! what is shown.
//!
//! Each count cell carries `data-count` (its field) inside an element with `data-key` (its row), so a
//! test can read the page's numbers back; the keys use the names of the run's summary JSON.

use std::fmt::Write as _;

use crate::summary::RunSummary;
use crate::suppress::{Cell, CellId, Grid};
use crate::tally::{AGE_BANDS, MIX, PackTally, SEXES, Tally};

/// Characters of a name shown before it is cut.
pub(crate) const MAX_NAME: usize = 64;
const MAX_PACKS_SHOWN: usize = 6;
const MAX_RULES_SHOWN: usize = 100;
const MAX_FACTS_SHOWN: usize = 40;
const MAX_CODES_SHOWN: usize = 40;
const MAX_PAIRS_SHOWN: usize = 20;
const MAX_CHART_RULES: usize = 25;
const MAX_INPUTS_SHOWN: usize = 20;
const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A name cut to [`MAX_NAME`] characters, escaped.
fn name(s: &str) -> String {
    if s.chars().count() <= MAX_NAME {
        esc(s)
    } else {
        let cut: String = s.chars().take(MAX_NAME).collect();
        format!("{}…", esc(&cut))
    }
}

/// Picks one measure's cell out of a set of record counts.
type Measure = fn(&RecordIds) -> CellId;
/// The same measure's count in a pack's tally.
type PackCount = fn(&PackTally) -> u64;

#[derive(Clone, Copy)]
struct RecordIds {
    screened: CellId,
    clear: CellId,
    flagged: CellId,
    /// Flagged by highest severity: info, warning, critical.
    mx: [CellId; 3],
    cautions_total: CellId,
    cautions: [CellId; 3],
}

struct RuleIds {
    name: String,
    fired: [CellId; 3],
    fired_total: CellId,
    indeterminate: CellId,
    not_applicable: CellId,
}

struct PackIds<'t> {
    name: &'t str,
    tally: &'t PackTally,
    counts: RecordIds,
    rules: Vec<RuleIds>,
    rules_more: usize,
    facts: Vec<(&'t str, CellId, CellId)>,
    facts_more: usize,
    pairs: Vec<(&'t str, &'t str, CellId)>,
    pairs_more: usize,
}

struct DemoIds {
    /// Rows with anyone in them: label, row total, clear/info/warning/critical.
    rows: Vec<(String, CellId, [CellId; 4])>,
    totals: [CellId; 4],
    grand: CellId,
}

/// The page's cells and how they are shown.
struct Layout<'t> {
    read: CellId,
    invalid: CellId,
    skipped: CellId,
    records: RecordIds,
    codes: Vec<(&'t str, CellId)>,
    codes_more: usize,
    packs: Vec<PackIds<'t>>,
    packs_more: usize,
    /// Records were screened by several packs each: the packs' record counts overlap.
    overlapping: bool,
    demo: Option<DemoIds>,
    cells: Vec<Cell>,
}

fn counts(
    grid: &mut Grid,
    clear: u64,
    flagged: u64,
    mx: [u64; 3],
    cautions: [u64; 3],
) -> RecordIds {
    let screened = grid.cell(clear + flagged);
    let clear = grid.cell(clear);
    let flagged = grid.cell(flagged);
    let mx = mx.map(|v| grid.cell(v));
    let cautions_total = grid.cell(cautions.iter().sum());
    let cautions = cautions.map(|v| grid.cell(v));
    grid.group(vec![screened, clear, flagged]);
    grid.group([vec![flagged], mx.to_vec()].concat());
    grid.group([vec![screened, clear], mx.to_vec()].concat());
    grid.group([vec![cautions_total], cautions.to_vec()].concat());
    RecordIds {
        screened,
        clear,
        flagged,
        mx,
        cautions_total,
        cautions,
    }
}

/// Adds a group of shown cells plus, when part of the sum is left off the page, one omitted cell.
fn group_with_rest(grid: &mut Grid, total: (CellId, u64), parts: &[(CellId, u64)], more: bool) {
    let mut members = vec![total.0];
    members.extend(parts.iter().map(|p| p.0));
    if more {
        let shown: u64 = parts.iter().map(|p| p.1).sum();
        members.push(grid.omitted(total.1.saturating_sub(shown)));
    }
    grid.group(members);
}

impl<'t> Layout<'t> {
    fn new(t: &'t Tally, min_cell: u64) -> Layout<'t> {
        let mut g = Grid::default();
        let read = g.cell(t.read);
        let invalid = g.cell(t.invalid);
        let skipped = g.cell(t.skipped);
        let records = counts(&mut g, t.clear, t.flagged, t.max_severity, t.cautions);
        let r = &records;
        g.group(vec![read, r.screened, invalid, skipped]);
        g.group(vec![read, r.clear, r.flagged, invalid, skipped]);
        g.group([vec![read, r.clear, invalid, skipped], r.mx.to_vec()].concat());

        let ranked = t.invalid_by_code.ranked(|v| *v);
        let codes: Vec<(&str, CellId, u64)> = ranked
            .iter()
            .take(MAX_CODES_SHOWN)
            .map(|(k, v)| (*k, g.cell(**v), **v))
            .collect();
        let codes_more = ranked.len().saturating_sub(MAX_CODES_SHOWN);
        let parts: Vec<(CellId, u64)> = codes.iter().map(|c| (c.1, c.2)).collect();
        let more = codes_more > 0 || t.invalid_by_code.other_names;
        group_with_rest(&mut g, (invalid, t.invalid), &parts, more);

        let packs_ranked = t.packs.ranked(|p| p.screened());
        let single = packs_ranked.len() == 1 && !t.packs.other_names;
        let mut packs = Vec::new();
        for (pack_name, p) in packs_ranked.iter().take(MAX_PACKS_SHOWN) {
            let same = single
                && p.clear == t.clear
                && p.flagged == t.flagged
                && p.max_severity == t.max_severity
                && p.cautions == t.cautions;
            let ids = if same {
                records
            } else {
                counts(&mut g, p.clear, p.flagged, p.max_severity, p.cautions)
            };
            packs.push(pack_layout(&mut g, pack_name, p, ids));
        }
        let packs_more = packs_ranked.len().saturating_sub(MAX_PACKS_SHOWN);
        if !(single && packs.len() == 1) {
            // Each measure summed over the packs is the page's total of that measure.
            let more = packs_more > 0 || t.packs.other_names;
            let measures: [(Measure, PackCount, u64); 6] = [
                (|r| r.screened, |p| p.screened(), t.clear + t.flagged),
                (|r| r.clear, |p| p.clear, t.clear),
                (|r| r.flagged, |p| p.flagged, t.flagged),
                (|r| r.mx[0], |p| p.max_severity[0], t.max_severity[0]),
                (|r| r.mx[1], |p| p.max_severity[1], t.max_severity[1]),
                (|r| r.mx[2], |p| p.max_severity[2], t.max_severity[2]),
            ];
            // Records screened by several packs are counted once on the page and once by each pack, so
            // the packs' record counts overlap; their cautions still add up.
            let measures = if t.overlapping {
                &[][..]
            } else {
                &measures[..]
            };
            for &(id, value, total) in measures {
                let parts: Vec<(CellId, u64)> = packs
                    .iter()
                    .map(|p| (id(&p.counts), value(p.tally)))
                    .collect();
                group_with_rest(&mut g, (id(&records), total), &parts, more);
            }
            for s in 0..3 {
                let parts: Vec<(CellId, u64)> = packs
                    .iter()
                    .map(|p| (at(&p.counts.cautions, s), at(&p.tally.cautions, s)))
                    .collect();
                let total = (at(&records.cautions, s), at(&t.cautions, s));
                group_with_rest(&mut g, total, &parts, more);
            }
        }

        let demo = t.demographics.as_ref().map(|d| {
            let mut col_totals = [0u64; 4];
            for band in &d.cells {
                for sex in band {
                    for (c, v) in col_totals.iter_mut().zip(sex) {
                        *c += v;
                    }
                }
            }
            let grand_v: u64 = col_totals.iter().sum();
            let r = &records;
            let same = col_totals
                == [
                    t.clear,
                    t.max_severity[0],
                    t.max_severity[1],
                    t.max_severity[2],
                ];
            let (totals, grand) = if same {
                ([r.clear, r.mx[0], r.mx[1], r.mx[2]], r.screened)
            } else {
                let totals = col_totals.map(|v| g.cell(v));
                let grand = g.cell(grand_v);
                g.group([vec![grand], totals.to_vec()].concat());
                (totals, grand)
            };
            let mut rows = Vec::new();
            for (b, band) in d.cells.iter().enumerate() {
                for (s, mix) in band.iter().enumerate() {
                    let total: u64 = mix.iter().sum();
                    if total == 0 {
                        continue;
                    }
                    let label = format!("{} · {}", label(&AGE_BANDS, b), label(&SEXES, s));
                    let row_total = g.cell(total);
                    let cells = mix.map(|v| g.cell(v));
                    g.group([vec![row_total], cells.to_vec()].concat());
                    rows.push((label, row_total, cells));
                }
            }
            g.group([vec![grand], rows.iter().map(|r| r.1).collect()].concat());
            for (j, total) in totals.iter().enumerate() {
                let col: Vec<CellId> = rows.iter().map(|r| at(&r.2, j)).collect();
                g.group([vec![*total], col].concat());
            }
            DemoIds {
                rows,
                totals,
                grand,
            }
        });

        let cells = g.solve(min_cell);
        Layout {
            read,
            invalid,
            skipped,
            records,
            codes: codes.iter().map(|c| (c.0, c.1)).collect(),
            codes_more,
            packs,
            packs_more,
            overlapping: t.overlapping,
            demo,
            cells,
        }
    }

    fn cell(&self, id: CellId) -> Cell {
        self.cells.get(id).copied().unwrap_or(Cell::Omitted)
    }

    fn shown(&self, id: CellId) -> Option<u64> {
        self.cell(id).shown()
    }
}

fn at<T: Copy + Default>(a: &[T], i: usize) -> T {
    a.get(i).copied().unwrap_or_default()
}

fn label(names: &[&'static str], i: usize) -> &'static str {
    names.get(i).copied().unwrap_or("")
}

fn pack_layout<'t>(
    g: &mut Grid,
    pack_name: &'t str,
    p: &'t PackTally,
    counts: RecordIds,
) -> PackIds<'t> {
    let screened = p.screened();
    let ranked = p.rules.ranked(|r| (r.fired_total(), r.indeterminate));
    let mut rules = Vec::new();
    for (rule, r) in ranked.iter().take(MAX_RULES_SHOWN) {
        let fired = r.fired.map(|v| g.cell(v));
        let fired_total = g.cell(r.fired_total());
        let indeterminate = g.cell(r.indeterminate);
        let na = screened.saturating_sub(r.fired_total() + r.indeterminate);
        let not_applicable = g.cell(na);
        g.group([vec![fired_total], fired.to_vec()].concat());
        g.group(vec![
            counts.screened,
            fired_total,
            indeterminate,
            not_applicable,
        ]);
        g.group(
            [
                vec![counts.screened, indeterminate, not_applicable],
                fired.to_vec(),
            ]
            .concat(),
        );
        rules.push(RuleIds {
            name: (*rule).to_owned(),
            fired,
            fired_total,
            indeterminate,
            not_applicable,
        });
    }
    let rules_more = ranked.len().saturating_sub(MAX_RULES_SHOWN);
    let more = rules_more > 0 || p.rules.other_names;
    let shown_rules: Vec<&crate::tally::RuleTally> =
        ranked.iter().take(MAX_RULES_SHOWN).map(|r| r.1).collect();
    for s in 0..3 {
        let parts: Vec<(CellId, u64)> = rules
            .iter()
            .zip(&shown_rules)
            .map(|(ids, r)| (at(&ids.fired, s), at(&r.fired, s)))
            .collect();
        let total = (at(&counts.cautions, s), at(&p.cautions, s));
        group_with_rest(g, total, &parts, more);
    }
    let parts: Vec<(CellId, u64)> = rules
        .iter()
        .zip(&shown_rules)
        .map(|(ids, r)| (ids.fired_total, r.fired_total()))
        .collect();
    let total = (counts.cautions_total, p.cautions.iter().sum());
    group_with_rest(g, total, &parts, more);

    let ranked_facts = p.facts.ranked(|f| (f.records, f.undecided));
    let facts = ranked_facts
        .iter()
        .take(MAX_FACTS_SHOWN)
        .map(|(f, v)| (*f, g.cell(v.records), g.cell(v.undecided)))
        .collect();
    let facts_more = ranked_facts.len().saturating_sub(MAX_FACTS_SHOWN);

    let mut names: Vec<&str> = vec![""; p.rules.map.len() + 1];
    for (rule, r) in &p.rules.map {
        if let Some(slot) = usize::try_from(r.id).ok().and_then(|i| names.get_mut(i)) {
            *slot = rule.as_str();
        }
    }
    let mut pairs_ranked: Vec<(&str, &str, u64)> = p
        .pairs
        .iter()
        .map(|(&(a, b), &n)| {
            let name_of = |i: u32| usize::try_from(i).ok().and_then(|i| names.get(i)).copied();
            let (a, b) = (name_of(a).unwrap_or(""), name_of(b).unwrap_or(""));
            if a <= b { (a, b, n) } else { (b, a, n) }
        })
        .collect();
    pairs_ranked.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(y.0)).then(x.1.cmp(y.1)));
    let pairs_more = pairs_ranked.len().saturating_sub(MAX_PAIRS_SHOWN);
    let pairs = pairs_ranked
        .into_iter()
        .take(MAX_PAIRS_SHOWN)
        .map(|(a, b, n)| (a, b, g.cell(n)))
        .collect();
    PackIds {
        name: pack_name,
        tally: p,
        counts,
        rules,
        rules_more,
        facts,
        facts_more,
        pairs,
        pairs_more,
    }
}

const STYLE: &str = "
:root{--ink:#1b1f24;--muted:#5b6470;--line:#d6dbe1;--crit:#b42318;--warn:#b54708;--info:#175cd3;--clear:#067647;--ind:#6941c6}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);margin:2rem auto;max-width:70rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:1.2rem 0 .4rem}p.note,.muted{color:var(--muted)}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:.2rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f3f5f7;font-weight:600}
table.sortable th{cursor:pointer}td.hidden{color:var(--muted)}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:var(--muted)}dd{margin:0}
svg{display:block;margin:.4rem 0 1rem;max-width:100%}svg text{font:12px system-ui,sans-serif;fill:var(--ink)}
.crit{fill:var(--crit)}.warn{fill:var(--warn)}.info{fill:var(--info)}.clear{fill:var(--clear)}.ind{fill:var(--ind)}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}table,svg{break-inside:avoid}
th{background:none}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
";

const SCRIPT: &str = "document.querySelectorAll('table.sortable thead th').forEach(function(th,i){\
th.title='Sort';th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0],\
d=th.getAttribute('data-dir')==='d'?'a':'d';th.setAttribute('data-dir',d);\
var k=function(c){var v=c.getAttribute('data-sort');return v===null?c.textContent:Number(v)};\
Array.prototype.slice.call(b.rows).sort(function(x,y){var p=k(x.cells[i]),q=k(y.cells[i]);\
return (p<q?-1:p>q?1:0)*(d==='a'?1:-1)}).forEach(function(r){b.appendChild(r)})})});";

/// Writes the page.
pub(crate) fn render(
    t: &Tally,
    summary: Option<&RunSummary>,
    min_cell: u64,
    title: &str,
) -> String {
    let l = Layout::new(t, min_cell);
    let mut p = Page {
        out: String::new(),
        l: &l,
        min_cell,
    };
    p.head(title);
    p.legend();
    p.provenance(t, summary);
    p.records();
    if l.packs.len() + l.packs_more > 1 {
        p.packs_side_by_side();
    }
    for pack in &l.packs {
        p.pack(pack);
    }
    if l.packs_more > 0 {
        p.line(&format!(
            "<p class=\"note\">and {} more packs, not detailed here.</p>",
            l.packs_more
        ));
    }
    p.invalid();
    p.demographics();
    p.line(&format!(
        "<footer><p class=\"note\">Made by medscreen-report {}. Aggregates only: no record id or value \
         is on this page.</p></footer>",
        env!("CARGO_PKG_VERSION")
    ));
    p.line(&format!("<script>{SCRIPT}</script>\n</body>\n</html>"));
    p.out
}

struct Page<'l, 't> {
    out: String,
    l: &'l Layout<'t>,
    min_cell: u64,
}

impl Page<'_, '_> {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// One count cell: the count, `<min_cell`, or `*`; `key` names it for tests and readers.
    fn td(&mut self, key: &str, id: CellId) {
        let out = &mut self.out;
        match self.l.cell(id) {
            Cell::Shown(v) => {
                let _ = write!(out, "<td data-count=\"{key}\" data-sort=\"{v}\">{v}</td>");
            }
            Cell::Small => {
                let _ = write!(
                    out,
                    "<td class=\"hidden\" data-count=\"{key}\" data-sort=\"-1\">&lt;{}</td>",
                    self.min_cell
                );
            }
            Cell::Complement | Cell::Omitted => {
                let _ = write!(
                    out,
                    "<td class=\"hidden\" data-count=\"{key}\" data-sort=\"-1\" \
                     title=\"hidden so that a small count cannot be worked out\">*</td>"
                );
            }
        }
    }

    /// A share of `of`, shown only when both counts are shown.
    fn share(&mut self, part: CellId, of: CellId) {
        match (self.l.shown(part), self.l.shown(of)) {
            (Some(n), Some(d)) if d > 0 => {
                let pct = n as f64 * 100.0 / d as f64;
                let _ = write!(self.out, "<td data-sort=\"{pct:.3}\">{pct:.1}%</td>");
            }
            _ => self.out.push_str("<td data-sort=\"-1\"></td>"),
        }
    }

    fn head(&mut self, title: &str) {
        let title = esc(title);
        self.line("<!DOCTYPE html>");
        self.line("<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">");
        self.line("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        self.line(&format!(
            "<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>"
        ));
        self.line(&format!("<header><h1>{title}</h1>"));
    }

    fn legend(&mut self) {
        let m = self.min_cell;
        self.line(&format!(
            "<p class=\"note\">Counts from 1 to {} are shown as <b>&lt;{m}</b>; <b>*</b> marks a count \
             hidden so that a small one cannot be worked out by subtracting shown counts from a shown \
             total. Shares are given only where both counts are shown. Click a column heading to sort \
             (the page reads the same without script).</p></header>",
            m.saturating_sub(1)
        ));
    }

    fn provenance(&mut self, t: &Tally, summary: Option<&RunSummary>) {
        self.line("<section id=\"provenance\"><h2>Provenance</h2><dl>");
        let mut files = String::new();
        for (i, (n, _lines, bytes)) in t.inputs.iter().take(MAX_INPUTS_SHOWN).enumerate() {
            if i > 0 {
                files.push_str(", ");
            }
            let _ = write!(files, "<code>{}</code> ({bytes} bytes)", name(n));
        }
        let more = t.inputs.len().saturating_sub(MAX_INPUTS_SHOWN) as u64 + t.inputs_dropped;
        if more > 0 {
            let _ = write!(files, " and {more} more");
        }
        if files.is_empty() {
            files.push_str("results passed by the caller");
        }
        self.line(&format!("<dt>Results read</dt><dd>{files}</dd>"));
        let packs: Vec<String> = self
            .l
            .packs
            .iter()
            .map(|p| format!("<code>{}</code>", name(p.name)))
            .collect();
        if !packs.is_empty() {
            self.line(&format!(
                "<dt>Rule packs</dt><dd>{}{}</dd>",
                packs.join(", "),
                if self.l.packs_more > 0 {
                    " and more"
                } else {
                    ""
                }
            ));
        }
        let Some(s) = summary else {
            self.line(
                "</dl><p class=\"note\">No run summary was given: ruleset, inputs, evaluation date and \
                 run time come from <code>medscreen screen --summary FILE</code>.</p></section>",
            );
            return;
        };
        if let Some(r) = &s.ruleset {
            self.line(&format!(
                "<dt>Ruleset of the run</dt><dd><code>{}</code></dd>",
                name(r)
            ));
        }
        if !s.inputs.is_empty() {
            // An input that a result line also names is one record's file (a FHIR Bundle is often
            // named after its patient): not shown.
            let (withheld, named): (Vec<&String>, Vec<&String>) = s
                .inputs
                .iter()
                .partition(|i| t.record_inputs.may_contain(i));
            let mut v: Vec<String> = named
                .iter()
                .take(MAX_INPUTS_SHOWN)
                .map(|i| format!("<code>{}</code>", name(i)))
                .collect();
            if named.len() > MAX_INPUTS_SHOWN {
                v.push(format!("and {} more", named.len() - MAX_INPUTS_SHOWN));
            }
            if !withheld.is_empty() {
                v.push("files named in the results (names withheld)".to_owned());
            }
            self.line(&format!(
                "<dt>Inputs screened</dt><dd>{}</dd>",
                v.join(", ")
            ));
        }
        if let Some(b) = s.bytes {
            self.line(&format!("<dt>Input size</dt><dd>{b} bytes</dd>"));
        }
        // No `files_read`: with one Bundle per patient it is a count of people outside the suppression.
        if let Some(d) = &s.as_of {
            self.line(&format!("<dt>Evaluation date</dt><dd>{}</dd>", name(d)));
        }
        if let Some(e) = s.elapsed_seconds.filter(|e| e.is_finite() && *e >= 0.0) {
            let rate = s
                .bytes
                .filter(|_| e > 0.0)
                .map(|b| format!(" ({:.1} MB/s)", b as f64 / 1e6 / e))
                .unwrap_or_default();
            self.line(&format!("<dt>Run time</dt><dd>{e:.2} s{rate}</dd>"));
        }
        let differs = crate::check::disagreements(t, s);
        let verdict = if differs.is_empty() {
            "agrees with these results on every count it has".to_owned()
        } else {
            let v: Vec<String> = differs
                .iter()
                .map(|d| format!("<code>{d}</code>"))
                .collect();
            format!("differs from these results in {}", v.join(", "))
        };
        self.line(&format!(
            "<dt>Run summary</dt><dd>{verdict}</dd></dl></section>"
        ));
    }

    fn records(&mut self) {
        let r = self.l.records;
        let (read, invalid, skipped) = (self.l.read, self.l.invalid, self.l.skipped);
        self.line("<section id=\"records\"><h2>Records</h2>");
        self.line(
            "<table data-key=\"records\"><thead><tr><th>read</th><th>screened</th><th>clear</th>\
                   <th>flagged</th><th>invalid</th><th>skipped</th></tr></thead><tbody><tr>",
        );
        for (key, id) in [
            ("read", read),
            ("screened", r.screened),
            ("clear", r.clear),
            ("flagged", r.flagged),
            ("invalid", invalid),
            ("skipped", skipped),
        ] {
            self.td(key, id);
        }
        self.line("</tr></tbody></table>");
        self.line("<h3>Severity mix: screened records by their most severe caution</h3>");
        let mix = [r.clear, r.mx[0], r.mx[1], r.mx[2]];
        self.bars(&MIX, &mix, &["clear", "info", "warn", "crit"]);
        self.line(
            "<table data-key=\"max_severity\"><thead><tr><th>clear</th><th>info</th>\
                   <th>warning</th><th>critical</th></tr></thead><tbody><tr>",
        );
        for (key, id) in MIX.iter().zip(mix) {
            self.td(key, id);
        }
        self.line("</tr><tr>");
        for id in mix {
            self.share(id, r.screened);
        }
        self.line("</tr></tbody></table>");
        self.line("<h3>Cautions by severity</h3>");
        self.line(
            "<table data-key=\"cautions_by_severity\"><thead><tr><th>all</th><th>info</th>\
                   <th>warning</th><th>critical</th></tr></thead><tbody><tr>",
        );
        self.td("all", r.cautions_total);
        for (key, id) in SEVERITIES.iter().zip(r.cautions) {
            self.td(key, id);
        }
        self.line("</tr></tbody></table></section>");
    }

    /// Horizontal bars of shown counts; a hidden count gets its label and no bar.
    fn bars(&mut self, labels: &[&str], ids: &[CellId], classes: &[&str]) {
        let max = ids
            .iter()
            .filter_map(|&i| self.l.shown(i))
            .max()
            .unwrap_or(0)
            .max(1);
        let (row, label_w, bar_w) = (22usize, 90usize, 420.0f64);
        let height = row * ids.len() + 4;
        let mut svg = format!(
            "<svg role=\"img\" aria-label=\"bar chart\" width=\"{}\" height=\"{height}\" \
             viewBox=\"0 0 {} {height}\">",
            label_w + 520,
            label_w + 520
        );
        for (i, &id) in ids.iter().enumerate() {
            let y = i * row;
            let lab = labels.get(i).copied().unwrap_or("");
            let class = classes.get(i).copied().unwrap_or("info");
            let _ = write!(svg, "<text x=\"0\" y=\"{}\">{}</text>", y + 15, esc(lab));
            match self.l.cell(id) {
                Cell::Shown(v) => {
                    let w = v as f64 / max as f64 * bar_w;
                    let _ = write!(
                        svg,
                        "<rect class=\"{class}\" x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"16\"/>\
                         <text x=\"{:.1}\" y=\"{}\">{v}</text>",
                        y + 3,
                        label_w as f64 + w + 4.0,
                        y + 15
                    );
                }
                Cell::Small => {
                    let _ = write!(
                        svg,
                        "<text x=\"{label_w}\" y=\"{}\">&lt;{}</text>",
                        y + 15,
                        self.min_cell
                    );
                }
                Cell::Complement | Cell::Omitted => {
                    let _ = write!(svg, "<text x=\"{label_w}\" y=\"{}\">*</text>", y + 15);
                }
            }
        }
        svg.push_str("</svg>");
        self.line(&svg);
    }

    fn packs_side_by_side(&mut self) {
        self.line("<section id=\"packs\"><h2>Packs side by side</h2><table data-key=\"packs\"><thead><tr><th>measure</th>");
        let l = self.l;
        for p in &l.packs {
            self.out
                .push_str(&format!("<th><code>{}</code></th>", name(p.name)));
        }
        self.line("</tr></thead><tbody>");
        let rows: [(&str, Measure); 10] = [
            ("screened", |r| r.screened),
            ("clear", |r| r.clear),
            ("flagged", |r| r.flagged),
            ("flagged, most severe info", |r| r.mx[0]),
            ("flagged, most severe warning", |r| r.mx[1]),
            ("flagged, most severe critical", |r| r.mx[2]),
            ("cautions", |r| r.cautions_total),
            ("info cautions", |r| r.cautions[0]),
            ("warning cautions", |r| r.cautions[1]),
            ("critical cautions", |r| r.cautions[2]),
        ];
        for (label, id) in rows {
            self.out
                .push_str(&format!("<tr data-key=\"{label}\"><td>{label}</td>"));
            for (i, p) in l.packs.iter().enumerate() {
                self.td(&i.to_string(), id(&p.counts));
            }
            self.line("</tr>");
        }
        let mut more = if l.packs_more > 0 {
            format!("<p class=\"note\">and {} more packs.</p>", l.packs_more)
        } else {
            String::new()
        };
        if l.overlapping {
            more.push_str("<p class=\"note\">Records were screened by several packs in one pass: each pack counts every record it screened, so the packs' record counts overlap and do not add up to the page's; their cautions do.</p>");
        }
        self.line(&format!("</tbody></table>{more}</section>"));
    }

    fn pack(&mut self, p: &PackIds<'_>) {
        let l = self.l;
        self.line(&format!(
            "<section class=\"pack\" data-key=\"{}\"><h2>Pack <code>{}</code></h2>",
            name(p.name),
            name(p.name)
        ));
        self.line("<h3>Rules</h3><p class=\"note\">Per rule, over the records this pack screened: \
                   cautions by tier severity, undecided (indeterminate: a fact it needs is missing), and \
                   not applicable (neither). Rules that never fired nor were undecided are not in the \
                   results, so not listed.</p>");
        // Chart: the rules with the most shown cautions.
        let mut chart: Vec<&RuleIds> = p.rules.iter().collect();
        chart.sort_by(|a, b| {
            let k = |r: &RuleIds| (l.shown(r.fired_total), l.shown(r.indeterminate));
            k(b).cmp(&k(a)).then(a.name.cmp(&b.name))
        });
        chart.truncate(MAX_CHART_RULES);
        self.rule_chart(&chart);
        let mut rows: Vec<&RuleIds> = p.rules.iter().collect();
        rows.sort_by(|a, b| {
            let k = |r: &RuleIds| l.shown(r.fired_total);
            k(b).cmp(&k(a)).then(a.name.cmp(&b.name))
        });
        self.line("<table class=\"sortable\" data-key=\"rules\"><thead><tr><th>rule</th><th>critical</th>\
                   <th>warning</th><th>info</th><th>fired</th><th>fired share</th><th>indeterminate</th>\
                   <th>indeterminate share</th><th>not applicable</th></tr></thead><tbody>");
        for r in rows {
            self.out.push_str(&format!(
                "<tr data-key=\"{}\"><td><code>{}</code></td>",
                name(&r.name),
                name(&r.name)
            ));
            self.td("critical", at(&r.fired, 2));
            self.td("warning", at(&r.fired, 1));
            self.td("info", at(&r.fired, 0));
            self.td("fired", r.fired_total);
            self.share(r.fired_total, p.counts.screened);
            self.td("indeterminate", r.indeterminate);
            self.share(r.indeterminate, p.counts.screened);
            self.td("not_applicable", r.not_applicable);
            self.line("</tr>");
        }
        self.line("</tbody></table>");
        self.more(p.rules_more, p.tally.rules.other_names, "rules");

        self.line("<h3>Missing facts that leave rules undecided</h3><p class=\"note\">The export's data \
                   gaps: records where the fact's absence left at least one rule undecided, and the rule \
                   results it left undecided.</p>");
        if p.facts.is_empty() {
            self.line("<p>No rule was left undecided.</p>");
        } else {
            self.line("<table class=\"sortable\" data-key=\"facts\"><thead><tr><th>fact</th><th>records</th>\
                       <th>share of screened</th><th>undecided rule results</th></tr></thead><tbody>");
            let mut facts: Vec<&(&str, CellId, CellId)> = p.facts.iter().collect();
            facts.sort_by(|a, b| l.shown(b.1).cmp(&l.shown(a.1)).then(a.0.cmp(b.0)));
            for (f, records, undecided) in facts {
                self.out.push_str(&format!(
                    "<tr data-key=\"{}\"><td><code>{}</code></td>",
                    name(f),
                    name(f)
                ));
                self.td("records", *records);
                self.share(*records, p.counts.screened);
                self.td("undecided", *undecided);
                self.line("</tr>");
            }
            self.line("</tbody></table>");
            self.more(p.facts_more, p.tally.facts.other_names, "facts");
        }

        self.line("<h3>Rules that fire together</h3>");
        if p.pairs.is_empty() {
            self.line("<p>No record had two rules fire.</p>");
        } else {
            self.line("<table class=\"sortable\" data-key=\"pairs\"><thead><tr><th>rule</th><th>with rule</th>\
                       <th>records</th></tr></thead><tbody>");
            let mut pairs: Vec<&(&str, &str, CellId)> = p.pairs.iter().collect();
            pairs.sort_by(|a, b| {
                l.shown(b.2)
                    .cmp(&l.shown(a.2))
                    .then(a.0.cmp(b.0))
                    .then(a.1.cmp(b.1))
            });
            for (a, b, n) in pairs {
                self.out.push_str(&format!(
                    "<tr data-key=\"{}+{}\"><td><code>{}</code></td><td><code>{}</code></td>",
                    name(a),
                    name(b),
                    name(a),
                    name(b)
                ));
                self.td("records", *n);
                self.line("</tr>");
            }
            self.line("</tbody></table>");
            self.more(p.pairs_more, p.tally.pairs_dropped, "pairs");
        }
        self.line("</section>");
    }

    fn more(&mut self, n: usize, other: bool, what: &str) {
        if n > 0 || other {
            let n = if n > 0 {
                format!("{n} more")
            } else {
                "more".to_owned()
            };
            let cap = if other {
                " (names beyond the report's cap were counted together)"
            } else {
                ""
            };
            self.line(&format!(
                "<p class=\"note\">and {n} {what}, not listed{cap}.</p>"
            ));
        }
    }

    fn rule_chart(&mut self, rules: &[&RuleIds]) {
        let l = self.l;
        let max = rules
            .iter()
            .flat_map(|r| [l.shown(r.fired_total), l.shown(r.indeterminate)])
            .flatten()
            .max()
            .unwrap_or(0)
            .max(1);
        let (label_w, bar_w, row) = (260usize, 360.0f64, 30usize);
        let height = row * rules.len() + 24;
        let width = label_w + 420;
        let mut svg = format!(
            "<svg role=\"img\" aria-label=\"cautions and undecided results per rule\" width=\"{width}\" \
             height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
             <rect class=\"warn\" x=\"0\" y=\"2\" width=\"10\" height=\"10\"/><text x=\"14\" y=\"11\">fired</text>\
             <rect class=\"ind\" x=\"70\" y=\"2\" width=\"10\" height=\"10\"/><text x=\"84\" y=\"11\">indeterminate</text>"
        );
        for (i, r) in rules.iter().enumerate() {
            let y = 24 + i * row;
            let _ = write!(
                svg,
                "<text x=\"0\" y=\"{}\">{}</text>",
                y + 14,
                name(&r.name)
            );
            for (j, (id, class)) in [(r.fired_total, "warn"), (r.indeterminate, "ind")]
                .into_iter()
                .enumerate()
            {
                let by = y + j * 13;
                let text = match l.cell(id) {
                    Cell::Shown(v) => {
                        let w = v as f64 / max as f64 * bar_w;
                        let _ = write!(
                            svg,
                            "<rect class=\"{class}\" x=\"{label_w}\" y=\"{by}\" width=\"{w:.1}\" height=\"11\"/>"
                        );
                        let _ = write!(
                            svg,
                            "<text x=\"{:.1}\" y=\"{}\">{v}</text>",
                            label_w as f64 + w + 4.0,
                            by + 10
                        );
                        continue;
                    }
                    Cell::Small => format!("&lt;{}", self.min_cell),
                    Cell::Complement | Cell::Omitted => "*".to_owned(),
                };
                let _ = write!(svg, "<text x=\"{label_w}\" y=\"{}\">{text}</text>", by + 10);
            }
        }
        svg.push_str("</svg>");
        self.line(&svg);
    }

    fn invalid(&mut self) {
        let l = self.l;
        self.line("<section id=\"invalid\"><h2>Invalid records by problem</h2>\
                   <p class=\"note\">By the code of each record's first problem, as the run's summary counts them.</p>");
        if l.codes.is_empty() {
            self.line("<p>No record was invalid.</p></section>");
            return;
        }
        self.line(
            "<table class=\"sortable\" data-key=\"invalid_by_code\"><thead><tr><th>problem</th>\
                   <th>records</th><th>share of invalid</th></tr></thead><tbody>",
        );
        let mut codes: Vec<&(&str, CellId)> = l.codes.iter().collect();
        codes.sort_by(|a, b| l.shown(b.1).cmp(&l.shown(a.1)).then(a.0.cmp(b.0)));
        for (code, id) in codes {
            self.out.push_str(&format!(
                "<tr data-key=\"{}\"><td><code>{}</code></td>",
                name(code),
                name(code)
            ));
            self.td("records", *id);
            self.share(*id, l.invalid);
            self.line("</tr>");
        }
        self.line("</tbody></table>");
        self.more(l.codes_more, false, "problem codes");
        self.line("</section>");
    }

    fn demographics(&mut self) {
        let l = self.l;
        self.line("<section id=\"demographics\"><h2>Severity by age band and sex</h2>");
        let Some(d) = &l.demo else {
            self.line("<p>Not available: results do not carry age or sex. <code>medscreen screen --report</code> \
                       passes them from the profiles it screens.</p></section>");
            return;
        };
        self.line("<p class=\"note\">Screened records that came with age and sex, by their most severe \
                   caution.</p><table data-key=\"demographics\"><thead><tr><th>age · sex</th><th>screened</th>\
                   <th>clear</th><th>info</th><th>warning</th><th>critical</th></tr></thead><tbody>");
        for (label, total, cells) in &d.rows {
            self.out.push_str(&format!(
                "<tr data-key=\"{}\"><td>{}</td>",
                esc(label),
                esc(label)
            ));
            self.td("screened", *total);
            for (key, id) in MIX.iter().zip(cells) {
                self.td(key, *id);
            }
            self.line("</tr>");
        }
        self.out
            .push_str("</tbody><tfoot><tr data-key=\"all\"><td>all</td>");
        self.td("screened", d.grand);
        for (key, id) in MIX.iter().zip(d.totals) {
            self.td(key, id);
        }
        self.line("</tr></tfoot></table></section>");
    }
}
