//! Program x profile -> screening, in three-valued logic.
//!
//! A test on an unknown fact is unknown; `all` is false if any part is false, `any` is true if any part is
//! true, `not unknown` is unknown. For each rule the first true tier fires; a rule with no true tier but
//! some unknown one is *indeterminate* and lists the facts that were missing.
//!
//! Deciding is cheap and allocation-free ([`Evaluator::decide`]); evidence and missing facts are built by
//! a second walk only for rules that fire or are indeterminate.

use std::borrow::Cow;

use serde_json::{Number, Value};
use smallvec::SmallVec;

use crate::compile::{CmpOp, Cond, Lit, Program, Rule, Terms};
use crate::facts::{FactTable, Field};
use crate::profile::{Fact, Medication, Profile};
use crate::report::{Caution, Evidence, Indeterminate, Screening, Status};
use crate::severity::Severity;
use crate::vocab::{ClassMask, IngredientId, MatchCache, MedMatch, Vocabulary, normalize};

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    /// False.
    False,
    /// Unknown: a fact it needs is missing.
    Unknown,
    /// True.
    True,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }
}

/// What the comedications of one profile matched.
#[derive(Debug, Default)]
pub struct MedFacts {
    /// One match per entry, in input order (the subject ingredient removed).
    pub entries: Vec<MedMatch>,
    /// Every class any entry falls in.
    pub mask: ClassMask,
    /// Some entry matched nothing.
    pub unrecognized: bool,
    /// The entries that name the subject drug, by index; no class test sees the subject.
    pub subject: SmallVec<[usize; 2]>,
    /// Each distinct ingredient once, and each ATC group matched without an ingredient once, so
    /// counting needs no allocation and a group can decide each of them on its own.
    items: Vec<Item>,
}

/// One distinct thing the comedications name.
#[derive(Debug, Clone, Copy)]
struct Item {
    /// Its classes.
    mask: ClassMask,
    /// The ingredient, or the first entry that matched an ATC group without one.
    key: ItemKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKey {
    Ingredient(IngredientId),
    AtcGroup(usize),
}

/// Which comedication items a medication test sees: all of them, or (deciding a grouped rule) some.
#[derive(Debug, Clone, Copy)]
enum Scope<'s> {
    All,
    Items(&'s [u32]),
}

impl MedFacts {
    /// Match every entry of `meds`.
    pub fn new(
        meds: &[Medication],
        vocab: &Vocabulary,
        subject: Option<IngredientId>,
        cache: &mut MatchCache,
    ) -> MedFacts {
        MedFacts::from_matches(
            meds.iter().map(|med| cache.match_medication(vocab, med)),
            meds.len(),
            vocab,
            subject,
        )
    }

    /// The facts of entries already matched (`len` of them), as the pack whose drug is `subject` sees
    /// them: the subject is never its own comedication.
    pub fn from_matches(
        matches: impl Iterator<Item = MedMatch>,
        len: usize,
        vocab: &Vocabulary,
        subject: Option<IngredientId>,
    ) -> MedFacts {
        let mut facts = MedFacts {
            entries: Vec::with_capacity(len),
            ..MedFacts::default()
        };
        for (k, mut m) in matches.enumerate() {
            if !m.recognized() {
                facts.unrecognized = true;
            }
            if let Some(s) = subject
                && m.ingredients.contains(&s)
            {
                m.ingredients.retain(|i| *i != s);
                facts.subject.push(k);
            }
            facts.entries.push(m);
        }
        let mut seen: SmallVec<[IngredientId; 16]> = SmallVec::new();
        let mut groups: SmallVec<[&str; 4]> = SmallVec::new();
        for (k, e) in facts.entries.iter().enumerate() {
            for &i in &e.ingredients {
                if !seen.contains(&i) {
                    seen.push(i);
                    facts.items.push(Item {
                        mask: vocab.ingredient(i).mask,
                        key: ItemKey::Ingredient(i),
                    });
                }
            }
            if let Some((code, bits)) = &e.atc_group
                && !groups.contains(&code.as_str())
            {
                groups.push(code);
                facts.items.push(Item {
                    mask: *bits,
                    key: ItemKey::AtcGroup(k),
                });
            }
        }
        // The group codes borrow the entries.
        drop(groups);
        facts.mask = facts.items.iter().fold(0, |m, it| m | it.mask);
        facts
    }

