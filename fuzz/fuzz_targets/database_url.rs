//! Database URLs as people write them: parsed or refused, the password never
//! in what is shown, the TLS parameters taken out or refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| ferry_fuzz::database_url(text));
