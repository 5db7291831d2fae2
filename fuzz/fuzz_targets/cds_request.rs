//! Fuzz target `cds_request`: the invariant is [`medscreen::fuzzing::cds_request`], which `tests/fuzz_corpus.rs` also
//! replays over `fuzz/corpus/cds_request` and `fuzz/regressions/cds_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medscreen::fuzzing::cds_request(data));