    /// Every class of the items in scope.
    fn mask_in(&self, scope: Scope<'_>) -> ClassMask {
        match scope {
            Scope::All => self.mask,
            Scope::Items(ix) => ix.iter().fold(0, |m, &i| {
                m | self.items.get(i as usize).map_or(0, |it| it.mask)
            }),
        }
    }

    /// Distinct items in scope in `classes`.
    fn count(&self, classes: ClassMask, scope: Scope<'_>) -> usize {
        match scope {
            Scope::All => self
                .items
                .iter()
                .filter(|it| it.mask & classes != 0)
                .count(),
            Scope::Items(ix) => ix
                .iter()
                .filter(|&&i| {
                    self.items
                        .get(i as usize)
                        .is_some_and(|it| it.mask & classes != 0)
                })
                .count(),
        }
    }

    /// Whether ingredient `i` is in scope.
    fn admits_ingredient(&self, scope: Scope<'_>, i: IngredientId) -> bool {
        match scope {
            Scope::All => true,
            Scope::Items(ix) => ix.iter().any(|&k| {
                self.items
                    .get(k as usize)
                    .is_some_and(|it| it.key == ItemKey::Ingredient(i))
            }),
        }
    }

    /// Whether the ATC group matched by entry `k` is in scope.
    fn admits_group(&self, scope: Scope<'_>, k: usize) -> bool {
        let code = |e: usize| {
            self.entries
                .get(e)
                .and_then(|x| x.atc_group.as_ref())
                .map(|(c, _)| c.as_str())
        };
        match scope {
            Scope::All => true,
            Scope::Items(ix) => {
                ix.iter()
                    .any(|&i| match self.items.get(i as usize).map(|it| it.key) {
                        Some(ItemKey::AtcGroup(first)) => code(first) == code(k),
                        Some(ItemKey::Ingredient(_)) | None => false,
                    })
            }
        }
    }
}

/// How the members of a group came out for one profile.
struct Picked {
    rule: usize,
    outcome: Outcome,
    items: SmallVec<[u32; 4]>,
}

/// Evaluates one profile against a program. Borrowed, so it is cheap to make per profile.
pub struct Evaluator<'e, 'p> {
    program: &'e Program,
    facts: &'e FactTable,
    vocab: &'e Vocabulary,
    profile: &'p Profile,
    meds: Option<MedFacts>,
    /// The first free-text fact a text test reads, normalised on first use and shared by every text
    /// test of it (packs match terms in one text fact, the indication, many times).
    text: std::cell::OnceCell<(Field, String)>,
}

impl<'e, 'p> Evaluator<'e, 'p> {
    /// Prepare to evaluate `profile`; matches its comedications once.
    pub fn new(
        program: &'e Program,
        facts: &'e FactTable,
        vocab: &'e Vocabulary,
        profile: &'p Profile,
        cache: &mut MatchCache,
    ) -> Self {
        let meds = profile
            .comedications
            .as_deref()
            .map(|m| MedFacts::new(m, vocab, program.subject, cache));
        Evaluator::with_meds(program, facts, vocab, profile, meds)
    }

    /// Prepare to evaluate `profile` with its comedications already matched (`matches`, one per entry,
    /// `None` when the profile does not say): several packs screening one record match it once.
    pub fn with_matches(
        program: &'e Program,
        facts: &'e FactTable,
        vocab: &'e Vocabulary,
        profile: &'p Profile,
        matches: Option<&[MedMatch]>,
    ) -> Self {
        let meds = matches
            .map(|m| MedFacts::from_matches(m.iter().cloned(), m.len(), vocab, program.subject));
        Evaluator::with_meds(program, facts, vocab, profile, meds)
    }

    fn with_meds(
        program: &'e Program,
        facts: &'e FactTable,
        vocab: &'e Vocabulary,
        profile: &'p Profile,
        meds: Option<MedFacts>,
    ) -> Self {
        Evaluator {
            program,
            facts,
            vocab,
            profile,
            meds,
            text: std::cell::OnceCell::new(),
        }
    }

