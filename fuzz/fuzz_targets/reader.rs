//! Fuzz target `reader`: the invariant is [`medscreen::fuzzing::reader`], which `tests/fuzz_corpus.rs`
//! also replays over `fuzz/corpus/reader` and `fuzz/regressions/reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medscreen::fuzzing::reader(data));
