//! The spec parser, `${ENV}` interpolation included: any text is a spec or a
//! located error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| ferry_fuzz::spec(text));
