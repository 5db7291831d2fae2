//! Fuzz target `bundle`: the invariant is [`medscreen::fuzzing::bundle`], which `tests/fuzz_corpus.rs` also
//! replays over `fuzz/corpus/bundle` and `fuzz/regressions/bundle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medscreen::fuzzing::bundle(data));
