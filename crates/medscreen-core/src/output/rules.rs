//! `rules list` and `rules show`: the rule pack as text, or as JSON with `--format json`.
//!
//! Text (`rules list`), one rule a line: id, its tiers' severities, title:
//!
//! ```text
//! BAC-RENAL                      critical;warning           Baclofen and kidney function
//! ```
//!
//! JSON: `rules list` is one array of `{"id", "title", "tags", "severities", "group"}`; `rules show`
//! one object that also has `"applies"`, `"tiers": [{"severity", "when", "message", "action"}]` and
//! `"sources": [{"label", "url", "citation"}]`. Conditions are written as expressions
//! (`dialysis = true or egfr < 30`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::source_text;
use crate::compile::Rule;
use crate::engine::Engine;

/// `rules list`: one line per rule.
pub fn list_text(engine: &Engine) -> String {
    let mut t = String::new();
    for r in engine.rules() {
        let sev: Vec<&str> = r.tiers.iter().map(|t| t.severity.as_str()).collect();
        let _ = writeln!(t, "{:<30} {:<26} {}", r.id, sev.join(";"), r.title);
    }
    t
}

/// `rules list --format json`: one array, and a newline.
pub fn list_json(engine: &Engine) -> String {
    let list: Vec<Value> = engine
        .rules()
        .iter()
        .map(|r| rule_json(engine, r, false))
        .collect();
    format!("{}\n", Value::Array(list))
}

/// `rules show`: the rule, what it applies to, its group, each tier's condition and its sources.
pub fn show_text(engine: &Engine, r: &Rule) -> String {
    let vocab = engine.vocabulary();
    let mut t = format!("{}: {}\n", r.id, r.title);
    if !r.tags.is_empty() {
        let _ = writeln!(t, "tags: {}", r.tags.join(", "));
    }
    if let Some(a) = &r.applies {
        let _ = writeln!(
            t,
            "applies when {} is true or unknown",
            a.describe(engine.facts(), vocab)
        );
    }
    if let Some(g) = r.group.and_then(|g| engine.groups().get(g)) {
        let _ = writeln!(
            t,
            "group: {} ({}): each comedication ingredient is cited by the one rule of the group where it is most severe",
            g.id, g.title
        );
    }
    for (k, tier) in r.tiers.iter().enumerate() {
        let _ = write!(
            t,
            "tier {} [{}] when {}\n  {}\n  action: {}\n",
            k + 1,
            tier.severity.as_str(),
            tier.when.describe(engine.facts(), vocab),
            tier.message,
            tier.action
        );
    }
    for s in &r.sources {
        let _ = writeln!(t, "source: {}", source_text(s));
    }
    t
}

/// `rules show --format json`: one object, and a newline.
pub fn show_json(engine: &Engine, r: &Rule) -> String {
    format!("{}\n", rule_json(engine, r, true))
}

/// A rule as JSON (`full`: with conditions, messages and sources).
fn rule_json(engine: &Engine, r: &Rule, full: bool) -> Value {
    let vocab = engine.vocabulary();
    let group = r
        .group
        .and_then(|g| engine.groups().get(g))
        .map(|g| g.id.clone());
    let severities: Vec<&str> = r.tiers.iter().map(|t| t.severity.as_str()).collect();
    let mut v = json!({
        "id": r.id, "title": r.title, "tags": r.tags, "severities": severities, "group": group,
    });
    if full {
        let tiers: Vec<Value> = r
            .tiers
            .iter()
            .map(|t| {
                json!({
                    "severity": t.severity.as_str(), "when": t.when.describe(engine.facts(), vocab),
                    "message": t.message, "action": t.action,
                })
            })
            .collect();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "applies".into(),
                json!(
                    r.applies
                        .as_ref()
                        .map(|a| a.describe(engine.facts(), vocab))
                ),
            );
            obj.insert("tiers".into(), Value::Array(tiers));
            obj.insert("sources".into(), json!(r.sources));
        }
    }
    v
}