    /// Screen the profile: every rule, cautions sorted by severity then pack order.
    pub fn screen(&self, ruleset: &'e str) -> Screening<'e> {
        let mut cautions = Vec::new();
        let mut indeterminate = Vec::new();
        let picked = self.pick_groups();
        let visit = self
            .program
            .index
            .candidates(self.meds.as_ref().map(|m| m.mask));
        for index in crate::compile::set_bits(&visit) {
            let Some(rule) = self.program.rules.get(index) else {
                continue;
            };
            let (outcome, scope) = match (&picked, rule.group) {
                (Some(picked), Some(_)) => match picked.iter().find(|p| p.rule == index) {
                    Some(p) => (p.outcome, Scope::Items(&p.items)),
                    None => (Outcome::Silent, Scope::All),
                },
                _ => (self.rule_outcome(rule), Scope::All),
            };
            match outcome {
                Outcome::Fires(k) => cautions.push(self.caution(index, rule, k, scope)),
                Outcome::Indeterminate => indeterminate.push(Indeterminate {
                    rule: &rule.id,
                    index,
                    missing: self.missing_for(rule),
                }),
                Outcome::Silent => {}
            }
        }
        // Stable sort keeps pack order within a severity.
        cautions.sort_by_key(|c| std::cmp::Reverse(c.severity));
        let max_severity = cautions.first().map(|c| c.severity);
        Screening {
            id: self.profile.id.clone(),
            status: Status::of_max(max_severity),
            max_severity,
            cautions,
            indeterminate,
            ruleset,
            pack: &self.program.name,
        }
    }

    /// Decide the grouped rules: each comedication item goes to the member where it reaches the
    /// highest severity (the earlier member on a tie); a member fires with the items it was given.
    /// `None` when there is nothing to pick from (no groups, or comedications unknown or empty): the
    /// members are then decided like any rule.
    #[expect(
        clippy::indexing_slicing,
        reason = "group members and tier numbers are indices the compiler made into this program's rules and that rule's tiers"
    )]
    fn pick_groups(&self) -> Option<SmallVec<[Picked; 4]>> {
        let meds = self.meds.as_ref()?;
        if self.program.groups.is_empty() || meds.items.is_empty() {
            return None;
        }
        let rules = &self.program.rules;
        // (item, member) for each item's best member; members left undecided by an item that no
        // member took.
        let mut taken: SmallVec<[(u32, usize); 8]> = SmallVec::new();
        let mut undecided: SmallVec<[usize; 4]> = SmallVec::new();
        for group in &self.program.groups {
            for (i, item) in meds.items.iter().enumerate() {
                let i = i as u32;
                let mut best: Option<(Severity, usize)> = None;
                let mut unknown: SmallVec<[usize; 4]> = SmallVec::new();
                for &r in &group.members {
                    let rule = &rules[r];
                    if item.mask & rule.item_gate == 0 {
                        continue;
                    }
                    match self.rule_outcome_in(rule, Scope::Items(&[i])) {
                        Outcome::Fires(k) => {
                            let severity = rule.tiers[k].severity;
                            if best.is_none_or(|(s, _)| severity > s) {
                                best = Some((severity, r));
                            }
                        }
                        Outcome::Indeterminate => unknown.push(r),
                        Outcome::Silent => {}
                    }
                }
                match best {
                    Some((_, r)) => taken.push((i, r)),
                    None => undecided.extend(unknown),
                }
            }
        }
        let mut picked: SmallVec<[Picked; 4]> = SmallVec::new();
        for group in &self.program.groups {
            for &r in &group.members {
                let items: SmallVec<[u32; 4]> = taken
                    .iter()
                    .filter(|(_, m)| *m == r)
                    .map(|(i, _)| *i)
                    .collect();
                let outcome = if !items.is_empty() {
                    self.rule_outcome_in(&rules[r], Scope::Items(&items))
                } else if undecided.contains(&r) {
                    Outcome::Indeterminate
                } else {
                    continue;
                };
                picked.push(Picked {
                    rule: r,
                    outcome,
                    items,
                });
            }
        }
        Some(picked)
    }

    /// Decide one rule without building anything.
    pub fn rule_outcome(&self, rule: &Rule) -> Outcome {
        self.rule_outcome_in(rule, Scope::All)
    }

    fn rule_outcome_in(&self, rule: &Rule, scope: Scope<'_>) -> Outcome {
        if let (Some(gates), Some(meds)) = (&rule.med_gate, &self.meds) {
            let mask = meds.mask_in(scope);
            if !gates.iter().any(|tier| tier.iter().all(|c| mask & c != 0)) {
                return Outcome::Silent;
            }
        }
        if let Some(applies) = &rule.applies
            && self.decide_in(applies, scope) == Tri::False
        {
            return Outcome::Silent;
        }
        let mut unknown = false;
        for (k, tier) in rule.tiers.iter().enumerate() {
            match self.decide_in(&tier.when, scope) {
                Tri::True => return Outcome::Fires(k),
                Tri::Unknown => unknown = true,
                Tri::False => {}
            }
        }
        if unknown {
            Outcome::Indeterminate
        } else {
            Outcome::Silent
        }
    }

