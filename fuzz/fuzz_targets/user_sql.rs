//! The operator's SQL checker: any text in any dialect is accepted or
//! refused with a reason, never a panic or a stack overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| ferry_fuzz::user_sql(text));
