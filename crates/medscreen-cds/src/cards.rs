//! Cards: a screening written for the clinician placing the order.
//!
//! One card per caution at or above the minimum severity, most severe first, each with the evidence
//! (and the FHIR resource it came from), the action, the cited sources as links, override reasons, and
//! for a critical caution a suggestion to delete the draft order of the pack's drug (the wording names
//! the drug by the pack's name: no drug is written here). Rules the record could not
//! decide, and the missing-data rules that fired, are gathered into one `info` card listing what to
//! check, shown whatever the minimum severity: a rule that could not be evaluated is never silently a
//! pass. Every card has a fresh v4 uuid so that feedback can be traced to the card it answers.
//!
//! Text from the EHR (medication names, displays) is escaped before it goes into the markdown.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use medscreen_core::Severity;
use medscreen_core::compile::Rule;
use medscreen_core::facts::FactTable;
use medscreen_core::report::{Caution, Evidence, Screening};
use medscreen_core::{Engine, Rejection};
use medscreen_fhir::FhirProblem;
use medscreen_fhir::mapping::Prov;

/// The code system of our override reasons (`.invalid` is reserved: it names, it does not resolve).
pub const OVERRIDE_SYSTEM: &str = "https://medscreen.invalid/fhir/CodeSystem/override-reason";

/// Override reasons offered on every caution card: (code, display).
pub const OVERRIDE_REASONS: [(&str, &str); 5] = [
    (
        "benefit-outweighs-risk",
        "Benefit outweighs the risk for this patient",
    ),
    ("will-monitor", "Will monitor the patient closely"),
    (
        "already-addressed",
        "Already addressed (dose adjusted, plan in place)",
    ),
    ("record-incorrect", "The record is incorrect or out of date"),
    ("specialist-directed", "Directed by a specialist"),
];

/// At most this many characters in a summary (the spec: fewer than 140).
const SUMMARY_MAX: usize = 139;

/// The order that triggered screening.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `MedicationRequest/id` (none when the order has no id: then no delete can name it).
    pub order: Option<String>,
    /// Pointer of the order in the request.
    pub pointer: String,
    /// Its display, when it has one.
    pub display: Option<String>,
}

/// What card building needs besides the screening. It holds the engine rather than the service, so
/// that the service depends on cards and never the other way round.
pub(crate) struct Context<'a> {
    pub engine: &'a Engine,
    pub trigger: &'a Trigger,
    pub min: Severity,
    pub ignored_other_patients: usize,
    pub not_sent: Vec<&'a str>,
}

impl Context<'_> {
    fn rule(&self, id: &str) -> Option<&Rule> {
        self.engine.rules().iter().find(|r| r.id == id)
    }

    /// The drug the cards speak of: the pack's `cds.drug`, by default its name (`baclofen`).
    fn drug(&self) -> &str {
        &self.engine.cds_text().drug
    }

    /// How a card's summary starts: `Baclofen: ...`.
    fn prefix(&self) -> String {
        capitalize(self.drug())
    }
}

/// A resource the request holds but that could not be read: an entry that is not an object, a
/// `resource` without a `resourceType` or with one FHIR does not have (`"MedicationReqest"`), nesting
/// too deep. It is never skipped silently (that would shrink the patient's lists): its list counts as
/// not whole, and the screening's cards say which entries could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable {
    /// JSON Pointer in the request (`/prefetch/medicationRequests/entry/3/resource`), or in a fetched
    /// answer (`/fetched/{key}/...`).
    pub pointer: String,
    /// What is wrong, without the value.
    pub message: &'static str,
}

/// A CDS Hooks card, written as the spec's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// Unique across calls.
    pub uuid: String,
    /// Under 140 characters.
    pub summary: String,
    /// `info`, `warning` or `critical`.
    pub indicator: &'static str,
    /// Markdown.
    pub detail: String,
    /// The cited reference.
    pub source: CardSource,
    /// A delete suggestion for critical cautions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    /// `at-most-one` when there are suggestions.
    #[serde(rename = "selectionBehavior", skip_serializing_if = "Option::is_none")]
    pub selection_behavior: Option<&'static str>,
    /// Reasons a clinician may give for overriding.
    #[serde(rename = "overrideReasons", skip_serializing_if = "Vec::is_empty")]
    pub override_reasons: Vec<Coding>,
    /// The other sources, as links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The rule behind the card (kept for feedback, not sent).
    #[serde(skip)]
    pub rule: Option<String>,
}

