//! The pgoutput decoder of logical capture: any bytes are a message or an
//! error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::pgoutput(data));