    /// The truth of a condition.
    pub fn decide(&self, c: &Cond) -> Tri {
        self.decide_in(c, Scope::All)
    }

    fn decide_in(&self, c: &Cond, scope: Scope<'_>) -> Tri {
        match c {
            Cond::Cmp { field, op, value } => match self.profile.fact(*field) {
                None => Tri::Unknown,
                Some(f) => compare(f, *op, value).into(),
            },
            Cond::In { field, values } => match self.profile.fact(*field) {
                None => Tri::Unknown,
                Some(f) => values.iter().any(|v| compare(f, CmpOp::Eq, v)).into(),
            },
            Cond::Known { field, known } => (self.profile.fact(*field).is_some() == *known).into(),
            Cond::All(parts) => {
                let mut out = Tri::True;
                for p in parts {
                    match self.decide_in(p, scope) {
                        Tri::False => return Tri::False,
                        Tri::Unknown => out = Tri::Unknown,
                        Tri::True => {}
                    }
                }
                out
            }
            Cond::Any(parts) => {
                let mut out = Tri::False;
                for p in parts {
                    match self.decide_in(p, scope) {
                        Tri::True => return Tri::True,
                        Tri::Unknown => out = Tri::Unknown,
                        Tri::False => {}
                    }
                }
                out
            }
            Cond::Not(inner) => match self.decide_in(inner, scope) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Unknown => Tri::Unknown,
            },
            Cond::MedClass { class } => match &self.meds {
                None => Tri::Unknown,
                Some(m) => (m.mask_in(scope) & class != 0).into(),
            },
            Cond::MedCount { classes, at_least } => match &self.meds {
                None => Tri::Unknown,
                Some(m) => (m.mask_in(scope) & classes != 0
                    && m.count(*classes, scope) >= *at_least)
                    .into(),
            },
            Cond::MedUnrecognized => match &self.meds {
                None => Tri::Unknown,
                Some(m) => m.unrecognized.into(),
            },
            Cond::MedSubject { terms } => match &self.meds {
                None => Tri::Unknown,
                Some(m) => m
                    .subject
                    .iter()
                    .any(|&k| self.subject_term(k, terms.as_ref()).is_some())
                    .into(),
            },
            Cond::Text { field, terms } => match self.normalized(*field) {
                Some(hay) => terms.find(&hay).is_some().into(),
                None => Tri::Unknown,
            },
        }
    }

    /// A string fact, normalised for whole-word matching; the first one asked for is normalised once.
    fn normalized(&self, field: Field) -> Option<std::borrow::Cow<'_, str>> {
        let Some(Fact::Str(text)) = self.profile.fact(field) else {
            return None;
        };
        let (cached, norm) = self.text.get_or_init(|| (field, normalize(text)));
        if *cached == field {
            return Some(std::borrow::Cow::Borrowed(norm.as_str()));
        }
        Some(std::borrow::Cow::Owned(normalize(text)))
    }

    /// For an entry `k` that names the subject: `Some(term)` if it names one of `terms` (the empty
    /// string when there are no terms to name), else `None`.
    fn subject_term<'t>(&self, k: usize, terms: Option<&'t Terms>) -> Option<&'t str> {
        let Some(terms) = terms else { return Some("") };
        let text = match self.profile.comedications.as_ref()?.get(k)? {
            Medication::Text(t) => t.as_str(),
            Medication::Coded(c) => c.name.as_deref()?,
        };
        terms.find(&normalize(text))
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "tier numbers come from evaluating this rule, so they index its tiers"
    )]
    fn caution(&self, index: usize, rule: &'e Rule, tier: usize, scope: Scope<'_>) -> Caution<'e> {
        let t = &rule.tiers[tier];
        let mut evidence = SmallVec::new();
        match scope {
            // A grouped rule cites each of its ingredients with the tier that ingredient reaches on
            // its own, so that one in a lower tier than the caution's is still named.
            Scope::Items(items) if items.len() > 1 => {
                for i in items {
                    let one = Scope::Items(std::slice::from_ref(i));
                    if let Outcome::Fires(k) = self.rule_outcome_in(rule, one) {
                        self.evidence(&rule.tiers[k].when, true, &mut evidence, one);
                    }
                }
            }
            _ => self.evidence(&t.when, true, &mut evidence, scope),
        }
        Caution {
            rule: &rule.id,
            index,
            severity: t.severity,
            title: &rule.title,
            message: &t.message,
            action: &t.action,
            evidence,
            sources: &rule.sources,
        }
    }

    /// The facts that make `c` come out as `want`, with the comedications in `scope`.
    fn evidence(
        &self,
        c: &'e Cond,
        want: bool,
        out: &mut SmallVec<[Evidence<'e>; 2]>,
        scope: Scope<'_>,
    ) {
        let wanted = Tri::from(want);
        match c {
            Cond::Cmp { field, .. } | Cond::In { field, .. } | Cond::Known { field, .. } => {
                // A fact tested twice (`age >= 12` and `age <= 50`) is one piece of evidence.
                if self.decide(c) == wanted
                    && !out.iter().any(|e| e.pointer == self.facts.pointer(*field))
                {
                    out.push(self.fact_evidence(*field));
                }
            }
            Cond::All(parts) | Cond::Any(parts) => {
                // all->true and any->false need every part; all->false and any->true need the parts
                // that decided it.
                let every = matches!(c, Cond::All(_)) == want;
                for p in parts {
                    if every || self.decide_in(p, scope) == wanted {
                        self.evidence(p, want, out, scope);
                    }
                }
            }
            Cond::Not(inner) => self.evidence(inner, !want, out, scope),
            Cond::MedClass { class } | Cond::MedCount { classes: class, .. } if want => {
                let Some(meds) = &self.meds else { return };
                let class_name = self.vocab.class_name(*class);
                let mut seen: Vec<IngredientId> = Vec::new();
                for (k, e) in meds.entries.iter().enumerate() {
                    for &i in &e.ingredients {
                        let ing = self.vocab.ingredient(i);
                        if ing.mask & class != 0
                            && !seen.contains(&i)
                            && meds.admits_ingredient(scope, i)
                        {
                            seen.push(i);
                            out.push(self.med_evidence(
                                k,
                                Some(&ing.name),
                                self.named_class(*class, ing.mask, class_name),
                            ));
                        }
                    }
                    if let Some((_, bits)) = &e.atc_group
                        && bits & class != 0
                        && meds.admits_group(scope, k)
                    {
                        out.push(self.med_evidence(
                            k,
                            None,
                            self.named_class(*class, *bits, class_name),
                        ));
                    }
                }
            }
            Cond::MedUnrecognized if want => {
                let Some(meds) = &self.meds else { return };
                for (k, e) in meds.entries.iter().enumerate() {
                    if !e.recognized() {
                        out.push(self.med_evidence(k, None, None));
                    }
                }
            }
            Cond::MedSubject { terms } if want => {
                let (Some(meds), Some(subject)) = (&self.meds, self.program.subject) else {
                    return;
                };
                let name = self.vocab.ingredient(subject).name.as_str();
                for &k in &meds.subject {
                    if let Some(term) = self.subject_term(k, terms.as_ref()) {
                        let mut e = self.med_evidence(k, Some(name), None);
                        e.matched = Some(term).filter(|t| !t.is_empty());
                        out.push(e);
                    }
                }
            }
            Cond::MedClass { .. }
            | Cond::MedCount { .. }
            | Cond::MedUnrecognized
            | Cond::MedSubject { .. } => {
                out.push(self.fact_evidence(Field::Comedications));
            }
            Cond::Text { field, terms } => {
                if let Some(hay) = self.normalized(*field) {
                    let matched = if want { terms.find(&hay) } else { None };
                    let mut e = self.fact_evidence(*field);
                    e.matched = matched;
                    out.push(e);
                }
            }
        }
    }

    /// For a rule over several classes, the first of them that this ingredient is in.
    fn named_class(&self, asked: ClassMask, has: ClassMask, fallback: &'e str) -> Option<&'e str> {
        let hit = asked & has;
        if hit == 0 || asked.count_ones() == 1 {
            return Some(fallback);
        }
        Some(self.vocab.class_name(1 << hit.trailing_zeros()))
    }

    fn fact_evidence(&self, field: Field) -> Evidence<'e> {
        let value = match self.profile.fact(field) {
            None => Value::Null,
            Some(Fact::Bool(b)) => Value::Bool(b),
            Some(Fact::Num(n)) => number(n),
            Some(Fact::Str(s)) => Value::String(s.to_owned()),
            Some(Fact::List(n)) => Value::from(n),
        };
        Evidence {
            pointer: Cow::Borrowed(self.facts.pointer(field)),
            value,
            ingredient: None,
            class: None,
            matched: None,
        }
    }

    fn med_evidence(
        &self,
        k: usize,
        ingredient: Option<&'e str>,
        class: Option<&'e str>,
    ) -> Evidence<'e> {
        let value = self
            .profile
            .comedications
            .as_ref()
            .and_then(|m| m.get(k))
            .and_then(|m| serde_json::to_value(m).ok())
            .unwrap_or(Value::Null);
        Evidence {
            pointer: Cow::Owned(format!("/comedications/{k}")),
            value,
            ingredient,
            class,
            matched: None,
        }
    }

    /// The facts whose absence left an indeterminate rule undecided, in order, without repeats.
    pub fn missing_for(&self, rule: &Rule) -> SmallVec<[&'e str; 4]> {
        let mut out = SmallVec::new();
        for t in &rule.tiers {
            self.missing(&t.when, &mut out);
        }
        out
    }

    fn missing(&self, c: &Cond, out: &mut SmallVec<[&'e str; 4]>) {
        if self.decide(c) != Tri::Unknown {
            return;
        }
        let name = match c {
            Cond::Cmp { field, .. }
            | Cond::In { field, .. }
            | Cond::Known { field, .. }
            | Cond::Text { field, .. } => self.facts.name(*field),
            Cond::MedClass { .. }
            | Cond::MedCount { .. }
            | Cond::MedUnrecognized
            | Cond::MedSubject { .. } => self.facts.name(Field::Comedications),
            Cond::All(parts) | Cond::Any(parts) => {
                for p in parts {
                    self.missing(p, out);
                }
                return;
            }
            Cond::Not(inner) => return self.missing(inner, out),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
}

/// How one rule came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Tier `k` fired.
    Fires(usize),
    /// No tier true, some unknown.
    Indeterminate,
    /// Not applicable, or every tier false.
    Silent,
}

fn compare(fact: Fact<'_>, op: CmpOp, lit: &Lit) -> bool {
    match (fact, lit) {
        (Fact::Num(a), Lit::Num(b)) => match op {
            CmpOp::Eq => a == *b,
            CmpOp::Ne => a != *b,
            CmpOp::Lt => a < *b,
            CmpOp::Le => a <= *b,
            CmpOp::Gt => a > *b,
            CmpOp::Ge => a >= *b,
        },
        (Fact::Bool(a), Lit::Bool(b)) => match op {
            CmpOp::Ne => a != *b,
            _ => a == *b,
        },
        (Fact::Str(a), Lit::Str(b)) => {
            let eq = a.eq_ignore_ascii_case(b) || (!a.is_ascii() && a.to_lowercase() == *b);
            if op == CmpOp::Ne { !eq } else { eq }
        }
        // The compiler only pairs facts with literals of their own type.
        _ => false,
    }
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        // Integral and well inside i64's exact range.
        Value::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// The rule index and the class gates only skip work: on every profile, the rules a screening reports
/// (as cautions or undecided) are exactly those that evaluating every tier of every rule, with no gate
/// and no index, finds firing or undecided.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::Engine;
    use crate::engine::{EMBEDDED_PACKS, EMBEDDED_VOCABULARY};

    /// What a rule comes to for `profile` by evaluating its guard and every tier: `Some(true)` fires,
    /// `Some(false)` undecided, `None` silent.
    fn by_hand(eval: &Evaluator<'_, '_>, rule: &Rule) -> Option<bool> {
        if rule
            .applies
            .as_ref()
            .is_some_and(|a| eval.decide(a) == Tri::False)
        {
            return None;
        }
        let tiers: Vec<Tri> = rule.tiers.iter().map(|t| eval.decide(&t.when)).collect();
        if tiers.contains(&Tri::True) {
            Some(true)
        } else if tiers.contains(&Tri::Unknown) {
            Some(false)
        } else {
            None
        }
    }

    /// Screens every profile with `engine` and checks each ungrouped rule's outcome against
    /// [`by_hand`]; returns how many (rule, profile) pairs fired and were undecided.
    fn check(engine: &Engine, profiles: &[Profile]) -> (usize, usize) {
        let pack = engine.screening_packs().next().unwrap();
        let program = pack.program();
        let mut cache = MatchCache::new();
        let (mut fired, mut undecided) = (0, 0);
        for profile in profiles {
            let screening = engine.screen_with(profile, &mut cache);
            let cautions: BTreeSet<&str> = screening.cautions.iter().map(|c| c.rule).collect();
            let open: BTreeSet<&str> = screening.indeterminate.iter().map(|i| i.rule).collect();
            let eval = Evaluator::new(
                program,
                engine.facts(),
                engine.vocabulary(),
                profile,
                &mut cache,
            );
            for rule in program.rules.iter().filter(|r| r.group.is_none()) {
                let id = rule.id.as_str();
                let got = if cautions.contains(id) {
                    Some(true)
                } else if open.contains(id) {
                    Some(false)
                } else {
                    None
                };
                assert_eq!(got, by_hand(&eval, rule), "{} on {:?}", id, profile.id);
                match got {
                    Some(true) => fired += 1,
                    Some(false) => undecided += 1,
                    None => {}
                }
            }
        }
        (fired, undecided)
    }

    fn profiles(engine: &Engine, n: u64, seed: u64) -> Vec<Profile> {
        let mut data = Vec::new();
        crate::generate::write_profiles(&mut data, engine.facts(), n, seed, 0.0).unwrap();
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| engine.parse_profile(l).unwrap())
            .collect()
    }

    /// Rules shaped to catch an unsound gate or index: class tests under `not`, `any` mixing a class
    /// and a fact, counts behind a guard, a class with a fact, the subject, unrecognised entries.
    const EDGES: &str = r#"{
        "name": "edges", "version": "1.0.0", "subject": {"ingredient": "baclofen"},
        "sources": {"T": {"label": "test"}},
        "groups": [{"id": "G", "title": "group", "rules": ["G-OPIOID", "G-BENZO"]}],
        "rules": [
            {"id": "NOT-CLASS", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"not": {"medication": {"class": "opioid"}}}, "severity": "info", "message": "m", "action": "a"}]},
            {"id": "NOT-ALL", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"not": {"all": [{"medication": {"class": "opioid"}}, {"fact": "age", "op": "ge", "value": 65}]}},
                 "severity": "info", "message": "m", "action": "a"}]},
            {"id": "ANY-MIXED", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"any": [{"medication": {"class": "opioid"}}, {"fact": "egfr", "op": "lt", "value": 30}]},
                 "severity": "warning", "message": "m", "action": "a"}]},
            {"id": "ANY-CLASSES", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"any": [{"medication": {"class": "opioid"}}, {"medication": {"class": "benzodiazepine"}}]},
                 "severity": "warning", "message": "m", "action": "a"}]},
            {"id": "COUNT-GUARDED", "title": "t", "sources": ["T"], "applies": {"fact": "age", "op": "ge", "value": 65},
             "tiers": [{"when": {"medications": {"classes": ["opioid", "benzodiazepine", "gabapentinoid"], "at_least": 2}},
                        "severity": "critical", "message": "m", "action": "a"}]},
            {"id": "CLASS-AND-FACT", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"all": [{"medication": {"class": "opioid"}}, {"fact": "egfr", "op": "lt", "value": 60}]},
                 "severity": "critical", "message": "m", "action": "a"},
                {"when": {"all": [{"medication": {"class": "gabapentinoid"}}, {"any": [{"medication": {"class": "opioid"}}, {"fact": "dialysis", "op": "eq", "value": true}]}]},
                 "severity": "warning", "message": "m", "action": "a"}]},
            {"id": "GUARDED-CLASS", "title": "t", "sources": ["T"], "applies": {"medication": {"class": "antidepressant"}},
             "tiers": [{"when": {"medication": {"class": "antipsychotic"}}, "severity": "warning", "message": "m", "action": "a"}]},
            {"id": "SUBJECT", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"medication": {"subject": true}}, "severity": "info", "message": "m", "action": "a"}]},
            {"id": "UNRECOGNIZED", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"medication": {"unrecognized": true}}, "severity": "info", "message": "m", "action": "a"}]},
            {"id": "G-OPIOID", "title": "t", "sources": ["T"], "applies": {"fact": "age", "op": "ge", "value": 18}, "tiers": [
                {"when": {"medication": {"class": "opioid"}}, "severity": "critical", "message": "m", "action": "a"}]},
            {"id": "G-BENZO", "title": "t", "sources": ["T"], "tiers": [
                {"when": {"medication": {"class": "benzodiazepine"}}, "severity": "warning", "message": "m", "action": "a"}]}
        ]
    }"#;

    #[test]
    fn edge_rules_report_what_every_tier_says() {
        let packs: Vec<(&str, &str)> = std::iter::once(("edges/pack.json", EDGES))
            .chain(EMBEDDED_PACKS.iter().copied())
            .collect();
        let engine = Engine::from_packs(&packs, "vocabulary.json", EMBEDDED_VOCABULARY).unwrap();
        let rule = |id: &str| engine.rules().iter().find(|r| r.id == id).unwrap();
        // The ones that can be gated are, and the ones that cannot are not.
        for id in [
            "ANY-CLASSES",
            "COUNT-GUARDED",
            "CLASS-AND-FACT",
            "GUARDED-CLASS",
            "G-OPIOID",
        ] {
            assert!(rule(id).med_gate.is_some(), "{id} is gated");
        }
        for id in [
            "NOT-CLASS",
            "NOT-ALL",
            "ANY-MIXED",
            "SUBJECT",
            "UNRECOGNIZED",
        ] {
            assert!(rule(id).med_gate.is_none(), "{id} is not gated");
        }
        let mut lines = Vec::new();
        for meds in [
            "",
            r#","comedications":[]"#,
            r#","comedications":null"#,
            r#","comedications":["Zzyzx 10 mg"]"#,
            r#","comedications":["baclofen 10 mg"]"#,
            r#","comedications":[{"atc":"N02AX99"}]"#,
            r#","comedications":["oxycodone 5 mg"]"#,
            r#","comedications":["oxycodone 5 mg","diazepam 5 mg"]"#,
            r#","comedications":["gabapentin 300 mg","sertraline 50 mg","quetiapine 25 mg"]"#,
            r#","comedications":["gabapentin 300 mg","Zzyzx","baclofen 10 mg"]"#,
        ] {
            for facts in [
                r#""age":70"#,
                r#""age":40,"egfr":25"#,
                r#""age":80,"egfr":75,"dialysis":false"#,
                r#""age":12,"dialysis":true"#,
            ] {
                lines.push(format!(r#"{{"id":"e{}",{facts}{meds}}}"#, lines.len()));
            }
        }
        let mut profiles: Vec<Profile> = lines
            .iter()
            .map(|l| engine.parse_profile(l.as_bytes()).unwrap())
            .collect();
        profiles.extend(self::profiles(&engine, 300, 23));
        let (fired, undecided) = check(&engine, &profiles);
        assert!(
            fired > 0 && undecided > 0,
            "{fired} fired, {undecided} undecided"
        );
        // A gated rule both fires and is left undecided somewhere.
        let mut cache = MatchCache::new();
        let outcomes: Vec<Screening<'_>> = profiles
            .iter()
            .map(|p| engine.screen_with(p, &mut cache))
            .collect();
        assert!(
            outcomes
                .iter()
                .any(|s| s.cautions.iter().any(|c| c.rule == "CLASS-AND-FACT"))
        );
        assert!(
            outcomes
                .iter()
                .any(|s| s.indeterminate.iter().any(|i| i.rule == "CLASS-AND-FACT"))
        );
    }

    #[test]
    fn the_embedded_packs_report_what_every_tier_says() {
        for name in crate::engine::embedded_pack_names() {
            let engine = Engine::embedded_pack(&name).unwrap();
            let (fired, undecided) = check(&engine, &profiles(&engine, 2000, 21));
            assert!(
                fired > 0 && undecided > 0,
                "{name}: {fired} fired, {undecided} undecided"
            );
        }
    }

    #[test]
    fn the_interaction_pack_reports_what_every_tier_says() {
        let pack = crate::generate::interaction_pack(EMBEDDED_VOCABULARY, 3000, 3).unwrap();
        let packs: Vec<(&str, &str)> =
            std::iter::once(("synthetic-interactions/pack.json", pack.as_str()))
                .chain(EMBEDDED_PACKS.iter().copied())
                .collect();
        let engine = Engine::from_packs(&packs, "vocabulary.json", EMBEDDED_VOCABULARY).unwrap();
        // Some rules are indexed under classes; some profiles have no comedications listed, so every
        // rule is visited for them.
        let gated = engine
            .rules()
            .iter()
            .filter(|r| r.med_gate.is_some())
            .count();
        assert!(gated > 2000, "{gated} gated rules");
        let profiles = profiles(&engine, 400, 22);
        assert!(profiles.iter().any(|p| p.comedications.is_none()));
        let (fired, undecided) = check(&engine, &profiles);
        assert!(
            fired > 0 && undecided > 0,
            "{fired} fired, {undecided} undecided"
        );
    }
}
