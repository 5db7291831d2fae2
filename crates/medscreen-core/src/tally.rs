//! Counting what was reported, the same way for every input path: the native batch and FHIR runs keep
//! their own summaries (their fields differ), but what a screened record adds to them is counted here.
//!
//! Counts are kept by rule position and severity in flat vectors, so a worker adds to its own tally
//! without hashing, and the writer merges tallies in input order.

use std::collections::BTreeMap;

use crate::batch::PackSummary;
use crate::compile::Rule;
use crate::engine::{Engine, LoadedPack};
use crate::output::{Reported, ReportedPacks};
use crate::severity::Severity;

const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

/// What screened records add up to, after `--min-severity`: what is not reported is not counted, nor
/// judged by `--fail-on`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenTally {
    /// Screened with no reported caution.
    pub clear: u64,
    /// Screened with at least one reported caution.
    pub flagged: u64,
    /// Some reported caution reached `--fail-on`.
    pub fail_on_reached: bool,
    severity: [u64; 3],
    by_rule: Vec<u64>,
    indeterminate: Vec<u64>,
    /// With several packs, each pack's counts in the packs' order (the counts above are then of
    /// records, and by rule are left to these).
    packs: Vec<ScreenTally>,
}

impl ScreenTally {
    /// Count one screened record.
    pub fn add(&mut self, reported: &Reported<'_, '_>, fail_on: Option<Severity>) {
        self.count_record(reported.max_severity, fail_on);
        for c in reported.cautions() {
            if let Some(n) = self.severity.get_mut(c.severity as usize) {
                *n += 1;
            }
            bump(&mut self.by_rule, c.index, 1);
        }
        for i in &reported.screening().indeterminate {
            bump(&mut self.indeterminate, i.index, 1);
        }
    }

    /// A record flagged at `max` (clear when `None`), and whether that reaches `fail_on`.
    fn count_record(&mut self, max: Option<Severity>, fail_on: Option<Severity>) {
        if max.is_some() {
            self.flagged += 1;
        } else {
            self.clear += 1;
        }
        if let (Some(max), Some(f)) = (max, fail_on) {
            self.fail_on_reached |= max >= f;
        }
    }

    /// Count one record screened by several packs: the record once (flagged when any pack flagged
    /// it), and each pack's screening in that pack's counts.
    pub fn add_packs(&mut self, reported: &ReportedPacks<'_, '_>, fail_on: Option<Severity>) {
        self.count_record(reported.max_severity, fail_on);
        if self.packs.len() < reported.packs.len() {
            self.packs
                .resize_with(reported.packs.len(), ScreenTally::default);
        }
        for (tally, r) in self.packs.iter_mut().zip(&reported.packs) {
            tally.add(r, fail_on);
            for c in r.cautions() {
                if let Some(n) = self.severity.get_mut(c.severity as usize) {
                    *n += 1;
                }
            }
        }
    }

    /// Each screening pack's counts as the summary writes them (several packs only).
    pub fn pack_summaries(&self, engine: &Engine) -> Vec<PackSummary> {
        self.pack_summaries_of(engine.screening_packs())
    }

    /// Each pack's counts as the summary writes them, `packs` in the order their screenings were
    /// added (an input path that screens each pack with its own engine, as FHIR does, names them here).
    pub fn pack_summaries_of<'p>(
        &self,
        packs: impl IntoIterator<Item = &'p LoadedPack>,
    ) -> Vec<PackSummary> {
        let none = ScreenTally::default();
        packs
            .into_iter()
            .enumerate()
            .map(|(k, pack)| (pack, self.packs.get(k).unwrap_or(&none)))
            .map(|(pack, t)| PackSummary {
                pack: pack.name().to_owned(),
                ruleset: pack.ruleset().label.clone(),
                clear: t.clear,
                flagged: t.flagged,
                cautions_by_severity: t.cautions_by_severity(),
                cautions_by_rule: t.cautions_by_rule(&pack.program().rules),
                indeterminate_by_rule: t.indeterminate_by_rule(&pack.program().rules),
            })
            .collect()
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &ScreenTally) {
        if self.packs.len() < other.packs.len() {
            self.packs
                .resize_with(other.packs.len(), ScreenTally::default);
        }
        for (a, b) in self.packs.iter_mut().zip(&other.packs) {
            a.merge(b);
        }
        self.clear += other.clear;
        self.flagged += other.flagged;
        self.fail_on_reached |= other.fail_on_reached;
        for (a, b) in self.severity.iter_mut().zip(other.severity) {
            *a += b;
        }
        for (i, n) in other.by_rule.iter().enumerate() {
            bump(&mut self.by_rule, i, *n);
        }
        for (i, n) in other.indeterminate.iter().enumerate() {
            bump(&mut self.indeterminate, i, *n);
        }
    }

    /// Reported cautions by severity name, leaving out those with none.
    pub fn cautions_by_severity(&self) -> BTreeMap<&'static str, u64> {
        SEVERITIES
            .iter()
            .zip(self.severity)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect()
    }

    /// Reported cautions by rule id, leaving out rules with none.
    pub fn cautions_by_rule(&self, rules: &[Rule]) -> BTreeMap<String, u64> {
        by_id(&self.by_rule, rules)
    }

    /// Undecided rules by rule id, leaving out rules that always were decided.
    pub fn indeterminate_by_rule(&self, rules: &[Rule]) -> BTreeMap<String, u64> {
        by_id(&self.indeterminate, rules)
    }
}

fn bump(counts: &mut Vec<u64>, index: usize, n: u64) {
    if counts.len() <= index {
        counts.resize(index + 1, 0);
    }
    if let Some(c) = counts.get_mut(index) {
        *c += n;
    }
}

fn by_id(counts: &[u64], rules: &[Rule]) -> BTreeMap<String, u64> {
    rules
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (r.id.clone(), *n))
        .collect()
}
