//! Criterion benches, one group per pipeline stage. Fixtures are built in one place and passed through
//! `black_box`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use medscreen::engine::{EMBEDDED_PACK, EMBEDDED_VOCABULARY};
use medscreen::{Engine, Medication};

const CLEAR: &[u8] = br#"{"id":"clear","age":40,"sex":"male","seizure_history":false,"kidney_disease":false,"dialysis":false,"egfr":95,"stroke_history":false,"relies_on_spasticity":false,"liver_disease":false,"heart_disease":false,"diabetes":false,"psychiatric_disorder":false,"alcohol_use":false,"operates_machinery":false,"indication":"spasticity due to multiple sclerosis","baclofen_daily_dose_mg":30,"discontinuation":"taper","comedications":["atorvastatin 20 mg"]}"#;
const FLAGGED: &[u8] = br#"{"id":"flagged","age":78,"sex":"female","egfr":28,"dialysis":false,"seizure_history":true,"alcohol_use":true,"indication":"post-stroke spasticity","baclofen_daily_dose_mg":90,"discontinuation":"abrupt","comedications":["oxyCODONE HCl 5 MG Oral Tablet","Xanax 0.5mg","gabapentin 300 mg","sertraline 50 mg","lisinopril 10 mg","metformin 500 mg","Zzyzx 10 mg"]}"#;
const UNKNOWNS: &[u8] = br#"{"id":"unknowns","age":70}"#;
const INVALID: &[u8] = br#"{"id":"bad","age":200,"sex":"f","pregnent":true,"comedications":[{}]}"#;

fn bench_load(c: &mut Criterion) {
    c.bench_function("load/embedded_pack", |b| {
        b.iter(|| {
            Engine::from_sources(
                "pack.json",
                black_box(EMBEDDED_PACK),
                "vocabulary.json",
                black_box(EMBEDDED_VOCABULARY),
            )
            .expect("loads")
        })
    });
}

fn bench_validate(c: &mut Criterion) {
    let engine = Engine::embedded().expect("embedded");
    let mut g = c.benchmark_group("validate");
    g.bench_function("valid", |b| {
        b.iter(|| engine.parse_profile(black_box(FLAGGED)).is_ok())
    });
    g.bench_function("invalid_explained", |b| {
        b.iter(|| engine.parse_profile(black_box(INVALID)).is_err())
    });
    g.finish();
}

fn bench_screen(c: &mut Criterion) {
    let engine = Engine::embedded().expect("embedded");
    let mut g = c.benchmark_group("screen");
    for (name, json) in [
        ("clear", CLEAR),
        ("flagged", FLAGGED),
        ("unknowns", UNKNOWNS),
    ] {
        let profile = engine.parse_profile(json).expect("valid");
        g.bench_function(name, |b| {
            b.iter(|| engine.screen(black_box(&profile)).cautions.len())
        });
    }
    g.finish();
}

fn bench_meds(c: &mut Criterion) {
    let engine = Engine::embedded().expect("embedded");
    let vocab = engine.vocabulary();
    let meds: Vec<Medication> = [
        "oxyCODONE HCl 5 MG Oral Tablet",
        "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
        "Xanax 0.5mg",
        "valproic acid 250 mg",
        "Zzyzx 10 mg",
    ]
    .iter()
    .map(|s| Medication::Text((*s).to_owned()))
    .collect();
    c.bench_function("meds/five_messy_strings", |b| {
        b.iter(|| {
            black_box(&meds)
                .iter()
                .map(|m| vocab.match_medication(m).ingredients.len())
                .sum::<usize>()
        })
    });
}

criterion_group!(
    benches,
    bench_load,
    bench_validate,
    bench_screen,
    bench_meds
);
criterion_main!(benches);
