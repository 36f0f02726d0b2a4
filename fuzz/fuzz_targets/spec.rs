//! The spec parser, `${ENV}` interpolation included: any text is a spec or a
//! located error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = ferry_core::Spec::parse(std::path::Path::new("/fuzz/ferry.toml"), text) {
        let _ = e.to_string();
    }
    let _ = ferry_core::spec::interpolate(text, |name| (name.len() % 2 == 0).then(|| name.repeat(2)));
});
