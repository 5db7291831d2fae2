//! Fuzz target `profile`: the invariant is [`medscreen::fuzzing::profile`], which `tests/fuzz_corpus.rs` also
//! replays over `fuzz/corpus/profile` and `fuzz/regressions/profile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medscreen::fuzzing::profile(data));
