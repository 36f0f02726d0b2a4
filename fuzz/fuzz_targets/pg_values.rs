//! PostgreSQL's binary value format, as COPY and binary results carry it:
//! any bytes decode to a value or an error; a decoded value encodes back to
//! bytes that decode to the same value (the canonical round trip).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ferry_fuzz::pg_values(data));