/// `Card.source`.
#[derive(Debug, Clone, Serialize)]
pub struct CardSource {
    /// Label.
    pub label: String,
    /// URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The rule, as a coding (`system` is the pack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<Coding>,
}

/// A FHIR Coding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coding {
    /// Code system.
    pub system: String,
    /// Code.
    pub code: String,
    /// Display.
    pub display: String,
}

/// `Card.suggestions[]`.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Label.
    pub label: String,
    /// Unique id.
    pub uuid: String,
    /// Not recommended outright: the clinician weighs it.
    #[serde(rename = "isRecommended")]
    pub is_recommended: bool,
    /// The actions.
    pub actions: Vec<Action>,
}

/// `Suggestion.actions[]`.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// `delete`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it does.
    pub description: String,
    /// The order to delete.
    #[serde(rename = "resourceId")]
    pub resource_id: String,
}

/// `Card.links[]`.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// Label.
    pub label: String,
    /// URL.
    pub url: String,
    /// `absolute`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn pack_source(ctx: &Context<'_>) -> CardSource {
    CardSource {
        label: format!("medscreen {}", ctx.engine.ruleset().label),
        url: None,
        topic: None,
    }
}

fn override_reasons() -> Vec<Coding> {
    OVERRIDE_REASONS
        .iter()
        .map(|(code, display)| Coding {
            system: OVERRIDE_SYSTEM.into(),
            code: (*code).into(),
            display: (*display).into(),
        })
        .collect()
}

