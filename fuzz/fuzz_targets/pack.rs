//! Fuzz target `pack`: the invariant is [`medscreen::fuzzing::pack`], which `tests/fuzz_corpus.rs` also
//! replays over `fuzz/corpus/pack` and `fuzz/regressions/pack`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medscreen::fuzzing::pack(data));