/// Cards for a screening.
pub(crate) fn from_screening(
    ctx: &Context<'_>,
    s: &Screening<'_>,
    profile: &Value,
    provenance: &BTreeMap<String, Vec<Prov>>,
) -> Vec<Card> {
    let mut cards = Vec::new();
    let mut to_check: Vec<String> = Vec::new();
    for c in &s.cautions {
        let missing_data = ctx
            .rule(c.rule)
            .is_some_and(|r| r.tags.iter().any(|t| t == "missing-data"));
        if missing_data {
            to_check.push(format!(
                "**{}**: {} {}",
                md(c.title),
                md(c.message),
                md(c.action)
            ));
        } else if c.severity >= ctx.min {
            cards.push(caution_card(ctx, c, profile, provenance));
        }
    }
    // Undecided rules that matter, grouped by the fact they lack: one line per fact to record.
    let mut by_fact: Vec<(&str, Severity, Vec<&str>)> = Vec::new();
    for i in &s.indeterminate {
        let Some(rule) = ctx.rule(i.rule) else {
            continue;
        };
        let sev = rule.max_severity();
        if sev < Severity::Warning {
            continue;
        }
        for f in &i.missing {
            match by_fact.iter_mut().find(|(name, _, _)| name == f) {
                Some(entry) => {
                    entry.1 = entry.1.max(sev);
                    entry.2.push(&rule.title);
                }
                None => by_fact.push((f, sev, vec![&rule.title])),
            }
        }
    }
    by_fact.sort_by_key(|f| std::cmp::Reverse(f.1));
    let facts_to_check = by_fact.len();
    for (fact, sev, titles) in &by_fact {
        let shown: Vec<String> = titles.iter().take(4).map(|t| md(t)).collect();
        let more = titles.len().saturating_sub(4);
        to_check.push(format!(
            "**{}** (up to {}): needed by {}{}",
            capitalize(fact_label(ctx.engine.facts(), fact)),
            sev.as_str(),
            shown.join("; "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if to_check.is_empty() && ctx.not_sent.is_empty() {
        return cards;
    }
    let mut detail = format!(
        "Some {} safety checks could not be completed from the record. Check these before \
         prescribing:\n\n",
        ctx.drug()
    );
    for line in &to_check {
        detail.push_str(&format!("- {line}\n"));
    }
    if !ctx.not_sent.is_empty() {
        detail.push_str(&format!(
            "\nThe EHR did not send complete data for: {}. What it did not send was treated as \
             unknown, not as absent.\n",
            ctx.not_sent
                .iter()
                .map(|f| fact_label(ctx.engine.facts(), f))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if ctx.not_sent.contains(&"comedications") && profile.get("comedications").is_some() {
            detail.push_str(
                "Only the other orders being placed were checked for interactions; the patient's \
                 current medications were not sent.\n",
            );
        }
    }
    if ctx.ignored_other_patients > 0 {
        detail.push_str(&format!(
            "\n{} prefetched resource(s) about another patient were ignored.\n",
            ctx.ignored_other_patients
        ));
    }
    let n = to_check.len() - facts_to_check + facts_to_check.max(usize::from(to_check.is_empty()));
    let title = format!(
        "{}: {n} thing{} to check that the record does not say",
        ctx.prefix(),
        if n == 1 { "" } else { "s" }
    );
    cards.push(plain(ctx, "info", &title, detail));
    cards
}

fn caution_card(
    ctx: &Context<'_>,
    c: &Caution<'_>,
    profile: &Value,
    provenance: &BTreeMap<String, Vec<Prov>>,
) -> Card {
    let mut detail = format!("{}\n\n", md(c.message));
    if !c.evidence.is_empty() {
        detail.push_str("**Evidence**\n\n");
        for e in &c.evidence {
            detail.push_str(&format!(
                "- {}\n",
                evidence_line(ctx.engine.facts(), e, profile, provenance)
            ));
        }
        detail.push('\n');
    }
    detail.push_str(&format!("**Action**: {}\n", md(c.action)));
    if !c.sources.is_empty() {
        detail.push_str("\n**Sources**: ");
        let cited: Vec<String> = c
            .sources
            .iter()
            .map(|s| match (&s.url, &s.citation) {
                (Some(u), _) => format!("[{}]({})", md(&s.label), u),
                (None, Some(cit)) => format!("{} ({})", md(&s.label), md(cit)),
                (None, None) => md(&s.label),
            })
            .collect();
        detail.push_str(&cited.join("; "));
        detail.push('\n');
    }
    let first = c.sources.first();
    let source = CardSource {
        label: first.map_or_else(|| pack_source(ctx).label, |s| s.label.clone()),
        url: first.and_then(|s| s.url.clone()),
        topic: Some(Coding {
            system: format!(
                "https://medscreen.invalid/rules/{}",
                ctx.engine.ruleset().name
            ),
            code: c.rule.to_owned(),
            display: c.title.to_owned(),
        }),
    };
    let links = c
        .sources
        .iter()
        .skip(1)
        .filter_map(|s| {
            s.url.as_ref().map(|u| Link {
                label: s.label.clone(),
                url: u.clone(),
                kind: "absolute",
            })
        })
        .collect();
    let suggestions = if let (Severity::Critical, Some(order)) = (c.severity, &ctx.trigger.order) {
        let what = ctx.trigger.display.as_deref().map_or_else(
            || format!("the {} order", ctx.drug()),
            |d| format!("the order for {d}"),
        );
        vec![Suggestion {
            label: {
                let text = ctx.engine.cds_text();
                text.fill(&text.cancel_label, "", "")
            },
            uuid: uuid(),
            is_recommended: false,
            actions: vec![Action {
                kind: "delete",
                description: format!("Remove {what} from the orders being signed"),
                resource_id: order.clone(),
            }],
        }]
    } else {
        Vec::new()
    };
    Card {
        uuid: uuid(),
        summary: summary(&format!(
            "{}: {}{}",
            ctx.prefix(),
            c.title,
            short_evidence(ctx.engine.facts(), c)
        )),
        indicator: c.severity.as_str(),
        detail,
        source,
        selection_behavior: (!suggestions.is_empty()).then_some("at-most-one"),
        suggestions,
        override_reasons: override_reasons(),
        links,
        rule: Some(c.rule.to_owned()),
    }
}

/// ` (oxycodone, tramadol)` for medication evidence, ` (eGFR 25)` for a number, else nothing.
fn short_evidence(facts: &FactTable, c: &Caution<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    // Drugs when the caution is about drugs (a CNS-burden card lists them, not the age beside them).
    let drugs = c.evidence.iter().any(|e| e.ingredient.is_some());
    for e in c
        .evidence
        .iter()
        .filter(|e| !drugs || e.ingredient.is_some())
    {
        let part = if let Some(i) = e.ingredient {
            i.to_owned()
        } else if let Some(n) = e.value.as_f64() {
            format!("{} {}", short_label(facts, &e.pointer), trim_number(n))
        } else {
            continue;
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn trim_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A fact's name in a one-line summary: the `short_title` of its declaration, or nothing.
fn short_label<'a>(facts: &'a FactTable, pointer: &str) -> &'a str {
    facts
        .labels(pointer.trim_start_matches('/'))
        .and_then(|l| l.short_title.as_deref())
        .unwrap_or("")
}

fn evidence_line(
    facts: &FactTable,
    e: &Evidence<'_>,
    profile: &Value,
    provenance: &BTreeMap<String, Vec<Prov>>,
) -> String {
    let _ = profile;
    let field = e.pointer.trim_start_matches('/');
    let mut line = if let Some(ingredient) = e.ingredient {
        let name = e
            .value
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                e.value
                    .get("rxnorm")
                    .and_then(Value::as_str)
                    .map(|c| format!("RxNorm {c}"))
            })
            .unwrap_or_default();
        let class = e
            .class
            .map(|c| format!(" ({})", c.replace('_', " ")))
            .unwrap_or_default();
        format!("**{}**{}: {}", md(ingredient), md(&class), md(&name))
    } else if let Some(term) = e.matched {
        format!(
            "{} mentions \u{201c}{}\u{201d}",
            fact_label(facts, field),
            md(term)
        )
    } else {
        let value = match &e.value {
            Value::Null => "not recorded".to_owned(),
            Value::Bool(true) => "yes".to_owned(),
            Value::Bool(false) => "no".to_owned(),
            Value::Number(n) => {
                let unit = facts
                    .labels(field)
                    .and_then(|l| l.unit.as_deref())
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default();
                format!("{}{unit}", trim_number(n.as_f64().unwrap_or(0.0)))
            }
            Value::String(s) => md(s),
            other => md(&other.to_string()),
        };
        format!("{}: {value}", capitalize(fact_label(facts, field)))
    };
    if let Some(from) = provenance.get(e.pointer.as_ref()) {
        let names: Vec<String> = from
            .iter()
            .take(3)
            .map(|p| {
                let mut s = code(&p.resource);
                if let Some(d) = &p.display
                    && e.ingredient.is_none()
                {
                    s.push_str(&format!(" {}", md(d)));
                }
                if let Some(d) = &p.date {
                    s.push_str(&format!(", {}", md(d)));
                }
                s
            })
            .collect();
        line.push_str(&format!(" (from {})", names.join("; ")));
    }
    line
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The question a fact answers, as a clinician would read it: the `title` of its declaration (the
/// shared profile schema or the pack's `facts`).
pub fn fact_label<'a>(facts: &'a FactTable, name: &str) -> &'a str {
    facts.title(name).unwrap_or("a fact")
}

/// A card saying the order could not be screened because the FHIR data is malformed.
pub(crate) fn not_screened(ctx: &Context<'_>, problems: &[FhirProblem]) -> Card {
    let mut detail = format!(
        "medscreen could not screen this {drug} order: the record sent with it could not be read. \
         Review {drug} safety by hand.\n\n",
        drug = ctx.drug()
    );
    for p in problems.iter().take(10) {
        let at = p.resource.as_deref().unwrap_or("");
        detail.push_str(&format!(
            "- {} at {} {}: {}\n",
            code(p.code),
            code(&p.pointer),
            if at.is_empty() {
                String::new()
            } else {
                format!("in {}", code(at))
            },
            md(&p.message)
        ));
    }
    if problems.len() > 10 {
        detail.push_str(&format!("- and {} more\n", problems.len() - 10));
    }
    plain(
        ctx,
        "warning",
        &format!(
            "{}: not screened, the record could not be read",
            ctx.prefix()
        ),
        detail,
    )
}

/// A card saying the screening left out entries of the record that could not be read (a resource
/// without a `resourceType`, a misspelt one, an entry that is not an object). The cautions those
/// entries would have raised are missing, so the card says so and lists where they are; the lists they
/// belong to are also counted as not whole (their absence is unknown, never "none recorded").
pub(crate) fn not_fully_screened(ctx: &Context<'_>, unreadable: &[Unreadable]) -> Card {
    let n = unreadable.len();
    let mut detail = format!(
        "medscreen screened this {} order without {n} entr{} of the record sent with it, which \
         could not be read. Cautions they would have raised (an interacting medication, a condition) \
         are not shown: review the patient's medications and problem list by hand.\n\n",
        ctx.drug(),
        if n == 1 { "y" } else { "ies" }
    );
    for u in unreadable.iter().take(10) {
        detail.push_str(&format!("- at {}: {}\n", code(&u.pointer), md(u.message)));
    }
    if n > 10 {
        detail.push_str(&format!("- and {} more\n", n - 10));
    }
    plain(
        ctx,
        "warning",
        &format!(
            "{}: not fully screened, {n} record entr{} could not be read",
            ctx.prefix(),
            if n == 1 { "y" } else { "ies" }
        ),
        detail,
    )
}

/// A card saying the patient was not screened, and why (deceased).
pub(crate) fn skipped(ctx: &Context<'_>, reason: &str) -> Card {
    plain(
        ctx,
        "warning",
        &format!("{}: not screened", ctx.prefix()),
        format!(
            "medscreen did not screen this {} order: {}.\n",
            ctx.drug(),
            md(reason)
        ),
    )
}

/// A card for a profile the mapping built but the schema refused (a defect of ours).
pub(crate) fn invalid_profile(ctx: &Context<'_>, r: &Rejection) -> Card {
    let mut detail = format!(
        "medscreen could not screen this {drug} order: the facts read from the record were out of \
         range. Review {drug} safety by hand.\n\n",
        drug = ctx.drug()
    );
    for p in &r.problems {
        detail.push_str(&format!("- {}: {}\n", code(&p.pointer), md(&p.message)));
    }
    plain(
        ctx,
        "warning",
        &format!("{}: not screened, facts out of range", ctx.prefix()),
        detail,
    )
}

fn plain(ctx: &Context<'_>, indicator: &'static str, summary_text: &str, detail: String) -> Card {
    Card {
        uuid: uuid(),
        summary: summary(summary_text),
        indicator,
        detail,
        source: pack_source(ctx),
        suggestions: Vec::new(),
        selection_behavior: None,
        override_reasons: Vec::new(),
        links: Vec::new(),
        rule: None,
    }
}

/// At most [`SUMMARY_MAX`] characters, cut at a word with an ellipsis.
fn summary(s: &str) -> String {
    if s.chars().count() <= SUMMARY_MAX {
        return s.to_owned();
    }
    let cut: String = s.chars().take(SUMMARY_MAX - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > SUMMARY_MAX / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}\u{2026}", cut.trim_end_matches([',', ' ', '(']))
}

/// An identifier from the record as a code span: no backticks, no line breaks or other control
/// characters (which could end the span and start markup), at most 128 characters.
pub fn code(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '`')
        .take(128)
        .collect();
    format!("`{clean}`")
}

/// Escape text for CommonMark so that record text cannot become markup or links.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(
            ch,
            '\\' | '`'
                | '*'
                | '_'
                | '['
                | ']'
                | '<'
                | '>'
                | '#'
                | '|'
                | '!'
                | '{'
                | '}'
                | '('
                | ')'
        ) {
            out.push('\\');
        }
        if ch == '\n' || ch == '\r' {
            out.push(' ');
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stay_under_140() {
        let long = "word ".repeat(60);
        let s = summary(&long);
        assert!(s.chars().count() < 140, "{}", s.chars().count());
        assert!(s.ends_with('\u{2026}'));
        assert_eq!(summary("short"), "short");
    }

    #[test]
    fn identifiers_cannot_break_out_of_code_spans() {
        let id = "x`\n\n[Click](https://evil.example)\n";
        let c = code(id);
        assert_eq!(c, "`x[Click](https://evil.example)`");
        assert_eq!(c.matches('`').count(), 2);
    }

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(md("[x](http://e)"), "\\[x\\]\\(http://e\\)");
        assert_eq!(md("a*b_c\nd"), "a\\*b\\_c d");
    }
}
